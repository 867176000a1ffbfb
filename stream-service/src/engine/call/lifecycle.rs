//! The life of one turn as an explicit state machine, without I/O (its tests need no runtime).
//! A turn is `Preparing` its reply (the stage says which step runs: recognition, the LLM, the
//! webhook, a tool call), then `Speaking` it — its audio goes out through the turn's `Playout`;
//! `streaming` while more may still come (a model still writing, a tool call in flight) — and
//! ends `Done`: heard to the last mark, interrupted by the caller, or with nothing to say. The
//! actor feeds it the turn task's messages and the carrier's marks; the transitions and the
//! questions the actor asks (may the caller interrupt? has everything been heard?) live here.

use super::playout::Playout;
use crate::engine::turn::{Fallback, Stage};
use crate::engine::webhook::Action;
use callbot_core::store::{LlmTimings, TurnTimings};
use std::time::{Duration, Instant};

/// How long past its audio's own length a reply waits for the carrier's marks.
pub const MARK_GRACE: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every frame was played and confirmed by the carrier.
    Heard,
    /// The caller talked over it.
    Interrupted,
    /// Nothing to say (noise that recognised as nothing).
    NothingToSay,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Preparing(Stage),
    Speaking { streaming: bool },
    Done(Ending),
}

/// The reply as planned: words, action, and why a fallback was spoken instead (if it was).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub say: String,
    pub action: Action,
    pub fallback: Option<Fallback>,
}

#[derive(Debug)]
pub(super) struct Turn {
    pub turn: u32,
    pub t0: Instant,
    pub caller_turn: bool,
    /// The utterance, kept until it is recognised (so a hang-up mid-turn loses no words).
    pub audio: Option<Vec<i16>>,
    pub user_text: String,
    pub dtmf: String,
    pub reply: Option<Reply>,
    pub timings: TurnTimings,
    pub playback: Playout,
    phase: Phase,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Turn {
    pub fn new(
        turn: u32,
        t0: Instant,
        endpoint: Duration,
        caller: Option<(Option<Vec<i16>>, String)>,
    ) -> Self {
        let (caller_turn, audio, dtmf) = match caller {
            Some((audio, dtmf)) => (true, audio, dtmf),
            None => (false, None, String::new()),
        };
        Self {
            turn,
            t0,
            caller_turn,
            audio,
            user_text: String::new(),
            dtmf,
            reply: None,
            timings: TurnTimings {
                endpoint_ms: ms(endpoint),
                ..TurnTimings::default()
            },
            playback: Playout::default(),
            phase: Phase::Preparing(Stage::Starting),
        }
    }

    #[cfg(test)]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The pipeline moved on to `stage`. While speaking (a tool call between sentences) the
    /// reply is still streaming.
    pub fn stage(&mut self, stage: Stage) {
        match &mut self.phase {
            Phase::Preparing(s) => *s = stage,
            Phase::Speaking { streaming } => *streaming = true,
            Phase::Done(_) => {}
        }
    }

    pub fn recognised(&mut self, text: String, stt: Duration) {
        self.timings.stt_ms = Some(ms(stt));
        self.audio = None;
        self.user_text = text;
    }

    /// The reply is known (webhook mode, greetings) or begins (LLM mode: no sentences yet).
    pub fn reply(&mut self, reply: Reply, sentences: Vec<String>, webhook: Option<Duration>) {
        self.timings.webhook_ms = webhook.map(ms);
        self.playback.set_sentences(sentences);
        self.reply = Some(reply);
        if matches!(self.phase, Phase::Preparing(_)) {
            self.phase = Phase::Speaking { streaming: true };
        }
    }

    /// A reply whose sentences and action follow one by one (`sentence`, `act`).
    pub fn begin_streaming(&mut self) {
        let reply = Reply {
            say: String::new(),
            action: Action::Continue,
            fallback: None,
        };
        self.reply(reply, Vec::new(), None);
    }

    /// The next sentence of a streamed reply.
    pub fn sentence(&mut self, text: String) {
        if let Some(r) = self.reply.as_mut() {
            if !r.say.is_empty() {
                r.say.push(' ');
            }
            r.say.push_str(&text);
        }
        self.playback.add_sentence(text);
    }

    /// The model chose an action (`end_call`, `transfer_call`) or fell back.
    pub fn act(&mut self, action: Action, fallback: Option<Fallback>) {
        if let Some(r) = self.reply.as_mut() {
            r.action = action;
            if fallback.is_some() {
                r.fallback = fallback;
            }
        }
    }

    pub fn llm(&mut self, timings: LlmTimings) {
        self.timings.llm = Some(timings);
    }

    /// Synthesised audio of sentence `sentence` as it arrives, in chunks of any length: queued
    /// as 20 ms frames with a mark every 10 (the rest waits for the next chunk).
    pub fn audio(&mut self, sentence: usize, ulaw: &[u8], tts: Duration, provider: &str) {
        if self.timings.tts_first_byte_ms.is_none() {
            self.timings.tts_first_byte_ms = Some(ms(tts));
        }
        if self.timings.tts_provider.is_none() {
            self.timings.tts_provider = Some(provider.to_owned());
        }
        self.playback.audio(sentence, ulaw);
    }

    /// Sentence `sentence` has all its audio: the last partial frame is padded with silence and
    /// a mark closes the sentence.
    pub fn sentence_done(&mut self, sentence: usize) {
        self.playback.sentence_done(sentence);
    }

    /// The pipeline is done: no more audio will come.
    pub fn synthesis_finished(&mut self) {
        self.phase = match self.phase {
            Phase::Speaking { .. } => Phase::Speaking { streaming: false },
            Phase::Preparing(_) => Phase::Done(Ending::NothingToSay),
            Phase::Done(e) => Phase::Done(e),
        };
    }

    /// The carrier played up to mark `id`.
    pub fn mark_back(&mut self, id: u32) {
        if self.playback.mark_back(id) && self.timings.first_mark_ms.is_none() {
            self.timings.first_mark_ms = Some(ms(self.t0.elapsed()));
        }
    }

    /// When the reply has been sent in full and its audio has had time to play — its own
    /// length from the first frame, plus [`MARK_GRACE`] — marks still out are taken as heard, so
    /// a carrier that never echoes them cannot hold the call until its maximum length. Returns
    /// how many were given up on.
    pub fn release_overdue_marks(&mut self, now: Instant) -> usize {
        if self.phase != (Phase::Speaking { streaming: false }) {
            return 0;
        }
        self.playback.release_overdue_marks(now, MARK_GRACE)
    }

    /// Whether the turn is over: its reply heard to the last mark, or nothing to say.
    pub fn complete(&mut self) -> bool {
        if self.phase == (Phase::Speaking { streaming: false }) && self.playback.drained() {
            self.phase = Phase::Done(Ending::Heard);
        }
        matches!(
            self.phase,
            Phase::Done(Ending::Heard | Ending::NothingToSay)
        )
    }

    /// Caller speech now cuts the reply: it is playing, or being prepared to play. Not while
    /// the caller's own words are still being recognised (a filler covering a slow recogniser):
    /// cutting then would throw those words away; the new speech waits its turn instead.
    pub fn interruptible(&self) -> bool {
        match self.phase {
            Phase::Speaking { streaming } => {
                (self.playback.sent() > 0 || streaming) && self.audio.is_none()
            }
            _ => false,
        }
    }

    pub fn interrupt(&mut self) {
        self.phase = Phase::Done(Ending::Interrupted);
    }

    /// The words the caller heard: all of them, or up to the last mark before an interruption.
    pub fn heard_text(&self) -> String {
        match (&self.phase, &self.reply) {
            (Phase::Done(Ending::Interrupted), _) => self.playback.heard_text(),
            (_, Some(r)) => r.say.clone(),
            (_, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn() -> Turn {
        Turn::new(
            1,
            Instant::now(),
            Duration::from_millis(700),
            Some((Some(vec![0; 800]), String::new())),
        )
    }

    fn send_all(t: &mut Turn) {
        t.playback.send_all();
    }

    #[test]
    fn a_filler_over_words_not_yet_recognised_is_not_cut() {
        let mut t = turn();
        t.stage(Stage::Recognising);
        // Recognition is slow: the filler begins while the caller's audio is still unknown.
        t.reply(Reply::default(), Vec::new(), None);
        t.sentence("One moment.".into());
        t.audio(0, &[0xff; 1600], Duration::from_millis(5), "espeak-ng");
        send_all(&mut t);
        assert!(
            !t.interruptible(),
            "cutting now would throw away the words being recognised"
        );
        t.recognised("table for two".into(), Duration::from_millis(2400));
        assert!(
            t.interruptible(),
            "once the words are known the caller may cut the reply"
        );
    }

    #[test]
    fn a_streamed_reply_is_heard_only_after_its_last_mark() {
        let mut t = turn();
        assert_eq!(t.phase(), &Phase::Preparing(Stage::Starting));
        assert!(!t.interruptible());
        t.stage(Stage::Recognising);
        t.recognised("table for two".into(), Duration::from_millis(90));
        t.stage(Stage::Llm);
        assert_eq!(t.phase(), &Phase::Preparing(Stage::Llm));
        t.reply(Reply::default(), Vec::new(), None);
        assert!(
            t.interruptible(),
            "the model is writing: talking over it cancels it"
        );
        t.sentence("Sure.".into());
        // Chunks that do not fall on frame boundaries.
        t.audio(0, &[0xff; 1000], Duration::from_millis(5), "elevenlabs");
        t.audio(
            0,
            &[0xff; 160 * 12 - 1000],
            Duration::from_millis(9),
            "elevenlabs",
        );
        t.sentence_done(0);
        assert_eq!(t.playback.frames_of(0), 12);
        assert_eq!(t.timings.tts_first_byte_ms, Some(5));
        t.stage(Stage::Tool("check_hours".into()));
        t.sentence("We open at five.".into());
        t.audio(
            1,
            &[0xff; 160 * 2 + 7],
            Duration::from_millis(5),
            "elevenlabs",
        );
        t.sentence_done(1);
        assert_eq!(t.playback.frames_of(1), 3, "the partial frame is padded");
        t.act(Action::Hangup, None);
        send_all(&mut t);
        assert!(!t.complete(), "still streaming");
        t.synthesis_finished();
        assert!(!t.complete(), "marks are outstanding");
        for id in 0..3 {
            t.mark_back(id);
        }
        assert!(t.complete());
        assert_eq!(t.phase(), &Phase::Done(Ending::Heard));
        let r = t.reply.clone().unwrap();
        assert_eq!(
            (r.say.as_str(), r.action),
            ("Sure. We open at five.", Action::Hangup)
        );
        assert_eq!(t.heard_text(), "Sure. We open at five.");
        assert_eq!(t.timings.stt_ms, Some(90));
    }

    #[test]
    fn marks_that_never_come_back_wait_only_for_the_audio_length() {
        let mut t = turn();
        t.reply(
            Reply {
                say: "One two three.".into(),
                ..Reply::default()
            },
            vec!["One two three.".into()],
            None,
        );
        t.audio(0, &[0xff; 160 * 50], Duration::ZERO, "espeak-ng");
        t.sentence_done(0);
        t.synthesis_finished();
        let started = Instant::now();
        t.playback.start_at(started);
        send_all(&mut t);
        assert_eq!(t.playback.sent(), 50, "one second of audio");
        assert!(!t.complete(), "marks are outstanding");
        // Within the audio's length and the grace: still waiting.
        let due = started + Duration::from_secs(1) + MARK_GRACE;
        assert_eq!(t.release_overdue_marks(due - Duration::from_millis(20)), 0);
        assert!(!t.complete());
        // Past it: the reply counts as heard in full.
        assert_eq!(t.release_overdue_marks(due), 5, "a mark every 10 frames");
        assert!(t.complete());
        assert_eq!(t.heard_text(), "One two three.");
        assert_eq!(t.release_overdue_marks(due), 0);
    }

    #[test]
    fn interruption_keeps_what_was_heard_and_silence_completes_at_once() {
        let mut t = turn();
        t.recognised("one two".into(), Duration::from_millis(90));
        t.reply(
            Reply {
                say: "One two three. Four five six.".into(),
                ..Reply::default()
            },
            vec!["One two three.".into(), "Four five six.".into()],
            Some(Duration::from_millis(40)),
        );
        for i in 0..2 {
            t.audio(i, &[0xff; 160 * 10], Duration::ZERO, "espeak-ng");
            t.sentence_done(i);
        }
        send_all(&mut t);
        t.mark_back(0);
        assert!(t.interruptible());
        t.interrupt();
        assert_eq!(t.heard_text(), "One two three.");
        assert!(
            !t.complete(),
            "an interrupted turn is not completed as heard"
        );

        let mut quiet = turn();
        quiet.recognised(String::new(), Duration::ZERO);
        quiet.synthesis_finished();
        assert!(quiet.complete());
        assert_eq!(quiet.phase(), &Phase::Done(Ending::NothingToSay));
    }
}
