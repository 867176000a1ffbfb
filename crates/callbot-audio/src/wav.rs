//! WAV in and out with hound: reading synthesiser output (any rate, 16-bit mono) and writing call
//! recordings (8 kHz 16-bit stereo: caller left, bot right).

use std::io::Cursor;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("WAV: {0}")]
    Format(String),
}

/// Decodes a 16-bit PCM WAV (mono, or the first channel). Returns samples and rate.
pub fn read_mono(bytes: &[u8]) -> Result<(Vec<i16>, u32), WavError> {
    // A WAV streamed to a pipe cannot know its length: espeak-ng declares 0x7FFFF000 bytes of data
    // (others 0xFFFFFFFF). Fix the header up to what actually arrived.
    let fixed;
    let declared = bytes
        .get(40..44)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let bytes = if bytes.len() >= 44
        && &bytes[0..4] == b"RIFF"
        && &bytes[36..40] == b"data"
        && declared.is_some_and(|d| d > bytes.len() - 44)
    {
        let mut b = bytes.to_vec();
        let data = (b.len() - 44) as u32;
        b[4..8].copy_from_slice(&(data + 36).to_le_bytes());
        b[40..44].copy_from_slice(&data.to_le_bytes());
        fixed = b;
        &fixed[..]
    } else {
        bytes
    };
    let reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| WavError::Format(e.to_string()))?;
    let spec = reader.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(WavError::Format(format!("need 16-bit PCM, got {spec:?}")));
    }
    let channels = spec.channels.max(1) as usize;
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .step_by(channels)
        .collect::<Result<_, _>>()
        .map_err(|e| WavError::Format(e.to_string()))?;
    Ok((samples, spec.sample_rate))
}

/// Encodes two equally long 8 kHz tracks as a stereo WAV.
pub fn write_stereo(left: &[i16], right: &[i16], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + left.len().max(right.len()) * 4));
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        let n = left.len().max(right.len());
        for i in 0..n {
            let _ = w.write_sample(left.get(i).copied().unwrap_or(0));
            let _ = w.write_sample(right.get(i).copied().unwrap_or(0));
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// Encodes one track as a mono 16-bit WAV (uploads to recognisers that want a container).
pub fn write_mono(pcm: &[i16], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for &s in pcm {
            let _ = w.write_sample(s);
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// Decodes a stereo WAV into (left, right, rate).
pub fn read_stereo(bytes: &[u8]) -> Result<(Vec<i16>, Vec<i16>, u32), WavError> {
    let reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| WavError::Format(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 2 {
        return Err(WavError::Format(format!(
            "expected 2 channels, got {}",
            spec.channels
        )));
    }
    let all: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| WavError::Format(e.to_string()))?;
    let (l, r) = all.chunks_exact(2).map(|c| (c[0], c[1])).unzip();
    Ok((l, r, spec.sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_round_trip() {
        let wav = write_stereo(&[1, 2, 3], &[-1, -2], 8000);
        let (l, r, rate) = read_stereo(&wav).unwrap();
        assert_eq!((l, r, rate), (vec![1, 2, 3], vec![-1, -2, 0], 8000));
        let (mono, rate) = read_mono(&wav).unwrap();
        assert_eq!((mono, rate), (vec![1, 2, 3], 8000));
        assert!(read_mono(b"garbage").is_err());
    }

    #[test]
    fn streamed_wav_with_unknown_length_is_read() {
        let mut wav = write_stereo(&[5, 6], &[7, 8], 8000);
        wav[4..8].copy_from_slice(&[0xFF; 4]);
        wav[40..44].copy_from_slice(&[0xFF; 4]);
        let (mono, _) = read_mono(&wav).unwrap();
        assert_eq!(mono, vec![5, 6]);
    }
}
