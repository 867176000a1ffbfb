//! The types a call's turn tasks and its actor share: what the call is (`CallInfo`), what a
//! turn is asked to do (`TurnKind`, `TurnInput`), and what a turn task reports back (`ToCall`,
//! `Stage`). A leaf: it imports no other engine module but the webhook's wire types.

use super::tasks::CallTasks;
use super::webhook::{Action, Failure, HistoryEntry, TurnRequest};
use callbot_core::domain::{BotMode, Brain, WebhookPolicy};
use callbot_core::store::LlmTimings;
use std::sync::Arc;
use std::time::Duration;

/// Which step of preparing the reply is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Starting,
    Recognising,
    /// The language model (a suggestion, or the reply itself).
    Llm,
    Webhook,
    /// One of the bot's tools, through its webhook.
    Tool(String),
}

/// What a call's turns need to know about it.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub bot_id: callbot_core::domain::BotId,
    pub call_sid: String,
    pub from: String,
    pub to: String,
    pub goal: String,
    pub context: String,
    /// Sent with every turn (see `TurnRequest::variables`).
    pub variables: callbot_core::domain::Variables,
    /// Required in webhook mode; in LLM mode it serves tools and receives turn notices.
    pub webhook: Option<url::Url>,
    pub webhook_secret: Vec<u8>,
    pub policy: WebhookPolicy,
    /// The bot's voice (its provider picks the synthesiser).
    pub voice: callbot_core::domain::Voice,
    pub webhook_timeout: Duration,
    /// The bot's deadline for the model's suggestion (webhook mode); `None`: the engine's.
    pub suggestion_deadline: Option<Duration>,
    /// Webhook mode: suggestions may start before the caller's turn has ended.
    pub preemptive: bool,
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
    pub tasks: CallTasks,
}

impl CallInfo {
    /// What the recogniser should expect next: the bot's purpose and its last line in
    /// `history`.
    pub fn cue(&self, history: &[HistoryEntry]) -> crate::speech::Cue {
        let asked = history
            .iter()
            .rev()
            .find(|h| h.role == "bot")
            .map_or("", |h| h.content.as_str());
        crate::speech::Cue::for_turn(&self.goal, &self.context, asked)
    }

    /// The webhook's body for caller turn `turn` (no suggestion, no reply yet), stamped now.
    pub fn turn_request<'a>(
        &'a self,
        turn: u32,
        text: &'a str,
        dtmf: &'a str,
        history: &'a [HistoryEntry],
    ) -> TurnRequest<'a> {
        TurnRequest {
            kind: "turn",
            bot_id: self.bot_id.as_str(),
            call_sid: &self.call_sid,
            turn,
            user_text: text,
            dtmf: (!dtmf.is_empty()).then_some(dtmf),
            llm_suggestion: None,
            reply: None,
            history,
            from: &self.from,
            to: &self.to,
            timestamp: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
            goal: &self.goal,
            context: &self.context,
            variables: &self.variables,
        }
    }
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
    /// A suggestion started before the turn ended (caller turns in webhook mode).
    pub early: Option<Early>,
}

/// What `converse::suggest` gives: the suggestion (if any) and its timings.
pub type Suggestion = Option<(Option<String>, callbot_core::store::LlmTimings)>;

/// A suggestion asked for on the caller's words while the end of their turn was still awaited.
/// The turn uses it only if its words (`early_words`) and history length are the same; dropping
/// it cancels the request.
pub struct Early {
    pub words: String,
    pub history_len: usize,
    pub task: tokio_util::task::AbortOnDropHandle<Suggestion>,
}

impl std::fmt::Debug for Early {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Early")
            .field("words", &self.words)
            .field("history_len", &self.history_len)
            .finish_non_exhaustive()
    }
}

/// The words of `text` as compared for an early suggestion: lower case, letters and digits.
pub fn early_words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything that reaches a call's loop from its tasks and from outside, on one queue (one
/// queue to poll after every beat, not one per source): a turn task's progress, supervisor
/// commands, carrier answers.
#[derive(Debug)]
pub enum ToCall {
    /// The reply begins before it is decided (a filler, a streamed model answer): its sentences
    /// follow as `Sentence`, its action as `Act`.
    Streaming {
        turn: u32,
    },
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
        fallback: Option<Fallback>,
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
        stage: Stage,
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
        fallback: Option<Fallback>,
    },
    /// The language model's timings for the turn.
    Llm {
        turn: u32,
        timings: LlmTimings,
    },
    Finished {
        turn: u32,
    },
    /// Not about a turn: a command for the call (a supervisor's, over `/call?id=`).
    Command(super::command::Command),
    /// Not about a turn: what answered the call, by the carrier's machine detection.
    Answered(callbot_core::domain::AnsweredBy),
    /// Not about a turn: the carrier's answer to a transfer (`<Dial>` redirect).
    TransferDone {
        number: String,
        result: Result<(), String>,
    },
}

impl ToCall {
    /// The turn the message is about; `None` for the call's own messages.
    pub fn turn(&self) -> Option<u32> {
        match self {
            ToCall::Streaming { turn }
            | ToCall::Recognised { turn, .. }
            | ToCall::Reply { turn, .. }
            | ToCall::Audio { turn, .. }
            | ToCall::SentenceDone { turn, .. }
            | ToCall::TtsFallback { turn, .. }
            | ToCall::SpeechFailed { turn, .. }
            | ToCall::Stage { turn, .. }
            | ToCall::Sentence { turn, .. }
            | ToCall::Act { turn, .. }
            | ToCall::Llm { turn, .. }
            | ToCall::Finished { turn } => Some(*turn),
            ToCall::Command(_) | ToCall::TransferDone { .. } | ToCall::Answered(_) => None,
        }
    }
}

/// Why a turn's reply is not the one its source gave: stored on the turn as `fallback` (its
/// [`Fallback::code`]), and what the call decides on (failure counts, error events).
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// The webhook's answer could not be used (timeout, an error status, bad JSON, no `say`…).
    Webhook(Failure),
    /// The bot's webhook rate left no slot within the webhook deadline.
    RateLimited,
    /// The webhook failed too many turns in a row: the call is handed over or ended.
    WebhookUnavailable,
    /// The webhook asked for a transfer outside the bot's `transfer_numbers`.
    TransferRefused,
    /// The recogniser was too busy to hear the caller.
    SttBusy,
    /// The caller's words could not be recognised.
    SttFailed,
    /// The language model did not answer (`llm_timeout`, `llm_off`, `llm_empty`, a provider
    /// error); the fallback line was spoken.
    Llm(String),
    /// The caller hung up before the reply was heard.
    CallEnded,
}

impl Fallback {
    /// The stable code stored on the turn record.
    pub fn code(&self) -> String {
        match self {
            Fallback::Webhook(f) => f.to_string(),
            Fallback::RateLimited => "rate_limited".into(),
            Fallback::WebhookUnavailable => "webhook_unavailable".into(),
            Fallback::TransferRefused => "transfer_refused".into(),
            Fallback::SttBusy => "stt_busy".into(),
            Fallback::SttFailed => "stt_failed".into(),
            Fallback::Llm(reason) => reason.clone(),
            Fallback::CallEnded => "call_ended".into(),
        }
    }

    /// Counts toward the webhook failures in a row after which the call gives up on it (a
    /// refused transfer is the business's answer, not a failure).
    pub fn is_webhook_failure(&self) -> bool {
        matches!(
            self,
            Fallback::Webhook(_) | Fallback::RateLimited | Fallback::WebhookUnavailable
        )
    }
}
