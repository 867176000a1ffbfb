//! The `Telephony` trait (numbers and call control) and its adapters: the local pool used by
//! `callbot serve` without a Twilio account.

use crate::domain::{BotId, PhoneNumber};
use async_trait::async_trait;

mod local;
pub use local::LocalTelephony;

/// What a bot asks for when it needs a number.
#[derive(Debug, Clone, Default)]
pub struct NumberRequest {
    pub area_code: Option<String>,
    /// ISO 3166-1 alpha-2 country, default `US`.
    pub country: Option<String>,
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
    ) -> Result<ProvisionedNumber, TelephonyError>;
    async fn release_number(&self, number: &ProvisionedNumber) -> Result<(), TelephonyError>;
}
