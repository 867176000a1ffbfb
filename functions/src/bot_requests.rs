//! The bodies `/bots` accepts (`POST` and `PATCH`) and the names the API description gives their
//! enumerated fields; the handlers in `bots` parse them into domain types.

use serde::Deserialize;

/// How a bot decides what to say (API description).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the API description's enum; requests are parsed as text
pub enum BotModeName {
    Webhook,
    Llm,
}

/// Whether a bot answers (API description).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the API description's enum; requests are parsed as text
pub enum BotStatusName {
    Active,
    Paused,
}

/// Body of `POST /bots`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBotRequest {
    /// What the bot is for, e.g. "Take restaurant reservations" (1-2,000 characters).
    #[schema(
        max_length = 2000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub(crate) goal: String,
    /// Your HTTPS endpoint: decides what the bot says each turn (webhook mode, required), or runs
    /// the bot's tools and receives turn notices (LLM mode, optional).
    #[serde(default)]
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$")]
    pub(crate) webhook: Option<String>,
    /// `webhook` (default: the LLM suggests, your webhook decides) or `llm` (the LLM answers).
    #[serde(default)]
    #[schema(value_type = Option<BotModeName>)]
    pub(crate) mode: Option<String>,
    /// Webhook mode: ask the LLM for a suggestion each turn (default true; false saves its latency).
    #[serde(default)]
    pub(crate) llm_suggestion: Option<bool>,
    /// LLM mode: functions the model may call, served by your webhook:
    /// `[{"name", "description", "parameters": <JSON Schema object>}]` (at most 16).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) tools: Option<Vec<serde_json::Value>>,
    /// Numbers (E.164) or prefixes (`+1555*`) calls may be transferred to: by the webhook's
    /// `transfer`, the model's `transfer_call` or a supervisor's `refer` (at most 32). Any other
    /// target is refused.
    #[serde(default)]
    pub(crate) transfer_numbers: Option<Vec<String>>,
    /// Where a call is transferred when the webhook has failed `CALLBOT_WEBHOOK_FAILURE_LIMIT`
    /// turns in a row (E.164); without one the call ends politely.
    #[serde(default)]
    #[schema(example = "+15551230000")]
    pub(crate) fallback_number: Option<String>,
    /// Facts the bot may use, e.g. "Open 5PM-10PM" (up to 8,000 characters).
    #[serde(default)]
    #[schema(
        max_length = 8000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub(crate) context: Option<String>,
    /// `provider:name` with provider elevenlabs, polly, openai or local (`GET /voices`). Default
    /// `local:en-us`. A provider this deployment has not configured is refused
    /// (`voice_unavailable`), as is a name Polly or OpenAI do not have (`unknown_voice`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]+:.+$")]
    pub(crate) voice: Option<String>,
    /// Line spoken when a call connects (up to 500 characters).
    #[serde(default)]
    #[schema(
        max_length = 500,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub(crate) first_message: Option<String>,
    /// Caller silence before a reprompt (a second one ends the call), 3-300 s. Default: platform's.
    #[serde(default)]
    #[schema(minimum = 3, maximum = 300)]
    pub(crate) silence_timeout_secs: Option<u64>,
    /// Longest call, 30-14,400 s. Default: platform's.
    #[serde(default)]
    #[schema(minimum = 30, maximum = 14400)]
    pub(crate) max_call_secs: Option<u64>,
    /// Silence after the caller's last word that ends their turn, 200-3,000 ms. Default:
    /// platform's (`CALLBOT_END_SILENCE_MS`, 700).
    #[serde(default)]
    #[schema(minimum = 200, maximum = 3000)]
    pub(crate) end_silence_ms: Option<u64>,
    /// Older form of `turn_detection`: true is `heuristic`, false is `silence`.
    #[serde(default)]
    pub(crate) smart_endpointing: Option<bool>,
    /// How the end of the caller's turn is decided: `heuristic` (default: the words so far
    /// adjust the silence, half of it after a finished sentence, twice it after "and", "um" or a
    /// number being given), `silence` (the silence alone) or `model` (the end-of-turn model's
    /// verdict on the sound, with the words' rules).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "heuristic")]
    pub(crate) turn_detection: Option<String>,
    /// How long the caller must talk over the bot to interrupt it, 100-3,000 ms. Default:
    /// platform's (`CALLBOT_BARGE_IN_MS`, 300).
    #[serde(default)]
    #[schema(minimum = 100, maximum = 3000)]
    pub(crate) barge_in_ms: Option<u64>,
    /// Whether short acknowledgements over the bot ("uh-huh", "okay", "right", "yeah", "I see")
    /// interrupt it. Default false: they do not, and one that ends while the bot still talks is
    /// not a turn (it shows as an `asrFinal` event).
    #[serde(default)]
    pub(crate) interrupt_on_backchannel: Option<bool>,
    /// Webhook mode with `llm_suggestion`: how long the model's suggestion may take, 100-10,000
    /// ms; past it the webhook is called with `llm_suggestion: null`. Default: the platform's
    /// model deadline (`CALLBOT_LLM_TIMEOUT_MS`, 2,500).
    #[serde(default)]
    #[schema(minimum = 100, maximum = 10000)]
    pub(crate) suggestion_deadline_ms: Option<u64>,
    /// IANA time zone of the `{{date}}`, `{{time}}` and `{{weekday}}` placeholders (and, for
    /// campaigns, of calling windows), e.g. `America/New_York`. Default `UTC`.
    #[serde(default)]
    #[schema(example = "America/New_York", max_length = 64)]
    pub(crate) timezone: Option<String>,
    /// Default values for the `{{name}}` placeholders of `goal`, `context` and `first_message`
    /// (a call's own `variables` win): names of letters, digits and `_`, values text, numbers
    /// or booleans (at most 50, each up to 500 characters).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"shop": "Bella Vista"}))]
    pub(crate) variables: Option<serde_json::Value>,
    /// What an answering machine gets on an outbound call: `{"action": "hang_up"}` (default) or
    /// `{"action": "leave_message", "message": "…"}` (placeholders allowed; said after the
    /// greeting's beep, then the bot hangs up).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"action": "leave_message", "message": "Hi {{name}}, this is Bella Vista. Please call us back."}))]
    pub(crate) voicemail: Option<serde_json::Value>,
    /// What the model gives after each call: `{"summary": true, "structured_data": {JSON Schema
    /// with "type": "object"}, "success_criteria": "…"}` (each optional; the summary is on by
    /// default when a model is configured). Needs a model (409 `llm_unavailable` otherwise).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"success_criteria": "The caller confirmed the booking",
        "structured_data": {"type": "object", "properties": {"party": {"type": "integer"}}}}))]
    pub(crate) analysis: Option<serde_json::Value>,
    /// Preferred area code for the number (US/CA, 3 digits).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{3}$")]
    pub(crate) area_code: Option<String>,
    /// ISO country of the number, default US.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub(crate) country: Option<String>,
}

/// Body of `PATCH /bots/{id}`: any subset of the fields. `first_message: null` removes it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBotRequest {
    #[serde(default)]
    #[schema(
        max_length = 2000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub(crate) goal: Option<String>,
    /// `null` removes it (allowed in LLM mode only).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) webhook: Option<Option<String>>,
    #[serde(default)]
    #[schema(
        max_length = 8000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub(crate) context: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]+:.+$")]
    pub(crate) voice: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<BotModeName>)]
    pub(crate) mode: Option<String>,
    #[serde(default)]
    pub(crate) llm_suggestion: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) tools: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub(crate) transfer_numbers: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) fallback_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub(crate) first_message: Option<Option<String>>,
    /// `active` or `paused` (a paused bot keeps its number but does not answer).
    #[serde(default)]
    #[schema(value_type = Option<BotStatusName>)]
    pub(crate) status: Option<String>,
    /// `null` returns to the platform default.
    #[serde(default, deserialize_with = "double_option_u64")]
    #[schema(value_type = Option<u64>)]
    pub(crate) silence_timeout_secs: Option<Option<u64>>,
    /// `null` returns to the platform default.
    #[serde(default, deserialize_with = "double_option_u64")]
    #[schema(value_type = Option<u64>)]
    pub(crate) max_call_secs: Option<Option<u64>>,
    /// `null` returns to the platform default.
    #[serde(default, deserialize_with = "double_option_u64")]
    #[schema(value_type = Option<u64>)]
    pub(crate) end_silence_ms: Option<Option<u64>>,
    #[serde(default)]
    pub(crate) smart_endpointing: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "model")]
    pub(crate) turn_detection: Option<String>,
    /// `null` returns to the platform default.
    #[serde(default, deserialize_with = "double_option_u64")]
    #[schema(value_type = Option<u64>)]
    pub(crate) barge_in_ms: Option<Option<u64>>,
    #[serde(default)]
    pub(crate) interrupt_on_backchannel: Option<bool>,
    /// `null` returns to the platform default.
    #[serde(default, deserialize_with = "double_option_u64")]
    #[schema(value_type = Option<u64>)]
    pub(crate) suggestion_deadline_ms: Option<Option<u64>>,
    #[serde(default)]
    #[schema(max_length = 64)]
    pub(crate) timezone: Option<String>,
    /// Replaces the whole set; `{}` clears it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) variables: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) voicemail: Option<serde_json::Value>,
    /// Replaces the analysis plan; `{}` returns to the default.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) analysis: Option<serde_json::Value>,
    /// `true` issues a new webhook signing secret, returned once in the response.
    #[serde(default)]
    pub(crate) rotate_webhook_secret: Option<bool>,
}

fn double_option_u64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}
