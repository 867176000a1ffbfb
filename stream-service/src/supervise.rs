//! Supervisor mode on `/call?id=<live call>`: the call's events go to this socket, this socket's
//! commands go to the call (never `invite` or `candidate`, never audio); the socket is told
//! `hangup` and closed when the call ends, and a supervisor that stops reading is dropped. Its
//! commands are rate-limited like a call socket's (see `rate`).

use crate::callws::{error_event, event_text};
use crate::engine::command::{self, Command};
use crate::engine::live::LiveCall;
use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

/// Supervisor mode: the live call's events to this socket; this socket's commands to the call.
pub(crate) async fn run(socket: WebSocket, live: LiveCall) {
    let (sink, mut stream) = socket.split();
    let (out, writer) = crate::ws::writer(sink);
    let done = CancellationToken::new();
    let mut forwarder = tokio::spawn(crate::engine::call::forward_events(
        live.events.subscribe(),
        out.clone(),
        done.clone(),
    ));
    tracing::info!(call_sid = %live.sid, "supervisor attached");
    let mut rate = crate::rate::CommandRate::default();
    let mut linger = false;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    use crate::rate::Verdict;
                    let (status, refused) = match rate.check(std::time::Instant::now()) {
                        Verdict::Close => {
                            let _ = out.try_send(crate::rate::too_many());
                            linger = true;
                            break;
                        }
                        // Over the rate: not even read.
                        Verdict::Refuse => (429, Some(format!(
                            "rate_limited: more than {} commands a second; this one was not applied",
                            crate::rate::PER_SECOND
                        ))),
                        Verdict::Allow => (400, match command::parse(t.as_str()) {
                            Ok(Command::Invite(_) | Command::Candidate(_)) => Some(
                                "a supervisor cannot invite or send candidates; open a new socket for a new call".to_owned(),
                            ),
                            Ok(cmd) => {
                                if !live.command(cmd).await {
                                    break;
                                }
                                None
                            }
                            Err(e) => Some(format!("{}: {}", e.code, e.message)),
                        }),
                    };
                    if let Some(e) = refused
                        && !crate::ws::send(&out, event_text(&error_event("command", status, e))).await
                    {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let e = error_event("command", 400, "a supervisor sends commands, not audio".into());
                    if !crate::ws::send(&out, event_text(&e)).await {
                        break;
                    }
                }
                Some(Err(e)) if crate::ws::is_too_big(&e) => {
                    let _ = out.try_send(crate::ws::too_big());
                    break;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = &mut forwarder => break,
        }
    }
    done.cancel();
    forwarder.abort();
    drop(out);
    // Bounded: each send of the writer has a deadline.
    let _ = writer.await;
    if linger {
        // The client reads the close before its unread messages reset the connection.
        tokio::time::sleep(crate::ws::CLOSE_LINGER).await;
    }
    drop(stream);
}
