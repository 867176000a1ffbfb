//! What the Lambda entry points share: state built once per cold start from the environment the
//! template sets, JSON logs, and the hand-over of one function's router to `lambda_http`.

use crate::{AppState, Function, router_for};
use callbot_core::settings::Settings;
use callbot_core::wiring;
use std::sync::Arc;

pub type Error = lambda_http::Error;

/// Builds the state a function needs (store, Twilio, recordings) from settings.
pub async fn app_state(settings: Settings) -> Result<AppState, Error> {
    let wiring::Backends {
        store,
        twilio,
        telephony,
        recordings,
    } = wiring::backends(&settings).await?;
    Ok(AppState {
        settings: Arc::new(settings),
        store,
        telephony,
        twilio: Arc::new(twilio),
        recordings,
        live: None,
    })
}

/// The whole life of a function process: settings from the environment, JSON logs, clients built
/// once, then requests from the Lambda runtime until it stops the process.
pub async fn run(function: Function) -> Result<(), Error> {
    let settings = Settings::from_env()?;
    // `Targets` (target=level directives) rather than `EnvFilter`: no regex engine in the package.
    let filter: tracing_subscriber::filter::Targets = settings
        .log_filter
        .as_deref()
        .unwrap_or("info,aws=warn")
        .parse()
        .map_err(|e| format!("RUST_LOG: {e}"))?;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time(),
        )
        .with(filter)
        .init();
    let state = app_state(settings).await?;
    tracing::info!(function = function.name(), "cold start complete");
    lambda_http::run(router_for(function, state)).await
}
