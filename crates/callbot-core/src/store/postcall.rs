//! What follows a call's end: its `call.ended` and `call.analyzed` events and its analysis. A
//! worker takes ended calls with a conditional write (a hold that lapses if the worker dies), so
//! several processes share the work and a crash leaves nothing undone.

use super::StoreResult;
use crate::domain::CallSid;
use async_trait::async_trait;
use time::OffsetDateTime;

/// What `take_call` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Held for this worker now.
    Taken,
    /// Another worker holds it (its hold has not lapsed).
    Held,
    /// Nothing to do: the call is processed, not over, or unknown.
    Nothing,
}

impl Take {
    /// What a call whose take did not happen is: held by a worker, or nothing to do.
    pub fn of_untaken(processed: bool, held_until_ms: i64, now_ms: i64) -> Take {
        if !processed && held_until_ms > now_ms {
            Take::Held
        } else {
            Take::Nothing
        }
    }
}

#[async_trait]
pub trait PostCallStore: Send + Sync {
    /// Takes up to `limit` calls that ended (a final status) before `ended_before` and are not
    /// processed yet nor held (holds lapse at `until_ms`, Unix ms). Atomic per call; read and
    /// write, not idempotent (a taken call is held).
    async fn take_ended_calls(
        &self,
        ended_before: OffsetDateTime,
        now_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CallSid>>;
    /// Takes one call for its post-call work (the way a table's change stream hands calls to
    /// a worker) if it has ended, is not processed yet and is not held (holds lapse at
    /// `until_ms`). Atomic; read and write, not idempotent (a taken call is held).
    async fn take_call(&self, sid: &CallSid, now_ms: i64, until_ms: i64) -> StoreResult<Take>;
    /// Marks a call processed, with its analysis (when one was made). Idempotent.
    async fn finish_post_call(
        &self,
        sid: &CallSid,
        analysis: Option<&serde_json::Value>,
    ) -> StoreResult<()>;
    /// A call's analysis, once made. Read-only.
    async fn call_analysis(&self, sid: &CallSid) -> StoreResult<Option<serde_json::Value>>;
}
