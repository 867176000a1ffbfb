//! The OpenAI-compatible chat completions adapter (OpenAI, Groq, vLLM, llama-server, Ollama, and
//! our own local worker): `POST {base}/chat/completions` with `stream: true`, decoded as
//! Server-Sent Events as they arrive, tool-call fragments accumulated per index.

use super::{ChatMessage, ChatRequest, Llm, LlmError, LlmEvent, LlmStream, ToolCall, Usage};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

/// Largest error body read from a failed request.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Largest single SSE event accepted.
const MAX_EVENT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OpenAiLlm {
    http: reqwest::Client,
    base: String,
    key: Option<SecretString>,
    model: String,
    label: &'static str,
}

impl OpenAiLlm {
    /// `label` names the provider in logs (`openai`, `local`).
    pub fn new(
        base_url: &url::Url,
        api_key: Option<SecretString>,
        model: impl Into<String>,
        label: &'static str,
    ) -> Self {
        use crate::http_client;
        let http = http_client::build(
            http_client::builder(http_client::LLM_TOTAL)
                .pool_idle_timeout(std::time::Duration::from_secs(60))
                .tcp_nodelay(true),
            "the language model",
        );
        Self {
            http,
            base: base_url.as_str().trim_end_matches('/').to_owned(),
            key: api_key,
            model: model.into(),
            label,
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }
}

/// The request body in OpenAI's format.
pub fn request_body(model: &str, req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| match m {
            ChatMessage::System(c) => json!({"role": "system", "content": c}),
            ChatMessage::User(c) => json!({"role": "user", "content": c}),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } if !tool_calls.is_empty() => json!({
                "role": "assistant", "content": content,
                "tool_calls": tool_calls.iter().map(|t| json!({
                    "id": t.id, "type": "function",
                    "function": {"name": t.name, "arguments": t.arguments}})).collect::<Vec<_>>()
            }),
            ChatMessage::Assistant { content, .. } => {
                json!({"role": "assistant", "content": content.clone().unwrap_or_default()})
            }
            ChatMessage::Tool { call_id, content } => {
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        })
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body["tool_choice"] = json!("auto");
    }
    body
}

#[async_trait]
impl Llm for OpenAiLlm {
    fn describe(&self) -> String {
        format!("{} {} at {}", self.label, self.model, self.base)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<LlmStream, LlmError> {
        let mut req = self
            .http
            .post(format!("{}/chat/completions", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&self.model, request));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k.expose_secret());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| LlmError::Connect(e.without_url().to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let message = error_message(resp).await;
            return Err(match status.as_u16() {
                429 => LlmError::RateLimited,
                s => LlmError::Status(s, message),
            });
        }
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(LlmError::BadStream(
                "the answer is not text/event-stream".into(),
            ));
        }
        Ok(decode(resp.bytes_stream().boxed()))
    }
}

/// OpenAI's `{"error": {"message": ...}}`, or the start of whatever the body was.
async fn error_message(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// Turns a body of Server-Sent Events into model events.
pub fn decode(body: BoxStream<'static, reqwest::Result<Bytes>>) -> LlmStream {
    let state = Decoder {
        body,
        buf: Vec::new(),
        data: String::new(),
        out: VecDeque::new(),
        calls: BTreeMap::new(),
        finish: None,
        ended: false,
    };
    futures_util::stream::unfold(state, |mut d| async move {
        loop {
            if let Some(e) = d.out.pop_front() {
                if e.is_err() {
                    d.ended = true;
                }
                return Some((e, d));
            }
            if d.ended {
                return None;
            }
            match d.body.next().await {
                Some(Ok(chunk)) => d.feed(&chunk),
                Some(Err(e)) => d.fail(format!("reading the stream: {}", e.without_url())),
                None => {
                    d.feed(b"\n\n"); // a last event without its blank line
                    if !d.ended {
                        d.fail("the stream ended without [DONE]".into());
                    }
                }
            }
        }
    })
    .boxed()
}

struct Decoder {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buf: Vec<u8>,
    /// Data lines of the event being read.
    data: String,
    out: VecDeque<Result<LlmEvent, LlmError>>,
    /// Tool calls being assembled, by index: (id, name, arguments).
    calls: BTreeMap<u64, (String, String, String)>,
    finish: Option<String>,
    ended: bool,
}

impl Decoder {
    fn fail(&mut self, why: String) {
        self.out.push_back(Err(LlmError::BadStream(why)));
        self.ended = true;
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + nl];
            start += nl + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if self.ended {
                break;
            }
            if line.is_empty() {
                let data = std::mem::take(&mut self.data);
                if !data.is_empty() {
                    self.event(&data);
                }
                continue;
            }
            if line[0] == b':' {
                continue; // comment (keep-alive)
            }
            let Some(rest) = line.strip_prefix(b"data:") else {
                continue; // event:, id:, retry:
            };
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(&String::from_utf8_lossy(rest));
        }
        self.buf.drain(..start);
        if self.buf.len() + self.data.len() > MAX_EVENT {
            self.fail("an event is larger than 1 MiB".into());
        }
    }

    fn event(&mut self, data: &str) {
        if data.starts_with("[DONE]") {
            self.flush_calls();
            let finish = self.finish.take().unwrap_or_else(|| "stop".into());
            self.out.push_back(Ok(LlmEvent::Done(finish)));
            self.ended = true;
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("an event is not JSON: {e}")),
        };
        if let Some(err) = v.get("error") {
            let msg = err["message"].as_str().unwrap_or("error event").to_owned();
            return self.fail(msg);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            let n = |x: &Value| x.as_u64().map(|n| n as u32);
            self.out.push_back(Ok(LlmEvent::Usage(Usage {
                prompt_tokens: n(&u["prompt_tokens"]).unwrap_or(0),
                completion_tokens: n(&u["completion_tokens"]).unwrap_or(0),
                cached_tokens: n(&u["prompt_tokens_details"]["cached_tokens"]),
                queue_ms: v["timings"]["queue_ms"].as_f64().map(|q| q as u64),
            })));
        }
        let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
            return; // usage-only chunk
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str()
            && !text.is_empty()
        {
            self.out.push_back(Ok(LlmEvent::Text(text.to_owned())));
        }
        if let Some(parts) = delta["tool_calls"].as_array() {
            for p in parts {
                let idx = p["index"].as_u64().unwrap_or(0);
                let e = self.calls.entry(idx).or_default();
                if let Some(id) = p["id"].as_str() {
                    e.0 = id.to_owned();
                }
                if let Some(name) = p["function"]["name"].as_str() {
                    e.1.push_str(name);
                }
                if let Some(a) = p["function"]["arguments"].as_str() {
                    e.2.push_str(a);
                }
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
            self.flush_calls();
        }
    }

    fn flush_calls(&mut self) {
        for (i, (id, name, arguments)) in std::mem::take(&mut self.calls) {
            let id = if id.is_empty() {
                format!("call_{i}")
            } else {
                id
            };
            let arguments = if arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                arguments
            };
            self.out.push_back(Ok(LlmEvent::ToolCall(ToolCall {
                id,
                name,
                arguments,
            })));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events(chunks: &[&str]) -> Vec<Result<LlmEvent, LlmError>> {
        let owned: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from(c.to_string())))
            .collect();
        decode(futures_util::stream::iter(owned).boxed())
            .collect()
            .await
    }

    #[tokio::test]
    async fn text_split_across_chunks_and_usage() {
        let got = events(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n: keep-alive\n\nda",
            "ta: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yes, we\"},\"finish_reason\":null}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":41,\"completion_tokens\":9,\"total_tokens\":50}}\n\ndata: [DONE]\n\n",
        ])
        .await;
        assert_eq!(
            got,
            vec![
                Ok(LlmEvent::Text("Yes, we".into())),
                Ok(LlmEvent::Usage(Usage {
                    prompt_tokens: 41,
                    completion_tokens: 9,
                    cached_tokens: None,
                    queue_ms: None
                })),
                Ok(LlmEvent::Done("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn tool_call_fragments_are_joined() {
        let got = events(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_a1\",\"type\":\"function\",\"function\":{\"name\":\"check_hours\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"day\\\":\\\"Sun\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"day\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
        ])
        .await;
        assert_eq!(
            got,
            vec![
                Ok(LlmEvent::ToolCall(ToolCall {
                    id: "call_a1".into(),
                    name: "check_hours".into(),
                    arguments: "{\"day\":\"Sunday\"}".into()
                })),
                Ok(LlmEvent::Done("tool_calls".into())),
            ]
        );
    }

    #[tokio::test]
    async fn broken_streams_are_errors() {
        let cut =
            events(&["data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"])
                .await;
        assert!(matches!(cut.last(), Some(Err(LlmError::BadStream(_)))));
        let bad = events(&["data: {not json\n\n", "data: [DONE]\n\n"]).await;
        assert_eq!(bad.len(), 1);
        assert!(matches!(bad[0], Err(LlmError::BadStream(_))));
        let err =
            events(&["event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n"]).await;
        assert_eq!(err, vec![Err(LlmError::BadStream("overloaded".into()))]);
    }

    #[test]
    fn body_has_tools_and_tool_results() {
        let req = ChatRequest {
            messages: vec![
                ChatMessage::System("s".into()),
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    }],
                },
                ChatMessage::Tool {
                    call_id: "c1".into(),
                    content: "{\"ok\":true}".into(),
                },
            ],
            tools: vec![super::super::ToolSpec {
                name: "f".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 50,
            temperature: 0.0,
        };
        let b = request_body("m", &req);
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"][1]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(b["messages"][2]["tool_call_id"], "c1");
        assert_eq!(b["tools"][0]["type"], "function");
    }
}
