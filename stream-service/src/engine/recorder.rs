//! The call recording: caller and bot tracks as 8 kHz μ-law, aligned on the caller's frame clock
//! (one inbound frame = 20 ms of call time). Bot audio is placed where the carrier plays it; what
//! a `clear` discarded is taken back out. Written as a stereo WAV (caller left, bot right).

use crate::audio::{FRAME_BYTES, g711, wav};

#[derive(Debug, Default)]
pub struct Recorder {
    caller: Vec<u8>,
    bot: Vec<u8>,
}

impl Recorder {
    pub fn caller_frame(&mut self, frame: &[u8]) {
        self.caller.extend_from_slice(frame);
    }

    /// Bot audio sent now plays after whatever is still queued, or now if nothing is.
    pub fn bot_frame(&mut self, frame: &[u8; FRAME_BYTES]) {
        if self.bot.len() < self.caller.len() {
            self.bot.resize(self.caller.len(), g711::SILENCE);
        }
        self.bot.extend_from_slice(frame);
    }

    /// `clear`: audio queued beyond the present was never played.
    pub fn bot_cleared(&mut self) {
        if self.bot.len() > self.caller.len() {
            self.bot.truncate(self.caller.len());
        }
    }

    pub fn caller_ms(&self) -> u64 {
        self.caller.len() as u64 / 8
    }

    pub fn is_empty(&self) -> bool {
        self.caller.is_empty() && self.bot.is_empty()
    }

    pub fn wav(&self) -> Vec<u8> {
        let n = self.caller.len().max(self.bot.len());
        let decode = |t: &[u8]| -> Vec<i16> {
            let mut v: Vec<i16> = t.iter().map(|&b| g711::decode_sample(b)).collect();
            v.resize(n, 0);
            v
        };
        wav::write_stereo(&decode(&self.caller), &decode(&self.bot), 8000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_align_and_clear_removes_unplayed_audio() {
        let mut r = Recorder::default();
        for _ in 0..10 {
            r.caller_frame(&[0xFF; FRAME_BYTES]);
        }
        for _ in 0..5 {
            r.bot_frame(&[0x80; FRAME_BYTES]);
        }
        r.caller_frame(&[0xFF; FRAME_BYTES]);
        r.bot_cleared();
        let (l, right, rate) = wav::read_stereo(&r.wav()).unwrap();
        assert_eq!(rate, 8000);
        assert_eq!(l.len(), 11 * FRAME_BYTES);
        // Bot audio starts at 200 ms (after the caller's first 10 frames) and only the frame
        // played before the clear remains.
        assert!(right[..10 * FRAME_BYTES].iter().all(|&s| s == 0));
        assert!(right[10 * FRAME_BYTES..].iter().all(|&s| s == 32124));
    }
}
