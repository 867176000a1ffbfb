//! Campaign records and the `CampaignStore` trait: the moves of a row (claim, dialled, finish)
//! are conditional writes, so any number of dialers on one store never exceed a campaign's
//! concurrency and never place two calls for one row at once.

use super::{StoreError, StoreResult};
use crate::domain::{
    BotId, CallSid, CallingWindow, CampaignId, CampaignStatus, Outcome, PhoneNumber, RetryPolicy,
    RowState, TenantId, Variables,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub tenant: TenantId,
    pub bot: BotId,
    pub name: String,
    pub window: CallingWindow,
    pub retry: RetryPolicy,
    pub max_concurrency: u32,
    pub status: CampaignStatus,
    /// How many rows it has.
    pub rows: u32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One call placed (or being placed) for a row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    /// Known once the carrier accepted the call.
    pub call_sid: Option<String>,
    /// When it was started (Unix ms).
    pub at_ms: i64,
    /// How it ended (`None` while it runs).
    pub outcome: Option<String>,
}

impl Attempt {
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.as_deref().and_then(|o| Outcome::parse(o).ok())
    }
}

/// A row of a campaign: who to call, with which variables, and what happened so far.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRow {
    /// 0-based position in the uploaded list.
    pub index: u32,
    pub to: PhoneNumber,
    pub variables: Variables,
    pub state: RowState,
    pub attempts: Vec<Attempt>,
    /// When it may be dialled next (Unix ms).
    pub next_at_ms: i64,
    /// While `Dialling`: until when its dialer holds it (Unix ms).
    pub claimed_until_ms: i64,
}

impl CampaignRow {
    /// A row not yet dialled, due at once.
    pub fn new(index: u32, to: PhoneNumber, variables: Variables) -> Self {
        Self {
            index,
            to,
            variables,
            state: RowState::Pending,
            attempts: Vec::new(),
            next_at_ms: 0,
            claimed_until_ms: 0,
        }
    }

    /// The outcome of its last finished attempt.
    pub fn outcome(&self) -> Option<Outcome> {
        self.attempts.iter().rev().find_map(Attempt::outcome)
    }

    /// The attempts as stored (JSON).
    pub fn attempts_json(&self) -> String {
        serde_json::to_string(&self.attempts).unwrap_or_else(|_| "[]".into())
    }

    pub fn attempts_from_json(raw: &str) -> StoreResult<Vec<Attempt>> {
        serde_json::from_str(raw).map_err(|e| super::corrupt(format!("row attempts: {e}")))
    }
}

/// How many rows are in each state, and how the finished ones ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub by_state: BTreeMap<&'static str, u32>,
    /// Rows in a final state, by their last outcome (`cancelled` rows that never rang are not
    /// counted here).
    pub by_outcome: BTreeMap<&'static str, u32>,
}

impl CampaignCounts {
    pub fn add(&mut self, state: RowState, outcome: Option<Outcome>, n: u32) {
        *self.by_state.entry(state.as_str()).or_default() += n;
        if let (true, Some(o)) = (state.is_final(), outcome) {
            *self.by_outcome.entry(o.as_str()).or_default() += n;
        }
    }

    pub fn state(&self, s: RowState) -> u32 {
        self.by_state.get(s.as_str()).copied().unwrap_or(0)
    }
}

/// What a dialer asks when it ends an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish<'a> {
    /// The attempt's call, when one was placed (then only that attempt is ended).
    pub call_sid: Option<&'a CallSid>,
    pub outcome: Outcome,
    /// `Some(t)`: the row waits until `t` (Unix ms) for another attempt; `None`: it is done.
    pub retry_at_ms: Option<i64>,
}

/// Campaigns and their rows.
///
/// Every method is atomic and does not block the runtime. Row moves are conditional: a move
/// from a state the row is not in changes nothing and answers `false` (so retries and racing
/// dialers are harmless). Safe to cancel: a move either happened or did not.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores a campaign and all its rows, or nothing.
    async fn create_campaign(&self, campaign: &Campaign, rows: &[CampaignRow]) -> StoreResult<()>;
    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> StoreResult<Option<Campaign>>;
    /// The tenant's campaigns, newest first.
    async fn list_campaigns(&self, tenant: &TenantId) -> StoreResult<Vec<Campaign>>;
    /// Moves a campaign from one of `from` to `to` (cancelling also cancels its waiting rows).
    /// `NotFound`, or `Conflict` naming the current status when it is in none of `from`.
    async fn set_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
    ) -> StoreResult<Campaign>;
    async fn campaign_counts(&self, id: &CampaignId) -> StoreResult<CampaignCounts>;
    /// Rows by index, after `after` (exclusive), at most `limit`.
    async fn campaign_rows(
        &self,
        id: &CampaignId,
        after: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>>;
    /// Every tenant's campaigns a dialer has work in: running ones, and others with calls still
    /// in progress.
    async fn campaigns_at_work(&self) -> StoreResult<Vec<Campaign>>;
    /// Rows dialling or in a call.
    async fn active_rows(&self, id: &CampaignId) -> StoreResult<Vec<CampaignRow>>;
    /// Pending rows due at `now_ms`, lowest index first, at most `limit`.
    async fn due_rows(
        &self,
        id: &CampaignId,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>>;
    /// Takes a row for dialling (a new attempt at `now_ms`, held until `claim_until_ms`) if it is
    /// pending and due, its campaign is running and fewer than `max_concurrency` of its rows
    /// are active.
    async fn claim_row(
        &self,
        id: &CampaignId,
        index: u32,
        now_ms: i64,
        claim_until_ms: i64,
    ) -> StoreResult<bool>;
    /// Gives a claimed row back to wait until `next_at_ms`, dropping the attempt: its call
    /// could not be placed now (limits, carrier unavailable) and nobody was called.
    async fn unclaim_row(&self, id: &CampaignId, index: u32, next_at_ms: i64) -> StoreResult<bool>;
    /// A claimed row's call was placed: it is in a call with `sid`.
    async fn row_dialled(&self, id: &CampaignId, index: u32, sid: &CallSid) -> StoreResult<bool>;
    /// Ends an active row's current attempt (only the one with `finish.call_sid` when given).
    async fn finish_attempt(
        &self,
        id: &CampaignId,
        index: u32,
        finish: &Finish<'_>,
    ) -> StoreResult<bool>;
    /// A running campaign none of whose rows waits or is active becomes completed. True when it
    /// changed.
    async fn complete_if_done(&self, id: &CampaignId) -> StoreResult<bool>;
    /// Releases the next `n` rows to a queue-driven dialer: answers the indexes released by this
    /// call (empty once every row was). Atomic; not idempotent (each call releases more), so a
    /// repeated call releases rows early, which is harmless: a released row is only dialled
    /// once a claim admits it.
    async fn release_rows(&self, id: &CampaignId, n: u32) -> StoreResult<std::ops::Range<u32>>;
}

/// The conflict a status change from the wrong status gets.
pub fn status_conflict(current: CampaignStatus, to: CampaignStatus) -> StoreError {
    StoreError::Conflict(format!(
        "campaign is {}; it cannot become {}",
        current.as_str(),
        to.as_str()
    ))
}
