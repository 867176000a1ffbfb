//! OpenAI's audio endpoints (and servers that copy them): `POST /audio/speech` with
//! `response_format: pcm` (24 kHz s16le, streamed, resampled to the phone line as it arrives) and
//! `POST /audio/transcriptions` with one WAV upload per utterance.

use super::{
    AudioStream, Cue, Speech, SpeechError, SpeechToText, TextToSpeech, Transcript, request_error,
    send,
};
use crate::audio::pcm_stream::PcmToPhone;
use crate::audio::{PHONE_RATE, wav};
use async_trait::async_trait;
use callbot_core::settings::OpenAiAudioSettings;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};

/// OpenAI's `pcm` output rate.
const PCM_RATE: u32 = 24_000;

#[derive(Debug, Clone)]
pub struct OpenAiAudio {
    http: reqwest::Client,
    settings: OpenAiAudioSettings,
    /// Deadline for a whole transcription, or a whole synthesis when not streamed.
    timeout: Duration,
}

impl OpenAiAudio {
    pub fn new(http: reqwest::Client, settings: OpenAiAudioSettings, timeout: Duration) -> Self {
        Self {
            http,
            settings,
            timeout,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.settings.base_url.as_str().trim_end_matches('/')
        )
    }
}

#[async_trait]
impl TextToSpeech for OpenAiAudio {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn synthesize(&self, text: &str, voice: &str) -> Result<Speech, SpeechError> {
        super::whole(self, text, voice, self.timeout).await
    }

    async fn stream(&self, text: &str, voice: &str) -> Result<AudioStream, SpeechError> {
        let req = self
            .http
            .post(self.endpoint("/audio/speech"))
            .bearer_auth(self.settings.api_key.expose_secret())
            .json(&serde_json::json!({
                "model": self.settings.tts_model,
                "input": text,
                "voice": voice,
                "response_format": "pcm",
            }));
        let resp = send("openai", "openai speech", req).await?;
        // Convert as bytes arrive; the end flushes the resampler's last samples.
        let body = resp.bytes_stream();
        let state = (body, PcmToPhone::new(PCM_RATE), false);
        let stream = futures_util::stream::unfold(state, |(mut body, mut conv, done)| async move {
            if done {
                return None;
            }
            loop {
                let mut out = Vec::new();
                match body.next().await {
                    Some(Ok(chunk)) => {
                        conv.push(&chunk, &mut out);
                        if !out.is_empty() {
                            return Some((Ok(bytes::Bytes::from(out)), (body, conv, false)));
                        }
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(request_error("openai speech stream", &e)),
                            (body, conv, true),
                        ));
                    }
                    None => {
                        conv.finish(&mut out);
                        return Some((Ok(bytes::Bytes::from(out)), (body, conv, true)));
                    }
                }
            }
        });
        Ok(stream.boxed())
    }
}

#[async_trait]
impl SpeechToText for OpenAiAudio {
    fn name(&self) -> &str {
        "openai"
    }

    async fn transcribe(&self, pcm: Vec<i16>, cue: &Cue) -> Result<Transcript, SpeechError> {
        let started = Instant::now();
        let wav = tokio::task::spawn_blocking(move || wav::write_mono(&pcm, PHONE_RATE))
            .await
            .map_err(|e| SpeechError::Engine(e.to_string()))?;
        let file = reqwest::multipart::Part::bytes(wav)
            .file_name("utterance.wav")
            .mime_str("audio/wav")
            .map_err(|e| SpeechError::Engine(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.settings.stt_model.clone())
            .text("language", "en")
            .text("response_format", "json");
        if !cue.prompt().is_empty() {
            // The conversation so far steers spelling (names, digits): OpenAI's `prompt`.
            form = form.text("prompt", cue.prompt().to_owned());
        }
        let req = self
            .http
            .post(self.endpoint("/audio/transcriptions"))
            .bearer_auth(self.settings.api_key.expose_secret())
            .multipart(form)
            .timeout(self.timeout);
        let body = send("openai", "openai transcription", req)
            .await?
            .bytes()
            .await
            .map_err(|e| request_error("openai transcription", &e))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| SpeechError::Engine(format!("openai transcription answer: {e}")))?;
        let text = v["text"]
            .as_str()
            .ok_or_else(|| SpeechError::Engine("openai transcription answer has no text".into()))?;
        Ok(Transcript {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            engine: started.elapsed(),
        })
    }
}
