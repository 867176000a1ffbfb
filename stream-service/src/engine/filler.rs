//! Fillers: what a caller hears while their reply is prepared ("One moment.", then a second line
//! if the wait goes on), so slow recognition, a slow model suggestion or a slow webhook never
//! means dead air. The first filler begins the turn's reply; the answer follows it as further
//! sentences of the same (streaming) reply.

use super::Engine;
use super::pipeline::{CallInfo, ToCall, speak_one};
use super::webhook::Action;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The fillers said in a turn so far, and when the next is due.
#[derive(Debug)]
pub(super) struct Fillers {
    pub(super) said: usize,
    next: tokio::time::Instant,
}

impl Fillers {
    pub(super) fn new() -> Self {
        Self {
            said: 0,
            next: tokio::time::Instant::now() + FILLER_AFTER,
        }
    }
}

/// Runs `work`; while it runs past the next filler's time, says the next of [`FILLER_LINES`]
/// (the work goes on meanwhile). `None`: the call has gone.
pub(super) async fn covered<T>(
    work: impl Future<Output = T>,
    fillers: &mut Fillers,
    (engine, info, turn, tx): (&Engine, &Arc<CallInfo>, u32, &mpsc::Sender<ToCall>),
) -> Option<T> {
    tokio::pin!(work);
    loop {
        let Some(line) = FILLER_LINES.get(fillers.said) else {
            return Some(work.await);
        };
        tokio::select! {
            r = &mut work => return Some(r),
            () = tokio::time::sleep_until(fillers.next) => {
                let index = fillers.said;
                fillers.said += 1;
                fillers.next = tokio::time::Instant::now() + FILLER_AGAIN;
                let saying = filler(engine, info, turn, tx, index, line);
                tokio::pin!(saying);
                // If the work ends while the filler is synthesised, the filler still comes first.
                tokio::select! {
                    said = &mut saying => if !said { return None },
                    r = &mut work => return saying.await.then_some(r),
                }
            }
        }
    }
}

/// How long a caller's turn may go without a word from the bot (recognition, suggestion and
/// webhook together) before they hear [`FILLER_LINE`].
pub const FILLER_AFTER: Duration = Duration::from_millis(1200);
/// How long after one filler began the next is said, if the reply is still not ready.
pub const FILLER_AGAIN: Duration = Duration::from_millis(2800);
/// What the caller hears while the reply is prepared: the first, then the second.
pub const FILLER_LINES: [&str; 2] = [FILLER_LINE, "Still on it, thanks for waiting."];
/// Said while the caller's words wait for a busy recogniser.
pub const FILLER_LINE: &str = "One moment.";
/// Starts the turn's reply with [`FILLER_LINE`] (the turn streams from then on: what follows is
/// added sentence by sentence). False when the call is gone.
async fn filler(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    tx: &mpsc::Sender<ToCall>,
    index: usize,
    line: &str,
) -> bool {
    tracing::info!(call_sid = %info.call_sid, turn, index, "the reply is slow; saying a filler");
    // The first filler begins the turn's reply (streaming: the answer follows as sentences).
    if index == 0 {
        let reply = ToCall::Reply {
            turn,
            say: String::new(),
            action: Action::Continue,
            fallback: None,
            webhook: None,
            sentences: Vec::new(),
        };
        if tx.send(reply).await.is_err() {
            return false;
        }
    }
    tx.send(ToCall::Sentence {
        turn,
        text: line.to_owned(),
    })
    .await
    .is_ok()
        && speak_one(engine, info, turn, index, line, tx).await
}
