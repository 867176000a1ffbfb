//! Where a call's messages to its socket go. A Twilio leg's own loop writes them: a beat's media
//! and marks in one write, without a writer task to wake, and before the caller's messages of
//! that beat are read, so the write carries the acknowledgement of what the caller sent instead
//! of the read sending one of its own. A `/call` socket, whose events come from a forwarder
//! task too, has a writer task ([`crate::ws::writer`]). Either way a client that stops reading
//! loses messages after [`SEND_DEADLINE`], never the call.

use crate::ws::{OUT_QUEUE, SEND_DEADLINE};
use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// The writing half of a call's socket.
pub(super) enum Out {
    /// A writer task shared with the call's event forwarder.
    Task(mpsc::Sender<Message>),
    /// Written by the call's loop.
    Direct(Box<Direct>),
}

/// A socket the call's loop writes itself.
pub(super) struct Direct {
    sink: SplitSink<WebSocket, Message>,
    /// Messages the socket has not taken yet (at most [`OUT_QUEUE`]).
    waiting: VecDeque<Message>,
    /// Taken into the socket's buffer, not yet written out.
    unflushed: bool,
    /// Since when the socket has held back what is queued (a client that stopped reading).
    stalled: Option<Instant>,
    /// The client is gone or was dropped: nothing more is written.
    gone: bool,
}

impl Out {
    pub(super) fn direct(sink: SplitSink<WebSocket, Message>) -> Self {
        Out::Direct(Box::new(Direct {
            sink,
            waiting: VecDeque::with_capacity(8),
            unflushed: false,
            stalled: None,
            gone: false,
        }))
    }

    /// Queues `m`; false when it was dropped (the client is gone or too far behind).
    pub(super) fn send(&mut self, m: Message) -> bool {
        match self {
            Out::Task(tx) => tx.try_send(m).is_ok(),
            Out::Direct(d) if d.gone || d.waiting.len() >= OUT_QUEUE => false,
            Out::Direct(d) => {
                d.waiting.push_back(m);
                true
            }
        }
    }

    /// Whether the loop has something to write.
    pub(super) fn pending(&self) -> bool {
        match self {
            Out::Task(_) => false,
            Out::Direct(d) => !d.gone && (d.unflushed || !d.waiting.is_empty()),
        }
    }

    /// One attempt to write what is queued, without waiting for the socket (what it does not
    /// take now goes when [`Out::drained`] completes or at the next attempt).
    pub(super) async fn push(&mut self) {
        let Out::Direct(d) = self else { return };
        std::future::poll_fn(|cx| {
            if d.poll_write(cx).is_ready() {
                d.stalled = None;
            } else {
                d.stalled.get_or_insert_with(Instant::now);
            }
            Poll::Ready(())
        })
        .await;
    }

    /// Completes once the socket has taken everything queued. Safe to cancel.
    pub(super) async fn drained(&mut self) {
        let Out::Direct(d) = self else {
            return std::future::pending().await;
        };
        std::future::poll_fn(|cx| d.poll_write(cx)).await;
        d.stalled = None;
    }

    /// Drops a client that has held back what is queued for [`SEND_DEADLINE`] (called on the
    /// beat); what the call sends it from then on is dropped.
    pub(super) fn check_stall(&mut self, now: Instant) {
        let Out::Direct(d) = self else { return };
        if let Some(since) = d.stalled
            && !d.gone
            && now.duration_since(since) >= SEND_DEADLINE
        {
            tracing::info!("a WebSocket client stopped reading; dropped");
            d.fail();
        }
    }

    /// At the end of the call: what is left, then the close, within [`SEND_DEADLINE`].
    pub(super) async fn finish(&mut self) {
        let Out::Direct(d) = self else { return };
        let _ = tokio::time::timeout(SEND_DEADLINE, async {
            std::future::poll_fn(|cx| d.poll_write(cx)).await;
            if !d.gone {
                let _ = d.sink.close().await;
            }
        })
        .await;
        d.fail();
    }
}

impl Direct {
    /// Moves queued messages into the socket and writes them out: ready when nothing is left
    /// (or the client is gone), pending while the socket holds them back.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.gone {
            return Poll::Ready(());
        }
        while !self.waiting.is_empty() {
            match self.sink.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(m) = self.waiting.pop_front() else {
                        break;
                    };
                    if self.sink.start_send_unpin(m).is_err() {
                        self.fail();
                        return Poll::Ready(());
                    }
                    self.unflushed = true;
                }
                Poll::Ready(Err(_)) => {
                    self.fail();
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.unflushed {
            match self.sink.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => self.fail(),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    fn fail(&mut self) {
        self.gone = true;
        self.waiting.clear();
        self.unflushed = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::extract::WebSocketUpgrade;
    use futures_util::StreamExt;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    /// What the server side saw: the longest a push took, and when the client was dropped.
    type Seen = tokio::sync::oneshot::Sender<(Duration, Duration)>;

    /// A call's loop in miniature: a message and one push per 20 ms beat, as a Twilio leg (the
    /// messages are 32 KiB, so the kernel's send buffer, however far it grows, fills in seconds).
    async fn beat_until_dropped(socket: WebSocket, seen: Seen) {
        let (sink, _stream) = socket.split();
        let mut out = Out::direct(sink);
        let started = Instant::now();
        let mut longest = Duration::ZERO;
        while started.elapsed() < Duration::from_secs(20) {
            out.send(Message::text("x".repeat(32 * 1024)));
            let t = Instant::now();
            out.push().await;
            longest = longest.max(t.elapsed());
            out.check_stall(Instant::now());
            if let Out::Direct(d) = &out
                && d.gone
            {
                // Dropped: what the call sends from now on is refused at once.
                assert!(!out.send(Message::text("late")));
                let _ = seen.send((longest, started.elapsed()));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_after_the_deadline_and_the_loop_never_waits() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |ws: WebSocketUpgrade| {
                let seen = tx.lock().unwrap().take().unwrap();
                async move { ws.on_upgrade(move |s| beat_until_dropped(s, seen)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // A client with a small window that reads nothing after the handshake.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let req = format!("ws://{addr}/").into_client_request().unwrap();
        let (_ws, _) =
            tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        let (longest, after) = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap()
            .unwrap();
        // Written until the socket's buffers were full, then held for the deadline and dropped;
        // a push never waited for the socket (a waiting one would have taken the 5 s).
        assert!(after >= SEND_DEADLINE, "dropped after {after:?}");
        assert!(after < SEND_DEADLINE + Duration::from_secs(5), "{after:?}");
        assert!(longest < Duration::from_secs(1), "a push took {longest:?}");
    }
}
