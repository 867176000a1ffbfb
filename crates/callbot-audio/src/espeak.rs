//! espeak-ng as a subprocess (a GPL program, run, not linked): text → 22,050 Hz WAV on stdout →
//! PCM. 10-30 ms per phrase. Safe to cancel (the process is killed when the future is dropped).

use tokio::process::Command;

/// Why espeak-ng gave no audio.
#[derive(Debug, thiserror::Error)]
pub enum EspeakError {
    /// The program is not installed or does not run.
    #[error("{0}")]
    Unavailable(String),
    /// It ran and failed (or the voice name is not one).
    #[error("{0}")]
    Engine(String),
}

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
    pub async fn available(&self) -> Result<(), EspeakError> {
        match Command::new(&self.program).arg("--version").output().await {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(EspeakError::Unavailable(format!(
                "{} --version: {}",
                self.program, o.status
            ))),
            Err(e) => Err(EspeakError::Unavailable(format!(
                "{}: {e} (install espeak-ng)",
                self.program
            ))),
        }
    }

    /// Speech for `text` in `voice` (`en-us` when empty): PCM and its rate.
    pub async fn pcm(&self, text: &str, voice: &str) -> Result<(Vec<i16>, u32), EspeakError> {
        let voice = if voice.is_empty() { "en-us" } else { voice };
        if !voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+')
        {
            return Err(EspeakError::Engine(format!("bad espeak voice {voice:?}")));
        }
        let out = Command::new(&self.program)
            .args(["-v", voice, "-s", &self.rate.to_string(), "--stdout", "--"])
            .arg(text)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| EspeakError::Unavailable(format!("{}: {e}", self.program)))?;
        if !out.status.success() {
            return Err(EspeakError::Engine(format!(
                "espeak-ng exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        crate::wav::read_mono(&out.stdout).map_err(|e| EspeakError::Engine(e.to_string()))
    }
}
