//! Building [`Settings`] from variables: a reader that records every name it looks up (so the
//! deployment files can be checked against what is read), and one builder per part of the
//! settings, each refusing a bad value with the variable's name.

use super::providers::ProviderSettings;
use super::rtc::RtcSettings;
use super::{
    AwsSettings, CallSettings, LambdaEvents, LambdaRoutes, Limits, LlmSettings, RecordingsSettings,
    Settings, SettingsError, SpeechSettings, StoreSettings, TelephonySettings, TurnModelSettings,
    TwilioCredentials, WhisperDecoding, err, truthy,
};
use crate::domain::WebhookPolicy;
use secrecy::SecretString;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variables, read: an empty or blank value counts as unset.
pub(super) struct Vars<'a> {
    vars: &'a HashMap<String, String>,
    seen: &'a RefCell<BTreeSet<String>>,
}

impl<'a> Vars<'a> {
    pub(super) fn new(
        vars: &'a HashMap<String, String>,
        seen: &'a RefCell<BTreeSet<String>>,
    ) -> Self {
        Self { vars, seen }
    }

    pub(super) fn get(&self, k: &str) -> Option<&'a String> {
        self.seen.borrow_mut().insert(k.to_owned());
        self.vars.get(k).filter(|v| !v.trim().is_empty())
    }

    fn text(&self, k: &str, default: &str) -> String {
        self.get(k).cloned().unwrap_or_else(|| default.to_owned())
    }

    /// A choice among names, lower-cased.
    fn choice(&self, k: &str) -> Option<String> {
        self.get(k).map(|s| s.to_ascii_lowercase())
    }

    fn flag(&self, k: &str) -> bool {
        truthy(self.get(k))
    }

    fn num(&self, name: &'static str, default: u64) -> Result<u64, SettingsError> {
        self.get(name)
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|e| err(name, format!("{s:?}: {e}")))
            })
            .transpose()
            .map(|v| v.unwrap_or(default))
    }

    fn count(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        u32::try_from(self.num(name, default.into())?).map_err(|e| err(name, e.to_string()))
    }

    pub(super) fn ms(&self, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
        self.num(name, default).map(Duration::from_millis)
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
        self.num(name, default).map(Duration::from_secs)
    }

    fn url(&self, name: &'static str) -> Result<Option<url::Url>, SettingsError> {
        self.get(name)
            .map(|s| url::Url::parse(s).map_err(|e| err(name, format!("{s:?}: {e}"))))
            .transpose()
    }
}

impl Settings {
    pub(super) fn read(
        vars: &HashMap<String, String>,
        seen: &RefCell<BTreeSet<String>>,
    ) -> Result<Self, SettingsError> {
        let v = Vars::new(vars, seen);
        let addr = v
            .get("CALLBOT_ADDR")
            .map(|s| {
                s.parse()
                    .map_err(|e| err("CALLBOT_ADDR", format!("{s:?}: {e}")))
            })
            .transpose()?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = PathBuf::from(v.text("CALLBOT_DATA_DIR", "./callbot-data"));
        let store = store(&v, &data_dir)?;
        let recordings = recordings(&v, &data_dir)?;
        let telephony = telephony(&v)?;
        let aws = AwsSettings {
            region: v
                .get("AWS_REGION")
                .or_else(|| v.get("AWS_DEFAULT_REGION"))
                .cloned()
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: v.get("AWS_ENDPOINT_URL").cloned(),
            access_key_id: v.get("AWS_ACCESS_KEY_ID").cloned(),
            secret_access_key: v
                .get("AWS_SECRET_ACCESS_KEY")
                .map(|s| SecretString::from(s.clone())),
        };
        let limits = limits(&v)?;
        let calls = calls(&v, &data_dir)?;
        let llm = llm(&v, &data_dir)?;
        let providers = ProviderSettings::from_get(&|k| v.get(k), &|n, d| v.ms(n, d))?;
        let rtc = RtcSettings::from_get(&|k| v.get(k))?;
        let (public_base_url, stream_base_url, instance_url) = addresses(&v, &telephony)?;
        let ecs_metadata_uri = v.url("ECS_CONTAINER_METADATA_URI_V4")?;
        let dev_api_key = dev_api_key(&v)?;
        Ok(Settings {
            addr,
            data_dir,
            dev_api_key,
            webhook_policy: WebhookPolicy {
                allow_private: v.flag("CALLBOT_ALLOW_PRIVATE_WEBHOOKS"),
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
            llm_timeout: v.ms("CALLBOT_LLM_TIMEOUT_MS", 2500)?,
            llm_gateway_per_minute: v.count("CALLBOT_LLM_GATEWAY_PER_MINUTE", 120)?,
            llm_gateway_models: v
                .get("CALLBOT_LLM_MODELS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            campaign_dialer: match v.choice("CALLBOT_CAMPAIGN_DIALER").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(err(
                        "CALLBOT_CAMPAIGN_DIALER",
                        format!("must be on or off, not {other:?}"),
                    ));
                }
            },
            campaign_queue_url: v
                .get("CALLBOT_CAMPAIGN_QUEUE_URL")
                .filter(|u| !u.trim().is_empty())
                .cloned(),
            lambda_events: match v.choice("CALLBOT_LAMBDA_EVENTS").as_deref() {
                None | Some("http") => LambdaEvents::Http,
                Some("campaign-queue") => LambdaEvents::CampaignQueue,
                Some("call-ended") => LambdaEvents::CallEnded,
                Some(other) => {
                    return Err(err(
                        "CALLBOT_LAMBDA_EVENTS",
                        format!("must be http, campaign-queue or call-ended, not {other:?}"),
                    ));
                }
            },
            lambda_routes: match v.choice("CALLBOT_LAMBDA_ROUTES").as_deref() {
                None => None,
                Some("bots") => Some(LambdaRoutes::Bots),
                Some("voice") => Some(LambdaRoutes::Voice),
                Some("calls") => Some(LambdaRoutes::Calls),
                Some(other) => {
                    return Err(err(
                        "CALLBOT_LAMBDA_ROUTES",
                        format!("must be bots, voice or calls, not {other:?}"),
                    ));
                }
            },
            openai_secret_id: v.get("OPENAI_SECRET_ID").cloned(),
            log_json: v
                .get("CALLBOT_LOG_FORMAT")
                .is_some_and(|f| f.eq_ignore_ascii_case("json")),
            log_filter: v.get("RUST_LOG").cloned(),
        })
    }
}

fn store(v: &Vars, data_dir: &Path) -> Result<StoreSettings, SettingsError> {
    Ok(match v.choice("CALLBOT_STORE").as_deref() {
        None | Some("sqlite") => StoreSettings::Sqlite {
            path: data_dir.join("callbot.db"),
        },
        Some("dynamodb") => StoreSettings::Dynamodb {
            table: v.text("CALLBOT_DYNAMODB_TABLE", "callbot"),
            create_table: v.flag("CALLBOT_DYNAMODB_CREATE_TABLE"),
        },
        Some(other) => {
            return Err(err(
                "CALLBOT_STORE",
                format!("{other:?} is not sqlite or dynamodb"),
            ));
        }
    })
}

fn recordings(v: &Vars, data_dir: &Path) -> Result<RecordingsSettings, SettingsError> {
    Ok(match v.choice("CALLBOT_RECORDINGS").as_deref() {
        None | Some("local") => RecordingsSettings::Local {
            dir: data_dir.join("recordings"),
        },
        Some("s3") => RecordingsSettings::S3 {
            bucket: v
                .get("CALLBOT_S3_BUCKET")
                .cloned()
                .ok_or_else(|| err("CALLBOT_S3_BUCKET", "required when CALLBOT_RECORDINGS=s3"))?,
            create_bucket: v.flag("CALLBOT_S3_CREATE_BUCKET"),
        },
        Some(other) => {
            return Err(err(
                "CALLBOT_RECORDINGS",
                format!("{other:?} is not local or s3"),
            ));
        }
    })
}

/// `CALLBOT_SIM_CALLEES`: `NUMBER=KIND` pairs, comma-separated (kinds: person, machine, busy,
/// no-answer, fax).
fn sim_callees(
    v: &Vars,
) -> Result<Vec<(crate::domain::PhoneNumber, super::SimulatedCallee)>, SettingsError> {
    let name = "CALLBOT_SIM_CALLEES";
    let Some(raw) = v.get(name) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (number, kind) = pair
                .split_once('=')
                .ok_or_else(|| err(name, format!("{pair:?} is not NUMBER=KIND")))?;
            let number = crate::domain::PhoneNumber::parse(number)
                .map_err(|e| err(name, format!("{number:?}: {e}")))?;
            let kind = super::SimulatedCallee::parse(kind).ok_or_else(|| {
                err(
                    name,
                    format!("{kind:?} is not person, machine, busy, no-answer or fax"),
                )
            })?;
            Ok((number, kind))
        })
        .collect()
}

fn telephony(v: &Vars) -> Result<TelephonySettings, SettingsError> {
    let Some(sid) = v.get("TWILIO_ACCOUNT_SID") else {
        return Ok(TelephonySettings::Local {
            callees: sim_callees(v)?,
        });
    };
    let credentials = match (v.get("TWILIO_SECRET_ID"), v.get("TWILIO_AUTH_TOKEN")) {
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
            let api_key = match (v.get("TWILIO_API_KEY_SID"), v.get("TWILIO_API_KEY_SECRET")) {
                (Some(k), Some(secret)) => Some((k.clone(), SecretString::from(secret.clone()))),
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
    Ok(TelephonySettings::Twilio {
        account_sid: sid.clone(),
        credentials,
        api_base: v.text("TWILIO_API_BASE", "https://api.twilio.com"),
    })
}

fn limits(v: &Vars) -> Result<Limits, SettingsError> {
    let d = Limits::default();
    Ok(Limits {
        max_bots_per_tenant: v.count("CALLBOT_MAX_BOTS_PER_TENANT", d.max_bots_per_tenant)?,
        max_body_bytes: usize::try_from(v.num("CALLBOT_MAX_BODY_BYTES", d.max_body_bytes as u64)?)
            .map_err(|e| err("CALLBOT_MAX_BODY_BYTES", e.to_string()))?,
        calls_per_bot_per_day: v.count("CALLBOT_CALLS_PER_BOT_PER_DAY", d.calls_per_bot_per_day)?,
        outbound_calls_per_user_per_minute: v.count(
            "CALLBOT_OUTBOUND_CALLS_PER_MINUTE",
            d.outbound_calls_per_user_per_minute,
        )?,
        max_calls_per_tenant: v.count("CALLBOT_MAX_CALLS_PER_TENANT", d.max_calls_per_tenant)?,
        max_observers_per_user: v
            .count("CALLBOT_MAX_OBSERVERS_PER_USER", d.max_observers_per_user)?,
    })
}

fn speech(v: &Vars, data_dir: &Path) -> Result<SpeechSettings, SettingsError> {
    Ok(match v.choice("CALLBOT_SPEECH").as_deref() {
        None | Some("local") => SpeechSettings::Local {
            model: whisper_model(v.get("CALLBOT_WHISPER_MODEL").map(String::as_str), data_dir),
            espeak: v.text("CALLBOT_ESPEAK", "espeak-ng"),
            whisper_workers: v.num("CALLBOT_WHISPER_WORKERS", 1)? as usize,
            decoding: whisper_decoding(v)?,
        },
        Some("instant") => SpeechSettings::Instant,
        Some("instant-loaded") => SpeechSettings::InstantLoaded {
            workers: (v.num("CALLBOT_INSTANT_STT_WORKERS", 1)? as usize).max(1),
            decode: v.ms("CALLBOT_INSTANT_STT_MS", 300)?,
        },
        Some(other) => {
            return Err(err(
                "CALLBOT_SPEECH",
                format!("{other:?} is not local, instant or instant-loaded"),
            ));
        }
    })
}

fn whisper_decoding(v: &Vars) -> Result<WhisperDecoding, SettingsError> {
    let d = WhisperDecoding::default();
    let beam = v.num("CALLBOT_WHISPER_BEAM", u64::from(d.beam))?;
    if !(1..=8).contains(&beam) {
        return Err(err(
            "CALLBOT_WHISPER_BEAM",
            "must be 1-8 (1 decodes greedily)",
        ));
    }
    let prompt = match v.choice("CALLBOT_WHISPER_PROMPT").as_deref() {
        None | Some("on") | Some("true") | Some("1") => true,
        Some("off") | Some("false") | Some("0") => false,
        Some(other) => {
            return Err(err(
                "CALLBOT_WHISPER_PROMPT",
                format!("{other:?} is not on or off"),
            ));
        }
    };
    Ok(WhisperDecoding {
        beam: beam as u8,
        prompt,
    })
}

/// `CALLBOT_WHISPER_MODEL`: a model `callbot models install` knows by name (`base`, the default,
/// or `tiny.en`), found under the data directory, or the path of a ggml file.
fn whisper_model(value: Option<&str>, data_dir: &Path) -> PathBuf {
    match value.map(str::trim) {
        None | Some("") => data_dir.join("models").join("ggml-base.bin"),
        Some(name @ ("base" | "tiny.en")) => {
            data_dir.join("models").join(format!("ggml-{name}.bin"))
        }
        Some(path) => PathBuf::from(path),
    }
}

/// `CALLBOT_TURN_MODEL`: `smart-turn` (the default, under the data directory), `off`, or the
/// path of an ONNX file; `CALLBOT_ONNXRUNTIME`: ONNX Runtime's shared library (default: the one
/// `callbot models install` puts under the data directory).
fn turn_model(v: &Vars, data_dir: &Path) -> TurnModelSettings {
    let models = data_dir.join("models");
    let model = match v.get("CALLBOT_TURN_MODEL").map(|s| s.trim()) {
        Some("off") => return TurnModelSettings::Off,
        None | Some("") | Some("smart-turn") => models.join("smart-turn-v3.2-cpu.onnx"),
        Some(path) => PathBuf::from(path),
    };
    let runtime = v
        .get("CALLBOT_ONNXRUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| models.join("libonnxruntime.so.1.31.1"));
    TurnModelSettings::Onnx { model, runtime }
}

fn calls(v: &Vars, data_dir: &Path) -> Result<CallSettings, SettingsError> {
    let webhook_failure_limit = v.num("CALLBOT_WEBHOOK_FAILURE_LIMIT", 3)?;
    if !(1..=100).contains(&webhook_failure_limit) {
        return Err(err("CALLBOT_WEBHOOK_FAILURE_LIMIT", "must be 1-100"));
    }
    Ok(CallSettings {
        speech: speech(v, data_dir)?,
        turn_model: turn_model(v, data_dir),
        end_silence: v.ms("CALLBOT_END_SILENCE_MS", 700)?,
        barge_in_min: v.ms("CALLBOT_BARGE_IN_MS", 300)?,
        preemptive: match v.choice("CALLBOT_LLM_PREEMPTIVE").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(err(
                    "CALLBOT_LLM_PREEMPTIVE",
                    format!("{other:?}: use on or off"),
                ));
            }
        },
        webhook_timeout: v.ms("CALLBOT_WEBHOOK_TIMEOUT_MS", 3000)?,
        fallback_line: v.text(
            "CALLBOT_FALLBACK_LINE",
            "I'm sorry, I'm having trouble looking that up right now. Could you say it again in a moment?",
        ),
        not_heard_line: v.text(
            "CALLBOT_NOT_HEARD_LINE",
            "Sorry, I did not catch that. Could you say it again?",
        ),
        webhook_failure_limit: webhook_failure_limit as u32,
        silence_timeout: v.ms("CALLBOT_SILENCE_TIMEOUT_MS", 10_000)?,
        reprompt_line: v.text("CALLBOT_REPROMPT_LINE", "Are you still there?"),
        max_call: v.secs("CALLBOT_MAX_CALL_SECS", 1800)?,
        webhooks_per_bot_per_second: v.count("CALLBOT_WEBHOOKS_PER_BOT_PER_SECOND", 5)?,
        recording_link_ttl: v.secs("CALLBOT_RECORDING_LINK_SECS", 900)?,
        drain: v.secs("CALLBOT_DRAIN_SECS", 300)?,
    })
}

fn llm(v: &Vars, data_dir: &Path) -> Result<LlmSettings, SettingsError> {
    Ok(match v.choice("CALLBOT_LLM").as_deref() {
        None | Some("local") => LlmSettings::Local {
            model: v
                .get("CALLBOT_LLM_MODEL_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    data_dir
                        .join("models")
                        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
                }),
            worker: v.get("CALLBOT_LLM_WORKER").map(PathBuf::from),
            threads: v.count("CALLBOT_LLM_THREADS", 2)?,
        },
        Some("openai") => LlmSettings::OpenAi {
            base_url: v.url("OPENAI_BASE_URL")?.unwrap_or_else(|| {
                url::Url::parse("https://api.openai.com/v1")
                    .unwrap_or_else(|e| unreachable!("a valid URL: {e}"))
            }),
            api_key: v
                .get("OPENAI_API_KEY")
                .map(|k| SecretString::from(k.clone())),
            model: v.text("CALLBOT_LLM_MODEL", "gpt-4o-mini"),
        },
        Some("off") => LlmSettings::Off,
        Some(other) => {
            return Err(err(
                "CALLBOT_LLM",
                format!("{other:?} is not local, openai or off"),
            ));
        }
    })
}

type Addresses = (Option<url::Url>, Option<url::Url>, Option<url::Url>);

/// The public API and stream URLs (required with Twilio, which must reach both) and this
/// instance's internal URL.
fn addresses(v: &Vars, telephony: &TelephonySettings) -> Result<Addresses, SettingsError> {
    let public_base_url = v.url("PUBLIC_BASE_URL")?;
    let stream_base_url = v.url("STREAM_BASE_URL")?;
    let instance_url = v.url("CALLBOT_INSTANCE_URL")?;
    if let Some(u) = &instance_url
        && (!matches!(u.scheme(), "http" | "https") || u.host().is_none())
    {
        return Err(err(
            "CALLBOT_INSTANCE_URL",
            "an http:// or https:// URL with a host (this instance's internal address)",
        ));
    }
    if matches!(telephony, TelephonySettings::Twilio { .. }) {
        // Twilio must reach us: an https answer URL and a wss media-stream URL.
        if public_base_url
            .as_ref()
            .is_none_or(|u| u.scheme() != "https")
        {
            return Err(err(
                "PUBLIC_BASE_URL",
                "required with Twilio: the public https:// URL of the API",
            ));
        }
        if stream_base_url.as_ref().is_none_or(|u| u.scheme() != "wss") {
            return Err(err(
                "STREAM_BASE_URL",
                "required with Twilio: the public wss:// URL of the stream service",
            ));
        }
    }
    Ok((public_base_url, stream_base_url, instance_url))
}

fn dev_api_key(v: &Vars) -> Result<Option<SecretString>, SettingsError> {
    match v.get("CALLBOT_API_KEY") {
        Some(k) if !crate::apikey::plausible(k) => Err(err(
            "CALLBOT_API_KEY",
            format!(
                "must be {}-{} printable characters without spaces (it is {} long): a shorter key would be refused on every request",
                crate::apikey::MIN_KEY_LEN,
                crate::apikey::MAX_KEY_LEN,
                k.chars().count()
            ),
        )),
        k => Ok(k.map(|k| SecretString::from(k.clone()))),
    }
}
