//! The `Telephony` trait: numbers and call control. Its adapter is the Twilio REST client
//! (`crate::twilio::rest`), pointed at api.twilio.com or, in local mode, at the embedded simulator.

use crate::domain::{BotId, CallSid, PhoneNumber};
use async_trait::async_trait;

/// What a bot asks for when it needs a number.
#[derive(Debug, Clone, Default)]
pub struct NumberRequest {
    pub area_code: Option<String>,
    /// ISO 3166-1 alpha-2 country, default `US`.
    pub country: Option<String>,
}

/// Where the provider sends a number's calls.
#[derive(Debug, Clone)]
pub struct NumberWebhooks {
    /// Answer URL (`{PUBLIC_BASE_URL}/voice?bot_id=…`).
    pub voice_url: String,
    /// Call-progress callbacks (`{PUBLIC_BASE_URL}/voice/status`).
    pub status_callback: String,
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    pub to: PhoneNumber,
    pub from: PhoneNumber,
    /// TwiML URL fetched when the callee answers.
    pub answer_url: String,
    pub status_callback: String,
    /// Ask the carrier whether a person or a machine answered (asynchronously: the call is
    /// connected at once and the verdict is posted to the callback).
    pub machine_detection: Option<MachineDetection>,
}

/// Asynchronous answering-machine detection for an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDetection {
    /// Wait for the end of a machine's greeting (its beep) before giving the verdict, so a
    /// message can be left; otherwise a machine is reported as soon as it is recognised.
    pub until_greeting_end: bool,
    /// Where the verdict is posted (Twilio's `AsyncAmdStatusCallback`).
    pub callback: String,
}

/// A number the provider assigned to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedNumber {
    pub number: PhoneNumber,
    /// Provider id for the number (Twilio `PN…`), needed to release it.
    pub sid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    #[error("no phone numbers available: {0}")]
    NoNumbers(String),
    #[error("telephony provider rejected our credentials")]
    Auth,
    #[error("telephony provider refused the request: {0}")]
    Rejected(String),
    #[error("telephony provider unavailable: {0}")]
    Unavailable(String),
}

/// Numbers and call control.
///
/// - `provision_number` is **not** idempotent: every successful call acquires a number that costs
///   money. Callers must release it if what they needed it for fails (compensation). It is not safe
///   to cancel midway: a number bought before cancellation could be lost, so run it to completion.
/// - `release_number` is idempotent: releasing an already released number succeeds.
/// - Neither blocks the async runtime.
#[async_trait]
pub trait Telephony: Send + Sync + std::fmt::Debug {
    /// Short name for the startup banner ("local", "twilio").
    fn kind(&self) -> &'static str;
    async fn provision_number(
        &self,
        bot: &BotId,
        request: &NumberRequest,
        webhooks: &NumberWebhooks,
    ) -> Result<ProvisionedNumber, TelephonyError>;
    async fn release_number(&self, number: &ProvisionedNumber) -> Result<(), TelephonyError>;
    /// Places a call. Not idempotent (each success is a new call); hang it up to compensate.
    async fn create_call(&self, call: &OutboundCall) -> Result<CallSid, TelephonyError>;
    /// Ends a call whatever its state. Idempotent: a call that already ended is a success.
    async fn hangup_call(&self, sid: &CallSid) -> Result<(), TelephonyError>;
    /// Replaces what a live call is doing with `twiml` (transfers). Idempotent for the same TwiML.
    async fn redirect_call(&self, sid: &CallSid, twiml: &str) -> Result<(), TelephonyError>;
    /// What the carrier knows of a call now; `None` when it has no such call. Read-only: safe to
    /// retry and to cancel.
    async fn call_state(&self, sid: &CallSid) -> Result<Option<CarrierCall>, TelephonyError>;
}

/// A call as the carrier reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierCall {
    pub status: crate::domain::CallStatus,
    pub answered_by: Option<crate::domain::AnsweredBy>,
    pub duration_secs: Option<u32>,
}
