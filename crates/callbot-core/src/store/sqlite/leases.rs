//! SQLite adapter of the leases: one row per (scope, holder), counted in an immediate
//! transaction, so the limit holds for every process on the database file.

use super::{SqliteStore, backend};
use crate::store::StoreResult;
use crate::store::leases::{LeaseDecision, LeaseStore};
use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        until_ms: u64,
        now_ms: u64,
    ) -> StoreResult<LeaseDecision> {
        let (scope, holder) = (scope.to_owned(), holder.to_owned());
        let (until, now) = (until_ms as i64, now_ms as i64);
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM leases WHERE scope = ?1 AND until_ms <= ?2",
                params![scope, now],
            )
            .map_err(backend)?;
            let renewed = tx
                .execute(
                    "UPDATE leases SET until_ms = ?3 WHERE scope = ?1 AND holder = ?2",
                    params![scope, holder, until],
                )
                .map_err(backend)?;
            if renewed == 0 {
                let held: u32 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM leases WHERE scope = ?1",
                        [&scope],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if held >= limit {
                    return Ok(LeaseDecision::Full);
                }
                tx.execute(
                    "INSERT INTO leases (scope, holder, until_ms) VALUES (?1, ?2, ?3)",
                    params![scope, holder, until],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(LeaseDecision::Acquired)
        })
        .await
    }

    async fn renew_lease(&self, scope: &str, holder: &str, until_ms: u64) -> StoreResult<bool> {
        let (scope, holder) = (scope.to_owned(), holder.to_owned());
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE leases SET until_ms = ?3 WHERE scope = ?1 AND holder = ?2",
                    params![scope, holder, until_ms as i64],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn count_leases(&self, scope: &str, now_ms: u64) -> StoreResult<u32> {
        let scope = scope.to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM leases WHERE scope = ?1 AND until_ms > ?2",
                params![scope, now_ms as i64],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }

    async fn lease_holders(&self, scope: &str, now_ms: u64) -> StoreResult<Vec<String>> {
        let scope = scope.to_owned();
        self.run(move |c| {
            let mut q = c
                .prepare("SELECT holder FROM leases WHERE scope = ?1 AND until_ms > ?2 ORDER BY until_ms DESC")
                .map_err(backend)?;
            let rows = q
                .query_map(params![scope, now_ms as i64], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn release_lease(&self, scope: &str, holder: &str) -> StoreResult<()> {
        let (scope, holder) = (scope.to_owned(), holder.to_owned());
        self.run(move |c| {
            c.execute(
                "DELETE FROM leases WHERE scope = ?1 AND holder = ?2",
                params![scope, holder],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
