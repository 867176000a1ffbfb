//! ElevenLabs text to speech over HTTP streaming: `POST /v1/text-to-speech/{voice_id}/stream?
//! output_format=ulaw_8000` (`xi-api-key`), so the audio is already phone audio and plays from
//! the first bytes. Voice names resolve to ids through the premade table, then the account's
//! `GET /v1/voices` (cached for ten minutes); a raw voice id is used as it is.

use super::{AudioStream, Speech, SpeechError, TextToSpeech, request_error, send};
use async_trait::async_trait;
use callbot_core::domain::voice_catalog::elevenlabs_premade;
use callbot_core::settings::ElevenLabsSettings;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const VOICE_LIST_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct ElevenLabs {
    http: reqwest::Client,
    settings: ElevenLabsSettings,
    /// Lower-case name → voice id from the account's list, and when it was fetched.
    voices: Mutex<Option<(Instant, HashMap<String, String>)>>,
    /// Deadline for a whole request when used without streaming, and for the voice list.
    timeout: Duration,
}

#[derive(Deserialize)]
struct VoiceList {
    voices: Vec<VoiceEntry>,
}

#[derive(Deserialize)]
struct VoiceEntry {
    voice_id: String,
    name: String,
}

/// ElevenLabs voice ids are 20 letters and digits with capitals; names are words.
fn is_voice_id(name: &str) -> bool {
    name.len() == 20
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().any(|b| b.is_ascii_uppercase())
}

impl ElevenLabs {
    pub fn new(http: reqwest::Client, settings: ElevenLabsSettings, timeout: Duration) -> Self {
        Self {
            http,
            settings,
            voices: Mutex::new(None),
            timeout,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.settings.base_url.as_str().trim_end_matches('/')
        )
    }

    /// The voice id for `name`.
    pub async fn voice_id(&self, name: &str) -> Result<String, SpeechError> {
        if is_voice_id(name) {
            return Ok(name.to_owned());
        }
        if let Some(id) = elevenlabs_premade(name) {
            return Ok(id.to_owned());
        }
        let key = name.to_ascii_lowercase();
        {
            let cache = self.voices.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, map)) = cache.as_ref()
                && at.elapsed() < VOICE_LIST_TTL
            {
                return map.get(&key).cloned().ok_or_else(|| unknown(name));
            }
        }
        let req = self
            .http
            .get(self.endpoint("/v1/voices"))
            .header("xi-api-key", self.settings.api_key.expose_secret())
            .timeout(self.timeout);
        let body = send("elevenlabs", "listing voices", req)
            .await?
            .bytes()
            .await
            .map_err(|e| request_error("listing voices", &e))?;
        let list: VoiceList = serde_json::from_slice(&body)
            .map_err(|e| SpeechError::Engine(format!("elevenlabs voice list: {e}")))?;
        let map: HashMap<String, String> = list
            .voices
            .into_iter()
            .map(|v| (v.name.to_ascii_lowercase(), v.voice_id))
            .collect();
        let found = map.get(&key).cloned();
        *self.voices.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), map));
        found.ok_or_else(|| unknown(name))
    }
}

fn unknown(name: &str) -> SpeechError {
    SpeechError::Engine(format!(
        "elevenlabs has no voice named {name:?} in this account"
    ))
}

#[async_trait]
impl TextToSpeech for ElevenLabs {
    fn name(&self) -> &'static str {
        "elevenlabs"
    }

    async fn synthesize(&self, text: &str, voice: &str) -> Result<Speech, SpeechError> {
        super::whole(self, text, voice, self.timeout).await
    }

    async fn stream(&self, text: &str, voice: &str) -> Result<AudioStream, SpeechError> {
        let id = self.voice_id(voice).await?;
        let req = self
            .http
            .post(self.endpoint(&format!("/v1/text-to-speech/{id}/stream")))
            .query(&[("output_format", "ulaw_8000")])
            .header("xi-api-key", self.settings.api_key.expose_secret())
            .header("accept", "audio/basic")
            .json(&serde_json::json!({
                "text": text,
                "model_id": self.settings.model,
            }));
        let resp = send("elevenlabs", "elevenlabs", req).await?;
        Ok(resp
            .bytes_stream()
            .map(|r| r.map_err(|e| request_error("elevenlabs stream", &e)))
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::is_voice_id;

    #[test]
    fn ids_and_names() {
        assert!(is_voice_id("JBFqnCBsd6RMkjVDRZzb"));
        assert!(!is_voice_id("emma"));
        assert!(!is_voice_id("abcdefghijklmnopqrst"));
    }
}
