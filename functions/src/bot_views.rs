//! What the `/bots` routes answer: the created bot (with its signing secret, shown once), the
//! bot as shown, and a plain message.

use callbot_core::store::Bot;
use callbot_core::time_fmt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Answer to `POST /bots`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedBot {
    id: String,
    /// The bot's phone number (E.164).
    number: String,
    status: String,
    created_at: String,
    /// Secret for verifying `X-Callbot-Signature` on webhook requests. Shown only here.
    webhook_secret: String,
}

/// A bot as `GET /bots` and `GET /bots/{id}` show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BotView {
    id: String,
    number: String,
    goal: String,
    context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
    voice: String,
    /// `webhook` or `llm`.
    mode: String,
    llm_suggestion: bool,
    #[schema(value_type = Vec<Object>)]
    tools: Vec<serde_json::Value>,
    transfer_numbers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_message: Option<String>,
    /// Per-bot call timers (absent: the platform's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    silence_timeout_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_call_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_silence_ms: Option<u32>,
    /// `turn_detection` is not `silence` (the older flag).
    smart_endpointing: bool,
    /// `model`, `heuristic` or `silence`.
    turn_detection: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    barge_in_ms: Option<u32>,
    interrupt_on_backchannel: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggestion_deadline_ms: Option<u32>,
    /// IANA time zone of the date and time placeholders.
    timezone: String,
    /// Default values of the bot's placeholders.
    #[schema(value_type = Object)]
    variables: serde_json::Value,
    /// What an answering machine gets: `{"action": "hang_up"}` or `leave_message` with its text.
    #[schema(value_type = Object)]
    voicemail: serde_json::Value,
    /// What the model gives after each call (summary, structured data, success criteria).
    #[schema(value_type = Object)]
    analysis: serde_json::Value,
    status: String,
    /// Calls taken today (UTC).
    calls_today: u32,
    created_at: String,
    updated_at: String,
    /// Present only right after `rotate_webhook_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    message: String,
}

impl Message {
    pub(crate) fn new(message: &str) -> Self {
        Message {
            message: message.to_owned(),
        }
    }
}

impl BotView {
    pub(crate) fn new(bot: &Bot, calls_today: u32) -> Self {
        BotView {
            id: bot.id.to_string(),
            number: bot.number.to_string(),
            goal: bot.goal.as_str().to_owned(),
            context: bot.context.as_str().to_owned(),
            webhook: bot.webhook.as_ref().map(|w| w.to_string()),
            voice: bot.voice.to_string(),
            mode: bot.brain.mode().as_str().to_owned(),
            llm_suggestion: bot.brain.llm_suggestion(),
            tools: bot.brain.tools().iter().map(|t| t.to_json()).collect(),
            transfer_numbers: bot
                .brain
                .transfer_numbers()
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            fallback_number: bot.brain.fallback_number().map(str::to_owned),
            first_message: bot.first_message.as_ref().map(|f| f.as_str().to_owned()),
            silence_timeout_secs: bot.timers.silence_timeout_secs(),
            max_call_secs: bot.timers.max_call_secs(),
            end_silence_ms: bot.timers.end_silence_ms(),
            smart_endpointing: bot.timers.turn_detection().uses_words(),
            turn_detection: bot.timers.turn_detection().as_str(),
            barge_in_ms: bot.timers.barge_in_ms(),
            interrupt_on_backchannel: bot.timers.interrupt_on_backchannel(),
            suggestion_deadline_ms: bot.timers.suggestion_deadline_ms(),
            timezone: bot.options.timezone.as_str().to_owned(),
            variables: bot.options.variables.to_json(),
            voicemail: bot.options.voicemail.to_json(),
            analysis: bot.options.analysis.to_json(),
            status: bot.status.as_str().to_owned(),
            calls_today,
            created_at: time_fmt::rfc3339(bot.created_at),
            updated_at: time_fmt::rfc3339(bot.updated_at),
            webhook_secret: None,
        }
    }

    /// The view right after `rotate_webhook_secret`: the only time the new secret is shown.
    pub(crate) fn with_secret(mut self, bot: &Bot) -> Self {
        self.webhook_secret = Some(bot.webhook_secret.expose_secret().to_owned());
        self
    }
}

impl CreatedBot {
    pub(crate) fn new(bot: &Bot) -> Self {
        CreatedBot {
            id: bot.id.to_string(),
            number: bot.number.to_string(),
            status: bot.status.as_str().to_owned(),
            created_at: time_fmt::rfc3339(bot.created_at),
            webhook_secret: bot.webhook_secret.expose_secret().to_owned(),
        }
    }
}
