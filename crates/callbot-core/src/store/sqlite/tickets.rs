//! SQLite adapter of the single-use tickets: one row per ticket hash, consumed by `DELETE … RETURNING`.

use super::{SqliteStore, backend};
use crate::apikey::KeyHash;
use crate::domain::TenantId;
use crate::store::{StoreResult, TicketPurpose, TicketStore, corrupt};
use async_trait::async_trait;
use rusqlite::OptionalExtension;

#[async_trait]
impl TicketStore for SqliteStore {
    async fn put_ticket(
        &self,
        hash: &KeyHash,
        tenant: &TenantId,
        purpose: &TicketPurpose,
        expires_ms: u64,
    ) -> StoreResult<()> {
        let (hash, tenant) = (hash.as_str().to_owned(), tenant.as_str().to_owned());
        let purpose = purpose.key();
        self.run(move |c| {
            // Expired tickets go as new ones come, so the table stays small.
            c.execute(
                "DELETE FROM tickets WHERE expires_ms < ?1",
                [expires_ms as i64 - 3_600_000],
            )
            .map_err(backend)?;
            c.execute(
                "INSERT INTO tickets (hash, tenant, purpose, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![hash, tenant, purpose, expires_ms as i64],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_ticket(
        &self,
        hash: &KeyHash,
        purpose: &TicketPurpose,
        now_ms: u64,
    ) -> StoreResult<Option<TenantId>> {
        let hash = hash.as_str().to_owned();
        let row: Option<(String, String, i64)> = self
            .run(move |c| {
                c.query_row(
                    "DELETE FROM tickets WHERE hash = ?1 RETURNING tenant, purpose, expires_ms",
                    [hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        let Some((tenant, kind, expires)) = row else {
            return Ok(None);
        };
        if kind != purpose.key() || (expires as u64) < now_ms {
            return Ok(None);
        }
        TenantId::parse(&tenant).map(Some).map_err(corrupt)
    }
}
