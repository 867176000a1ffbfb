//! callbot-audio: audio for the phone line — G.711 μ-law, resampling, VAD/endpointing,
//! answering-machine detection, 20 ms framing of outbound speech, WAV reading/writing and
//! espeak-ng synthesis. Shared by the call engine and the provider stand-ins (which must not
//! depend on the engine they test).

pub mod amd;
pub mod espeak;
pub mod g711;
pub mod pcm_stream;
pub mod resample;
pub mod vad;
pub mod wav;

/// Twilio's rate: 8 kHz mono.
pub const PHONE_RATE: u32 = 8000;
/// One 20 ms frame of μ-law: 160 bytes.
pub const FRAME_BYTES: usize = 160;

/// Splits 8 kHz μ-law into exact 20 ms frames; the last one is padded with silence.
pub fn frames(ulaw: &[u8]) -> impl Iterator<Item = [u8; FRAME_BYTES]> + '_ {
    ulaw.chunks(FRAME_BYTES).map(|c| {
        let mut f = [g711::SILENCE; FRAME_BYTES];
        f[..c.len()].copy_from_slice(c);
        f
    })
}

/// PCM at `rate` → 8 kHz μ-law.
pub fn to_phone(pcm: &[i16], rate: u32) -> Vec<u8> {
    let pcm8 = if rate == PHONE_RATE {
        pcm.to_vec()
    } else {
        resample::f32_to_i16(&resample::resample(
            &resample::i16_to_f32(pcm),
            rate,
            PHONE_RATE,
        ))
    };
    let mut out = Vec::with_capacity(pcm8.len());
    g711::encode(&pcm8, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_exactly_160_bytes_and_padded() {
        let ulaw = vec![0x10u8; 400];
        let f: Vec<_> = frames(&ulaw).collect();
        assert_eq!(f.len(), 3);
        assert!(f[2][..80].iter().all(|&b| b == 0x10));
        assert!(f[2][80..].iter().all(|&b| b == g711::SILENCE));
    }

    #[test]
    fn to_phone_resamples_and_encodes() {
        let pcm = vec![0i16; 22050];
        let out = to_phone(&pcm, 22050);
        assert_eq!(out.len(), 8000);
        assert!(out.iter().all(|&b| b == g711::SILENCE));
    }
}
