//! Runs the HTTP API on a bound listener until a shutdown future completes.

use callbot_core::settings::Settings;
use callbot_core::wiring;
use callbot_functions::AppState;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Builds the application state from settings: store, telephony, the development key.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    use anyhow::Context as _;
    let store = wiring::store(&settings)
        .await
        .context("opening the store")?;
    let telephony = wiring::telephony(&settings, store.clone()).context("setting up telephony")?;
    wiring::bootstrap_dev_key(&settings, &*store)
        .await
        .context("registering CALLBOT_API_KEY")?;
    Ok(AppState {
        settings: Arc::new(settings),
        store,
        telephony,
    })
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = callbot_functions::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
