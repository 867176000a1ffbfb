//! Sample-rate conversion for whole utterances with rubato's FFT resampler: caller audio 8 kHz →
//! 16 kHz for recognition, synthesised speech (e.g. 22,050 Hz) → 8 kHz for the phone. Runs off the
//! media path (on the speech workers), once per utterance or reply.

use rubato::{FftFixedIn, Resampler};

/// Resamples mono `input` from `from` Hz to `to` Hz. The output has `len * to / from` samples
/// (rounded), aligned with the input (the resampler's delay is removed).
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let expected = (input.len() as u64 * to as u64).div_ceil(from as u64) as usize;
    let Ok(mut r) = FftFixedIn::<f32>::new(from as usize, to as usize, 1024, 2, 1) else {
        return linear(input, from, to);
    };
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(expected + delay + 2048);
    let mut pos = 0;
    let mut buf = r.output_buffer_allocate(true);
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        match r.process_into_buffer(&[&input[pos..pos + n]], &mut buf, None) {
            Ok((_, written)) => out.extend_from_slice(&buf[0][..written]),
            Err(_) => return linear(input, from, to),
        }
        pos += n;
    }
    if pos < input.len() {
        match r.process_partial_into_buffer(Some(&[&input[pos..]]), &mut buf, None) {
            Ok((_, written)) => out.extend_from_slice(&buf[0][..written]),
            Err(_) => return linear(input, from, to),
        }
    }
    while out.len() < expected + delay {
        match r.process_partial_into_buffer(None::<&[&[f32]]>, &mut buf, None) {
            Ok((_, 0)) | Err(_) => break,
            Ok((_, written)) => out.extend_from_slice(&buf[0][..written]),
        }
    }
    let mut aligned: Vec<f32> = out.into_iter().skip(delay).take(expected).collect();
    aligned.resize(expected, 0.0);
    aligned
}

/// Fallback for rates rubato refuses (never expected with the rates used here).
fn linear(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    let n = (input.len() as u64 * to as u64).div_ceil(from as u64) as usize;
    let step = from as f64 / to as f64;
    (0..n)
        .map(|i| {
            let x = i as f64 * step;
            let i0 = x.floor() as usize;
            let frac = (x - i0 as f64) as f32;
            let a = input.get(i0).copied().unwrap_or(0.0);
            let b = input.get(i0 + 1).copied().unwrap_or(a);
            a + (b - a) * frac
        })
        .collect()
}

pub fn i16_to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| s as f32 / 32768.0).collect()
}

pub fn f32_to_i16(pcm: &[f32]) -> Vec<i16> {
    pcm.iter()
        .map(|&s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Correlation with a reference tone at the output rate: a correct resampler keeps the tone.
    fn matches_tone(out: &[f32], freq: f32, rate: u32) -> f32 {
        let reference = tone(freq, rate, out.len() as f32 / rate as f32);
        let n = out.len().min(reference.len());
        let (mut dot, mut ea, mut eb) = (0f32, 0f32, 0f32);
        for i in rate as usize / 10..n - rate as usize / 10 {
            dot += out[i] * reference[i];
            ea += out[i] * out[i];
            eb += reference[i] * reference[i];
        }
        dot / (ea.sqrt() * eb.sqrt())
    }

    #[test]
    fn keeps_length_phase_and_tone() {
        for (from, to) in [(8000, 16000), (22050, 8000), (24000, 8000), (16000, 8000)] {
            let input = tone(440.0, from, 1.0);
            let out = resample(&input, from, to);
            assert_eq!(out.len(), to as usize, "{from}->{to}");
            let c = matches_tone(&out, 440.0, to);
            assert!(c > 0.99, "{from}->{to}: correlation {c}");
        }
    }

    #[test]
    fn removes_what_the_target_rate_cannot_carry() {
        // 6 kHz cannot exist at 8 kHz: it must be filtered out, not aliased to 2 kHz.
        let out = resample(&tone(6000.0, 22050, 1.0), 22050, 8000);
        let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
        assert!(rms < 0.02, "aliasing: rms {rms}");
    }

    /// Power of `freq` in `x` (Goertzel), relative to the signal's whole power.
    fn share_at(x: &[f32], freq: f32, rate: u32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * freq / rate as f32;
        let (mut s1, mut s2) = (0f32, 0f32);
        for &v in x {
            let s = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let total: f32 = x.iter().map(|v| v * v).sum::<f32>() * x.len() as f32 / 2.0;
        power / total
    }

    #[test]
    fn upsampling_the_phone_band_adds_no_images_above_4_khz() {
        // A 3 kHz tone at 8 kHz mirrors to 5 kHz if the upsampler does not filter.
        let out = resample(&tone(3000.0, 8000, 1.0), 8000, 16000);
        let body = &out[1600..out.len() - 1600];
        assert!(share_at(body, 3000.0, 16000) > 0.9);
        assert!(share_at(body, 5000.0, 16000) < 1e-3, "image at 5 kHz");
    }

    #[test]
    fn sample_conversion_saturates() {
        assert_eq!(f32_to_i16(&[2.0, -2.0, 0.0]), vec![32767, -32768, 0]);
        assert_eq!(i16_to_f32(&[-32768])[0], -1.0);
    }
}
