//! The bot fields kept among its options: `timezone` (for the date and time placeholders), the
//! default `variables` of its calls, `voicemail` (what an answering machine gets) and `analysis`
//! (what is asked of the model after each call).

use crate::error::{ApiError, ApiResult};
use callbot_core::domain::{AnalysisPlan, BotOptions, Timezone, Variables, Voicemail};

/// The option fields of a bot request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionFields<'a> {
    pub timezone: Option<&'a str>,
    pub variables: Option<&'a serde_json::Value>,
    pub voicemail: Option<&'a serde_json::Value>,
    pub analysis: Option<&'a serde_json::Value>,
}

impl OptionFields<'_> {
    pub fn any(&self) -> bool {
        self.timezone.is_some()
            || self.variables.is_some()
            || self.voicemail.is_some()
            || self.analysis.is_some()
    }
}

/// `base` with the fields a request sent: `timezone` replaces the zone, `variables` replaces
/// the whole set (`{}` clears it), `voicemail` replaces the policy, `analysis` the plan (one that
/// needs a model is refused where none is configured: `llm_on`).
pub(crate) fn apply(
    base: &BotOptions,
    fields: OptionFields<'_>,
    llm_on: bool,
) -> ApiResult<BotOptions> {
    let OptionFields {
        timezone,
        variables,
        voicemail,
        analysis,
    } = fields;
    let mut next = base.clone();
    if let Some(a) = analysis {
        next.analysis = AnalysisPlan::parse(a).map_err(|e| ApiError::field("analysis", e))?;
        if next.analysis.explicitly_needs_model() && !llm_on {
            return Err(ApiError::Conflict {
                code: "llm_unavailable",
                message: "analysis: a summary, structured data or success criteria need a language model and this deployment has none (CALLBOT_LLM=off)".into(),
            });
        }
    }
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
