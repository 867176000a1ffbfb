//! The campaign dialer: passes over the campaigns at work, ending the attempts whose calls are
//! over (from the call record, or from the carrier when the call's end was never heard) and
//! placing calls for due rows while the window is open and the campaign has room. Every row
//! move is a conditional write in the store, so dialers in several processes cooperate, and
//! a dialer that dies leaves nothing that is dialled twice: a row it was placing is ended
//! `interrupted`, never retried.

use super::request;
use crate::AppState;
use crate::error::ApiError;
use callbot_core::call_texts::CallTexts;
use callbot_core::domain::{BotStatus, CallSid, CampaignStatus, Outcome, RowState};
use callbot_core::store::{Bot, Campaign, CampaignRow, Finish, StatusUpdate};
use callbot_core::time_fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Where the dialer reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        time_fmt::now()
    }
}

/// How long a claim lasts: a dialer that has not recorded its call by then is taken for dead.
pub(super) const CLAIM_MS: i64 = 30_000;
/// A row that cannot be dialled now (the account's calls in progress, the carrier down) waits
/// this long before it is tried again.
const WAIT_MS: i64 = 15_000;
/// A call whose end was not heard this long after its bot's longest call is asked about at
/// the carrier.
const UNHEARD_END_MS: i64 = 120_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Calls placed.
    pub placed: u32,
    /// Attempts ended.
    pub finished: u32,
    /// Rows that were due but had to wait (limits, carrier).
    pub deferred: u32,
}

/// What ending an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Nothing: the call is not over, or another dialer ended the attempt first.
    Not,
    /// The row waits until then (Unix ms) for another attempt.
    Retry(i64),
    /// The row is done.
    Done,
}

/// What placing a claimed row's call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialled {
    Placed,
    /// The attempt ended at once (the carrier refused the number, a placeholder had no value).
    Ended(Ended),
    /// Nobody was called: the row was given back to wait this long (ms); rows after it wait too.
    Deferred(i64),
}

#[derive(Debug)]
pub struct Dialer {
    pub(super) state: AppState,
    pub(super) clock: Arc<dyn Clock>,
    /// The first pass asks the carrier about every call in progress: the process that placed
    /// them may have died before it heard their end.
    recovered: bool,
}

pub(super) fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Dialer {
    pub fn new(state: AppState, clock: Arc<dyn Clock>) -> Self {
        Self {
            state,
            clock,
            recovered: false,
        }
    }

    /// A dialer for one row's message at a time: it asks the carrier only about calls whose
    /// end went unheard for too long (the queue brings each row back, so no first pass
    /// recovers them all).
    pub fn for_rows(state: AppState, clock: Arc<dyn Clock>) -> Self {
        Self {
            state,
            clock,
            recovered: true,
        }
    }

    /// Passes every `every` until `shutdown` resolves; a pass under way is finished first.
    pub async fn run(mut self, every: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut beat = crate::beat::Beat::new(every);
        while beat.next(shutdown.as_mut()).await {
            self.pass().await;
        }
    }

    /// One pass over every campaign at work. Errors are logged per campaign and retried on
    /// the next pass.
    pub async fn pass(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let campaigns = match self.state.store.campaigns_at_work().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "campaign dialer: could not list campaigns");
                return report;
            }
        };
        for c in &campaigns {
            if let Err(e) = self.work(c, &mut report).await {
                tracing::warn!(campaign = %c.id, error = %e, "campaign dialer: pass failed");
            }
        }
        self.recovered = true;
        report
    }

    async fn work(&self, c: &Campaign, report: &mut PassReport) -> Result<(), ApiError> {
        let bot = self.state.store.get_bot(&c.tenant, &c.bot).await?;
        for row in self.state.store.active_rows(&c.id).await? {
            self.watch(c, bot.as_ref(), &row, report).await?;
        }
        match &bot {
            None if !c.status.is_final() => {
                tracing::warn!(campaign = %c.id, "its bot was deleted: campaign cancelled");
                let from = [CampaignStatus::Running, CampaignStatus::Paused];
                self.state
                    .store
                    .set_campaign_status(&c.tenant, &c.id, &from, CampaignStatus::Cancelled)
                    .await?;
            }
            Some(bot) if c.status == CampaignStatus::Running => {
                self.dial_due(c, bot, report).await?
            }
            _ => {}
        }
        if self.state.store.complete_if_done(&c.id).await? {
            tracing::info!(campaign = %c.id, "campaign completed");
        }
        Ok(())
    }

    /// Ends the attempt of an active row whose call is over, or whose dialer died.
    pub(super) async fn watch(
        &self,
        c: &Campaign,
        bot: Option<&Bot>,
        row: &CampaignRow,
        report: &mut PassReport,
    ) -> Result<Ended, ApiError> {
        let now_ms = ms(self.clock.now());
        let Some(attempt) = row.attempts.last() else {
            return Ok(Ended::Not);
        };
        let sid = attempt
            .call_sid
            .as_deref()
            .and_then(|s| CallSid::parse(s).ok());
        let outcome = match (row.state, &sid) {
            (RowState::Dialling, _) if row.claimed_until_ms < now_ms => {
                tracing::warn!(campaign = %c.id, row = row.index, "its dialer stopped while placing the call: not called again");
                Some(Outcome::Interrupted)
            }
            (RowState::Calling, Some(sid)) => {
                let longest = bot
                    .and_then(|b| b.timers.max_call_secs())
                    .map_or(self.state.settings.calls.max_call, |s| {
                        Duration::from_secs(s.into())
                    });
                let unheard = now_ms - attempt.at_ms > longest.as_millis() as i64 + UNHEARD_END_MS;
                self.call_outcome(sid, !self.recovered || unheard).await?
            }
            _ => None,
        };
        match outcome {
            Some(outcome) => {
                let made = row.attempts.len();
                self.finish(c, row.index, made, sid.as_ref(), outcome, now_ms, report)
                    .await
            }
            None => Ok(Ended::Not),
        }
    }

    /// How a call ended, from its record; with `ask`, the carrier is asked when the record
    /// does not say (its end may never have been heard).
    async fn call_outcome(&self, sid: &CallSid, ask: bool) -> Result<Option<Outcome>, ApiError> {
        let record = self.state.store.call_by_sid(sid).await?;
        if let Some(r) = &record
            && let Some(o) = Outcome::of_call(r.status, r.answered_by)
        {
            return Ok(Some(o));
        }
        if !ask {
            return Ok(None);
        }
        match self.state.telephony.call_state(sid).await {
            Ok(Some(call)) => {
                let answered_by = call.answered_by.or(record.and_then(|r| r.answered_by));
                let outcome = Outcome::of_call(call.status, answered_by);
                if outcome.is_some() {
                    // The call record catches up with what the carrier says.
                    let update = StatusUpdate {
                        status: call.status,
                        seq: None,
                        at: time_fmt::now(),
                        duration_secs: call.duration_secs,
                    };
                    self.state.store.update_call_status(sid, &update).await?;
                }
                Ok(outcome)
            }
            Ok(None) => {
                tracing::warn!(call_sid = %sid, "the carrier has no word of this call: its row ends interrupted");
                Ok(Some(Outcome::Interrupted))
            }
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e, "could not ask the carrier about a call");
                Ok(None)
            }
        }
    }

    /// Ends row `index`'s current attempt (its `made`-th) with `outcome`, to be retried as the
    /// campaign's policy says.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        c: &Campaign,
        index: u32,
        made: usize,
        sid: Option<&CallSid>,
        outcome: Outcome,
        now_ms: i64,
        report: &mut PassReport,
    ) -> Result<Ended, ApiError> {
        let attempts = u32::try_from(made).unwrap_or(u32::MAX);
        let retry_at_ms = c
            .retry
            .next_delay_secs(outcome, attempts)
            .filter(|_| c.status != CampaignStatus::Cancelled)
            .map(|d| now_ms + i64::from(d) * 1000);
        let finish = Finish {
            call_sid: sid,
            outcome,
            retry_at_ms,
        };
        if !self
            .state
            .store
            .finish_attempt(&c.id, index, &finish)
            .await?
        {
            return Ok(Ended::Not);
        }
        report.finished += 1;
        tracing::info!(campaign = %c.id, row = index, outcome = outcome.as_str(), retry = retry_at_ms.is_some(), "campaign attempt ended");
        // A cancelled campaign's row may have ended done although a retry was asked for; what
        // the dialers go by is that it will not be dialled again.
        Ok(retry_at_ms.map_or(Ended::Done, Ended::Retry))
    }

    /// Places calls for due rows while the window is open and the campaign has room.
    async fn dial_due(
        &self,
        c: &Campaign,
        bot: &Bot,
        report: &mut PassReport,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let now_ms = ms(now);
        if bot.status == BotStatus::Paused || !c.window.is_open(now_ms, bot.options.timezone.zone())
        {
            return Ok(());
        }
        let active =
            u32::try_from(self.state.store.active_rows(&c.id).await?.len()).unwrap_or(u32::MAX);
        let room = c
            .max_concurrency
            .saturating_sub(active)
            .min(request::MAX_CONCURRENCY);
        if room == 0 {
            return Ok(());
        }
        for row in self.state.store.due_rows(&c.id, now_ms, room).await? {
            if !self
                .state
                .store
                .claim_row(&c.id, row.index, now_ms, now_ms + CLAIM_MS)
                .await?
            {
                continue;
            }
            if let Dialled::Deferred(_) = self.dial(c, bot, &row, now, report).await? {
                break;
            }
        }
        Ok(())
    }

    /// Places a claimed row's call (`row` as it was before the claim).
    pub(super) async fn dial(
        &self,
        c: &Campaign,
        bot: &Bot,
        row: &CampaignRow,
        now: OffsetDateTime,
        report: &mut PassReport,
    ) -> Result<Dialled, ApiError> {
        let now_ms = ms(now);
        let texts = CallTexts {
            bot,
            prompt: None,
            first_message: None,
            variables: &row.variables,
            other_party: row.to.as_str(),
        };
        if let Err(missing) = texts.fill(now) {
            // The bot's texts changed since the campaign was checked.
            tracing::warn!(campaign = %c.id, row = row.index, missing = ?missing.0, "a placeholder of the bot has no value for this row: not called");
            let made = row.attempts.len() + 1;
            let ended = self
                .finish(c, row.index, made, None, Outcome::Failed, now_ms, report)
                .await?;
            return Ok(Dialled::Ended(ended));
        }
        let placed = crate::outbound_call::place(
            &self.state,
            bot,
            &row.to,
            row.variables.clone(),
            time_fmt::now(),
        )
        .await;
        match placed {
            Ok(sid) => {
                report.placed += 1;
                if !self.state.store.row_dialled(&c.id, row.index, &sid).await? {
                    tracing::warn!(campaign = %c.id, row = row.index, call_sid = %sid, "the row's claim lapsed before its call was recorded");
                }
                tracing::info!(campaign = %c.id, row = row.index, call_sid = %sid, "campaign call placed");
                Ok(Dialled::Placed)
            }
            Err(ApiError::BadRequest { message, .. }) => {
                // The carrier refused this number: the attempt failed.
                tracing::info!(campaign = %c.id, row = row.index, %message, "campaign call refused by the carrier");
                let made = row.attempts.len() + 1;
                let ended = self
                    .finish(c, row.index, made, None, Outcome::Failed, now_ms, report)
                    .await?;
                Ok(Dialled::Ended(ended))
            }
            Err(e) => {
                let wait_ms = match &e {
                    ApiError::TooManyRequests {
                        retry_after_secs: Some(s),
                        ..
                    } => (*s as i64 * 1000).max(WAIT_MS),
                    _ => WAIT_MS,
                };
                tracing::info!(campaign = %c.id, row = row.index, error = %e, wait_ms, "campaign row waits");
                report.deferred += 1;
                self.state
                    .store
                    .unclaim_row(&c.id, row.index, now_ms + wait_ms)
                    .await?;
                Ok(Dialled::Deferred(wait_ms))
            }
        }
    }
}
