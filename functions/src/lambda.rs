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
    })
}

/// The whole life of a function process: settings from the environment, JSON logs, clients built
/// once, then requests from the Lambda runtime until it stops the process.
pub async fn run(function: Function) -> Result<(), Error> {
    let settings = Settings::from_env()?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws=warn")),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let state = app_state(settings).await?;
    tracing::info!(function = function.name(), "cold start complete");
    lambda_http::run(router_for(function, state)).await
}
