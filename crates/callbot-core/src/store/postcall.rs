//! What follows a call's end: its `call.ended` and `call.analyzed` events and its analysis. A
//! worker takes ended calls with a conditional write (a hold that lapses if the worker dies), so
//! several processes share the work and a crash leaves nothing undone.

use super::StoreResult;
use crate::domain::CallSid;
use async_trait::async_trait;
use time::OffsetDateTime;

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
    /// Marks a call processed, with its analysis (when one was made). Idempotent.
    async fn finish_post_call(
        &self,
        sid: &CallSid,
        analysis: Option<&serde_json::Value>,
    ) -> StoreResult<()>;
    /// A call's analysis, once made. Read-only.
    async fn call_analysis(&self, sid: &CallSid) -> StoreResult<Option<serde_json::Value>>;
}
