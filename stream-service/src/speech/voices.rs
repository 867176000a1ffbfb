//! Which synthesiser speaks a bot's voice: the configured cloud providers (ElevenLabs, Polly,
//! OpenAI) by the voice's provider, and the local engine for `local:` voices and as the fallback
//! when a provider fails. Built once from the settings; cheap to clone.

use super::{TextToSpeech, elevenlabs::ElevenLabs, openai_audio::OpenAiAudio, polly::Polly};
use callbot_core::domain::VoiceProvider;
use callbot_core::settings::{AwsSettings, ProviderSettings};
use std::sync::Arc;
use std::time::Duration;

/// The local voice that speaks a sentence a provider could not.
pub const FALLBACK_VOICE: &str = "en-us";

#[derive(Debug, Clone)]
pub struct Voices {
    pub local: Arc<dyn TextToSpeech>,
    elevenlabs: Option<Arc<dyn TextToSpeech>>,
    polly: Option<Arc<dyn TextToSpeech>>,
    openai: Option<Arc<dyn TextToSpeech>>,
    /// A provider's first audio, and every gap after it, must come within this.
    pub timeout: Duration,
}

impl Voices {
    /// Only the local engine.
    pub fn local(local: Arc<dyn TextToSpeech>) -> Self {
        Self {
            local,
            elevenlabs: None,
            polly: None,
            openai: None,
            timeout: Duration::from_secs(2),
        }
    }

    /// The providers the settings configure, next to `local`.
    pub async fn from_settings(
        providers: &ProviderSettings,
        aws: &AwsSettings,
        local: Arc<dyn TextToSpeech>,
        http: reqwest::Client,
    ) -> Self {
        // A whole sentence must be done well within a turn; the streaming deadline is per gap.
        let whole = providers.tts_timeout * 5;
        let elevenlabs = providers
            .elevenlabs
            .clone()
            .map(|s| Arc::new(ElevenLabs::new(http.clone(), s, whole)) as Arc<dyn TextToSpeech>);
        let openai = providers
            .openai
            .clone()
            .map(|s| Arc::new(OpenAiAudio::new(http.clone(), s, whole)) as Arc<dyn TextToSpeech>);
        let polly = match &providers.polly {
            Some(p) => Some(Arc::new(Polly::new(aws, p, whole).await) as Arc<dyn TextToSpeech>),
            None => None,
        };
        Self {
            local,
            elevenlabs,
            polly,
            openai,
            timeout: providers.tts_timeout,
        }
    }

    /// The engine for `provider`'s voices (`None`: not configured here).
    pub fn engine(&self, provider: VoiceProvider) -> Option<&Arc<dyn TextToSpeech>> {
        match provider {
            VoiceProvider::Local => Some(&self.local),
            VoiceProvider::ElevenLabs => self.elevenlabs.as_ref(),
            VoiceProvider::Polly => self.polly.as_ref(),
            VoiceProvider::OpenAi => self.openai.as_ref(),
        }
    }
}
