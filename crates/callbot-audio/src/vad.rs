//! Voice activity detection and endpointing on 20 ms frames of 8 kHz PCM: an energy detector over
//! a minimum-statistics noise floor (the quietest level of the last few seconds, so steady line
//! hiss and hum raise the floor while speech, which always dips between syllables, does not), with
//! start confirmation, hangover, a minimum speech length and a maximum utterance length. No
//! allocation per frame: the utterance buffer is reserved once and handed out at each turn's end.

use std::time::Duration;

pub const FRAME_SAMPLES: usize = 160;
const FRAME_MS: u32 = 20;
/// The noise floor looks back NOISE_BLOCKS × BLOCK_FRAMES frames (3 s).
const NOISE_BLOCKS: usize = 6;
const BLOCK_FRAMES: u32 = 25;
const NO_LEVEL: f32 = f32::INFINITY;
/// The floor assumed before any of the line has been heard (a quiet line): a caller who speaks in
/// the first frames, or a `/call` client that sends audio only while the user talks, is heard.
const START_FLOOR: f32 = -65.0;

/// Endpointing knobs (per bot or platform-wide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Silence after speech that ends the caller's turn.
    pub end_silence: Duration,
    /// Speech shorter than this is noise (a cough, a click) and is dropped.
    pub min_speech: Duration,
    /// Consecutive voiced time needed to declare speech started.
    pub start_after: Duration,
    /// A turn is cut here even if the caller keeps talking.
    pub max_utterance: Duration,
    /// Audio kept from before the detected start (word onsets are quiet).
    pub pre_roll: Duration,
    /// How far above the noise floor a frame must be to count as voiced (dB).
    pub margin_db: f32,
    /// Frames quieter than this are never voiced (dBFS).
    pub min_level_dbfs: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            end_silence: Duration::from_millis(700),
            min_speech: Duration::from_millis(200),
            start_after: Duration::from_millis(60),
            max_utterance: Duration::from_secs(30),
            pre_roll: Duration::from_millis(200),
            margin_db: 10.0,
            min_level_dbfs: -50.0,
        }
    }
}

/// What a frame changed.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech confirmed (the caller has been talking for `start_after`).
    SpeechStarted,
    /// The turn ended: the caller's audio (with pre-roll), how long they spoke, and the silence
    /// after their last word that ended it.
    SpeechEnded {
        audio: Vec<i16>,
        speech: Duration,
        silence: Duration,
    },
    /// What looked like speech was too short to be a turn.
    Discarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Quiet,
    Onset { voiced: u32 },
    Speech { voiced: u32, silent: u32 },
}

#[derive(Debug)]
pub struct Endpointer {
    cfg: VadConfig,
    state: State,
    /// Quietest level of the current half-second block, and of the blocks before it.
    block_min: f32,
    block_frames: u32,
    history: [f32; NOISE_BLOCKS],
    /// Ring of recent frames for the pre-roll, then the utterance itself.
    pre: std::collections::VecDeque<[i16; FRAME_SAMPLES]>,
    utterance: Vec<i16>,
    frames_seen: u64,
}

fn frames(d: Duration) -> u32 {
    (d.as_millis() as u32).div_ceil(FRAME_MS).max(1)
}

/// RMS level of a frame in dBFS.
pub fn level_dbfs(frame: &[i16]) -> f32 {
    let energy: f64 =
        frame.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / frame.len().max(1) as f64;
    let rms = energy.sqrt() / 32768.0;
    (20.0 * rms.max(1e-9).log10()) as f32
}

impl Endpointer {
    pub fn new(cfg: VadConfig) -> Self {
        let cap = (cfg.max_utterance.as_millis() as usize / FRAME_MS as usize + 64) * FRAME_SAMPLES;
        Self {
            cfg,
            state: State::Quiet,
            block_min: NO_LEVEL,
            block_frames: 0,
            history: [START_FLOOR; NOISE_BLOCKS],
            pre: std::collections::VecDeque::with_capacity(frames(cfg.pre_roll) as usize + 1),
            utterance: Vec::with_capacity(cap),
            frames_seen: 0,
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    /// Whether the caller is talking (speech confirmed and not yet ended).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Voiced time of the current turn so far (zero when quiet).
    pub fn speech_so_far(&self) -> Duration {
        match self.state {
            State::Speech { voiced, .. } | State::Onset { voiced } => {
                Duration::from_millis(u64::from(voiced * FRAME_MS))
            }
            State::Quiet => Duration::ZERO,
        }
    }

    /// The current noise floor estimate (dBFS).
    pub fn noise_floor_dbfs(&self) -> f32 {
        self.history.iter().copied().fold(self.block_min, f32::min)
    }

    fn track_noise(&mut self, level: f32) {
        self.block_min = self.block_min.min(level);
        self.block_frames += 1;
        if self.block_frames == BLOCK_FRAMES {
            self.history.rotate_left(1);
            self.history[NOISE_BLOCKS - 1] = self.block_min;
            self.block_min = NO_LEVEL;
            self.block_frames = 0;
        }
    }

    /// Feeds one 20 ms frame.
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<VadEvent> {
        self.frames_seen += 1;
        let level = level_dbfs(frame);
        self.track_noise(level);
        let threshold = (self.noise_floor_dbfs() + self.cfg.margin_db).max(self.cfg.min_level_dbfs);
        let voiced = level > threshold;
        match self.state {
            State::Quiet => {
                self.remember(frame);
                if voiced {
                    self.state = State::Onset { voiced: 1 };
                    self.maybe_confirm()
                } else {
                    None
                }
            }
            State::Onset { voiced: n } => {
                self.remember(frame);
                if voiced {
                    self.state = State::Onset { voiced: n + 1 };
                    self.maybe_confirm()
                } else {
                    self.state = State::Quiet;
                    None
                }
            }
            State::Speech { voiced: n, silent } => {
                self.utterance.extend_from_slice(frame);
                let (n, silent) = if voiced { (n + 1, 0) } else { (n, silent + 1) };
                self.state = State::Speech { voiced: n, silent };
                let too_long =
                    self.utterance.len() >= frames(self.cfg.max_utterance) as usize * FRAME_SAMPLES;
                if silent >= frames(self.cfg.end_silence) || too_long {
                    Some(self.finish(n))
                } else {
                    None
                }
            }
        }
    }

    fn remember(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if self.pre.len() > frames(self.cfg.pre_roll) as usize {
            self.pre.pop_front();
        }
        self.pre.push_back(*frame);
    }

    fn maybe_confirm(&mut self) -> Option<VadEvent> {
        let State::Onset { voiced } = self.state else {
            return None;
        };
        if voiced < frames(self.cfg.start_after) {
            return None;
        }
        self.utterance.clear();
        for f in self.pre.drain(..) {
            self.utterance.extend_from_slice(&f);
        }
        self.state = State::Speech { voiced, silent: 0 };
        Some(VadEvent::SpeechStarted)
    }

    fn finish(&mut self, voiced: u32) -> VadEvent {
        let silence = self.trailing_silence();
        self.state = State::Quiet;
        let speech = Duration::from_millis(u64::from(voiced * FRAME_MS));
        if speech < self.cfg.min_speech {
            self.utterance.clear();
            return VadEvent::Discarded;
        }
        let cap = self.utterance.capacity();
        let audio = std::mem::replace(&mut self.utterance, Vec::with_capacity(cap));
        VadEvent::SpeechEnded {
            audio,
            speech,
            silence,
        }
    }

    /// Silence since the caller's last voiced frame (zero unless in speech).
    pub fn trailing_silence(&self) -> Duration {
        match self.state {
            State::Speech { silent, .. } => Duration::from_millis(u64::from(silent * FRAME_MS)),
            _ => Duration::ZERO,
        }
    }

    /// The current utterance's audio so far (empty when quiet).
    pub fn audio_so_far(&self) -> &[i16] {
        if self.in_speech() {
            &self.utterance
        } else {
            &[]
        }
    }

    /// Changes the silence that ends the current turn (smart endpointing); `push` ends the turn
    /// at the next frame if the caller has already been quiet that long.
    pub fn set_end_silence(&mut self, d: Duration) {
        self.cfg.end_silence = d;
    }

    /// Ends the current turn now (the call is ending): the words said so far are not lost.
    pub fn flush(&mut self) -> Option<VadEvent> {
        match self.state {
            State::Speech { voiced, .. } => Some(self.finish(voiced)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: f32, n: usize, seed: &mut u32) -> Vec<[i16; FRAME_SAMPLES]> {
        (0..n)
            .map(|f| {
                let mut frame = [0i16; FRAME_SAMPLES];
                for (i, s) in frame.iter_mut().enumerate() {
                    let t = (f * FRAME_SAMPLES + i) as f32 / 8000.0;
                    // A vowel-like sound: two harmonics with a little jitter.
                    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let jitter = ((*seed >> 16) as f32 / 65536.0 - 0.5) * 0.05;
                    let v = (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                        + 0.5 * (2.0 * std::f32::consts::PI * 720.0 * t).sin();
                    *s = ((v * 0.6 + jitter) * amp * 32767.0) as i16;
                }
                frame
            })
            .collect()
    }

    fn noise(amp: f32, n: usize, seed: &mut u32) -> Vec<[i16; FRAME_SAMPLES]> {
        (0..n)
            .map(|_| {
                let mut frame = [0i16; FRAME_SAMPLES];
                for s in frame.iter_mut() {
                    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *s = (((*seed >> 16) as f32 / 65536.0 - 0.5) * 2.0 * amp * 32767.0) as i16;
                }
                frame
            })
            .collect()
    }

    fn run(ep: &mut Endpointer, frames: &[[i16; FRAME_SAMPLES]]) -> Vec<VadEvent> {
        frames.iter().filter_map(|f| ep.push(f)).collect()
    }

    #[test]
    fn one_utterance_in_silence() {
        let mut seed = 1;
        let mut ep = Endpointer::new(VadConfig::default());
        let mut input = vec![[0i16; FRAME_SAMPLES]; 25];
        input.extend(tone(0.3, 50, &mut seed)); // 1 s of speech
        input.extend(vec![[0i16; FRAME_SAMPLES]; 50]);
        let events = run(&mut ep, &input);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], VadEvent::SpeechStarted);
        let VadEvent::SpeechEnded { audio, speech, .. } = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(*speech, Duration::from_secs(1));
        // Speech + pre-roll + end silence, in whole frames.
        assert_eq!(audio.len() % FRAME_SAMPLES, 0);
        assert!(audio.len() >= 50 * FRAME_SAMPLES + 35 * FRAME_SAMPLES);
    }

    #[test]
    fn speech_from_the_first_frame_is_heard() {
        // A `/call` client that sends audio only while its user talks: no line noise before.
        let mut seed = 3;
        let mut ep = Endpointer::new(VadConfig::default());
        let mut input = tone(0.3, 50, &mut seed);
        input.extend(vec![[0i16; FRAME_SAMPLES]; 50]);
        let events = run(&mut ep, &input);
        assert_eq!(events.first(), Some(&VadEvent::SpeechStarted), "{events:?}");
        assert!(matches!(events.get(1), Some(VadEvent::SpeechEnded { .. })));
    }

    #[test]
    fn a_short_pause_inside_a_sentence_does_not_end_the_turn() {
        let mut seed = 2;
        let mut ep = Endpointer::new(VadConfig::default());
        let mut input = vec![[0i16; FRAME_SAMPLES]; 10];
        input.extend(tone(0.3, 30, &mut seed));
        input.extend(vec![[0i16; FRAME_SAMPLES]; 15]); // 300 ms pause
        input.extend(tone(0.3, 30, &mut seed));
        input.extend(vec![[0i16; FRAME_SAMPLES]; 40]);
        let events = run(&mut ep, &input);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(events[1], VadEvent::SpeechEnded { speech, .. } if speech == Duration::from_millis(1200))
        );
    }

    #[test]
    fn clicks_are_discarded_and_line_noise_is_not_speech() {
        let mut seed = 3;
        let mut ep = Endpointer::new(VadConfig::default());
        // Steady hiss at -30 dBFS for 3 s: the floor rises; no turn.
        let hiss = noise(0.05, 150, &mut seed);
        let events = run(&mut ep, &hiss);
        assert!(
            events
                .iter()
                .all(|e| *e == VadEvent::SpeechStarted || *e == VadEvent::Discarded),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, VadEvent::SpeechEnded { .. })),
            "{events:?}"
        );
        assert!(
            ep.noise_floor_dbfs() > -40.0,
            "floor {}",
            ep.noise_floor_dbfs()
        );
        // Speech over the hiss is still found.
        let mut speech: Vec<_> = tone(0.4, 40, &mut seed);
        for (f, n) in speech.iter_mut().zip(noise(0.05, 40, &mut seed)) {
            for (s, x) in f.iter_mut().zip(n) {
                *s = s.saturating_add(x);
            }
        }
        let mut input = speech;
        input.extend(noise(0.05, 50, &mut seed));
        let events = run(&mut ep, &input);
        assert!(events.iter().any(|e| matches!(e, VadEvent::SpeechEnded { speech, .. } if *speech >= Duration::from_millis(700))), "{events:?}");
        // A 100 ms click: started maybe, but discarded.
        let mut ep = Endpointer::new(VadConfig::default());
        let mut input = tone(0.5, 5, &mut seed);
        input.extend(vec![[0i16; FRAME_SAMPLES]; 50]);
        let events = run(&mut ep, &input);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, VadEvent::SpeechEnded { .. })),
            "{events:?}"
        );
    }

    #[test]
    fn long_talk_is_cut_at_the_maximum_and_flush_keeps_words() {
        let mut seed = 4;
        let cfg = VadConfig {
            max_utterance: Duration::from_secs(2),
            ..VadConfig::default()
        };
        let mut ep = Endpointer::new(cfg);
        let mut input = vec![[0i16; FRAME_SAMPLES]; 10];
        input.extend(tone(0.3, 120, &mut seed));
        let events = run(&mut ep, &input);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, VadEvent::SpeechEnded { .. })),
            "{events:?}"
        );
        let mut ep = Endpointer::new(VadConfig::default());
        let mut input = vec![[0i16; FRAME_SAMPLES]; 10];
        input.extend(tone(0.3, 30, &mut seed));
        run(&mut ep, &input);
        assert!(ep.in_speech());
        assert!(matches!(ep.flush(), Some(VadEvent::SpeechEnded { .. })));
        assert!(!ep.in_speech());
    }
}
