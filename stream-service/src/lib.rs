//! callbot-stream: the stream service. It accepts Twilio media WebSockets at `/stream/{bot_id}`,
//! verifying the handshake signature and the signed stream token before anything else runs
//! (`handshake`), browser and client calls on `/call` and `/call/webrtc` (`callws`, `rtc`), and
//! observers on `/frontend-stream`, Twilio's answering-machine verdicts on `/twilio/amd`
//! (`amd`); every call runs in the call engine (`engine`): speech
//! (`speech`), the business's webhook and the language model (`llm`), playback and recording.

/// The phone line's audio (its own crate, shared with the provider stand-ins).
pub use callbot_audio as audio;
mod amd;
pub mod callws;
pub mod engine;
pub mod frontend;
#[cfg(test)]
mod fuzz;
pub mod gateway;
pub mod handshake;
pub mod llm;
pub mod models;
pub mod protocol;
pub mod rate;
pub mod relay;
pub mod rtc;
mod session;
pub mod speech;
mod supervise;
pub mod ws;

use axum::Router;
use axum::routing::get;
use callbot_core::settings::Settings;
use callbot_core::store::Store;
use callbot_core::wiring::TwilioAccount;
use std::sync::Arc;

/// What the stream service needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub twilio: Arc<TwilioAccount>,
    /// The call engine; `None` only where no call may be answered (route-listing tools).
    pub engine: Option<engine::Engine>,
}

/// The media-stream routes, used alike by the ECS entry point, `callbot serve` and tests.
pub fn router(state: StreamState) -> Router {
    Router::new()
        .route("/stream/{bot_id}", get(handshake::upgrade))
        .route("/frontend-stream", get(frontend::upgrade))
        .route(
            callbot_core::settings::AMD_PATH,
            axum::routing::post(amd::callback),
        )
        .merge(callws::routes())
        .merge(gateway::routes())
        .with_state(state)
}

/// Serves the stream routes (plus `/healthz`) on `listener` until `shutdown`, then drains: no new
/// streams are accepted, live calls may finish for up to `drain`, and whatever is still live then
/// is ended cleanly (hang-up through the carrier, last words and recording stored).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: StreamState,
    engine: engine::Engine,
    drain: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = tokio_util::sync::CancellationToken::new();
    let reporter = engine::load::report(engine.clone(), state.store.clone());
    let app = router(state).route(
        "/healthz",
        get({
            let (draining, engine) = (draining.clone(), engine.clone());
            move || async move {
                // 503 only while draining (take no new streams); the load is for autoscaling.
                let load = engine.load();
                let status = if draining.is_cancelled() {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                };
                let state = if draining.is_cancelled() {
                    "draining"
                } else {
                    "ok"
                };
                (
                    status,
                    axum::Json(serde_json::json!({"status": state, "load": load})),
                )
            }
        }),
    );
    let stop = draining.clone();
    let live = engine.live.clone();
    let server = axum::serve(ws::no_delay(listener), app).with_graceful_shutdown(async move {
        shutdown.await;
        stop.cancel();
        tracing::info!(
            live = live.len(),
            "shutting down: no new streams; draining live calls"
        );
    });
    let drainer = async {
        draining.cancelled().await;
        let deadline = tokio::time::Instant::now() + drain;
        while !engine.live.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if !engine.live.is_empty() {
            tracing::warn!(
                live = engine.live.len(),
                "drain timeout: ending the remaining calls"
            );
            engine.live.kill_all();
            let hard = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            while !engine.live.is_empty() && tokio::time::Instant::now() < hard {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let (served, ()) = tokio::join!(server.into_future(), drainer);
    reporter.abort();
    served
}
