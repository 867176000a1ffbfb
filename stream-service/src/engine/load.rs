//! How loaded this call engine is — live calls and the recognition queue — reported in
//! `/healthz` and, every few seconds, to the store, where `/voice` (on any instance, Lambda
//! included) reads whether every engine is saturated and sheds new calls if so.

use super::Engine;
use callbot_core::store::Store;
use callbot_core::store::leases::{ENGINES_SCOPE, LOAD_TTL_MS, SATURATED_SCOPE, now_ms};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// A snapshot of the engine's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EngineLoad {
    pub calls: usize,
    /// Utterances queued or being recognised locally.
    pub recognition_in_flight: usize,
    /// How many the local recogniser takes before refusing (workers plus queue).
    pub recognition_capacity: usize,
    /// New calls would wait for recognition: three quarters of the capacity are in use.
    pub saturated: bool,
}

impl Engine {
    pub fn load(&self) -> EngineLoad {
        let (in_flight, capacity) = self.stt.load().unwrap_or((0, 0));
        EngineLoad {
            calls: self.live.len(),
            recognition_in_flight: in_flight,
            recognition_capacity: capacity,
            saturated: capacity > 0 && in_flight * 4 >= capacity * 3,
        }
    }
}

/// How often the load is written to the store.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Writes the engine's load to the store until dropped (then the reports lapse within
/// [`LOAD_TTL_MS`]): a lease in [`ENGINES_SCOPE`] always, one in [`SATURATED_SCOPE`] while saturated.
pub fn report(engine: Engine, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let instance = format!("engine-{}", callbot_core::apikey::random_token("", 16));
    tokio::spawn(async move {
        let mut was_saturated = false;
        loop {
            let load = engine.load();
            let now = now_ms();
            let until = now + LOAD_TTL_MS;
            let mut wrote = store
                .acquire_lease(ENGINES_SCOPE, &instance, u32::MAX, until, now)
                .await
                .map(|_| ());
            if wrote.is_ok() && (load.saturated || was_saturated) {
                wrote = if load.saturated {
                    store
                        .acquire_lease(SATURATED_SCOPE, &instance, u32::MAX, until, now)
                        .await
                        .map(|_| ())
                } else {
                    store.release_lease(SATURATED_SCOPE, &instance).await
                };
            }
            match wrote {
                Ok(()) => {
                    if load.saturated != was_saturated {
                        tracing::warn!(?load, "engine saturation changed");
                    }
                    was_saturated = load.saturated;
                }
                Err(e) => tracing::warn!(error = %e, "reporting the engine's load failed"),
            }
            tokio::time::sleep(REPORT_EVERY).await;
        }
    })
}
