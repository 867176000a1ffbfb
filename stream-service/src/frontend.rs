//! `wss /frontend-stream?callSid=&user_id=`: a live call's events for an authorised dashboard —
//! `audio` and `transcription` as in the Starlis API plus the full RustPBX-named event stream.
//! Authenticated with the tenant's API key in the `X-API-Key` header or a single-use `observe`
//! ticket (`?ticket=`, what browsers use); a key in the URL (`api_key=`) is refused, since URLs end
//! up in logs and histories. Observers never slow the call: a lagging one is told how many events
//! it missed.
//!
//! `user_id` is a filter, not a permission: with it, the socket opens only when the call is that
//! end user's, and it counts toward that user's observer limit; any holder of the tenant's key or
//! of an `observe` ticket may watch any live call of the tenant, with or without it.

use crate::StreamState;
use crate::engine::events::{CallEvent, now_ms};
use crate::engine::lease::LeaseKeeper;
use crate::relay;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_core::domain::CallSid;
use callbot_core::store::LeaseDecision;
use callbot_core::store::leases;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Deserialize)]
pub struct FrontendQuery {
    #[serde(rename = "callSid")]
    call_sid: Option<String>,
    user_id: Option<String>,
    /// Present only to be refused with a clear error.
    api_key: Option<String>,
    /// A single-use ticket of purpose `observe` (`POST /call/tickets`).
    ticket: Option<String>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message, "code": code})),
    )
        .into_response()
}

pub async fn upgrade(
    State(state): State<StreamState>,
    Query(q): Query<FrontendQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if q.api_key.is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "key_in_url",
            "an API key is never accepted in a URL: send X-API-Key, or a ticket from POST /call/tickets",
        );
    }
    let ws = crate::ws::configure(ws, crate::ws::Kind::Observer);
    let Some(sid) = q.call_sid.as_deref().and_then(|s| CallSid::parse(s).ok()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_call_sid",
            "callSid is required",
        );
    };
    // A socket relayed from the instance its client connected to (see `relay`): that instance
    // authenticated the client and holds the observer place.
    let relayed = relay::relayed_tenant(&state, &headers, &sid).await;
    let is_relayed = relayed.is_some();
    let found = if let Some(r) = relayed {
        match r {
            Ok(t) => Ok(Some(t)),
            Err(relay::RelayError::Store(e)) => Err(e),
            Err(_) => Ok(None),
        }
    } else if let Some(ticket) = q.ticket.as_deref() {
        match crate::callws::authenticate(
            &state,
            &headers,
            Some(ticket),
            &callbot_core::store::TicketPurpose::Observe,
        )
        .await
        {
            Ok(t) => Ok(Some(t)),
            Err(refused) => return refused,
        }
    } else {
        let raw = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        state.store.tenant_for_raw_key(&raw).await
    };
    let tenant = match found {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid API key",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again");
        }
    };
    let Some(engine) = &state.engine else {
        return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
    };
    let local = engine.live.get(&tenant, &sid);
    if let Some(call) = &local
        && q.user_id.is_some()
        && call.user != q.user_id
    {
        return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
    }
    if is_relayed {
        let Some(call) = local else {
            return refuse(StatusCode::NOT_FOUND, "not_found", "Call not live");
        };
        let events = call.events.listen();
        return ws.on_upgrade(move |socket| forward(socket, events));
    }
    // At most `max_observers_per_user` sockets per end user, counted in the store (every
    // instance), kept while the socket is open.
    let scope = leases::observers_scope(&tenant, q.user_id.as_deref());
    let holder = format!("obs-{}", callbot_core::apikey::random_token("", 20));
    let limit = state.settings.limits.max_observers_per_user;
    let now = leases::now_ms();
    match state
        .store
        .acquire_lease(&scope, &holder, limit, now + leases::LEASE_TTL_MS, now)
        .await
    {
        Ok(LeaseDecision::Acquired) => {}
        Ok(LeaseDecision::Full) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_observers",
                &format!(
                    "at most {limit} observer connections per user (CALLBOT_MAX_OBSERVERS_PER_USER)"
                ),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "taking an observer place failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again");
        }
    }
    let keeper = LeaseKeeper::start(state.store.clone(), scope, holder);
    if let Some(call) = local {
        let events = call.events.listen();
        return ws.on_upgrade(move |socket| async move {
            forward(socket, events).await;
            keeper.release().await;
        });
    }
    // Held by another instance (or by none): relay there.
    let path = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("callSid", sid.as_str());
        if let Some(u) = q.user_id.as_deref() {
            query.append_pair("user_id", u);
        }
        format!("/frontend-stream?{}", query.finish())
    };
    match relay::connect(&state, &tenant, &sid, &path).await {
        Ok(upstream) => ws.on_upgrade(move |socket| async move {
            relay::pipe(socket, upstream).await;
            keeper.release().await;
        }),
        Err(e) => {
            keeper.release().await;
            relay_refusal(&e)
        }
    }
}

/// The answer to a socket whose relay could not be opened.
pub(crate) fn relay_refusal(e: &relay::RelayError) -> Response {
    match e {
        relay::RelayError::NotLive => refuse(StatusCode::NOT_FOUND, "not_found", "Call not live"),
        other => {
            tracing::warn!(error = %other, "relaying a socket failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the instance holding the call did not answer; try again",
            )
        }
    }
}

async fn forward(mut socket: WebSocket, mut listening: crate::engine::events::Listening) {
    let events = &mut listening.rx;
    loop {
        tokio::select! {
            e = events.recv() => {
                let (event, last) = match e {
                    Ok(e) => {
                        let last = matches!(e, CallEvent::Hangup { .. });
                        (e, last)
                    }
                    Err(RecvError::Lagged(n)) => (CallEvent::Error {
                        track_id: "observer".into(),
                        timestamp: now_ms(),
                        sender: "frontend-stream".into(),
                        error: format!("this observer fell behind and missed {n} events"),
                        code: None,
                    }, false),
                    Err(RecvError::Closed) => break,
                };
                let Ok(text) = serde_json::to_string(&event) else { continue };
                // A client that stops reading is dropped after the send deadline.
                if !crate::ws::send_now(&mut socket, Message::text(text)).await {
                    return;
                }
                if last {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Err(e)) if crate::ws::is_too_big(&e) => {
                    return crate::ws::close_too_big(socket).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
        }
    }
    crate::ws::send_now(&mut socket, Message::Close(None)).await;
}
