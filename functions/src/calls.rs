//! Calls for API customers: end (`/end-call`) and poll (`/call-status`) outbound calls as in the
//! Starlis API (placing one is `outbound_call`), and list/show call records (`/calls`).

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Tenant};
use crate::outbound_call::parsed;
use axum::Json;
use axum::extract::State;
use callbot_core::domain::{BotId, CallSid, CallStatus, TenantId, UserLabel};
use callbot_core::store::{CallFilter, CallRecord, Cursor};
use callbot_core::time_fmt;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crate::outbound_call::outbound_call))
        .routes(routes!(end_call))
        .routes(routes!(call_status))
        .routes(routes!(list_calls))
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
    let limit = crate::extract::page_limit(q.limit, 50, 100)?;
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
