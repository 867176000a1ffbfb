//! `/bots/{id}/tests`: test calls run by the platform for a bot (the same scenarios as
//! `callbot test`), stored with their outcomes. The API checks and stores a run, and hands it
//! to this deployment's runner (`AppState::test_runner`), which makes the calls and writes the
//! outcomes back.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Tenant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use callbot_core::domain::TenantId;
use callbot_core::testcall::{Mode, Outcome, RunStatus, Suite, TestRun, TestRunId, scenario};
use callbot_core::time_fmt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A run's scenarios, as in a `callbot test` file (without `bot`: the bot is the path's).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRunRequest {
    /// `text` (default) or `phone`, for every scenario that does not say.
    #[schema(value_type = Option<Mode>, example = "text")]
    mode: Option<Mode>,
    /// 1-20 scenarios, each one call.
    #[schema(value_type = Vec<TestScenario>, min_items = 1, max_items = 20)]
    scenarios: Vec<serde_json::Value>,
}

/// One scenario: who calls (lines said in order, or a persona the platform's model plays) and
/// what the bot must do.
#[derive(Debug)]
pub struct TestScenario;

impl utoipa::PartialSchema for TestScenario {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let text = |field: &str| {
            serde_json::json!({"type": "string", "pattern": scenario::TEXT_PATTERN,
            "maxLength": scenario::longest(field)})
        };
        let phrases = serde_json::json!({"type": "array", "items": text("says"), "maxItems": scenario::MAX_PHRASES});
        let schema = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "caller"],
            "properties": {
                "name": text("name"),
                "mode": {"type": ["string", "null"], "enum": ["text", "phone", null]},
                "caller": {"oneOf": [
                    {"type": "array", "description": "Lines said in order, each after the bot answered the one before",
                     "items": text("caller"), "minItems": 1, "maxItems": 30},
                    {"type": "object", "additionalProperties": false, "required": ["persona", "goal"],
                     "description": "A caller the platform's language model plays",
                     "properties": {
                        "persona": text("persona"), "goal": text("goal"),
                        "max_turns": {"type": "integer", "minimum": 1, "maximum": 30, "default": 6},
                        "model": {"type": ["string", "null"], "description": "Default: the first model /llm/v1/models lists"}}}
                ]},
                "expect": {"type": "object", "additionalProperties": false, "properties": {
                    "says": phrases, "never_says": phrases,
                    "tools": {"type": "array", "maxItems": scenario::MAX_TOOLS, "items": {"type": "object", "additionalProperties": false,
                        "required": ["name"], "properties": {"name": text("tools.name"), "args": {"type": "object"}}}},
                    "ends": {"type": ["string", "null"], "enum": ["hangup", "transfer", "open", null]},
                    "max_latency_ms": {"type": ["integer", "null"], "minimum": 0, "maximum": scenario::MAX_LATENCY_MS}
                }}
            }
        });
        #[allow(clippy::expect_used)] // a literal above, checked by the API description's tests
        serde_json::from_value(schema).expect("the scenario schema is an OpenAPI schema")
    }
}

impl utoipa::ToSchema for TestScenario {}

/// A test run and, once finished, each scenario's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestRunView {
    #[schema(example = "tr_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b")]
    id: String,
    bot_id: String,
    /// `queued`, `running`, `passed` (every scenario passed), `failed`, or `interrupted` (the
    /// process running it stopped first).
    status: RunStatus,
    #[schema(value_type = Option<String>)]
    mode: Option<Mode>,
    /// Scenarios asked for, and how many passed once finished.
    scenarios: usize,
    passed: usize,
    created_at: String,
    finished_at: Option<String>,
    outcomes: Vec<Outcome>,
}

impl TestRunView {
    fn new(run: TestRun) -> Self {
        let run = run.seen_at(time_fmt::now());
        let scenarios = run.scenarios["scenarios"].as_array().map_or(0, Vec::len);
        Self {
            id: run.id.to_string(),
            bot_id: run.bot.to_string(),
            status: run.status,
            mode: run.mode,
            scenarios,
            passed: run.outcomes.iter().filter(|o| o.passed).count(),
            created_at: time_fmt::rfc3339(run.created_at),
            finished_at: run.finished_at.map(time_fmt::rfc3339),
            outcomes: run.outcomes,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestRunList {
    runs: Vec<TestRunView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRunsQuery {
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// How long a queued run may wait for a runner before it counts as lost.
const QUEUED_FOR: time::Duration = time::Duration::hours(1);

/// Run test calls against a bot.
///
/// The platform calls the bot once per scenario over its own call socket, as the caller
/// described (scripted lines, or a persona its language model plays), and judges what the bot
/// said and did. The answer comes at once (`queued`); read the run until it is `passed` or
/// `failed`. Runs go one scenario at a time, a few runs at once per server: 429
/// `test_runs_busy` when too many are waiting. The calls act as the API key that asked (count
/// as its calls, end if it is revoked). Deployments without a long-running API process
/// (the Lambda functions) answer 501 `test_runs_unavailable`: run `callbot test` there.
#[utoipa::path(post, path = "/bots/{id}/tests", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id")),
    request_body(content = TestRunRequest, example = json!({"mode": "text", "scenarios": [
        {"name": "books a table", "caller": ["A table for four at seven, please.", "Ann Miller. Thanks, bye."],
         "expect": {"says": ["four"], "never_says": ["sorry for your loss"], "max_latency_ms": 4000}}]})),
    responses((status = 202, body = TestRunView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 501, body = ErrorBody, description = "This deployment runs no test calls")))]
pub async fn start_test_run(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<TestRunView>)> {
    let bot = crate::bots::load(&state, &tenant, &id).await?;
    let Some(runner) = state.test_runner.clone() else {
        return Err(ApiError::NotImplemented {
            code: "test_runs_unavailable",
            message: "this deployment runs no test calls; run `callbot test` against it".into(),
        });
    };
    let (scenarios, suite) = parse(body.value)?;
    if !runner.has_room() {
        return Err(busy());
    }
    let now = time_fmt::now();
    let run = TestRun {
        id: TestRunId::generate(),
        tenant: tenant.clone(),
        bot: bot.id,
        status: RunStatus::Queued,
        mode: suite.mode,
        scenarios,
        outcomes: Vec::new(),
        created_at: now,
        finished_at: None,
        deadline: now + QUEUED_FOR,
    };
    // The runner's calls present the key that asked; it is kept in memory for the run only.
    let key = crate::extract::presented_key(&headers)
        .map(|k| SecretString::from(k.to_owned()))
        .ok_or(ApiError::Unauthorized)?;
    state.store.put_test_run(&run).await?;
    if !runner.start(run.clone(), suite, key) {
        // Filled up since `has_room`: the stored run is closed, not left queued.
        let mut refused = run;
        refused.status = RunStatus::Interrupted;
        refused.finished_at = Some(time_fmt::now());
        state.store.put_test_run(&refused).await?;
        return Err(busy());
    }
    Ok((StatusCode::ACCEPTED, Json(TestRunView::new(run))))
}

fn busy() -> ApiError {
    ApiError::TooManyRequests {
        code: "test_runs_busy",
        message: "too many test runs are waiting; try again when one has finished".into(),
        retry_after_secs: Some(30),
    }
}

/// The request as stored, and as the runner reads it.
fn parse(v: serde_json::Value) -> ApiResult<(serde_json::Value, Suite)> {
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request("invalid_scenarios", e.to_string());
    if v.get("bot").is_some()
        || v["scenarios"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s.get("bot").is_some()))
    {
        return Err(bad(&"`bot`: the bot is the one in the path"));
    }
    let req: TestRunRequest = serde_json::from_value(v.clone()).map_err(|e| bad(&e))?;
    let stored = serde_json::json!({"mode": req.mode, "scenarios": req.scenarios});
    let suite = Suite::from_json(stored.clone()).map_err(|e| bad(&e))?;
    Ok((stored, suite))
}

/// A bot's test runs, newest first.
#[utoipa::path(get, path = "/bots/{id}/tests", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id"), ListRunsQuery),
    responses((status = 200, body = TestRunList), (status = 404, body = ErrorBody)))]
pub async fn list_test_runs(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListRunsQuery>,
) -> ApiResult<Json<TestRunList>> {
    let bot = crate::bots::load(&state, &tenant, &id).await?;
    let limit = crate::extract::page_limit(q.limit, 20, 100)?;
    let runs = state.store.list_test_runs(&tenant, &bot.id, limit).await?;
    Ok(Json(TestRunList {
        runs: runs.into_iter().map(TestRunView::new).collect(),
    }))
}

/// One test run, with each scenario's checks and transcript once finished.
#[utoipa::path(get, path = "/bots/{id}/tests/{run_id}", tag = "bots", security(("api_key" = [])),
    params(("id" = String, Path, description = "Bot id"), ("run_id" = String, Path, description = "Test run id")),
    responses((status = 200, body = TestRunView), (status = 404, body = ErrorBody)))]
pub async fn get_test_run(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<TestRunView>> {
    let run = find(&state, &tenant, &id, &run_id).await?;
    Ok(Json(TestRunView::new(run)))
}

async fn find(state: &AppState, tenant: &TenantId, bot: &str, run: &str) -> ApiResult<TestRun> {
    let not_found = || ApiError::NotFound("test run not found".into());
    let bot = crate::bots::load(state, tenant, bot).await?;
    let id = TestRunId::parse(run).map_err(|_| not_found())?;
    state
        .store
        .get_test_run(tenant, &bot.id, &id)
        .await?
        .ok_or_else(not_found)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_test_run, list_test_runs))
        .routes(routes!(get_test_run))
}
