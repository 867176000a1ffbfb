//! Cloud speech providers: which voices can speak (ElevenLabs, Polly, OpenAI) and which recogniser
//! hears the caller (`CALLBOT_STT=local|deepgram|openai`), with their keys, endpoints, models and
//! deadlines. The offline engines (whisper.cpp, espeak-ng) are always there as the fallback.

use super::{SettingsError, err, truthy};
use crate::domain::{Voice, VoiceAvailability, VoiceProvider};
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ElevenLabsSettings {
    pub api_key: SecretString,
    /// `https://api.elevenlabs.io` unless `ELEVENLABS_BASE_URL` says otherwise.
    pub base_url: url::Url,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct OpenAiAudioSettings {
    pub api_key: SecretString,
    /// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`).
    pub base_url: url::Url,
    pub tts_model: String,
    pub stt_model: String,
}

#[derive(Debug, Clone)]
pub struct PollySettings {
    /// `AWS_ENDPOINT_URL_POLLY` (a local stand-in); otherwise the region's endpoint.
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeepgramSettings {
    pub api_key: SecretString,
    /// `wss://api.deepgram.com` unless `DEEPGRAM_BASE_URL` says otherwise.
    pub base_url: url::Url,
    pub model: String,
    pub language: String,
}

/// Which recogniser hears callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttChoice {
    /// whisper.cpp in process, with partial transcripts while the caller speaks.
    Local,
    /// Deepgram live streaming, one WebSocket per call.
    Deepgram,
    /// OpenAI `/audio/transcriptions`, one upload per utterance.
    OpenAi,
}

impl SttChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            SttChoice::Local => "local",
            SttChoice::Deepgram => "deepgram",
            SttChoice::OpenAi => "openai",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub elevenlabs: Option<ElevenLabsSettings>,
    pub openai: Option<OpenAiAudioSettings>,
    pub polly: Option<PollySettings>,
    pub deepgram: Option<DeepgramSettings>,
    pub stt: SttChoice,
    /// A cloud voice's first audio must arrive within this (and no gap between chunks may be
    /// longer), else the sentence is spoken by the local voice.
    pub tts_timeout: Duration,
    /// A cloud recogniser's answer for an utterance must arrive within this after it ended.
    pub stt_timeout: Duration,
    /// Voice providers another service is configured for (`CALLBOT_VOICE_PROVIDERS`): the API
    /// functions accept their voices though they hold no provider keys themselves.
    pub declared: Vec<VoiceProvider>,
}

impl ProviderSettings {
    pub fn voices(&self) -> VoiceAvailability {
        let declared = |p| self.declared.contains(&p);
        VoiceAvailability {
            elevenlabs: self.elevenlabs.is_some() || declared(VoiceProvider::ElevenLabs),
            polly: self.polly.is_some() || declared(VoiceProvider::Polly),
            openai: self.openai.is_some() || declared(VoiceProvider::OpenAi),
        }
    }

    /// Nothing but the offline engines.
    pub fn local() -> Self {
        ProviderSettings {
            elevenlabs: None,
            openai: None,
            polly: None,
            deepgram: None,
            stt: SttChoice::Local,
            tts_timeout: Duration::from_millis(2000),
            stt_timeout: Duration::from_millis(3000),
            declared: Vec::new(),
        }
    }

    pub(super) fn from_get<'a>(
        get: &dyn Fn(&str) -> Option<&'a String>,
        ms: &dyn Fn(&'static str, u64) -> Result<Duration, SettingsError>,
    ) -> Result<Self, SettingsError> {
        let url = |name: &'static str, default: &str| -> Result<url::Url, SettingsError> {
            let raw = get(name).map(String::as_str).unwrap_or(default);
            url::Url::parse(raw).map_err(|e| err(name, format!("{raw:?}: {e}")))
        };
        let secret = |name: &str| get(name).map(|k| SecretString::from(k.trim().to_owned()));
        let elevenlabs = match secret("ELEVENLABS_API_KEY") {
            Some(api_key) => Some(ElevenLabsSettings {
                api_key,
                base_url: url("ELEVENLABS_BASE_URL", "https://api.elevenlabs.io")?,
                model: get("CALLBOT_ELEVENLABS_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "eleven_flash_v2_5".into()),
            }),
            None => None,
        };
        let openai = match secret("OPENAI_API_KEY") {
            Some(api_key) => Some(OpenAiAudioSettings {
                api_key,
                base_url: url("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
                tts_model: get("CALLBOT_OPENAI_TTS_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "gpt-4o-mini-tts".into()),
                stt_model: get("CALLBOT_OPENAI_STT_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "gpt-4o-mini-transcribe".into()),
            }),
            None => None,
        };
        let polly_on = match get("CALLBOT_POLLY").map(|s| s.trim().to_ascii_lowercase()) {
            Some(v) if v == "off" || v == "0" || v == "false" => false,
            Some(v) => {
                if !truthy(Some(&v)) {
                    return Err(err("CALLBOT_POLLY", format!("{v:?} is not on or off")));
                }
                true
            }
            None => get("AWS_ENDPOINT_URL_POLLY").is_some(),
        };
        let polly = polly_on.then(|| PollySettings {
            endpoint_url: get("AWS_ENDPOINT_URL_POLLY").cloned(),
        });
        let deepgram = match secret("DEEPGRAM_API_KEY") {
            Some(api_key) => Some(DeepgramSettings {
                api_key,
                base_url: url("DEEPGRAM_BASE_URL", "wss://api.deepgram.com")?,
                model: get("CALLBOT_DEEPGRAM_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "nova-3".into()),
                language: get("CALLBOT_DEEPGRAM_LANGUAGE")
                    .cloned()
                    .unwrap_or_else(|| "en-US".into()),
            }),
            None => None,
        };
        if let Some(d) = &deepgram
            && !matches!(d.base_url.scheme(), "ws" | "wss")
        {
            return Err(err(
                "DEEPGRAM_BASE_URL",
                format!("{} is not a ws:// or wss:// URL", d.base_url),
            ));
        }
        let stt = match get("CALLBOT_STT")
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => SttChoice::Local,
            Some("deepgram") => {
                if deepgram.is_none() {
                    return Err(err(
                        "DEEPGRAM_API_KEY",
                        "required with CALLBOT_STT=deepgram",
                    ));
                }
                SttChoice::Deepgram
            }
            Some("openai") => {
                if openai.is_none() {
                    return Err(err("OPENAI_API_KEY", "required with CALLBOT_STT=openai"));
                }
                SttChoice::OpenAi
            }
            Some(other) => {
                return Err(err(
                    "CALLBOT_STT",
                    format!("{other:?} is not local, deepgram or openai"),
                ));
            }
        };
        let mut declared = Vec::new();
        for name in get("CALLBOT_VOICE_PROVIDERS")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let p = Voice::parse(&format!("{name}:x"))
                .map_err(|e| err("CALLBOT_VOICE_PROVIDERS", e.message))?
                .provider();
            declared.push(p);
        }
        Ok(ProviderSettings {
            declared,
            elevenlabs,
            openai,
            polly,
            deepgram,
            stt,
            tts_timeout: ms("CALLBOT_TTS_TIMEOUT_MS", 2000)?,
            stt_timeout: ms("CALLBOT_STT_TIMEOUT_MS", 3000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::tests::vars;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn providers_from_variables() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.providers.stt, SttChoice::Local);
        assert_eq!(s.providers.voices(), VoiceAvailability::default());
        let s = Settings::from_vars(&vars(&[
            ("ELEVENLABS_API_KEY", "xi-secret"),
            ("DEEPGRAM_API_KEY", "dg-secret"),
            ("CALLBOT_STT", "deepgram"),
            ("AWS_ENDPOINT_URL_POLLY", "http://127.0.0.1:9"),
        ]))
        .unwrap();
        assert_eq!(s.providers.stt, SttChoice::Deepgram);
        assert!(s.providers.voices().elevenlabs && s.providers.voices().polly);
        assert!(!s.providers.voices().openai);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("xi-secret") && !dbg.contains("dg-secret"));
        let e = Settings::from_vars(&vars(&[("CALLBOT_STT", "deepgram")])).unwrap_err();
        assert_eq!(e.name, "DEEPGRAM_API_KEY");
        assert!(Settings::from_vars(&vars(&[("CALLBOT_STT", "azure")])).is_err());
        assert!(Settings::from_vars(&vars(&[("CALLBOT_POLLY", "maybe")])).is_err());
        let off = Settings::from_vars(&vars(&[
            ("CALLBOT_POLLY", "off"),
            ("AWS_ENDPOINT_URL_POLLY", "http://127.0.0.1:9"),
        ]))
        .unwrap();
        assert!(off.providers.polly.is_none());
        let api = Settings::from_vars(&vars(&[("CALLBOT_VOICE_PROVIDERS", "elevenlabs, polly")]))
            .unwrap();
        assert!(api.providers.voices().elevenlabs && api.providers.voices().polly);
        assert!(
            api.providers.elevenlabs.is_none(),
            "declared, not configured here"
        );
        assert!(Settings::from_vars(&vars(&[("CALLBOT_VOICE_PROVIDERS", "azure")])).is_err());
    }
}
