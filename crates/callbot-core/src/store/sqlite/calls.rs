//! SQLite adapter of `CallStore`: the `calls` table, daily call counters and rate-limit slots.

use super::{SqliteStore, backend, calls_key, idempotency_used, insert_idempotency};
use crate::domain::{
    AnsweredBy, BotId, CallDirection, CallSid, CallStatus, Channel, FirstMessage, Goal, TenantId,
    UserLabel, Variables,
};
use crate::store::calls::{page, retry_after, unix_ms};
use crate::store::{
    CallFilter, CallPage, CallRecord, CallStore, Cursor, IdempotencyRecord, RateDecision,
    StatusOutcome, StatusUpdate, StoreError, StoreResult, TurnRecord, TurnStore, corrupt,
};
use crate::time_fmt;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

const CALL_COLUMNS: &str = "sid, tenant, bot_id, direction, from_number, to_number, user_label, status, \
    status_seq, prompt, first_message, created_at, updated_at, started_at, ended_at, duration_secs, list_key, channel, variables, answered_by";

fn opt_time(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(time_fmt::rfc3339)
}

fn call_params(c: &CallRecord) -> [Box<dyn rusqlite::ToSql>; 20] {
    [
        Box::new(c.sid.as_str().to_owned()),
        Box::new(c.tenant.as_str().to_owned()),
        Box::new(c.bot_id.as_str().to_owned()),
        Box::new(c.direction.as_str()),
        Box::new(c.from.clone()),
        Box::new(c.to.clone()),
        Box::new(c.user.as_ref().map(|u| u.as_str().to_owned())),
        Box::new(c.status.as_str()),
        Box::new(c.status_seq),
        Box::new(c.prompt.as_ref().map(|p| p.as_str().to_owned())),
        Box::new(c.first_message.as_ref().map(|f| f.as_str().to_owned())),
        Box::new(time_fmt::rfc3339(c.created_at)),
        Box::new(time_fmt::rfc3339(c.updated_at)),
        Box::new(opt_time(c.started_at)),
        Box::new(opt_time(c.ended_at)),
        Box::new(c.duration_secs),
        Box::new(c.list_key()),
        Box::new(c.channel.as_str()),
        Box::new(c.variables.to_stored()),
        Box::new(c.answered_by.map(AnsweredBy::as_str)),
    ]
}

fn call_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<CallRecord>> {
    let s = |i: usize| row.get::<_, String>(i);
    let o = |i: usize| row.get::<_, Option<String>>(i);
    let (sid, tenant, bot, dir, from, to, user, status) =
        (s(0)?, s(1)?, s(2)?, s(3)?, s(4)?, s(5)?, o(6)?, s(7)?);
    let seq: i64 = row.get(8)?;
    let (prompt, first, created, updated, started, ended) =
        (o(9)?, o(10)?, s(11)?, s(12)?, o(13)?, o(14)?);
    let duration: Option<u32> = row.get(15)?;
    let channel = s(17)?;
    let variables = o(18)?;
    let answered_by = o(19)?;
    let time = |v: &str, what: &str| time_fmt::parse_rfc3339(v).ok_or_else(|| corrupt(what));
    Ok((|| {
        Ok(CallRecord {
            sid: CallSid::parse(&sid).map_err(corrupt)?,
            tenant: TenantId::parse(&tenant).map_err(corrupt)?,
            bot_id: BotId::parse(&bot).map_err(corrupt)?,
            direction: CallDirection::parse(&dir).map_err(corrupt)?,
            channel: Channel::parse(&channel).map_err(corrupt)?,
            from,
            to,
            user: user
                .map(|u| UserLabel::parse(&u))
                .transpose()
                .map_err(corrupt)?,
            status: CallStatus::parse(&status).map_err(corrupt)?,
            status_seq: seq,
            prompt: prompt
                .map(|p| Goal::parse(&p))
                .transpose()
                .map_err(corrupt)?,
            first_message: first
                .map(|f| FirstMessage::parse(&f))
                .transpose()
                .map_err(corrupt)?,
            created_at: time(&created, "created_at")?,
            updated_at: time(&updated, "updated_at")?,
            started_at: started.map(|t| time(&t, "started_at")).transpose()?,
            ended_at: ended.map(|t| time(&t, "ended_at")).transpose()?,
            duration_secs: duration,
            variables: Variables::from_stored(variables.as_deref()).map_err(corrupt)?,
            answered_by: answered_by
                .map(|a| AnsweredBy::parse(&a))
                .transpose()
                .map_err(corrupt)?,
        })
    })())
}

fn select_call(c: &Connection, sid: &str) -> StoreResult<Option<CallRecord>> {
    c.query_row(
        &format!("SELECT {CALL_COLUMNS} FROM calls WHERE sid = ?1"),
        [sid],
        call_from_row,
    )
    .optional()
    .map_err(backend)?
    .transpose()
}

#[async_trait]
impl CallStore for SqliteStore {
    async fn create_call(
        &self,
        call: &CallRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<bool> {
        let (call, idem) = (call.clone(), idempotency.cloned());
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            if let Some(idem) = &idem
                && idempotency_used(&tx, idem)?
            {
                return Err(StoreError::IdempotencyKeyUsed);
            }
            if select_call(&tx, call.sid.as_str())?.is_some() {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO calls ({CALL_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
                ),
                call_params(&call),
            )
            .map_err(backend)?;
            if let Some(idem) = &idem {
                insert_idempotency(&tx, idem)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn get_call(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Option<CallRecord>> {
        let tenant = tenant.clone();
        Ok(self
            .call_by_sid(sid)
            .await?
            .filter(|call| call.tenant == tenant))
    }

    async fn call_by_sid(&self, sid: &CallSid) -> StoreResult<Option<CallRecord>> {
        let sid = sid.as_str().to_owned();
        self.run(move |c| select_call(c, &sid)).await
    }

    async fn update_call_status(
        &self,
        sid: &CallSid,
        update: &StatusUpdate,
    ) -> StoreResult<StatusOutcome> {
        let (sid, update) = (sid.as_str().to_owned(), update.clone());
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(current) = select_call(&tx, &sid)? else {
                return Ok(StatusOutcome::UnknownCall);
            };
            let Some(next) = current.with_status(&update) else {
                return Ok(StatusOutcome::Ignored(current));
            };
            tx.execute(
                "UPDATE calls SET status = ?2, status_seq = ?3, updated_at = ?4, started_at = ?5,
                        ended_at = ?6, duration_secs = ?7
                 WHERE sid = ?1",
                params![
                    sid,
                    next.status.as_str(),
                    next.status_seq,
                    time_fmt::rfc3339(next.updated_at),
                    opt_time(next.started_at),
                    opt_time(next.ended_at),
                    next.duration_secs
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(StatusOutcome::Applied(next))
        })
        .await
    }

    async fn set_answered_by(
        &self,
        sid: &CallSid,
        answered_by: AnsweredBy,
    ) -> StoreResult<Option<CallRecord>> {
        let sid = sid.as_str().to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE calls SET answered_by = ?2 WHERE sid = ?1",
                params![sid, answered_by.as_str()],
            )
            .map_err(backend)?;
            select_call(c, &sid)
        })
        .await
    }

    async fn list_calls(
        &self,
        tenant: &TenantId,
        filter: &CallFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<CallPage> {
        let tenant = tenant.as_str().to_owned();
        let bot = filter.bot.as_ref().map(|b| b.as_str().to_owned());
        let status = filter.status.map(|s| s.as_str());
        // `\u{10FFFF}` sorts after every list key: no cursor means "from the newest".
        let after = cursor.map_or_else(|| "\u{10FFFF}".to_owned(), |c| c.key().to_owned());
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {CALL_COLUMNS} FROM calls
                     WHERE tenant = ?1 AND list_key < ?2
                       AND (?3 IS NULL OR bot_id = ?3) AND (?4 IS NULL OR status = ?4)
                     ORDER BY list_key DESC LIMIT ?5"
                ))
                .map_err(backend)?;
            let calls = stmt
                .query_map(
                    params![tenant, after, bot, status, limit + 1],
                    call_from_row,
                )
                .map_err(backend)?
                .map(|r| r.map_err(backend).and_then(|c| c))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(page(calls, limit))
        })
        .await
    }

    async fn count_call(&self, bot: &BotId, day: &str, limit: u32) -> StoreResult<()> {
        if limit == 0 {
            return Err(StoreError::QuotaExceeded { limit });
        }
        let key = calls_key(bot.as_str(), day);
        self.run(move |c| {
            let n = c
                .execute(
                    "INSERT INTO counters (key, value) VALUES (?1, 1)
                     ON CONFLICT (key) DO UPDATE SET value = value + 1 WHERE value < ?2",
                    params![key, limit],
                )
                .map_err(backend)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::QuotaExceeded { limit })
            }
        })
        .await
    }

    async fn uncount_call(&self, bot: &BotId, day: &str) -> StoreResult<()> {
        let key = calls_key(bot.as_str(), day);
        self.run(move |c| {
            c.execute(
                "UPDATE counters SET value = value - 1 WHERE key = ?1 AND value > 0",
                [key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn acquire_rate_slot(
        &self,
        scope: &str,
        limit: u32,
        window_secs: u64,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let scope = scope.to_owned();
        let now_ms = unix_ms(now);
        let until = now_ms + i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM rate_slots WHERE scope = ?1 AND until_ms <= ?2",
                params![scope, now_ms],
            )
            .map_err(backend)?;
            let (held, oldest): (u32, Option<i64>) = tx
                .query_row(
                    "SELECT COUNT(*), MIN(until_ms) FROM rate_slots WHERE scope = ?1",
                    [&scope],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            if held >= limit {
                return Ok(RateDecision::Limited {
                    retry_after_secs: retry_after(oldest.unwrap_or(until), now, window_secs),
                });
            }
            tx.execute(
                "INSERT INTO rate_slots (scope, until_ms) VALUES (?1, ?2)",
                params![scope, until],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(RateDecision::Allowed)
        })
        .await
    }
}

#[async_trait]
impl TurnStore for SqliteStore {
    async fn put_turn(
        &self,
        tenant: &TenantId,
        sid: &CallSid,
        turn: &TurnRecord,
    ) -> StoreResult<()> {
        let data = serde_json::to_string(turn)
            .map_err(|e| StoreError::Backend(format!("encoding turn: {e}")))?;
        let (tenant, sid, n) = (
            tenant.as_str().to_owned(),
            sid.as_str().to_owned(),
            turn.turn,
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO turns (sid, turn, tenant, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sid, turn) DO UPDATE SET data = excluded.data WHERE tenant = excluded.tenant",
                rusqlite::params![sid, n, tenant, data],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn turns(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Vec<TurnRecord>> {
        let (tenant, sid) = (tenant.as_str().to_owned(), sid.as_str().to_owned());
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT data FROM turns WHERE sid = ?1 AND tenant = ?2 ORDER BY turn",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params![sid, tenant], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| {
                let data = r.map_err(backend)?;
                serde_json::from_str(&data).map_err(|e| corrupt(format!("turn: {e}")))
            })
            .collect()
        })
        .await
    }
}
