//! SQLite adapter of the LLM usage tallies (one row per tenant and day, upserted).

use super::{SqliteStore, backend};
use crate::domain::TenantId;
use crate::store::{LlmUsage, StoreResult, UsageStore};
use async_trait::async_trait;

#[async_trait]
impl UsageStore for SqliteStore {
    async fn add_llm_usage(&self, tenant: &TenantId, add: &LlmUsage) -> StoreResult<()> {
        let (tenant, u) = (tenant.as_str().to_owned(), add.clone());
        self.run(move |c| {
            c.execute(
                "INSERT INTO llm_usage (tenant, day, requests, prompt_tokens, completion_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, day) DO UPDATE SET
                   requests = requests + excluded.requests,
                   prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                   completion_tokens = completion_tokens + excluded.completion_tokens",
                rusqlite::params![
                    tenant,
                    u.day,
                    u.requests as i64,
                    u.prompt_tokens as i64,
                    u.completion_tokens as i64
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn llm_usage(&self, tenant: &TenantId, days: u32) -> StoreResult<Vec<LlmUsage>> {
        let tenant = tenant.as_str().to_owned();
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT day, requests, prompt_tokens, completion_tokens FROM llm_usage
                     WHERE tenant = ?1 ORDER BY day DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params![tenant, days], |r| {
                    Ok(LlmUsage {
                        day: r.get(0)?,
                        requests: r.get::<_, i64>(1)? as u64,
                        prompt_tokens: r.get::<_, i64>(2)? as u64,
                        completion_tokens: r.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
