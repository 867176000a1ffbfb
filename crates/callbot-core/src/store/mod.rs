//! The state store: records, the `Store` trait, and its adapters (SQLite for `callbot serve`,
//! DynamoDB for production). Both pass the same conformance suite (`conformance`).

use crate::apikey::KeyHash;
use crate::domain::{
    BotId, BotStatus, Context, FirstMessage, Goal, PhoneNumber, TenantId, Voice, WebhookUrl,
};
use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

pub use calls::{
    CallFilter, CallPage, CallRecord, CallStore, Cursor, RateDecision, StatusOutcome, StatusUpdate,
};

pub use campaigns::{
    Attempt, Campaign, CampaignCounts, CampaignRow, CampaignStore, Finish, status_conflict,
};
pub use keys::{ApiKeyInfo, KeyStore, key_id};
pub use leases::{LeaseDecision, LeaseStore};
pub use postcall::{PostCallStore, Take};
pub use test_runs::TestRunStore;
pub use tickets::{TicketPurpose, TicketStore, new_ticket};
pub use turns::{LlmTimings, ToolUse, TurnRecord, TurnStore, TurnTimings};
pub use usage::{LlmUsage, UsageStore};

mod calls;
pub mod campaigns;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod dynamo;
pub mod keys;
pub mod leases;
mod postcall;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod test_runs;
mod tickets;
mod turns;
mod usage;

/// A bot as stored. Built only from parsed domain values.
#[derive(Debug, Clone)]
pub struct Bot {
    pub id: BotId,
    pub tenant: TenantId,
    pub number: PhoneNumber,
    /// The telephony provider's id for the number (Twilio `PN…`, or `LOCAL…`), needed to release it.
    pub number_sid: String,
    pub goal: Goal,
    pub context: Context,
    /// Required in webhook mode; optional for LLM bots (it then serves tools and turn notices).
    pub webhook: Option<WebhookUrl>,
    pub voice: Voice,
    /// Webhook or LLM mode, suggestions, tools, allowed transfer numbers.
    pub brain: crate::domain::Brain,
    pub first_message: Option<FirstMessage>,
    /// Per-bot silence timeout and maximum call length.
    pub timers: crate::domain::CallTimers,
    /// Time zone and default variables.
    pub options: crate::domain::BotOptions,
    pub status: BotStatus,
    /// Key for signing webhook requests to this bot's business (HMAC-SHA256).
    pub webhook_secret: SecretString,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A bot together with the number of calls it took today (UTC).
#[derive(Debug, Clone)]
pub struct BotWithUsage {
    pub bot: Bot,
    pub calls_today: u32,
}

/// A remembered response to a request sent with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub tenant: TenantId,
    /// Which operation the key belongs to, e.g. `POST /bots`.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the request body: the same key with another body is a conflict.
    pub request_hash: String,
    pub status: u16,
    pub body: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("quota exceeded: at most {limit} allowed")]
    QuotaExceeded { limit: u32 },
    #[error("idempotency key already used")]
    IdempotencyKeyUsed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Persistent state shared by every process of a deployment.
///
/// Contract for all adapters:
/// - Calls may block on I/O but never block the async runtime (SQLite work runs on its own thread).
/// - Every method is atomic: it either happens completely or not at all. Cancelling the future after
///   it started may or may not have applied the change; retrying `create_bot` with the same
///   idempotency record is safe, other writes are idempotent or conditional as documented.
/// - Tenant scoping is enforced here: a method taking a tenant never returns or changes another
///   tenant's data.
#[async_trait]
pub trait Store:
    CallStore
    + CampaignStore
    + TurnStore
    + UsageStore
    + TicketStore
    + KeyStore
    + LeaseStore
    + PostCallStore
    + TestRunStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Short name for logs and the startup banner ("sqlite", "dynamodb").
    fn kind(&self) -> &'static str;

    /// Records an API key hash for a tenant. Idempotent (same hash, same tenant).
    async fn put_api_key(&self, hash: &KeyHash, tenant: &TenantId, label: &str) -> StoreResult<()>;
    async fn tenant_for_api_key(&self, hash: &KeyHash) -> StoreResult<Option<TenantId>>;
    /// The tenant of a key as a client presented it; `None` for an unknown key or one that cannot
    /// be a key at all (refused without a lookup).
    async fn tenant_for_raw_key(&self, raw: &str) -> StoreResult<Option<TenantId>> {
        let raw = raw.trim();
        if !crate::apikey::plausible(raw) {
            return Ok(None);
        }
        self.tenant_for_api_key(&KeyHash::of(raw)).await
    }

    /// Creates a bot if the tenant has fewer than `max_bots` bots, its number is not taken and the
    /// idempotency key (if any) is unused — all in one atomic step.
    /// Errors: `QuotaExceeded`, `IdempotencyKeyUsed` (checked first), `Conflict` (number taken).
    async fn create_bot(
        &self,
        bot: &Bot,
        max_bots: u32,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<()>;
    async fn get_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>>;
    /// The bot answering a number, whatever its tenant (used when a call comes in).
    async fn bot_by_number(&self, number: &PhoneNumber) -> StoreResult<Option<Bot>>;
    /// The tenant's bots, newest first, with today's call count (`day` is `YYYY-MM-DD`, UTC).
    async fn list_bots(&self, tenant: &TenantId, day: &str) -> StoreResult<Vec<BotWithUsage>>;
    async fn count_bots(&self, tenant: &TenantId) -> StoreResult<u32>;
    /// Replaces the mutable fields of an existing bot of the same tenant. `NotFound` otherwise.
    async fn update_bot(&self, bot: &Bot) -> StoreResult<()>;
    /// Deletes a bot (and frees its quota slot and number mapping). Returns what was deleted.
    async fn delete_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>>;

    async fn get_idempotency(
        &self,
        tenant: &TenantId,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    /// Atomically increments and returns a named sequence (first value 1). Never returns a value twice.
    async fn next_sequence(&self, name: &str) -> StoreResult<u64>;
    /// Calls a bot took on a UTC day.
    async fn calls_today(&self, bot: &BotId, day: &str) -> StoreResult<u32>;
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
