//! SQLite adapter of the test runs: one row per run (`test_runs`), ids sort by creation time.

use super::{SqliteStore, backend};
use crate::domain::{BotId, TenantId};
use crate::store::test_runs::{TestRunStore, from_doc, to_doc};
use crate::store::{StoreResult, corrupt};
use crate::testcall::{TestRun, TestRunId};
use crate::time_fmt;
use async_trait::async_trait;
use rusqlite::params;

type Row = (String, String, String, String, String);

fn run_of(r: Row) -> StoreResult<TestRun> {
    let (id, tenant, bot, created, doc) = r;
    let created = time_fmt::parse_rfc3339(&created).ok_or_else(|| corrupt("created_at"))?;
    from_doc(&id, &tenant, &bot, created, &doc)
}

const COLUMNS: &str = "SELECT id, tenant, bot_id, created_at, doc FROM test_runs";

#[async_trait]
impl TestRunStore for SqliteStore {
    async fn put_test_run(&self, run: &TestRun) -> StoreResult<()> {
        let (id, tenant, bot) = (
            run.id.as_str().to_owned(),
            run.tenant.as_str().to_owned(),
            run.bot.as_str().to_owned(),
        );
        let created = time_fmt::rfc3339(run.created_at);
        let doc = to_doc(run);
        self.run(move |c| {
            // A run of another tenant or bot under the same id is left alone.
            c.execute(
                "INSERT INTO test_runs (id, tenant, bot_id, created_at, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc \
                 WHERE test_runs.tenant = excluded.tenant AND test_runs.bot_id = excluded.bot_id",
                params![id, tenant, bot, created, doc],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_test_run(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        id: &TestRunId,
    ) -> StoreResult<Option<TestRun>> {
        let args = [tenant.as_str(), bot.as_str(), id.as_str()].map(str::to_owned);
        let rows = self
            .run(move |c| {
                query(
                    c,
                    &format!("{COLUMNS} WHERE tenant = ?1 AND bot_id = ?2 AND id = ?3"),
                    &args,
                )
            })
            .await?;
        rows.into_iter().next().map(run_of).transpose()
    }

    async fn list_test_runs(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        limit: u32,
    ) -> StoreResult<Vec<TestRun>> {
        let args = [tenant.as_str(), bot.as_str()].map(str::to_owned);
        let sql =
            format!("{COLUMNS} WHERE tenant = ?1 AND bot_id = ?2 ORDER BY id DESC LIMIT {limit}");
        let rows = self.run(move |c| query(c, &sql, &args)).await?;
        rows.into_iter().map(run_of).collect()
    }
}

fn query(c: &rusqlite::Connection, sql: &str, args: &[String]) -> StoreResult<Vec<Row>> {
    let mut stmt = c.prepare(sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}
