//! espeak-ng as a subprocess (GPL program, not linked): text → 22,050 Hz WAV on stdout →
//! 8 kHz μ-law. 10-30 ms per phrase.

use super::{Speech, SpeechError, TextToSpeech};
use crate::audio;
use async_trait::async_trait;
use std::time::Instant;
use tokio::process::Command;

#[derive(Debug, Clone)]
pub struct Espeak {
    program: String,
    /// Words per minute.
    pub rate: u32,
}

impl Espeak {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            rate: 165,
        }
    }

    /// Whether the program runs here.
    pub async fn available(&self) -> Result<(), SpeechError> {
        match Command::new(&self.program).arg("--version").output().await {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(SpeechError::Unavailable(format!(
                "{} --version: {}",
                self.program, o.status
            ))),
            Err(e) => Err(SpeechError::Unavailable(format!(
                "{}: {e} (install espeak-ng)",
                self.program
            ))),
        }
    }

    /// Raw synthesis: PCM and its rate.
    pub async fn pcm(&self, text: &str, voice: &str) -> Result<(Vec<i16>, u32), SpeechError> {
        let voice = if voice.is_empty() { "en-us" } else { voice };
        if !voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+')
        {
            return Err(SpeechError::Engine(format!("bad espeak voice {voice:?}")));
        }
        let out = Command::new(&self.program)
            .args(["-v", voice, "-s", &self.rate.to_string(), "--stdout", "--"])
            .arg(text)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| SpeechError::Unavailable(format!("{}: {e}", self.program)))?;
        if !out.status.success() {
            return Err(SpeechError::Engine(format!(
                "espeak-ng exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        audio::wav::read_mono(&out.stdout).map_err(|e| SpeechError::Engine(e.to_string()))
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
