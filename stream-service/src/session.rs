//! A verified media stream until the call engine takes it over: frames are parsed and counted,
//! malformed ones logged, and the session ends on `stop` or when the socket closes.

use crate::StreamState;
use crate::handshake::VerifiedStream;
use crate::protocol::{self, Inbound};
use axum::extract::ws::{Message, WebSocket};

pub(crate) async fn run(mut socket: WebSocket, _state: StreamState, stream: VerifiedStream) {
    tracing::info!(call_sid = %stream.call, bot_id = %stream.bot, stream_sid = %stream.stream_sid, "media stream verified");
    let (mut frames, mut malformed) = (0u64, 0u64);
    while let Some(Ok(msg)) = socket.recv().await {
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        match protocol::parse(&text) {
            Ok(Inbound::Media { .. }) => frames += 1,
            Ok(Inbound::Stop { .. }) => break,
            Ok(_) => {}
            Err(_) => malformed += 1,
        }
    }
    tracing::info!(call_sid = %stream.call, frames, malformed, "media stream ended");
}
