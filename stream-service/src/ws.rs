//! The server's WebSockets, per protocol: how big a message may be on each kind of socket and the
//! read buffer that fits it (a bigger message closes the socket with 1009 and nothing else), and
//! the writing half: a bounded queue and a deadline on every send, so a client that stops
//! reading is dropped, never the call it watches.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::serve::{ListenerExt as _, TapIo};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use std::error::Error as _;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long one message may take to reach a client (queue place or socket write) before that
/// client counts as gone.
pub const SEND_DEADLINE: Duration = Duration::from_secs(5);

/// Messages waiting for one client's socket.
pub const OUT_QUEUE: usize = 256;

/// The kinds of socket, by what their clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Twilio's media stream: JSON messages of ~250 bytes per 20 ms; `start` with the stream's
    /// parameters is the largest (a few KB).
    Media,
    /// `/call` and `/call/webrtc`: commands of a few KB (`tts` text up to 4,000 characters, an
    /// SDP offer) and audio frames (20-100 ms of 16-bit PCM).
    Commands,
    /// `/frontend-stream`: the client only reads (close and ping frames).
    Observer,
}

impl Kind {
    /// The largest message (and frame) this kind of socket accepts.
    pub const fn max_message(self) -> usize {
        match self {
            Kind::Media => 16 * 1024,
            Kind::Commands => 64 * 1024,
            Kind::Observer => 4 * 1024,
        }
    }

    /// The read buffer: one read of a busy socket, not the 128 KiB default that is zero-filled
    /// on every read.
    const fn read_buffer(self) -> usize {
        match self {
            Kind::Media => 4 * 1024,
            Kind::Commands => 8 * 1024,
            Kind::Observer => 1024,
        }
    }
}

/// Bytes a batch of messages may gather before they are written without waiting for its flush.
const WRITE_BUFFER: usize = 16 * 1024;

/// `ws` with the limits and buffers of `kind`.
pub fn configure(ws: WebSocketUpgrade, kind: Kind) -> WebSocketUpgrade {
    ws.max_message_size(kind.max_message())
        .max_frame_size(kind.max_message())
        .read_buffer_size(kind.read_buffer())
        // What is queued together (a beat's media and its marks) is buffered and goes out in
        // one write at the flush that ends the batch, not one write per message.
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(256 * 1024)
}

/// `listener` with `TCP_NODELAY` on every connection it accepts. A media socket writes one small
/// message a beat; with Nagle's algorithm the kernel holds a small write back until the last one
/// is acknowledged, and a peer's delayed acknowledgement (40 ms or more) then lands in the
/// caller's audio as a gap.
pub fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

fn set_no_delay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY could not be set on a connection");
    }
}

/// Whether a read error is a message or frame over the socket's limit.
pub fn is_too_big(e: &axum::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tungstenite::Error>() {
            return matches!(t, tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

/// The close frame for a message over the limit (1009, "message too big").
pub fn too_big() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1009,
        reason: "message too big".into(),
    }))
}

/// Closes `socket` for a message over its limit: the 1009 close, then a moment before the
/// connection is dropped, so the client reads the close before the rest of its message (unread
/// here) resets the connection.
pub async fn close_too_big(mut socket: WebSocket) {
    send_now(&mut socket, too_big()).await;
    tokio::time::sleep(CLOSE_LINGER).await;
}

/// How long a socket closed for a message over its limit is held before it is dropped: the
/// rest of that message is never read (the frame cannot be skipped), so dropping the connection
/// resets it, and a client still reading what came before the close would lose the close.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Starts the writing half of `sink`: messages sent to the returned queue go out in order; what
/// is queued together (a tick's frames and marks) is written and then flushed once. Each batch
/// has [`SEND_DEADLINE`]; a client that does not take it in time is closed and the rest is
/// dropped. The task ends when every sender is gone (after a close) or the client is.
pub fn writer(mut sink: SplitSink<WebSocket, Message>) -> (mpsc::Sender<Message>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let batch = async {
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    let last = matches!(m, Message::Close(_));
                    sink.feed(m).await?;
                    if last {
                        sink.flush().await?;
                        return Ok::<bool, axum::Error>(true);
                    }
                    next = rx.try_recv().ok();
                }
                sink.flush().await?;
                Ok(false)
            };
            match tokio::time::timeout(SEND_DEADLINE, batch).await {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) | Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!("a WebSocket client stopped reading; dropped");
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(SEND_DEADLINE, sink.close()).await;
    });
    (tx, task)
}

/// Sends `m` on a socket that has no writer task, within [`SEND_DEADLINE`]; false when the
/// client is gone or did not take it in time.
pub async fn send_now(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_DEADLINE, socket.send(m)).await,
        Ok(Ok(()))
    )
}

/// Queues `m` for a client within [`SEND_DEADLINE`]; false when the client is gone or too slow.
pub async fn send(out: &mpsc::Sender<Message>, m: Message) -> bool {
    out.send_timeout(m, SEND_DEADLINE).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;

    #[tokio::test]
    async fn accepted_connections_send_without_nagle_delay() {
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        let mut listener = no_delay(plain);
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
    }
}
