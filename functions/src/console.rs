//! The web console at `/console`: three static files embedded in the binary (no CDN, no build
//! step, works offline) and `/console/config.json`, which tells the page where the call sockets
//! are (`STREAM_BASE_URL`; the same host under `callbot serve`). The console is a client of the
//! public API: REST with the key the user signs in with (kept in the tab's sessionStorage) and
//! call sockets opened with single-use tickets.

use crate::AppState;
use crate::meta::DOC_ROUTES;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

const INDEX: &str = include_str!("../../web/console/index.html");
const APP_JS: &str = include_str!("../../web/console/app.js");
const APP_CSS: &str = include_str!("../../web/console/app.css");

/// Files change with each release: browsers revalidate rather than keep stale code.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            DOC_ROUTES[2],
            get(|| async {
                (
                    [
                        CACHE,
                        // The page loads only its own files and talks only to this API and its sockets.
                        (
                            header::CONTENT_SECURITY_POLICY,
                            "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; img-src 'self' data:",
                        ),
                    ],
                    Html(INDEX),
                )
            }),
        )
        .route(
            DOC_ROUTES[3],
            get(|| async {
                (
                    [CACHE, (header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            DOC_ROUTES[4],
            get(|| async {
                (
                    [CACHE, (header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    APP_CSS,
                )
            }),
        )
        .route(DOC_ROUTES[5], get(config))
}

/// Where the page opens its call sockets.
async fn config(State(state): State<AppState>) -> impl IntoResponse {
    let base = match &state.settings.stream_base_url {
        Some(_) => state.settings.stream_base(),
        // Same host as the page (`callbot serve`): the page derives it from its own address.
        None => String::new(),
    };
    ([CACHE], Json(serde_json::json!({ "stream_base": base })))
}
