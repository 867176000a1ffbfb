//! Call identifiers and states: Twilio call sids, the call status lifecycle, call direction and the
//! customer's end-user label (`user_id` of the outbound API).

use super::ParseError;
use std::fmt;

/// A Twilio call sid: `CA` and 32 hex digits (34 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSid(String);

impl CallSid {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = raw.len() == 34
            && raw.starts_with("CA")
            && raw.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
        if ok {
            Ok(CallSid(raw.to_owned()))
        } else {
            Err(ParseError::new(
                "invalid_call_sid",
                "call sid must be \"CA\" and 32 hex digits",
            ))
        }
    }

    /// A fresh random sid (simulated calls).
    pub fn generate() -> Self {
        CallSid(format!("CA{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A call's state, as in Twilio's Call resource. `initiated` (callbacks only) is read as `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 8] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::NoAnswer,
        CallStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
        }
    }

    /// Parses Twilio's `CallStatus` / `status` values (`initiated` and `answered` included).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Ok(match raw {
            "queued" | "initiated" => CallStatus::Queued,
            "ringing" => CallStatus::Ringing,
            "in-progress" | "answered" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "failed" => CallStatus::Failed,
            "no-answer" => CallStatus::NoAnswer,
            "canceled" => CallStatus::Canceled,
            other => {
                return Err(ParseError::new(
                    "invalid_call_status",
                    format!(
                        "unknown call status {other:?} (expected one of queued, ringing, in-progress, \
                         completed, busy, failed, no-answer, canceled)"
                    ),
                ));
            }
        })
    }

    /// A finished call never changes state again.
    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }

    /// Progress order: queued < ringing < in-progress < any terminal state.
    pub fn rank(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            _ => 3,
        }
    }

    /// Whether a callback reporting `next` may replace `self` (never backwards, never out of a
    /// finished state).
    pub fn may_become(self, next: CallStatus) -> bool {
        !self.is_terminal() && next.rank() >= self.rank()
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound-api",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "inbound" => Ok(CallDirection::Inbound),
            "outbound-api" | "outbound" => Ok(CallDirection::Outbound),
            other => Err(ParseError::new(
                "invalid_direction",
                format!("unknown call direction {other:?}"),
            )),
        }
    }
}

/// The leg a call came over: the phone network through Twilio, a `/call` WebSocket carrying the
/// audio itself, or a WebRTC leg set up over `/call/webrtc` (RustPBX's `call_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channel {
    #[default]
    Twilio,
    Websocket,
    Webrtc,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Twilio => "twilio",
            Channel::Websocket => "websocket",
            Channel::Webrtc => "webrtc",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "twilio" => Ok(Channel::Twilio),
            "websocket" => Ok(Channel::Websocket),
            "webrtc" => Ok(Channel::Webrtc),
            other => Err(ParseError::new(
                "invalid_channel",
                format!("unknown call channel {other:?}"),
            )),
        }
    }

    /// Whether a phone carrier holds the call (hang-up, transfer and `refer` go through it).
    pub fn is_phone(self) -> bool {
        self == Channel::Twilio
    }
}

/// The customer's own label for one of its end users (`user_id` in the outbound API): 1-128
/// printable characters without `#` (which the stores use as a key separator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserLabel(String);

impl UserLabel {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        // The limit counts what was sent (as the API description's maxLength does).
        let sent = raw.chars().count();
        let raw = raw.trim();
        let ok = sent <= 128 && !raw.is_empty() && raw.chars().all(|c| !c.is_control() && c != '#');
        if ok {
            Ok(UserLabel(raw.to_owned()))
        } else {
            Err(ParseError::new(
                "invalid_user_id",
                "user_id must be 1-128 printable characters without '#'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids() {
        let sid = CallSid::generate();
        assert_eq!(CallSid::parse(sid.as_str()).unwrap(), sid);
        assert!(CallSid::parse("CA5f0e1d2c3b4a59687766554433221100").is_ok());
        for bad in [
            "",
            "CA123",
            "MZ5f0e1d2c3b4a59687766554433221100",
            "CA5f0e1d2c3b4a5968776655443322110g",
        ] {
            assert!(CallSid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip_and_only_move_forward() {
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(CallStatus::parse("initiated").unwrap(), CallStatus::Queued);
        assert!(CallStatus::parse("ringing ").is_err());
        assert!(CallStatus::Queued.may_become(CallStatus::Ringing));
        assert!(CallStatus::Ringing.may_become(CallStatus::Completed));
        assert!(!CallStatus::InProgress.may_become(CallStatus::Ringing));
        assert!(!CallStatus::Completed.may_become(CallStatus::Completed));
        assert!(!CallStatus::Busy.may_become(CallStatus::InProgress));
    }

    #[test]
    fn user_labels() {
        assert_eq!(UserLabel::parse(" user-42 ").unwrap().as_str(), "user-42");
        assert!(UserLabel::parse("").is_err());
        assert!(UserLabel::parse("a#b").is_err());
        assert!(UserLabel::parse(&"x".repeat(129)).is_err());
    }
}

/// Per-bot call timers; `None` uses the platform default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallTimers {
    silence_timeout_secs: Option<u32>,
    max_call_secs: Option<u32>,
    /// Silence after the caller's last word that ends their turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_silence_ms: Option<u32>,
    /// Stored by earlier versions: on is the heuristic, off the plain silence (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smart_endpointing: Option<bool>,
    /// How the end of the caller's turn is decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    turn_detection: Option<super::TurnDetection>,
    /// How long the caller must talk over the bot to interrupt it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    barge_in_ms: Option<u32>,
    /// Whether acknowledgements ("uh-huh", "okay") interrupt the bot (default: they do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interrupt_on_backchannel: Option<bool>,
    /// Webhook mode: how long the webhook waits for the model's suggestion (then it is called
    /// with `llm_suggestion: null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suggestion_deadline_ms: Option<u32>,
}

impl CallTimers {
    pub const SILENCE_RANGE: std::ops::RangeInclusive<u64> = 3..=300;
    pub const MAX_CALL_RANGE: std::ops::RangeInclusive<u64> = 30..=14_400;

    /// Silence before a reprompt (3-300 s) and longest call (30 s - 4 h).
    pub fn parse(
        silence_timeout_secs: Option<u64>,
        max_call_secs: Option<u64>,
    ) -> Result<Self, (&'static str, ParseError)> {
        let check =
            |field: &'static str, v: Option<u64>, range: std::ops::RangeInclusive<u64>| match v {
                None => Ok(None),
                Some(v) if range.contains(&v) => Ok(Some(v as u32)),
                Some(_) => Err((
                    field,
                    ParseError::new(
                        "out_of_range",
                        format!("must be {}-{} seconds", range.start(), range.end()),
                    ),
                )),
            };
        Ok(Self {
            silence_timeout_secs: check(
                "silence_timeout_secs",
                silence_timeout_secs,
                Self::SILENCE_RANGE,
            )?,
            max_call_secs: check("max_call_secs", max_call_secs, Self::MAX_CALL_RANGE)?,
            end_silence_ms: None,
            smart_endpointing: None,
            turn_detection: None,
            barge_in_ms: None,
            interrupt_on_backchannel: None,
            suggestion_deadline_ms: None,
        })
    }

    pub const SUGGESTION_DEADLINE_RANGE: std::ops::RangeInclusive<u64> = 100..=10_000;

    /// The same timers with the suggestion deadline (100-10000 ms; `None`: the platform's).
    pub fn with_suggestion_deadline(
        mut self,
        ms: Option<u64>,
    ) -> Result<Self, (&'static str, ParseError)> {
        match ms {
            Some(v) if !Self::SUGGESTION_DEADLINE_RANGE.contains(&v) => Err((
                "suggestion_deadline_ms",
                ParseError::new("out_of_range", "must be 100-10000 milliseconds"),
            )),
            v => {
                self.suggestion_deadline_ms = v.map(|v| v as u32);
                Ok(self)
            }
        }
    }

    /// The bot's suggestion deadline, if it set one.
    pub fn suggestion_deadline_ms(&self) -> Option<u32> {
        self.suggestion_deadline_ms
    }

    pub fn silence_timeout_secs(&self) -> Option<u32> {
        self.silence_timeout_secs
    }

    pub fn max_call_secs(&self) -> Option<u32> {
        self.max_call_secs
    }

    pub const END_SILENCE_RANGE: std::ops::RangeInclusive<u64> = 200..=3000;

    pub const BARGE_IN_RANGE: std::ops::RangeInclusive<u64> = 100..=3000;

    /// The same timers with endpointing settings: the usual end-of-turn silence (200-3000 ms),
    /// how the turn's end is decided, how long the caller must talk over the bot to interrupt
    /// it (100-3000 ms) and whether acknowledgements do.
    pub fn with_endpointing(
        mut self,
        end_silence_ms: Option<u64>,
        detection: Option<super::TurnDetection>,
        barge_in_ms: Option<u64>,
        interrupt_on_backchannel: Option<bool>,
    ) -> Result<Self, (&'static str, ParseError)> {
        self.interrupt_on_backchannel = interrupt_on_backchannel;
        match barge_in_ms {
            Some(v) if !Self::BARGE_IN_RANGE.contains(&v) => {
                return Err((
                    "barge_in_ms",
                    ParseError::new("out_of_range", "must be 100-3000 milliseconds"),
                ));
            }
            v => self.barge_in_ms = v.map(|v| v as u32),
        }
        match end_silence_ms {
            Some(v) if !Self::END_SILENCE_RANGE.contains(&v) => {
                return Err((
                    "end_silence_ms",
                    ParseError::new("out_of_range", "must be 200-3000 milliseconds"),
                ));
            }
            v => self.end_silence_ms = v.map(|v| v as u32),
        }
        self.smart_endpointing = None;
        self.turn_detection = detection;
        Ok(self)
    }

    pub fn end_silence_ms(&self) -> Option<u32> {
        self.end_silence_ms
    }

    /// How the end of the caller's turn is decided (default: the heuristic).
    pub fn turn_detection(&self) -> super::TurnDetection {
        self.turn_detection_setting().unwrap_or_default()
    }

    /// The bot's own choice, if it made one (an update keeps it).
    pub fn turn_detection_setting(&self) -> Option<super::TurnDetection> {
        self.turn_detection
            .or(self.smart_endpointing.map(super::TurnDetection::from_smart))
    }

    pub fn barge_in_ms(&self) -> Option<u32> {
        self.barge_in_ms
    }

    /// Whether acknowledgements interrupt the bot (default false), and the bot's own choice.
    pub fn interrupt_on_backchannel(&self) -> bool {
        self.interrupt_on_backchannel.unwrap_or(false)
    }

    pub fn interrupt_on_backchannel_setting(&self) -> Option<bool> {
        self.interrupt_on_backchannel
    }

    /// Stored form (JSON), `None` when both are defaults.
    pub fn to_stored(&self) -> Option<String> {
        (*self != Self::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_stored(raw: Option<&str>) -> Result<Self, ParseError> {
        match raw {
            None => Ok(Self::default()),
            Some(r) => {
                let t: Self = serde_json::from_str(r)
                    .map_err(|e| ParseError::new("corrupt", e.to_string()))?;
                Self::parse(
                    t.silence_timeout_secs.map(u64::from),
                    t.max_call_secs.map(u64::from),
                )
                .and_then(|c| {
                    c.with_endpointing(
                        t.end_silence_ms.map(u64::from),
                        t.turn_detection_setting(),
                        t.barge_in_ms.map(u64::from),
                        t.interrupt_on_backchannel,
                    )
                })
                .and_then(|c| c.with_suggestion_deadline(t.suggestion_deadline_ms.map(u64::from)))
                .map_err(|(_, e)| e)
            }
        }
    }
}

#[cfg(test)]
mod timer_tests {
    use super::CallTimers;

    #[test]
    fn ranges_and_storage() {
        assert!(CallTimers::parse(Some(2), None).is_err());
        assert_eq!(
            CallTimers::parse(None, Some(20)).unwrap_err().0,
            "max_call_secs"
        );
        let t = CallTimers::parse(Some(8), Some(600)).unwrap();
        assert_eq!(
            (t.silence_timeout_secs(), t.max_call_secs()),
            (Some(8), Some(600))
        );
        assert_eq!(
            CallTimers::from_stored(t.to_stored().as_deref()).unwrap(),
            t
        );
        assert_eq!(CallTimers::default().to_stored(), None);
    }

    #[test]
    fn the_older_smart_endpointing_reads_as_its_turn_detection() {
        use crate::domain::TurnDetection;
        let t = CallTimers::from_stored(Some(r#"{"smart_endpointing":false}"#)).unwrap();
        assert_eq!(t.turn_detection(), TurnDetection::Silence);
        let t = CallTimers::default()
            .with_endpointing(None, Some(TurnDetection::Model), Some(500), Some(true))
            .unwrap();
        let back = CallTimers::from_stored(t.to_stored().as_deref()).unwrap();
        assert_eq!(back.turn_detection(), TurnDetection::Model);
        assert_eq!(back.barge_in_ms(), Some(500));
        assert!(back.interrupt_on_backchannel());
        assert_eq!(
            CallTimers::default().turn_detection(),
            TurnDetection::Heuristic
        );
        assert_eq!(
            CallTimers::default()
                .with_endpointing(None, None, Some(99), None)
                .unwrap_err()
                .0,
            "barge_in_ms"
        );
    }
}
