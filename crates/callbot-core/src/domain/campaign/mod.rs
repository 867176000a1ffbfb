//! Campaigns: ids, lifecycle states, what a call's end means for its row (the outcome), and
//! the rules a dialer follows (calling window, retry policy), all without I/O.

mod retry;
mod window;

pub use retry::{Retry, RetryPolicy};
pub use window::CallingWindow;

use super::{AnsweredBy, CallStatus, ParseError};

crate::uuid_id!(
    /// A campaign id: `cmp_` and 32 lowercase hex digits of a UUIDv7 (ids sort by creation time).
    CampaignId, "cmp_", "invalid_campaign_id", "campaign id"
);

/// Defines an enum of named values with `as_str`, `parse` and `ALL`.
macro_rules! named {
    ($(#[$m:meta])* $name:ident, $code:literal, { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    ParseError::new($code, format!("{raw:?} is not one of {}", names.join(", ")))
                })
            }
        }
    };
}

named!(
    /// Where a campaign is in its life.
    CampaignStatus, "invalid_campaign_status", {
    /// Rows are dialled whenever the window is open.
    Running = "running",
    /// Nothing new is dialled; calls in progress finish.
    Paused = "paused",
    /// Waiting rows were cancelled; calls in progress finish.
    Cancelled = "cancelled",
    /// Every row reached a final state.
    Completed = "completed",
});

impl CampaignStatus {
    /// No row will be dialled any more.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignStatus::Cancelled | CampaignStatus::Completed)
    }
}

named!(
    /// Where a row is.
    RowState, "invalid_row_state", {
    /// Waiting for its turn (its next attempt is due at `next_at`).
    Pending = "pending",
    /// Taken by a dialer that is placing its call.
    Dialling = "dialling",
    /// Its call is in progress.
    Calling = "calling",
    /// Final: its last outcome stands.
    Done = "done",
    /// Final: cancelled before it was called again.
    Cancelled = "cancelled",
});

impl RowState {
    /// Holds one of the campaign's concurrent calls.
    pub fn is_active(self) -> bool {
        matches!(self, RowState::Dialling | RowState::Calling)
    }

    pub fn is_final(self) -> bool {
        matches!(self, RowState::Done | RowState::Cancelled)
    }
}

named!(
    /// How one attempt at a row ended.
    Outcome, "invalid_outcome", {
    /// A person (or a caller the detector could not place) answered and the call ended.
    Answered = "answered",
    /// An answering machine (or a fax) answered.
    Machine = "machine",
    NoAnswer = "no_answer",
    Busy = "busy",
    /// The carrier could not place the call (bad number, network) or it was cancelled.
    Failed = "failed",
    /// The server stopped while this attempt was being placed or was in progress and the carrier
    /// has no word of it: it is not tried again, so nobody is called twice.
    Interrupted = "interrupted",
});

impl Outcome {
    /// What a call that ended with `status` (a final one) and `answered_by` means for its row;
    /// `None` while the call is not over.
    pub fn of_call(status: CallStatus, answered_by: Option<AnsweredBy>) -> Option<Outcome> {
        Some(match status {
            CallStatus::Completed => match answered_by {
                Some(a) if a.is_machine() => Outcome::Machine,
                _ => Outcome::Answered,
            },
            CallStatus::Busy => Outcome::Busy,
            CallStatus::NoAnswer => Outcome::NoAnswer,
            CallStatus::Failed | CallStatus::Canceled => Outcome::Failed,
            CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_others() {
        let id = CampaignId::generate();
        assert_eq!(CampaignId::parse(id.as_str()).unwrap(), id);
        assert!(CampaignId::parse("bot_0123456789abcdef0123456789abcdef").is_err());
        assert!(CampaignId::parse("cmp_0123456789ABCDEF0123456789abcdef").is_err());
    }

    #[test]
    fn a_calls_end_names_the_rows_outcome() {
        use AnsweredBy::*;
        let of = Outcome::of_call;
        assert_eq!(of(CallStatus::Completed, None), Some(Outcome::Answered));
        assert_eq!(
            of(CallStatus::Completed, Some(Human)),
            Some(Outcome::Answered)
        );
        assert_eq!(
            of(CallStatus::Completed, Some(Unknown)),
            Some(Outcome::Answered)
        );
        assert_eq!(
            of(CallStatus::Completed, Some(MachineEndBeep)),
            Some(Outcome::Machine)
        );
        assert_eq!(of(CallStatus::Completed, Some(Fax)), Some(Outcome::Machine));
        assert_eq!(of(CallStatus::Busy, None), Some(Outcome::Busy));
        assert_eq!(of(CallStatus::NoAnswer, None), Some(Outcome::NoAnswer));
        assert_eq!(of(CallStatus::Canceled, None), Some(Outcome::Failed));
        assert_eq!(of(CallStatus::InProgress, Some(Human)), None);
        assert_eq!(of(CallStatus::Ringing, None), None);
    }

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for s in RowState::ALL {
            assert_eq!(RowState::parse(s.as_str()).unwrap(), *s);
        }
        let e = Outcome::parse("voicemail").unwrap_err();
        assert_eq!(e.code, "invalid_outcome");
        assert!(e.message.contains("no_answer"), "{}", e.message);
    }
}
