//! Language-model usage per tenant and UTC day (requests, prompt and completion tokens), counted
//! atomically from every process: the `/llm/v1` gateway and the calls' own LLM turns.

use super::StoreResult;
use crate::domain::TenantId;
use async_trait::async_trait;
use serde::Serialize;

/// One day of a tenant's LLM use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LlmUsage {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds to the tenant's tally for `day`. Atomic (concurrent adds all count); not idempotent.
    async fn add_llm_usage(&self, tenant: &TenantId, add: &LlmUsage) -> StoreResult<()>;
    /// The tenant's tallies, newest day first, at most `days` of them.
    async fn llm_usage(&self, tenant: &TenantId, days: u32) -> StoreResult<Vec<LlmUsage>>;
}
