//! Conversation turns of a call, persisted as each one completes (a crash loses at most the turn
//! in flight), and the `TurnStore` trait.

use super::StoreResult;
use crate::domain::{CallSid, TenantId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where the time of one turn went, in milliseconds from the end of the caller's speech (the
/// moment endpointing fired). `None`: the stage did not happen (e.g. no audio was played).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnTimings {
    /// Silence waited for before the turn was declared over.
    pub endpoint_ms: u64,
    /// Recognition (queue + engine).
    pub stt_ms: Option<u64>,
    /// The business webhook (including a retry).
    pub webhook_ms: Option<u64>,
    /// Synthesis of the first sentence: request → its first audio bytes.
    pub tts_first_byte_ms: Option<u64>,
    /// From end of speech to the first media frame sent to the carrier.
    pub first_frame_ms: Option<u64>,
    /// From end of speech to the first mark echoed by the carrier (audio reached the caller).
    pub first_mark_ms: Option<u64>,
    /// The language model's part (suggestion in webhook mode, the reply in LLM mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmTimings>,
    /// Which recogniser heard the caller (`whisper.cpp`, `deepgram`, `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_provider: Option<String>,
    /// End of the caller's speech → the final transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_final_ms: Option<u64>,
    /// Partial transcripts seen while the caller spoke.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partials: u32,
    /// Which synthesiser spoke the reply (`espeak-ng`, `elevenlabs`, `polly`, `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_provider: Option<String>,
    /// The voice's provider failed for at least one sentence, which the local voice spoke.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tts_fallback: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A tool the model called in a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolUse {
    pub name: String,
    /// The arguments as the model gave them (JSON; a string when they were not valid JSON).
    #[schema(value_type = Object)]
    pub arguments: serde_json::Value,
}

/// The language model's share of a turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmTimings {
    /// Time waiting for the model (reported by the local worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<u64>,
    /// Request sent → first text or tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Request sent → first whole sentence (LLM mode: what synthesis waits for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sentence_ms: Option<u64>,
    /// Request sent → stream finished (all rounds, tool calls included).
    pub total_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u32>,
    /// Prompt tokens the server had cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u32>,
    pub tool_calls: u32,
    /// The suggestion was started on the caller's words before their turn ended (and the final
    /// words matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptive: Option<bool>,
    /// Webhook mode: how long the turn waited for the suggestion once the caller's words were
    /// known (less than `total_ms` when it started early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    /// LLM mode: the tools the model called, in order, with their arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolUse>,
    /// Why there is no (complete) answer: `llm_timeout`, `llm_http_500`, `llm_rate_limited`,
    /// `llm_bad_stream`, `llm_connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One exchange: what the caller said and what the bot said back, as heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnRecord {
    /// 0 is the bot's greeting; caller turns count from 1.
    pub turn: u32,
    pub user_text: String,
    /// Keys pressed since the previous turn.
    pub dtmf: String,
    /// What the bot said, cut where the caller interrupted.
    pub bot_text: String,
    /// The whole reply as planned.
    pub bot_text_full: String,
    pub interrupted: bool,
    /// `continue`, `hangup` or `transfer`.
    pub action: String,
    /// Why the fallback line was spoken instead of the webhook's answer (`timeout`, `http_500`,
    /// `bad_json`, `missing_say`, ...).
    pub fallback: Option<String>,
    pub timings: TurnTimings,
    /// RFC 3339.
    pub at: String,
}

#[async_trait]
pub trait TurnStore: Send + Sync {
    /// Stores (or replaces) turn `turn.turn` of the call. Idempotent.
    async fn put_turn(
        &self,
        tenant: &TenantId,
        sid: &CallSid,
        turn: &TurnRecord,
    ) -> StoreResult<()>;
    /// The call's turns in order; empty for another tenant's call.
    async fn turns(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Vec<TurnRecord>>;
}
