//! What the Lambda entry points share: state built once per cold start from the environment the
//! template sets, JSON logs, and the hand-over of one function's router to `lambda_http` (or,
//! for the campaign dialer, of the campaign queue's SQS batches to the row worker; for the
//! post-call function, of the table's stream batches to the post-call worker).

use crate::campaigns::dialer::{Dialer, SystemClock};
use crate::campaigns::queue::Worker;
use crate::postcall::PostCall;
use crate::{AppState, Function, router_for};
use callbot_core::campaign_queue::RowMessage;
use callbot_core::domain::{CallSid, CallStatus};
use callbot_core::llm::Llm;
use callbot_core::llm::openai::OpenAiLlm;
use callbot_core::settings::{LambdaEvents, LambdaRoutes, LlmSettings, Settings};
use callbot_core::wiring;
use lambda_http::LambdaEvent;
use std::sync::Arc;

pub type Error = lambda_http::Error;

/// Builds the state a function needs (store, Twilio, recordings) from settings.
pub async fn app_state(settings: Settings) -> Result<AppState, Error> {
    let wiring::Backends {
        store,
        twilio,
        telephony,
        recordings,
    } = wiring::backends(&settings).await?;
    let campaign_queue = wiring::campaign_queue(&settings).await;
    Ok(AppState {
        campaign_queue,
        settings: Arc::new(settings),
        store,
        telephony,
        twilio: Arc::new(twilio),
        recordings,
        live: None,
        test_runner: None,
    })
}

/// The whole life of a function process: settings from the environment, JSON logs, clients built
/// once, then requests from the Lambda runtime until it stops the process.
pub async fn run() -> Result<(), Error> {
    let settings = Settings::from_env()?;
    let function = match (settings.lambda_events, settings.lambda_routes) {
        (_, Some(LambdaRoutes::Bots)) => Function::Bots,
        (_, Some(LambdaRoutes::Voice)) => Function::Voice,
        (_, Some(LambdaRoutes::Calls)) => Function::Calls,
        (LambdaEvents::Http, None) => {
            return Err("CALLBOT_LAMBDA_ROUTES must say which routes this function serves: bots, voice or calls".into());
        }
        // Workers serve no routes.
        (_, None) => Function::Calls,
    };
    // `Targets` (target=level directives) rather than `EnvFilter`: no regex engine in the package.
    let filter: tracing_subscriber::filter::Targets = settings
        .log_filter
        .as_deref()
        .unwrap_or("info,aws=warn")
        .parse()
        .map_err(|e| format!("RUST_LOG: {e}"))?;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time(),
        )
        .with(filter)
        .init();
    let events = settings.lambda_events;
    let state = app_state(settings).await?;
    tracing::info!(function = function.name(), ?events, "cold start complete");
    match events {
        LambdaEvents::Http => lambda_http::run(router_for(function, state)).await,
        LambdaEvents::CampaignQueue => {
            let queue = state.campaign_queue.clone().ok_or(
                "CALLBOT_LAMBDA_EVENTS=campaign-queue needs CALLBOT_CAMPAIGN_QUEUE_URL (rows are sent back to it)",
            )?;
            let dialer = Dialer::for_rows(state, Arc::new(SystemClock));
            let worker = Arc::new(Worker::new(dialer, queue));
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |event: LambdaEvent<SqsEvent>| {
                    let worker = worker.clone();
                    async move { Ok::<_, Error>(sqs_batch(&worker, event.payload).await) }
                },
            ))
            .await
        }
        LambdaEvents::CallEnded => {
            let post = Arc::new(post_call(state).await?);
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |event: LambdaEvent<StreamEvent>| {
                    let post = post.clone();
                    async move { Ok::<_, Error>(stream_batch(&post, event.payload).await) }
                },
            ))
            .await
        }
    }
}

/// The post-call worker of a function: the settings' model (a remote one: the embedded model
/// does not run in a Lambda function), its key read from Secrets Manager when the settings name
/// a secret, and the client for tenants' webhooks.
pub async fn post_call(state: AppState) -> Result<PostCall, Error> {
    let llm: Option<Arc<dyn Llm>> = match &state.settings.llm {
        LlmSettings::Off => None,
        LlmSettings::Local { .. } => {
            return Err("the embedded model does not run in a Lambda function: set CALLBOT_LLM=openai (OPENAI_BASE_URL, CALLBOT_LLM_MODEL, OPENAI_SECRET_ID) or off".into());
        }
        LlmSettings::OpenAi {
            base_url,
            api_key,
            model,
        } => {
            let key = match (api_key, &state.settings.openai_secret_id) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(id)) => {
                    Some(callbot_core::secrets::api_key_secret(&state.settings.aws, id).await?)
                }
                (None, None) => None,
            };
            Some(Arc::new(OpenAiLlm::new(
                base_url,
                key,
                model.clone(),
                "openai",
            )))
        }
    };
    let http = callbot_core::outbound::client(
        state.settings.webhook_policy,
        Arc::new(callbot_core::outbound::SystemLookup),
    );
    Ok(PostCall { state, llm, http })
}

/// A DynamoDB stream event as Lambda delivers it (the fields read here; images in DynamoDB's
/// JSON, e.g. `{"S": "CA…"}`).
#[derive(Debug, serde::Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, serde::Deserialize)]
pub struct StreamRecord {
    pub dynamodb: StreamChange,
}

#[derive(Debug, serde::Deserialize)]
pub struct StreamChange {
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How long a call another worker holds waits before it is reported back for a retry.
const HELD_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Works the ended calls of a stream batch side by side; the records whose work failed (or
/// whose call another worker holds) are reported for delivery again.
pub async fn stream_batch(post: &PostCall, event: StreamEvent) -> BatchResponse {
    let work = event.records.into_iter().map(|r| async move {
        let seq = r.dynamodb.sequence_number;
        let (sid, ended_at) = r.dynamodb.new_image.as_ref().and_then(ended_call)?;
        match post.process_ended(&sid, ended_at).await {
            Ok(true) => None,
            Ok(false) => {
                tokio::time::sleep(HELD_PAUSE).await;
                Some(ItemFailure { id: seq })
            }
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e, "post-call work failed; delivered again later");
                Some(ItemFailure { id: seq })
            }
        }
    });
    let failures = futures_util::future::join_all(work).await;
    BatchResponse {
        failures: failures.into_iter().flatten().collect(),
    }
}

/// The call a stream image shows ended and not yet processed: its sid and end time.
fn ended_call(
    image: &serde_json::Map<String, serde_json::Value>,
) -> Option<(CallSid, Option<time::OffsetDateTime>)> {
    let text = |name: &str| image.get(name).and_then(|v| v["S"].as_str());
    if text("sk") != Some("CALL") || image.contains_key("post_call") {
        return None;
    }
    let status = CallStatus::parse(text("status")?).ok()?;
    if !status.is_terminal() {
        return None;
    }
    let sid = CallSid::parse(text("sid")?).ok()?;
    let ended = text("ended_at").and_then(callbot_core::time_fmt::parse_rfc3339);
    Some((sid, ended))
}

/// An SQS event as Lambda delivers it (the fields read here).
#[derive(Debug, serde::Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, serde::Deserialize)]
pub struct SqsRecord {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
}

/// The partial batch response (`ReportBatchItemFailures`): the messages to deliver again.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub failures: Vec<ItemFailure>,
}

#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub id: String,
}

/// Works a batch of row messages side by side. A message whose work failed is reported for
/// delivery again; one that is not a row message is logged and dropped (delivering it again
/// cannot help).
pub async fn sqs_batch(worker: &Worker, event: SqsEvent) -> BatchResponse {
    let work = event.records.into_iter().map(|r| async move {
        let m = match RowMessage::parse(&r.body) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(message_id = %r.message_id, error = %e, "dropped");
                return None;
            }
        };
        match worker.handle(&m).await {
            Ok(next) => {
                tracing::debug!(campaign = %m.campaign, row = m.row, ?next, "row message handled");
                None
            }
            Err(e) => {
                tracing::warn!(campaign = %m.campaign, row = m.row, error = %e, "row message failed; delivered again later");
                Some(ItemFailure { id: r.message_id })
            }
        }
    });
    let failures = futures_util::future::join_all(work).await;
    BatchResponse {
        failures: failures.into_iter().flatten().collect(),
    }
}
