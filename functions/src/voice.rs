//! Twilio's webhooks: `POST /voice` answers a call with TwiML that connects the media stream
//! (with a signed stream token), and `POST /voice/status` moves call records along as Twilio
//! reports progress. Both accept only requests carrying a valid `X-Twilio-Signature`.

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbot_core::apikey::KeyHash;
use callbot_core::domain::{BotId, BotStatus, CallSid, CallStatus};
use callbot_core::store::leases::{self, LeaseDecision};
use callbot_core::store::{
    Bot, CallRecord, StatusOutcome, StatusUpdate, StoreError, TicketPurpose,
};
use callbot_core::time_fmt;
use callbot_core::twilio::twiml::{self, Verb};
use callbot_core::twilio::{signature, stream_token};
use secrecy::ExposeSecret;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(answer))
        .routes(routes!(status_callback))
}

/// What Twilio posts to `/voice` (the fields the platform reads; Twilio sends more, which are
/// signed and ignored). For the API description only: requests are read as raw form pairs.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct VoiceForm {
    /// The call's SID.
    #[schema(
        pattern = "^CA[0-9a-fA-F]{32}$",
        example = "CA0123456789abcdef0123456789abcdef"
    )]
    CallSid: String,
    AccountSid: Option<String>,
    /// The caller's number.
    From: Option<String>,
    /// The number called (the bot's).
    To: Option<String>,
    CallStatus: Option<String>,
    Direction: Option<String>,
}

/// What Twilio posts to `/voice/status` (the fields the platform reads).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct StatusForm {
    #[schema(
        pattern = "^CA[0-9a-fA-F]{32}$",
        example = "CA0123456789abcdef0123456789abcdef"
    )]
    CallSid: String,
    #[schema(value_type = String, pattern = "^(queued|initiated|ringing|in-progress|completed|busy|failed|no-answer|canceled)$")]
    CallStatus: String,
    /// Orders the callbacks of one call.
    #[schema(pattern = "^[0-9]{1,15}$")]
    SequenceNumber: Option<String>,
    /// Seconds, in the final callback.
    CallDuration: Option<String>,
}

/// A form-encoded Twilio webhook whose signature checked out against the public URL.
#[derive(Debug)]
pub struct TwilioForm {
    pub params: Vec<(String, String)>,
    /// The query string Twilio requested, as parsed pairs.
    pub query: Vec<(String, String)>,
}

impl TwilioForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for TwilioForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.limits.max_body_bytes;
        let sig = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let form = signature::is_form(
            req.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        // Twilio signed the public URL; behind a proxy or load balancer our own view differs, so
        // the URL is rebuilt from PUBLIC_BASE_URL plus the path and query exactly as received.
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let url = format!("{}{path_and_query}", state.settings.public_base());
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit })?;
        let Some(sig) = sig else {
            return Err(ApiError::Forbidden("missing X-Twilio-Signature".into()));
        };
        if !form {
            return Err(ApiError::UnsupportedMediaType(
                "Twilio webhooks are application/x-www-form-urlencoded".into(),
            ));
        }
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::bad_request("invalid_form", format!("form body: {e}")))?;
        let token = state.twilio.auth_token.expose_secret().as_bytes();
        if !signature::verify_form(token, &url, &params, &sig) {
            tracing::warn!(%url, "refused a webhook with a bad X-Twilio-Signature");
            return Err(ApiError::Forbidden("invalid X-Twilio-Signature".into()));
        }
        Ok(TwilioForm { params, query })
    }
}

fn twiml_response(verbs: &[Verb]) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        twiml::render(verbs),
    )
        .into_response()
}

fn refuse(text: &str) -> Response {
    twiml_response(&[Verb::Say(text.to_owned()), Verb::Hangup])
}

/// True when call engines report load and every one is saturated (a store that cannot answer
/// sheds nothing).
async fn all_saturated(state: &AppState) -> bool {
    let now = leases::now_ms();
    let (Ok(engines), Ok(saturated)) = (
        state.store.count_leases(leases::ENGINES_SCOPE, now).await,
        state.store.count_leases(leases::SATURATED_SCOPE, now).await,
    ) else {
        return false;
    };
    engines > 0 && saturated >= engines
}

/// The bot a `/voice` request is for: the outbound call's bot, or the one answering the dialled
/// number (which must be the `bot_id` in the URL).
async fn find_bot(
    state: &AppState,
    bot_id: &BotId,
    existing: Option<&CallRecord>,
    to: &str,
) -> Result<Option<Bot>, StoreError> {
    if let Some(call) = existing {
        return state.store.get_bot(&call.tenant, &call.bot_id).await;
    }
    let Ok(number) = callbot_core::domain::PhoneNumber::parse(to) else {
        return Ok(None);
    };
    Ok(state
        .store
        .bot_by_number(&number)
        .await?
        .filter(|b| &b.id == bot_id))
}

/// Answer a call (Twilio's VoiceUrl).
///
/// Returns TwiML: `<Connect><Stream>` to the stream service with a signed, short-lived token,
/// then `<Hangup/>`; or `<Say>` and `<Hangup/>` when the bot is unknown, paused or over its daily
/// call quota. Refuses requests without a valid `X-Twilio-Signature` (403).
#[utoipa::path(post, path = "/voice", tag = "twilio",
    params(("bot_id" = Option<String>, Query, description = "The bot whose number was called (without it, or for an unknown bot, the caller hears that the number is not in service)"),
           ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the URL and the form")),
    request_body(content = VoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML", content_type = "text/xml"),
              (status = 400, body = ErrorBody, description = "A missing or malformed CallSid, or a body that is not a form"),
              (status = 403, body = ErrorBody, description = "Bad or missing X-Twilio-Signature"),
              (status = 413, body = ErrorBody, description = "Body over the size limit"),
              (status = 415, body = ErrorBody, description = "Not application/x-www-form-urlencoded")))]
pub async fn answer(State(state): State<AppState>, form: TwilioForm) -> Result<Response, ApiError> {
    let Some(sid) = form.get("CallSid").and_then(|s| CallSid::parse(s).ok()) else {
        return Err(ApiError::bad_request(
            "invalid_call_sid",
            "CallSid is missing or malformed",
        ));
    };
    let Some(bot_id) = form.query("bot_id").and_then(|b| BotId::parse(b).ok()) else {
        return Ok(refuse("This number is not in service."));
    };
    let existing = state.store.call_by_sid(&sid).await?;
    let to = form.get("To").unwrap_or("");
    let Some(bot) = find_bot(&state, &bot_id, existing.as_ref(), to).await? else {
        tracing::info!(call_sid = %sid, %bot_id, "call for an unknown or deleted bot");
        return Ok(refuse("This number is not in service."));
    };
    if bot.status == BotStatus::Paused {
        return Ok(refuse("This line is not taking calls right now. Goodbye."));
    }
    if existing.is_none() && all_saturated(&state).await {
        tracing::warn!(call_sid = %sid, "every call engine is saturated; shedding a new call");
        return Ok(refuse(
            "We are receiving more calls than we can take right now. Please try again in a few minutes. Goodbye.",
        ));
    }
    if existing.is_none() {
        // Refused before answering, with a spoken line, never after.
        let limit = state.settings.limits.max_calls_per_tenant;
        let now_ms = leases::now_ms();
        let place = state
            .store
            .acquire_lease(
                &leases::calls_scope(&bot.tenant),
                sid.as_str(),
                limit,
                now_ms + leases::LEASE_TTL_MS,
                now_ms,
            )
            .await?;
        if place == LeaseDecision::Full {
            tracing::info!(call_sid = %sid, tenant = %bot.tenant, limit, "concurrent call limit reached");
            return Ok(refuse(
                "All our lines are busy right now. Please call again in a few minutes. Goodbye.",
            ));
        }
        let now = time_fmt::now();
        let limit = state.settings.limits.calls_per_bot_per_day;
        match state
            .store
            .count_call(&bot.id, &time_fmt::day_key(now), limit)
            .await
        {
            Ok(()) => {}
            Err(StoreError::QuotaExceeded { .. }) => {
                tracing::info!(call_sid = %sid, bot_id = %bot.id, "daily call quota reached");
                state
                    .store
                    .release_lease(&leases::calls_scope(&bot.tenant), sid.as_str())
                    .await?;
                return Ok(refuse(
                    "This line has reached its call limit for today. Please call again tomorrow.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let from = form.get("From").unwrap_or("");
        let record = CallRecord::inbound(sid.clone(), &bot.tenant, &bot.id, from, to, now);
        // `false`: Twilio retried this webhook and the call is recorded already; answer again.
        state.store.create_call(&record, None).await?;
    }
    let token = stream_token::issue(
        state.twilio.auth_token.expose_secret().as_bytes(),
        &bot.id,
        &sid,
        time_fmt::now().unix_timestamp(),
    );
    // Single use: the stream service consumes it when the stream starts.
    let expires_ms =
        u64::try_from((time_fmt::now().unix_timestamp() + stream_token::TOKEN_TTL_SECS) * 1000)
            .unwrap_or(0);
    state
        .store
        .put_ticket(
            &KeyHash::of(&token),
            &bot.tenant,
            &TicketPurpose::Stream,
            expires_ms,
        )
        .await?;
    tracing::info!(call_sid = %sid, bot_id = %bot.id, "answering call");
    Ok(twiml_response(&[
        Verb::ConnectStream {
            url: format!("{}/stream/{}", state.settings.stream_base(), bot.id),
            parameters: vec![
                ("token".into(), token),
                ("bot_id".into(), bot.id.to_string()),
                ("call_sid".into(), sid.to_string()),
            ],
        },
        Verb::Hangup,
    ]))
}

/// Call-progress callback (Twilio's StatusCallback).
///
/// Moves the call record forward (queued → ringing → in-progress → a final state). Callbacks
/// that arrive late (lower `SequenceNumber`) or would move a finished call are ignored.
#[utoipa::path(post, path = "/voice/status", tag = "twilio",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the URL and the form")),
    request_body(content = StatusForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204, description = "Recorded (or ignored as stale)"),
              (status = 400, body = ErrorBody, description = "A missing or malformed CallSid, CallStatus or SequenceNumber"),
              (status = 403, body = ErrorBody, description = "Bad or missing X-Twilio-Signature"),
              (status = 413, body = ErrorBody, description = "Body over the size limit"),
              (status = 415, body = ErrorBody, description = "Not application/x-www-form-urlencoded")))]
pub async fn status_callback(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, ApiError> {
    let sid = form
        .get("CallSid")
        .and_then(|s| CallSid::parse(s).ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_call_sid", "CallSid is missing or malformed")
        })?;
    let status = CallStatus::parse(form.get("CallStatus").unwrap_or(""))
        .map_err(|e| ApiError::bad_field("CallStatus", e.code, e.message))?;
    let seq = match form.get("SequenceNumber") {
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            ApiError::bad_field("SequenceNumber", "invalid_sequence", "not an integer")
        })?),
        None => None,
    };
    let update = StatusUpdate {
        status,
        seq,
        at: time_fmt::now(),
        duration_secs: form.get("CallDuration").and_then(|d| d.parse().ok()),
    };
    // An outbound call's first callbacks can overtake the response that tells us its sid; give
    // the record a moment to appear before giving up on the callback.
    for attempt in 0..6 {
        match state.store.update_call_status(&sid, &update).await? {
            StatusOutcome::Applied(call) => {
                tracing::info!(call_sid = %sid, status = %call.status, "call status");
                if call.status.is_terminal() {
                    // The call's place in its tenant's limit, whoever else holds the call.
                    state
                        .store
                        .release_lease(&leases::calls_scope(&call.tenant), sid.as_str())
                        .await?;
                }
                return Ok(StatusCode::NO_CONTENT);
            }
            StatusOutcome::Ignored(call) => {
                tracing::debug!(call_sid = %sid, reported = %status, current = %call.status, "stale status callback ignored");
                return Ok(StatusCode::NO_CONTENT);
            }
            StatusOutcome::UnknownCall if attempt < 5 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            StatusOutcome::UnknownCall => {}
        }
    }
    tracing::warn!(call_sid = %sid, "status callback for an unknown call");
    Ok(StatusCode::NO_CONTENT)
}
