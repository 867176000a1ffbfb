//! callbot's local model worker: SmolLM2 (or any GGUF chat model) through llama.cpp, served as an
//! OpenAI-compatible chat completions API on loopback, so the call engine speaks one wire format
//! to the embedded model and to cloud providers alike. `callbot serve` starts and supervises it.

pub mod api;
pub mod engine;
pub mod tools;

pub use api::router;
pub use engine::{Engine, EngineConfig};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves the API on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}
