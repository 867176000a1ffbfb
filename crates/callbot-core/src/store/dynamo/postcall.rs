//! Post-call work on DynamoDB: the call item carries `post_call` (`done` once processed),
//! `post_call_until` (a worker's hold) and `analysis` (JSON). Calls reach the worker through the
//! table's stream (the post-call function is handed each call item whose status became final),
//! so there is nothing to poll: `take_ended_calls` finds nothing, and `take_call` holds the one
//! call the stream named.

use super::{DynamoStore, get_n, key, met, n, s};
use crate::domain::{CallSid, CallStatus};
use crate::store::postcall::{PostCallStore, Take};
use crate::store::{StoreResult, corrupt};
use async_trait::async_trait;
use time::OffsetDateTime;

const FINAL: [CallStatus; 5] = [
    CallStatus::Completed,
    CallStatus::Busy,
    CallStatus::Failed,
    CallStatus::NoAnswer,
    CallStatus::Canceled,
];

fn call_key(sid: &CallSid) -> super::Item {
    key(format!("CALL#{sid}"), "CALL")
}

#[async_trait]
impl PostCallStore for DynamoStore {
    /// Nothing: on DynamoDB the table's stream hands ended calls to the worker.
    async fn take_ended_calls(
        &self,
        _: OffsetDateTime,
        _: i64,
        _: i64,
        _: u32,
    ) -> StoreResult<Vec<CallSid>> {
        Ok(Vec::new())
    }

    async fn take_call(&self, sid: &CallSid, now_ms: i64, until_ms: i64) -> StoreResult<Take> {
        let mut req = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(call_key(sid)))
            .update_expression("SET post_call_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(post_call) \
                 AND (attribute_not_exists(post_call_until) OR post_call_until <= :now) \
                 AND #status IN (:s0, :s1, :s2, :s3, :s4)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":now", n(now_ms));
        for (i, status) in FINAL.iter().enumerate() {
            req = req.expression_attribute_values(format!(":s{i}"), s(status.as_str()));
        }
        match met(req.send().await)? {
            Some(_) => Ok(Take::Taken),
            None => {
                let Some(item) = self.get_item(call_key(sid)).await? else {
                    return Ok(Take::Nothing);
                };
                let until = match item.get("post_call_until") {
                    Some(_) => get_n(&item, "post_call_until")?,
                    None => 0,
                };
                Ok(Take::of_untaken(
                    item.contains_key("post_call"),
                    until,
                    now_ms,
                ))
            }
        }
    }

    async fn finish_post_call(
        &self,
        sid: &CallSid,
        analysis: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(call_key(sid)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":done", s("done"));
        req = match analysis {
            Some(a) => req
                .update_expression("SET post_call = :done, analysis = :a")
                .expression_attribute_values(":a", s(a.to_string())),
            None => req.update_expression("SET post_call = :done"),
        };
        // A call deleted meanwhile has nothing left to mark.
        met(req.send().await)?;
        Ok(())
    }

    async fn call_analysis(&self, sid: &CallSid) -> StoreResult<Option<serde_json::Value>> {
        let item = self.get_item(call_key(sid)).await?;
        item.and_then(|i| i.get("analysis").and_then(|v| v.as_s().ok()).cloned())
            .map(|raw| serde_json::from_str(&raw).map_err(corrupt))
            .transpose()
    }
}
