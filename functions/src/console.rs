//! The web console at `/console`: static files (a page, its style and four script modules) embedded in the binary (no CDN, no build
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
const LIB_JS: &str = include_str!("../../web/console/lib.js");
const CAMPAIGNS_JS: &str = include_str!("../../web/console/campaigns.js");
const TESTS_JS: &str = include_str!("../../web/console/tests.js");
const APP_CSS: &str = include_str!("../../web/console/app.css");

/// Files change with each release: browsers revalidate rather than keep stale code.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            DOC_ROUTES[2],
            get(|State(state): State<AppState>| async move {
                let csp = csp(state.settings.stream_base_url.as_ref());
                (
                    [CACHE],
                    [(header::CONTENT_SECURITY_POLICY, csp)],
                    Html(INDEX),
                )
            }),
        )
        .route(DOC_ROUTES[3], get(|| async { script(APP_JS) }))
        .route(DOC_ROUTES[6], get(|| async { script(LIB_JS) }))
        .route(DOC_ROUTES[7], get(|| async { script(CAMPAIGNS_JS) }))
        .route(DOC_ROUTES[8], get(|| async { script(TESTS_JS) }))
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

/// One of the console's scripts (ES modules).
fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            CACHE,
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        ],
        body,
    )
}

/// The page loads only its own files, talks only to this API and the stream service's sockets
/// (the same origin under `callbot serve`, where `'self'` covers `ws:`/`wss:` to this host), and
/// is never framed.
fn csp(stream: Option<&url::Url>) -> String {
    let sockets = stream
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'self'; connect-src 'self'{sockets}; media-src 'self' blob:; img-src 'self' data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_names_only_this_origin_and_the_stream_service() {
        let local = super::csp(None);
        assert!(local.contains("connect-src 'self';"), "{local}");
        assert!(local.contains("frame-ancestors 'none'"), "{local}");
        assert!(
            !local.contains(" ws:") && !local.contains(" wss:"),
            "{local}"
        );
        let url = url::Url::parse("wss://stream.example.com/").unwrap();
        let cloud = super::csp(Some(&url));
        assert!(
            cloud.contains("connect-src 'self' wss://stream.example.com;"),
            "{cloud}"
        );
    }
}
