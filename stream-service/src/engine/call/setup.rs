//! What a call starts from, decided before any I/O: the call's facts for its turns
//! (`CallInfo`), its first line, and its timers, from the call record, the bot and the settings.

use crate::StreamState;
use crate::audio::vad::VadConfig;
use crate::engine::tasks::CallTasks;
use crate::engine::turn::CallInfo;
use callbot_core::call_texts::CallTexts;
use callbot_core::domain::{BotMode, TurnDetection};
use callbot_core::store::{Bot, CallRecord};
use secrecy::ExposeSecret;
use std::time::Duration;

/// Said first when neither the call nor the bot has a `first_message`.
pub const DEFAULT_GREETING: &str = "Hello! How can I help you today?";

/// A call's starting point.
#[derive(Debug)]
pub(super) struct Plan {
    pub info: CallInfo,
    pub greeting: String,
    /// The message left on an answering machine (`None`: the bot hangs up on one).
    pub voicemail: Option<String>,
    pub max_call: Duration,
    pub silence_timeout: Duration,
    pub end_silence: Duration,
    pub turn_detection: TurnDetection,
    /// Caller speech over the bot that interrupts it, and whether acknowledgements do.
    pub barge_in: Duration,
    pub interrupt_on_backchannel: bool,
}

impl Plan {
    /// The endpointer's settings for this call.
    pub fn vad(&self) -> VadConfig {
        VadConfig {
            end_silence: self.end_silence,
            ..VadConfig::default()
        }
    }
}

/// The call's plan: an outbound call with a `prompt` is a conversation the model leads,
/// whatever the bot's mode; the bot's timers override the platform's. Placeholders are filled
/// as at this moment; one that has no value (an inbound call cannot bring the bot's outbound
/// variables) is left empty, never spoken as braces, and logged.
pub(super) fn plan(state: &StreamState, call: &CallRecord, bot: &Bot) -> Plan {
    let settings = &state.settings.calls;
    let (texts, blanks) = CallTexts::of(bot, call).fill_or_blank(callbot_core::time_fmt::now());
    if !blanks.is_empty() {
        tracing::warn!(call_sid = %call.sid, bot_id = %bot.id, missing = ?blanks,
            "placeholders without a value were left empty");
    }
    let mode = if texts.instructions.is_some() {
        BotMode::Llm
    } else {
        bot.brain.mode()
    };
    let system_prompt = crate::llm::prompt::system_prompt(&crate::llm::prompt::PromptParts {
        goal: &texts.goal,
        context: &texts.context,
        instructions: texts.instructions.as_deref(),
        variables: &texts.variables,
    });
    let info = CallInfo {
        bot_id: bot.id.clone(),
        call_sid: call.sid.to_string(),
        from: call.from.clone(),
        to: call.to.clone(),
        goal: texts.instructions.unwrap_or(texts.goal),
        context: texts.context,
        variables: texts.variables,
        webhook: bot.webhook.as_ref().map(|w| w.url().clone()),
        webhook_secret: bot.webhook_secret.expose_secret().as_bytes().to_vec(),
        policy: state.settings.webhook_policy,
        voice: bot.voice.clone(),
        webhook_timeout: settings.webhook_timeout,
        preemptive: settings.preemptive,
        suggestion_deadline: bot
            .timers
            .suggestion_deadline_ms()
            .map(|ms| Duration::from_millis(ms.into())),
        webhooks_per_second: settings.webhooks_per_bot_per_second,
        store: state.store.clone(),
        fallback_line: settings.fallback_line.clone(),
        not_heard_line: settings.not_heard_line.clone(),
        webhook_failure_limit: settings.webhook_failure_limit,
        mode,
        brain: bot.brain.clone(),
        system_prompt,
        tasks: CallTasks::new(),
    };
    let greeting = texts
        .greeting
        .unwrap_or_else(|| DEFAULT_GREETING.to_owned());
    let voicemail = texts.voicemail;
    let t = &bot.timers;
    Plan {
        info,
        greeting,
        voicemail,
        max_call: t
            .max_call_secs()
            .map_or(settings.max_call, |s| Duration::from_secs(s.into())),
        silence_timeout: t
            .silence_timeout_secs()
            .map_or(settings.silence_timeout, |s| Duration::from_secs(s.into())),
        end_silence: t
            .end_silence_ms()
            .map_or(settings.end_silence, |ms| Duration::from_millis(ms.into())),
        turn_detection: t.turn_detection(),
        barge_in: t
            .barge_in_ms()
            .map_or(settings.barge_in_min, |ms| Duration::from_millis(ms.into())),
        interrupt_on_backchannel: t.interrupt_on_backchannel(),
    }
}
