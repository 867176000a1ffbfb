//! One turn as a task: recognise the caller's utterance; in webhook mode ask the LLM for a
//! suggestion and the business webhook for the reply (deadline, retry, fallback), then synthesise
//! it sentence by sentence; in LLM mode let the model answer, streamed into speech (`converse`).
//! Everything it learns goes to the call actor over a bounded channel; the actor may abort it
//! (barge-in, hang-up) at any await, which cancels generation, tool calls and synthesis at once.

use super::Engine;
use super::call::Stage;
use super::converse;
use super::filler::{Fillers, covered};
use super::webhook::{self, Action, HistoryEntry, TurnRequest};
use crate::speech::voices::FALLBACK_VOICE;
use crate::speech::{SpeechToText, TextToSpeech, sentences};
use callbot_core::domain::{BotMode, Brain, PhoneNumber, VoiceProvider, WebhookPolicy};
use callbot_core::store::{LlmTimings, RateDecision};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a call's turns need to know about it.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub bot_id: callbot_core::domain::BotId,
    pub call_sid: String,
    pub from: String,
    pub to: String,
    pub goal: String,
    pub context: String,
    /// Required in webhook mode; in LLM mode it serves tools and receives turn notices.
    pub webhook: Option<url::Url>,
    pub webhook_secret: Vec<u8>,
    pub policy: WebhookPolicy,
    /// The bot's voice (its provider picks the synthesiser).
    pub voice: callbot_core::domain::Voice,
    pub webhook_timeout: Duration,
    pub webhooks_per_second: u32,
    /// Where the webhook rate is counted (and the call's other shared state lives).
    pub store: Arc<dyn callbot_core::store::Store>,
    pub fallback_line: String,
    /// Spoken when the caller's words could not be recognised.
    pub not_heard_line: String,
    /// Webhook failures in a row after which the call is handed over or ended.
    pub webhook_failure_limit: u32,
    /// This call's mode: the bot's, or `llm` for an outbound call with a `prompt`.
    pub mode: BotMode,
    /// Tools and allowed transfer numbers.
    pub brain: Brain,
    /// Built once per call, so every request of the call shares this prefix.
    pub system_prompt: String,
    /// The call's side tasks (turn notices): they end with the call.
    pub tasks: super::tasks::CallTasks,
}

#[derive(Debug)]
pub enum TurnKind {
    /// The caller spoke (8 kHz PCM) and/or pressed keys. `heard`: the words are already known
    /// (a streaming recogniser's finals, or a local decode that covered the whole utterance).
    Caller {
        audio: Option<Vec<i16>>,
        dtmf: String,
        heard: Option<Heard>,
        /// Partial transcripts seen while they spoke.
        partials: u32,
    },
    /// The bot speaks on its own (greeting, reprompt, a `tts` command), then takes `then`
    /// (a `tts` with `autoHangup` hangs up once it has been heard).
    Bot {
        text: String,
        then: Action,
        /// The `tts` command's `playId`.
        play_id: Option<String>,
    },
    /// An audio file (WAV) is played into the call (`play` command), then `then`.
    Play { url: url::Url, then: Action },
}

impl TurnKind {
    /// The bot says `text` and the conversation goes on.
    pub fn bot(text: String) -> Self {
        TurnKind::Bot {
            text,
            then: Action::Continue,
            play_id: None,
        }
    }
}

/// Words recognised before the turn started.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub text: String,
    pub provider: &'static str,
    /// End of the caller's speech → this final transcript (zero when it was known before).
    pub after: Duration,
}

#[derive(Debug)]
pub struct TurnInput {
    pub turn: u32,
    pub kind: TurnKind,
    /// What the caller actually heard so far, and said.
    pub history: Vec<HistoryEntry>,
    /// Webhook turns that failed in a row before this one.
    pub webhook_failures: u32,
}

#[derive(Debug)]
pub enum ToCall {
    Recognised {
        turn: u32,
        text: String,
        stt: Duration,
        provider: &'static str,
        partials: u32,
    },
    Reply {
        turn: u32,
        say: String,
        action: Action,
        fallback: Option<String>,
        webhook: Option<Duration>,
        sentences: Vec<String>,
    },
    /// Synthesised audio of a sentence as it arrives (8 kHz μ-law, any length).
    Audio {
        turn: u32,
        sentence: usize,
        ulaw: bytes::Bytes,
        /// Request → this chunk.
        tts: Duration,
        /// Which synthesiser made it.
        provider: &'static str,
    },
    /// The sentence's audio is complete.
    SentenceDone {
        turn: u32,
        sentence: usize,
    },
    /// The voice's provider failed on a sentence; the local voice speaks it (again, from its
    /// start, when part of it had already played).
    TtsFallback {
        turn: u32,
        sentence: usize,
        provider: &'static str,
        error: String,
    },
    /// Synthesis failed for a sentence, the local voice included: it is skipped (reported as
    /// an error event).
    SpeechFailed {
        turn: u32,
        sentence: usize,
        error: String,
    },
    /// The pipeline moved on to another step (recognition, LLM, webhook, a tool).
    Stage {
        turn: u32,
        stage: super::call::Stage,
    },
    /// LLM mode: the next sentence of a streamed reply (its audio follows as `Audio`).
    Sentence {
        turn: u32,
        text: String,
    },
    /// LLM mode: the action the model chose (`end_call`, `transfer_call`), known at the end.
    Act {
        turn: u32,
        action: Action,
        fallback: Option<String>,
    },
    /// The language model's timings for the turn.
    Llm {
        turn: u32,
        timings: LlmTimings,
    },
    Finished {
        turn: u32,
    },
}

pub async fn run(engine: Engine, info: Arc<CallInfo>, input: TurnInput, tx: mpsc::Sender<ToCall>) {
    let turn = input.turn;
    let say = match input.kind {
        TurnKind::Play { url, then } => {
            super::play::run(&engine, &info, turn, &url, then, &tx).await;
            return;
        }
        TurnKind::Bot { text, then, .. } => {
            let parts = sentences(&text);
            if tx
                .send(ToCall::Reply {
                    turn,
                    say: text,
                    action: then,
                    fallback: None,
                    webhook: None,
                    sentences: parts.clone(),
                })
                .await
                .is_err()
            {
                return;
            }
            parts
        }
        TurnKind::Caller {
            audio,
            dtmf,
            heard,
            partials,
        } => {
            let mut text = String::new();
            let mut stt_failed = None;
            // Recognition, the model's suggestion and the webhook that take longer than
            // FILLER_AFTER in all get the caller an honest "One moment." instead of dead air; the
            // reply then follows it.
            let mut filled = Fillers::new();
            let recognised = match (heard, audio) {
                (Some(h), _) => Some((h.text, h.after, h.provider)),
                (None, Some(audio)) => {
                    if !stage(&tx, turn, Stage::Recognising).await {
                        return;
                    }
                    let started = Instant::now();
                    let Some((result, provider)) = covered(
                        recognise(&engine, audio),
                        &mut filled,
                        (&engine, &info, turn, &tx),
                    )
                    .await
                    else {
                        return;
                    };
                    match result {
                        Ok(t) => text = t,
                        Err(e) => {
                            tracing::warn!(call_sid = %info.call_sid, error = %e, "recognition failed");
                            stt_failed = Some(match e {
                                crate::speech::SpeechError::Busy => "stt_busy",
                                _ => "stt_failed",
                            });
                        }
                    }
                    Some((text.clone(), started.elapsed(), provider))
                }
                (None, None) => None,
            };
            if let Some((words, stt, provider)) = recognised {
                text = words;
                let msg = ToCall::Recognised {
                    turn,
                    text: text.clone(),
                    stt,
                    provider,
                    partials,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            if let (Some(reason), true) = (stt_failed, dtmf.is_empty()) {
                // The caller said something we could not recognise: ask again rather than
                // leave them in silence (their audio is in the recording).
                // When the recogniser was too busy, say so: the caller was not unclear.
                let say = if reason == "stt_busy" {
                    OVERLOADED_LINE.to_owned()
                } else {
                    info.not_heard_line.clone()
                };
                let reply = Planned {
                    say,
                    action: Action::Continue,
                    fallback: Some(reason.into()),
                    webhook: None,
                };
                emit(&engine, &info, turn, reply, filled.said, &tx).await;
                return;
            }
            if text.is_empty() && dtmf.is_empty() {
                let _ = tx.send(ToCall::Finished { turn }).await;
                return;
            }
            if info.mode == BotMode::Llm {
                converse::run(
                    &engine,
                    &info,
                    turn,
                    &input.history,
                    &text,
                    &dtmf,
                    filled,
                    &tx,
                )
                .await;
                return;
            }
            let suggestion = if info.brain.llm_suggestion() {
                if !stage(&tx, turn, Stage::Llm).await {
                    return;
                }
                let suggestion = covered(
                    converse::suggest(&engine, &info, &input.history, &text, &dtmf),
                    &mut filled,
                    (&engine, &info, turn, &tx),
                )
                .await;
                let Some(suggestion) = suggestion else {
                    return;
                };
                suggestion
            } else {
                None
            };
            let suggested = match suggestion {
                Some((s, timings)) => {
                    if tx.send(ToCall::Llm { turn, timings }).await.is_err() {
                        return;
                    }
                    s
                }
                None => None,
            };
            let (reply, mut fallback, took) = match &info.webhook {
                Some(url) => {
                    if !stage(&tx, turn, Stage::Webhook).await {
                        return;
                    }
                    let asked = covered(
                        ask(
                            &engine,
                            &info,
                            url,
                            turn,
                            &text,
                            &dtmf,
                            suggested.as_deref(),
                            &input.history,
                        ),
                        &mut filled,
                        (&engine, &info, turn, &tx),
                    )
                    .await;
                    let Some(asked) = asked else {
                        return;
                    };
                    asked
                }
                // Not reachable through the API (webhook mode requires one): the model answers.
                None => (
                    Some(webhook::Reply {
                        say: None,
                        action: Action::Continue,
                    }),
                    None,
                    Duration::ZERO,
                ),
            };
            // A transfer only to the numbers the bot declares (toll fraud otherwise).
            let reply = match reply {
                Some(webhook::Reply {
                    action: Action::Transfer(to),
                    ..
                }) if !info.brain.may_transfer_to(to.as_str()) => {
                    tracing::warn!(call_sid = %info.call_sid, turn, to = %to, "webhook asked for a transfer outside transfer_numbers; refused");
                    fallback = Some(TRANSFER_REFUSED.to_owned());
                    Some(webhook::Reply {
                        say: Some(TRANSFER_REFUSED_LINE.to_owned()),
                        action: Action::Continue,
                    })
                }
                other => other,
            };
            let (say, action) = match reply {
                Some(webhook::Reply {
                    say: Some(say),
                    action,
                }) => (say, action),
                Some(webhook::Reply {
                    say: None,
                    action: Action::Continue,
                }) => match suggested {
                    Some(s) => (s, Action::Continue),
                    None => {
                        fallback = Some(webhook::Failure::MissingSay.to_string());
                        (info.fallback_line.clone(), Action::Continue)
                    }
                },
                Some(webhook::Reply { say: None, action }) => (String::new(), action),
                None => (info.fallback_line.clone(), Action::Continue),
            };
            // The business's system keeps failing: hand the caller over, or say goodbye, rather
            // than loop them through apologies until the maximum call length.
            let failed = fallback.as_deref().is_some_and(|f| f != TRANSFER_REFUSED);
            let (say, action) = if failed
                && input.webhook_failures + 1 >= info.webhook_failure_limit
            {
                tracing::warn!(call_sid = %info.call_sid, turn, failures = input.webhook_failures + 1, reason = ?fallback, "the webhook keeps failing; giving up on it");
                fallback = Some(WEBHOOK_UNAVAILABLE.to_owned());
                match info
                    .brain
                    .fallback_number()
                    .and_then(|n| PhoneNumber::parse(n).ok())
                {
                    Some(n) => (GIVE_UP_TRANSFER_LINE.to_owned(), Action::Transfer(n)),
                    None => (GIVE_UP_LINE.to_owned(), Action::Hangup),
                }
            } else {
                (say, action)
            };
            let reply = Planned {
                say,
                action,
                fallback,
                webhook: Some(took),
            };
            emit(&engine, &info, turn, reply, filled.said, &tx).await;
            return;
        }
    };
    speak(&engine, &info, turn, &say, &tx).await;
}

/// Said when the recogniser was too busy to hear the caller at all.
pub const OVERLOADED_LINE: &str =
    "Sorry, I'm a little overloaded right now and missed that. Could you say it again?";

/// A reply decided in full (webhook mode, fallbacks).
struct Planned {
    say: String,
    action: Action,
    fallback: Option<String>,
    webhook: Option<Duration>,
}

/// Speaks a decided reply: announced whole and spoken, or — after a filler began the turn —
/// added as further sentences of the streaming reply.
async fn emit(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    reply: Planned,
    fillers: usize,
    tx: &mpsc::Sender<ToCall>,
) {
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

/// The turn's `fallback` when the webhook failed too many turns in a row and the call was handed
/// to the bot's fallback number or ended.
pub const WEBHOOK_UNAVAILABLE: &str = "webhook_unavailable";
/// What the caller hears then, with a fallback number...
const GIVE_UP_TRANSFER_LINE: &str =
    "I'm sorry, our system is not responding. Let me put you through to someone who can help.";
/// ...and without one.
const GIVE_UP_LINE: &str =
    "I'm sorry, our system is not responding right now. Please call back a little later. Goodbye.";

/// The turn's `fallback` when a webhook asked for a transfer outside the bot's `transfer_numbers`.
pub const TRANSFER_REFUSED: &str = "transfer_refused";
/// What the caller hears instead of that transfer.
const TRANSFER_REFUSED_LINE: &str = "I'm sorry, I can't transfer this call. How else can I help?";

/// Recognises one utterance with the configured recogniser; a cloud recogniser that fails or
/// misses its deadline hands the audio to the local engine, so the words are not lost.
async fn recognise(
    engine: &Engine,
    audio: Vec<i16>,
) -> (Result<String, crate::speech::SpeechError>, &'static str) {
    use crate::speech::Recogniser;
    if let Recogniser::OpenAi(cloud) = &engine.recogniser {
        let tried = tokio::time::timeout(engine.stt_timeout, cloud.transcribe(audio.clone())).await;
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
        engine.stt.transcribe(audio),
    )
    .await
    .unwrap_or(Err(crate::speech::SpeechError::Timeout))
    .map(|t| t.text);
    (local, local_name(engine))
}

/// The local recogniser's label for records and metrics.
pub(super) fn local_name(engine: &Engine) -> &'static str {
    if engine.stt.name().starts_with("whisper") {
        "whisper.cpp"
    } else {
        "instant"
    }
}

/// The webhook's body for caller turn `turn` (no suggestion, no reply yet), stamped now.
pub(super) fn turn_request<'a>(
    info: &'a CallInfo,
    turn: u32,
    text: &'a str,
    dtmf: &'a str,
    history: &'a [HistoryEntry],
) -> TurnRequest<'a> {
    TurnRequest {
        kind: "turn",
        bot_id: info.bot_id.as_str(),
        call_sid: &info.call_sid,
        turn,
        user_text: text,
        dtmf: (!dtmf.is_empty()).then_some(dtmf),
        llm_suggestion: None,
        reply: None,
        history,
        from: &info.from,
        to: &info.to,
        timestamp: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
        goal: &info.goal,
        context: &info.context,
    }
}

/// Tells the actor the turn moved on to `s`; false when the call is gone.
pub(super) async fn stage(tx: &mpsc::Sender<ToCall>, turn: u32, s: Stage) -> bool {
    tx.send(ToCall::Stage { turn, stage: s }).await.is_ok()
}

/// Begins the turn's reply as a streaming one (nothing decided yet: its sentences follow as
/// `Sentence`, its action as `Act`); false when the call is gone.
pub(super) async fn begin_streaming(tx: &mpsc::Sender<ToCall>, turn: u32) -> bool {
    let reply = ToCall::Reply {
        turn,
        say: String::new(),
        action: Action::Continue,
        fallback: None,
        webhook: None,
        sentences: Vec::new(),
    };
    tx.send(reply).await.is_ok()
}

/// Synthesises the reply sentence by sentence, then reports the turn finished.
async fn speak(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    sentences: &[String],
    tx: &mpsc::Sender<ToCall>,
) {
    for (i, s) in sentences.iter().enumerate() {
        if !speak_one(engine, info, turn, i, s, tx).await {
            return;
        }
    }
    let _ = tx.send(ToCall::Finished { turn }).await;
}

/// Synthesises sentence `i` of the reply and streams it to the actor as it arrives; false when
/// the call is gone. A cloud voice that fails (an error answer, no audio within the deadline, a
/// stream cut) hands the sentence to the local voice, so a provider outage never means silence.
pub(super) async fn speak_one(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    i: usize,
    s: &str,
    tx: &mpsc::Sender<ToCall>,
) -> bool {
    let voices = &engine.voices;
    let provider = info.voice.provider();
    let cloud = provider != VoiceProvider::Local;
    let failure = match voices.engine(provider) {
        Some(tts) => {
            let deadline = if cloud {
                voices.timeout
            } else {
                LOCAL_TTS_DEADLINE
            };
            match play(tts, s, info.voice.name(), deadline, turn, i, tx).await {
                Played::Done => None,
                Played::Gone => return false,
                Played::Failed(e) => Some(e),
            }
        }
        // Accepted by an API that declares the provider, but this service has no key for it.
        None => Some(crate::speech::SpeechError::Unavailable(format!(
            "{} is not configured in this service",
            provider.as_str()
        ))),
    };
    if let Some(e) = failure {
        if cloud {
            tracing::warn!(call_sid = %info.call_sid, turn, sentence = i, provider = provider.as_str(), error = %e, "voice provider failed; the local voice speaks the sentence");
            let fallback = ToCall::TtsFallback {
                turn,
                sentence: i,
                provider: provider.as_str(),
                error: e.to_string(),
            };
            if tx.send(fallback).await.is_err() {
                return false;
            }
            let local = voices.local.clone();
            match play(&local, s, FALLBACK_VOICE, LOCAL_TTS_DEADLINE, turn, i, tx).await {
                Played::Done => {}
                Played::Gone => return false,
                Played::Failed(e) => {
                    if !failed(tx, turn, i, e).await {
                        return false;
                    }
                }
            }
        } else if !failed(tx, turn, i, e).await {
            return false;
        }
    }
    tx.send(ToCall::SentenceDone { turn, sentence: i })
        .await
        .is_ok()
}

/// Deadline for the local synthesiser (a subprocess: normally 10-30 ms a phrase).
const LOCAL_TTS_DEADLINE: Duration = Duration::from_secs(10);

enum Played {
    Done,
    Gone,
    Failed(crate::speech::SpeechError),
}

async fn failed(
    tx: &mpsc::Sender<ToCall>,
    turn: u32,
    i: usize,
    e: crate::speech::SpeechError,
) -> bool {
    let msg = ToCall::SpeechFailed {
        turn,
        sentence: i,
        error: e.to_string(),
    };
    tx.send(msg).await.is_ok()
}

/// Streams one synthesis to the actor: the first bytes and every later gap within `deadline`.
async fn play(
    tts: &Arc<dyn TextToSpeech>,
    text: &str,
    voice: &str,
    deadline: Duration,
    turn: u32,
    sentence: usize,
    tx: &mpsc::Sender<ToCall>,
) -> Played {
    use crate::speech::SpeechError;
    use futures_util::StreamExt;
    let started = Instant::now();
    let provider = tts.name();
    let mut stream = match tokio::time::timeout(deadline, tts.stream(text, voice)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Played::Failed(e),
        Err(_) => return Played::Failed(SpeechError::Timeout),
    };
    loop {
        match tokio::time::timeout(deadline, stream.next()).await {
            Err(_) => return Played::Failed(SpeechError::Timeout),
            Ok(None) => return Played::Done,
            Ok(Some(Err(e))) => return Played::Failed(e),
            Ok(Some(Ok(chunk))) if chunk.is_empty() => {}
            Ok(Some(Ok(ulaw))) => {
                let msg = ToCall::Audio {
                    turn,
                    sentence,
                    ulaw,
                    tts: started.elapsed(),
                    provider,
                };
                if tx.send(msg).await.is_err() {
                    return Played::Gone;
                }
            }
        }
    }
}

/// The webhook round, with the per-bot rate limit inside the same deadline.
#[allow(clippy::too_many_arguments)]
async fn ask(
    engine: &Engine,
    info: &CallInfo,
    url: &url::Url,
    turn: u32,
    text: &str,
    dtmf: &str,
    suggestion: Option<&str>,
    history: &[HistoryEntry],
) -> (Option<webhook::Reply>, Option<String>, Duration) {
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
                    return (None, Some("rate_limited".into()), started.elapsed());
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
        ..turn_request(info, turn, text, dtmf, history)
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
        Ok(r) => (Some(r), None, started.elapsed()),
        Err(f) => {
            tracing::warn!(call_sid = %info.call_sid, turn, reason = %f, "webhook failed; speaking the fallback line");
            (None, Some(f.to_string()), started.elapsed())
        }
    }
}
