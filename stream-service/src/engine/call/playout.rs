//! A reply's audio on its way out, without I/O: synthesised chunks cut into 20 ms frames, a mark
//! every ten frames and at each sentence's end, the frames paced against the call's frame clock
//! (a lead sent at once, then one frame per 20 ms), and the marks the carrier echoes back, which
//! say how much of each sentence the caller heard.

use crate::audio::{FRAME_BYTES, g711};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A mark every this many frames, and at the end of each sentence.
const MARK_EVERY: usize = 10;
/// The frame clock's origin sits this far before the first tick, so ticks fall mid-frame and
/// ±10 ms of timer jitter never sends two frames on one tick and none on the next.
const CLOCK_OFFSET: Duration = Duration::from_millis(30);

/// What goes out next: a frame, or a mark behind the frames before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QItem {
    Frame([u8; FRAME_BYTES]),
    Mark(u32),
}

#[derive(Debug)]
struct MarkInfo {
    id: u32,
    sentence: usize,
    /// Frames of `sentence` played once this mark comes back.
    upto: usize,
}

/// One sentence of the reply: its words, its frames so far, and how many of them were heard.
#[derive(Debug)]
struct Sentence {
    text: String,
    frames: usize,
    heard: usize,
}

/// One reply's audio out.
#[derive(Debug, Default)]
pub(super) struct Playout {
    queue: VecDeque<QItem>,
    sentences: Vec<Sentence>,
    marks: Vec<MarkInfo>,
    next_mark: u32,
    /// Marks sent and not yet echoed.
    outstanding: usize,
    /// When the first frame went out.
    started: Option<Instant>,
    /// Where the frame clock starts (the first tick after the first frame, less CLOCK_OFFSET).
    origin: Option<Instant>,
    sent: u64,
    /// The tail of the last chunk that does not fill a frame yet.
    carry: Vec<u8>,
}

impl Playout {
    /// The reply's sentences, known in advance (their audio follows).
    pub fn set_sentences(&mut self, sentences: Vec<String>) {
        self.sentences = sentences.into_iter().map(Sentence::new).collect();
    }

    /// One more sentence of a streamed reply.
    pub fn add_sentence(&mut self, text: String) {
        self.sentences.push(Sentence::new(text));
    }

    /// Audio of sentence `sentence` in a chunk of any length: whole frames are queued, the rest
    /// waits for the next chunk.
    pub fn audio(&mut self, sentence: usize, ulaw: &[u8]) {
        let mut rest = ulaw;
        if !self.carry.is_empty() {
            let take = (FRAME_BYTES - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() == FRAME_BYTES {
                let mut f = [0u8; FRAME_BYTES];
                f.copy_from_slice(&self.carry);
                self.carry.clear();
                self.frame(sentence, f);
            }
        }
        let mut whole = rest.chunks_exact(FRAME_BYTES);
        for c in whole.by_ref() {
            let mut f = [0u8; FRAME_BYTES];
            f.copy_from_slice(c);
            self.frame(sentence, f);
        }
        self.carry.extend_from_slice(whole.remainder());
    }

    /// Sentence `sentence` has all its audio: the last partial frame is padded with silence and
    /// a mark closes the sentence.
    pub fn sentence_done(&mut self, sentence: usize) {
        if !self.carry.is_empty() {
            let mut f = [g711::SILENCE; FRAME_BYTES];
            f[..self.carry.len()].copy_from_slice(&self.carry);
            self.carry.clear();
            self.frame(sentence, f);
        }
        let n = self.sentences.get(sentence).map_or(0, |s| s.frames);
        let marked = self
            .marks
            .last()
            .is_some_and(|m| m.sentence == sentence && m.upto == n);
        if n > 0 && !marked {
            self.mark(sentence, n);
        }
    }

    fn frame(&mut self, sentence: usize, f: [u8; FRAME_BYTES]) {
        self.queue.push_back(QItem::Frame(f));
        let n = match self.sentences.get_mut(sentence) {
            Some(s) => {
                s.frames += 1;
                s.frames
            }
            None => 0,
        };
        if n > 0 && n % MARK_EVERY == 0 {
            self.mark(sentence, n);
        }
    }

    fn mark(&mut self, sentence: usize, upto: usize) {
        let id = self.next_mark;
        self.next_mark += 1;
        self.marks.push(MarkInfo { id, sentence, upto });
        self.queue.push_back(QItem::Mark(id));
    }

    /// Moves what is due at `now` to `out`: `lead` frames at once, then one per 20 ms of the
    /// frame clock, each mark with the frame before it. The clock is anchored on the first
    /// `tick` after the first frame. Returns true when this call sent the reply's first frame.
    pub fn due(&mut self, now: Instant, tick: bool, lead: u64, out: &mut Vec<QItem>) -> bool {
        if self.started.is_some() && self.origin.is_none() && tick {
            self.origin = now.checked_sub(CLOCK_OFFSET);
        }
        if self.queue.is_empty() {
            return false;
        }
        let first = self.started.is_none();
        if first {
            self.started = Some(now);
        }
        let due = match self.origin {
            Some(o) => lead + now.duration_since(o).as_millis() as u64 / 20,
            None => lead,
        };
        while self.sent < due {
            match self.queue.pop_front() {
                Some(item) => self.send(item, out),
                None => break,
            }
        }
        // A mark right behind the last due frame goes out with it.
        while let Some(&QItem::Mark(id)) = self.queue.front() {
            self.queue.pop_front();
            self.send(QItem::Mark(id), out);
        }
        first
    }

    fn send(&mut self, item: QItem, out: &mut Vec<QItem>) {
        match item {
            QItem::Frame(_) => self.sent += 1,
            QItem::Mark(_) => self.outstanding += 1,
        }
        out.push(item);
    }

    /// The carrier played up to mark `id`; false for a mark this reply never sent.
    pub fn mark_back(&mut self, id: u32) -> bool {
        let Some(m) = self.marks.iter().find(|m| m.id == id) else {
            return false;
        };
        if let Some(s) = self.sentences.get_mut(m.sentence) {
            s.heard = s.heard.max(m.upto);
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        true
    }

    /// Once everything was sent and its audio has had time to play (its own length from the
    /// first frame, plus `grace`), marks still out are taken as heard. Returns how many.
    pub fn release_overdue_marks(&mut self, now: Instant, grace: Duration) -> usize {
        if !self.queue.is_empty() || self.outstanding == 0 {
            return 0;
        }
        let Some(started) = self.started else {
            return 0;
        };
        if now < started + Duration::from_millis(self.sent * 20) + grace {
            return 0;
        }
        for s in &mut self.sentences {
            s.heard = s.frames;
        }
        std::mem::take(&mut self.outstanding)
    }

    /// Everything was sent and every mark came back.
    pub fn drained(&self) -> bool {
        self.queue.is_empty() && self.outstanding == 0
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the first frame has gone out.
    pub fn started(&self) -> bool {
        self.started.is_some()
    }

    /// Frames the caller heard, by the marks.
    pub fn heard_frames(&self) -> usize {
        self.sentences.iter().map(|s| s.heard).sum()
    }

    /// The words the caller heard: whole sentences whose audio played, and the share of the
    /// interrupted sentence that played (by its marks), cut at a word boundary.
    pub fn heard_text(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.sentences {
            if s.frames > 0 && s.heard >= s.frames {
                out.extend(s.text.split_whitespace());
                continue;
            }
            if s.frames > 0 && s.heard > 0 {
                let words: Vec<&str> = s.text.split_whitespace().collect();
                let n = words.len() * s.heard / s.frames;
                out.extend(&words[..n]);
            }
            break;
        }
        out.join(" ")
    }

    #[cfg(test)]
    pub fn frames_of(&self, sentence: usize) -> usize {
        self.sentences.get(sentence).map_or(0, |s| s.frames)
    }

    #[cfg(test)]
    pub fn start_at(&mut self, at: Instant) {
        self.started = Some(at);
    }

    /// Sends everything queued, as a carrier with room for all of it.
    #[cfg(test)]
    pub fn send_all(&mut self) {
        let mut out = Vec::new();
        while let Some(item) = self.queue.pop_front() {
            self.send(item, &mut out);
        }
    }
}

impl Sentence {
    fn new(text: String) -> Self {
        Self {
            text,
            frames: 0,
            heard: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_audio(sentences: &[&str], frames: usize) -> Playout {
        let mut p = Playout::default();
        p.set_sentences(sentences.iter().map(|s| s.to_string()).collect());
        for i in 0..sentences.len() {
            p.audio(i, &vec![0x55; frames * FRAME_BYTES]);
            p.sentence_done(i);
        }
        p
    }

    fn frames(out: &[QItem]) -> usize {
        out.iter().filter(|i| matches!(i, QItem::Frame(_))).count()
    }

    #[test]
    fn heard_text_cuts_at_the_last_mark() {
        let mut p = with_audio(&["One two three.", "Four five six seven."], 20);
        p.send_all();
        // Sentence 0 whole (marks at 10 and 20), sentence 1 half (its mark at 10).
        for id in 0..3 {
            assert!(p.mark_back(id));
        }
        assert_eq!(p.heard_text(), "One two three. Four five");
        assert_eq!(with_audio(&["Hi there."], 20).heard_text(), "");
    }

    #[test]
    fn chunks_of_any_length_make_whole_frames_and_the_tail_is_padded() {
        let mut p = Playout::default();
        p.set_sentences(vec!["Hello.".into()]);
        p.audio(0, &[0x55; FRAME_BYTES + 7]);
        assert_eq!(p.frames_of(0), 1, "the 7 extra bytes wait");
        p.audio(0, &[0x55; FRAME_BYTES - 7]);
        assert_eq!(p.frames_of(0), 2);
        p.audio(0, &[0x55; 3]);
        p.sentence_done(0);
        assert_eq!(p.frames_of(0), 3, "the partial frame is padded");
    }

    #[test]
    fn the_lead_goes_out_at_once_then_one_frame_per_20_ms() {
        let mut p = with_audio(&["A long sentence."], 50);
        let t = Instant::now();
        let mut out = Vec::new();
        assert!(
            p.due(t, false, 10, &mut out),
            "the first frame starts the reply"
        );
        assert_eq!(frames(&out), 10, "the lead");
        out.clear();
        // The first tick anchors the clock 30 ms back: one more frame is due.
        assert!(!p.due(t, true, 10, &mut out));
        assert_eq!(frames(&out), 1);
        out.clear();
        p.due(t + Duration::from_millis(20), true, 10, &mut out);
        assert_eq!(frames(&out), 1, "one frame per 20 ms");
        out.clear();
        p.due(t + Duration::from_millis(25), true, 10, &mut out);
        assert_eq!(frames(&out), 0, "nothing new within the same 20 ms");
    }

    #[test]
    fn a_coarse_beat_sends_the_frames_that_fell_due_since_the_last() {
        let mut p = with_audio(&["A long sentence."], 50);
        let t = Instant::now();
        let mut out = Vec::new();
        p.due(t, false, 10, &mut out);
        p.due(t, true, 10, &mut out);
        assert_eq!(frames(&out), 11);
        // Beats every 60 ms: three frames each, so the far end's buffer stays 140-200 ms ahead.
        for beat in 1..=5u64 {
            out.clear();
            p.due(t + Duration::from_millis(60 * beat), true, 10, &mut out);
            assert_eq!(frames(&out), 3, "beat {beat}");
        }
        // A late beat (a busy worker) catches up at once.
        out.clear();
        p.due(t + Duration::from_millis(60 * 5 + 100), true, 10, &mut out);
        assert_eq!(frames(&out), 5);
    }

    #[test]
    fn a_mark_goes_out_with_the_frame_before_it() {
        let mut p = with_audio(&["Ten frames."], 10);
        let mut out = Vec::new();
        p.due(Instant::now(), false, 10, &mut out);
        assert_eq!(out.len(), 11);
        assert_eq!(out[10], QItem::Mark(0));
        assert!(!p.drained(), "its mark is out");
        assert!(p.mark_back(0));
        assert!(p.drained());
        assert!(!p.mark_back(7), "a mark never sent");
    }

    #[test]
    fn unechoed_marks_are_released_only_after_the_audio_and_the_grace() {
        let mut p = with_audio(&["One two three."], 50);
        let t = Instant::now();
        p.send_all();
        p.start_at(t);
        let grace = Duration::from_millis(1500);
        assert_eq!(
            p.release_overdue_marks(t + Duration::from_millis(2400), grace),
            0
        );
        assert_eq!(
            p.release_overdue_marks(t + Duration::from_millis(2500), grace),
            5
        );
        assert_eq!(p.heard_text(), "One two three.");
        assert!(p.drained());
    }
}
