//! Streamed synthesis to the phone line: s16le PCM arriving in chunks of any size (odd byte counts
//! included) at 8, 16 or 24 kHz becomes 8 kHz μ-law as it arrives. Other rates go through rubato's
//! FFT resampler in 20 ms blocks (its delay trimmed), so the first audio leaves after one block.

use super::{PHONE_RATE, g711};
use rubato::{FftFixedIn, Resampler};

/// Converts one reply's PCM stream; one per sentence.
pub struct PcmToPhone {
    rate: u32,
    /// An odd trailing byte of the last chunk.
    odd: Option<u8>,
    resampler: Option<Box<FftFixedIn<f32>>>,
    /// Input samples waiting for a whole resampler block.
    pending: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    samples: Vec<i16>,
}

impl std::fmt::Debug for PcmToPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcmToPhone")
            .field("rate", &self.rate)
            .finish()
    }
}

impl PcmToPhone {
    pub fn new(rate: u32) -> Self {
        let resampler = (rate != PHONE_RATE)
            .then(|| {
                FftFixedIn::<f32>::new(rate as usize, PHONE_RATE as usize, rate as usize / 50, 1, 1)
                    .ok()
            })
            .flatten()
            .map(Box::new);
        let skip = resampler.as_ref().map_or(0, |r| r.output_delay());
        let out_buf = resampler
            .as_ref()
            .map(|r| r.output_buffer_allocate(true))
            .unwrap_or_default();
        Self {
            rate,
            odd: None,
            resampler,
            pending: Vec::new(),
            out_buf,
            skip,
            samples: Vec::new(),
        }
    }

    /// Feeds bytes; appends whatever μ-law is ready to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.samples.clear();
        let mut rest = bytes;
        if let (Some(lo), Some(&hi)) = (self.odd, rest.first()) {
            self.samples.push(i16::from_le_bytes([lo, hi]));
            self.odd = None;
            rest = &rest[1..];
        }
        let mut pairs = rest.chunks_exact(2);
        self.samples
            .extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
        if let [b] = pairs.remainder() {
            self.odd = Some(*b);
        }
        self.convert(out, false);
    }

    /// The stream ended: flushes what the resampler holds.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.samples.clear();
        self.convert(out, true);
    }

    fn convert(&mut self, out: &mut Vec<u8>, last: bool) {
        let Some(r) = self.resampler.as_mut() else {
            if self.rate == PHONE_RATE {
                out.extend(self.samples.iter().map(|&s| g711::encode_sample(s)));
            }
            return;
        };
        self.pending
            .extend(self.samples.iter().map(|&s| s as f32 / 32768.0));
        let mut pos = 0;
        let emit = |buf: &[f32], skip: &mut usize, out: &mut Vec<u8>| {
            let from = (*skip).min(buf.len());
            *skip -= from;
            out.extend(buf[from..].iter().map(|&s| {
                g711::encode_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            }));
        };
        while self.pending.len() - pos >= r.input_frames_next() {
            let n = r.input_frames_next();
            if let Ok((_, written)) =
                r.process_into_buffer(&[&self.pending[pos..pos + n]], &mut self.out_buf, None)
            {
                emit(&self.out_buf[0][..written], &mut self.skip, out);
            }
            pos += n;
        }
        self.pending.drain(..pos);
        if last {
            let tail = std::mem::take(&mut self.pending);
            let expected_tail = tail.len() * PHONE_RATE as usize / self.rate as usize;
            let mut produced = 0;
            if let Ok((_, written)) =
                r.process_partial_into_buffer(Some(&[&tail[..]]), &mut self.out_buf, None)
            {
                produced += written.saturating_sub(self.skip);
                emit(&self.out_buf[0][..written], &mut self.skip, out);
            }
            // Push the delay line out so the last words are not cut.
            while produced < expected_tail {
                match r.process_partial_into_buffer(None::<&[&[f32]]>, &mut self.out_buf, None) {
                    Ok((_, 0)) | Err(_) => break,
                    Ok((_, written)) => {
                        let w = written.min(expected_tail - produced + self.skip);
                        produced += w.saturating_sub(self.skip);
                        emit(&self.out_buf[0][..w], &mut self.skip, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_bytes(rate: u32, ms: u32, freq: f32) -> Vec<u8> {
        (0..rate * ms / 1000)
            .flat_map(|i| {
                let v =
                    (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 12000.0;
                (v as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn any_chunking_gives_the_same_audio_of_the_right_length() {
        let pcm = tone_bytes(24_000, 1000, 440.0);
        let mut whole = Vec::new();
        let mut c = PcmToPhone::new(24_000);
        c.push(&pcm, &mut whole);
        c.finish(&mut whole);
        assert!((7900..=8000).contains(&whole.len()), "{}", whole.len());
        let mut pieces = Vec::new();
        let mut c = PcmToPhone::new(24_000);
        for chunk in pcm.chunks(333) {
            c.push(chunk, &mut pieces);
        }
        c.finish(&mut pieces);
        assert_eq!(whole, pieces, "odd-sized chunks change nothing");
        // A 440 Hz tone survives: decoded, it crosses zero about 880 times a second.
        let dec: Vec<i16> = whole.iter().map(|&b| g711::decode_sample(b)).collect();
        let crossings = dec.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((860..=900).contains(&crossings), "{crossings}");
    }

    #[test]
    fn eight_khz_is_encoded_directly() {
        let pcm = tone_bytes(8000, 100, 300.0);
        let mut out = Vec::new();
        let mut c = PcmToPhone::new(8000);
        c.push(&pcm[..11], &mut out);
        c.push(&pcm[11..], &mut out);
        c.finish(&mut out);
        let direct: Vec<u8> = pcm
            .chunks_exact(2)
            .map(|p| g711::encode_sample(i16::from_le_bytes([p[0], p[1]])))
            .collect();
        assert_eq!(out, direct);
    }
}
