//! Language models behind one small trait: a streamed chat completion (messages and tools in,
//! text deltas and tool calls out). One adapter speaks the OpenAI-compatible wire format
//! (`openai`), to cloud providers and to the embedded model's worker alike; `analysis` is the
//! post-call analysis over it. Here, not in the stream service, so the post-call worker runs
//! wherever the API does (`callbot serve`, a Lambda function).

pub mod analysis;
pub mod openai;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde_json::Value;

/// One message of a conversation with the model.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant {
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    /// The result of a tool call, for the model.
    Tool {
        call_id: String,
        content: String,
    },
}

/// A function the model called; `arguments` is the JSON text the model wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A function offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    pub temperature: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens the server had cached (OpenAI `prompt_tokens_details.cached_tokens`).
    pub cached_tokens: Option<u32>,
    /// Time the request waited for the model (the local worker reports it).
    pub queue_ms: Option<u64>,
}

/// What a streamed completion yields, in order: text and tool calls, then usage (when the server
/// reports it), then `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    Text(String),
    ToolCall(ToolCall),
    Usage(Usage),
    /// `finish_reason`: `stop`, `length`, `tool_calls`, ...
    Done(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("llm_timeout")]
    Timeout,
    #[error("llm_rate_limited")]
    RateLimited,
    /// The server answered with this status (OpenAI error shape: its message).
    #[error("llm_http_{0}")]
    Status(u16, String),
    #[error("llm_connect")]
    Connect(String),
    /// The stream broke its format (not SSE, bad JSON, ended without `[DONE]`, an `error` event).
    #[error("llm_bad_stream")]
    BadStream(String),
}

impl LlmError {
    /// A short stable reason stored on the turn (`llm_timeout`, `llm_http_500`, ...).
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// A chat model.
///
/// - Does not block the async runtime (network I/O).
/// - Cancel-safe: dropping the returned stream abandons the request (the connection is closed, so
///   a server that streams stops generating).
/// - Not idempotent in cost (each call is billed), but has no side effects: safe to retry.
#[async_trait]
pub trait Llm: Send + Sync + std::fmt::Debug {
    /// For the startup banner and logs, e.g. `openai gpt-4o-mini at https://api.openai.com/v1`.
    fn describe(&self) -> String;
    /// Starts a streamed completion; errors before the first byte come back here, later ones in
    /// the stream.
    async fn chat(&self, request: &ChatRequest) -> Result<LlmStream, LlmError>;
}
