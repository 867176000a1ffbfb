//! One call in full — record, turns with their latency breakdown, transcript and a short-lived
//! recording link — plus the live-call endpoints of the Starlis API (`/call/lists`,
//! `/call/kill/{id}`). All stateless: what they need is in the store and at the carrier.

use crate::AppState;
use crate::calls::CallView;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Tenant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use callbot_core::domain::{CallSid, CallStatus, TenantId};
use callbot_core::recordings::{check_link, link_query, recording_key};
use callbot_core::store::{CallFilter, CallRecord, TurnRecord};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_call))
        .routes(routes!(get_recording))
        .routes(routes!(live_calls))
        .routes(routes!(kill_call))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TranscriptLine {
    /// `user` or `bot`.
    role: String,
    text: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    call: CallView,
    /// Turns in order, each with what was said and heard and where the time went.
    turns: Vec<TurnRecord>,
    /// The conversation as the caller experienced it.
    transcript: Vec<TranscriptLine>,
    /// Stereo WAV (caller left, bot right); the link expires (`CALLBOT_RECORDING_LINK_SECS`).
    recording_url: Option<String>,
    /// What the model made of the call once it ended (the bot's `analysis`): `summary`,
    /// `structured_data`, `success` (`{passed, reason}`), `errors` for the parts that failed.
    #[schema(value_type = Option<Object>)]
    analysis: Option<serde_json::Value>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn tenant_call(state: &AppState, tenant: &TenantId, sid: &str) -> ApiResult<CallRecord> {
    let not_found = || ApiError::NotFound("Call not found".into());
    let sid = CallSid::parse(sid).map_err(|_| not_found())?;
    state
        .store
        .get_call(tenant, &sid)
        .await?
        .ok_or_else(not_found)
}

/// Show one call with its turns, transcript and recording link.
#[utoipa::path(get, path = "/calls/{sid}", tag = "calls", security(("api_key" = [])),
    params(("sid" = String, Path, description = "Call sid (CA…)")),
    responses((status = 200, body = CallDetail), (status = 404, body = ErrorBody)))]
pub async fn get_call(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(sid): Path<String>,
) -> ApiResult<Json<CallDetail>> {
    let call = tenant_call(&state, &tenant, &sid).await?;
    Ok(Json(detail(&state, &call).await?))
}

/// A call's record with its turns, transcript, recording link and analysis.
pub async fn detail(state: &AppState, call: &CallRecord) -> ApiResult<CallDetail> {
    let tenant = &call.tenant;
    let turns = state.store.turns(tenant, &call.sid).await?;
    let mut transcript = Vec::new();
    for t in &turns {
        let user = match (t.user_text.is_empty(), t.dtmf.is_empty()) {
            (true, true) => None,
            (false, true) => Some(t.user_text.clone()),
            (true, false) => Some(format!("[pressed {}]", t.dtmf)),
            (false, false) => Some(format!("{} [pressed {}]", t.user_text, t.dtmf)),
        };
        if let Some(text) = user {
            transcript.push(TranscriptLine {
                role: "user".into(),
                text,
            });
        }
        if !t.bot_text.is_empty() {
            transcript.push(TranscriptLine {
                role: "bot".into(),
                text: t.bot_text.clone(),
            });
        }
    }
    let key = recording_key(tenant.as_str(), call.sid.as_str());
    let recording_url = match state.recordings.exists(&key).await {
        Ok(true) => {
            let expires = unix_now() + state.settings.calls.recording_link_ttl.as_secs();
            let q = link_query(
                state.twilio.auth_token.expose_secret().as_bytes(),
                call.sid.as_str(),
                expires,
            );
            Some(format!(
                "{}/calls/{}/recording?{q}",
                state.settings.public_base(),
                call.sid
            ))
        }
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(call_sid = %call.sid, error = %e, "checking the recording failed");
            None
        }
    };
    Ok(CallDetail {
        call: CallView::from(call),
        turns,
        transcript,
        recording_url,
        analysis: state.store.call_analysis(&call.sid).await?,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    expires: u64,
    sig: String,
}

/// A call's recording (stereo WAV), through the signed link from `GET /calls/{sid}`.
#[utoipa::path(get, path = "/calls/{sid}/recording", tag = "calls",
    params(("sid" = String, Path, description = "Call sid"), LinkQuery),
    responses((status = 200, description = "audio/wav", content_type = "audio/wav"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    let secret = state.twilio.auth_token.expose_secret().as_bytes().to_vec();
    if !check_link(&secret, &sid, q.expires, &q.sig, unix_now()) {
        return Err(ApiError::Forbidden(
            "recording link invalid or expired".into(),
        ));
    }
    let sid = CallSid::parse(&sid).map_err(|_| ApiError::NotFound("Recording not found".into()))?;
    let call = state
        .store
        .call_by_sid(&sid)
        .await?
        .ok_or_else(|| ApiError::NotFound("Recording not found".into()))?;
    let bytes = state
        .recordings
        .get(&recording_key(call.tenant.as_str(), sid.as_str()))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("Recording not found".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCallList {
    success: bool,
    calls: Vec<LiveCallEntry>,
}

/// A live call, with RustPBX's `id`, `call_type`, `created_at` and `option` beside ours.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCallEntry {
    /// The call sid (RustPBX's session id).
    id: String,
    /// `twilio`, `websocket` or `webrtc`.
    call_type: String,
    option: LiveCallOption,
    #[serde(flatten)]
    call: CallView,
}

/// RustPBX's CallOption, as far as it describes this call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCallOption {
    caller: String,
    callee: String,
}

impl From<&CallRecord> for LiveCallEntry {
    fn from(c: &CallRecord) -> Self {
        LiveCallEntry {
            id: c.sid.to_string(),
            call_type: c.channel.as_str().to_owned(),
            option: LiveCallOption {
                caller: c.from.clone(),
                callee: c.to.clone(),
            },
            call: CallView::from(c),
        }
    }
}

/// Calls of your tenant that are live now (ringing or in progress).
#[utoipa::path(get, path = "/call/lists", tag = "calls", security(("api_key" = [])),
    responses((status = 200, body = LiveCallList)))]
pub async fn live_calls(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<LiveCallList>> {
    let mut calls = Vec::new();
    for status in [
        CallStatus::InProgress,
        CallStatus::Ringing,
        CallStatus::Queued,
    ] {
        let filter = CallFilter {
            bot: None,
            status: Some(status),
        };
        let page = state.store.list_calls(&tenant, &filter, None, 100).await?;
        calls.extend(page.calls.iter().map(LiveCallEntry::from));
    }
    Ok(Json(LiveCallList {
        success: true,
        calls,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KillAnswer {
    success: bool,
    message: String,
}

/// End a live call now (the carrier hangs up; the engine stores the last words and the recording).
#[utoipa::path(post, path = "/call/kill/{id}", tag = "calls", security(("api_key" = [])),
    params(("id" = String, Path, description = "Call sid")),
    responses((status = 200, body = KillAnswer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn kill_call(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<KillAnswer>> {
    let call = tenant_call(&state, &tenant, &id).await?;
    if call.status.is_terminal() {
        return Err(ApiError::Conflict {
            code: "call_not_live",
            message: format!("call {} is {}", call.sid, call.status.as_str()),
        });
    }
    if call.channel.is_phone() {
        state.telephony.hangup_call(&call.sid).await?;
    } else if !state.live.as_ref().is_some_and(|l| l.kill(&call.sid)) {
        return Err(ApiError::Conflict {
            code: "call_not_reachable",
            message: format!(
                "call {} is a {} call held by a stream service; send it a hangup command on its socket",
                call.sid,
                call.channel.as_str()
            ),
        });
    }
    Ok(Json(KillAnswer {
        success: true,
        message: "Call killed".into(),
    }))
}
