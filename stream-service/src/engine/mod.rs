//! The call engine: per call, one actor task owns the media stream (VAD, playback pacing, marks,
//! barge-in, timers) and runs each caller turn as a pipeline task (recognition → webhook →
//! synthesis) that reports back over a bounded channel. Shared parts live in [`Engine`].

pub mod call;
pub mod clock;
pub mod command;
mod converse;
mod decide;
pub mod events;
mod filler;
pub use filler::FILLER_LINES;
pub mod lease;
pub mod live;
pub mod load;
pub mod pipeline;
pub mod play;
pub mod recorder;
mod speak;
pub mod tasks;
mod tools;
pub use tools::offered_by;
pub mod turn;
pub mod webhook;

use crate::llm::Llm;
use crate::speech::{Recogniser, SpeechToText, TextToSpeech, Voices};
use callbot_core::domain::WebhookPolicy;
use callbot_core::outbound::{self, Lookup, SystemLookup};
use callbot_core::recordings::Recordings;
use callbot_core::telephony::Telephony;
use std::sync::Arc;
use std::time::Duration;

/// What every call shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    pub stt: Arc<dyn SpeechToText>,
    /// The synthesisers: local, and the configured cloud voices.
    pub voices: Voices,
    /// Which recogniser hears callers (`stt` is the local one, always the fallback).
    pub recogniser: Recogniser,
    /// Deadline for a cloud recogniser's final transcript after the end of an utterance.
    pub stt_timeout: Duration,
    /// For operator-configured endpoints (providers, the model gateway).
    pub http: reqwest::Client,
    /// For tenant-chosen URLs (webhooks, `play` files) under the strict rule: connects only to
    /// public addresses, checked at connect time (see [`callbot_core::outbound`]).
    outbound_strict: reqwest::Client,
    /// The same when the operator allows private targets (`CALLBOT_ALLOW_PRIVATE_WEBHOOKS`).
    outbound_open: reqwest::Client,
    pub recordings: Arc<dyn Recordings>,
    pub telephony: Arc<dyn Telephony>,
    pub live: live::LiveCalls,
    /// The language model (`None`: `CALLBOT_LLM=off`).
    pub llm: Option<Arc<dyn Llm>>,
    /// The model is the small embedded one (see `prompt::messages`).
    pub llm_small: bool,
    /// Where the `/llm/v1` gateway forwards to.
    pub llm_upstream: Option<crate::llm::Upstream>,
    /// Deadline for the model's first words (and for a whole suggestion).
    pub llm_timeout: Duration,
    /// The play-out clock every call of this engine paces its audio by.
    pub clock: clock::Clock,
    /// The end-of-turn model for bots with `turn_detection: model` (`None`: off or missing).
    pub turn_model: Option<crate::speech::turn_model::TurnModel>,
    /// Keeps the local model worker running while the engine lives.
    _worker: Option<Arc<crate::llm::worker::LocalWorker>>,
}

impl Engine {
    /// The local recogniser's label for records and metrics.
    pub fn local_stt_name(&self) -> &'static str {
        if self.stt.name().starts_with("whisper") {
            "whisper.cpp"
        } else {
            "instant"
        }
    }

    pub fn new(
        stt: Arc<dyn SpeechToText>,
        tts: Arc<dyn TextToSpeech>,
        recordings: Arc<dyn Recordings>,
        telephony: Arc<dyn Telephony>,
    ) -> Self {
        use callbot_core::http_client;
        let http = http_client::build(
            http_client::builder(http_client::PROVIDER_TOTAL)
                .pool_idle_timeout(Duration::from_secs(30)),
            "speech providers and the model gateway",
        );
        let lookup: Arc<dyn Lookup> = Arc::new(SystemLookup);
        Self {
            stt,
            outbound_strict: outbound::client(WebhookPolicy::default(), lookup.clone()),
            outbound_open: outbound::client(
                WebhookPolicy {
                    allow_private: true,
                },
                lookup,
            ),
            voices: Voices::local(tts),
            recogniser: Recogniser::Local,
            stt_timeout: Duration::from_secs(3),
            http,
            recordings,
            telephony,
            live: live::LiveCalls::default(),
            llm: None,
            llm_small: false,
            llm_upstream: None,
            llm_timeout: Duration::from_millis(2500),
            clock: clock::Clock::default(),
            turn_model: None,
            _worker: None,
        }
    }

    /// The client for a tenant-chosen URL under `policy`.
    pub fn outbound(&self, policy: WebhookPolicy) -> &reqwest::Client {
        if policy.allow_private {
            &self.outbound_open
        } else {
            &self.outbound_strict
        }
    }

    /// The same engine resolving tenant-chosen host names with `lookup` (tests: a DNS server
    /// whose answers they choose).
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Self {
        self.outbound_strict = outbound::client(WebhookPolicy::default(), lookup);
        self
    }

    /// The same engine with a language model (see [`crate::llm::from_settings`]).
    pub fn with_llm(mut self, setup: crate::llm::LlmSetup, timeout: Duration) -> Self {
        self.llm = setup.llm;
        self.llm_small = setup.small;
        self.llm_upstream = setup.upstream;
        self._worker = setup.worker;
        self.llm_timeout = timeout;
        self
    }

    /// The same engine with the end-of-turn model the settings name, loaded on a blocking
    /// thread. Missing or broken, it is logged and left out: bots that ask for it then end turns
    /// by the words' heuristic, and each of their calls says so in an `error` event.
    pub async fn with_turn_model(
        mut self,
        settings: &callbot_core::settings::TurnModelSettings,
    ) -> Self {
        use callbot_core::settings::TurnModelSettings;
        let TurnModelSettings::Onnx { model, runtime } = settings else {
            return self;
        };
        let (model, runtime) = (model.clone(), runtime.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            crate::speech::turn_model::TurnModel::load(&runtime, &model)
        })
        .await;
        match loaded {
            Ok(Ok(m)) => {
                tracing::info!("end-of-turn model loaded");
                self.turn_model = Some(m);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no end-of-turn model; bots with turn_detection model use the heuristic")
            }
            Err(e) => tracing::warn!(error = %e, "loading the end-of-turn model failed"),
        }
        self
    }

    /// The same engine with the cloud voices and recogniser the settings configure; the local
    /// engines stay the fallback.
    pub async fn with_providers(
        mut self,
        providers: &callbot_core::settings::ProviderSettings,
        aws: &callbot_core::settings::AwsSettings,
    ) -> Self {
        self.voices =
            Voices::from_settings(providers, aws, self.voices.local.clone(), self.http.clone())
                .await;
        self.recogniser = Recogniser::from_settings(providers, self.http.clone());
        self.stt_timeout = providers.stt_timeout;
        self
    }
}
