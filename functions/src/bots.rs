//! `/bots`: create, list, show, change and delete phone bots.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Tenant};
use crate::idempotency::{self, Idempotency};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_core::domain::{
    BotId, BotMode, BotOptions, BotStatus, Brain, CallTimers, Context, FirstMessage, Goal,
    PhoneNumber, TurnDetection, Voice, WebhookUrl,
};
use callbot_core::store::{Bot, BotWithUsage, IdempotencyRecord, StoreError};
use callbot_core::telephony::{NumberRequest, NumberWebhooks, ProvisionedNumber};
use callbot_core::time_fmt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const IDEMPOTENCY_SCOPE: &str = "POST /bots";

pub use crate::bot_requests::{BotModeName, BotStatusName, CreateBotRequest, UpdateBotRequest};

/// A tenant at its bot limit: waiting does not help (a bot must be deleted), so 409, not 429.
fn bot_quota(limit: u32) -> ApiError {
    ApiError::Conflict {
        code: "quota_exceeded",
        message: format!(
            "this account has its {limit} bots (CALLBOT_MAX_BOTS_PER_TENANT): delete one first"
        ),
    }
}

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

impl BotView {
    fn new(bot: &Bot, calls_today: u32) -> Self {
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

fn parse_bot_id(raw: &str) -> ApiResult<BotId> {
    BotId::parse(raw).map_err(|_| ApiError::NotFound("bot not found".into()))
}

/// Create a bot and give it a phone number.
#[utoipa::path(post, path = "/bots", tag = "bots", security(("api_key" = [])),
    request_body(content = CreateBotRequest, example = json!({"goal": "Take table reservations for Bella Vista",
        "webhook": "https://example.com/callbot", "context": "Open 5PM-10PM", "voice": "local:en-us"})),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Replays return the first response")),
    responses(
        (status = 201, body = CreatedBot),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_bot(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: ApiJson<CreateBotRequest>,
) -> ApiResult<Response> {
    let req = body.value;
    let policy = state.settings.webhook_policy;
    let goal = Goal::parse(&req.goal).map_err(|e| ApiError::field("goal", e))?;
    let webhook = req
        .webhook
        .as_deref()
        .map(|w| WebhookUrl::parse(w, policy))
        .transpose()
        .map_err(|e| ApiError::field("webhook", e))?;
    let brain = parse_brain(
        &state,
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
        Some(v) => crate::voices::parse_voice(&state, v)?,
        None => Voice::default_voice(),
    };
    let first_message = req
        .first_message
        .as_deref()
        .map(FirstMessage::parse)
        .transpose()
        .map_err(|e| ApiError::field("first_message", e))?;
    let detection =
        TurnDetection::from_request(req.turn_detection.as_deref(), req.smart_endpointing)
            .map_err(|e| ApiError::field("turn_detection", e))?;
    let timers = CallTimers::parse(req.silence_timeout_secs, req.max_call_secs)
        .and_then(|t| {
            t.with_endpointing(
                req.end_silence_ms,
                detection,
                req.barge_in_ms,
                req.interrupt_on_backchannel,
            )
        })
        .and_then(|t| t.with_suggestion_deadline(req.suggestion_deadline_ms))
        .map_err(|(f, e)| ApiError::field(f, e))?;
    let options = crate::bot_options::apply(
        &BotOptions::default(),
        crate::bot_options::OptionFields {
            timezone: req.timezone.as_deref(),
            variables: req.variables.as_ref(),
            voicemail: req.voicemail.as_ref(),
            analysis: req.analysis.as_ref(),
        },
        state.settings.llm.is_on(),
    )?;
    if let Some(ac) = &req.area_code
        && (ac.len() != 3 || !ac.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::bad_field(
            "area_code",
            "invalid_area_code",
            "must be 3 digits",
        ));
    }
    if let Some(c) = &req.country
        && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ApiError::bad_field(
            "country",
            "invalid_country",
            "must be a 2-letter ISO country code",
        ));
    }

    let (idem_key, request_hash) =
        match idempotency::check(&state, &tenant, IDEMPOTENCY_SCOPE, &headers, &body.raw).await? {
            Idempotency::Replay(answer) => return Ok(answer),
            Idempotency::Fresh { key, request_hash } => (key, request_hash),
        };

    let limit = state.settings.limits.max_bots_per_tenant;
    // Cheap pre-check so a tenant at its limit does not make us buy a number; the store re-checks atomically.
    if state.store.count_bots(&tenant).await? >= limit {
        return Err(bot_quota(limit));
    }

    let id = BotId::generate();
    let number_request = NumberRequest {
        area_code: req.area_code,
        country: req.country.map(|c| c.to_ascii_uppercase()),
    };
    let provisioned = state
        .telephony
        .provision_number(
            &id,
            &number_request,
            &NumberWebhooks {
                voice_url: state.voice_url(&id),
                status_callback: state.status_callback_url(),
            },
        )
        .await?;
    let now = time_fmt::now();
    let bot = Bot {
        id,
        tenant: tenant.clone(),
        number: provisioned.number.clone(),
        number_sid: provisioned.sid.clone(),
        goal,
        context,
        webhook,
        voice,
        brain,
        first_message,
        timers,
        options,
        status: BotStatus::Active,
        webhook_secret: new_webhook_secret(),
        created_at: now,
        updated_at: now,
    };
    let created = CreatedBot {
        id: bot.id.to_string(),
        number: bot.number.to_string(),
        status: bot.status.as_str().to_owned(),
        created_at: time_fmt::rfc3339(now),
        webhook_secret: bot.webhook_secret.expose_secret().to_owned(),
    };
    let body_json = serde_json::to_string(&created).map_err(ApiError::internal)?;
    let record = idem_key.map(|key| IdempotencyRecord {
        tenant: tenant.clone(),
        scope: IDEMPOTENCY_SCOPE.to_owned(),
        key,
        request_hash: request_hash.clone(),
        status: StatusCode::CREATED.as_u16(),
        body: body_json.clone(),
        created_at: now,
    });

    match state.store.create_bot(&bot, limit, record.as_ref()).await {
        Ok(()) => {
            tracing::info!(bot_id = %bot.id, tenant = %tenant, number = %bot.number, "bot created");
            let mut resp = (StatusCode::CREATED, Json(created)).into_response();
            if let Ok(loc) = axum::http::HeaderValue::from_str(&format!("/bots/{}", bot.id)) {
                resp.headers_mut().insert(axum::http::header::LOCATION, loc);
            }
            Ok(resp)
        }
        Err(err) => {
            release_quietly(&state, &provisioned).await;
            match (err, &record) {
                (StoreError::IdempotencyKeyUsed, Some(rec)) => {
                    // A concurrent request with the same key won; answer as it did.
                    match state
                        .store
                        .get_idempotency(&tenant, IDEMPOTENCY_SCOPE, &rec.key)
                        .await?
                    {
                        Some(existing) => idempotency::replay(&existing, &request_hash),
                        None => Err(StoreError::IdempotencyKeyUsed.into()),
                    }
                }
                (StoreError::QuotaExceeded { limit }, _) => Err(bot_quota(limit)),
                (err, _) => Err(err.into()),
            }
        }
    }
}

/// Gives back a number we could not use. Failure is logged: the number is then orphaned at the
/// provider and must be released by hand, so the log line names it.
async fn release_quietly(state: &AppState, number: &ProvisionedNumber) {
    if let Err(e) = state.telephony.release_number(number).await {
        tracing::error!(number = %number.number, sid = %number.sid, error = %e, "could not release number; release it by hand");
    }
}

/// List the tenant's bots, newest first, with today's call counts.
#[utoipa::path(get, path = "/bots", tag = "bots", security(("api_key" = [])),
    responses((status = 200, body = [BotView]), (status = 401, body = ErrorBody)))]
pub async fn list_bots(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<Vec<BotView>>> {
    let day = time_fmt::day_key(time_fmt::now());
    let bots = state.store.list_bots(&tenant, &day).await?;
    Ok(Json(
        bots.iter()
            .map(|BotWithUsage { bot, calls_today }| BotView::new(bot, *calls_today))
            .collect(),
    ))
}

pub(crate) async fn load(
    state: &AppState,
    tenant: &callbot_core::domain::TenantId,
    raw_id: &str,
) -> ApiResult<Bot> {
    let id = parse_bot_id(raw_id)?;
    state
        .store
        .get_bot(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("bot not found".into()))
}

/// Show one bot.
#[utoipa::path(get, path = "/bots/{id}", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id")),
    responses((status = 200, body = BotView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_bot(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<BotView>> {
    let bot = load(&state, &tenant, &id).await?;
    let calls = state
        .store
        .calls_today(&bot.id, &time_fmt::day_key(time_fmt::now()))
        .await?;
    Ok(Json(BotView::new(&bot, calls)))
}

/// Change a bot's goal, webhook, context, voice, first message or status.
#[utoipa::path(patch, path = "/bots/{id}", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id")),
    request_body = UpdateBotRequest,
    responses((status = 200, body = BotView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "This deployment cannot take it (`llm_unavailable`)")))]
pub async fn update_bot(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    body: ApiJson<UpdateBotRequest>,
) -> ApiResult<Json<BotView>> {
    let req = body.value;
    let mut bot = load(&state, &tenant, &id).await?;
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
            &state,
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
    if let Some(c) = &req.context {
        bot.context = Context::parse(c).map_err(|e| ApiError::field("context", e))?;
        changed = true;
    }
    if let Some(v) = &req.voice {
        bot.voice = crate::voices::parse_voice(&state, v)?;
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
    if req.silence_timeout_secs.is_some()
        || req.max_call_secs.is_some()
        || req.end_silence_ms.is_some()
        || req.smart_endpointing.is_some()
        || req.turn_detection.is_some()
        || req.barge_in_ms.is_some()
        || req.interrupt_on_backchannel.is_some()
        || req.suggestion_deadline_ms.is_some()
    {
        let silence = req
            .silence_timeout_secs
            .unwrap_or(bot.timers.silence_timeout_secs().map(u64::from));
        let max = req
            .max_call_secs
            .unwrap_or(bot.timers.max_call_secs().map(u64::from));
        let end = req
            .end_silence_ms
            .unwrap_or(bot.timers.end_silence_ms().map(u64::from));
        let detection =
            TurnDetection::from_request(req.turn_detection.as_deref(), req.smart_endpointing)
                .map_err(|e| ApiError::field("turn_detection", e))?
                .or(bot.timers.turn_detection_setting());
        let barge_in = req
            .barge_in_ms
            .unwrap_or(bot.timers.barge_in_ms().map(u64::from));
        let backchannel = req
            .interrupt_on_backchannel
            .or(bot.timers.interrupt_on_backchannel_setting());
        let deadline = req
            .suggestion_deadline_ms
            .unwrap_or(bot.timers.suggestion_deadline_ms().map(u64::from));
        bot.timers = CallTimers::parse(silence, max)
            .and_then(|t| t.with_endpointing(end, detection, barge_in, backchannel))
            .and_then(|t| t.with_suggestion_deadline(deadline))
            .map_err(|(f, e)| ApiError::field(f, e))?;
        changed = true;
    }
    let option_fields = crate::bot_options::OptionFields {
        timezone: req.timezone.as_deref(),
        variables: req.variables.as_ref(),
        voicemail: req.voicemail.as_ref(),
        analysis: req.analysis.as_ref(),
    };
    if option_fields.any() {
        bot.options =
            crate::bot_options::apply(&bot.options, option_fields, state.settings.llm.is_on())?;
        changed = true;
    }
    let rotate = req.rotate_webhook_secret == Some(true);
    if rotate {
        bot.webhook_secret = new_webhook_secret();
        changed = true;
    }
    if !changed {
        return Err(ApiError::bad_request(
            "empty_update",
            "nothing to update: send at least one field",
        ));
    }
    bot.updated_at = time_fmt::now();
    state.store.update_bot(&bot).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("bot not found".into()),
        other => other.into(),
    })?;
    let calls = state
        .store
        .calls_today(&bot.id, &time_fmt::day_key(time_fmt::now()))
        .await?;
    let mut view = BotView::new(&bot, calls);
    if rotate {
        view.webhook_secret = Some(bot.webhook_secret.expose_secret().to_owned());
    }
    Ok(Json(view))
}

/// Delete a bot and release its number.
#[utoipa::path(delete, path = "/bots/{id}", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id")),
    responses((status = 200, body = Message), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_bot(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Message>> {
    let id = parse_bot_id(&id)?;
    let bot = state
        .store
        .delete_bot(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("bot not found".into()))?;
    release_quietly(
        &state,
        &ProvisionedNumber {
            number: bot.number.clone(),
            sid: bot.number_sid.clone(),
        },
    )
    .await;
    tracing::info!(bot_id = %bot.id, tenant = %tenant, "bot deleted");
    Ok(Json(Message {
        message: "Bot deleted".into(),
    }))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_bot, list_bots))
        .routes(routes!(get_bot, update_bot, delete_bot))
}
