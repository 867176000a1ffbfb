//! espeak-ng as the local synthesiser: the audio crate's subprocess adapter, its PCM taken to
//! 8 kHz μ-law off the runtime's threads.

use super::{Speech, SpeechError, TextToSpeech};
use crate::audio;
use crate::audio::espeak::EspeakError;
use async_trait::async_trait;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Espeak {
    inner: audio::espeak::Espeak,
}

impl From<EspeakError> for SpeechError {
    fn from(e: EspeakError) -> Self {
        match e {
            EspeakError::Unavailable(m) => SpeechError::Unavailable(m),
            EspeakError::Engine(m) => SpeechError::Engine(m),
        }
    }
}

impl Espeak {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            inner: audio::espeak::Espeak::new(program),
        }
    }

    /// Whether the program runs here.
    pub async fn available(&self) -> Result<(), SpeechError> {
        Ok(self.inner.available().await?)
    }

    /// Raw synthesis: PCM and its rate.
    pub async fn pcm(&self, text: &str, voice: &str) -> Result<(Vec<i16>, u32), SpeechError> {
        Ok(self.inner.pcm(text, voice).await?)
    }
}

#[async_trait]
impl TextToSpeech for Espeak {
    fn name(&self) -> &'static str {
        "espeak-ng"
    }

    async fn synthesize(&self, text: &str, voice: &str) -> Result<Speech, SpeechError> {
        let started = Instant::now();
        let (pcm, rate) = self.pcm(text, voice).await?;
        let ulaw = tokio::task::spawn_blocking(move || audio::to_phone(&pcm, rate))
            .await
            .map_err(|e| SpeechError::Engine(e.to_string()))?;
        Ok(Speech {
            ulaw,
            engine: started.elapsed(),
        })
    }
}
