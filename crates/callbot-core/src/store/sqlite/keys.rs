//! SQLite adapter of key management: rows of `api_keys`, named by their hash's first 16 digits.

use super::{SqliteStore, backend};
use crate::domain::TenantId;
use crate::store::keys::{ApiKeyInfo, KeyStore, id_prefix};
use crate::store::{StoreResult, corrupt};
use async_trait::async_trait;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyInfo>> {
        let tenant = tenant.map(|t| t.as_str().to_owned());
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT hash, tenant, label, created_at FROM api_keys
                     WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at, hash",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&tenant], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(backend)?;
            let mut keys = Vec::new();
            for row in rows {
                let (hash, tenant, label, created_at) = row.map_err(backend)?;
                let hash = crate::apikey::KeyHash::from_stored(&hash)
                    .ok_or_else(|| corrupt("api key hash"))?;
                keys.push(ApiKeyInfo {
                    id: crate::store::keys::key_id(&hash),
                    tenant: TenantId::parse(&tenant).map_err(corrupt)?,
                    label,
                    created_at,
                });
            }
            Ok(keys)
        })
        .await
    }

    async fn revoke_api_key(&self, tenant: Option<&TenantId>, id: &str) -> StoreResult<bool> {
        let Some(prefix) = id_prefix(id) else {
            return Ok(false);
        };
        let (prefix, tenant) = (prefix.to_owned(), tenant.map(|t| t.as_str().to_owned()));
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM api_keys WHERE substr(hash, 1, 16) = ?1 AND (?2 IS NULL OR tenant = ?2)",
                    rusqlite::params![prefix, tenant],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}
