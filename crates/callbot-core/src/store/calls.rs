//! Call records and the `CallStore` trait: call lifecycle (created by `/voice` or the outbound API,
//! moved by status callbacks), listings with cursors, daily call quotas and per-user rate slots.

use super::{IdempotencyRecord, StoreResult};
use crate::domain::{
    AnsweredBy, BotId, CallDirection, CallSid, CallStatus, Channel, FirstMessage, Goal, TenantId,
    UserLabel, Variables,
};
use async_trait::async_trait;
use base64::Engine;
use time::OffsetDateTime;

/// A call as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub sid: CallSid,
    pub tenant: TenantId,
    pub bot_id: BotId,
    pub direction: CallDirection,
    /// The leg the call came over (`twilio` for phone calls).
    pub channel: Channel,
    /// Caller and callee as the carrier reported them (E.164, `client:…`, `anonymous`, …).
    pub from: String,
    pub to: String,
    /// The customer's end-user label (outbound calls).
    pub user: Option<UserLabel>,
    pub status: CallStatus,
    /// The highest status-callback `SequenceNumber` applied so far (-1: none yet).
    pub status_seq: i64,
    /// Per-call override of the bot's goal (outbound `prompt`).
    pub prompt: Option<Goal>,
    /// Per-call override of the bot's greeting (outbound `first_message`).
    pub first_message: Option<FirstMessage>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub duration_secs: Option<u32>,
    /// The call's own values for its placeholders (outbound body, campaign row).
    pub variables: Variables,
    /// What answered an outbound call, once machine detection has said.
    pub answered_by: Option<AnsweredBy>,
}

/// A reported change of a call's status (a Twilio status callback, or our own observation).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: CallStatus,
    /// Twilio's `SequenceNumber`; `None` for updates that do not come from callbacks.
    pub seq: Option<i64>,
    pub at: OffsetDateTime,
    /// `CallDuration` of the completed callback.
    pub duration_secs: Option<u32>,
}

/// What became of a status update.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusOutcome {
    Applied(CallRecord),
    /// Stale (lower sequence number), backwards, or the call had already finished.
    Ignored(CallRecord),
    UnknownCall,
}

impl CallRecord {
    /// A call the carrier has just connected to one of our numbers: live from `now`.
    pub fn inbound(
        sid: CallSid,
        tenant: &TenantId,
        bot: &BotId,
        from: &str,
        to: &str,
        now: OffsetDateTime,
    ) -> Self {
        let mut call = Self::fresh(sid, tenant, bot, CallDirection::Inbound, from, to, now);
        call.status = CallStatus::InProgress;
        call.started_at = Some(now);
        call
    }

    /// A call we asked the carrier to place from the bot's number `from`: queued until its status
    /// callbacks arrive.
    pub fn outbound(
        sid: CallSid,
        tenant: &TenantId,
        bot: &BotId,
        from: &str,
        to: &str,
        now: OffsetDateTime,
    ) -> Self {
        Self::fresh(sid, tenant, bot, CallDirection::Outbound, from, to, now)
    }

    fn fresh(
        sid: CallSid,
        tenant: &TenantId,
        bot: &BotId,
        direction: CallDirection,
        from: &str,
        to: &str,
        now: OffsetDateTime,
    ) -> Self {
        CallRecord {
            sid,
            tenant: tenant.clone(),
            bot_id: bot.clone(),
            direction,
            channel: Channel::Twilio,
            from: from.to_owned(),
            to: to.to_owned(),
            user: None,
            status: CallStatus::Queued,
            status_seq: -1,
            prompt: None,
            first_message: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            duration_secs: None,
            variables: Variables::default(),
            answered_by: None,
        }
    }

    /// The record after `update`, or `None` when the update must be ignored: it is older than one
    /// already applied, or it would move the call backwards or out of a finished state.
    pub fn with_status(&self, update: &StatusUpdate) -> Option<CallRecord> {
        if update.seq.is_some_and(|seq| seq <= self.status_seq) {
            return None;
        }
        if !self.status.may_become(update.status) {
            return None;
        }
        let mut next = self.clone();
        next.status = update.status;
        if let Some(seq) = update.seq {
            next.status_seq = seq;
        }
        next.updated_at = update.at;
        if update.status == CallStatus::InProgress && next.started_at.is_none() {
            next.started_at = Some(update.at);
        }
        if update.status.is_terminal() {
            next.ended_at = Some(update.at);
            next.duration_secs = update.duration_secs.or_else(|| {
                next.started_at
                    .map(|s| u32::try_from((update.at - s).whole_seconds().max(0)).unwrap_or(0))
            });
            if next.duration_secs.is_none() {
                next.duration_secs = Some(0);
            }
        }
        Some(next)
    }

    /// The sort key of listings (newest first): creation time, then sid.
    pub fn list_key(&self) -> String {
        format!("{}#{}", crate::time_fmt::rfc3339(self.created_at), self.sid)
    }
}

/// Which calls a listing returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    pub bot: Option<BotId>,
    pub status: Option<CallStatus>,
}

/// One page of a listing, newest first. `next_cursor` continues after the last call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    pub calls: Vec<CallRecord>,
    pub next_cursor: Option<String>,
}

/// An opaque position in a call listing (base64url of the last call's list key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn after(call: &CallRecord) -> Self {
        Cursor(call.list_key())
    }

    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        let key = String::from_utf8(bytes).ok()?;
        let (at, sid) = key.split_once('#')?;
        crate::time_fmt::parse_rfc3339(at)?;
        CallSid::parse(sid).ok()?;
        Some(Cursor(key))
    }

    /// The list key calls must sort strictly below.
    pub fn key(&self) -> &str {
        &self.0
    }
}

/// The result of asking for a rate-limit slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// All slots are taken; the oldest frees up after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

/// Persistent call state. Same contract as [`super::Store`]: no method blocks the runtime, each is
/// atomic, and methods taking a tenant never touch another tenant's calls.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Inserts a call record (and the idempotency record, if any, in the same atomic step).
    /// Returns `false` and changes nothing when a call with this sid exists already (a retried
    /// webhook). `IdempotencyKeyUsed` when the key is taken.
    async fn create_call(
        &self,
        call: &CallRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<bool>;
    async fn get_call(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Option<CallRecord>>;
    /// The call with this sid, whatever its tenant (for carrier callbacks).
    async fn call_by_sid(&self, sid: &CallSid) -> StoreResult<Option<CallRecord>>;
    /// Applies a status update under the rules of [`CallRecord::with_status`], atomically with
    /// respect to concurrent updates of the same call.
    async fn update_call_status(
        &self,
        sid: &CallSid,
        update: &StatusUpdate,
    ) -> StoreResult<StatusOutcome>;
    /// Records what answered the call (a later verdict replaces an earlier one: `machine_start`,
    /// then `machine_end_beep`); `None` when there is no such call. Idempotent.
    async fn set_answered_by(
        &self,
        sid: &CallSid,
        answered_by: AnsweredBy,
    ) -> StoreResult<Option<CallRecord>>;
    /// The tenant's calls, newest first, at most `limit`, strictly after `cursor`.
    async fn list_calls(
        &self,
        tenant: &TenantId,
        filter: &CallFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<CallPage>;
    /// Counts one call against a bot's calls on `day`, refusing with `QuotaExceeded` at `limit`.
    async fn count_call(&self, bot: &BotId, day: &str, limit: u32) -> StoreResult<()>;
    /// Gives back a slot taken by `count_call` (compensation when the call could not be placed).
    async fn uncount_call(&self, bot: &BotId, day: &str) -> StoreResult<()>;
    /// Sliding-window limiter: takes one of `limit` slots of `scope` for `window_secs` seconds
    /// from `now`, or says when the oldest slot frees up. Atomic across processes.
    async fn acquire_rate_slot(
        &self,
        scope: &str,
        limit: u32,
        window_secs: u64,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision>;
}

/// Seconds until `until_ms` (rounded up, between 1 and the window: a concurrent request that read
/// the clock a moment later may hold a slot until slightly past our own window).
pub(crate) fn retry_after(until_ms: i64, now: OffsetDateTime, window_secs: u64) -> u64 {
    let now_ms = unix_ms(now);
    u64::try_from(((until_ms - now_ms) + 999) / 1000)
        .unwrap_or(1)
        .clamp(1, window_secs.max(1))
}

pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Cuts a `limit + 1` result down to a page, with a cursor when more remain.
pub(crate) fn page(mut calls: Vec<CallRecord>, limit: u32) -> CallPage {
    let limit = limit as usize;
    let more = calls.len() > limit;
    calls.truncate(limit);
    let next_cursor = if more {
        calls.last().map(|c| Cursor::after(c).encode())
    } else {
        None
    };
    CallPage { calls, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn record() -> CallRecord {
        let t = TenantId::parse("t").unwrap();
        CallRecord::outbound(
            CallSid::generate(),
            &t,
            &BotId::generate(),
            "+15550100001",
            "+15552223333",
            crate::time_fmt::now(),
        )
    }

    fn upd(status: CallStatus, seq: i64, at: OffsetDateTime) -> StatusUpdate {
        StatusUpdate {
            status,
            seq: Some(seq),
            at,
            duration_secs: None,
        }
    }

    #[test]
    fn status_moves_forward_only_and_keeps_duration() {
        let c = record();
        let t0 = c.created_at;
        let ringing = c.with_status(&upd(CallStatus::Ringing, 1, t0)).unwrap();
        let answered = ringing
            .with_status(&upd(CallStatus::InProgress, 2, t0 + Duration::seconds(2)))
            .unwrap();
        assert_eq!(answered.started_at, Some(t0 + Duration::seconds(2)));
        // A late "ringing" (lower sequence) is ignored.
        assert!(
            answered
                .with_status(&upd(CallStatus::Ringing, 1, t0))
                .is_none()
        );
        let done = answered
            .with_status(&upd(CallStatus::Completed, 3, t0 + Duration::seconds(12)))
            .unwrap();
        assert_eq!(done.duration_secs, Some(10));
        assert_eq!(done.ended_at, Some(t0 + Duration::seconds(12)));
        // Nothing moves a finished call, even with a higher sequence number.
        assert!(
            done.with_status(&upd(CallStatus::InProgress, 9, t0))
                .is_none()
        );
        assert!(done.with_status(&upd(CallStatus::Failed, 9, t0)).is_none());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = record();
        let cur = Cursor::after(&c);
        assert_eq!(Cursor::decode(&cur.encode()), Some(cur));
        assert!(Cursor::decode("not a cursor").is_none());
        assert!(Cursor::decode("").is_none());
    }
}
