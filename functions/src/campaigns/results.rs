//! A campaign's rows with their attempts (JSON, paged) and its results as CSV: one line per row
//! with its outcome, its last call's sid, who answered and how long it lasted, and its variables.

use super::tenant_campaign;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Tenant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use callbot_core::domain::CallSid;
use callbot_core::store::{CallRecord, CampaignRow};
use callbot_core::time_fmt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// The call (`CA…`); empty while it is being placed.
    call_sid: Option<String>,
    started_at: String,
    /// How it ended; empty while it runs.
    outcome: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowView {
    /// Its position in the uploaded list (0-based).
    index: u32,
    to: String,
    #[schema(value_type = Object)]
    variables: serde_json::Value,
    /// `pending`, `dialling`, `calling`, `done` or `cancelled`.
    state: String,
    /// The last finished attempt's outcome.
    outcome: Option<String>,
    attempts: Vec<AttemptView>,
    /// When a waiting row that was tried before is due again.
    next_attempt_at: Option<String>,
}

fn ms_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(time_fmt::rfc3339)
        .unwrap_or_default()
}

impl RowView {
    fn new(r: &CampaignRow) -> Self {
        let waiting_again =
            r.state == callbot_core::domain::RowState::Pending && !r.attempts.is_empty();
        Self {
            index: r.index,
            to: r.to.as_str().to_owned(),
            variables: r.variables.to_json(),
            state: r.state.as_str().into(),
            outcome: r.outcome().map(|o| o.as_str().to_owned()),
            attempts: r
                .attempts
                .iter()
                .map(|a| AttemptView {
                    call_sid: a.call_sid.clone(),
                    started_at: ms_time(a.at_ms),
                    outcome: a.outcome.clone(),
                })
                .collect(),
            next_attempt_at: waiting_again.then(|| ms_time(r.next_at_ms)),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowPage {
    rows: Vec<RowView>,
    /// Pass as `after` for the next page; absent on the last one.
    next_after: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RowQuery {
    /// Rows after this index.
    after: Option<u32>,
    /// Rows per page (1-500, default 100).
    limit: Option<u32>,
}

/// List a campaign's rows with their attempts and call sids, in list order.
#[utoipa::path(get, path = "/campaigns/{id}/rows", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)"), RowQuery),
    responses((status = 200, body = RowPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn campaign_rows(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowQuery>,
) -> ApiResult<Json<RowPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be 1 to 500",
        ));
    }
    let c = tenant_campaign(&state, &tenant, &id).await?;
    let rows = state.store.campaign_rows(&c.id, q.after, limit).await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.index))
        .flatten();
    Ok(Json(RowPage {
        rows: rows.iter().map(RowView::new).collect(),
        next_after,
    }))
}

/// The record of a row's last placed call, when there is one.
async fn last_call(state: &AppState, row: &CampaignRow) -> ApiResult<Option<CallRecord>> {
    let Some(sid) = row
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.call_sid.as_deref())
    else {
        return Ok(None);
    };
    let Ok(sid) = CallSid::parse(sid) else {
        return Ok(None);
    };
    Ok(state.store.call_by_sid(&sid).await?)
}

/// A call's analysis as the CSV's `summary`, `success`, `success_reason` and `structured_data`
/// (JSON) cells; empty when there is none.
fn analysis_cells(a: Option<&serde_json::Value>) -> [String; 4] {
    let Some(a) = a else {
        return Default::default();
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    [
        text(&a["summary"]),
        a["success"]["passed"]
            .as_bool()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        text(&a["success"]["reason"]),
        a.get("structured_data")
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ]
}

/// Download a campaign's results as CSV.
///
/// One line per row: `row`, `to`, `state`, `outcome`, `attempts`, `call_sid` (the last call),
/// `answered_by`, `duration_secs`, `last_attempt_at`, the last call's analysis (`summary`,
/// `success`, `success_reason`, `structured_data` as JSON), then one column per variable.
#[utoipa::path(get, path = "/campaigns/{id}/results.csv", tag = "campaigns", security(("api_key" = [])),
    params(("id" = String, Path, description = "Campaign id (cmp_…)")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn campaign_results(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = tenant_campaign(&state, &tenant, &id).await?;
    let mut rows = Vec::with_capacity(c.rows as usize);
    let mut after = None;
    loop {
        let page = state.store.campaign_rows(&c.id, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.index);
        rows.extend(page);
    }
    let names: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r.variables.iter().map(|(k, _)| k.to_owned()))
        .collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let fixed = [
        "row",
        "to",
        "state",
        "outcome",
        "attempts",
        "call_sid",
        "answered_by",
        "duration_secs",
        "last_attempt_at",
        "summary",
        "success",
        "success_reason",
        "structured_data",
    ];
    let header = fixed
        .iter()
        .map(|s| (*s).to_owned())
        .chain(names.iter().cloned());
    out.write_record(header.collect::<Vec<_>>())
        .map_err(ApiError::internal)?;
    for r in &rows {
        let call = last_call(&state, r).await?;
        let mut line = vec![
            r.index.to_string(),
            r.to.as_str().to_owned(),
            r.state.as_str().to_owned(),
            r.outcome()
                .map(|o| o.as_str().to_owned())
                .unwrap_or_default(),
            r.attempts.len().to_string(),
            call.as_ref().map(|c| c.sid.to_string()).unwrap_or_default(),
            call.as_ref()
                .and_then(|c| c.answered_by)
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            call.as_ref()
                .and_then(|c| c.duration_secs)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.attempts
                .last()
                .map(|a| ms_time(a.at_ms))
                .unwrap_or_default(),
        ];
        let analysis = match &call {
            Some(c) => state.store.call_analysis(&c.sid).await?,
            None => None,
        };
        line.extend(analysis_cells(analysis.as_ref()));
        line.extend(
            names
                .iter()
                .map(|n| r.variables.get(n).unwrap_or("").to_owned()),
        );
        out.write_record(&line).map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    let filename = format!("attachment; filename=\"{}-results.csv\"", c.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}
