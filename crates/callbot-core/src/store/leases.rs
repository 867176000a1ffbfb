//! Leases: limits on things that are concurrent (calls per tenant, observer sockets per user),
//! held in the store so they hold across every instance. A lease has a holder (a call sid, a
//! connection id) and an expiry; the holder renews it while it lives and releases it when done,
//! so a crashed instance's leases lapse on their own.

use super::StoreResult;
use crate::domain::TenantId;
use async_trait::async_trait;

/// How long a lease lasts without renewal; holders renew every [`LEASE_RENEW`].
pub const LEASE_TTL_MS: u64 = 120_000;
pub const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(45);

/// The scope of a tenant's calls in progress (holder: the call sid).
pub fn calls_scope(tenant: &TenantId) -> String {
    format!("calls#{tenant}")
}

/// The scope of an end user's observer sockets (holder: a connection id).
pub fn observers_scope(tenant: &TenantId, user: Option<&str>) -> String {
    format!("observe#{tenant}#{}", user.unwrap_or(""))
}

/// Where a live call's engine runs (holder: that instance's internal URL), so a socket opened on
/// another instance reaches it.
pub fn route_scope(sid: &crate::domain::CallSid) -> String {
    format!("route#{sid}")
}

/// Now, in Unix ms (what leases are timed in).
pub fn now_ms() -> u64 {
    u64::try_from(crate::time_fmt::now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The answer to asking for a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    Acquired,
    /// `limit` other holders hold unexpired leases.
    Full,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes one of `limit` leases of `scope` for `holder` until `until_ms` (Unix ms), unless
    /// `limit` other holders hold leases unexpired at `now_ms`. The same holder asking again
    /// renews its lease (idempotent). Atomic across processes; safe to cancel (at worst a lease
    /// is held until it expires).
    async fn acquire_lease(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        until_ms: u64,
        now_ms: u64,
    ) -> StoreResult<LeaseDecision>;
    /// Extends `holder`'s lease to `until_ms`; `false` when it holds none any more (it expired
    /// and another holder took the place). Idempotent.
    async fn renew_lease(&self, scope: &str, holder: &str, until_ms: u64) -> StoreResult<bool>;
    /// Gives `holder`'s lease back (nothing when it has none). Idempotent.
    async fn release_lease(&self, scope: &str, holder: &str) -> StoreResult<()>;
    /// How many leases of `scope` are unexpired at `now_ms`. Read-only.
    async fn count_leases(&self, scope: &str, now_ms: u64) -> StoreResult<u32>;
    /// The holders of `scope`'s leases unexpired at `now_ms`. Read-only.
    async fn lease_holders(&self, scope: &str, now_ms: u64) -> StoreResult<Vec<String>>;
}

/// Every running call engine holds a lease here (holder: its instance id), renewed while it runs.
pub const ENGINES_SCOPE: &str = "engines";
/// ...and one here while it is saturated: `/voice` sheds new calls when every engine is.
pub const SATURATED_SCOPE: &str = "engines-saturated";
/// How long an engine's load report stands without renewal.
pub const LOAD_TTL_MS: u64 = 15_000;
