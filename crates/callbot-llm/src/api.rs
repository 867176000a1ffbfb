//! The OpenAI-compatible HTTP surface of the worker: `POST /v1/chat/completions` (streamed as
//! Server-Sent Events ending in `data: [DONE]`, or one JSON answer), `GET /v1/models`, `GET /healthz`.
//! Errors use OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.

use crate::engine::{Busy, Engine, Finish, Job, JobError, Piece, Stats, Turn};
use crate::tools::{self, Shape};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Instant;
use tokio::sync::mpsc;

/// Largest `max_tokens` a request may ask for.
const MAX_TOKENS: u32 = 1024;
const DEFAULT_MAX_TOKENS: u32 = 256;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(engine)
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    /// llama-server's extension; default 1.1.
    repeat_penalty: Option<f32>,
    stop: Option<Stop>,
    #[serde(default)]
    tools: Vec<Value>,
    tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ToolCallIn {
    function: FunctionIn,
}

#[derive(Debug, Deserialize)]
struct FunctionIn {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"message": message.into(), "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        message,
    )
}

async fn models(State(engine): State<Engine>) -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": engine.model_name, "object": "model", "created": 0, "owned_by": "callbot"}
    ]}))
}

/// The request as the model thread takes it: text messages, tools described in the system prompt.
/// Fails with the reason, for a 400.
fn flatten(req: &ChatRequest) -> Result<Vec<Turn>, String> {
    if req.messages.is_empty() {
        return Err("messages must not be empty".into());
    }
    let offer_tools =
        !req.tools.is_empty() && req.tool_choice.as_ref().and_then(Value::as_str) != Some("none");
    let mut out: Vec<Turn> = Vec::with_capacity(req.messages.len() + 1);
    for m in &req.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => return Err(format!("unknown role {other:?}")),
        };
        let mut content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(p)) => p
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if let Some(calls) = &m.tool_calls {
            for c in calls {
                content.push_str(&tools::render_call(&c.function.name, &c.function.arguments));
            }
        }
        out.push(Turn {
            role: role.to_owned(),
            content,
        });
    }
    if offer_tools {
        let desc = tools::describe(&req.tools);
        match out.first_mut() {
            Some(first) if first.role == "system" => {
                first.content.push_str("\n\n");
                first.content.push_str(&desc);
            }
            _ => out.insert(
                0,
                Turn {
                    role: "system".into(),
                    content: desc,
                },
            ),
        }
    }
    Ok(out)
}

async fn chat(
    State(engine): State<Engine>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return invalid(e.body_text()),
    };
    let messages = match flatten(&req) {
        Ok(m) => m,
        Err(why) => return invalid(why),
    };
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 || max_tokens > MAX_TOKENS {
        return invalid(format!("max_tokens must be 1-{MAX_TOKENS}"));
    }
    let temperature = req.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return invalid("temperature must be 0-2");
    }
    let frequency_penalty = req.frequency_penalty.unwrap_or(0.0);
    let presence_penalty = req.presence_penalty.unwrap_or(0.0);
    if !(-2.0..=2.0).contains(&frequency_penalty) || !(-2.0..=2.0).contains(&presence_penalty) {
        return invalid("frequency_penalty and presence_penalty must be -2 to 2");
    }
    let repeat_penalty = req.repeat_penalty.unwrap_or(1.1);
    if !(0.5..=2.0).contains(&repeat_penalty) {
        return invalid("repeat_penalty must be 0.5-2");
    }
    let stop = match req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let (tx, rx) = mpsc::channel(64);
    let job = Job {
        messages,
        max_tokens,
        temperature,
        repeat_penalty,
        frequency_penalty,
        presence_penalty,
        stop,
        out: tx,
        queued: Instant::now(),
    };
    if engine.submit(job) == Err(Busy) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            "the local model is busy; try again",
        );
    }
    let reply = Reply {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: engine.model_name.clone(),
        tools: !req.tools.is_empty(),
    };
    if req.stream {
        let usage = req.stream_options.is_some_and(|o| o.include_usage);
        stream(reply, rx, usage).into_response()
    } else {
        whole(reply, rx).await
    }
}

struct Reply {
    id: String,
    created: u64,
    model: String,
    tools: bool,
}

impl Reply {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }
}

fn usage(s: &Stats) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens},
    })
}

/// llama-server's `timings` object (milliseconds), which clients may read for latency figures.
fn timings(s: &Stats) -> Value {
    json!({
        "queue_ms": s.queue.as_secs_f64() * 1e3,
        "prompt_n": s.prompt_tokens - s.cached_tokens,
        "prompt_ms": s.prompt_eval.as_secs_f64() * 1e3,
        "cache_n": s.cached_tokens,
        "predicted_n": s.completion_tokens,
        "predicted_ms": s.generation.as_secs_f64() * 1e3,
    })
}

fn finish_reason(s: &Stats, tool_call: bool) -> &'static str {
    match (tool_call, s.finish) {
        (true, _) => "tool_calls",
        (false, Finish::Stop) => "stop",
        (false, Finish::Length) => "length",
    }
}

fn job_error(e: &JobError) -> (StatusCode, &'static str, &'static str) {
    match e {
        JobError::ContextLength { .. } => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        JobError::Prompt(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
        ),
        JobError::Model(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "model_error",
        ),
    }
}

/// Splits streamed text into what may be shown now and, when tools were offered, a tool call.
#[derive(Debug, Default)]
struct Assembler {
    tools: bool,
    text: String,
    shown: usize,
}

impl Assembler {
    fn push(&mut self, piece: &str) -> Option<String> {
        self.text.push_str(piece);
        let show = !self.tools || tools::shape(&self.text) == Shape::Text;
        if show && self.shown < self.text.len() {
            let out = self.text[self.shown..].to_owned();
            self.shown = self.text.len();
            return Some(out);
        }
        None
    }

    /// The text not shown yet, or the tool call the reply turned out to be.
    fn finish(&mut self) -> (Option<String>, Option<(String, String)>) {
        if self.tools
            && tools::shape(&self.text) == Shape::ToolCall
            && let Some(call) = tools::parse(&self.text)
        {
            return (None, Some(call));
        }
        let rest = self.text[self.shown..].to_owned();
        self.shown = self.text.len();
        ((!rest.is_empty()).then_some(rest), None)
    }
}

fn tool_call_json(name: &str, args: &str) -> Value {
    json!({"id": format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
           "type": "function", "function": {"name": name, "arguments": args}})
}

async fn whole(reply: Reply, mut rx: mpsc::Receiver<Piece>) -> Response {
    let mut asm = Assembler {
        tools: reply.tools,
        ..Assembler::default()
    };
    while let Some(p) = rx.recv().await {
        match p {
            Piece::Text(t) => {
                asm.push(&t);
            }
            Piece::Failed(e) => {
                let (status, kind, code) = job_error(&e);
                return error(status, kind, code, e.to_string());
            }
            Piece::Done(stats) => {
                let (_, call) = asm.finish();
                let message = match &call {
                    Some((name, args)) => json!({"role": "assistant", "content": null,
                                                 "tool_calls": [tool_call_json(name, args)]}),
                    None => json!({"role": "assistant", "content": asm.text}),
                };
                return Json(json!({
                    "id": reply.id, "object": "chat.completion", "created": reply.created,
                    "model": reply.model,
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": finish_reason(&stats, call.is_some())}],
                    "usage": usage(&stats), "timings": timings(&stats),
                }))
                .into_response();
            }
        }
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "model_error",
        "the model thread stopped",
    )
}

fn stream(
    reply: Reply,
    mut rx: mpsc::Receiver<Piece>,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (tx, events) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let ev = |v: Value| Event::default().data(v.to_string());
        let mut asm = Assembler {
            tools: reply.tools,
            ..Assembler::default()
        };
        let first = reply.chunk(json!({"role": "assistant", "content": ""}), None);
        if tx.send(ev(first)).await.is_err() {
            return;
        }
        while let Some(p) = rx.recv().await {
            match p {
                Piece::Text(t) => {
                    if let Some(show) = asm.push(&t) {
                        let c = reply.chunk(json!({"content": show}), None);
                        if tx.send(ev(c)).await.is_err() {
                            return; // the client went away: dropping `rx` stops generation
                        }
                    }
                }
                Piece::Failed(e) => {
                    let (_, kind, code) = job_error(&e);
                    let body = json!({"error": {"message": e.to_string(), "type": kind, "param": null, "code": code}});
                    let _ = tx.send(ev(body)).await;
                    break;
                }
                Piece::Done(stats) => {
                    let (rest, call) = asm.finish();
                    if let Some(rest) = rest {
                        let _ = tx
                            .send(ev(reply.chunk(json!({"content": rest}), None)))
                            .await;
                    }
                    if let Some((name, args)) = &call {
                        let mut c = tool_call_json(name, args);
                        c["index"] = json!(0);
                        let d = json!({"tool_calls": [c]});
                        let _ = tx.send(ev(reply.chunk(d, None))).await;
                    }
                    let last = reply.chunk(json!({}), Some(finish_reason(&stats, call.is_some())));
                    let _ = tx.send(ev(last)).await;
                    if include_usage {
                        let u = json!({"id": reply.id, "object": "chat.completion.chunk",
                                       "created": reply.created, "model": reply.model, "choices": [],
                                       "usage": usage(&stats), "timings": timings(&stats)});
                        let _ = tx.send(ev(u)).await;
                    }
                    break;
                }
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    let s = futures_util::stream::unfold(events, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    });
    Sse::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_holds_back_possible_tool_calls() {
        let mut a = Assembler {
            tools: true,
            ..Assembler::default()
        };
        assert_eq!(a.push("<tool"), None);
        assert_eq!(a.push("_call>{\"name\":\"end_call\"}"), None);
        assert_eq!(a.finish(), (None, Some(("end_call".into(), "{}".into()))));
        let mut b = Assembler {
            tools: true,
            ..Assembler::default()
        };
        assert_eq!(b.push("<"), None);
        assert_eq!(b.push("b>Hi"), Some("<b>Hi".into()));
        assert_eq!(b.finish(), (None, None));
        let mut c = Assembler::default();
        assert_eq!(c.push("<tool"), Some("<tool".into()));
    }
}
