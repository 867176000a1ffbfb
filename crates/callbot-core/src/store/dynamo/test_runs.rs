//! DynamoDB adapter of the test runs: item `BOT#<bot>` / `TESTRUN#<id>` (ids sort by creation
//! time, so one `Query` newest first lists a bot's runs), the tenant an attribute checked on
//! every read and write, the rest the JSON document `doc`.

use super::{DynamoStore, Item, bot_pk, get_s, key, met, s, sdk_err};
use crate::domain::{BotId, TenantId};
use crate::store::test_runs::{TestRunStore, from_doc, to_doc};
use crate::store::{StoreResult, corrupt};
use crate::testcall::{TestRun, TestRunId};
use crate::time_fmt;
use async_trait::async_trait;

fn run_key(bot: &BotId, id: &TestRunId) -> Item {
    key(bot_pk(bot.as_str()), &format!("TESTRUN#{id}"))
}

/// The run in `item` if it is the tenant's.
fn run_of(item: &Item, tenant: &TenantId, bot: &BotId) -> StoreResult<Option<TestRun>> {
    if get_s(item, "tenant")? != tenant.as_str() {
        return Ok(None);
    }
    let created =
        time_fmt::parse_rfc3339(get_s(item, "created_at")?).ok_or_else(|| corrupt("created_at"))?;
    from_doc(
        get_s(item, "id")?,
        tenant.as_str(),
        bot.as_str(),
        created,
        get_s(item, "doc")?,
    )
    .map(Some)
}

#[async_trait]
impl TestRunStore for DynamoStore {
    async fn put_test_run(&self, run: &TestRun) -> StoreResult<()> {
        let mut item = run_key(&run.bot, &run.id);
        item.insert("id".into(), s(run.id.as_str()));
        item.insert("tenant".into(), s(run.tenant.as_str()));
        item.insert("created_at".into(), s(time_fmt::rfc3339(run.created_at)));
        item.insert("doc".into(), s(to_doc(run)));
        // A run of another tenant under the same key is left alone.
        met(self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(run.tenant.as_str()))
            .send()
            .await)?;
        Ok(())
    }

    async fn get_test_run(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        id: &TestRunId,
    ) -> StoreResult<Option<TestRun>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(run_key(bot, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        match out.item() {
            Some(item) => run_of(item, tenant, bot),
            None => Ok(None),
        }
    }

    async fn list_test_runs(
        &self,
        tenant: &TenantId,
        bot: &BotId,
        limit: u32,
    ) -> StoreResult<Vec<TestRun>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :runs)")
            .expression_attribute_values(":pk", s(bot_pk(bot.as_str())))
            .expression_attribute_values(":runs", s("TESTRUN#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(sdk_err)?;
        let mut runs = Vec::new();
        for item in out.items() {
            if let Some(run) = run_of(item, tenant, bot)? {
                runs.push(run);
            }
        }
        Ok(runs)
    }
}
