//! API key management: listing keys (their public ids and labels, never the keys) and revoking
//! them. A key's public id is `key_` and the first 16 hex digits of its SHA-256 hash: enough to
//! name it, useless for finding the key.

use super::StoreResult;
use crate::apikey::KeyHash;
use crate::domain::TenantId;
use async_trait::async_trait;

/// What may be shown about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// `key_` + 16 hex digits.
    pub id: String,
    pub tenant: TenantId,
    pub label: String,
    /// RFC 3339.
    pub created_at: String,
}

/// The public id of the key with this hash.
pub fn key_id(hash: &KeyHash) -> String {
    format!("key_{}", &hash.as_str()[..16])
}

/// The hash prefix an id names, when it is well formed.
pub fn id_prefix(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("key_")?;
    (hex.len() == 16
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The keys of `tenant` (every tenant's with `None`: the operator's CLI), oldest first.
    /// Read-only; safe to cancel.
    async fn list_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyInfo>>;
    /// Deletes the key with public id `id` if it belongs to `tenant` (any tenant with `None`).
    /// Returns whether a key was deleted; a request with it fails from then on, on every
    /// instance. Idempotent (a second call returns `false`); safe to cancel.
    async fn revoke_api_key(&self, tenant: Option<&TenantId>, id: &str) -> StoreResult<bool>;
}
