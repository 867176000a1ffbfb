//! One turn as a task: recognise the caller's utterance; in webhook mode ask the LLM for a
//! suggestion and the business webhook for the reply (deadline, retry, fallback), then synthesise
//! it sentence by sentence; in LLM mode let the model answer, streamed into speech (`converse`).
//! Everything it learns goes to the call actor over a bounded channel; the actor may abort it
//! (barge-in, hang-up) at any await, which cancels generation, tool calls and synthesis at once.

use super::Engine;
use super::converse;
use super::decide::{Planned, Rules, decide};
use super::filler::{Fillers, covered};
use super::speak::{speak, speak_one, stage};
use super::turn::{CallInfo, Fallback, Stage, ToCall, TurnInput, TurnKind};
use super::webhook::{self, Action, HistoryEntry, TurnRequest};
use crate::speech::{Cue, SpeechToText, sentences};
use callbot_core::domain::BotMode;
use callbot_core::store::RateDecision;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub async fn run(engine: Engine, info: Arc<CallInfo>, input: TurnInput, tx: mpsc::Sender<ToCall>) {
    let t = Ctx {
        engine: &engine,
        info: &info,
        turn: input.turn,
        tx: &tx,
    };
    match input.kind {
        TurnKind::Play { url, then } => {
            super::play::run(&engine, &info, t.turn, &url, then, &tx).await
        }
        TurnKind::Bot { text, then, .. } => {
            let parts = sentences(&text);
            let reply = ToCall::Reply {
                turn: t.turn,
                say: text,
                action: then,
                fallback: None,
                webhook: None,
                sentences: parts.clone(),
            };
            if tx.send(reply).await.is_ok() {
                speak(&engine, &info, t.turn, &parts, &tx).await;
            }
        }
        TurnKind::Caller {
            audio,
            dtmf,
            heard,
            partials,
        } => {
            let said = Said {
                audio,
                heard,
                partials,
            };
            let prior = Prior {
                history: &input.history,
                failures: input.webhook_failures,
                early: input.early,
            };
            caller_turn(t, said, &dtmf, prior).await;
        }
    }
}

/// What every step of a turn task needs.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    engine: &'a Engine,
    info: &'a CallInfo,
    turn: u32,
    tx: &'a mpsc::Sender<ToCall>,
}

impl<'a> Ctx<'a> {
    fn cover(self) -> (&'a Engine, &'a CallInfo, u32, &'a mpsc::Sender<ToCall>) {
        (self.engine, self.info, self.turn, self.tx)
    }
}

/// What a caller turn starts from: the conversation before it, the webhook's failures in a row,
/// and a suggestion started before the turn ended.
struct Prior<'a> {
    history: &'a [HistoryEntry],
    failures: u32,
    early: Option<super::turn::Early>,
}

/// The caller's utterance: its audio, or the words a streaming recogniser already heard.
struct Said {
    audio: Option<Vec<i16>>,
    heard: Option<super::turn::Heard>,
    partials: u32,
}

/// A caller turn: recognition, then the model (LLM mode) or the webhook (webhook mode), then
/// the reply spoken. Steps that take longer than FILLER_AFTER in all get the caller an honest
/// "One moment." instead of dead air; the reply then follows it.
async fn caller_turn(t: Ctx<'_>, said: Said, dtmf: &str, prior: Prior<'_>) {
    let history = prior.history;
    let mut filled = Fillers::new();
    let cue = t.info.cue(history);
    let Some(heard) = hear(t, said, &cue, &mut filled).await else {
        return;
    };
    let text = match heard {
        Ok(text) => text,
        Err(reason) if dtmf.is_empty() => {
            // The caller said something we could not recognise: ask again rather than leave
            // them in silence (their audio is in the recording). When the recogniser was too
            // busy, say so: the caller was not unclear.
            let say = if reason == Fallback::SttBusy {
                OVERLOADED_LINE.to_owned()
            } else {
                t.info.not_heard_line.clone()
            };
            let reply = Planned {
                say,
                action: Action::Continue,
                fallback: Some(reason),
                webhook: None,
            };
            return emit(t, reply, filled.said).await;
        }
        Err(_) => String::new(),
    };
    if text.is_empty() && dtmf.is_empty() {
        let _ = t.tx.send(ToCall::Finished { turn: t.turn }).await;
        return;
    }
    if t.info.mode == BotMode::Llm {
        let (engine, info, turn, tx) = t.cover();
        return converse::run(engine, info, turn, history, &text, dtmf, filled, tx).await;
    }
    if let Some(reply) = webhook_reply(t, &text, dtmf, prior, &mut filled).await {
        emit(t, reply, filled.said).await;
    }
}

/// The caller's words: known already, or recognised now (under the fillers' cover), and told to
/// the actor. `None` when the call is gone.
async fn hear(
    t: Ctx<'_>,
    said: Said,
    cue: &Cue,
    filled: &mut Fillers,
) -> Option<Result<String, Fallback>> {
    let (result, stt, provider) = match (said.heard, said.audio) {
        (Some(h), _) => (Ok(h.text), h.after, h.provider),
        (None, Some(audio)) => {
            if !stage(t.tx, t.turn, Stage::Recognising).await {
                return None;
            }
            let started = Instant::now();
            let (result, provider) =
                covered(recognise(t.engine, audio, cue), filled, t.cover()).await?;
            let result = result.map_err(|e| {
                tracing::warn!(call_sid = %t.info.call_sid, error = %e, "recognition failed");
                match e {
                    crate::speech::SpeechError::Busy => Fallback::SttBusy,
                    _ => Fallback::SttFailed,
                }
            });
            (result, started.elapsed(), provider)
        }
        (None, None) => return Some(Ok(String::new())),
    };
    let msg = ToCall::Recognised {
        turn: t.turn,
        text: result.as_deref().unwrap_or_default().to_owned(),
        stt,
        provider,
        partials: said.partials,
    };
    t.tx.send(msg).await.ok()?;
    Some(result)
}

/// Webhook mode: the model's suggestion (when the bot asks for one), then the webhook, then the
/// decision. `None` when the call is gone.
async fn webhook_reply(
    t: Ctx<'_>,
    text: &str,
    dtmf: &str,
    prior: Prior<'_>,
    filled: &mut Fillers,
) -> Option<Planned> {
    let (info, history, failures) = (t.info, prior.history, prior.failures);
    let mut suggested = None;
    if info.brain.llm_suggestion() {
        if !stage(t.tx, t.turn, Stage::Llm).await {
            return None;
        }
        // The suggestion started early on these very words, or one asked now.
        let early = prior.early.filter(|e| {
            dtmf.is_empty()
                && e.history_len == history.len()
                && e.words == super::turn::early_words(text)
        });
        let asked = async {
            match early {
                Some(e) => e.task.await.ok().flatten().map(|(s, mut timings)| {
                    timings.preemptive = Some(true);
                    (s, timings)
                }),
                None => converse::suggest(t.engine, info, history, text, dtmf).await,
            }
        };
        let waiting = Instant::now();
        if let Some((s, mut timings)) = covered(asked, filled, t.cover()).await? {
            timings.waited_ms = Some(waiting.elapsed().as_millis() as u64);
            t.tx.send(ToCall::Llm {
                turn: t.turn,
                timings,
            })
            .await
            .ok()?;
            suggested = s;
        }
    }
    let (answer, took) = match &info.webhook {
        Some(url) => {
            if !stage(t.tx, t.turn, Stage::Webhook).await {
                return None;
            }
            let asked = ask(t, url, text, dtmf, suggested.as_deref(), history);
            covered(asked, filled, t.cover()).await?
        }
        // Not reachable through the API (webhook mode requires one): the model answers.
        None => {
            let reply = webhook::Reply {
                say: None,
                action: Action::Continue,
            };
            (Ok(reply), Duration::ZERO)
        }
    };
    let rules = Rules {
        brain: &info.brain,
        fallback_line: &info.fallback_line,
        failure_limit: info.webhook_failure_limit,
    };
    Some(decide(rules, answer, suggested, failures, took))
}

/// Said when the recogniser was too busy to hear the caller at all.
pub const OVERLOADED_LINE: &str =
    "Sorry, I'm a little overloaded right now and missed that. Could you say it again?";

/// Speaks a decided reply: announced whole and spoken, or — after a filler began the turn —
/// added as further sentences of the streaming reply.
async fn emit(t: Ctx<'_>, reply: Planned, fillers: usize) {
    let (engine, info, turn, tx) = t.cover();
    let parts = sentences(&reply.say);
    if fillers == 0 {
        let msg = ToCall::Reply {
            turn,
            say: reply.say,
            action: reply.action,
            fallback: reply.fallback,
            webhook: reply.webhook,
            sentences: parts.clone(),
        };
        if tx.send(msg).await.is_ok() {
            speak(engine, info, turn, &parts, tx).await;
        }
        return;
    }
    for p in &parts {
        let msg = ToCall::Sentence {
            turn,
            text: p.clone(),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
    let act = ToCall::Act {
        turn,
        action: reply.action,
        fallback: reply.fallback,
    };
    if tx.send(act).await.is_err() {
        return;
    }
    for (i, p) in parts.iter().enumerate() {
        if !speak_one(engine, info, turn, i + fillers, p, tx).await {
            return;
        }
    }
    let _ = tx.send(ToCall::Finished { turn }).await;
}

/// Recognises one utterance with the configured recogniser; a cloud recogniser that fails or
/// misses its deadline hands the audio to the local engine, so the words are not lost.
async fn recognise(
    engine: &Engine,
    audio: Vec<i16>,
    cue: &Cue,
) -> (Result<String, crate::speech::SpeechError>, &'static str) {
    use crate::speech::Recogniser;
    if let Recogniser::OpenAi(cloud) = &engine.recogniser {
        let tried =
            tokio::time::timeout(engine.stt_timeout, cloud.transcribe(audio.clone(), cue)).await;
        match tried {
            Ok(Ok(t)) => return (Ok(t.text), "openai"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "openai transcription failed; recognising locally")
            }
            Err(_) => tracing::warn!("openai transcription timed out; recognising locally"),
        }
    }
    let local = tokio::time::timeout(
        crate::speech::whisper::RECOGNITION_TIMEOUT,
        engine.stt.transcribe(audio, cue),
    )
    .await
    .unwrap_or(Err(crate::speech::SpeechError::Timeout))
    .map(|t| t.text);
    (local, engine.local_stt_name())
}

/// The webhook round, with the per-bot rate limit inside the same deadline.
async fn ask(
    t: Ctx<'_>,
    url: &url::Url,
    text: &str,
    dtmf: &str,
    suggestion: Option<&str>,
    history: &[HistoryEntry],
) -> (Result<webhook::Reply, Fallback>, Duration) {
    let (engine, info, turn, _) = t.cover();
    let started = Instant::now();
    // The bot's webhook rate, counted in the store so it holds across instances (a store that
    // cannot answer does not stop the turn).
    let scope = format!("webhook#{}", info.bot_id);
    loop {
        let now = callbot_core::time_fmt::now();
        match info
            .store
            .acquire_rate_slot(&scope, info.webhooks_per_second.max(1), 1, now)
            .await
        {
            Ok(RateDecision::Allowed) => break,
            Ok(RateDecision::Limited { retry_after_secs }) => {
                // Slots are timed in milliseconds: poll at a fraction of the window.
                let wait = Duration::from_millis(100).min(Duration::from_secs(retry_after_secs));
                if started.elapsed() + wait >= info.webhook_timeout {
                    return (Err(Fallback::RateLimited), started.elapsed());
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::warn!(call_sid = %info.call_sid, error = %e, "webhook rate check failed; sending anyway");
                break;
            }
        }
    }
    let request = TurnRequest {
        llm_suggestion: suggestion,
        ..info.turn_request(turn, text, dtmf, history)
    };
    let left = info.webhook_timeout.saturating_sub(started.elapsed());
    let result = webhook::send(
        engine.outbound(info.policy),
        url,
        &info.webhook_secret,
        info.policy,
        &request,
        left,
    )
    .await;
    match result {
        Ok(r) => (Ok(r), started.elapsed()),
        Err(f) => {
            tracing::warn!(call_sid = %info.call_sid, turn, reason = %f, "webhook failed; speaking the fallback line");
            (Err(Fallback::Webhook(f)), started.elapsed())
        }
    }
}
