//! Typed settings for every callbot binary. This is the only place that reads environment variables
//! (`Settings::from_env`); everything else receives the parsed values.

mod addresses;
pub use addresses::AMD_PATH;
mod providers;
mod read;
mod rtc;
pub use providers::{
    DeepgramSettings, ElevenLabsSettings, OpenAiAudioSettings, PollySettings, ProviderSettings,
    SttChoice,
};
pub use rtc::{IceServer, RtcSettings};

use crate::domain::WebhookPolicy;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreSettings {
    /// One SQLite file (WAL) — the embedded default.
    Sqlite { path: PathBuf },
    /// A DynamoDB table; `create_table` makes it on startup (dev and test only).
    Dynamodb { table: String, create_table: bool },
}

/// Where recordings and transcripts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RecordingsSettings {
    Local {
        dir: PathBuf,
    },
    /// `create_bucket`: create it at startup if missing (development and tests).
    S3 {
        bucket: String,
        create_bucket: bool,
    },
}

/// Which telephony provider provisions numbers and controls calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TelephonySettings {
    /// The embedded Twilio simulator (`/_sim/twilio`) with fake +1555 numbers; calls are simulated
    /// (`callbot call`). Its auth token is generated into the data dir. Outbound calls reach
    /// people who stay silent, except at the numbers `callees` names
    /// (`CALLBOT_SIM_CALLEES=+15551230004=machine,+15551230007=busy`).
    Local {
        /// Read from `CALLBOT_SIM_CALLEES` only.
        #[serde(skip)]
        callees: Vec<(crate::domain::PhoneNumber, SimulatedCallee)>,
    },
    Twilio {
        account_sid: String,
        credentials: TwilioCredentials,
        /// `https://api.twilio.com` unless overridden (`TWILIO_API_BASE`).
        api_base: String,
    },
}

/// What the embedded simulator's callee at a number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedCallee {
    /// Answers and stays silent (the default).
    Person,
    /// An answering machine: a 4-second greeting and a beep.
    Machine,
    /// Busy.
    Busy,
    /// Rings for 15 seconds, unanswered.
    NoAnswer,
    Fax,
}

impl SimulatedCallee {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_ascii_lowercase().as_str() {
            "person" => Self::Person,
            "machine" => Self::Machine,
            "busy" => Self::Busy,
            "no-answer" | "no_answer" => Self::NoAnswer,
            "fax" => Self::Fax,
            _ => return None,
        })
    }
}

/// Where the Twilio secrets come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TwilioCredentials {
    /// From the environment: `TWILIO_AUTH_TOKEN` (Twilio signs webhooks and media-stream
    /// handshakes with it) and optionally `TWILIO_API_KEY_SID`/`TWILIO_API_KEY_SECRET` (an `SK…`
    /// key used for REST calls instead of the Auth Token). For `callbot serve` and the ECS task,
    /// whose secrets ECS injects at start.
    Inline {
        auth_token: SecretString,
        api_key: Option<(String, SecretString)>,
    },
    /// `TWILIO_SECRET_ID`: a Secrets Manager secret (JSON `auth_token`, optional `api_key_sid` and
    /// `api_key_secret`) read once at startup — a Lambda function's cold start — so the token is
    /// never in the function's configuration, where anyone allowed to read it would see it.
    SecretsManager { secret_id: String },
}

/// Region, endpoint and (optional) static credentials for AWS clients.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AwsSettings {
    pub region: String,
    /// Overrides the service endpoint (local DynamoDB/S3 stand-ins).
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}

impl AwsSettings {
    /// The SDK configuration these settings describe. Without static keys the SDK's default
    /// credential chain (Lambda/ECS role) is used.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        use secrecy::ExposeSecret;
        // HTTPS (and plain http for local stand-ins) over rustls with ring: the one TLS stack
        // the rest of the process (reqwest) already uses.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        // Connect and per-operation deadlines: a store or bucket that stops answering fails the
        // request (and the retry policy decides) instead of holding a call or a Lambda forever.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(crate::http_client::CONNECT_TIMEOUT)
            .operation_attempt_timeout(std::time::Duration::from_secs(20))
            .operation_timeout(std::time::Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts)
            .region(aws_config::Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            let creds = aws_sdk_dynamodb::config::Credentials::new(
                id.clone(),
                secret.expose_secret().to_owned(),
                None,
                None,
                "callbot-settings",
            );
            loader = loader.credentials_provider(creds);
        }
        loader.load().await
    }
}

/// Operator limits.
#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    pub max_bots_per_tenant: u32,
    pub max_body_bytes: usize,
    pub calls_per_bot_per_day: u32,
    /// Outbound call initiations allowed per end user (`user_id`) per minute.
    pub outbound_calls_per_user_per_minute: u32,
    /// Calls in progress at once per tenant (inbound, outbound and browser calls), held in the
    /// store so it holds across instances.
    pub max_calls_per_tenant: u32,
    /// `/frontend-stream` observer sockets open at once per end user (`user_id`; per tenant
    /// without one).
    pub max_observers_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bots_per_tenant: 10,
            max_body_bytes: 64 * 1024,
            calls_per_bot_per_day: 100,
            outbound_calls_per_user_per_minute: 5,
            max_calls_per_tenant: 20,
            max_observers_per_user: 3,
        }
    }
}

/// How the local recogniser decodes (`CALLBOT_WHISPER_BEAM`, `CALLBOT_WHISPER_PROMPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperDecoding {
    /// Beam width, 1-8; 1 decodes greedily (the default: on the quality benchmark beam search
    /// was slower and no more accurate with whisper.cpp).
    pub beam: u8,
    /// Whether the conversation (the bot's goal, context and last question) becomes the
    /// recogniser's prompt.
    pub prompt: bool,
}

impl Default for WhisperDecoding {
    fn default() -> Self {
        Self {
            beam: 1,
            prompt: true,
        }
    }
}

/// Which speech engines the call engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechSettings {
    /// whisper.cpp with a converted model file, and espeak-ng.
    Local {
        model: PathBuf,
        espeak: String,
        whisper_workers: usize,
        decoding: WhisperDecoding,
    },
    /// Instant stand-ins (benchmarks of the platform itself).
    Instant,
    /// Instant stand-ins whose recogniser behaves like a loaded pool: `workers` utterances at a
    /// time, each taking `decode`, a bounded queue with a deadline (`callbot bench calls --faults`
    /// saturates it).
    InstantLoaded { workers: usize, decode: Duration },
}

/// The end-of-turn model that bots with `turn_detection: model` use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnModelSettings {
    /// None: such bots end turns by the words' heuristic (each call says so in an `error` event).
    Off,
    /// An ONNX end-of-turn model (Smart Turn v3.2 by default) run by ONNX Runtime's shared
    /// library, both installed by `callbot models install`.
    Onnx { model: PathBuf, runtime: PathBuf },
}

/// Which language model suggests replies (webhook mode) and answers (LLM mode).
#[derive(Debug, Clone)]
pub enum LlmSettings {
    /// No model: webhook requests carry `llm_suggestion: null`; LLM bots are refused.
    Off,
    /// The embedded model (a GGUF file) served by the `callbot-llm` worker that `serve` starts.
    Local {
        model: PathBuf,
        /// The worker program; default: `callbot-llm` next to the running binary.
        worker: Option<PathBuf>,
        threads: u32,
    },
    /// Any OpenAI-compatible chat completions server.
    OpenAi {
        base_url: url::Url,
        api_key: Option<SecretString>,
        model: String,
    },
}

impl LlmSettings {
    pub fn is_on(&self) -> bool {
        !matches!(self, LlmSettings::Off)
    }
}

/// The call engine's knobs (platform-wide).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSettings {
    pub speech: SpeechSettings,
    pub turn_model: TurnModelSettings,
    /// Silence after the caller's speech that ends their turn.
    pub end_silence: Duration,
    /// Caller speech over the bot needed to interrupt it.
    pub barge_in_min: Duration,
    /// Webhook mode: ask the model for its suggestion on the caller's words before their turn
    /// has ended (`CALLBOT_LLM_PREEMPTIVE`, default on).
    pub preemptive: bool,
    pub webhook_timeout: Duration,
    /// Spoken when the webhook fails (timeout, error, bad answer) and no LLM suggestion exists:
    /// the business's system is the trouble, not the caller.
    pub fallback_line: String,
    /// Spoken when the caller's words could not be recognised.
    pub not_heard_line: String,
    /// After this many webhook failures in a row the call is transferred to the bot's
    /// `fallback_number`, or ended politely.
    pub webhook_failure_limit: u32,
    /// Caller silence before a reprompt; a second one in a row ends the call.
    pub silence_timeout: Duration,
    pub reprompt_line: String,
    pub max_call: Duration,
    pub webhooks_per_bot_per_second: u32,
    /// How long recording links stay valid.
    pub recording_link_ttl: Duration,
    /// On shutdown, how long live calls may go on before they are ended.
    pub drain: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// A key accepted for tenant `default` (development bootstrap).
    pub dev_api_key: Option<SecretString>,
    pub webhook_policy: WebhookPolicy,
    pub store: StoreSettings,
    pub recordings: RecordingsSettings,
    pub telephony: TelephonySettings,
    pub aws: AwsSettings,
    pub public_base_url: Option<url::Url>,
    pub stream_base_url: Option<url::Url>,
    /// `CALLBOT_INSTANCE_URL`: where other instances reach this one's call sockets (an internal
    /// `http://host:port`); unset, [`Settings::instance_base`] derives it.
    pub instance_url: Option<url::Url>,
    /// `ECS_CONTAINER_METADATA_URI_V4` (set by ECS): where the task's private address is read
    /// when `CALLBOT_INSTANCE_URL` is unset.
    pub ecs_metadata_uri: Option<url::Url>,
    pub limits: Limits,
    pub calls: CallSettings,
    pub llm: LlmSettings,
    /// Cloud voices and recognisers.
    pub providers: ProviderSettings,
    /// ICE servers, TURN credentials and UDP ports for browser (WebRTC) calls.
    pub rtc: RtcSettings,
    /// Deadline for a reply's first words from the LLM (a webhook-mode suggestion: the whole of it).
    pub llm_timeout: Duration,
    /// `/llm/v1` gateway requests per tenant per minute.
    pub llm_gateway_per_minute: u32,
    /// `CALLBOT_LLM_MODELS` (comma-separated): the only models the `/llm/v1` gateway forwards
    /// requests for; empty, any model the model server has.
    pub llm_gateway_models: Vec<String>,
    /// `CALLBOT_CAMPAIGN_DIALER` (`on`, the default, or `off`): whether `callbot serve` runs the
    /// campaign dialer (several processes on one store may all run it).
    pub campaign_dialer: bool,
    /// `CALLBOT_CAMPAIGN_QUEUE_URL`: an SQS queue the API hands campaign rows to, consumed by the
    /// `campaigns` Lambda function (the AWS deployment's dialer). Unset: rows wait for a polling
    /// dialer (`callbot serve`'s).
    pub campaign_queue_url: Option<String>,
    /// `CALLBOT_LAMBDA_EVENTS` (`http`, the default, or `campaign-queue`): what a Lambda
    /// function's process is handed: API requests, or the campaign queue's SQS batches.
    pub lambda_events: LambdaEvents,
    /// `CALLBOT_LAMBDA_ROUTES` (`bots`, `voice` or `calls`): which function's routes the Lambda
    /// executable serves when it is handed API requests (required then; the workers need none).
    pub lambda_routes: Option<LambdaRoutes>,
    /// `OPENAI_SECRET_ID`: a Secrets Manager secret whose JSON `api_key` is the model server's
    /// key, read at startup when `OPENAI_API_KEY` is unset (the post-call function's way: the key
    /// never sits in its configuration).
    pub openai_secret_id: Option<String>,
    /// `json` for machine-readable logs (Lambda, ECS), otherwise human-readable.
    pub log_json: bool,
    /// `RUST_LOG`: which logs to keep (`info,aws=warn`); each binary has its own default.
    pub log_filter: Option<String>,
}

/// The routes one API function serves (the three share one executable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaRoutes {
    Bots,
    Voice,
    Calls,
}

/// What a Lambda function's process is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaEvents {
    /// API Gateway HTTP requests, to the function's router.
    Http,
    /// SQS batches of the campaign queue, to the row worker.
    CampaignQueue,
    /// DynamoDB stream batches of the table (call items whose status became final), to the
    /// post-call worker.
    CallEnded,
}

#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {message}")]
pub struct SettingsError {
    pub name: &'static str,
    pub message: String,
}

fn err(name: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        name,
        message: message.into(),
    }
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Builds settings from a variable map (names as in the README's configuration table).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::read(vars, &std::cell::RefCell::default())
    }

    /// The variables the settings look up when built from `vars` (a choice `vars` makes, such as
    /// `CALLBOT_STORE=dynamodb`, brings the variables it needs), and whether `vars` was valid.
    /// What deployment files set is checked against this.
    pub fn variables_read(
        vars: &HashMap<String, String>,
    ) -> (
        std::collections::BTreeSet<String>,
        Result<(), SettingsError>,
    ) {
        let seen = std::cell::RefCell::default();
        let result = Self::read(vars, &seen).map(|_| ());
        (seen.into_inner(), result)
    }

    /// Settings for tests and benchmarks: SQLite in `data_dir`, local everything, private webhooks
    /// and ICE candidates allowed, no LLM.
    pub fn for_local(data_dir: PathBuf) -> Self {
        let vars = HashMap::from([
            (
                "CALLBOT_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
            ("CALLBOT_ALLOW_PRIVATE_WEBHOOKS".to_owned(), "1".to_owned()),
            ("CALLBOT_RTC_ALLOW_PRIVATE".to_owned(), "1".to_owned()),
        ]);
        // The map above holds only valid values.
        let mut s = Self::from_vars(&vars)
            .unwrap_or_else(|e| unreachable!("local settings are valid: {e}"));
        // Tests and benchmarks choose their model (a stand-in or the worker) themselves.
        s.llm = LlmSettings::Off;
        s
    }
}

#[cfg(test)]
mod tests;
