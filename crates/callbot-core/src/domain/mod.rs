//! Domain types parsed at the edge: once a value of these types exists it is valid.

pub mod analysis;
mod answered;
mod brain;
mod call;
pub mod campaign;
mod ids;
mod options;
mod phone;
pub mod template;
mod text;
mod timezone;
pub mod turn_detection;
mod voice;
pub mod voice_catalog;
pub mod webhook;

pub use analysis::AnalysisPlan;
pub use answered::AnsweredBy;
pub use brain::{BUILTIN_TOOLS, BotMode, Brain, Tool, TransferTarget};
pub use call::{CallDirection, CallSid, CallStatus, CallTimers, Channel, UserLabel};
pub use campaign::{CallingWindow, CampaignId, CampaignStatus, Outcome, RetryPolicy, RowState};
pub use ids::{BotId, TenantId};
pub use options::{BotOptions, Voicemail};
pub use phone::PhoneNumber;
pub use template::{BuiltIns, Variables};
pub use text::{Context, FirstMessage, Goal, VoicemailMessage};
pub use timezone::Timezone;
pub use turn_detection::TurnDetection;
pub use voice::{Voice, VoiceProvider};
pub use voice_catalog::VoiceAvailability;
pub use webhook::{WebhookPolicy, WebhookUrl};

/// Why a raw value was refused. `code` is stable and machine-readable; `message` is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
}

impl ParseError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Bot lifecycle state. `paused` bots keep their number but do not answer calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BotStatus {
    Active,
    Paused,
}

impl BotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BotStatus::Active => "active",
            BotStatus::Paused => "paused",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "active" => Ok(BotStatus::Active),
            "paused" => Ok(BotStatus::Paused),
            other => Err(ParseError::new(
                "invalid_status",
                format!("status must be \"active\" or \"paused\", got {other:?}"),
            )),
        }
    }
}
