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
    fn name(&self) -> &str {
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
