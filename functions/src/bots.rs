//! `/bots`: create, list, show, change and delete phone bots.

use crate::AppState;
use crate::bot_fields::{self, NewBot};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Tenant};
use crate::idempotency::{self, Idempotency};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_core::domain::{BotId, TenantId};
use callbot_core::store::{Bot, BotWithUsage, IdempotencyRecord, StoreError};
use callbot_core::telephony::{NumberWebhooks, ProvisionedNumber};
use callbot_core::time_fmt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const IDEMPOTENCY_SCOPE: &str = "POST /bots";

pub use crate::bot_requests::{BotModeName, BotStatusName, CreateBotRequest, UpdateBotRequest};
pub use crate::bot_views::{BotView, CreatedBot, Message};

/// A tenant at its bot limit: waiting does not help (a bot must be deleted), so 409, not 429.
fn bot_quota(limit: u32) -> ApiError {
    ApiError::Conflict {
        code: "quota_exceeded",
        message: format!(
            "this account has its {limit} bots (CALLBOT_MAX_BOTS_PER_TENANT): delete one first"
        ),
    }
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
    let new = NewBot::parse(&state, body.value)?;
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
    let provisioned = state
        .telephony
        .provision_number(
            &id,
            &new.number,
            &NumberWebhooks {
                voice_url: state.voice_url(&id),
                status_callback: state.status_callback_url(),
            },
        )
        .await?;
    let now = time_fmt::now();
    let bot = new.into_bot(id, &tenant, &provisioned, now);
    let created = CreatedBot::new(&bot);
    let body_json = serde_json::to_string(&created).map_err(ApiError::internal)?;
    let record = idem_key.map(|key| IdempotencyRecord {
        tenant: tenant.clone(),
        scope: IDEMPOTENCY_SCOPE.to_owned(),
        key,
        request_hash: request_hash.clone(),
        status: StatusCode::CREATED.as_u16(),
        body: body_json,
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
            not_created(&state, &tenant, err, record.as_ref(), &request_hash).await
        }
    }
}

/// The answer when the store refused a new bot (its number already given back).
async fn not_created(
    state: &AppState,
    tenant: &TenantId,
    err: StoreError,
    record: Option<&IdempotencyRecord>,
    request_hash: &str,
) -> ApiResult<Response> {
    match (err, record) {
        (StoreError::IdempotencyKeyUsed, Some(rec)) => {
            // A concurrent request with the same key won; answer as it did.
            match state
                .store
                .get_idempotency(tenant, IDEMPOTENCY_SCOPE, &rec.key)
                .await?
            {
                Some(existing) => idempotency::replay(&existing, request_hash),
                None => Err(StoreError::IdempotencyKeyUsed.into()),
            }
        }
        (StoreError::QuotaExceeded { limit }, _) => Err(bot_quota(limit)),
        (err, _) => Err(err.into()),
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

pub(crate) async fn load(state: &AppState, tenant: &TenantId, raw_id: &str) -> ApiResult<Bot> {
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
    if !bot_fields::apply_update(&state, &mut bot, &req)? {
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
    let view = BotView::new(&bot, calls);
    if req.rotate_webhook_secret == Some(true) {
        return Ok(Json(view.with_secret(&bot)));
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
    Ok(Json(Message::new("Bot deleted")))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_bot, list_bots))
        .routes(routes!(get_bot, update_bot, delete_bot))
}
