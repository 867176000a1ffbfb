//! callbot-stream: the stream service. It accepts Twilio media WebSockets at `/stream/{bot_id}`,
//! verifying the handshake signature and the signed stream token before anything else runs
//! (`handshake`), and parses the media protocol (`protocol`). The per-call conversation engine
//! (speech, webhook turns, playback) is the call-engine work still to come; until then a verified
//! stream is held open and its frames are counted (`session`).

pub mod audio;
pub mod engine;
pub mod frontend;
pub mod handshake;
pub mod models;
pub mod protocol;
mod session;
pub mod speech;

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
        .with_state(state)
}
