//! The language model in a turn. Webhook mode: `suggest` asks for a short reply within the LLM
//! deadline, for the webhook request's `llm_suggestion`. LLM mode: `run` streams the model's reply
//! into speech — each sentence goes to synthesis as soon as it is complete, while the model
//! writes the next — and serves tool calls: `end_call` and `transfer_call` here, the bot's own
//! tools through its webhook (signed `tool_call` requests). A failed model never means silence:
//! the fallback line is spoken and the reason recorded.

use super::Engine;
use super::filler::{Answer, Fillers, until_answered};
use super::speak::{begin_streaming, speak_one, stage};
use super::tools;
use super::turn::{CallInfo, Fallback, Stage, ToCall};
use super::webhook::{Action, HistoryEntry, TurnRequest};
use crate::llm::sentences::SentenceStream;
use crate::llm::{ChatMessage, ChatRequest, Llm, LlmEvent, LlmStream, ToolCall, prompt};
use callbot_core::store::LlmTimings;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Tokens for a webhook-mode suggestion (one or two sentences).
const SUGGESTION_TOKENS: u32 = 60;
/// Tokens for an LLM-mode reply round.
const REPLY_TOKENS: u32 = 160;
/// Model rounds per turn (each tool call costs one).
const MAX_ROUNDS: usize = 4;
const GOODBYE: &str = "Thank you for calling. Goodbye!";
const TRANSFERRING: &str = "Please hold while I transfer you.";

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A suggestion for the webhook, with its timings; `None` when no model is configured.
pub(super) async fn suggest(
    engine: &Engine,
    info: &CallInfo,
    history: &[HistoryEntry],
    text: &str,
    dtmf: &str,
) -> Option<(Option<String>, LlmTimings)> {
    let llm = engine.llm.as_ref()?;
    let request = ChatRequest {
        messages: prompt::messages(
            info.system_prompt.clone(),
            history,
            &HistoryEntry::caller_words(text, dtmf),
            facts(engine, info),
        ),
        tools: Vec::new(),
        max_tokens: SUGGESTION_TOKENS,
        temperature: 0.0,
    };
    let started = Instant::now();
    let mut t = LlmTimings::default();
    let collect = async {
        let mut stream = llm.chat(&request).await?;
        let mut out = String::new();
        while let Some(ev) = stream.next().await {
            match ev? {
                LlmEvent::Text(s) => {
                    if t.ttft_ms.is_none() {
                        t.ttft_ms = Some(ms(started.elapsed()));
                    }
                    out.push_str(&s);
                }
                LlmEvent::Usage(u) => usage(&mut t, u),
                LlmEvent::ToolCall(_) => {}
                LlmEvent::Done(_) => break,
            }
        }
        Ok::<_, crate::llm::LlmError>(out)
    };
    let deadline = info.suggestion_deadline.unwrap_or(engine.llm_timeout);
    let result = tokio::time::timeout(deadline, collect).await;
    t.total_ms = ms(started.elapsed());
    let text = match result {
        Ok(Ok(s)) => {
            let s = crate::llm::sentences::clean(&s);
            if s.is_empty() {
                t.error = Some("llm_empty".into());
                None
            } else {
                Some(s)
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(call_sid = %info.call_sid, error = ?e, "LLM suggestion failed");
            t.error = Some(e.reason());
            None
        }
        Err(_) => {
            t.error = Some("llm_timeout".into());
            None
        }
    };
    Some((text, t))
}

/// The bot's facts, repeated with the caller's words for the small embedded model.
fn facts<'a>(engine: &Engine, info: &'a CallInfo) -> Option<&'a str> {
    engine.llm_small.then_some(info.context.as_str())
}

fn usage(t: &mut LlmTimings, u: crate::llm::Usage) {
    t.tokens_in = Some(t.tokens_in.unwrap_or(0) + u.prompt_tokens);
    t.tokens_out = Some(t.tokens_out.unwrap_or(0) + u.completion_tokens);
    if let Some(c) = u.cached_tokens {
        t.cached_tokens = Some(t.cached_tokens.unwrap_or(0) + c);
    }
    if let Some(q) = u.queue_ms {
        t.queue_ms = Some(t.queue_ms.unwrap_or(0) + q);
    }
}

/// Reads one model round: text goes out sentence by sentence; tool calls are returned.
struct Round {
    calls: Vec<ToolCall>,
    text: String,
}

/// Why a round ended early.
enum RoundError {
    /// The call is gone (the actor stopped listening).
    Gone,
    /// The model failed: `llm_timeout`, `llm_http_500`, ...
    Failed(String),
}

/// LLM mode: the model's reply, streamed into speech, with tools. Reports `Finished` at the end.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    history: &[HistoryEntry],
    text: &str,
    dtmf: &str,
    mut fillers: Fillers,
    tx: &mpsc::Sender<ToCall>,
) {
    // Fillers said already (slow recognition) began the (streaming) reply.
    let first_sentence = fillers.said;
    if first_sentence == 0 && !begin_streaming(tx, turn).await {
        return;
    }
    let (say_tx, mut say_rx) = mpsc::channel::<String>(16);
    let answer = Answer::default();
    let filling = say_tx.clone();
    let produce = async {
        // Owned here: dropped with this block, so synthesis sees the queue end.
        let filling = filling;
        // Until the model's first sentence, the fillers that fall due (the lines go through
        // the same queue as the model's sentences: numbered, synthesised and heard in order).
        let model = produce(engine, info, turn, history, text, dtmf, tx, say_tx, &answer);
        let filling = until_answered(&mut fillers, &answer, (&info.call_sid, turn, tx, &filling));
        tokio::select! {
            spoken = model => spoken,
            () = filling => None,
        }
    };
    // Synthesis runs beside generation: sentence n plays while the model writes n + 1.
    let synthesise = async {
        let mut i = first_sentence;
        while let Some(s) = say_rx.recv().await {
            if !speak_one(engine, info, turn, i, &s, tx).await {
                return;
            }
            i += 1;
        }
    };
    let (outcome, ()) = tokio::join!(produce, synthesise);
    let Some(spoken) = outcome else {
        return;
    };
    let _ = tx.send(ToCall::Finished { turn }).await;
    // The webhook hears about the turn afterwards; its answer cannot change what was said.
    if let Some(url) = info.webhook.clone() {
        let (engine, info, history) = (engine.clone(), info.clone(), history.to_vec());
        let (user_text, dtmf) = (text.to_owned(), dtmf.to_owned());
        // One of the call's tasks: delivered if it can be within the grace at the call's end.
        let tasks = info.tasks.clone();
        tasks.spawn(async move {
            let req = TurnRequest {
                reply: Some(&spoken),
                ..info.turn_request(turn, &user_text, &dtmf, &history)
            };
            let idem = format!("{}:{}", info.call_sid, turn);
            if let Err(f) = tools::post(&engine, &info, &url, &req, &idem).await {
                tracing::warn!(call_sid = %info.call_sid, turn, reason = %f, "turn notice failed");
            }
        });
    }
}

/// The model side of `run`: rounds of generation and tool calls. Returns what was said (the action
/// goes to the actor as `Act`), or `None` when the call is gone.
#[allow(clippy::too_many_arguments)]
/// What is said when the model said nothing: a goodbye, a hand-over line, or the fallback line
/// (an empty answer is then the turn's fallback).
fn closing_line(info: &CallInfo, action: &Action, fallback: &mut Option<Fallback>) -> String {
    match action {
        Action::Hangup => GOODBYE.to_owned(),
        Action::Transfer(_) => TRANSFERRING.to_owned(),
        Action::Continue => {
            fallback.get_or_insert_with(|| Fallback::Llm("llm_empty".into()));
            info.fallback_line.clone()
        }
    }
}

/// The model's reply as it is said: its timings, the words so far, and where sentences go.
struct Said<'a> {
    started: Instant,
    t: LlmTimings,
    spoken: String,
    turn: u32,
    tx: &'a mpsc::Sender<ToCall>,
    say_tx: mpsc::Sender<String>,
    answer: &'a Answer,
}

impl Said<'_> {
    /// Sends a sentence to the actor (history, barge-in) and to synthesis; false when the call
    /// is gone.
    async fn say(&mut self, s: String) -> bool {
        if self.t.first_sentence_ms.is_none() {
            self.t.first_sentence_ms = Some(ms(self.started.elapsed()));
        }
        if !self.spoken.is_empty() {
            self.spoken.push(' ');
        }
        self.spoken.push_str(&s);
        self.answer.say(self.turn, s, self.tx, &self.say_tx).await
    }

    fn first_token(&mut self) {
        if self.t.ttft_ms.is_none() {
            self.t.ttft_ms = Some(ms(self.started.elapsed()));
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn produce(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    history: &[HistoryEntry],
    text: &str,
    dtmf: &str,
    tx: &mpsc::Sender<ToCall>,
    say_tx: mpsc::Sender<String>,
    answer: &Answer,
) -> Option<String> {
    let mut said = Said {
        started: Instant::now(),
        t: LlmTimings::default(),
        spoken: String::new(),
        turn,
        tx,
        say_tx,
        answer,
    };
    let (action, fallback) = match &engine.llm {
        None => {
            if !said.say(info.fallback_line.clone()).await {
                return None;
            }
            (Action::Continue, Some(Fallback::Llm("llm_off".into())))
        }
        Some(llm) => {
            let messages = prompt::messages(
                info.system_prompt.clone(),
                history,
                &HistoryEntry::caller_words(text, dtmf),
                facts(engine, info),
            );
            let (action, mut fallback) = rounds(engine, llm, info, messages, &mut said).await?;
            if said.spoken.is_empty() {
                let line = closing_line(info, &action, &mut fallback);
                if !said.say(line).await {
                    return None;
                }
            }
            (action, fallback)
        }
    };
    let Said {
        started,
        mut t,
        spoken,
        say_tx,
        ..
    } = said;
    t.total_ms = ms(started.elapsed());
    drop(say_tx);
    if engine.llm.is_some() && tx.send(ToCall::Llm { turn, timings: t }).await.is_err() {
        return None;
    }
    let act = ToCall::Act {
        turn,
        action,
        fallback,
    };
    tx.send(act).await.ok()?;
    Some(spoken)
}

/// Up to MAX_ROUNDS of the model: each streams its words into speech; its tool calls are
/// answered (`end_call` and `transfer_call` choose the action, the bot's tools go to its
/// webhook) and the next round reads the results. A failed round with nothing said yet says
/// the fallback line. Returns the action and the fallback; `None` when the call is gone.
async fn rounds(
    engine: &Engine,
    llm: &Arc<dyn Llm>,
    info: &CallInfo,
    mut messages: Vec<ChatMessage>,
    said: &mut Said<'_>,
) -> Option<(Action, Option<Fallback>)> {
    let (turn, tx) = (said.turn, said.tx);
    let offered = tools::offered(info);
    let mut action = Action::Continue;
    let mut ending = false;
    for _ in 0..MAX_ROUNDS {
        let request = ChatRequest {
            messages: messages.clone(),
            tools: if ending { Vec::new() } else { offered.clone() },
            max_tokens: REPLY_TOKENS,
            temperature: 0.0,
        };
        if !stage(tx, turn, Stage::Llm).await {
            return None;
        }
        // The answer's headers within the same deadline as each of its events: a model that
        // accepts the connection and never answers is a failed one.
        let round = match tokio::time::timeout(engine.llm_timeout, llm.chat(&request)).await {
            Ok(Ok(stream)) => read_round(engine, stream, said).await,
            Ok(Err(e)) => Err(RoundError::Failed(e.reason())),
            Err(_) => Err(RoundError::Failed("llm_timeout".into())),
        };
        let round = match round {
            Ok(r) => r,
            Err(RoundError::Gone) => return None,
            Err(RoundError::Failed(reason)) => {
                tracing::warn!(call_sid = %info.call_sid, turn, %reason, "LLM reply failed");
                said.t.error = Some(reason.clone());
                if !said.spoken.is_empty() {
                    return Some((action, None));
                }
                // Never dead air: the fallback line, and the reason on the turn.
                if !said.say(info.fallback_line.clone()).await {
                    return None;
                }
                return Some((action, Some(Fallback::Llm(reason))));
            }
        };
        if round.calls.is_empty() || ending {
            break;
        }
        said.t.tool_calls += round.calls.len() as u32;
        said.t.tools.extend(round.calls.iter().map(|c| {
            callbot_core::store::ToolUse {
                name: c.name.clone(),
                arguments: serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone())),
            }
        }));
        messages.push(ChatMessage::Assistant {
            content: (!round.text.is_empty()).then(|| round.text.clone()),
            tool_calls: round.calls.clone(),
        });
        for call in &round.calls {
            let content = match call.name.as_str() {
                "end_call" | "transfer_call" => {
                    let (result, chosen) = tools::call_action(info, call);
                    if let Some(a) = chosen {
                        action = a;
                        ending = true;
                    }
                    result
                }
                _ => {
                    if !stage(tx, turn, Stage::Tool(call.name.clone())).await {
                        return None;
                    }
                    tools::call_tool(engine, info, turn, call).await
                }
            };
            let call_id = call.id.clone();
            messages.push(ChatMessage::Tool { call_id, content });
        }
        // The goodbye (or hand-over line) was already said: end now.
        if ending && !round.text.is_empty() {
            break;
        }
    }
    Some((action, None))
}

async fn read_round(
    engine: &Engine,
    mut stream: LlmStream,
    said: &mut Said<'_>,
) -> Result<Round, RoundError> {
    let mut splitter = SentenceStream::default();
    let mut round = Round {
        calls: Vec::new(),
        text: String::new(),
    };
    loop {
        // Each event must come within the deadline: a stalled model is a failed one.
        let ev = match tokio::time::timeout(engine.llm_timeout, stream.next()).await {
            Err(_) => return Err(RoundError::Failed("llm_timeout".into())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(RoundError::Failed(e.reason())),
            Ok(Some(Ok(ev))) => ev,
        };
        match ev {
            LlmEvent::Text(s) => {
                said.first_token();
                round.text.push_str(&s);
                for sentence in splitter.push(&s) {
                    if !said.say(sentence).await {
                        return Err(RoundError::Gone);
                    }
                }
            }
            LlmEvent::ToolCall(c) => {
                said.first_token();
                round.calls.push(c);
            }
            LlmEvent::Usage(u) => usage(&mut said.t, u),
            LlmEvent::Done(_) => break,
        }
    }
    if let Some(rest) = splitter.finish()
        && !said.say(rest).await
    {
        return Err(RoundError::Gone);
    }
    Ok(round)
}
