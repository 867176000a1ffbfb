//! The stream service's own process (ECS): settings from the environment, JSON logs, the call
//! engine, `/stream/{bot_id}`, `/frontend-stream` and `/healthz` on `CALLBOT_ADDR`, and a drain on
//! SIGTERM so deployments never cut a live call.

use anyhow::Context as _;
use callbot_core::settings::Settings;
use callbot_core::wiring;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    callbot_core::allocator::run_tuned(run()).context("starting the async runtime")?
}

async fn run() -> anyhow::Result<()> {
    let mut settings = Settings::from_env().context("reading settings")?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(
                settings
                    .log_filter
                    .as_deref()
                    .unwrap_or("info,aws=warn,whisper_rs=warn"),
            )
            .context("RUST_LOG")?,
        )
        .init();
    settings.instance_url = Some(
        wiring::instance_url(&settings)
            .await
            .context("this instance's address for the others")?,
    );
    let wiring::Backends {
        store,
        twilio,
        telephony,
        recordings,
    } = wiring::backends(&settings)
        .await
        .context("setting up the store, Twilio and recordings")?;
    callbot_core::recordings::recover_at_startup(&*recordings).await;
    let (stt, tts) = callbot_stream::speech::from_settings(&settings.calls.speech)
        .await
        .context("speech engines")?;
    let llm = callbot_stream::llm::from_settings(&settings.llm)
        .await
        .context("language model (CALLBOT_LLM)")?;
    let engine = callbot_stream::engine::Engine::new(stt, tts, recordings, telephony)
        .with_llm(llm, settings.llm_timeout);
    let engine = engine
        .with_providers(&settings.providers, &settings.aws)
        .await
        .with_turn_model(&settings.calls.turn_model)
        .await;
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    let drain = settings.calls.drain;
    let state = callbot_stream::StreamState {
        settings: Arc::new(settings),
        store,
        twilio: Arc::new(twilio),
        engine: Some(engine.clone()),
    };
    tracing::info!(addr = %listener.local_addr()?, "stream service listening");
    callbot_stream::serve(listener, state, engine, drain, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    })
    .await
    .context("serving")
}
