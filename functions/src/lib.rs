//! callbot-functions: the HTTP routers (bots, calls, Twilio voice webhooks) that both the Lambda entry
//! points and `callbot serve` mount. `router(state)` is the whole customer-facing API.

pub mod beat;
mod bot_fields;
mod bot_options;
mod bot_requests;
mod bot_views;
pub mod bots;
pub mod browser;
pub mod call_detail;
pub mod calls;
pub mod campaigns;
pub mod console;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod keys;
pub mod lambda;
pub mod meta;
pub mod outbound_call;
pub mod postcall;
pub mod test_runs;
pub mod voice;
pub mod voices;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use callbot_core::settings::Settings;
use callbot_core::store::Store;
use callbot_core::telephony::Telephony;
use callbot_core::wiring::TwilioAccount;
use meta::ApiKeyScheme;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};

/// Everything a handler may use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub telephony: Arc<dyn Telephony>,
    /// The Twilio account (real, or the local simulator's): verifies webhooks, keys stream tokens.
    pub twilio: Arc<TwilioAccount>,
    /// Call recordings (served through signed, short-lived links).
    pub recordings: Arc<dyn callbot_core::recordings::Recordings>,
    /// Calls this process holds itself (`callbot serve`: browser and `/call` calls, which no
    /// carrier can end); `None` in the Lambda functions.
    pub live: Option<Arc<dyn LiveControl>>,
    /// Where new campaigns' rows are handed to be dialled (SQS on AWS); `None`: a polling dialer
    /// (`callbot serve`'s) finds them in the store.
    pub campaign_queue: Option<Arc<dyn callbot_core::campaign_queue::CampaignQueue>>,
    /// Makes the calls of `POST /bots/{id}/tests` (`callbot serve`: in this process, over its
    /// own call socket); `None` in the Lambda functions, which answer 501.
    pub test_runner: Option<Arc<dyn TestRunner>>,
}

/// Runs stored test runs in the background and writes their outcomes to the store.
pub trait TestRunner: Send + Sync + std::fmt::Debug {
    /// Whether a new run would be taken now (a few run at once, a few more wait). Never blocks.
    fn has_room(&self) -> bool;
    /// Takes a run already stored as `queued`: it runs when a place is free, the store is told
    /// when it starts and finishes. `false` (nothing started) when too many wait. Never blocks;
    /// the calls present `key`, which is held in memory only while the run lasts.
    fn start(
        &self,
        run: callbot_core::testcall::TestRun,
        suite: callbot_core::testcall::Suite,
        key: secrecy::SecretString,
    ) -> bool;
}

/// Ends calls that run in this process without a carrier (WebSocket and WebRTC legs).
/// This process's call engine's load (what `/healthz` reports).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct EngineLoadView {
    pub calls: usize,
    pub recognition_in_flight: usize,
    pub recognition_capacity: usize,
    pub saturated: bool,
}

pub trait LiveControl: Send + Sync + std::fmt::Debug {
    /// The engine's load now. Never blocks.
    fn load(&self) -> EngineLoadView;
    /// Asks the call to end; `false` when this process does not hold it. Never blocks.
    fn kill(&self, sid: &callbot_core::domain::CallSid) -> bool;
}

impl AppState {
    /// Twilio's answer URL for a bot's calls.
    pub fn voice_url(&self, bot: &callbot_core::domain::BotId) -> String {
        format!("{}/voice?bot_id={bot}", self.settings.public_base())
    }

    /// Where Twilio posts call-progress callbacks.
    pub fn status_callback_url(&self) -> String {
        format!("{}/voice/status", self.settings.public_base())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "callbot API", description = "Create AI phone bots with one REST call."),
    modifiers(&ApiKeyScheme),
    tags((name = "bots", description = "Create and manage phone bots"), (name = "keys", description = "Your API keys: list, create, revoke"), (name = "calls", description = "Outbound calls and call records"), (name = "campaigns", description = "Call a list of numbers: window, concurrency, retries, results"), (name = "twilio", description = "Webhooks Twilio calls (signed with X-Twilio-Signature)"), (name = "meta", description = "Health and API description"))
)]
struct ApiDoc;

/// The routes and their OpenAPI description, built together so they cannot drift apart.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    api_for(Function::All)
}

/// The deployable functions: each Lambda serves one group of routes (`callbot serve` all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `/bots…`, `/keys…`, `/healthz`, `/openapi.json`, `/docs`.
    Bots,
    /// `/voice`, `/voice/status` (Twilio's webhooks).
    Voice,
    /// `/outbound-call`, `/end-call`, `/call-status`, `/calls…`, `/call/lists`, `/call/kill/{id}`,
    /// `/call/tickets`, `/iceservers`.
    Calls,
    All,
}

impl Function {
    pub const DEPLOYED: [Function; 3] = [Function::Bots, Function::Voice, Function::Calls];

    pub fn name(self) -> &'static str {
        match self {
            Function::Bots => "bots",
            Function::Voice => "voice",
            Function::Calls => "calls",
            Function::All => "all",
        }
    }
}

/// The routes of one function and their OpenAPI description.
pub fn api_for(function: Function) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut r = OpenApiRouter::with_openapi(ApiDoc::openapi());
    if matches!(function, Function::Bots | Function::All) {
        r = r
            .merge(bots::routes())
            .merge(keys::routes())
            .merge(meta::routes())
            .merge(voices::routes())
            .merge(test_runs::routes());
    }
    if matches!(function, Function::Calls | Function::All) {
        r = r
            .merge(calls::routes())
            .merge(campaigns::routes())
            .merge(call_detail::routes())
            .merge(browser::routes());
    }
    if matches!(function, Function::Voice | Function::All) {
        r = r.merge(voice::routes());
    }
    let (router, mut doc) = r.split_for_parts();
    document_rejections(&mut doc);
    (router, doc)
}

/// Adds the answers the extractors give on every route they guard, so the description lists them
/// everywhere, not only where a handler's annotation remembered them: 401 (API key), 400 (query
/// string or body that does not parse), 413 and 415 (body too large, not JSON); and the
/// `Retry-After` header every 429 carries.
fn document_rejections(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let retry_after = utoipa::openapi::HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before trying again"))
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            // `POST /call/tickets` takes no body at all as `{}`.
            if path == "/call/tickets"
                && let Some(body) = op.request_body.as_mut()
            {
                body.required = Some(Required::False);
            }
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Query);
            let has_body = op.request_body.is_some();
            let responses = &mut op.responses.responses;
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("Missing or invalid X-API-Key"));
            }
            if has_query || has_body {
                responses
                    .entry("400".into())
                    .or_insert_with(|| error("A parameter or the body is invalid"));
            }
            if has_body {
                responses
                    .entry("413".into())
                    .or_insert_with(|| error("The body is larger than the limit"));
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("The body's Content-Type is not the one expected"));
            }
            if let Some(RefOr::T(r)) = responses.get_mut("429") {
                r.headers
                    .entry("Retry-After".into())
                    .or_insert_with(|| retry_after.clone());
            }
        }
    }
}

/// The complete HTTP API over `state`, with JSON errors for unknown routes, wrong methods, panics.
pub fn router(state: AppState) -> Router {
    router_for(Function::All, state)
}

/// One function's HTTP API (what its Lambda serves). The docs routes go with `Bots`, describing
/// the whole API.
pub fn router_for(function: Function, state: AppState) -> Router {
    let (routes, _) = api_for(function);
    let routes = if matches!(function, Function::Bots | Function::All) {
        routes.merge(meta::docs_routes(Arc::new(api_for(Function::All).1)))
    } else {
        routes
    };
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> Response {
    let body = error::ErrorBody {
        error: "method not allowed on this route".into(),
        code: "method_not_allowed".into(),
        field: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}
