//! Hands a verified media stream to the call engine.

use crate::StreamState;
use crate::handshake::VerifiedStream;
use axum::extract::ws::WebSocket;

pub(crate) async fn run(socket: WebSocket, state: StreamState, stream: VerifiedStream) {
    tracing::info!(call_sid = %stream.call, bot_id = %stream.bot, stream_sid = %stream.stream_sid, "media stream verified");
    crate::engine::call::run_twilio(socket, state, stream.record, &stream.bot, stream.stream_sid)
        .await;
}
