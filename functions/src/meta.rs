//! Health check, the OpenAPI document and the `/docs` page that renders it.

use crate::AppState;
use axum::Json;
use axum::response::Html;
use axum::routing::get;
use callbot_core::store::leases;
use serde::Serialize;
use std::sync::Arc;
use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
    store: &'static str,
    telephony: &'static str,
    /// The call engine in this process (`callbot serve`), absent where there is none (Lambda).
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<crate::EngineLoadView>,
    /// Call engines reporting to the store, and how many of them are saturated (new calls are
    /// refused at `/voice` when all are).
    engines: u32,
    engines_saturated: u32,
}

/// Liveness and the active backends. Does not need an API key.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, body = Health)))]
pub async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Json<Health> {
    let now = leases::now_ms();
    let count = |scope: &'static str| {
        let store = state.store.clone();
        async move { store.count_leases(scope, now).await.unwrap_or(0) }
    };
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        store: state.store.kind(),
        telephony: state.telephony.kind(),
        load: state.live.as_ref().map(|l| l.load()),
        engines: count(leases::ENGINES_SCOPE).await,
        engines_saturated: count(leases::SATURATED_SCOPE).await,
    })
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// The pages (GET), served by the `bots` function and not in the OpenAPI document: the API's
/// description and docs, and the web console's files (`crate::console`).
pub const DOC_ROUTES: [&str; 9] = [
    "/openapi.json",
    "/docs",
    "/console",
    "/console/app.js",
    "/console/app.css",
    "/console/config.json",
    "/console/lib.js",
    "/console/campaigns.js",
    "/console/tests.js",
];

/// `/openapi.json` and `/docs` (a self-contained page: no CDN, works offline).
pub(crate) fn docs_routes(doc: Arc<utoipa::openapi::OpenApi>) -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            DOC_ROUTES[0],
            get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route(
            DOC_ROUTES[1],
            get(|| async { Html(include_str!("docs.html")) }),
        )
        .merge(crate::console::routes())
}
