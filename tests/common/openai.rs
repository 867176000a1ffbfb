//! A stand-in for an OpenAI-compatible chat completions server. It checks requests the way the
//! real service does (Bearer key → 401 `invalid_api_key`, JSON content type, `model`, `messages`
//! with known roles, tools as `{"type": "function", "function": {...}}`, positive `max_tokens`)
//! and answers in the real formats: Server-Sent Events of `chat.completion.chunk` objects ending
//! in `data: [DONE]` (usage chunk with `include_usage`, tool-call fragments split mid-JSON) or one
//! `chat.completion` object; errors in OpenAI's `{"error": {...}}` shape. A script picks each
//! answer; every request and whether the client hung up mid-stream are recorded.

// Handler helpers return the refusal itself (an axum `Response`) as their error.
#![allow(clippy::result_large_err)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KEY: &str = "sk-standin-0123456789";

/// How the stand-in answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text in these pieces, `gap` apart.
    Text { pieces: Vec<String>, gap: Duration },
    /// Optional text, then one tool call whose arguments arrive in two fragments.
    Tool {
        text: Option<String>,
        name: String,
        arguments: String,
    },
    /// An HTTP error in OpenAI's shape.
    Error {
        status: u16,
        kind: &'static str,
        code: &'static str,
    },
    /// A stream that breaks the format mid-way (an event that is not JSON).
    Malformed,
    /// Headers, then nothing for a long time.
    Hang,
    /// The request is read and then nothing at all comes back, not even headers, for a minute.
    NoHeaders,
}

impl Reply {
    pub fn text(s: &str) -> Self {
        Reply::Text {
            pieces: s.split_inclusive(' ').map(str::to_owned).collect(),
            gap: Duration::from_millis(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    pub authorization: String,
    /// The client closed the stream before it ended.
    pub cancelled: bool,
    pub at: Instant,
    /// When the last byte of the answer was sent.
    pub finished: Option<Instant>,
}

type Script = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct StandIn {
    /// Base URL, ending in `/v1`.
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    other: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests to any other endpoint of the account (files, batches, fine-tuning,
    /// organisation...), as `METHOD /path`: the real service would have answered them.
    pub fn other_requests(&self) -> Vec<String> {
        self.other.lock().unwrap().clone()
    }
}

/// How many caller messages a request holds (which turn of the call it is).
pub fn user_turns(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "user").count())
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// What the real API refuses before it starts answering.
fn check(headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    check_key(headers)?;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(error(
            400,
            "invalid_request_error",
            "invalid_content_type",
            "Content-Type must be application/json",
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        error(
            400,
            "invalid_request_error",
            "invalid_json",
            "We could not parse the JSON body.",
        )
    })?;
    let bad = |m: &str| error(400, "invalid_request_error", "invalid_request", m);
    if !v["model"].is_string() {
        return Err(bad("you must provide a model parameter"));
    }
    let msgs = v["messages"]
        .as_array()
        .ok_or_else(|| bad("'messages' is required"))?;
    if msgs.is_empty() {
        return Err(bad("'messages' must not be empty"));
    }
    for m in msgs {
        let role = m["role"].as_str().unwrap_or("");
        if !["system", "developer", "user", "assistant", "tool"].contains(&role) {
            return Err(bad("invalid role"));
        }
        if role == "tool" && !m["tool_call_id"].is_string() {
            return Err(bad("messages with role 'tool' must have a tool_call_id"));
        }
        if role != "assistant" && !m["content"].is_string() {
            return Err(bad("content must be a string"));
        }
    }
    if let Some(tools) = v.get("tools") {
        for t in tools
            .as_array()
            .ok_or_else(|| bad("tools must be an array"))?
        {
            if t["type"] != "function" || !t["function"]["name"].is_string() {
                return Err(bad("each tool is {type: function, function: {name, ...}}"));
            }
        }
    }
    if let Some(n) = v.get("max_tokens")
        && n.as_u64().is_none_or(|n| n == 0)
    {
        return Err(bad("max_tokens must be a positive integer"));
    }
    Ok(v)
}

pub async fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> StandIn {
    let script: Script = Arc::new(script);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let chat = move |headers: HeaderMap, body: Bytes| {
        let (script, seen) = (script.clone(), s2.clone());
        async move {
            let req = match check(&headers, &body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let idx = {
                let mut s = seen.lock().unwrap();
                s.push(Seen {
                    body: req.clone(),
                    authorization: headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                    cancelled: false,
                    at: Instant::now(),
                    finished: None,
                });
                s.len() - 1
            };
            let reply = script(&req);
            if let Reply::Error { status, kind, code } = reply {
                return error(status, kind, code, "scripted failure");
            }
            if let Reply::NoHeaders = reply {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return error(504, "server_error", "timeout", "scripted silence");
            }
            if req["stream"] == true {
                let usage = req["stream_options"]["include_usage"] == true;
                stream(reply, usage, seen, idx)
            } else {
                whole(reply, &req)
            }
        }
    };
    let other: Arc<Mutex<Vec<String>>> = Arc::default();
    let o2 = other.clone();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
                let other = o2.clone();
                async move {
                    other.lock().unwrap().push(format!("{method} {}", uri.path()));
                    if let Err(r) = check_key(&headers) {
                        return r;
                    }
                    // What the account endpoints answer: a list (of another tenant's files...).
                    axum::Json(json!({"object": "list", "data": [{"id": "file-of-another-tenant"}]}))
                        .into_response()
                }
            },
        )
        .route(
            "/v1/models",
            axum::routing::get(|headers: HeaderMap| async move {
                if let Err(r) = check_key(&headers) {
                    return r;
                }
                axum::Json(json!({"object": "list", "data": [{"id": "standin-1", "object": "model", "created": 0, "owned_by": "standin"}]})).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    StandIn { base, seen, other }
}

fn check_key(headers: &HeaderMap) -> Result<(), Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {KEY}") {
        return Err(error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        ));
    }
    Ok(())
}

const ID: &str = "chatcmpl-standin";

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": ID, "object": "chat.completion.chunk", "created": 1_731_000_000, "model": "standin-1",
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

fn usage_chunk() -> String {
    let c = json!({"id": ID, "object": "chat.completion.chunk", "created": 1_731_000_000, "model": "standin-1",
                   "choices": [], "usage": {"prompt_tokens": 41, "completion_tokens": 9, "total_tokens": 50}});
    format!("data: {c}\n\n")
}

fn stream(reply: Reply, usage: bool, seen: Arc<Mutex<Vec<Seen>>>, idx: usize) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let send = |s: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(s))).await.is_ok() }
        };
        let mut ok = send(chunk(json!({"role": "assistant", "content": ""}), None)).await;
        match reply {
            Reply::Text { pieces, gap } => {
                for (i, p) in pieces.into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    ok = ok && send(chunk(json!({"content": p}), None)).await;
                    // A closed connection is only seen on the next write: probe at once.
                    ok = ok && send(": keep-alive\n\n".into()).await;
                    if !ok {
                        break;
                    }
                }
                ok = ok && send(chunk(json!({}), Some("stop"))).await;
            }
            Reply::Tool {
                text,
                name,
                arguments,
            } => {
                if let Some(t) = text {
                    ok = ok && send(chunk(json!({"content": t}), None)).await;
                }
                let (a, b) = arguments.split_at(arguments.len() / 2);
                let first = json!({"tool_calls": [{"index": 0, "id": "call_standin1", "type": "function",
                                                   "function": {"name": name, "arguments": ""}}]});
                ok = ok && send(chunk(first, None)).await;
                for part in [a, b] {
                    let d = json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]});
                    ok = ok && send(chunk(d, None)).await;
                }
                ok = ok && send(chunk(json!({}), Some("tool_calls"))).await;
            }
            Reply::Malformed => {
                ok = ok && send(chunk(json!({"content": "Half"}), None)).await;
                ok = ok && send("data: {\"choices\": [\n\n".into()).await;
                ok = ok && send("data: [DONE]\n\n".into()).await;
                let _ = ok;
                seen.lock().unwrap()[idx].finished = Some(Instant::now());
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Reply::Error { .. } | Reply::NoHeaders => {}
        }
        if usage {
            ok = ok && send(usage_chunk()).await;
        }
        ok = ok && send("data: [DONE]\n\n".into()).await;
        let mut s = seen.lock().unwrap();
        s[idx].finished = Some(Instant::now());
        s[idx].cancelled = !ok;
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }));
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap()
}

fn whole(reply: Reply, req: &Value) -> Response {
    let (message, finish) = match reply {
        Reply::Text { pieces, .. } => (
            json!({"role": "assistant", "content": pieces.concat()}),
            "stop",
        ),
        Reply::Tool {
            text,
            name,
            arguments,
        } => (
            json!({"role": "assistant", "content": text, "tool_calls": [
                {"id": "call_standin1", "type": "function", "function": {"name": name, "arguments": arguments}}]}),
            "tool_calls",
        ),
        _ => (json!({"role": "assistant", "content": ""}), "stop"),
    };
    axum::Json(json!({
        "id": ID, "object": "chat.completion", "created": 1_731_000_000, "model": req["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 41, "completion_tokens": 9, "total_tokens": 50},
    }))
    .into_response()
}
