//! Instant stand-in engines for benchmarks and tests that measure the platform, not the speech
//! engines: the recogniser reports the utterance's length, the synthesiser returns a tone of a
//! length proportional to the text. Both answer at once and never block.

use super::{Speech, SpeechError, SpeechToText, TextToSpeech, Transcript};
use crate::audio::g711;
use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct InstantStt;

#[async_trait]
impl SpeechToText for InstantStt {
    fn name(&self) -> &str {
        "instant"
    }
    async fn transcribe(&self, pcm: Vec<i16>) -> Result<Transcript, SpeechError> {
        Ok(Transcript {
            text: format!("utterance of {} ms", pcm.len() / 8),
            engine: Duration::ZERO,
        })
    }
}

#[derive(Debug, Clone)]
pub struct InstantTts {
    /// Audio per character of text.
    pub per_char: Duration,
}

impl Default for InstantTts {
    fn default() -> Self {
        Self {
            per_char: Duration::from_millis(60),
        }
    }
}

#[async_trait]
impl TextToSpeech for InstantTts {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn synthesize(&self, text: &str, _voice: &str) -> Result<Speech, SpeechError> {
        let samples = (self.per_char.as_micros() as usize * text.chars().count() * 8) / 1000;
        let ulaw = (0..samples)
            .map(|i| {
                let t = i as f32 / 8000.0;
                g711::encode_sample(
                    ((2.0 * std::f32::consts::PI * 300.0 * t).sin() * 8000.0) as i16,
                )
            })
            .collect();
        Ok(Speech {
            ulaw,
            engine: Duration::ZERO,
        })
    }
}

/// A vowel-like sound (two harmonics at 180 and 720 Hz) as 8 kHz μ-law: the endpointer takes it
/// for speech, the instant recogniser measures its length. Used by benchmarks and tests.
pub fn voiced_tone(ms: u64) -> Vec<u8> {
    (0..(ms * 8) as usize)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v = (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                + 0.5 * (2.0 * std::f32::consts::PI * 720.0 * t).sin();
            g711::encode_sample((v * 9000.0) as i16)
        })
        .collect()
}
