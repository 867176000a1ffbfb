//! The conversation's own rules, without I/O: which turn runs next and its number, the caller's
//! keys and when they make a turn, the silence that gets a reprompt and then ends the call, the
//! history the webhook and the model see (bounded), the webhook's failures in a row, and the
//! words still queued when the call ends. Events and the time come in as method calls; what must
//! happen comes out as return values. No sockets, tasks or clocks inside: every rule is tested
//! below without a runtime. (The turn that runs — its phases — is `lifecycle.rs`, how it ends
//! `completion.rs`, its audio out and what was heard `playout.rs`; the actor in `mod.rs` moves
//! messages between these and the world.)

use super::lifecycle::Turn;
use crate::engine::turn::TurnKind;
use crate::engine::webhook::HistoryEntry;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Keys pressed and then nothing for this long make a turn (`#` makes one at once).
pub const DTMF_IDLE: Duration = Duration::from_secs(2);
/// `tts` and `play` items waiting behind the one playing, at most (the caller's turns are never
/// refused).
pub const MAX_QUEUED: usize = 16;
/// History entries kept for the webhook's requests and the model (which sees fewer).
pub const HISTORY_KEPT: usize = 48;
/// Entries dropped at a time once the history is full.
const HISTORY_STEP: usize = 12;

/// A turn waiting to run: what it is, when it began (end of the caller's speech, or the command),
/// and the silence the endpointer waited.
#[derive(Debug)]
pub struct Queued {
    pub kind: TurnKind,
    pub t0: Instant,
    pub endpoint: Duration,
}

/// What the timers decided at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Keys pressed and then nothing for [`DTMF_IDLE`]: their turn is queued.
    KeysTurn,
    /// Nobody spoke for the silence timeout: the reprompt line is queued.
    Reprompt,
    /// Silence again after the reprompt: end the call.
    GiveUp,
}

/// A `tts` or `play` refused: [`MAX_QUEUED`] are waiting already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

#[derive(Debug)]
pub struct Conversation {
    pending: VecDeque<Queued>,
    /// The turn running now.
    current: Option<Turn>,
    next_turn: u32,
    keys: String,
    last_key: Option<Instant>,
    silence_since: Instant,
    reprompted: bool,
    silence_timeout: Duration,
    reprompt_line: String,
    history: Vec<HistoryEntry>,
    webhook_failures: u32,
}

impl Conversation {
    pub fn new(now: Instant, silence_timeout: Duration, reprompt_line: String) -> Self {
        Self {
            pending: VecDeque::new(),
            current: None,
            next_turn: 0,
            keys: String::new(),
            last_key: None,
            silence_since: now,
            reprompted: false,
            silence_timeout,
            reprompt_line,
            history: Vec::new(),
            webhook_failures: 0,
        }
    }

    /// The number the next turn to start will have (the index of the words being heard now).
    pub fn next_number(&self) -> u32 {
        self.next_turn
    }

    /// The caller finished speaking: their turn is queued, and the silence starts again.
    pub fn caller_turn(&mut self, kind: TurnKind, t0: Instant, endpoint: Duration, now: Instant) {
        self.pending.push_back(Queued { kind, t0, endpoint });
        self.silence_since = now;
        self.reprompted = false;
    }

    /// The bot is to speak (a greeting, a `tts`, a `play`): first in line when `first` (it cuts
    /// what plays), else last. Refused when [`MAX_QUEUED`] such items wait already.
    pub fn bot_turn(&mut self, kind: TurnKind, now: Instant, first: bool) -> Result<(), QueueFull> {
        let queued = self
            .pending
            .iter()
            .filter(|q| !matches!(q.kind, TurnKind::Caller { .. }))
            .count();
        if queued >= MAX_QUEUED {
            return Err(QueueFull);
        }
        let q = Queued {
            kind,
            t0: now,
            endpoint: Duration::ZERO,
        };
        if first {
            self.pending.push_front(q);
        } else {
            self.pending.push_back(q);
        }
        self.silence_since = now;
        Ok(())
    }

    /// A key: `#` queues the keys pressed so far as a turn at once (true: a turn was queued);
    /// other keys wait for more, or for [`DTMF_IDLE`].
    pub fn key(&mut self, digit: &str, now: Instant) -> bool {
        if digit == "#" {
            return self.keys_turn(now);
        }
        self.keys.push_str(digit);
        self.last_key = Some(now);
        false
    }

    /// The keys pressed since the last turn, for the caller's turn that takes them.
    pub fn take_keys(&mut self) -> String {
        self.last_key = None;
        std::mem::take(&mut self.keys)
    }

    fn keys_turn(&mut self, now: Instant) -> bool {
        let dtmf = self.take_keys();
        if dtmf.is_empty() {
            return false;
        }
        let kind = TurnKind::Caller {
            audio: None,
            dtmf,
            heard: None,
            partials: 0,
        };
        self.pending.push_back(Queued {
            kind,
            t0: now,
            endpoint: Duration::ZERO,
        });
        true
    }

    /// The caller finished an utterance (its words may still be on their way): the silence
    /// starts again and they have earned a new reprompt.
    pub fn caller_finished(&mut self, now: Instant) {
        self.silence_since = now;
        self.reprompted = false;
    }

    /// The caller is speaking: they are not silent.
    pub fn caller_active(&mut self, now: Instant) {
        self.silence_since = now;
    }

    /// A turn ended: the silence is counted from here.
    pub fn turn_ended(&mut self, now: Instant) {
        self.silence_since = now;
    }

    /// The next turn to run, numbered, when none runs; [`Conversation::begin`] makes it current.
    pub fn next(&mut self) -> Option<(u32, Queued)> {
        if self.current.is_some() {
            return None;
        }
        let q = self.pending.pop_front()?;
        let n = self.next_turn;
        self.next_turn += 1;
        Some((n, q))
    }

    /// The turn `next` gave is running.
    pub fn begin(&mut self, turn: Turn) {
        self.current = Some(turn);
    }

    pub fn current(&self) -> Option<&Turn> {
        self.current.as_ref()
    }

    pub fn current_mut(&mut self) -> Option<&mut Turn> {
        self.current.as_mut()
    }

    /// The running turn ends (completed, cut, or the call ends).
    pub fn take_current(&mut self) -> Option<Turn> {
        self.current.take()
    }

    /// The timers at `now`, given whether the caller is speaking.
    pub fn tick(&mut self, now: Instant, in_speech: bool) -> Due {
        let turn_running = self.current.is_some();
        if !in_speech
            && self
                .last_key
                .is_some_and(|t| now.duration_since(t) >= DTMF_IDLE)
            && self.keys_turn(now)
        {
            return Due::KeysTurn;
        }
        let idle = !turn_running && self.pending.is_empty() && !in_speech && self.keys.is_empty();
        if !idle || now.duration_since(self.silence_since) < self.silence_timeout {
            return Due::Nothing;
        }
        if self.reprompted {
            return Due::GiveUp;
        }
        self.reprompted = true;
        self.silence_since = now;
        let line = TurnKind::bot(self.reprompt_line.clone());
        self.pending.push_back(Queued {
            kind: line,
            t0: now,
            endpoint: Duration::ZERO,
        });
        Due::Reprompt
    }

    /// Adds to the history: the last [`HISTORY_KEPT`] entries are kept, the oldest dropped
    /// [`HISTORY_STEP`] at a time (the whole call is in its stored turns).
    pub fn remember(&mut self, role: &'static str, content: String) {
        self.history.push(HistoryEntry { role, content });
        if self.history.len() > HISTORY_KEPT {
            self.history.drain(..HISTORY_STEP);
        }
    }

    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// A webhook turn's outcome: a failure adds to the failures in a row, an answer (or a refusal
    /// that was the business's choice, not a failure) resets them. Returns the count.
    pub fn webhook_result(&mut self, failed: bool) -> u32 {
        self.webhook_failures = if failed { self.webhook_failures + 1 } else { 0 };
        self.webhook_failures
    }

    pub fn webhook_failures(&self) -> u32 {
        self.webhook_failures
    }

    /// The call ended: the caller's turns still queued, each with the number it gets (bot
    /// lines still queued are dropped: nobody will hear them).
    pub fn unanswered(&mut self) -> Vec<(u32, TurnKind)> {
        let mut out = Vec::new();
        for q in std::mem::take(&mut self.pending) {
            if matches!(q.kind, TurnKind::Caller { .. }) {
                out.push((self.next_turn, q.kind));
                self.next_turn += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENCE: Duration = Duration::from_secs(10);

    fn conv(t0: Instant) -> Conversation {
        Conversation::new(t0, SILENCE, "Are you still there?".into())
    }

    /// A turn runs.
    fn running(c: &mut Conversation, t0: Instant) {
        c.begin(Turn::new(0, t0, Duration::ZERO, None));
    }

    fn said(ms: u64) -> TurnKind {
        TurnKind::Caller {
            audio: Some(vec![0; ms as usize * 8]),
            dtmf: String::new(),
            heard: None,
            partials: 0,
        }
    }

    fn caller_keys(kind: &TurnKind) -> Option<&str> {
        match kind {
            TurnKind::Caller { dtmf, .. } => Some(dtmf),
            _ => None,
        }
    }

    #[test]
    fn turns_run_one_at_a_time_in_order_and_are_numbered() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        c.bot_turn(TurnKind::bot("Hello.".into()), t0, false)
            .unwrap();
        c.caller_turn(said(500), t0, Duration::ZERO, t0);
        let (n, q) = c.next().unwrap();
        assert_eq!(n, 0);
        assert!(matches!(q.kind, TurnKind::Bot { .. }));
        assert_eq!(c.next_number(), 1);
        running(&mut c, t0);
        assert!(c.next().is_none(), "nothing starts while a turn runs");
        assert!(c.take_current().is_some());
        let (n, q) = c.next().unwrap();
        assert_eq!(n, 1);
        assert!(matches!(q.kind, TurnKind::Caller { .. }));
        assert!(c.next().is_none());
    }

    #[test]
    fn a_hash_key_makes_a_turn_at_once_with_the_keys_before_it() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        assert!(!c.key("4", t0));
        assert!(!c.key("2", t0));
        assert!(c.key("#", t0));
        let (_, q) = c.next().unwrap();
        assert_eq!(caller_keys(&q.kind), Some("42"));
        assert!(!c.key("#", t0), "a lone # is no turn");
    }

    #[test]
    fn keys_then_two_quiet_seconds_make_a_turn_but_not_while_the_caller_speaks() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        c.key("7", t0);
        assert_eq!(
            c.tick(t0 + Duration::from_millis(1900), false),
            Due::Nothing
        );
        assert_eq!(c.tick(t0 + DTMF_IDLE, true), Due::Nothing, "still talking");
        assert_eq!(c.tick(t0 + DTMF_IDLE, false), Due::KeysTurn);
        assert_eq!(caller_keys(&c.next().unwrap().1.kind), Some("7"));
    }

    #[test]
    fn keys_pressed_before_speaking_go_with_the_words() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        c.key("1", t0);
        let keys = c.take_keys();
        assert_eq!(keys, "1");
        running(&mut c, t0);
        assert_eq!(
            c.tick(t0 + DTMF_IDLE * 2, false),
            Due::Nothing,
            "no turn of their own"
        );
    }

    #[test]
    fn silence_gets_one_reprompt_then_ends_the_call() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        assert_eq!(c.tick(t0 + SILENCE / 2, false), Due::Nothing);
        assert_eq!(c.tick(t0 + SILENCE, false), Due::Reprompt);
        let (_, q) = c.next().unwrap();
        assert!(matches!(q.kind, TurnKind::Bot { ref text, .. } if text == "Are you still there?"));
        c.turn_ended(t0 + SILENCE + Duration::from_secs(2));
        assert_eq!(
            c.tick(t0 + SILENCE * 2, false),
            Due::Nothing,
            "counted from the reprompt's end"
        );
        assert_eq!(
            c.tick(t0 + SILENCE * 2 + Duration::from_secs(2), false),
            Due::GiveUp
        );
    }

    #[test]
    fn silence_is_not_counted_while_a_turn_runs_or_the_caller_speaks() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        running(&mut c, t0);
        assert_eq!(
            c.tick(t0 + SILENCE * 3, false),
            Due::Nothing,
            "a long answer"
        );
        c.take_current();
        assert_eq!(
            c.tick(t0 + SILENCE * 3, true),
            Due::Nothing,
            "a long sentence"
        );
        c.caller_active(t0 + SILENCE * 3);
        assert_eq!(
            c.tick(t0 + SILENCE * 3 + Duration::from_secs(1), false),
            Due::Nothing
        );
    }

    #[test]
    fn the_caller_speaking_after_a_reprompt_earns_a_new_one() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        assert_eq!(c.tick(t0 + SILENCE, false), Due::Reprompt);
        c.next().unwrap();
        let later = t0 + SILENCE + Duration::from_secs(3);
        c.caller_turn(said(800), later, Duration::ZERO, later);
        c.next().unwrap();
        c.turn_ended(later);
        assert_eq!(c.tick(later + SILENCE, false), Due::Reprompt, "not GiveUp");
    }

    #[test]
    fn queued_bot_lines_are_bounded_but_the_callers_turns_never_are() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        for i in 0..MAX_QUEUED {
            c.bot_turn(TurnKind::bot(format!("Line {i}.")), t0, false)
                .unwrap();
        }
        assert_eq!(
            c.bot_turn(TurnKind::bot("One more.".into()), t0, true),
            Err(QueueFull)
        );
        for _ in 0..100 {
            c.caller_turn(said(300), t0, Duration::ZERO, t0);
        }
        assert_eq!(c.unanswered().len(), 100, "every caller turn is kept");
    }

    #[test]
    fn a_line_that_cuts_goes_first() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        c.bot_turn(TurnKind::bot("Later.".into()), t0, false)
            .unwrap();
        c.bot_turn(TurnKind::bot("Now.".into()), t0, true).unwrap();
        let (_, q) = c.next().unwrap();
        assert!(matches!(q.kind, TurnKind::Bot { ref text, .. } if text == "Now."));
    }

    #[test]
    fn the_history_keeps_the_last_entries_dropping_a_step_at_a_time() {
        let mut c = conv(Instant::now());
        for i in 0..HISTORY_KEPT {
            c.remember("user", format!("{i}"));
        }
        assert_eq!(c.history().len(), HISTORY_KEPT);
        c.remember("bot", "one more".into());
        assert_eq!(c.history().len(), HISTORY_KEPT + 1 - HISTORY_STEP);
        assert_eq!(c.history()[0].content, HISTORY_STEP.to_string());
        assert_eq!(c.history().last().unwrap().content, "one more");
    }

    #[test]
    fn webhook_failures_count_in_a_row_and_an_answer_resets_them() {
        let mut c = conv(Instant::now());
        assert_eq!(c.webhook_result(true), 1);
        assert_eq!(c.webhook_result(true), 2);
        assert_eq!(c.webhook_result(false), 0);
        assert_eq!(c.webhook_result(true), 1);
        assert_eq!(c.webhook_failures(), 1);
    }

    #[test]
    fn at_the_end_the_callers_queued_words_are_numbered_and_bot_lines_dropped() {
        let t0 = Instant::now();
        let mut c = conv(t0);
        c.bot_turn(TurnKind::bot("Hi.".into()), t0, false).unwrap();
        c.next().unwrap();
        c.caller_turn(said(400), t0, Duration::ZERO, t0);
        c.bot_turn(TurnKind::bot("Queued line.".into()), t0, false)
            .unwrap();
        c.key("9", t0);
        assert!(c.key("#", t0));
        let left = c.unanswered();
        let numbers: Vec<u32> = left.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(caller_keys(&left[1].1), Some("9"));
    }
}
