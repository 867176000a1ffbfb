//! `POST /outbound-call`, as in the Starlis API: the request and the bot's texts are checked
//! (every placeholder must have a value), the end user's rate slot, a place among the tenant's
//! calls and the bot's daily quota are taken, the carrier dials (asking for machine detection),
//! and the call is recorded with its idempotency key; whatever fails gives back what was taken.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Tenant};
use crate::idempotency::{self, Idempotency};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use callbot_core::call_texts::CallTexts;
use callbot_core::domain::template::Missing;
use callbot_core::domain::{
    BotId, BotStatus, CallSid, FirstMessage, Goal, PhoneNumber, TenantId, UserLabel, Variables,
};
use callbot_core::store::leases;
use callbot_core::store::{
    Bot, CallRecord, IdempotencyRecord, LeaseDecision, RateDecision, StoreError,
};
use callbot_core::telephony::{MachineDetection, OutboundCall};
use callbot_core::time_fmt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const IDEMPOTENCY_SCOPE: &str = "POST /outbound-call";

/// Body of `POST /outbound-call`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundCallRequest {
    /// Your label for the end user this call is for (rate limits apply per user): 1-128
    /// characters, no control characters or `#`.
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f#]*[^\\s\\x00-\\x1f\\x7f-\\x9f#][^\\x00-\\x1f\\x7f-\\x9f#]*$",
        max_length = 128
    )]
    user_id: Option<String>,
    /// Who to call, E.164.
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        pattern = "^\\s*\\+[ .()-]*[1-9]([ .()-]*[0-9]){6,14}[ .()-]*\\s*$"
    )]
    number: Option<String>,
    /// Replaces the bot's goal for this call (1-2,000 characters; needs a language model).
    #[serde(default)]
    #[schema(
        max_length = 2000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    prompt: Option<String>,
    /// Replaces the bot's greeting for this call (1-500 characters).
    #[serde(default)]
    #[schema(
        max_length = 500,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    first_message: Option<String>,
    /// The bot that calls (its number is the caller id). Default: your newest active bot.
    #[serde(default)]
    #[schema(pattern = "^bot_[0-9a-f]{32}$")]
    bot_id: Option<String>,
    /// Values for the `{{name}}` placeholders of the bot's goal, context and first message and
    /// of this call's `prompt` and `first_message` (over the bot's own `variables`). A
    /// placeholder left without a value refuses the call (400 `missing_variables`). Sent to the
    /// webhook and the model with every turn, and kept on the call record.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"name": "Ana", "time": "7 PM"}))]
    variables: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboundCallResponse {
    success: bool,
    message: String,
    #[serde(rename = "callSid")]
    call_sid: String,
}

/// `raw` parsed by `parse`, a failure named after `field`.
pub(crate) fn parsed<T>(
    field: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, callbot_core::ParseError>,
) -> ApiResult<Option<T>> {
    raw.map(|r| parse(r).map_err(|e| ApiError::field(field, e)))
        .transpose()
}

/// A call whose texts would keep a placeholder without a value is refused, naming them all.
pub(crate) fn missing_variables<T>(filled: Result<T, Missing>) -> ApiResult<T> {
    filled.map_err(|Missing(names)| {
        ApiError::bad_request(
            "missing_variables",
            format!(
                "variables: no value for {}: add {} to `variables` (of the call or the bot)",
                names
                    .iter()
                    .map(|n| format!("{{{{{n}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.len() == 1 { "it" } else { "them" }
            ),
        )
    })
}

/// The bot placing an outbound call: the named one, or the tenant's newest active bot.
async fn calling_bot(state: &AppState, tenant: &TenantId, bot_id: Option<&str>) -> ApiResult<Bot> {
    if let Some(raw) = bot_id {
        let id = BotId::parse(raw).map_err(|e| ApiError::field("bot_id", e))?;
        let bot = state
            .store
            .get_bot(tenant, &id)
            .await?
            .ok_or_else(|| ApiError::NotFound("Bot not found".into()))?;
        if bot.status == BotStatus::Paused {
            return Err(ApiError::Conflict {
                code: "bot_paused",
                message: "Bot is paused; resume it to place calls".into(),
            });
        }
        return Ok(bot);
    }
    let day = time_fmt::day_key(time_fmt::now());
    state
        .store
        .list_bots(tenant, &day)
        .await?
        .into_iter()
        .map(|b| b.bot)
        .find(|b| b.status == BotStatus::Active)
        .ok_or_else(|| ApiError::Conflict {
            code: "no_bot",
            message: "No active bot: create one with POST /bots first".into(),
        })
}

/// A request whose fields have been parsed.
struct Parsed {
    user: UserLabel,
    to: PhoneNumber,
    prompt: Option<Goal>,
    first_message: Option<FirstMessage>,
}

fn parse_request(state: &AppState, req: &OutboundCallRequest) -> ApiResult<Parsed> {
    let (Some(user_raw), Some(number_raw)) = (req.user_id.as_deref(), req.number.as_deref()) else {
        return Err(ApiError::bad_request(
            "missing_fields",
            "User ID and phone number are required",
        ));
    };
    let user = UserLabel::parse(user_raw).map_err(|e| ApiError::field("user_id", e))?;
    let to = PhoneNumber::parse(number_raw).map_err(|e| ApiError::field("number", e))?;
    let prompt = parsed("prompt", req.prompt.as_deref(), Goal::parse)?;
    if prompt.is_some() && !state.settings.llm.is_on() {
        // The request is fine; this deployment cannot honour it.
        return Err(ApiError::Conflict {
            code: "llm_unavailable",
            message: "prompt: a prompt needs a language model and this deployment has none (CALLBOT_LLM=off)".into(),
        });
    }
    let first_message = parsed(
        "first_message",
        req.first_message.as_deref(),
        FirstMessage::parse,
    )?;
    Ok(Parsed {
        user,
        to,
        prompt,
        first_message,
    })
}

/// What a call being placed holds: a place among the tenant's calls (under `holder`: a pending
/// token, then the call's sid) and one of the bot's calls for `day`.
struct Held {
    calls: String,
    holder: String,
    day: String,
}

fn too_many_calls(max_calls: u32) -> ApiError {
    ApiError::TooManyRequests {
        code: "too_many_calls",
        message: format!(
            "this account has {max_calls} calls in progress (CALLBOT_MAX_CALLS_PER_TENANT); try again when one ends"
        ),
        retry_after_secs: Some(30),
    }
}

/// Takes a place among the tenant's calls for `held.holder`; false when they are all taken.
async fn take_place(state: &AppState, held: &Held) -> ApiResult<bool> {
    let now_ms = leases::now_ms();
    let decision = state
        .store
        .acquire_lease(
            &held.calls,
            &held.holder,
            state.settings.limits.max_calls_per_tenant,
            now_ms + leases::LEASE_TTL_MS,
            now_ms,
        )
        .await?;
    Ok(decision != LeaseDecision::Full)
}

/// Takes the end user's rate slot, a place among the tenant's calls and the bot's quota.
async fn hold(
    state: &AppState,
    tenant: &TenantId,
    user: &UserLabel,
    bot: &Bot,
    now: OffsetDateTime,
) -> ApiResult<Held> {
    let limit = state.settings.limits.outbound_calls_per_user_per_minute;
    let scope = format!("outbound#{tenant}#{user}");
    if let RateDecision::Limited { retry_after_secs } = state
        .store
        .acquire_rate_slot(&scope, limit, 60, now)
        .await?
    {
        return Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "Too many calls for this user: at most {limit} per minute. Try again in {retry_after_secs} s."
            ),
            retry_after_secs: Some(retry_after_secs),
        });
    }
    hold_place(state, tenant, bot, now).await
}

/// Takes a place among the tenant's concurrent calls (held for the call once its sid is known)
/// and one of the bot's calls for today.
async fn hold_place(
    state: &AppState,
    tenant: &TenantId,
    bot: &Bot,
    now: OffsetDateTime,
) -> ApiResult<Held> {
    let held = Held {
        calls: leases::calls_scope(tenant),
        holder: format!("pending-{}", callbot_core::apikey::random_token("", 20)),
        day: time_fmt::day_key(now),
    };
    if !take_place(state, &held).await? {
        return Err(too_many_calls(state.settings.limits.max_calls_per_tenant));
    }
    if let Err(e) = state
        .store
        .count_call(
            &bot.id,
            &held.day,
            state.settings.limits.calls_per_bot_per_day,
        )
        .await
    {
        state.store.release_lease(&held.calls, &held.holder).await?;
        return Err(e.into());
    }
    Ok(held)
}

/// Places a call for a campaign row: the tenant's concurrent calls and the bot's daily quota
/// apply as to any call (not the per-user rate, which is for calls an API client starts); the
/// call is recorded with `variables`, and whatever fails gives back what was taken.
pub(crate) async fn place(
    state: &AppState,
    bot: &Bot,
    to: &PhoneNumber,
    variables: Variables,
    now: OffsetDateTime,
) -> ApiResult<CallSid> {
    let mut held = hold_place(state, &bot.tenant, bot, now).await?;
    let sid = dial(state, bot, to, &mut held).await?;
    let record = CallRecord {
        variables,
        ..CallRecord::outbound(
            sid.clone(),
            &bot.tenant,
            &bot.id,
            bot.number.as_str(),
            to.as_str(),
            now,
        )
    };
    if let Err(e) = state.store.create_call(&record, None).await {
        unrecorded(state, &sid).await;
        give_back(state, &bot.id, &held).await;
        return Err(e.into());
    }
    Ok(sid)
}

/// Nothing may run that we have no record of: ends a call just placed.
async fn unrecorded(state: &AppState, sid: &CallSid) {
    if let Err(e) = state.telephony.hangup_call(sid).await {
        tracing::error!(call_sid = %sid, error = %e, "could not end an unrecorded call");
    }
}

/// Gives back what `held` holds (best effort: the lease expires anyway).
async fn give_back(state: &AppState, bot: &BotId, held: &Held) {
    let _ = state.store.uncount_call(bot, &held.day).await;
    let _ = state.store.release_lease(&held.calls, &held.holder).await;
}

/// Asks the carrier to dial `to` from the bot's number; the held place passes to the call.
async fn dial(
    state: &AppState,
    bot: &Bot,
    to: &PhoneNumber,
    held: &mut Held,
) -> ApiResult<CallSid> {
    let placed = state
        .telephony
        .create_call(&OutboundCall {
            to: to.clone(),
            from: bot.number.clone(),
            answer_url: state.voice_url(&bot.id),
            status_callback: state.status_callback_url(),
            machine_detection: Some(MachineDetection {
                until_greeting_end: bot.options.voicemail.message().is_some(),
                callback: state.settings.amd_callback_url(),
            }),
        })
        .await;
    let sid = match placed {
        Ok(sid) => sid,
        Err(e) => {
            give_back(state, &bot.id, held).await;
            return Err(e.into());
        }
    };
    // The place passes from the pending holder to the call (a concurrent request may take it in
    // between: then the call is ended before it is answered).
    state.store.release_lease(&held.calls, &held.holder).await?;
    held.holder = sid.to_string();
    if !take_place(state, held).await? {
        let _ = state.telephony.hangup_call(&sid).await;
        let _ = state.store.uncount_call(&bot.id, &held.day).await;
        return Err(too_many_calls(state.settings.limits.max_calls_per_tenant));
    }
    Ok(sid)
}

/// Place an outbound call.
///
/// The bot calls `number` and talks with the callee like with any caller; `first_message` changes
/// its greeting for this call only. With `prompt` the call is a conversation the LLM leads, with
/// `prompt` as its instructions (whatever the bot's mode; 409 `llm_unavailable` without an LLM). At most 5 initiations per
/// `user_id` per minute (429 with `Retry-After`), and the bot's daily call quota applies.
/// Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/outbound-call", tag = "calls", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried request return the first answer")),
    request_body(content = OutboundCallRequest, example = json!({"user_id": "customer-42",
        "number": "+15551234567", "first_message": "Hi, this is Bella Vista confirming your table."})),
    responses((status = 200, body = OutboundCallResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "No active bot, a paused bot, or an Idempotency-Key used with another body"),
              (status = 429, body = ErrorBody, description = "Rate limit or quota; see Retry-After"),
              (status = 503, body = ErrorBody)))]
pub async fn outbound_call(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: ApiJson<OutboundCallRequest>,
) -> ApiResult<Response> {
    let req = body.value;
    let p = parse_request(&state, &req)?;
    let (idem_key, request_hash) =
        match idempotency::check(&state, &tenant, IDEMPOTENCY_SCOPE, &headers, &body.raw).await? {
            Idempotency::Replay(answer) => return Ok(answer),
            Idempotency::Fresh { key, request_hash } => (key, request_hash),
        };
    let bot = calling_bot(&state, &tenant, req.bot_id.as_deref()).await?;
    let now = time_fmt::now();
    let variables = req
        .variables
        .as_ref()
        .map(|v| Variables::parse(v, "variables"))
        .transpose()
        .map_err(|e| ApiError::field("variables", e))?
        .unwrap_or_default();
    missing_variables(
        CallTexts {
            bot: &bot,
            prompt: p.prompt.as_ref(),
            first_message: p.first_message.as_ref(),
            variables: &variables,
            other_party: p.to.as_str(),
        }
        .fill(now),
    )?;
    let mut held = hold(&state, &tenant, &p.user, &bot, now).await?;
    let sid = dial(&state, &bot, &p.to, &mut held).await?;
    let answer = OutboundCallResponse {
        success: true,
        message: "Call initiated".into(),
        call_sid: sid.to_string(),
    };
    let record = CallRecord {
        user: Some(p.user),
        prompt: p.prompt,
        first_message: p.first_message,
        variables,
        ..CallRecord::outbound(
            sid.clone(),
            &tenant,
            &bot.id,
            bot.number.as_str(),
            p.to.as_str(),
            now,
        )
    };
    let idem = idem_key.map(|key| IdempotencyRecord {
        tenant: tenant.clone(),
        scope: IDEMPOTENCY_SCOPE.to_owned(),
        key,
        request_hash: request_hash.clone(),
        status: 200,
        body: serde_json::to_string(&answer).unwrap_or_default(),
        created_at: now,
    });
    match state.store.create_call(&record, idem.as_ref()).await {
        Ok(_) => {
            tracing::info!(call_sid = %sid, bot_id = %bot.id, "outbound call initiated");
            Ok(Json(answer).into_response())
        }
        Err(err) => {
            unrecorded(&state, &sid).await;
            give_back(&state, &bot.id, &held).await;
            match (err, &idem) {
                (StoreError::IdempotencyKeyUsed, Some(rec)) => match state
                    .store
                    .get_idempotency(&tenant, IDEMPOTENCY_SCOPE, &rec.key)
                    .await?
                {
                    Some(existing) => idempotency::replay(&existing, &request_hash),
                    None => Err(StoreError::IdempotencyKeyUsed.into()),
                },
                (err, _) => Err(err.into()),
            }
        }
    }
}
