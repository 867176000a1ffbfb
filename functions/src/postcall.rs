//! What follows each call's end: in `callbot serve`, a worker takes ended calls from the store
//! (a hold that lapses if the process dies, so nothing is left undone), sends the bot's webhook a
//! signed `call.ended` event, analyses the call when the bot asks for it (retried on model
//! errors), stores the analysis and sends `call.analyzed`. Events may arrive twice after a crash:
//! `event_id` is the same both times.

use crate::AppState;
use callbot_core::domain::CallSid;
use callbot_core::llm::Llm;
use callbot_core::llm::analysis::{self, Line};
use callbot_core::store::{StoreError, Take};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a taken call is held; a worker that has not finished by then is taken for dead.
const HOLD_MS: i64 = 180_000;
/// A call's last turn and recording are written just after its end: it is taken this long after.
const SETTLE: Duration = Duration::from_secs(2);
/// Model attempts per analysis, and the wait before the second and third.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_secs(2);
/// Deadline of each event's delivery (one retry inside it).
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum PostCallError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("call detail: {0}")]
    Detail(String),
    #[error("event body: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone)]
pub struct PostCall {
    pub state: AppState,
    pub llm: Option<Arc<dyn Llm>>,
    /// The client for tenants' webhooks (private addresses refused unless allowed).
    pub http: reqwest::Client,
}

fn now_ms() -> i64 {
    i64::try_from(callbot_core::time_fmt::now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl PostCall {
    /// Works every `every` until `shutdown` resolves (a pass under way is finished first).
    pub async fn run(self, every: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut beat = crate::beat::Beat::new(every);
        while beat.next(shutdown.as_mut()).await {
            self.pass().await;
        }
    }

    /// Processes the calls that ended since the last pass (up to 16 at a time); how many.
    pub async fn pass(&self) -> usize {
        let ended_before = callbot_core::time_fmt::now() - SETTLE;
        let now = now_ms();
        let taken = match self
            .state
            .store
            .take_ended_calls(ended_before, now, now + HOLD_MS, 16)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "post-call: could not take ended calls");
                return 0;
            }
        };
        let work = taken.iter().map(|sid| self.process(sid));
        let done = futures_util::future::join_all(work).await;
        done.into_iter().filter(|ok| *ok).count()
    }

    /// Works the one call a change stream named (the post-call function on AWS): waits until
    /// it has settled, takes it, and processes it. `Ok(false)`: the call is another worker's for
    /// now, ask again later; `Err`: the work failed, ask again later (the hold lapses first).
    pub async fn process_ended(
        &self,
        sid: &CallSid,
        ended_at: Option<time::OffsetDateTime>,
    ) -> Result<bool, String> {
        if let Some(ended) = ended_at {
            let wait = (ended + SETTLE) - callbot_core::time_fmt::now();
            if let Ok(wait) = Duration::try_from(wait) {
                tokio::time::sleep(wait.min(SETTLE)).await;
            }
        }
        let now = now_ms();
        let take = self
            .state
            .store
            .take_call(sid, now, now + HOLD_MS)
            .await
            .map_err(|e| e.to_string())?;
        match take {
            Take::Taken => self
                .try_process(sid)
                .await
                .map(|()| true)
                .map_err(|e| e.to_string()),
            Take::Held => Ok(false),
            Take::Nothing => Ok(true),
        }
    }

    /// Events and analysis for one call; false when it is left for a later pass.
    async fn process(&self, sid: &CallSid) -> bool {
        match self.try_process(sid).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e, "post-call work failed; it is retried when its hold lapses");
                false
            }
        }
    }

    async fn try_process(&self, sid: &CallSid) -> Result<(), PostCallError> {
        let store = &self.state.store;
        let Some(call) = store.call_by_sid(sid).await? else {
            return Ok(());
        };
        let bot = store.get_bot(&call.tenant, &call.bot_id).await?;
        let detail = crate::call_detail::detail(&self.state, &call)
            .await
            .map_err(|e| PostCallError::Detail(e.to_string()))?;
        let mut body = serde_json::to_value(&detail)?;
        if let Some(o) = body.as_object_mut() {
            o.remove("turns");
            o.remove("analysis");
        }
        let transcript: Vec<Line> = body["transcript"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|x| Line {
                        role: x["role"].as_str().unwrap_or("").into(),
                        text: x["text"].as_str().unwrap_or("").into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(bot) = bot else {
            store.finish_post_call(sid, None).await?;
            return Ok(());
        };
        self.event(&bot, sid, "call.ended", &body).await;
        let analysis = match &self.llm {
            Some(llm) if !transcript.is_empty() && bot.options.analysis.wants_model(true) => Some(
                self.analyze(&**llm, &bot.options.analysis, &transcript, sid)
                    .await,
            ),
            _ => None,
        };
        store.finish_post_call(sid, analysis.as_ref()).await?;
        if let Some(a) = analysis {
            body["analysis"] = a;
            self.event(&bot, sid, "call.analyzed", &body).await;
        }
        Ok(())
    }

    /// The analysis, or the record of why there is none (after every attempt failed).
    async fn analyze(
        &self,
        llm: &dyn Llm,
        plan: &callbot_core::domain::AnalysisPlan,
        transcript: &[Line],
        sid: &CallSid,
    ) -> Value {
        let started = std::time::Instant::now();
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            match analysis::analyze(llm, plan, true, transcript).await {
                Ok(mut a) => {
                    a["model"] = json!(llm.describe());
                    a["analyzed_at"] = json!(callbot_core::time_fmt::rfc3339(
                        callbot_core::time_fmt::now()
                    ));
                    tracing::info!(call_sid = %sid, ms = started.elapsed().as_millis() as u64, "call analysed");
                    return a;
                }
                Err(e) => {
                    tracing::warn!(call_sid = %sid, attempt = attempt + 1, error = %e, "analysis: the model failed");
                    last = e.reason();
                }
            }
        }
        json!({"errors": [format!("the model failed {ATTEMPTS} times (last: {last})")],
               "analyzed_at": callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now())})
    }

    /// Sends a signed event to the bot's webhook (when it has one); a failure is logged.
    async fn event(&self, bot: &callbot_core::store::Bot, sid: &CallSid, kind: &str, body: &Value) {
        let Some(url) = &bot.webhook else {
            return;
        };
        let mut event = body.clone();
        event["type"] = json!(kind);
        event["event_id"] = json!(format!("{sid}:{kind}"));
        event["call_sid"] = json!(sid.as_str());
        event["timestamp"] = json!(callbot_core::time_fmt::rfc3339(
            callbot_core::time_fmt::now()
        ));
        let sent = callbot_core::webhook_post::post_signed(
            &self.http,
            url.url(),
            bot.webhook_secret.expose_secret().as_bytes(),
            self.state.settings.webhook_policy,
            &event,
            &format!("{sid}:{kind}"),
            EVENT_DEADLINE,
        )
        .await;
        if let Err(e) = sent {
            tracing::info!(call_sid = %sid, event = kind, error = ?e, "event not delivered");
        }
    }
}
