//! Stored test runs (`POST /bots/{id}/tests`): one record per run, written when it is asked for
//! and again when it starts and finishes; listed per bot, newest first. Both adapters keep the
//! keys in columns (or key attributes) and the rest as one JSON document (`Doc`).

use super::{StoreResult, corrupt};
use crate::domain::{BotId, TenantId};
use crate::testcall::{Mode, Outcome, RunStatus, TestRun, TestRunId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[async_trait]
pub trait TestRunStore: Send + Sync {
    /// Writes a run (new, or its next state). Idempotent: the same run written twice is one
    /// run. A run is only ever replaced by one of the same tenant and bot.
    async fn put_test_run(&self, run: &TestRun) -> StoreResult<()>;
    /// One of the tenant's runs of this bot. Read-only.
    async fn get_test_run(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        id: &TestRunId,
    ) -> StoreResult<Option<TestRun>>;
    /// The tenant's runs of this bot, newest first, at most `limit`. Read-only.
    async fn list_test_runs(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        limit: u32,
    ) -> StoreResult<Vec<TestRun>>;
}

/// The part of a run kept as one JSON document.
#[derive(Serialize, Deserialize)]
struct Doc {
    status: RunStatus,
    #[serde(default)]
    mode: Option<Mode>,
    scenarios: serde_json::Value,
    #[serde(default)]
    outcomes: Vec<Outcome>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    finished_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    deadline: OffsetDateTime,
}

/// The run's document (everything but its id, tenant, bot and creation time).
pub(crate) fn to_doc(run: &TestRun) -> String {
    let doc = Doc {
        status: run.status,
        mode: run.mode,
        scenarios: run.scenarios.clone(),
        outcomes: run.outcomes.clone(),
        finished_at: run.finished_at,
        deadline: run.deadline,
    };
    serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned())
}

/// A run from its keys and its document.
pub(crate) fn from_doc(
    id: &str,
    tenant: &str,
    bot: &str,
    created_at: OffsetDateTime,
    doc: &str,
) -> StoreResult<TestRun> {
    let d: Doc = serde_json::from_str(doc).map_err(corrupt)?;
    Ok(TestRun {
        id: TestRunId::parse(id).map_err(corrupt)?,
        tenant: TenantId::parse(tenant).map_err(corrupt)?,
        bot: BotId::parse(bot).map_err(corrupt)?,
        status: d.status,
        mode: d.mode,
        scenarios: d.scenarios,
        outcomes: d.outcomes,
        created_at,
        finished_at: d.finished_at,
        deadline: d.deadline,
    })
}
