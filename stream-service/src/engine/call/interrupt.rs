//! How the caller interrupts the bot: by talking over it for the bot's `barge_in_ms`, unless
//! what they say is only an acknowledgement ("uh-huh", "okay", "right"; `speech::backchannel`).
//! Such speech holds the interruption until its words show it is more, or it runs past
//! [`BACKCHANNEL_MAX`] (with a recogniser that gives no words while the caller speaks, speech
//! interrupts at `barge_in_ms` as if acknowledgements did); one that ends while the bot still talks is not a turn: the bot goes on,
//! and the words show as an `asrFinal` event. Bots with `interrupt_on_backchannel` are cut by
//! any speech, as before.

use super::{Actor, CALLER};
use crate::engine::events::{CallEvent, now_ms};
use crate::speech::backchannel::is_backchannel;
use std::time::Duration;

/// Speech over the bot this long interrupts it whatever its words: acknowledgements are short.
pub(super) const BACKCHANNEL_MAX: Duration = Duration::from_millis(1200);

/// The call's interruption policy and what it knows of the utterance in progress.
#[derive(Debug)]
pub(super) struct Interrupt {
    barge_in: Duration,
    backchannels_interrupt: bool,
    /// Whether the latest words of the utterance in progress are only an acknowledgement
    /// (`None`: no words yet). Judged when words come, not on every frame.
    acknowledging: Option<bool>,
    /// The utterance talked over the bot and its interruption was held for its words.
    held: bool,
}

impl Interrupt {
    pub fn new(barge_in: Duration, backchannels_interrupt: bool) -> Self {
        Self {
            barge_in,
            backchannels_interrupt,
            acknowledging: None,
            held: false,
        }
    }

    /// A new utterance.
    pub fn begin(&mut self) {
        self.acknowledging = None;
        self.held = false;
    }

    /// Words of the utterance so far (a partial or settled transcript).
    pub fn heard(&mut self, text: &str) {
        self.acknowledging = (!text.trim().is_empty()).then(|| is_backchannel(text));
    }

    /// Whether `voiced` of speech over a talking bot interrupts it now; `words_come`: the
    /// recogniser gives words while the caller speaks (without them, speech interrupts as if
    /// backchannels did).
    fn interrupts(&self, voiced: Duration, words_come: bool) -> bool {
        voiced >= self.barge_in
            && (self.backchannels_interrupt
                || !words_come
                || voiced >= BACKCHANNEL_MAX
                || self.acknowledging == Some(false))
    }
}

impl Actor {
    /// The caller is speaking (each frame of an utterance): interrupts the bot when the policy
    /// says so; otherwise notes the interruption as held.
    pub(super) fn caller_over_bot(&mut self) {
        let voiced = self.ep.speech_so_far();
        let speaking = self.conv.current().is_some_and(|c| c.interruptible());
        let words_come = self.listen.words_while_speaking();
        let i = &mut self.listen.interrupt;
        if !speaking || voiced < i.barge_in {
            return;
        }
        if i.interrupts(voiced, words_come) {
            i.held = false;
            self.barge_in();
        } else {
            i.held = true;
        }
    }

    /// Whether the utterance that just ended, heard as `text`, only acknowledged the bot,
    /// which is still talking.
    pub(super) fn is_acknowledgement(&self, text: &str) -> bool {
        let i = &self.listen.interrupt;
        i.held
            && !i.backchannels_interrupt
            && is_backchannel(text)
            && self.conv.current().is_some_and(|c| c.interruptible())
    }

    /// An acknowledgement over the bot: shown, not a turn; the bot goes on.
    pub(super) fn acknowledged(&mut self, text: &str) {
        tracing::debug!(call_sid = %self.sid, "an acknowledgement over the bot: it goes on");
        let ts = now_ms();
        self.events.emit(CallEvent::AsrFinal {
            track_id: CALLER.into(),
            timestamp: ts,
            index: self.conv.next_number(),
            start_time: None,
            end_time: Some(ts),
            text: text.to_owned(),
        });
        self.listen.interrupt.begin();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn speech_shorter_than_the_bots_barge_in_never_interrupts() {
        let i = Interrupt::new(MS(500), true);
        assert!(!i.interrupts(MS(400), true));
        assert!(i.interrupts(MS(500), true));
    }

    #[test]
    fn an_acknowledgement_holds_until_it_runs_long() {
        let mut i = Interrupt::new(MS(300), false);
        assert!(!i.interrupts(MS(400), true), "no words yet: held");
        i.heard("Uh-huh.");
        assert!(!i.interrupts(MS(900), true));
        assert!(i.interrupts(BACKCHANNEL_MAX, true), "too long to be one");
    }

    #[test]
    fn other_words_interrupt_at_once() {
        let mut i = Interrupt::new(MS(300), false);
        i.heard("Wait, that's");
        assert!(i.interrupts(MS(350), true));
    }

    #[test]
    fn bots_that_want_it_are_cut_by_any_speech() {
        let mut i = Interrupt::new(MS(300), true);
        i.heard("Okay.");
        assert!(i.interrupts(MS(300), true));
    }

    #[test]
    fn without_words_while_speaking_speech_interrupts_at_the_barge_in() {
        let i = Interrupt::new(MS(300), false);
        assert!(i.interrupts(MS(300), false));
    }
}
