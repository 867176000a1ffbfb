//! SQLite adapter of the post-call work: `post_call` is NULL until a call is processed
//! ('done'); `post_call_until` holds it for one worker.

use super::{SqliteStore, backend};
use crate::domain::CallSid;
use crate::store::postcall::{PostCallStore, Take};
use crate::store::{StoreResult, corrupt};
use crate::time_fmt;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

#[async_trait]
impl PostCallStore for SqliteStore {
    async fn take_ended_calls(
        &self,
        ended_before: OffsetDateTime,
        now_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CallSid>> {
        let before = time_fmt::rfc3339(ended_before);
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let sids: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT sid FROM calls WHERE post_call IS NULL AND post_call_until <= ?1 \
                         AND status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
                         AND COALESCE(ended_at, updated_at) <= ?2 ORDER BY updated_at LIMIT ?3",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![now_ms, before, limit], |r| r.get(0))
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            for sid in &sids {
                tx.execute(
                    "UPDATE calls SET post_call_until = ?2 WHERE sid = ?1",
                    params![sid, until_ms],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            sids.iter()
                .map(|s| CallSid::parse(s).map_err(corrupt))
                .collect()
        })
        .await
    }

    async fn take_call(&self, sid: &CallSid, now_ms: i64, until_ms: i64) -> StoreResult<Take> {
        let sid = sid.to_string();
        self.run(move |c| {
            let changed = c
                .execute(
                    "UPDATE calls SET post_call_until = ?3 WHERE sid = ?1 AND post_call IS NULL \
                     AND post_call_until <= ?2 \
                     AND status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled')",
                    params![sid, now_ms, until_ms],
                )
                .map_err(backend)?;
            if changed == 1 {
                return Ok(Take::Taken);
            }
            let found: Option<(bool, i64)> = c
                .query_row(
                    "SELECT post_call IS NOT NULL, post_call_until FROM calls WHERE sid = ?1",
                    [&sid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            Ok(found.map_or(Take::Nothing, |(done, until)| {
                Take::of_untaken(done, until, now_ms)
            }))
        })
        .await
    }

    async fn finish_post_call(
        &self,
        sid: &CallSid,
        analysis: Option<&serde_json::Value>,
    ) -> StoreResult<()> {
        let (sid, analysis) = (sid.to_string(), analysis.map(|a| a.to_string()));
        self.run(move |c| {
            c.execute(
                "UPDATE calls SET post_call = 'done', analysis = COALESCE(?2, analysis) WHERE sid = ?1",
                params![sid, analysis],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn call_analysis(&self, sid: &CallSid) -> StoreResult<Option<serde_json::Value>> {
        let sid = sid.to_string();
        self.run(move |c| {
            let raw: Option<Option<String>> = c
                .query_row("SELECT analysis FROM calls WHERE sid = ?1", [sid], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            raw.flatten()
                .map(|a| serde_json::from_str(&a).map_err(corrupt))
                .transpose()
        })
        .await
    }
}
