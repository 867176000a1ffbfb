//! DynamoDB adapter of the LLM usage tallies: item `TENANT#{t}` / `LLMUSAGE#{day}`, counted with
//! `ADD` (atomic across processes), kept 400 days.

use super::{DynamoStore, get_n, get_s, key, n, s, sdk_err};
use crate::domain::TenantId;
use crate::store::{LlmUsage, StoreResult, UsageStore};
use crate::time_fmt;
use async_trait::async_trait;

const PREFIX: &str = "LLMUSAGE#";

#[async_trait]
impl UsageStore for DynamoStore {
    async fn add_llm_usage(&self, tenant: &TenantId, add: &LlmUsage) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("TENANT#{}", tenant.as_str()),
                &format!("{PREFIX}{}", add.day),
            )))
            .update_expression(
                "ADD requests :r, prompt_tokens :p, completion_tokens :c SET expires_at = :exp",
            )
            .expression_attribute_values(":r", n(add.requests))
            .expression_attribute_values(":p", n(add.prompt_tokens))
            .expression_attribute_values(":c", n(add.completion_tokens))
            .expression_attribute_values(":exp", n(time_fmt::now().unix_timestamp() + 400 * 86_400))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn llm_usage(&self, tenant: &TenantId, days: u32) -> StoreResult<Vec<LlmUsage>> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :u)")
            .expression_attribute_values(":p", s(format!("TENANT#{}", tenant.as_str())))
            .expression_attribute_values(":u", s(PREFIX))
            .scan_index_forward(false)
            .limit(days.max(1) as i32)
            .send()
            .await
            .map_err(sdk_err)?;
        page.items()
            .iter()
            .map(|item| {
                Ok(LlmUsage {
                    day: get_s(item, "sk")?.trim_start_matches(PREFIX).to_owned(),
                    requests: get_n(item, "requests")? as u64,
                    prompt_tokens: get_n(item, "prompt_tokens")? as u64,
                    completion_tokens: get_n(item, "completion_tokens")? as u64,
                })
            })
            .collect()
    }
}
