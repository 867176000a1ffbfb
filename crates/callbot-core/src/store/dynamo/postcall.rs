//! Post-call work on DynamoDB: not kept yet. No call is handed to a worker (so `call.ended`,
//! `call.analyzed` and analyses happen on the SQLite store only) and no analysis is stored.

use super::DynamoStore;
use crate::domain::CallSid;
use crate::store::StoreResult;
use crate::store::postcall::PostCallStore;
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
impl PostCallStore for DynamoStore {
    async fn take_ended_calls(
        &self,
        _: OffsetDateTime,
        _: i64,
        _: i64,
        _: u32,
    ) -> StoreResult<Vec<CallSid>> {
        Ok(Vec::new())
    }

    async fn finish_post_call(
        &self,
        _: &CallSid,
        _: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        Ok(())
    }

    async fn call_analysis(&self, _: &CallSid) -> StoreResult<Option<serde_json::Value>> {
        Ok(None)
    }
}
