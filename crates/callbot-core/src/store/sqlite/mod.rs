//! SQLite store: one file in the data dir, WAL mode, schema migrations by `user_version`.
//! All work runs on the connection's own thread ([`thread`]), one call at a time; write
//! transactions are `BEGIN IMMEDIATE`, so quotas also hold between processes sharing the file.

mod calls;
mod campaigns;
mod keys;
mod leases;
mod migrations;
mod postcall;
mod test_runs;
mod thread;
mod tickets;
mod usage;

use super::{Bot, BotWithUsage, IdempotencyRecord, Store, StoreError, StoreResult, corrupt};
use crate::apikey::KeyHash;
use crate::domain::{
    BotId, BotStatus, Context, FirstMessage, Goal, PhoneNumber, TenantId, Voice, WebhookPolicy,
    WebhookUrl,
};
use crate::domain::{BotOptions, Brain, CallTimers};
use crate::time_fmt;
use async_trait::async_trait;
use migrations::MIGRATIONS;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: thread::ConnThread,
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> StoreResult<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute_batch(sql).map_err(backend)?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        Ok(SqliteStore {
            conn: thread::ConnThread::start(conn)?,
        })
    }

    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.conn.run(f).await
    }
}

const BOT_COLUMNS: &str = "id, tenant, number, number_sid, goal, context, webhook, voice, first_message, status, \
                           webhook_secret, created_at, updated_at, call_timers, brain, options";

/// A bot's values in `BOT_COLUMNS` order (?1..?16), shared by INSERT and UPDATE.
fn bot_params(bot: &Bot) -> [Box<dyn rusqlite::ToSql>; 16] {
    [
        Box::new(bot.id.as_str().to_owned()),
        Box::new(bot.tenant.as_str().to_owned()),
        Box::new(bot.number.as_str().to_owned()),
        Box::new(bot.number_sid.clone()),
        Box::new(bot.goal.as_str().to_owned()),
        Box::new(bot.context.as_str().to_owned()),
        Box::new(
            bot.webhook
                .as_ref()
                .map(|w| w.as_str().to_owned())
                .unwrap_or_default(),
        ),
        Box::new(bot.voice.to_string()),
        Box::new(bot.first_message.as_ref().map(|f| f.as_str().to_owned())),
        Box::new(bot.status.as_str()),
        Box::new(bot.webhook_secret.expose_secret().to_owned()),
        Box::new(time_fmt::rfc3339(bot.created_at)),
        Box::new(time_fmt::rfc3339(bot.updated_at)),
        Box::new(bot.timers.to_stored()),
        Box::new(bot.brain.to_stored()),
        Box::new(bot.options.to_stored()),
    ]
}

fn bot_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Bot>> {
    let s = |i: usize| row.get::<_, String>(i);
    let first: Option<String> = row.get(8)?;
    let timers: Option<String> = row.get(13)?;
    let brain: Option<String> = row.get(14)?;
    let options: Option<String> = row.get(15)?;
    let raw = (
        s(0)?,
        s(1)?,
        s(2)?,
        s(3)?,
        s(4)?,
        s(5)?,
        s(6)?,
        s(7)?,
        first,
        s(9)?,
        s(10)?,
        s(11)?,
        s(12)?,
        timers,
        brain,
        options,
    );
    Ok(bot_from_parts(raw))
}

type RawBot = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn bot_from_parts(raw: RawBot) -> StoreResult<Bot> {
    let (
        id,
        tenant,
        number,
        number_sid,
        goal,
        context,
        webhook,
        voice,
        first,
        status,
        secret,
        created,
        updated,
        timers,
        brain,
        options,
    ) = raw;
    Ok(Bot {
        id: BotId::parse(&id).map_err(corrupt)?,
        tenant: TenantId::parse(&tenant).map_err(corrupt)?,
        number: PhoneNumber::parse(&number).map_err(corrupt)?,
        number_sid,
        goal: Goal::parse(&goal).map_err(corrupt)?,
        context: Context::parse(&context).map_err(corrupt)?,
        webhook: (!webhook.is_empty())
            .then(|| {
                WebhookUrl::parse(
                    &webhook,
                    WebhookPolicy {
                        allow_private: true,
                    },
                )
            })
            .transpose()
            .map_err(corrupt)?,
        voice: Voice::parse(&voice).map_err(corrupt)?,
        brain: Brain::from_stored(brain.as_deref()).map_err(corrupt)?,
        first_message: first
            .map(|f| FirstMessage::parse(&f))
            .transpose()
            .map_err(corrupt)?,
        timers: CallTimers::from_stored(timers.as_deref()).map_err(corrupt)?,
        options: BotOptions::from_stored(options.as_deref()).map_err(corrupt)?,
        status: BotStatus::parse(&status).map_err(corrupt)?,
        webhook_secret: SecretString::from(secret),
        created_at: time_fmt::parse_rfc3339(&created).ok_or_else(|| corrupt("created_at"))?,
        updated_at: time_fmt::parse_rfc3339(&updated).ok_or_else(|| corrupt("updated_at"))?,
    })
}

pub(super) fn idem_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<StoreResult<IdempotencyRecord>> {
    let tenant: String = row.get(0)?;
    let created: String = row.get(6)?;
    let status: i64 = row.get(4)?;
    Ok((|| {
        Ok(IdempotencyRecord {
            tenant: TenantId::parse(&tenant).map_err(corrupt)?,
            scope: row.get(1).map_err(backend)?,
            key: row.get(2).map_err(backend)?,
            request_hash: row.get(3).map_err(backend)?,
            status: u16::try_from(status).map_err(corrupt)?,
            body: row.get(5).map_err(backend)?,
            created_at: time_fmt::parse_rfc3339(&created)
                .ok_or_else(|| corrupt("idempotency created_at"))?,
        })
    })())
}

pub(super) fn idempotency_used(c: &Connection, idem: &IdempotencyRecord) -> StoreResult<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM idempotency WHERE tenant = ?1 AND scope = ?2 AND key = ?3",
        params![idem.tenant.as_str(), idem.scope, idem.key],
        |_| Ok(true),
    )
    .optional()
    .map_err(backend)?
    .unwrap_or(false))
}

pub(super) fn insert_idempotency(c: &Connection, idem: &IdempotencyRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO idempotency (tenant, scope, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            idem.tenant.as_str(),
            idem.scope,
            idem.key,
            idem.request_hash,
            idem.status,
            idem.body,
            time_fmt::rfc3339(idem.created_at)
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn calls_key(bot: &str, day: &str) -> String {
    format!("calls:{bot}:{day}")
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn put_api_key(&self, hash: &KeyHash, tenant: &TenantId, label: &str) -> StoreResult<()> {
        let (hash, tenant, label) = (
            hash.as_str().to_owned(),
            tenant.as_str().to_owned(),
            label.to_owned(),
        );
        self.run(move |c| {
            let existing: Option<String> = c
                .query_row("SELECT tenant FROM api_keys WHERE hash = ?1", [&hash], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            match existing {
                Some(t) if t == tenant => Ok(()),
                Some(_) => Err(StoreError::Conflict("API key already belongs to another tenant".into())),
                None => {
                    c.execute(
                        "INSERT INTO api_keys (hash, tenant, label, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![hash, tenant, label, time_fmt::rfc3339(time_fmt::now())],
                    )
                    .map_err(backend)?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn tenant_for_api_key(&self, hash: &KeyHash) -> StoreResult<Option<TenantId>> {
        let hash = hash.as_str().to_owned();
        self.run(move |c| {
            let t: Option<String> = c
                .query_row(
                    "SELECT tenant FROM api_keys WHERE hash = ?1",
                    [&hash],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            t.map(|t| TenantId::parse(&t).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn create_bot(
        &self,
        bot: &Bot,
        max_bots: u32,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<()> {
        let bot = bot.clone();
        let idem = idempotency.cloned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            if let Some(idem) = &idem
                && idempotency_used(&tx, idem)? {
                    return Err(StoreError::IdempotencyKeyUsed);
                }
            let count: u32 = tx
                .query_row("SELECT COUNT(*) FROM bots WHERE tenant = ?1", [bot.tenant.as_str()], |r| r.get(0))
                .map_err(backend)?;
            if count >= max_bots {
                return Err(StoreError::QuotaExceeded { limit: max_bots });
            }
            let taken: bool = tx
                .query_row("SELECT 1 FROM bots WHERE number = ?1", [bot.number.as_str()], |_| Ok(true))
                .optional()
                .map_err(backend)?
                .unwrap_or(false);
            if taken {
                return Err(StoreError::Conflict(format!("number {} is already assigned", bot.number)));
            }
            tx.execute(
                &format!("INSERT INTO bots ({BOT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                bot_params(&bot),
            )
            .map_err(backend)?;
            if let Some(idem) = &idem {
                insert_idempotency(&tx, idem)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.as_str().to_owned());
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                bot_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn bot_by_number(&self, number: &PhoneNumber) -> StoreResult<Option<Bot>> {
        let number = number.as_str().to_owned();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {BOT_COLUMNS} FROM bots WHERE number = ?1"),
                [number],
                bot_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn list_bots(&self, tenant: &TenantId, day: &str) -> StoreResult<Vec<BotWithUsage>> {
        let (tenant, day) = (tenant.as_str().to_owned(), day.to_owned());
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {BOT_COLUMNS} FROM bots WHERE tenant = ?1 ORDER BY created_at DESC, id DESC"
                ))
                .map_err(backend)?;
            let bots = stmt
                .query_map([&tenant], bot_from_row)
                .map_err(backend)?
                .map(|r| r.map_err(backend).and_then(|b| b))
                .collect::<StoreResult<Vec<Bot>>>()?;
            let mut count_stmt = c.prepare_cached("SELECT value FROM counters WHERE key = ?1").map_err(backend)?;
            bots.into_iter()
                .map(|bot| {
                    let n: Option<u32> = count_stmt
                        .query_row([calls_key(bot.id.as_str(), &day)], |r| r.get(0))
                        .optional()
                        .map_err(backend)?;
                    Ok(BotWithUsage { bot, calls_today: n.unwrap_or(0) })
                })
                .collect()
        })
        .await
    }

    async fn count_bots(&self, tenant: &TenantId) -> StoreResult<u32> {
        let tenant = tenant.as_str().to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM bots WHERE tenant = ?1",
                [tenant],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }

    async fn update_bot(&self, bot: &Bot) -> StoreResult<()> {
        let bot = bot.clone();
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE bots SET goal = ?5, context = ?6, webhook = ?7, voice = ?8, first_message = ?9,
                            status = ?10, webhook_secret = ?11, updated_at = ?13, call_timers = ?14, brain = ?15, options = ?16
                     WHERE id = ?1 AND tenant = ?2",
                    bot_params(&bot),
                )
                .map_err(backend)?;
            if n == 1 { Ok(()) } else { Err(StoreError::NotFound) }
        })
        .await
    }

    async fn delete_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.as_str().to_owned());
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let bot = tx
                .query_row(
                    &format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = ?1 AND tenant = ?2"),
                    params![id, tenant],
                    bot_from_row,
                )
                .optional()
                .map_err(backend)?
                .transpose()?;
            if bot.is_some() {
                tx.execute(
                    "DELETE FROM bots WHERE id = ?1 AND tenant = ?2",
                    params![id, tenant],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(bot)
        })
        .await
    }

    async fn get_idempotency(
        &self,
        tenant: &TenantId,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let (tenant, scope, key) = (tenant.as_str().to_owned(), scope.to_owned(), key.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT tenant, scope, key, request_hash, status, body, created_at FROM idempotency
                 WHERE tenant = ?1 AND scope = ?2 AND key = ?3",
                params![tenant, scope, key],
                idem_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn next_sequence(&self, name: &str) -> StoreResult<u64> {
        let name = name.to_owned();
        self.run(move |c| {
            let v: i64 = c
                .query_row(
                    "INSERT INTO sequences (name, value) VALUES (?1, 1)
                     ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                    [name],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            u64::try_from(v).map_err(corrupt)
        })
        .await
    }

    async fn calls_today(&self, bot: &BotId, day: &str) -> StoreResult<u32> {
        let key = calls_key(bot.as_str(), day);
        self.run(move |c| {
            let n: Option<u32> = c
                .query_row("SELECT value FROM counters WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            Ok(n.unwrap_or(0))
        })
        .await
    }
}
