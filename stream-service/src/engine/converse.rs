//! The language model in a turn. Webhook mode: `suggest` asks for a short reply within the LLM
//! deadline, for the webhook request's `llm_suggestion`. LLM mode: `run` streams the model's reply
//! into speech — each sentence goes to synthesis as soon as it is complete, while the model
//! writes the next — and serves tool calls: `end_call` and `transfer_call` here, the bot's own
//! tools through its webhook (signed `tool_call` requests). A failed model never means silence:
//! the fallback line is spoken and the reason recorded.

use super::Engine;
use super::filler::{Answer, Fillers, until_answered};
use super::speak::{begin_streaming, speak_one, stage};
use super::turn::{CallInfo, Fallback, Stage, ToCall};
use super::webhook::{self, Action, HistoryEntry, TurnRequest};
use crate::llm::sentences::SentenceStream;
use crate::llm::{ChatMessage, ChatRequest, LlmEvent, LlmStream, ToolCall, ToolSpec, prompt};
use callbot_core::domain::PhoneNumber;
use callbot_core::store::LlmTimings;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
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
    let result = tokio::time::timeout(engine.llm_timeout, collect).await;
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

/// The tools offered to the model: the built-ins, then the bot's own.
fn tools(info: &CallInfo) -> Vec<ToolSpec> {
    let mut out = vec![ToolSpec {
        name: "end_call".into(),
        description: "End the phone call, after saying goodbye in the same reply.".into(),
        parameters: json!({"type": "object", "properties": {
            "reason": {"type": "string", "description": "Why the call ends"}}}),
    }];
    if !info.brain.transfer_numbers().is_empty() {
        let allowed: Vec<&str> = info
            .brain
            .transfer_numbers()
            .iter()
            .map(|t| t.as_str())
            .collect();
        out.push(ToolSpec {
            name: "transfer_call".into(),
            description: format!(
                "Transfer the caller to a person. Allowed numbers: {}.",
                allowed.join(", ")
            ),
            parameters: json!({"type": "object", "properties": {
                "number": {"type": "string", "description": "E.164 number, e.g. +15551234567"}},
                "required": ["number"]}),
        });
    }
    out.extend(info.brain.tools().iter().map(|t| ToolSpec {
        name: t.name().to_owned(),
        description: t.description().to_owned(),
        parameters: t.parameters().clone(),
    }));
    out
}

/// A signed request to the bot's webhook within the turn deadline.
async fn post(
    engine: &Engine,
    info: &CallInfo,
    url: &url::Url,
    body: &impl Serialize,
    idem: &str,
) -> Result<bytes::Bytes, webhook::Failure> {
    webhook::post_signed(
        engine.outbound(info.policy),
        url,
        &info.webhook_secret,
        info.policy,
        body,
        idem,
        info.webhook_timeout,
    )
    .await
}

/// Signed `tool_call` request to the bot's webhook.
#[derive(Debug, Serialize)]
struct ToolRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    bot_id: &'a str,
    call_sid: &'a str,
    turn: u32,
    name: &'a str,
    arguments: Value,
    timestamp: String,
}

/// Runs one of the bot's tools through its webhook; the model gets `result`, or an error.
async fn call_tool(engine: &Engine, info: &CallInfo, turn: u32, call: &ToolCall) -> String {
    let Some(url) = &info.webhook else {
        return json!({"error": "this bot has no webhook to run tools"}).to_string();
    };
    let arguments: Value = match serde_json::from_str(&call.arguments) {
        Ok(v) => v,
        Err(_) => return json!({"error": "the arguments were not valid JSON"}).to_string(),
    };
    let req = ToolRequest {
        kind: "tool_call",
        bot_id: info.bot_id.as_str(),
        call_sid: &info.call_sid,
        turn,
        name: &call.name,
        arguments,
        timestamp: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
    };
    let idem = format!("{}:{}:{}", info.call_sid, turn, call.id);
    let answer = post(engine, info, url, &req, &idem).await;
    match answer {
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match v.get("result") {
                Some(r) => r.to_string(),
                None => json!({"error": v.get("error").cloned().unwrap_or(json!("the tool gave no result"))}).to_string(),
            },
            Err(_) => json!({"error": "the tool's answer was not JSON"}).to_string(),
        },
        Err(f) => {
            tracing::warn!(call_sid = %info.call_sid, tool = %call.name, reason = %f, "tool call failed");
            json!({"error": format!("the tool failed ({f})")}).to_string()
        }
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
            if let Err(f) = post(&engine, &info, &url, &req, &idem).await {
                tracing::warn!(call_sid = %info.call_sid, turn, reason = %f, "turn notice failed");
            }
        });
    }
}

/// The model side of `run`: rounds of generation and tool calls. Returns what was said (the action
/// goes to the actor as `Act`), or `None` when the call is gone.
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
    let started = Instant::now();
    let mut t = LlmTimings::default();
    let mut spoken = String::new();
    let mut action = Action::Continue;
    let mut fallback: Option<Fallback> = None;
    // Sends a sentence to the actor (history, barge-in) and to synthesis.
    let say = |s: String, spoken: &mut String, t: &mut LlmTimings| {
        if t.first_sentence_ms.is_none() {
            t.first_sentence_ms = Some(ms(started.elapsed()));
        }
        if !spoken.is_empty() {
            spoken.push(' ');
        }
        spoken.push_str(&s);
        let (tx, say_tx) = (tx.clone(), say_tx.clone());
        async move { answer.say(turn, s, &tx, &say_tx).await }
    };
    match &engine.llm {
        None => {
            fallback = Some(Fallback::Llm("llm_off".into()));
            if !say(info.fallback_line.clone(), &mut spoken, &mut t).await {
                return None;
            }
        }
        Some(llm) => {
            let mut messages = prompt::messages(
                info.system_prompt.clone(),
                history,
                &HistoryEntry::caller_words(text, dtmf),
            );
            let offered = tools(info);
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
                // The answer's headers within the same deadline as each of its events: a model
                // that accepts the connection and never answers is a failed one.
                let round = match tokio::time::timeout(engine.llm_timeout, llm.chat(&request)).await
                {
                    Ok(Ok(stream)) => {
                        read_round(engine, stream, started, &mut t, &mut spoken, &say).await
                    }
                    Ok(Err(e)) => Err(RoundError::Failed(e.reason())),
                    Err(_) => Err(RoundError::Failed("llm_timeout".into())),
                };
                let round = match round {
                    Ok(r) => r,
                    Err(RoundError::Gone) => return None,
                    Err(RoundError::Failed(reason)) => {
                        tracing::warn!(call_sid = %info.call_sid, turn, %reason, "LLM reply failed");
                        t.error = Some(reason.clone());
                        if spoken.is_empty() {
                            // Never dead air: the fallback line, and the reason on the turn.
                            fallback = Some(Fallback::Llm(reason));
                            if !say(info.fallback_line.clone(), &mut spoken, &mut t).await {
                                return None;
                            }
                        }
                        break;
                    }
                };
                if round.calls.is_empty() || ending {
                    break;
                }
                t.tool_calls += round.calls.len() as u32;
                messages.push(ChatMessage::Assistant {
                    content: (!round.text.is_empty()).then(|| round.text.clone()),
                    tool_calls: round.calls.clone(),
                });
                for call in &round.calls {
                    let result = match call.name.as_str() {
                        "end_call" => {
                            action = Action::Hangup;
                            ending = true;
                            json!({"result": "The call ends after this reply."}).to_string()
                        }
                        "transfer_call" => {
                            let number = serde_json::from_str::<Value>(&call.arguments)
                                .ok()
                                .and_then(|v| v["number"].as_str().map(str::to_owned))
                                .unwrap_or_default();
                            match PhoneNumber::parse(&number) {
                                Ok(n) if info.brain.may_transfer_to(n.as_str()) => {
                                    action = Action::Transfer(n);
                                    ending = true;
                                    json!({"result": "Transferring after this reply."}).to_string()
                                }
                                _ => json!({"error": format!("{number:?} is not a number this bot may transfer to")}).to_string(),
                            }
                        }
                        _ => {
                            if !stage(tx, turn, Stage::Tool(call.name.clone())).await {
                                return None;
                            }
                            call_tool(engine, info, turn, call).await
                        }
                    };
                    messages.push(ChatMessage::Tool {
                        call_id: call.id.clone(),
                        content: result,
                    });
                }
                // The goodbye (or hand-over line) was already said: end now.
                if ending && !round.text.is_empty() {
                    break;
                }
            }
            if spoken.is_empty() {
                let line = match action {
                    Action::Hangup => GOODBYE.to_owned(),
                    Action::Transfer(_) => TRANSFERRING.to_owned(),
                    Action::Continue => {
                        fallback.get_or_insert_with(|| Fallback::Llm("llm_empty".into()));
                        info.fallback_line.clone()
                    }
                };
                if !say(line, &mut spoken, &mut t).await {
                    return None;
                }
            }
        }
    }
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
    if tx.send(act).await.is_err() {
        return None;
    }
    Some(spoken)
}

/// Reads one streamed round.
async fn read_round<F, Fut>(
    engine: &Engine,
    mut stream: LlmStream,
    started: Instant,
    t: &mut LlmTimings,
    spoken: &mut String,
    say: &F,
) -> Result<Round, RoundError>
where
    F: Fn(String, &mut String, &mut LlmTimings) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
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
                if t.ttft_ms.is_none() {
                    t.ttft_ms = Some(ms(started.elapsed()));
                }
                round.text.push_str(&s);
                for sentence in splitter.push(&s) {
                    if !say(sentence, spoken, t).await {
                        return Err(RoundError::Gone);
                    }
                }
            }
            LlmEvent::ToolCall(c) => {
                if t.ttft_ms.is_none() {
                    t.ttft_ms = Some(ms(started.elapsed()));
                }
                round.calls.push(c);
            }
            LlmEvent::Usage(u) => usage(t, u),
            LlmEvent::Done(_) => break,
        }
    }
    if let Some(rest) = splitter.finish()
        && !say(rest, spoken, t).await
    {
        return Err(RoundError::Gone);
    }
    Ok(round)
}
