//! `/voices`: what this deployment can speak, and the check every bot's voice passes when it is
//! saved (a provider that is not configured, or a name a fixed list does not have, is refused).

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Tenant;
use axum::Json;
use axum::extract::State;
use callbot_core::domain::voice_catalog::{
    ELEVENLABS_PREMADE, LOCAL_VOICES, OPENAI_VOICES, POLLY_VOICES, VoiceAvailability,
};
use callbot_core::domain::{Voice, VoiceProvider};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A raw `voice` field as a voice this deployment speaks (`400 invalid_voice`,
/// `voice_unavailable`, `unknown_voice` otherwise).
pub(crate) fn parse_voice(state: &AppState, raw: &str) -> Result<Voice, ApiError> {
    let voice = Voice::parse(raw).map_err(|e| ApiError::field("voice", e))?;
    state
        .settings
        .providers
        .voices()
        .check(&voice)
        .map_err(|e| ApiError::field("voice", e))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VoiceEntry {
    /// The value for a bot's `voice`.
    #[schema(example = "polly:Joanna")]
    voice: String,
    provider: &'static str,
    name: String,
    /// Language, where the provider states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'static str>,
    /// Whether this deployment can speak it now.
    configured: bool,
    /// The setting that would make it available, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    requires: Option<&'static str>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VoiceList {
    voices: Vec<VoiceEntry>,
    /// Notes on names not listed: any espeak-ng voice for `local`, any voice of the ElevenLabs
    /// account (name or id).
    notes: Vec<&'static str>,
}

/// What voices this deployment can speak.
#[utoipa::path(get, path = "/voices", tag = "bots", security(("api_key" = [])),
    responses((status = 200, body = VoiceList), (status = 401, body = ErrorBody)))]
pub async fn list_voices(
    State(state): State<AppState>,
    Tenant(_tenant): Tenant,
) -> ApiResult<Json<VoiceList>> {
    let avail = state.settings.providers.voices();
    let entry = |p: VoiceProvider, name: &str, language: Option<&'static str>| {
        let configured = avail.configured(p);
        VoiceEntry {
            voice: format!("{}:{name}", p.as_str()),
            provider: p.as_str(),
            name: name.to_owned(),
            language,
            configured,
            requires: (!configured).then(|| VoiceAvailability::missing_setting(p)),
        }
    };
    let mut voices = Vec::new();
    voices.extend(
        LOCAL_VOICES
            .iter()
            .map(|n| entry(VoiceProvider::Local, n, None)),
    );
    voices.extend(
        ELEVENLABS_PREMADE
            .iter()
            .map(|(n, _)| entry(VoiceProvider::ElevenLabs, n, None)),
    );
    voices.extend(
        POLLY_VOICES
            .iter()
            .map(|(n, lang, _)| entry(VoiceProvider::Polly, n, Some(lang))),
    );
    voices.extend(
        OPENAI_VOICES
            .iter()
            .map(|n| entry(VoiceProvider::OpenAi, n, None)),
    );
    Ok(Json(VoiceList {
        voices,
        notes: vec![
            "local: any espeak-ng voice name (espeak-ng --voices lists them)",
            "elevenlabs: any voice of the account, by name or voice id",
        ],
    }))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_voices))
}
