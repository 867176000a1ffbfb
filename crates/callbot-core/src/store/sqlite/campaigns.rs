//! SQLite adapter of the campaigns: each row move is one immediate transaction that checks the
//! row's state (and, for a claim, the campaign's status and its active rows) before writing.

use super::{SqliteStore, backend};
use crate::domain::{
    BotId, CallSid, CallingWindow, CampaignId, CampaignStatus, PhoneNumber, RetryPolicy, RowState,
    TenantId, Variables,
};
use crate::store::campaigns::{
    Attempt, Campaign, CampaignCounts, CampaignRow, CampaignStore, Finish, status_conflict,
};
use crate::store::{StoreError, StoreResult, corrupt};
use crate::time_fmt;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

const CAMPAIGN_COLUMNS: &str = "id, tenant, bot_id, name, calling_window, retry, max_concurrency, \
                                status, row_count, created_at, updated_at";
const ROW_COLUMNS: &str =
    "idx, to_number, variables, state, attempts, next_at_ms, claimed_until_ms";

fn campaign_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Campaign>> {
    let s = |i: usize| row.get::<_, String>(i);
    let (id, tenant, bot, name, window, retry) = (s(0)?, s(1)?, s(2)?, s(3)?, s(4)?, s(5)?);
    let (max, status, rows, created, updated): (u32, String, u32, String, String) =
        (row.get(6)?, s(7)?, row.get(8)?, s(9)?, s(10)?);
    let json = |raw: &str| serde_json::from_str::<serde_json::Value>(raw).map_err(corrupt);
    let time = |v: &str| time_fmt::parse_rfc3339(v).ok_or_else(|| corrupt("campaign time"));
    Ok((|| {
        Ok(Campaign {
            id: CampaignId::parse(&id).map_err(corrupt)?,
            tenant: TenantId::parse(&tenant).map_err(corrupt)?,
            bot: BotId::parse(&bot).map_err(corrupt)?,
            name,
            window: CallingWindow::parse(&json(&window)?).map_err(corrupt)?,
            retry: RetryPolicy::parse(&json(&retry)?).map_err(corrupt)?,
            max_concurrency: max,
            status: CampaignStatus::parse(&status).map_err(corrupt)?,
            rows,
            created_at: time(&created)?,
            updated_at: time(&updated)?,
        })
    })())
}

fn row_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<CampaignRow>> {
    let (index, to, vars, state, attempts): (u32, String, Option<String>, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let (next_at_ms, claimed_until_ms): (i64, i64) = (row.get(5)?, row.get(6)?);
    Ok((|| {
        Ok(CampaignRow {
            index,
            to: PhoneNumber::parse(&to).map_err(corrupt)?,
            variables: Variables::from_stored(vars.as_deref()).map_err(corrupt)?,
            state: RowState::parse(&state).map_err(corrupt)?,
            attempts: CampaignRow::attempts_from_json(&attempts)?,
            next_at_ms,
            claimed_until_ms,
        })
    })())
}

fn rows_where(
    c: &Connection,
    sql_where: &str,
    p: impl rusqlite::Params,
) -> StoreResult<Vec<CampaignRow>> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM campaign_rows WHERE {sql_where}"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map(p, row_from_row).map_err(backend)?;
    rows.map(|r| r.map_err(backend)?).collect()
}

fn immediate(c: &mut Connection) -> StoreResult<Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)
}

/// A row's state and attempts, read inside `tx`.
fn row_state(
    tx: &Transaction<'_>,
    id: &str,
    index: u32,
) -> StoreResult<Option<(RowState, Vec<Attempt>)>> {
    let found: Option<(String, String)> = tx
        .query_row(
            "SELECT state, attempts FROM campaign_rows WHERE campaign_id = ?1 AND idx = ?2",
            params![id, index],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    found
        .map(|(s, a)| {
            Ok((
                RowState::parse(&s).map_err(corrupt)?,
                CampaignRow::attempts_from_json(&a)?,
            ))
        })
        .transpose()
}

fn write_row(
    tx: &Transaction<'_>,
    id: &str,
    index: u32,
    state: RowState,
    attempts: &[Attempt],
    next_at: Option<i64>,
    claimed_until: i64,
) -> StoreResult<()> {
    let outcome = attempts.iter().rev().find_map(|a| a.outcome.clone());
    tx.execute(
        "UPDATE campaign_rows SET state = ?3, attempts = ?4, outcome = ?5, \
         next_at_ms = COALESCE(?6, next_at_ms), claimed_until_ms = ?7 \
         WHERE campaign_id = ?1 AND idx = ?2",
        params![
            id,
            index,
            state.as_str(),
            serde_json::to_string(attempts).unwrap_or_default(),
            outcome,
            next_at,
            claimed_until
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn active_count(tx: &Transaction<'_>, id: &str) -> StoreResult<u32> {
    tx.query_row(
        "SELECT COUNT(*) FROM campaign_rows WHERE campaign_id = ?1 AND state IN ('dialling', 'calling')",
        [id],
        |r| r.get(0),
    )
    .map_err(backend)
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn create_campaign(&self, campaign: &Campaign, rows: &[CampaignRow]) -> StoreResult<()> {
        let (c, rows) = (campaign.clone(), rows.to_vec());
        self.run(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(
                &format!("INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![c.id.as_str(), c.tenant.as_str(), c.bot.as_str(), c.name, c.window.to_json().to_string(),
                    c.retry.to_json().to_string(), c.max_concurrency, c.status.as_str(), c.rows,
                    time_fmt::rfc3339(c.created_at), time_fmt::rfc3339(c.updated_at)],
            )
            .map_err(backend)?;
            {
                let mut insert = tx
                    .prepare(&format!("INSERT INTO campaign_rows (campaign_id, {ROW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))
                    .map_err(backend)?;
                for r in &rows {
                    insert
                        .execute(params![c.id.as_str(), r.index, r.to.as_str(), r.variables.to_stored(),
                            r.state.as_str(), r.attempts_json(), r.next_at_ms, r.claimed_until_ms])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> StoreResult<Option<Campaign>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1 AND tenant = ?2"),
                params![id.as_str(), tenant.as_str()],
                campaign_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn list_campaigns(&self, tenant: &TenantId) -> StoreResult<Vec<Campaign>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant = ?1 ORDER BY id DESC"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map([tenant.as_str()], campaign_from_row)
                .map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn set_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
    ) -> StoreResult<Campaign> {
        let (tenant, id, from) = (tenant.clone(), id.clone(), from.to_vec());
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let current = tx
                .query_row(
                    &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1 AND tenant = ?2"),
                    params![id.as_str(), tenant.as_str()],
                    campaign_from_row,
                )
                .optional()
                .map_err(backend)?
                .transpose()?
                .ok_or(StoreError::NotFound)?;
            if !from.contains(&current.status) {
                return Err(status_conflict(current.status, to));
            }
            let now = time_fmt::now();
            tx.execute(
                "UPDATE campaigns SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.as_str(), to.as_str(), time_fmt::rfc3339(now)],
            )
            .map_err(backend)?;
            if to == CampaignStatus::Cancelled {
                tx.execute(
                    "UPDATE campaign_rows SET state = 'cancelled' WHERE campaign_id = ?1 AND state = 'pending'",
                    [id.as_str()],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(Campaign { status: to, updated_at: now, ..current })
        })
        .await
    }

    async fn campaign_counts(&self, id: &CampaignId) -> StoreResult<CampaignCounts> {
        let id = id.clone();
        self.run(move |c| {
            let mut stmt = c
                .prepare("SELECT state, outcome, COUNT(*) FROM campaign_rows WHERE campaign_id = ?1 GROUP BY state, outcome")
                .map_err(backend)?;
            let groups = stmt
                .query_map([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, u32>(2)?)))
                .map_err(backend)?;
            let mut counts = CampaignCounts::default();
            for g in groups {
                let (state, outcome, n) = g.map_err(backend)?;
                let state = RowState::parse(&state).map_err(corrupt)?;
                let outcome = outcome.map(|o| crate::domain::Outcome::parse(&o)).transpose().map_err(corrupt)?;
                counts.add(state, outcome, n);
            }
            Ok(counts)
        })
        .await
    }

    async fn campaign_rows(
        &self,
        id: &CampaignId,
        after: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>> {
        let id = id.clone();
        let after = after.map_or(-1, i64::from);
        self.run(move |c| {
            rows_where(
                c,
                "campaign_id = ?1 AND idx > ?2 ORDER BY idx LIMIT ?3",
                params![id.as_str(), after, limit],
            )
        })
        .await
    }

    async fn campaigns_at_work(&self) -> StoreResult<Vec<Campaign>> {
        self.run(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = 'running' OR id IN \
                     (SELECT campaign_id FROM campaign_rows WHERE state IN ('dialling', 'calling')) ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([], campaign_from_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn active_rows(&self, id: &CampaignId) -> StoreResult<Vec<CampaignRow>> {
        let id = id.clone();
        self.run(move |c| {
            rows_where(
                c,
                "campaign_id = ?1 AND state IN ('dialling', 'calling') ORDER BY idx",
                [id.as_str()],
            )
        })
        .await
    }

    async fn due_rows(
        &self,
        id: &CampaignId,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>> {
        let id = id.clone();
        self.run(move |c| {
            rows_where(
                c,
                "campaign_id = ?1 AND state = 'pending' AND next_at_ms <= ?2 ORDER BY idx LIMIT ?3",
                params![id.as_str(), now_ms, limit],
            )
        })
        .await
    }

    async fn claim_row(
        &self,
        id: &CampaignId,
        index: u32,
        now_ms: i64,
        claim_until_ms: i64,
    ) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let campaign: Option<(String, u32)> = tx
                .query_row("SELECT status, max_concurrency FROM campaigns WHERE id = ?1", [id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            let Some((status, max)) = campaign else { return Ok(false) };
            if status != CampaignStatus::Running.as_str() || active_count(&tx, id.as_str())? >= max {
                return Ok(false);
            }
            let next_at: Option<i64> = tx
                .query_row("SELECT next_at_ms FROM campaign_rows WHERE campaign_id = ?1 AND idx = ?2 AND state = 'pending'",
                    params![id.as_str(), index], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            if next_at.is_none_or(|t| t > now_ms) {
                return Ok(false);
            }
            let Some((_, mut attempts)) = row_state(&tx, id.as_str(), index)? else { return Ok(false) };
            attempts.push(Attempt { call_sid: None, at_ms: now_ms, outcome: None });
            write_row(&tx, id.as_str(), index, RowState::Dialling, &attempts, None, claim_until_ms)?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn unclaim_row(&self, id: &CampaignId, index: u32, next_at_ms: i64) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let Some((RowState::Dialling, mut attempts)) = row_state(&tx, id.as_str(), index)?
            else {
                return Ok(false);
            };
            attempts.pop();
            write_row(
                &tx,
                id.as_str(),
                index,
                RowState::Pending,
                &attempts,
                Some(next_at_ms),
                0,
            )?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn row_dialled(&self, id: &CampaignId, index: u32, sid: &CallSid) -> StoreResult<bool> {
        let (id, sid) = (id.clone(), sid.to_string());
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let Some((RowState::Dialling, mut attempts)) = row_state(&tx, id.as_str(), index)?
            else {
                return Ok(false);
            };
            let Some(last) = attempts.last_mut() else {
                return Ok(false);
            };
            last.call_sid = Some(sid);
            write_row(
                &tx,
                id.as_str(),
                index,
                RowState::Calling,
                &attempts,
                None,
                0,
            )?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn finish_attempt(
        &self,
        id: &CampaignId,
        index: u32,
        finish: &Finish<'_>,
    ) -> StoreResult<bool> {
        let id = id.clone();
        let sid = finish.call_sid.map(|s| s.to_string());
        let (outcome, retry_at) = (finish.outcome, finish.retry_at_ms);
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let Some((state, mut attempts)) = row_state(&tx, id.as_str(), index)? else {
                return Ok(false);
            };
            let Some(last) = attempts.last_mut() else {
                return Ok(false);
            };
            if !state.is_active() || (sid.is_some() && last.call_sid != sid) {
                return Ok(false);
            }
            last.outcome = Some(outcome.as_str().to_owned());
            // A cancelled campaign's row is not tried again.
            let cancelled: bool = tx
                .query_row(
                    "SELECT status = 'cancelled' FROM campaigns WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let retry_at = retry_at.filter(|_| !cancelled);
            let next = if retry_at.is_some() {
                RowState::Pending
            } else {
                RowState::Done
            };
            write_row(&tx, id.as_str(), index, next, &attempts, retry_at, 0)?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn complete_if_done(&self, id: &CampaignId) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let changed = tx
                .execute(
                    "UPDATE campaigns SET status = 'completed', updated_at = ?2 WHERE id = ?1 AND status = 'running' \
                     AND NOT EXISTS (SELECT 1 FROM campaign_rows WHERE campaign_id = ?1 AND state IN ('pending', 'dialling', 'calling'))",
                    params![id.as_str(), time_fmt::rfc3339(time_fmt::now())],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_rows(&self, id: &CampaignId, n: u32) -> StoreResult<std::ops::Range<u32>> {
        let id = id.clone();
        self.run(move |c| {
            let (released, total): (u32, u32) = c
                .query_row(
                    "UPDATE campaigns SET released = released + ?2 WHERE id = ?1 RETURNING released, row_count",
                    params![id.as_str(), n],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let before = released.saturating_sub(n);
            Ok(before.min(total)..released.min(total))
        })
        .await
    }
}
