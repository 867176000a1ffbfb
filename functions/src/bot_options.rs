//! The bot fields kept among its options: `timezone` (for the date and time placeholders), the
//! default `variables` of its calls and `voicemail` (what an answering machine gets).

use crate::error::{ApiError, ApiResult};
use callbot_core::domain::{BotOptions, Timezone, Variables, Voicemail};

/// The option fields of a bot request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionFields<'a> {
    pub timezone: Option<&'a str>,
    pub variables: Option<&'a serde_json::Value>,
    pub voicemail: Option<&'a serde_json::Value>,
}

impl OptionFields<'_> {
    pub fn any(&self) -> bool {
        self.timezone.is_some() || self.variables.is_some() || self.voicemail.is_some()
    }
}

/// `base` with the fields a request sent: `timezone` replaces the zone, `variables` replaces
/// the whole set (`{}` clears it), `voicemail` replaces the policy.
pub(crate) fn apply(base: &BotOptions, fields: OptionFields<'_>) -> ApiResult<BotOptions> {
    let OptionFields {
        timezone,
        variables,
        voicemail,
    } = fields;
    let mut next = base.clone();
    if let Some(v) = voicemail {
        next.voicemail = Voicemail::parse(v).map_err(|e| ApiError::field("voicemail", e))?;
    }
    if let Some(tz) = timezone {
        next.timezone = Timezone::parse(tz).map_err(|e| ApiError::field("timezone", e))?;
    }
    if let Some(v) = variables {
        next.variables =
            Variables::parse(v, "variables").map_err(|e| ApiError::field("variables", e))?;
    }
    Ok(next)
}
