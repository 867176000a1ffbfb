//! What browsers and RustPBX clients need before a call socket: `POST /call/tickets` trades the
//! API key for a short-lived, single-use ticket that `wss /call`, `wss /call/webrtc` (purpose
//! `call`: a new call), `wss /call?id=` (purpose `supervise`, bound to that one live call) or
//! `wss /frontend-stream` (purpose `observe`) accept in their URL, so no key is ever put in one; `GET /iceservers` lists the STUN/TURN servers for WebRTC, with short-lived TURN
//! credentials when the deployment has a TURN secret.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{OptionalJson, Tenant};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use callbot_core::domain::CallSid;
use callbot_core::settings::IceServer;
use callbot_core::store::{TicketPurpose, new_ticket};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long a ticket may wait before it is used.
pub const TICKET_TTL_SECS: u64 = 60;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_ticket))
        .routes(routes!(ice_servers))
}

/// What a ticket opens.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the API description's enum; requests are parsed as text
pub enum TicketPurposeName {
    Call,
    Supervise,
    Observe,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// `call` (default): a new call on `/call`, `/call/webrtc`; `supervise`: the live call
    /// `call_id` on `/call?id=`; `observe`: `/frontend-stream`.
    #[schema(example = "call", value_type = Option<TicketPurposeName>)]
    purpose: Option<String>,
    /// With `supervise` (and only then): the live call the ticket opens.
    #[schema(example = "CA0123456789abcdef0123456789abcdef")]
    call_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Pass as `?ticket=` when opening the socket. Works once.
    ticket: String,
    purpose: String,
    /// Seconds left to use it.
    expires_in: u64,
    expires_at: String,
}

/// Trade your API key for a single-use ticket to open a call or observer WebSocket.
#[utoipa::path(post, path = "/call/tickets", tag = "calls", security(("api_key" = [])),
    request_body(content = TicketRequest, description = "Optional; `{}` or no body means purpose `call`",
        example = json!({"purpose": "call"})),
    responses((status = 201, body = Ticket), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`supervise`: no live call of yours with that id")))]
pub async fn create_ticket(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    OptionalJson(req): OptionalJson<TicketRequest>,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    let req = req.unwrap_or_default();
    let purpose = purpose(&state, &tenant, &req).await?;
    let now = callbot_core::time_fmt::now();
    let expires_ms = (now.unix_timestamp() as u64 + TICKET_TTL_SECS) * 1000;
    let (raw, hash) = new_ticket();
    state
        .store
        .put_ticket(&hash, &tenant, &purpose, expires_ms)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Ticket {
            ticket: raw,
            purpose: purpose.name().into(),
            expires_in: TICKET_TTL_SECS,
            expires_at: callbot_core::time_fmt::rfc3339(
                now + time::Duration::seconds(TICKET_TTL_SECS as i64),
            ),
        }),
    ))
}

/// What a ticket request asks for. Clients get only the purposes they may present (the others
/// are the platform's own); `supervise` names a live call of the tenant.
async fn purpose(
    state: &AppState,
    tenant: &callbot_core::domain::TenantId,
    req: &TicketRequest,
) -> ApiResult<TicketPurpose> {
    let purpose = match req.purpose.as_deref() {
        None | Some("call") => TicketPurpose::Call,
        Some("observe") => TicketPurpose::Observe,
        Some("supervise") => {
            let raw = req.call_id.as_deref().ok_or_else(|| {
                ApiError::bad_field(
                    "call_id",
                    "missing_call_id",
                    "a supervise ticket names the live call it opens (call_id)",
                )
            })?;
            let sid = CallSid::parse(raw).map_err(|e| ApiError::field("call_id", e))?;
            // Another tenant's call and one that has ended look the same from outside.
            match state.store.get_call(tenant, &sid).await? {
                Some(c) if !c.status.is_terminal() => TicketPurpose::Supervise(sid),
                _ => return Err(ApiError::NotFound("Call not live".into())),
            }
        }
        Some(_) => {
            return Err(ApiError::bad_field(
                "purpose",
                "invalid_purpose",
                "purpose must be \"call\", \"supervise\" or \"observe\"",
            ));
        }
    };
    if req.call_id.is_some() && !matches!(purpose, TicketPurpose::Supervise(_)) {
        return Err(ApiError::bad_field(
            "call_id",
            "unexpected_call_id",
            "call_id goes with purpose \"supervise\" only",
        ));
    }
    Ok(purpose)
}

/// The STUN/TURN servers for WebRTC calls (RTCIceServer shape, as RustPBX serves them).
#[utoipa::path(get, path = "/iceservers", tag = "calls", security(("api_key" = [])),
    responses((status = 200, body = Vec<IceServer>), (status = 401, body = ErrorBody)))]
pub async fn ice_servers(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Json<Vec<IceServer>> {
    let now = callbot_core::time_fmt::now().unix_timestamp() as u64;
    Json(state.settings.rtc.ice_servers_for(tenant.as_str(), now))
}
