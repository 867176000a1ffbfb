//! Typed settings for every callbot binary. This is the only place that reads environment variables
//! (`Settings::from_env`); everything else receives the parsed values.

mod addresses;
mod providers;
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
    /// (`callbot call`). Its auth token is generated into the data dir.
    Local,
    Twilio {
        account_sid: String,
        credentials: TwilioCredentials,
        /// `https://api.twilio.com` unless overridden (`TWILIO_API_BASE`).
        api_base: String,
    },
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

/// Which speech engines the call engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechSettings {
    /// whisper.cpp with a converted model file, and espeak-ng.
    Local {
        model: PathBuf,
        espeak: String,
        whisper_workers: usize,
    },
    /// Instant stand-ins (benchmarks of the platform itself).
    Instant,
    /// Instant stand-ins whose recogniser behaves like a loaded pool: `workers` utterances at a
    /// time, each taking `decode`, a bounded queue with a deadline (`callbot bench calls --faults`
    /// saturates it).
    InstantLoaded { workers: usize, decode: Duration },
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
    /// Silence after the caller's speech that ends their turn.
    pub end_silence: Duration,
    /// Caller speech over the bot needed to interrupt it.
    pub barge_in_min: Duration,
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
    /// `json` for machine-readable logs (Lambda, ECS), otherwise human-readable.
    pub log_json: bool,
    /// `RUST_LOG`: which logs to keep (`info,aws=warn`); each binary has its own default.
    pub log_filter: Option<String>,
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

    fn read(
        vars: &HashMap<String, String>,
        seen: &std::cell::RefCell<std::collections::BTreeSet<String>>,
    ) -> Result<Self, SettingsError> {
        let get = |k: &str| {
            seen.borrow_mut().insert(k.to_owned());
            vars.get(k).filter(|v| !v.trim().is_empty())
        };
        let addr = get("CALLBOT_ADDR")
            .map(|s| {
                s.parse()
                    .map_err(|e| err("CALLBOT_ADDR", format!("{s:?}: {e}")))
            })
            .transpose()?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = PathBuf::from(
            get("CALLBOT_DATA_DIR")
                .map(String::as_str)
                .unwrap_or("./callbot-data"),
        );
        let store = match get("CALLBOT_STORE")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("sqlite") => StoreSettings::Sqlite {
                path: data_dir.join("callbot.db"),
            },
            Some("dynamodb") => StoreSettings::Dynamodb {
                table: get("CALLBOT_DYNAMODB_TABLE")
                    .cloned()
                    .unwrap_or_else(|| "callbot".to_owned()),
                create_table: truthy(get("CALLBOT_DYNAMODB_CREATE_TABLE")),
            },
            Some(other) => {
                return Err(err(
                    "CALLBOT_STORE",
                    format!("{other:?} is not sqlite or dynamodb"),
                ));
            }
        };
        let recordings = match get("CALLBOT_RECORDINGS")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => RecordingsSettings::Local {
                dir: data_dir.join("recordings"),
            },
            Some("s3") => RecordingsSettings::S3 {
                bucket: get("CALLBOT_S3_BUCKET").cloned().ok_or_else(|| {
                    err("CALLBOT_S3_BUCKET", "required when CALLBOT_RECORDINGS=s3")
                })?,
                create_bucket: truthy(get("CALLBOT_S3_CREATE_BUCKET")),
            },
            Some(other) => {
                return Err(err(
                    "CALLBOT_RECORDINGS",
                    format!("{other:?} is not local or s3"),
                ));
            }
        };
        let telephony = match get("TWILIO_ACCOUNT_SID") {
            None => TelephonySettings::Local,
            Some(sid) => {
                let credentials = match (get("TWILIO_SECRET_ID"), get("TWILIO_AUTH_TOKEN")) {
                    (Some(_), Some(_)) => {
                        return Err(err(
                            "TWILIO_SECRET_ID",
                            "set TWILIO_SECRET_ID or TWILIO_AUTH_TOKEN, not both",
                        ));
                    }
                    (Some(id), None) => TwilioCredentials::SecretsManager {
                        secret_id: id.clone(),
                    },
                    (None, None) => {
                        return Err(err(
                            "TWILIO_AUTH_TOKEN",
                            "required with TWILIO_ACCOUNT_SID (or TWILIO_SECRET_ID naming a Secrets Manager secret that holds it): Twilio signs webhooks with it",
                        ));
                    }
                    (None, Some(auth_token)) => {
                        let api_key = match (
                            get("TWILIO_API_KEY_SID"),
                            get("TWILIO_API_KEY_SECRET"),
                        ) {
                            (Some(k), Some(secret)) => {
                                Some((k.clone(), SecretString::from(secret.clone())))
                            }
                            (None, None) => None,
                            _ => {
                                return Err(err(
                                    "TWILIO_API_KEY_SID",
                                    "set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither",
                                ));
                            }
                        };
                        TwilioCredentials::Inline {
                            auth_token: SecretString::from(auth_token.clone()),
                            api_key,
                        }
                    }
                };
                TelephonySettings::Twilio {
                    account_sid: sid.clone(),
                    credentials,
                    api_base: get("TWILIO_API_BASE")
                        .cloned()
                        .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
                }
            }
        };
        let aws = AwsSettings {
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .cloned()
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: get("AWS_ENDPOINT_URL").cloned(),
            access_key_id: get("AWS_ACCESS_KEY_ID").cloned(),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(|s| SecretString::from(s.clone())),
        };
        let url_var = |name: &'static str| {
            get(name)
                .map(|s| url::Url::parse(s).map_err(|e| err(name, format!("{s:?}: {e}"))))
                .transpose()
        };
        let num = |name: &'static str, default: u64| -> Result<u64, SettingsError> {
            get(name)
                .map(|s| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|e| err(name, format!("{s:?}: {e}")))
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_bots_per_tenant: u32::try_from(num(
                "CALLBOT_MAX_BOTS_PER_TENANT",
                defaults.max_bots_per_tenant.into(),
            )?)
            .map_err(|e| err("CALLBOT_MAX_BOTS_PER_TENANT", e.to_string()))?,
            max_body_bytes: usize::try_from(num(
                "CALLBOT_MAX_BODY_BYTES",
                defaults.max_body_bytes as u64,
            )?)
            .map_err(|e| err("CALLBOT_MAX_BODY_BYTES", e.to_string()))?,
            calls_per_bot_per_day: u32::try_from(num(
                "CALLBOT_CALLS_PER_BOT_PER_DAY",
                defaults.calls_per_bot_per_day.into(),
            )?)
            .map_err(|e| err("CALLBOT_CALLS_PER_BOT_PER_DAY", e.to_string()))?,
            outbound_calls_per_user_per_minute: u32::try_from(num(
                "CALLBOT_OUTBOUND_CALLS_PER_MINUTE",
                defaults.outbound_calls_per_user_per_minute.into(),
            )?)
            .map_err(|e| err("CALLBOT_OUTBOUND_CALLS_PER_MINUTE", e.to_string()))?,
            max_calls_per_tenant: u32::try_from(num(
                "CALLBOT_MAX_CALLS_PER_TENANT",
                defaults.max_calls_per_tenant.into(),
            )?)
            .map_err(|e| err("CALLBOT_MAX_CALLS_PER_TENANT", e.to_string()))?,
            max_observers_per_user: u32::try_from(num(
                "CALLBOT_MAX_OBSERVERS_PER_USER",
                defaults.max_observers_per_user.into(),
            )?)
            .map_err(|e| err("CALLBOT_MAX_OBSERVERS_PER_USER", e.to_string()))?,
        };
        let ms = |name: &'static str, default: u64| num(name, default).map(Duration::from_millis);
        let speech = match get("CALLBOT_SPEECH")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => SpeechSettings::Local {
                model: get("CALLBOT_WHISPER_MODEL")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("models").join("ggml-tiny.en.bin")),
                espeak: get("CALLBOT_ESPEAK")
                    .cloned()
                    .unwrap_or_else(|| "espeak-ng".into()),
                whisper_workers: num("CALLBOT_WHISPER_WORKERS", 1)? as usize,
            },
            Some("instant") => SpeechSettings::Instant,
            Some("instant-loaded") => SpeechSettings::InstantLoaded {
                workers: (num("CALLBOT_INSTANT_STT_WORKERS", 1)? as usize).max(1),
                decode: ms("CALLBOT_INSTANT_STT_MS", 300)?,
            },
            Some(other) => {
                return Err(err(
                    "CALLBOT_SPEECH",
                    format!("{other:?} is not local, instant or instant-loaded"),
                ));
            }
        };
        let calls = CallSettings {
            speech,
            end_silence: ms("CALLBOT_END_SILENCE_MS", 700)?,
            barge_in_min: ms("CALLBOT_BARGE_IN_MS", 300)?,
            webhook_timeout: ms("CALLBOT_WEBHOOK_TIMEOUT_MS", 3000)?,
            fallback_line: get("CALLBOT_FALLBACK_LINE").cloned().unwrap_or_else(|| {
                "I'm sorry, I'm having trouble looking that up right now. Could you say it again in a moment?".into()
            }),
            not_heard_line: get("CALLBOT_NOT_HEARD_LINE")
                .cloned()
                .unwrap_or_else(|| "Sorry, I did not catch that. Could you say it again?".into()),
            webhook_failure_limit: {
                let n = num("CALLBOT_WEBHOOK_FAILURE_LIMIT", 3)?;
                if !(1..=100).contains(&n) {
                    return Err(err("CALLBOT_WEBHOOK_FAILURE_LIMIT", "must be 1-100"));
                }
                n as u32
            },
            silence_timeout: ms("CALLBOT_SILENCE_TIMEOUT_MS", 10_000)?,
            reprompt_line: get("CALLBOT_REPROMPT_LINE")
                .cloned()
                .unwrap_or_else(|| "Are you still there?".into()),
            max_call: Duration::from_secs(num("CALLBOT_MAX_CALL_SECS", 1800)?),
            webhooks_per_bot_per_second: u32::try_from(num(
                "CALLBOT_WEBHOOKS_PER_BOT_PER_SECOND",
                5,
            )?)
            .map_err(|e| err("CALLBOT_WEBHOOKS_PER_BOT_PER_SECOND", e.to_string()))?,
            recording_link_ttl: Duration::from_secs(num("CALLBOT_RECORDING_LINK_SECS", 900)?),
            drain: Duration::from_secs(num("CALLBOT_DRAIN_SECS", 300)?),
        };
        let llm = match get("CALLBOT_LLM")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => LlmSettings::Local {
                model: get("CALLBOT_LLM_MODEL_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        data_dir
                            .join("models")
                            .join("SmolLM2-135M-Instruct.Q4_1.gguf")
                    }),
                worker: get("CALLBOT_LLM_WORKER").map(PathBuf::from),
                threads: u32::try_from(num("CALLBOT_LLM_THREADS", 2)?)
                    .map_err(|e| err("CALLBOT_LLM_THREADS", e.to_string()))?,
            },
            Some("openai") => LlmSettings::OpenAi {
                base_url: url_var("OPENAI_BASE_URL")?.unwrap_or_else(|| {
                    url::Url::parse("https://api.openai.com/v1")
                        .unwrap_or_else(|e| unreachable!("a valid URL: {e}"))
                }),
                api_key: get("OPENAI_API_KEY").map(|k| SecretString::from(k.clone())),
                model: get("CALLBOT_LLM_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "gpt-4o-mini".into()),
            },
            Some("off") => LlmSettings::Off,
            Some(other) => {
                return Err(err(
                    "CALLBOT_LLM",
                    format!("{other:?} is not local, openai or off"),
                ));
            }
        };
        let providers = ProviderSettings::from_get(&|k| get(k), &ms)?;
        let rtc = RtcSettings::from_get(&|k| get(k))?;
        let public_base_url = url_var("PUBLIC_BASE_URL")?;
        let stream_base_url = url_var("STREAM_BASE_URL")?;
        let instance_url = url_var("CALLBOT_INSTANCE_URL")?;
        if let Some(u) = &instance_url
            && (!matches!(u.scheme(), "http" | "https") || u.host().is_none())
        {
            return Err(err(
                "CALLBOT_INSTANCE_URL",
                "an http:// or https:// URL with a host (this instance's internal address)",
            ));
        }
        let ecs_metadata_uri = url_var("ECS_CONTAINER_METADATA_URI_V4")?;
        if matches!(telephony, TelephonySettings::Twilio { .. }) {
            // Twilio must reach us: an https answer URL and a wss media-stream URL (spec §1.1).
            match &public_base_url {
                Some(u) if u.scheme() == "https" => {}
                _ => {
                    return Err(err(
                        "PUBLIC_BASE_URL",
                        "required with Twilio: the public https:// URL of the API",
                    ));
                }
            }
            match &stream_base_url {
                Some(u) if u.scheme() == "wss" => {}
                _ => {
                    return Err(err(
                        "STREAM_BASE_URL",
                        "required with Twilio: the public wss:// URL of the stream service",
                    ));
                }
            }
        }
        let dev_api_key = match get("CALLBOT_API_KEY") {
            Some(k) if !crate::apikey::plausible(k) => {
                return Err(err(
                    "CALLBOT_API_KEY",
                    format!(
                        "must be {}-{} printable characters without spaces (it is {} long): a shorter key would be refused on every request",
                        crate::apikey::MIN_KEY_LEN,
                        crate::apikey::MAX_KEY_LEN,
                        k.chars().count()
                    ),
                ));
            }
            k => k.map(|k| SecretString::from(k.clone())),
        };
        Ok(Settings {
            addr,
            data_dir,
            dev_api_key,
            webhook_policy: WebhookPolicy {
                allow_private: truthy(get("CALLBOT_ALLOW_PRIVATE_WEBHOOKS")),
            },
            store,
            recordings,
            telephony,
            aws,
            public_base_url,
            stream_base_url,
            instance_url,
            ecs_metadata_uri,
            limits,
            calls,
            llm,
            providers,
            rtc,
            llm_timeout: ms("CALLBOT_LLM_TIMEOUT_MS", 2500)?,
            llm_gateway_per_minute: u32::try_from(num("CALLBOT_LLM_GATEWAY_PER_MINUTE", 120)?)
                .map_err(|e| err("CALLBOT_LLM_GATEWAY_PER_MINUTE", e.to_string()))?,
            llm_gateway_models: get("CALLBOT_LLM_MODELS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            log_json: get("CALLBOT_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
            log_filter: get("RUST_LOG").cloned(),
        })
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
