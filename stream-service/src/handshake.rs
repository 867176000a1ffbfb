//! Accepting a media stream: the upgrade request must carry a valid `X-Twilio-Signature` for the
//! public stream URL (403 otherwise, before upgrading), and the `start` message must carry a
//! valid stream token for this bot and this call, used for the first time, for a call that has not
//! ended (the socket is closed otherwise). Nothing else runs for a stream that fails a check.

use crate::StreamState;
use crate::protocol::{self, Inbound};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use callbot_core::apikey::KeyHash;
use callbot_core::domain::{BotId, CallSid};
use callbot_core::store::{CallRecord, TicketPurpose, leases};
use callbot_core::twilio::{signature, stream_token};
use secrecy::ExposeSecret;
use std::time::Duration;

/// How long Twilio has to send `connected` and `start` after the upgrade.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream that passed both checks, with the call's record as read for the check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStream {
    pub bot: BotId,
    pub call: CallSid,
    pub stream_sid: String,
    pub record: CallRecord,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": message, "code": "stream_refused"});
    (status, axum::Json(body)).into_response()
}

pub async fn upgrade(
    State(state): State<StreamState>,
    Path(bot): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Ok(bot) = BotId::parse(&bot) else {
        return refuse(StatusCode::NOT_FOUND, "unknown bot");
    };
    // Twilio signs the wss:// URL from the TwiML, with no parameters (spec §3.3).
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let url = format!("{}{path_and_query}", state.settings.stream_base());
    let token = state.twilio.auth_token.expose_secret().as_bytes();
    let signed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signature::verify_form(token, &url, &[], sig));
    if !signed {
        tracing::warn!(%url, "refused a stream handshake with a bad X-Twilio-Signature");
        return refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature");
    }
    let ws = crate::ws::configure(ws, crate::ws::Kind::Media);
    ws.on_upgrade(move |socket| async move {
        let mut socket = socket;
        match tokio::time::timeout(START_TIMEOUT, await_start(&mut socket, &state, &bot)).await {
            Ok(Ok(verified)) => crate::session::run(socket, state, verified).await,
            Ok(Err(reason)) => close(socket, &reason).await,
            Err(_) => close(socket, "no start message in time").await,
        }
    })
}

async fn close(mut socket: WebSocket, reason: &str) {
    tracing::warn!(reason, "closing a media stream that failed verification");
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1008,
            reason: reason.to_owned().into(),
        })))
        .await;
}

/// Consumes the token (atomically, in the store: a replayed token finds nothing, whichever
/// instance it reaches) and admits only a call of the token's tenant that has not ended.
async fn admit(
    state: &StreamState,
    token: &str,
    bot: &BotId,
    call: &CallSid,
) -> Result<CallRecord, String> {
    let tenant = state
        .store
        .take_ticket(
            &KeyHash::of(token),
            &TicketPurpose::Stream,
            leases::now_ms(),
        )
        .await
        .map_err(|e| format!("the store failed: {e}"))?
        .ok_or("stream token was used already")?;
    let record = state
        .store
        .call_by_sid(call)
        .await
        .map_err(|e| format!("the store failed: {e}"))?
        .ok_or("no such call")?;
    if record.tenant != tenant || &record.bot_id != bot {
        return Err("stream token is for another call".into());
    }
    if record.status.is_terminal() {
        return Err(format!("the call is {}", record.status.as_str()));
    }
    Ok(record)
}

/// Reads `connected` and `start`, and checks the stream token in `start.customParameters`.
async fn await_start(
    socket: &mut WebSocket,
    state: &StreamState,
    bot: &BotId,
) -> Result<VerifiedStream, String> {
    while let Some(msg) = socket.recv().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => return Err("closed before start".into()),
            Ok(_) => continue,
        };
        match protocol::parse(&text) {
            Ok(Inbound::Connected { .. }) | Ok(Inbound::Unknown) => continue,
            Ok(Inbound::Start {
                stream_sid, start, ..
            }) => {
                let token = start
                    .custom_parameters
                    .get("token")
                    .ok_or("start has no stream token")?;
                let now = callbot_core::time_fmt::now().unix_timestamp();
                let claims = stream_token::verify(
                    state.twilio.auth_token.expose_secret().as_bytes(),
                    token,
                    now,
                )
                .map_err(|e| e.to_string())?;
                if &claims.bot != bot || claims.call.as_str() != start.call_sid {
                    return Err("stream token is for another bot or call".into());
                }
                let record = admit(state, token, &claims.bot, &claims.call).await?;
                return Ok(VerifiedStream {
                    bot: claims.bot,
                    call: claims.call,
                    stream_sid,
                    record,
                });
            }
            Ok(_) => return Err("media before start".into()),
            Err(e) => return Err(format!("malformed message before start: {e}")),
        }
    }
    Err("closed before start".into())
}
