//! `/campaigns`: a bot calls a list of numbers, each with its own variables, within a calling
//! window, at most `max_concurrency` at once, retrying per outcome; the dialer (`dialer`) works
//! the rows; `results` lists them and their outcomes (JSON and CSV).

pub mod dialer;
pub mod queue;
pub mod request;
mod results;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Tenant;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use callbot_core::domain::{BotId, BotStatus, CampaignId, CampaignStatus, RowState, TenantId};
use callbot_core::store::{Campaign, CampaignCounts};
use callbot_core::time_fmt;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(results::campaign_rows))
        .routes(routes!(results::campaign_results))
        .layer(axum::extract::DefaultBodyLimit::max(
            request::MAX_BODY_BYTES,
        ))
}

/// How many rows are in each state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowCounts {
    pending: u32,
    dialling: u32,
    calling: u32,
    done: u32,
    cancelled: u32,
}

/// A campaign with its progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    #[schema(example = "cmp_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b")]
    id: String,
    name: String,
    bot_id: String,
    /// `running`, `paused`, `cancelled` or `completed`.
    status: String,
    #[schema(value_type = Object)]
    window: serde_json::Value,
    #[schema(value_type = Object)]
    retry: serde_json::Value,
    max_concurrency: u32,
    rows: u32,
    counts: RowCounts,
    /// Finished rows by outcome: `answered`, `machine`, `no_answer`, `busy`, `failed`,
    /// `interrupted`.
    outcomes: BTreeMap<String, u32>,
    created_at: String,
    updated_at: String,
}

impl CampaignView {
    fn new(c: &Campaign, counts: &CampaignCounts) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            bot_id: c.bot.to_string(),
            status: c.status.as_str().into(),
            window: c.window.to_json(),
            retry: c.retry.to_json(),
            max_concurrency: c.max_concurrency,
            rows: c.rows,
            counts: RowCounts {
                pending: counts.state(RowState::Pending),
                dialling: counts.state(RowState::Dialling),
                calling: counts.state(RowState::Calling),
                done: counts.state(RowState::Done),
                cancelled: counts.state(RowState::Cancelled),
            },
            outcomes: counts
                .by_outcome
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            created_at: time_fmt::rfc3339(c.created_at),
            updated_at: time_fmt::rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    campaigns: Vec<CampaignView>,
}

async fn view(state: &AppState, c: &Campaign) -> ApiResult<CampaignView> {
    let counts = state.store.campaign_counts(&c.id).await?;
    Ok(CampaignView::new(c, &counts))
}

/// The tenant's campaign `raw`, or 404.
pub(crate) async fn tenant_campaign(
    state: &AppState,
    tenant: &TenantId,
    raw: &str,
) -> ApiResult<Campaign> {
    let not_found = || ApiError::NotFound("Campaign not found".into());
    let id = CampaignId::parse(raw).map_err(|_| not_found())?;
    state
        .store
        .get_campaign(tenant, &id)
        .await?
        .ok_or_else(not_found)
}

/// Start a campaign.
///
/// The bot calls every row's `to`, with the row's `variables` filling the bot's `{{name}}`
/// placeholders (every placeholder must have a value in each row or in the bot's `variables`:
/// 400 `missing_variables` names the row). Calls are placed only inside `window` (in the bot's
/// time zone), at most `max_concurrency` at once, and the account's limits apply; a row that
/// cannot be called now waits. Each row ends `answered`, `machine`, `no_answer`, `busy` or
/// `failed` after the attempts its `retry` rule allows, or `interrupted` if the server stopped
/// while its call was being placed and the carrier has no word of it (never called again).
/// Send JSON, or a `multipart/form-data` upload with the list as a CSV file `rows` (a header
/// row with `to` and one column per variable).
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", security(("api_key" = [])),
    request_body(content(
        (request::CampaignRequest = "application/json", example = json!({"bot_id": "bot_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b",
            "name": "December reminders", "max_concurrency": 10,
            "window": {"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"},
            "retry": {"no_answer": {"attempts": 3, "delay_seconds": 3600}},
            "rows": [{"to": "+15551230001", "variables": {"name": "Ana", "time": "7 PM"}}]})),
        (request::CampaignUpload = "multipart/form-data"))),
    responses((status = 201, body = CampaignView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The bot is paused"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "The campaign queue could not be reached (nothing was dialled)")))]
pub async fn create_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    req: Request,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    let body = request::read(&state, req).await?;
    let now = time_fmt::now();
    let settings = request::settings(&body, now)?;
    let bot_id = body.bot_id.as_deref().ok_or_else(|| {
        ApiError::bad_field("bot_id", "missing_fields", "the bot that calls is required")
    })?;
    let bot_id = BotId::parse(bot_id).map_err(|e| ApiError::field("bot_id", e))?;
    let bot = state
        .store
        .get_bot(&tenant, &bot_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Bot not found".into()))?;
    if bot.status == BotStatus::Paused {
        return Err(ApiError::Conflict {
            code: "bot_paused",
            message: "Bot is paused; resume it to start a campaign".into(),
        });
    }
    let rows = request::rows(&body, &bot, now)?;
    let campaign = Campaign {
        id: CampaignId::generate(),
        tenant,
        bot: bot.id.clone(),
        name: settings.name,
        window: settings.window,
        retry: settings.retry,
        max_concurrency: settings.max_concurrency,
        status: CampaignStatus::Running,
        rows: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        created_at: now,
        updated_at: now,
    };
    state.store.create_campaign(&campaign, &rows).await?;
    if let Some(queue) = &state.campaign_queue
        && let Err(e) = queue::start(&state, &**queue, &campaign).await
    {
        // Nobody was called: the campaign is cancelled and the request fails as a whole.
        tracing::error!(campaign = %campaign.id, error = %e, "campaign queue unreachable: campaign cancelled");
        let from = [CampaignStatus::Running];
        let _ = state
            .store
            .set_campaign_status(
                &campaign.tenant,
                &campaign.id,
                &from,
                CampaignStatus::Cancelled,
            )
            .await;
        return Err(ApiError::Unavailable(
            "the campaign queue could not be reached; nothing was dialled, try again".into(),
        ));
    }
    tracing::info!(campaign = %campaign.id, bot_id = %bot.id, rows = rows.len(), "campaign created");
    Ok((StatusCode::CREATED, Json(view(&state, &campaign).await?)))
}

/// List your campaigns, newest first.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", security(("api_key" = [])),
    responses((status = 200, body = CampaignList), (status = 401, body = ErrorBody)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<CampaignList>> {
    let mut campaigns = Vec::new();
    for c in state.store.list_campaigns(&tenant).await? {
        campaigns.push(view(&state, &c).await?);
    }
    Ok(Json(CampaignList { campaigns }))
}

/// Show a campaign: its settings, rows per state and finished rows per outcome.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody)))]
pub async fn get_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let c = tenant_campaign(&state, &tenant, &id).await?;
    Ok(Json(view(&state, &c).await?))
}

async fn move_campaign(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    from: &[CampaignStatus],
    to: CampaignStatus,
) -> ApiResult<Json<CampaignView>> {
    let c = tenant_campaign(state, tenant, id).await?;
    let moved = state
        .store
        .set_campaign_status(tenant, &c.id, from, to)
        .await
        .map_err(|e| match e {
            callbot_core::store::StoreError::Conflict(message) => ApiError::Conflict {
                code: "invalid_transition",
                message,
            },
            other => other.into(),
        })?;
    tracing::info!(campaign = %c.id, status = to.as_str(), "campaign status changed");
    Ok(Json(view(state, &moved).await?))
}

/// Pause a running campaign: nothing new is dialled; calls in progress finish.
#[utoipa::path(post, path = "/campaigns/{id}/pause", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Not running")))]
pub async fn pause_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    move_campaign(
        &state,
        &tenant,
        &id,
        &[CampaignStatus::Running],
        CampaignStatus::Paused,
    )
    .await
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/campaigns/{id}/resume", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Not paused")))]
pub async fn resume_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    move_campaign(
        &state,
        &tenant,
        &id,
        &[CampaignStatus::Paused],
        CampaignStatus::Running,
    )
    .await
}

/// Cancel a campaign: rows still waiting are cancelled; calls in progress finish.
#[utoipa::path(post, path = "/campaigns/{id}/cancel", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Already cancelled or completed")))]
pub async fn cancel_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    move_campaign(
        &state,
        &tenant,
        &id,
        &[CampaignStatus::Running, CampaignStatus::Paused],
        CampaignStatus::Cancelled,
    )
    .await
}
