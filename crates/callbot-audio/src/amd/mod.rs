//! Answering-machine detection on the called party's first seconds of 8 kHz audio, for legs
//! whose carrier does not detect machines itself: a tone detector (a voicemail beep, a fax
//! machine's calling or answer tone) and the greeting's shape (a person says a word or two and
//! waits; a recorded greeting talks on). Sans-IO: 20 ms frames in, a verdict out; the audio is
//! the clock.

use crate::vad::{FRAME_SAMPLES, level_dbfs};
use std::time::Duration;

const FRAME_MS: u32 = 20;
/// Beeps are looked for from 350 Hz to 2,100 Hz (Goertzel bins are 50 Hz apart on a 160-sample
/// frame at 8 kHz).
const LOW_BIN: usize = 7;
const HIGH_BIN: usize = 42;
const BINS: usize = HIGH_BIN - LOW_BIN + 1;
/// Fax tones: CNG (1,100 Hz, from the calling machine) and CED (2,100 Hz, from an answering one).
const FAX_BINS: [usize; 2] = [22, 42];
/// The share of a frame's energy in one bin above which the frame is a pure tone (voiced speech
/// spreads its energy over its harmonics).
const PURE: f32 = 0.7;

/// The detector's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmdConfig {
    /// A frame this loud (dBFS) is sound (speech or tone).
    pub sound_dbfs: f32,
    /// Speech this long without a pause of `after_greeting_silence` is a recorded greeting.
    pub greeting: Duration,
    /// A pause this long after a short greeting means a person waiting for an answer.
    pub after_greeting_silence: Duration,
    /// A tone this long is a beep.
    pub beep: Duration,
    /// A fax tone this long is a fax machine.
    pub fax: Duration,
    /// Nothing decided by then (from the first sound, or from the answer if all is quiet): unknown.
    pub decide_within: Duration,
    /// After a machine greeting: this much silence is its end when no beep comes.
    pub end_silence: Duration,
    /// After a machine greeting: give up waiting for its end.
    pub end_within: Duration,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            sound_dbfs: -40.0,
            greeting: Duration::from_millis(2200),
            after_greeting_silence: Duration::from_millis(800),
            beep: Duration::from_millis(160),
            fax: Duration::from_millis(400),
            decide_within: Duration::from_secs(5),
            end_silence: Duration::from_millis(2500),
            end_within: Duration::from_secs(30),
        }
    }
}

/// What answered, as the carriers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Human,
    /// A machine's greeting has started (its end is reported next).
    MachineStart,
    /// The greeting ended with a beep: a message may be left now.
    MachineEndBeep,
    /// The greeting ended in silence, without a beep.
    MachineEndSilence,
    /// The greeting never ended within the limit.
    MachineEndOther,
    Fax,
    Unknown,
}

impl Verdict {
    /// Every verdict but `human` and `unknown` is a machine of some kind.
    pub fn is_machine(self) -> bool {
        !matches!(self, Verdict::Human | Verdict::Unknown)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first verdict.
    Listening,
    /// A machine greeting is playing: waiting for its beep or its end.
    Greeting,
    Done,
}

/// A pure tone held over consecutive frames.
#[derive(Debug, Default, Clone, Copy)]
struct Tone {
    bin: usize,
    frames: u32,
}

/// The detector of one call. `push` each 20 ms frame of the called party from the answer on;
/// it returns each verdict once (`MachineStart` is followed by one `MachineEnd…`) and nothing
/// after the last.
#[derive(Debug)]
pub struct MachineDetector {
    cfg: AmdConfig,
    phase: Phase,
    frames: u32,
    first_sound: Option<u32>,
    /// Sound since the greeting began, and the silence run now.
    sound: u32,
    silent: u32,
    tone: Tone,
    /// The last tone that lasted long enough to be a beep (reported when it stops).
    beeping: bool,
}

fn frames(d: Duration) -> u32 {
    (d.as_millis() as u32).div_ceil(FRAME_MS).max(1)
}

/// The strongest Goertzel bin between `LOW_BIN` and `HIGH_BIN` and the share of the frame's
/// energy it holds (1.0 for a pure tone at a bin's frequency).
fn dominant_bin(frame: &[i16; FRAME_SAMPLES]) -> (usize, f32) {
    let energy: f32 = frame.iter().map(|&s| f32::from(s) * f32::from(s)).sum();
    if energy <= 0.0 {
        return (0, 0.0);
    }
    static COEFFS: std::sync::LazyLock<[f32; BINS]> = std::sync::LazyLock::new(|| {
        std::array::from_fn(|i| {
            2.0 * (2.0 * std::f32::consts::PI * (LOW_BIN + i) as f32 / FRAME_SAMPLES as f32).cos()
        })
    });
    let mut best = (0, 0.0f32);
    for (i, &coeff) in COEFFS.iter().enumerate() {
        let k = LOW_BIN + i;
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in frame {
            let s0 = f32::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let share = 2.0 * power / (FRAME_SAMPLES as f32 * energy);
        if share > best.1 {
            best = (k, share);
        }
    }
    best
}

impl MachineDetector {
    pub fn new(cfg: AmdConfig) -> Self {
        Self {
            cfg,
            phase: Phase::Listening,
            frames: 0,
            first_sound: None,
            sound: 0,
            silent: 0,
            tone: Tone::default(),
            beeping: false,
        }
    }

    /// Audio heard so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(u64::from(self.frames * FRAME_MS))
    }

    /// True once the last verdict has been given.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Feeds one frame of the called party.
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<Verdict> {
        if self.phase == Phase::Done {
            return None;
        }
        self.frames += 1;
        let loud = level_dbfs(frame) > self.cfg.sound_dbfs;
        let tone_ended = self.track_tone(frame, loud);
        if loud {
            // A pause inside the greeting counts as greeting; the silence before it does not.
            let pause = if self.first_sound.is_some() {
                self.silent.min(frames(self.cfg.after_greeting_silence))
            } else {
                0
            };
            self.first_sound.get_or_insert(self.frames);
            self.sound += 1 + pause;
            self.silent = 0;
        } else {
            self.silent += 1;
        }
        match self.phase {
            Phase::Listening => self.listening(),
            Phase::Greeting => self.greeting(tone_ended),
            Phase::Done => None,
        }
    }

    /// Follows a pure tone across frames; true on the first frame after a beep-long tone.
    fn track_tone(&mut self, frame: &[i16; FRAME_SAMPLES], loud: bool) -> bool {
        let (bin, share) = if loud { dominant_bin(frame) } else { (0, 0.0) };
        let pure = share > PURE;
        if pure && self.tone.frames > 0 && bin.abs_diff(self.tone.bin) <= 1 {
            self.tone.frames += 1;
        } else if pure {
            self.tone = Tone { bin, frames: 1 };
        } else {
            let ended = self.beeping;
            self.tone = Tone::default();
            self.beeping = false;
            return ended;
        }
        if self.tone.frames >= frames(self.cfg.beep) {
            self.beeping = true;
        }
        false
    }

    fn finish(&mut self, v: Verdict) -> Option<Verdict> {
        self.phase = if v == Verdict::MachineStart {
            Phase::Greeting
        } else {
            Phase::Done
        };
        Some(v)
    }

    fn listening(&mut self) -> Option<Verdict> {
        let fax_tone = FAX_BINS.iter().any(|b| b.abs_diff(self.tone.bin) <= 1);
        if fax_tone && self.tone.frames >= frames(self.cfg.fax) {
            return self.finish(Verdict::Fax);
        }
        if self.beeping && !fax_tone {
            // A beep before any verdict: a machine whose greeting is the beep itself.
            return self.finish(Verdict::MachineStart);
        }
        let Some(first) = self.first_sound else {
            return (self.frames >= frames(self.cfg.decide_within))
                .then(|| self.finish(Verdict::Unknown))
                .flatten();
        };
        // The greeting counts its sound and its short pauses, not the silence after it.
        if self.sound - self.sound.min(self.tone.frames) >= frames(self.cfg.greeting) {
            return self.finish(Verdict::MachineStart);
        }
        if self.silent >= frames(self.cfg.after_greeting_silence) {
            return self.finish(Verdict::Human);
        }
        (self.frames - first >= frames(self.cfg.decide_within))
            .then(|| self.finish(Verdict::Unknown))
            .flatten()
    }

    fn greeting(&mut self, tone_ended: bool) -> Option<Verdict> {
        if tone_ended {
            return self.finish(Verdict::MachineEndBeep);
        }
        if self.silent >= frames(self.cfg.end_silence) && !self.beeping {
            return self.finish(Verdict::MachineEndSilence);
        }
        (self.frames >= frames(self.cfg.end_within))
            .then(|| self.finish(Verdict::MachineEndOther))
            .flatten()
    }
}

#[cfg(test)]
mod tests;
