//! Calls for API customers: place (`/outbound-call`), end (`/end-call`) and poll
//! (`/call-status`) outbound calls as in the Starlis API, and list/show call records (`/calls`).

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Tenant};
use crate::idempotency::{self, Idempotency};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use callbot_core::call_texts::CallTexts;
use callbot_core::domain::Variables;
use callbot_core::domain::template::Missing;
use callbot_core::domain::{
    BotId, BotStatus, CallSid, CallStatus, FirstMessage, Goal, PhoneNumber, TenantId, UserLabel,
};
use callbot_core::store::leases;
use callbot_core::store::{
    Bot, CallFilter, CallRecord, Cursor, IdempotencyRecord, LeaseDecision, RateDecision, StoreError,
};
use callbot_core::telephony::{MachineDetection, OutboundCall};
use callbot_core::time_fmt;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const IDEMPOTENCY_SCOPE: &str = "POST /outbound-call";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(outbound_call))
        .routes(routes!(end_call))
        .routes(routes!(call_status))
        .routes(routes!(list_calls))
}

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

/// Body of `POST /end-call`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndCallRequest {
    #[serde(default, rename = "callSid")]
    #[schema(required = true, nullable = false, pattern = "^CA[0-9a-fA-F]{32}$")]
    call_sid: Option<String>,
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f#]*[^\\s\\x00-\\x1f\\x7f-\\x9f#][^\\x00-\\x1f\\x7f-\\x9f#]*$",
        max_length = 128
    )]
    user_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndCallResponse {
    success: bool,
    message: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallStatusQuery {
    #[serde(rename = "callSid")]
    #[param(required = true, pattern = "^CA[0-9a-fA-F]{32}$")]
    call_sid: Option<String>,
    #[param(
        required = true,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f#]*[^\\s\\x00-\\x1f\\x7f-\\x9f#][^\\x00-\\x1f\\x7f-\\x9f#]*$",
        max_length = 128
    )]
    user_id: Option<String>,
}

/// `GET /call-status` answer (Starlis shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallStatusResponse {
    success: bool,
    #[serde(rename = "callSid")]
    call_sid: String,
    status: String,
    #[serde(rename = "startTime")]
    start_time: Option<String>,
    #[serde(rename = "endTime")]
    end_time: Option<String>,
    /// Seconds, once the call has ended.
    duration: Option<u32>,
}

/// A call record as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallView {
    sid: String,
    bot_id: String,
    /// `inbound` or `outbound-api`.
    direction: String,
    /// The leg: `twilio` (a phone call), `websocket` (`/call`) or `webrtc` (`/call/webrtc`).
    channel: String,
    from: String,
    to: String,
    user_id: Option<String>,
    /// queued, ringing, in-progress, completed, busy, failed, no-answer or canceled.
    status: String,
    created_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    duration: Option<u32>,
    /// The call's own variables (outbound body, campaign row).
    #[schema(value_type = Object)]
    variables: serde_json::Value,
    /// What answered an outbound call, by machine detection: `human`, `machine_start`,
    /// `machine_end_beep`, `machine_end_silence`, `machine_end_other`, `fax` or `unknown`.
    answered_by: Option<String>,
}

impl From<&CallRecord> for CallView {
    fn from(c: &CallRecord) -> Self {
        CallView {
            sid: c.sid.to_string(),
            bot_id: c.bot_id.to_string(),
            direction: c.direction.as_str().to_owned(),
            channel: c.channel.as_str().to_owned(),
            from: c.from.clone(),
            to: c.to.clone(),
            user_id: c.user.as_ref().map(|u| u.to_string()),
            status: c.status.as_str().to_owned(),
            created_at: time_fmt::rfc3339(c.created_at),
            started_at: c.started_at.map(time_fmt::rfc3339),
            ended_at: c.ended_at.map(time_fmt::rfc3339),
            duration: c.duration_secs,
            variables: c.variables.to_json(),
            answered_by: c.answered_by.map(|a| a.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallList {
    calls: Vec<CallView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListCallsQuery {
    #[param(pattern = "^bot_[0-9a-f]{32}$")]
    bot_id: Option<String>,
    /// A call status: `queued`, `ringing`, `in-progress`, `completed`, `busy`, `failed`,
    /// `no-answer` or `canceled`.
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Only calls created on this UTC day (`YYYY-MM-DD`).
    #[param(format = Date)]
    date: Option<String>,
}

fn parsed<T>(
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
    let (idem_key, request_hash) =
        match idempotency::check(&state, &tenant, IDEMPOTENCY_SCOPE, &headers, &body.raw).await? {
            Idempotency::Replay(answer) => return Ok(answer),
            Idempotency::Fresh { key, request_hash } => (key, request_hash),
        };
    let bot = calling_bot(&state, &tenant, req.bot_id.as_deref()).await?;
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
            prompt: prompt.as_ref(),
            first_message: first_message.as_ref(),
            variables: &variables,
            other_party: to.as_str(),
        }
        .fill(time_fmt::now()),
    )?;

    let now = time_fmt::now();
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
    // A place among the tenant's concurrent calls, held for the call once its sid is known.
    let calls = leases::calls_scope(&tenant);
    let pending = format!("pending-{}", callbot_core::apikey::random_token("", 20));
    let max_calls = state.settings.limits.max_calls_per_tenant;
    let now_ms = leases::now_ms();
    let busy = || ApiError::TooManyRequests {
        code: "too_many_calls",
        message: format!(
            "this account has {max_calls} calls in progress (CALLBOT_MAX_CALLS_PER_TENANT); try again when one ends"
        ),
        retry_after_secs: Some(30),
    };
    if state
        .store
        .acquire_lease(
            &calls,
            &pending,
            max_calls,
            now_ms + leases::LEASE_TTL_MS,
            now_ms,
        )
        .await?
        == LeaseDecision::Full
    {
        return Err(busy());
    }
    let day = time_fmt::day_key(now);
    if let Err(e) = state
        .store
        .count_call(&bot.id, &day, state.settings.limits.calls_per_bot_per_day)
        .await
    {
        state.store.release_lease(&calls, &pending).await?;
        return Err(e.into());
    }
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
            let _ = state.store.uncount_call(&bot.id, &day).await;
            let _ = state.store.release_lease(&calls, &pending).await;
            return Err(e.into());
        }
    };
    // The place passes from the pending holder to the call (a concurrent request may take it in
    // between: then the call is ended before it is answered).
    state.store.release_lease(&calls, &pending).await?;
    let now_ms = leases::now_ms();
    if state
        .store
        .acquire_lease(
            &calls,
            sid.as_str(),
            max_calls,
            now_ms + leases::LEASE_TTL_MS,
            now_ms,
        )
        .await?
        == LeaseDecision::Full
    {
        let _ = state.telephony.hangup_call(&sid).await;
        let _ = state.store.uncount_call(&bot.id, &day).await;
        return Err(busy());
    }
    let answer = OutboundCallResponse {
        success: true,
        message: "Call initiated".into(),
        call_sid: sid.to_string(),
    };
    let record = CallRecord {
        user: Some(user),
        prompt,
        first_message,
        variables,
        ..CallRecord::outbound(
            sid.clone(),
            &tenant,
            &bot.id,
            bot.number.as_str(),
            to.as_str(),
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
            // Nothing may run that we have no record of: end the call we just placed.
            if let Err(e) = state.telephony.hangup_call(&sid).await {
                tracing::error!(call_sid = %sid, error = %e, "could not end an unrecorded call");
            }
            let _ = state.store.uncount_call(&bot.id, &day).await;
            let _ = state.store.release_lease(&calls, sid.as_str()).await;
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

/// The tenant's call `raw_sid` belonging to end user `raw_user`, or 404.
async fn users_call(
    state: &AppState,
    tenant: &TenantId,
    raw_sid: &str,
    raw_user: &str,
) -> ApiResult<CallRecord> {
    let sid = CallSid::parse(raw_sid).map_err(|e| ApiError::field("callSid", e))?;
    let user = UserLabel::parse(raw_user).map_err(|e| ApiError::field("user_id", e))?;
    state
        .store
        .get_call(tenant, &sid)
        .await?
        .filter(|c| c.user.as_ref() == Some(&user))
        .ok_or_else(|| ApiError::NotFound("Call not found".into()))
}

/// End a call placed with `/outbound-call`.
#[utoipa::path(post, path = "/end-call", tag = "calls", security(("api_key" = [])),
    request_body(content = EndCallRequest, example = json!({"callSid": "CA0123456789abcdef0123456789abcdef",
        "user_id": "customer-42"})),
    responses((status = 200, body = EndCallResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn end_call(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: ApiJson<EndCallRequest>,
) -> ApiResult<Json<EndCallResponse>> {
    let (Some(sid), Some(user)) = (
        body.value.call_sid.as_deref(),
        body.value.user_id.as_deref(),
    ) else {
        return Err(ApiError::bad_request(
            "missing_fields",
            "Call SID and user ID are required",
        ));
    };
    let call = users_call(&state, &tenant, sid, user).await?;
    if !call.status.is_terminal() {
        state.telephony.hangup_call(&call.sid).await?;
    }
    Ok(Json(EndCallResponse {
        success: true,
        message: "Call ended".into(),
    }))
}

/// Status of a call placed with `/outbound-call`.
#[utoipa::path(get, path = "/call-status", tag = "calls", security(("api_key" = [])),
    params(CallStatusQuery),
    responses((status = 200, body = CallStatusResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn call_status(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<CallStatusQuery>,
) -> ApiResult<Json<CallStatusResponse>> {
    let (Some(sid), Some(user)) = (q.call_sid.as_deref(), q.user_id.as_deref()) else {
        return Err(ApiError::bad_request(
            "missing_fields",
            "Call SID and user ID are required",
        ));
    };
    let call = users_call(&state, &tenant, sid, user).await?;
    Ok(Json(CallStatusResponse {
        success: true,
        call_sid: call.sid.to_string(),
        status: call.status.as_str().to_owned(),
        start_time: call.started_at.map(time_fmt::rfc3339),
        end_time: call.ended_at.map(time_fmt::rfc3339),
        duration: call.duration_secs,
    }))
}

/// List the tenant's calls, newest first.
#[utoipa::path(get, path = "/calls", tag = "calls", security(("api_key" = [])),
    params(ListCallsQuery),
    responses((status = 200, body = CallList), (status = 400, body = ErrorBody)))]
pub async fn list_calls(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<ListCallsQuery>,
) -> ApiResult<Json<CallList>> {
    let filter = CallFilter {
        bot: parsed("bot_id", q.bot_id.as_deref(), BotId::parse)?,
        status: parsed("status", q.status.as_deref(), CallStatus::parse)?,
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                ApiError::bad_field("cursor", "invalid_cursor", "not a cursor from this API")
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_field(
            "limit",
            "invalid_limit",
            "must be 1-100",
        ));
    }
    let day = q
        .date
        .as_deref()
        .map(|d| {
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| ApiError::bad_field("date", "invalid_date", "must be YYYY-MM-DD"))
        })
        .transpose()?;
    let Some(day) = day else {
        let page = state
            .store
            .list_calls(&tenant, &filter, cursor.as_ref(), limit)
            .await?;
        return Ok(Json(CallList {
            calls: page.calls.iter().map(CallView::from).collect(),
            next_cursor: page.next_cursor,
        }));
    };
    // Newest first: skip the days after it, stop at the first call before it. At most 20 pages
    // are read per request; the cursor continues from there.
    let mut calls = Vec::new();
    let mut cursor = cursor;
    let mut next = None;
    for _ in 0..20 {
        let page = state
            .store
            // Never more than still needed, so the cursor skips no call of the day.
            .list_calls(
                &tenant,
                &filter,
                cursor.as_ref(),
                limit - calls.len() as u32,
            )
            .await?;
        let mut before = false;
        for c in &page.calls {
            match c.created_at.date().cmp(&day) {
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Equal => calls.push(CallView::from(c)),
                std::cmp::Ordering::Less => before = true,
            }
        }
        next = page.next_cursor;
        if before || next.is_none() || calls.len() >= limit as usize {
            if before {
                next = None;
            }
            break;
        }
        cursor = next.as_deref().and_then(Cursor::decode);
    }
    Ok(Json(CallList {
        calls,
        next_cursor: next,
    }))
}
