//! The queue-driven dialer (AWS: SQS and the `campaigns` Lambda function). A campaign's rows
//! are released to the queue a few at a time (`max_concurrency` at the start, one more each
//! time an attempt ends); each message asks the worker to look at one row, and the worker
//! answers with the row's next message, delayed until something can have changed: the row is
//! due, its window opens, its call may be over. Claims and attempt ends are the store's
//! conditional writes, so any number of workers, duplicated messages and retried batches never
//! exceed the bound nor call a row twice.

use super::dialer::{CLAIM_MS, Dialer, Dialled, Ended, PassReport, ms};
use crate::AppState;
use crate::error::ApiError;
use callbot_core::campaign_queue::{CampaignQueue, MAX_DELAY, QueueError, RowMessage};
use callbot_core::domain::{BotStatus, CampaignStatus, RowState};
use callbot_core::store::{Bot, Campaign, CampaignRow};
use std::sync::Arc;
use std::time::Duration;

/// A call in progress is looked at again this often.
const WATCH_EVERY: Duration = Duration::from_secs(20);
/// A row of a paused campaign (or bot) is looked at again this often.
const PAUSED_EVERY: Duration = Duration::from_secs(60);
/// A due row that found the campaign at its bound waits this long (and a few seconds more by
/// its index, so rows that met do not meet again).
const FULL_WAIT: Duration = Duration::from_secs(15);

/// Releases a new campaign's first rows to the queue (as many as may be dialled at once).
pub async fn start(
    state: &AppState,
    queue: &dyn CampaignQueue,
    c: &Campaign,
) -> Result<(), QueueError> {
    release(state, queue, c, c.max_concurrency).await
}

async fn release(
    state: &AppState,
    queue: &dyn CampaignQueue,
    c: &Campaign,
    n: u32,
) -> Result<(), QueueError> {
    let range = state
        .store
        .release_rows(&c.id, n)
        .await
        .map_err(|e| QueueError(e.to_string()))?;
    let messages: Vec<_> = range.map(|row| (message(c, row), Duration::ZERO)).collect();
    if messages.is_empty() {
        return Ok(());
    }
    queue.send(&messages).await
}

fn message(c: &Campaign, row: u32) -> RowMessage {
    RowMessage {
        tenant: c.tenant.clone(),
        campaign: c.id.clone(),
        row,
    }
}

/// What becomes of a row's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: the row is final, or another message carries it.
    Drop,
    /// The row is looked at again after this long (its message was sent again).
    Again(Duration),
}

/// Again in `ms` (at least a second, at most the queue's longest delay).
fn after_ms(ms: i64) -> Next {
    let ms = u64::try_from(ms.max(1_000)).unwrap_or(1_000);
    Next::Again(Duration::from_millis(ms).min(MAX_DELAY))
}

/// Works rows' messages.
#[derive(Debug)]
pub struct Worker {
    dialer: Dialer,
    queue: Arc<dyn CampaignQueue>,
}

impl Worker {
    pub fn new(dialer: Dialer, queue: Arc<dyn CampaignQueue>) -> Self {
        Self { dialer, queue }
    }

    /// Handles one message: looks at the row, releases the next row when an attempt ended, and
    /// sends the row's own next message. An error leaves the message to the queue's retry
    /// (everything it did before is safe to do again).
    pub async fn handle(&self, m: &RowMessage) -> Result<Next, ApiError> {
        let store = &self.dialer.state.store;
        let Some(c) = store.get_campaign(&m.tenant, &m.campaign).await? else {
            tracing::warn!(campaign = %m.campaign, "a row message for no campaign: dropped");
            return Ok(Next::Drop);
        };
        let Some(row) = store
            .campaign_rows(&c.id, m.row.checked_sub(1), 1)
            .await?
            .into_iter()
            .find(|r| r.index == m.row)
        else {
            return Ok(Next::Drop);
        };
        let bot = store.get_bot(&c.tenant, &c.bot).await?;
        let next = self.look(&c, bot.as_ref(), &row).await?;
        if let Next::Again(delay) = next {
            self.queue
                .send(&[(m.clone(), delay)])
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        }
        Ok(next)
    }

    async fn look(
        &self,
        c: &Campaign,
        bot: Option<&Bot>,
        row: &CampaignRow,
    ) -> Result<Next, ApiError> {
        let now_ms = ms(self.dialer.clock.now());
        match row.state {
            RowState::Done | RowState::Cancelled => Ok(Next::Drop),
            RowState::Dialling | RowState::Calling => {
                let mut report = PassReport::default();
                match self.dialer.watch(c, bot, row, &mut report).await? {
                    Ended::Not if row.state == RowState::Dialling => {
                        Ok(after_ms(row.claimed_until_ms - now_ms + 1_000))
                    }
                    Ended::Not => Ok(Next::Again(WATCH_EVERY)),
                    ended => self.ended(c, ended, now_ms).await,
                }
            }
            RowState::Pending => self.pending(c, bot, row, now_ms).await,
        }
    }

    /// After an attempt ended: the next row is released (the ended call's place is free), and
    /// the row comes back when its retry is due.
    async fn ended(&self, c: &Campaign, ended: Ended, now_ms: i64) -> Result<Next, ApiError> {
        release(&self.dialer.state, &*self.queue, c, 1)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if self.dialer.state.store.complete_if_done(&c.id).await? {
            tracing::info!(campaign = %c.id, "campaign completed");
        }
        Ok(match ended {
            Ended::Retry(at) => after_ms(at - now_ms),
            Ended::Done | Ended::Not => Next::Drop,
        })
    }

    async fn pending(
        &self,
        c: &Campaign,
        bot: Option<&Bot>,
        row: &CampaignRow,
        now_ms: i64,
    ) -> Result<Next, ApiError> {
        let store = &self.dialer.state.store;
        let bot = match (c.status, bot) {
            (CampaignStatus::Cancelled | CampaignStatus::Completed, _) => return Ok(Next::Drop),
            (_, None) => {
                tracing::warn!(campaign = %c.id, "its bot was deleted: campaign cancelled");
                let from = [CampaignStatus::Running, CampaignStatus::Paused];
                store
                    .set_campaign_status(&c.tenant, &c.id, &from, CampaignStatus::Cancelled)
                    .await?;
                return Ok(Next::Drop);
            }
            (CampaignStatus::Paused, _) => return Ok(Next::Again(PAUSED_EVERY)),
            (_, Some(b)) if b.status == BotStatus::Paused => return Ok(Next::Again(PAUSED_EVERY)),
            (_, Some(b)) => b,
        };
        if row.next_at_ms > now_ms {
            return Ok(after_ms(row.next_at_ms - now_ms));
        }
        let tz = bot.options.timezone.zone();
        if !c.window.is_open(now_ms, tz) {
            let opens = c
                .window
                .next_open_ms(now_ms, tz)
                .unwrap_or(now_ms + 900_000);
            return Ok(after_ms(opens - now_ms));
        }
        if !store
            .claim_row(&c.id, row.index, now_ms, now_ms + CLAIM_MS)
            .await?
        {
            // At the bound, or another worker took the row (then this message watches it too).
            let jitter = u64::from(row.index % 7) * 1_000;
            return Ok(Next::Again(FULL_WAIT + Duration::from_millis(jitter)));
        }
        let mut report = PassReport::default();
        let now = self.dialer.clock.now();
        match self.dialer.dial(c, bot, row, now, &mut report).await? {
            Dialled::Placed => Ok(Next::Again(WATCH_EVERY)),
            Dialled::Ended(ended) => self.ended(c, ended, now_ms).await,
            Dialled::Deferred(wait_ms) => Ok(after_ms(wait_ms)),
        }
    }
}
