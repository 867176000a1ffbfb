//! Live calls from any instance. A call's engine runs on one instance, which records its internal
//! URL in the store while the call lives (`leases::route_scope`). A socket that names a live call
//! (`/frontend-stream?callSid=`, `/call?id=`) on another instance is authenticated there, then
//! relayed: that instance opens the same path on the holder with a single-use `relay` ticket for
//! the client's tenant and that call (header `X-Callbot-Relay`; the holder takes it only for the
//! call the path names) and copies messages both ways. The holder checks the tenant against the
//! call as for a local socket; a relayed socket is never relayed again. Instances reach each other
//! at their internal URLs (`CALLBOT_INSTANCE_URL`), which must be on a private network (the ECS
//! template's security group admits only the load balancer and the service's own tasks) or
//! `https`: a ticket in the header of a plain `ws://` connection is readable on the path.

use crate::StreamState;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use callbot_core::apikey::KeyHash;
use callbot_core::domain::{CallSid, TenantId};
use callbot_core::store::{TicketPurpose, leases, new_ticket};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// The header a relaying instance presents its ticket in.
pub const RELAY_HEADER: &str = "x-callbot-relay";
/// How long a relay ticket stays valid (it is used at once).
const TICKET_TTL_MS: u64 = 15_000;
/// How long connecting to the holder may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No instance holds the call (it ended, or never ran), or the holder refused it.
    #[error("call not live")]
    NotLive,
    #[error("the store: {0}")]
    Store(#[from] callbot_core::store::StoreError),
    #[error("the instance holding the call: {0}")]
    Holder(String),
}

/// The tenant of a relayed socket for call `sid`: `None` when the request carries no relay
/// header, else the tenant its (consumed) ticket was issued for, or `Err` for a bad or used
/// ticket, or one issued for another call.
pub async fn relayed_tenant(
    state: &StreamState,
    headers: &HeaderMap,
    sid: &CallSid,
) -> Option<Result<TenantId, RelayError>> {
    let ticket = headers.get(RELAY_HEADER)?.to_str().unwrap_or("");
    if !callbot_core::apikey::plausible(ticket) {
        return Some(Err(RelayError::NotLive));
    }
    let taken = state
        .store
        .take_ticket(
            &KeyHash::of(ticket),
            &TicketPurpose::Relay(sid.clone()),
            leases::now_ms(),
        )
        .await;
    Some(match taken {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(RelayError::NotLive),
        Err(e) => Err(e.into()),
    })
}

/// Opens `path_and_query` for `tenant` on the instance that holds call `sid` (not this one).
/// Safe to cancel (an unused ticket expires).
pub async fn connect(
    state: &StreamState,
    tenant: &TenantId,
    sid: &CallSid,
    path_and_query: &str,
) -> Result<Upstream, RelayError> {
    let here = state.settings.instance_base();
    let now = leases::now_ms();
    let holders = state
        .store
        .lease_holders(&leases::route_scope(sid), now)
        .await?;
    let Some(holder) = holders.into_iter().find(|h| *h != here) else {
        return Err(RelayError::NotLive);
    };
    let (raw, hash) = new_ticket();
    state
        .store
        .put_ticket(
            &hash,
            tenant,
            &TicketPurpose::Relay(sid.clone()),
            now + TICKET_TTL_MS,
        )
        .await?;
    let base = holder
        .strip_prefix("https://")
        .map(|h| format!("wss://{h}"))
        .or_else(|| holder.strip_prefix("http://").map(|h| format!("ws://{h}")))
        .ok_or_else(|| RelayError::Holder(format!("unusable instance URL {holder:?}")))?;
    let mut req = format!("{base}{path_and_query}")
        .into_client_request()
        .map_err(|e| RelayError::Holder(e.to_string()))?;
    req.headers_mut().insert(
        RELAY_HEADER,
        raw.parse()
            .map_err(|_| RelayError::Holder("ticket".into()))?,
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((ws, _))) => {
            tracing::info!(call_sid = %sid, %holder, "socket relayed to the instance holding the call");
            Ok(ws)
        }
        Ok(Err(tungstenite::Error::Http(r))) if r.status() == 404 => Err(RelayError::NotLive),
        Ok(Err(e)) => Err(RelayError::Holder(e.to_string())),
        Err(_) => Err(RelayError::Holder("no answer within 5 s".into())),
    }
}

fn upstream_message(m: Message) -> Option<tungstenite::Message> {
    Some(match m {
        Message::Text(t) => tungstenite::Message::text(t.as_str()),
        Message::Binary(b) => tungstenite::Message::Binary(b),
        Message::Close(f) => {
            tungstenite::Message::Close(f.map(|f| tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))
        }
        // Each hop answers its own pings.
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

fn client_message(m: tungstenite::Message) -> Option<Message> {
    Some(match m {
        tungstenite::Message::Text(t) => Message::text(t.as_str()),
        tungstenite::Message::Binary(b) => Message::Binary(b),
        tungstenite::Message::Close(f) => Message::Close(f.map(|f| CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        _ => return None,
    })
}

/// Copies messages between the client's socket and the holder's until either side closes.
pub async fn pipe(client: WebSocket, upstream: Upstream) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_holder = async {
        while let Some(Ok(m)) = client_rx.next().await {
            let close = matches!(m, Message::Close(_));
            if let Some(m) = upstream_message(m)
                && up_tx.send(m).await.is_err()
            {
                break;
            }
            if close {
                break;
            }
        }
        let _ = up_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(m)) = up_rx.next().await {
            let close = matches!(m, tungstenite::Message::Close(_));
            if let Some(m) = client_message(m)
                && client_tx.send(m).await.is_err()
            {
                break;
            }
            if close {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    // Whichever side ends first ends the relay.
    tokio::select! {
        () = to_holder => {}
        () = to_client => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_unchanged() {
        let t = upstream_message(Message::text("{\"command\":\"tts\"}")).unwrap();
        assert_eq!(t, tungstenite::Message::text("{\"command\":\"tts\"}"));
        let b = client_message(tungstenite::Message::Binary(vec![0xff, 0x7f].into())).unwrap();
        assert!(matches!(b, Message::Binary(ref v) if v.as_ref() == [0xff, 0x7f]));
        let c = upstream_message(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "bye".into(),
        })))
        .unwrap();
        assert!(
            matches!(c, tungstenite::Message::Close(Some(ref f)) if u16::from(f.code) == 1000 && f.reason.as_str() == "bye")
        );
        assert!(upstream_message(Message::Ping(vec![1].into())).is_none());
    }
}
