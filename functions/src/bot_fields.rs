//! A create or patch request's fields parsed into the bot's domain types: the whole new bot for
//! `POST /bots`, the changed parts of an existing one for `PATCH /bots/{id}`.

use crate::AppState;
use crate::bot_options::{self, OptionFields};
use crate::bot_requests::{CreateBotRequest, UpdateBotRequest};
use crate::error::{ApiError, ApiResult};
use callbot_core::domain::{
    BotId, BotMode, BotOptions, BotStatus, Brain, CallTimers, Context, FirstMessage, Goal,
    PhoneNumber, TenantId, TurnDetection, Voice, WebhookUrl,
};
use callbot_core::store::Bot;
use callbot_core::telephony::{NumberRequest, ProvisionedNumber};
use secrecy::SecretString;
use time::OffsetDateTime;

/// Everything a new bot is made of but its id, number and times.
pub(crate) struct NewBot {
    pub goal: Goal,
    pub context: Context,
    pub webhook: Option<WebhookUrl>,
    pub voice: Voice,
    pub brain: Brain,
    pub first_message: Option<FirstMessage>,
    pub timers: CallTimers,
    pub options: BotOptions,
    /// Where its number should be (area code, country).
    pub number: NumberRequest,
}

impl NewBot {
    /// Every field of a create request, checked in the order of the request's documentation.
    pub fn parse(state: &AppState, req: CreateBotRequest) -> ApiResult<NewBot> {
        let goal = Goal::parse(&req.goal).map_err(|e| ApiError::field("goal", e))?;
        let webhook = req
            .webhook
            .as_deref()
            .map(|w| WebhookUrl::parse(w, state.settings.webhook_policy))
            .transpose()
            .map_err(|e| ApiError::field("webhook", e))?;
        let brain = parse_brain(
            state,
            &Brain::default(),
            BrainFields {
                mode: req.mode.as_deref(),
                llm_suggestion: req.llm_suggestion,
                tools: req.tools.as_deref(),
                transfer_numbers: req.transfer_numbers.as_deref(),
                fallback_number: Some(req.fallback_number.as_deref()),
            },
            webhook.is_some(),
        )?;
        let context = Context::parse(req.context.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::field("context", e))?;
        let voice = match req.voice.as_deref() {
            Some(v) => crate::voices::parse_voice(state, v)?,
            None => Voice::default_voice(),
        };
        let first_message = req
            .first_message
            .as_deref()
            .map(FirstMessage::parse)
            .transpose()
            .map_err(|e| ApiError::field("first_message", e))?;
        let timers = parse_timers(
            TimerFields {
                silence_timeout_secs: req.silence_timeout_secs,
                max_call_secs: req.max_call_secs,
                end_silence_ms: req.end_silence_ms,
                turn_detection: req.turn_detection.as_deref(),
                smart_endpointing: req.smart_endpointing,
                barge_in_ms: req.barge_in_ms,
                interrupt_on_backchannel: req.interrupt_on_backchannel,
                suggestion_deadline_ms: req.suggestion_deadline_ms,
            },
            None,
        )?;
        let options = bot_options::apply(
            &BotOptions::default(),
            OptionFields {
                timezone: req.timezone.as_deref(),
                variables: req.variables.as_ref(),
                voicemail: req.voicemail.as_ref(),
                analysis: req.analysis.as_ref(),
            },
            state.settings.llm.is_on(),
        )?;
        let number = parse_number_request(req.area_code, req.country)?;
        Ok(NewBot {
            goal,
            context,
            webhook,
            voice,
            brain,
            first_message,
            timers,
            options,
            number,
        })
    }

    /// The bot, active, with a fresh webhook secret, on the number bought for it.
    pub fn into_bot(
        self,
        id: BotId,
        tenant: &TenantId,
        number: &ProvisionedNumber,
        now: OffsetDateTime,
    ) -> Bot {
        Bot {
            id,
            tenant: tenant.clone(),
            number: number.number.clone(),
            number_sid: number.sid.clone(),
            goal: self.goal,
            context: self.context,
            webhook: self.webhook,
            voice: self.voice,
            brain: self.brain,
            first_message: self.first_message,
            timers: self.timers,
            options: self.options,
            status: BotStatus::Active,
            webhook_secret: new_webhook_secret(),
            created_at: now,
            updated_at: now,
        }
    }
}

fn parse_number_request(
    area_code: Option<String>,
    country: Option<String>,
) -> ApiResult<NumberRequest> {
    if let Some(ac) = &area_code
        && (ac.len() != 3 || !ac.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::bad_field(
            "area_code",
            "invalid_area_code",
            "must be 3 digits",
        ));
    }
    if let Some(c) = &country
        && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ApiError::bad_field(
            "country",
            "invalid_country",
            "must be a 2-letter ISO country code",
        ));
    }
    Ok(NumberRequest {
        area_code,
        country: country.map(|c| c.to_ascii_uppercase()),
    })
}

/// What a patch request changes of `bot`, applied in place. `Ok(false)`: it sent nothing to
/// change (and `bot` is as it was). On an error `bot` may be partly changed: drop it.
pub(crate) fn apply_update(
    state: &AppState,
    bot: &mut Bot,
    req: &UpdateBotRequest,
) -> ApiResult<bool> {
    let mut changed = false;
    if let Some(g) = &req.goal {
        bot.goal = Goal::parse(g).map_err(|e| ApiError::field("goal", e))?;
        changed = true;
    }
    if let Some(w) = &req.webhook {
        bot.webhook = w
            .as_deref()
            .map(|w| WebhookUrl::parse(w, state.settings.webhook_policy))
            .transpose()
            .map_err(|e| ApiError::field("webhook", e))?;
        changed = true;
    }
    let brain_fields = req.mode.is_some()
        || req.llm_suggestion.is_some()
        || req.tools.is_some()
        || req.transfer_numbers.is_some()
        || req.fallback_number.is_some();
    if brain_fields || req.webhook.is_some() {
        bot.brain = parse_brain(
            state,
            &bot.brain,
            BrainFields {
                mode: req.mode.as_deref(),
                llm_suggestion: req.llm_suggestion,
                tools: req.tools.as_deref(),
                transfer_numbers: req.transfer_numbers.as_deref(),
                fallback_number: req.fallback_number.as_ref().map(|n| n.as_deref()),
            },
            bot.webhook.is_some(),
        )?;
        changed = true;
    }
    changed |= apply_words(state, bot, req)?;
    changed |= apply_timers(bot, req)?;
    let option_fields = OptionFields {
        timezone: req.timezone.as_deref(),
        variables: req.variables.as_ref(),
        voicemail: req.voicemail.as_ref(),
        analysis: req.analysis.as_ref(),
    };
    if option_fields.any() {
        bot.options = bot_options::apply(&bot.options, option_fields, state.settings.llm.is_on())?;
        changed = true;
    }
    if req.rotate_webhook_secret == Some(true) {
        bot.webhook_secret = new_webhook_secret();
        changed = true;
    }
    Ok(changed)
}

/// The patch's context, voice, first message and status.
fn apply_words(state: &AppState, bot: &mut Bot, req: &UpdateBotRequest) -> ApiResult<bool> {
    let mut changed = false;
    if let Some(c) = &req.context {
        bot.context = Context::parse(c).map_err(|e| ApiError::field("context", e))?;
        changed = true;
    }
    if let Some(v) = &req.voice {
        bot.voice = crate::voices::parse_voice(state, v)?;
        changed = true;
    }
    if let Some(f) = &req.first_message {
        bot.first_message = f
            .as_deref()
            .map(FirstMessage::parse)
            .transpose()
            .map_err(|e| ApiError::field("first_message", e))?;
        changed = true;
    }
    if let Some(s) = &req.status {
        bot.status = BotStatus::parse(s).map_err(|e| ApiError::field("status", e))?;
        changed = true;
    }
    Ok(changed)
}

/// The patch's timers: a field sent replaces the bot's (`null` resets it), the others stay.
fn apply_timers(bot: &mut Bot, req: &UpdateBotRequest) -> ApiResult<bool> {
    let t = &bot.timers;
    let keep = |sent: Option<Option<u64>>, now: Option<u32>| sent.unwrap_or(now.map(u64::from));
    let fields = TimerFields {
        silence_timeout_secs: keep(req.silence_timeout_secs, t.silence_timeout_secs()),
        max_call_secs: keep(req.max_call_secs, t.max_call_secs()),
        end_silence_ms: keep(req.end_silence_ms, t.end_silence_ms()),
        turn_detection: req.turn_detection.as_deref(),
        smart_endpointing: req.smart_endpointing,
        barge_in_ms: keep(req.barge_in_ms, t.barge_in_ms()),
        interrupt_on_backchannel: req
            .interrupt_on_backchannel
            .or(t.interrupt_on_backchannel_setting()),
        suggestion_deadline_ms: keep(req.suggestion_deadline_ms, t.suggestion_deadline_ms()),
    };
    let sent = req.silence_timeout_secs.is_some()
        || req.max_call_secs.is_some()
        || req.end_silence_ms.is_some()
        || req.smart_endpointing.is_some()
        || req.turn_detection.is_some()
        || req.barge_in_ms.is_some()
        || req.interrupt_on_backchannel.is_some()
        || req.suggestion_deadline_ms.is_some();
    if !sent {
        return Ok(false);
    }
    let detection = t.turn_detection_setting();
    bot.timers = parse_timers(fields, detection)?;
    Ok(true)
}

/// The timer fields of a request (or a patch's with the bot's values filled in).
struct TimerFields<'a> {
    silence_timeout_secs: Option<u64>,
    max_call_secs: Option<u64>,
    end_silence_ms: Option<u64>,
    turn_detection: Option<&'a str>,
    smart_endpointing: Option<bool>,
    barge_in_ms: Option<u64>,
    interrupt_on_backchannel: Option<bool>,
    suggestion_deadline_ms: Option<u64>,
}

/// The call timers from `fields`; `detection` is the turn detection kept when the request names
/// none.
fn parse_timers(
    fields: TimerFields<'_>,
    detection: Option<TurnDetection>,
) -> ApiResult<CallTimers> {
    let detection = TurnDetection::from_request(fields.turn_detection, fields.smart_endpointing)
        .map_err(|e| ApiError::field("turn_detection", e))?
        .or(detection);
    CallTimers::parse(fields.silence_timeout_secs, fields.max_call_secs)
        .and_then(|t| {
            t.with_endpointing(
                fields.end_silence_ms,
                detection,
                fields.barge_in_ms,
                fields.interrupt_on_backchannel,
            )
        })
        .and_then(|t| t.with_suggestion_deadline(fields.suggestion_deadline_ms))
        .map_err(|(f, e)| ApiError::field(f, e))
}

/// A fresh webhook signing secret: `whsec_` and 43 random alphanumerics (~256 bits).
fn new_webhook_secret() -> SecretString {
    SecretString::from(callbot_core::apikey::random_token("whsec_", 43))
}

/// The brain fields of a create or patch request (`None`: keep the base bot's).
struct BrainFields<'a> {
    mode: Option<&'a str>,
    llm_suggestion: Option<bool>,
    tools: Option<&'a [serde_json::Value]>,
    transfer_numbers: Option<&'a [String]>,
    /// `Some(None)` removes the fallback number.
    fallback_number: Option<Option<&'a str>>,
}

/// The bot's brain from the request's fields, checked against the deployment: an LLM bot needs a
/// language model, a webhook-mode bot needs a webhook.
fn parse_brain(
    state: &AppState,
    base: &Brain,
    fields: BrainFields<'_>,
    has_webhook: bool,
) -> ApiResult<Brain> {
    let BrainFields {
        mode,
        llm_suggestion,
        tools,
        transfer_numbers,
        fallback_number,
    } = fields;
    let mode = match mode {
        Some(m) => BotMode::parse(m).map_err(|e| ApiError::field("mode", e))?,
        None => base.mode(),
    };
    let tools = match tools {
        Some(t) => t.to_vec(),
        None => base.tools().iter().map(|t| t.to_json()).collect(),
    };
    let numbers = match transfer_numbers {
        Some(n) => n.to_vec(),
        None => base
            .transfer_numbers()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    };
    let brain = Brain::parse(
        mode,
        llm_suggestion.unwrap_or(base.llm_suggestion()),
        &tools,
        &numbers,
    )
    .map_err(|(f, e)| ApiError::field(f, e))?;
    let fallback = match fallback_number {
        Some(n) => n
            .map(PhoneNumber::parse)
            .transpose()
            .map_err(|e| ApiError::field("fallback_number", e))?,
        None => base
            .fallback_number()
            .and_then(|n| PhoneNumber::parse(n).ok()),
    };
    let brain = brain.with_fallback_number(fallback.as_ref());
    if brain.mode() == BotMode::Llm && !state.settings.llm.is_on() {
        // The request is fine; this deployment cannot honour it.
        return Err(ApiError::Conflict {
            code: "llm_unavailable",
            message: "mode: this deployment has no language model (CALLBOT_LLM=off)".into(),
        });
    }
    if brain.mode() == BotMode::Webhook && !has_webhook {
        return Err(ApiError::bad_field(
            "webhook",
            "missing_webhook",
            "a webhook is required unless \"mode\" is \"llm\"",
        ));
    }
    if brain.mode() == BotMode::Webhook && !brain.tools().is_empty() {
        return Err(ApiError::bad_field(
            "tools",
            "tools_need_llm_mode",
            "tools are called by the model in \"mode\": \"llm\"; in webhook mode your webhook decides",
        ));
    }
    Ok(brain)
}
