//! `wss /call` and `wss /call/webrtc`: calls driven by programs and browsers with RustPBX's
//! commands and events. A client opens the socket with a single-use ticket (`?ticket=`, from
//! `POST /call/tickets`) or its API key in the `X-API-Key` header (never in the URL), then either
//! - sends `invite` with `option.callee` (a bot's id or number): a call to that bot starts, with
//!   the audio in the socket as binary frames (`/call`, PCMU 8 kHz or PCM 16 kHz by
//!   `option.codec`) or over WebRTC (`/call/webrtc`, SDP offer in `option.offer`, the answer in
//!   the `answer` event); or
//! - names a live call of its tenant with `?id=<call sid>`: supervisor mode, where the call's
//!   events arrive and commands (`tts`, `play`, `interrupt`, `refer`, `hangup`, ...) act on it,
//!   whichever instance holds the call (`relay`). A ticket for this is of purpose `supervise`
//!   and names the call (`POST /call/tickets {"purpose":"supervise","call_id":...}`); a `call`
//!   ticket places a new call only.

use crate::StreamState;
use crate::engine::call::leg::{Leg, LegKind, SocketCodec};
use crate::engine::command::{self, CallOption, Command};
use crate::engine::events::{CallEvent, now_ms};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use callbot_core::apikey::KeyHash;
use callbot_core::domain::{BotId, BotStatus, CallSid, PhoneNumber, TenantId};
use callbot_core::store::{Bot, CallRecord, StoreError, TicketPurpose};
use serde::Deserialize;
use std::time::Duration;

/// How long a new socket may take to send `invite`.
const INVITE_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<StreamState> {
    Router::new()
        .route("/call", get(call_socket))
        .route("/call/webrtc", get(call_webrtc))
}

#[derive(Debug, Deserialize)]
pub struct CallQuery {
    /// A live call's SID (supervisor mode).
    id: Option<String>,
    ticket: Option<String>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message, "code": code})),
    )
        .into_response()
}

/// The tenant a socket acts for: a ticket for `purpose` (consumed), or the `X-API-Key` header.
pub async fn authenticate(
    state: &StreamState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    purpose: &TicketPurpose,
) -> Result<TenantId, Response> {
    let found = match ticket {
        Some(t) if callbot_core::apikey::plausible(t) => {
            state
                .store
                .take_ticket(&KeyHash::of(t), purpose, now_ms())
                .await
        }
        Some(_) => Ok(None),
        None => {
            let key = headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            state.store.tenant_for_raw_key(key).await
        }
    };
    match found {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid ticket (?ticket=, single use) or X-API-Key header is required",
        )),
        Err(e) => {
            tracing::error!(error = %e, "ticket or key lookup failed");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again",
            ))
        }
    }
}

async fn call_socket(
    state: State<StreamState>,
    q: Query<CallQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    open(state, q, headers, ws, false).await
}

async fn call_webrtc(
    state: State<StreamState>,
    q: Query<CallQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    open(state, q, headers, ws, true).await
}

async fn open(
    State(state): State<StreamState>,
    Query(q): Query<CallQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    webrtc: bool,
) -> Response {
    let ws = crate::ws::configure(ws, crate::ws::Kind::Commands);
    let sid = match q.id.as_deref().map(CallSid::parse) {
        None => None,
        Some(Ok(sid)) => Some(sid),
        Some(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                "id must be a live call's SID (CA and 32 hex digits); new calls get theirs in the answer event",
            );
        }
    };
    // A supervisor socket relayed from the instance its client connected to (see `relay`).
    let relayed = match &sid {
        Some(sid) => crate::relay::relayed_tenant(&state, &headers, sid).await,
        None if headers.contains_key(crate::relay::RELAY_HEADER) => {
            return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
        }
        None => None,
    };
    let is_relayed = relayed.is_some();
    let tenant = match relayed {
        Some(Ok(t)) => t,
        Some(_) => {
            return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
        }
        None => {
            // A ticket opens exactly what it was issued for: a new call, or this one live call.
            let purpose = sid
                .clone()
                .map_or(TicketPurpose::Call, TicketPurpose::Supervise);
            match authenticate(&state, &headers, q.ticket.as_deref(), &purpose).await {
                Ok(t) => t,
                Err(r) => return r,
            }
        }
    };
    let Some(engine) = state.engine.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no call engine here",
        );
    };
    if let Some(sid) = sid {
        // Another tenant's call and a call that is not live look the same from outside.
        if let Some(live) = engine.live.get(&tenant, &sid) {
            return ws.on_upgrade(move |socket| crate::supervise::run(socket, live));
        }
        if is_relayed {
            return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
        }
        // Held by another instance: relay there.
        let path = format!("/call?id={}", sid.as_str());
        return match crate::relay::connect(&state, &tenant, &sid, &path).await {
            Ok(upstream) => ws.on_upgrade(move |socket| crate::relay::pipe(socket, upstream)),
            Err(e) => crate::frontend::relay_refusal(&e),
        };
    }
    ws.on_upgrade(move |socket| new_call(socket, state, tenant, webrtc))
}

pub(crate) fn event_text(e: &CallEvent) -> Message {
    Message::text(serde_json::to_string(e).unwrap_or_default())
}

pub(crate) fn error_event(sender: &str, code: u16, error: String) -> CallEvent {
    CallEvent::Error {
        track_id: "call".into(),
        timestamp: now_ms(),
        sender: sender.into(),
        error,
        code: Some(code),
    }
}

/// Ends a socket whose call never started: the error, a `hangup`, a close.
async fn fail(mut socket: WebSocket, code: u16, error: String) {
    tracing::info!(code, %error, "call socket refused");
    let _ = socket
        .send(event_text(&error_event("call", code, error)))
        .await;
    let hangup = CallEvent::Hangup {
        timestamp: now_ms(),
        reason: "invite_failed".into(),
        initiator: "system".into(),
    };
    let _ = socket.send(event_text(&hangup)).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Why no call began on a socket.
enum NoInvite {
    /// The client left.
    Gone,
    /// A message over the socket's limit (closed with 1009).
    TooBig,
    /// No `invite` within [`INVITE_TIMEOUT`].
    Late,
}

/// Waits for `invite`; anything else before it is answered with an `error` event.
async fn await_invite(socket: &mut WebSocket) -> Result<CallOption, NoInvite> {
    let wait = async {
        loop {
            let msg = match socket.recv().await {
                Some(Ok(m)) => m,
                Some(Err(e)) if crate::ws::is_too_big(&e) => return Err(NoInvite::TooBig),
                Some(Err(_)) | None => return Err(NoInvite::Gone),
            };
            let reply = match msg {
                Message::Text(t) => match command::parse(t.as_str()) {
                    Ok(Command::Invite(o)) => return Ok(*o),
                    Ok(_) => error_event("command", 400, "send invite first".into()),
                    Err(e) => error_event("command", 400, format!("{}: {}", e.code, e.message)),
                },
                Message::Binary(_) => {
                    error_event("command", 400, "audio before invite is dropped".into())
                }
                Message::Close(_) => return Err(NoInvite::Gone),
                _ => continue,
            };
            if socket.send(event_text(&reply)).await.is_err() {
                return Err(NoInvite::Gone);
            }
        }
    };
    tokio::time::timeout(INVITE_TIMEOUT, wait)
        .await
        .unwrap_or(Err(NoInvite::Late))
}

/// The tenant's bot named by `callee`: its id, or its phone number.
async fn find_bot(
    state: &StreamState,
    tenant: &TenantId,
    callee: Option<&str>,
) -> Result<Bot, (u16, String)> {
    let Some(callee) = callee.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err((
            400,
            "invite.option.callee is required: the bot's id or phone number".into(),
        ));
    };
    let found = if let Ok(id) = BotId::parse(callee) {
        state.store.get_bot(tenant, &id).await
    } else if let Ok(n) = PhoneNumber::parse(callee) {
        state
            .store
            .bot_by_number(&n)
            .await
            .map(|b| b.filter(|b| &b.tenant == tenant))
    } else {
        return Err((
            400,
            format!("invite.option.callee {callee:?} is neither a bot id nor a phone number"),
        ));
    };
    match found {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err((404, format!("no bot {callee:?} in this account"))),
        Err(e) => {
            tracing::error!(error = %e, "bot lookup failed");
            Err((503, "the store is unavailable; try again".into()))
        }
    }
}

async fn new_call(mut socket: WebSocket, state: StreamState, tenant: TenantId, webrtc: bool) {
    let option = match await_invite(&mut socket).await {
        Ok(o) => o,
        Err(NoInvite::Late) => return fail(socket, 408, "no invite within 30 s".into()).await,
        Err(NoInvite::TooBig) => return crate::ws::close_too_big(socket).await,
        Err(NoInvite::Gone) => return,
    };
    let bot = match find_bot(&state, &tenant, option.callee.as_deref()).await {
        Ok(b) => b,
        Err((code, e)) => return fail(socket, code, e).await,
    };
    if bot.status == BotStatus::Paused {
        return fail(socket, 409, format!("bot {} is paused", bot.id)).await;
    }
    let (leg, rtc_rx, sdp) = if webrtc {
        let Some(offer) = option.offer.as_deref() else {
            return fail(
                socket,
                400,
                "invite.option.offer (an SDP offer) is required on /call/webrtc".into(),
            )
            .await;
        };
        let policy = crate::rtc::Policy::from_settings(&state.settings.rtc);
        match crate::rtc::accept(offer, policy).await {
            Ok(r) => (
                Leg::new(LegKind::Rtc {
                    media: r.media,
                    candidates: r.candidates,
                }),
                Some(r.events),
                r.answer_sdp,
            ),
            Err(e) => return fail(socket, 400, e.to_string()).await,
        }
    } else {
        let codec = match option.codec.as_deref() {
            None => SocketCodec::Pcmu,
            Some(c) => {
                match SocketCodec::parse(c) {
                    Some(c) => c,
                    None => {
                        return fail(
                        socket,
                        400,
                        format!("invite.option.codec {c:?}: pcmu (8 kHz μ-law) or pcm (16-bit 16 kHz)"),
                    )
                    .await;
                    }
                }
            }
        };
        (Leg::new(LegKind::Socket { codec }), None, String::new())
    };
    let leg = leg.with_machine_detection(option.machine_detection.unwrap_or(false));
    let now = callbot_core::time_fmt::now();
    let limit = state.settings.limits.calls_per_bot_per_day;
    match state
        .store
        .count_call(&bot.id, &callbot_core::time_fmt::day_key(now), limit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::QuotaExceeded { .. }) => {
            return fail(
                socket,
                429,
                "this bot has reached its call limit for today".into(),
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "counting a call failed");
            return fail(socket, 503, "the store is unavailable; try again".into()).await;
        }
    }
    let channel = leg.channel();
    let from = option
        .caller
        .as_deref()
        .map(|c| {
            c.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| format!("client:{}", channel.as_str()));
    let mut record = CallRecord::inbound(
        CallSid::generate(),
        &tenant,
        &bot.id,
        &from,
        bot.number.as_str(),
        now,
    );
    record.channel = channel;
    let limit = state.settings.limits.max_calls_per_tenant;
    let lease_now = callbot_core::store::leases::now_ms();
    match state
        .store
        .acquire_lease(
            &callbot_core::store::leases::calls_scope(&tenant),
            record.sid.as_str(),
            limit,
            lease_now + callbot_core::store::leases::LEASE_TTL_MS,
            lease_now,
        )
        .await
    {
        Ok(callbot_core::store::LeaseDecision::Acquired) => {}
        Ok(callbot_core::store::LeaseDecision::Full) => {
            return fail(
                socket,
                429,
                format!(
                    "this account has {limit} calls in progress (CALLBOT_MAX_CALLS_PER_TENANT)"
                ),
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "taking a call place failed");
            return fail(socket, 503, "the store is unavailable; try again".into()).await;
        }
    }
    if let Err(e) = state.store.create_call(&record, None).await {
        tracing::error!(error = %e, "storing a call failed");
        abandon(state.store.as_ref(), &tenant, &record.sid, false).await;
        return fail(socket, 503, "the store is unavailable; try again".into()).await;
    }
    let answer = serde_json::json!({
        "event": "answer",
        "trackId": record.sid.as_str(),
        "timestamp": now_ms(),
        "sdp": sdp,
        "callSid": record.sid.as_str(),
        "botId": bot.id.as_str(),
        "codec": match &leg.kind {
            LegKind::Socket { codec } => codec.as_str(),
            _ => "pcmu",
        },
    });
    if !crate::ws::send_now(&mut socket, Message::text(answer.to_string())).await {
        // The client left before the call began: its place and record are not left behind.
        abandon(state.store.as_ref(), &tenant, &record.sid, true).await;
        return;
    }
    tracing::info!(call_sid = %record.sid, bot_id = %bot.id, channel = channel.as_str(), "call socket answered");
    crate::engine::call::drive(socket, state, record, bot, leg, rtc_rx).await;
}

/// A call that could not begin: its place among the tenant's calls is given back and, when its
/// record was written, the record is closed as failed (not left `in-progress`).
async fn abandon(
    store: &dyn callbot_core::store::Store,
    tenant: &TenantId,
    sid: &CallSid,
    recorded: bool,
) {
    let scope = callbot_core::store::leases::calls_scope(tenant);
    if let Err(e) = store.release_lease(&scope, sid.as_str()).await {
        tracing::error!(call_sid = %sid, error = %e, "giving back a call place failed");
    }
    if recorded {
        let update = callbot_core::store::StatusUpdate {
            status: callbot_core::domain::CallStatus::Failed,
            seq: None,
            at: callbot_core::time_fmt::now(),
            duration_secs: Some(0),
        };
        if let Err(e) = store.update_call_status(sid, &update).await {
            tracing::error!(call_sid = %sid, error = %e, "closing an abandoned call failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbot_core::store::leases::{LEASE_TTL_MS, calls_scope, now_ms as lease_now};
    use callbot_core::store::{CallStore, LeaseDecision, LeaseStore};

    #[tokio::test]
    async fn a_call_that_could_not_begin_leaves_no_place_and_no_live_record() {
        let store = callbot_core::store::sqlite::SqliteStore::open_in_memory().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let bot = BotId::parse("bot_0123456789abcdef").unwrap_or_else(|_| BotId::generate());
        let record = CallRecord::inbound(
            CallSid::generate(),
            &tenant,
            &bot,
            "client:websocket",
            "+15550002222",
            callbot_core::time_fmt::now(),
        );
        let scope = calls_scope(&tenant);
        let now = lease_now();
        let got = store
            .acquire_lease(&scope, record.sid.as_str(), 5, now + LEASE_TTL_MS, now)
            .await
            .unwrap();
        assert_eq!(got, LeaseDecision::Acquired);
        store.create_call(&record, None).await.unwrap();
        abandon(&store, &tenant, &record.sid, true).await;
        assert_eq!(store.count_leases(&scope, lease_now()).await.unwrap(), 0);
        let after = store.get_call(&tenant, &record.sid).await.unwrap().unwrap();
        assert_eq!(after.status, callbot_core::domain::CallStatus::Failed);
    }
}
