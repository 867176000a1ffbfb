//! Runs the platform on a bound listener until a shutdown future completes: the HTTP API, the
//! media-stream service, the campaign dialer, the post-call worker (events, analysis) and, in local mode, the embedded Twilio simulator
//! that stands in for the phone network.

use callbot_core::settings::Settings;
use callbot_core::wiring;
use callbot_functions::AppState;
use callbot_functions::campaigns::dialer::{Dialer, SystemClock};
use callbot_functions::postcall::PostCall;
use callbot_twilio_sim::Sim;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The application state, plus the simulator when telephony is local.
#[derive(Debug, Clone)]
pub struct Platform {
    pub state: AppState,
    pub sim: Option<Sim>,
    /// The call engine behind `/stream/{bot_id}`.
    pub engine: callbot_stream::engine::Engine,
}

impl Platform {
    /// The same platform recognising speech with `stt` (tests: a slow or busy recogniser).
    pub fn with_stt(mut self, stt: Arc<dyn callbot_stream::speech::SpeechToText>) -> Self {
        self.engine.stt = stt;
        self.state.live = Some(Arc::new(EngineLive(self.engine.clone())));
        self
    }
}

/// Builds the platform from settings: store, Twilio account, telephony, recordings, the
/// development key, the simulator in local mode, and the call engine.
/// `settings.addr` must be the address the listener is bound to (local URLs derive from it).
pub async fn build(settings: Settings) -> anyhow::Result<Platform> {
    use anyhow::Context as _;
    let wiring::Backends {
        store,
        twilio,
        telephony,
        recordings,
    } = wiring::backends(&settings)
        .await
        .context("setting up the store, Twilio and recordings")?;
    callbot_core::recordings::recover_at_startup(&*recordings).await;
    let sim = twilio.simulated.then(|| {
        Sim::new(
            &twilio.account_sid,
            twilio.auth_token.expose_secret(),
            Some(settings.data_dir.join("twilio-sim-numbers.json")),
        )
    });
    if let (Some(sim), callbot_core::settings::TelephonySettings::Local { callees }) =
        (&sim, &settings.telephony)
    {
        for (number, kind) in callees {
            sim.set_callee_kind(number.as_str(), simulated(*kind));
        }
    }
    let (stt, tts) = callbot_stream::speech::from_settings(&settings.calls.speech)
        .await
        .context("setting up speech")?;
    let llm = callbot_stream::llm::from_settings(&settings.llm)
        .await
        .context("starting the language model (CALLBOT_LLM=off runs without one)")?;
    let engine = callbot_stream::engine::Engine::new(stt, tts, recordings, telephony.clone())
        .with_llm(llm, settings.llm_timeout);
    let engine = engine
        .with_providers(&settings.providers, &settings.aws)
        .await
        .with_turn_model(&settings.calls.turn_model)
        .await;
    let campaign_queue = callbot_core::wiring::campaign_queue(&settings).await;
    let test_runner =
        crate::testcall::runner::LocalRunner::new(store.clone(), own_url(settings.addr));
    Ok(Platform {
        state: AppState {
            settings: Arc::new(settings),
            store,
            telephony,
            twilio: Arc::new(twilio),
            recordings: engine.recordings.clone(),
            live: Some(Arc::new(EngineLive(engine.clone()))),
            campaign_queue,
            test_runner: Some(Arc::new(test_runner)),
        },
        sim,
        engine,
    })
}

/// This process's own API, as its test runs reach it: the bound address (loopback when bound
/// to every interface).
fn own_url(addr: std::net::SocketAddr) -> url::Url {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let own = std::net::SocketAddr::new(ip, addr.port());
    #[allow(clippy::expect_used)] // an address always makes a URL
    url::Url::parse(&format!("http://{own}/")).expect("a socket address is a URL")
}

/// The simulator's callee for a configured kind.
fn simulated(kind: callbot_core::settings::SimulatedCallee) -> callbot_twilio_sim::amd::Callee {
    use callbot_core::settings::SimulatedCallee as K;
    use callbot_twilio_sim::amd::Callee;
    use std::time::Duration;
    match kind {
        K::Person => Callee::Person,
        K::Machine => Callee::Machine {
            greeting: Duration::from_secs(4),
        },
        K::Busy => Callee::Busy,
        K::NoAnswer => Callee::NoAnswer {
            ring: Duration::from_secs(15),
        },
        K::Fax => Callee::Fax,
    }
}

/// The engine's live calls, for `/call/kill` on calls no carrier holds.
#[derive(Debug)]
struct EngineLive(callbot_stream::engine::Engine);

impl callbot_functions::LiveControl for EngineLive {
    fn load(&self) -> callbot_functions::EngineLoadView {
        let l = self.0.load();
        callbot_functions::EngineLoadView {
            calls: l.calls,
            recognition_in_flight: l.recognition_in_flight,
            recognition_capacity: l.recognition_capacity,
            saturated: l.saturated,
        }
    }

    fn kill(&self, sid: &callbot_core::domain::CallSid) -> bool {
        match self.0.live.by_sid(sid) {
            Some(call) => {
                call.kill.cancel();
                true
            }
            None => false,
        }
    }
}

/// The whole HTTP surface: the API, plus the simulator under `/_sim/twilio` in local mode.
pub fn app(platform: &Platform) -> axum::Router {
    let s = &platform.state;
    let streams = callbot_stream::router(callbot_stream::StreamState {
        settings: s.settings.clone(),
        store: s.store.clone(),
        twilio: s.twilio.clone(),
        engine: Some(platform.engine.clone()),
    });
    let api = streams.merge(callbot_functions::router(s.clone()));
    match &platform.sim {
        Some(sim) => axum::Router::new()
            .nest(
                wiring::SIM_TWILIO_PATH,
                callbot_twilio_sim::rest::router(sim.clone()),
            )
            .merge(api),
        None => api,
    }
}

/// Serves `platform` on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// The engine's load is reported to the store meanwhile (what `/voice` sheds on).
pub async fn run(
    listener: TcpListener,
    platform: Platform,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reporter =
        callbot_stream::engine::load::report(platform.engine.clone(), platform.state.store.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let dialer = platform.state.settings.campaign_dialer.then(|| {
        let dialer = Dialer::new(platform.state.clone(), Arc::new(SystemClock));
        let mut stop = stop_rx.clone();
        tokio::spawn(dialer.run(WORK_EVERY, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
    let mut stop = stop_rx.clone();
    let post_call = PostCall {
        state: platform.state.clone(),
        llm: platform.engine.llm.clone(),
        http: platform
            .engine
            .outbound(platform.state.settings.webhook_policy)
            .clone(),
    };
    let mut post_call = tokio::spawn(post_call.run(WORK_EVERY, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    let served = axum::serve(callbot_stream::ws::no_delay(listener), app(&platform))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
    reporter.abort();
    if let Some(dialer) = dialer {
        // A pass under way finishes (its claims would otherwise end `interrupted`).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), dialer).await;
    }
    // An analysis under way may take long: what is not finished is redone after a restart.
    if tokio::time::timeout(std::time::Duration::from_secs(5), &mut post_call)
        .await
        .is_err()
    {
        post_call.abort();
    }
    served
}

/// How often the campaign dialer and the post-call worker look for work.
const WORK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
