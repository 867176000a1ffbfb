//! How a turn ends, without I/O: completion once its reply has been heard, barge-in when the
//! caller talks over it (the history keeps only what was heard), and the effects either has —
//! the events to emit, the turn record to store, the playout to clear, the reply's action. The
//! actor (`turns.rs`) carries the effects out; every rule here is tested below without a runtime.

use super::conversation::Conversation;
use super::lifecycle;
use crate::engine::events::CallEvent;
use crate::engine::turn::Fallback;
use crate::engine::webhook::{Action, HistoryEntry};
use callbot_core::store::TurnRecord;
use std::time::Instant;

/// The time a decision is made at: the monotonic clock for the conversation's timers, the wall
/// clock for what is emitted and stored.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: time::OffsetDateTime,
}

impl Now {
    pub fn system() -> Self {
        Self {
            at: Instant::now(),
            wall: callbot_core::time_fmt::now(),
        }
    }

    fn ms(&self) -> u64 {
        (self.wall.unix_timestamp_nanos() / 1_000_000) as u64
    }
}

/// What the end of a turn asks of the world, in order.
#[derive(Debug)]
pub enum Effect {
    /// Stop the turn's task (recognition, model, webhook or synthesis still running).
    AbortTurnTask,
    /// Drop the bot audio the carrier still holds, and end the bot side of the recording there.
    ClearPlayout,
    Emit(CallEvent),
    /// Store the turn (its write must not hold up the call).
    Persist(Box<TurnRecord>),
    /// The reply asked to end the call.
    HangUp,
    /// The reply asked to transfer the caller.
    Transfer(String),
}

impl Conversation {
    /// The caller talked over the reply: stop it where they were, keep what they heard. Nothing
    /// happens when no turn runs or the running one may not be cut (see
    /// [`lifecycle::Turn::interruptible`]).
    pub fn barge_in(&mut self, now: Now) -> Vec<Effect> {
        let Some(cur) = self.current() else {
            return Vec::new();
        };
        if !cur.interruptible() {
            return Vec::new();
        }
        let interruption = CallEvent::Interruption {
            track_id: format!("reply-{}", cur.turn),
            timestamp: now.ms(),
            position: cur.playback.heard_frames() as u64 * 20,
            heard_text: cur.playback.heard_text(),
        };
        let mut effects = vec![Effect::ClearPlayout, Effect::Emit(interruption)];
        effects.extend(self.complete(now, true));
        effects
    }

    /// The running turn ends, `interrupted` or heard in full: the history gets what was said and
    /// heard, the turn is stored, and a reply heard in full has its action carried out. Noise
    /// that recognised as nothing is no turn: nothing is stored.
    pub fn complete(&mut self, now: Now, interrupted: bool) -> Vec<Effect> {
        let Some(mut cur) = self.take_current() else {
            return Vec::new();
        };
        let mut effects = vec![Effect::AbortTurnTask];
        if interrupted {
            cur.interrupt();
        }
        if cur.playback.started() {
            effects.push(Effect::Emit(CallEvent::TrackEnd {
                track_id: format!("reply-{}", cur.turn),
                timestamp: now.ms(),
                duration: cur.playback.sent() * 20,
            }));
        }
        self.turn_ended(now.at);
        let lifecycle::Reply {
            say: full,
            action,
            fallback,
        } = cur.reply.clone().unwrap_or_default();
        let caller_said = !cur.user_text.is_empty() || !cur.dtmf.is_empty();
        if !caller_said && cur.caller_turn && fallback.is_none() {
            // (Speech that could not be recognised is a turn: it was answered, and its audio is
            // in the recording.)
            return effects;
        }
        if caller_said {
            self.remember(
                "user",
                HistoryEntry::caller_words(&cur.user_text, &cur.dtmf),
            );
        }
        let heard = cur.heard_text();
        if !heard.is_empty() {
            self.remember("bot", heard.clone());
            effects.push(Effect::Emit(CallEvent::Transcription {
                timestamp: now.ms(),
                role: "bot".into(),
                text: heard.clone(),
            }));
        }
        effects.push(Effect::Emit(metrics(&cur, now)));
        effects.push(Effect::Persist(Box::new(TurnRecord {
            turn: cur.turn,
            user_text: cur.user_text.clone(),
            dtmf: cur.dtmf.clone(),
            bot_text: heard,
            bot_text_full: full,
            interrupted,
            action: action.as_str().to_owned(),
            fallback: fallback.as_ref().map(Fallback::code),
            timings: cur.timings.clone(),
            at: callbot_core::time_fmt::rfc3339(now.wall),
        })));
        match action {
            _ if interrupted => {}
            Action::Hangup => effects.push(Effect::HangUp),
            Action::Transfer(to) => effects.push(Effect::Transfer(to.to_string())),
            _ => {}
        }
        effects
    }
}

/// The turn's timings as a `metrics` event; `platform_ms` is the time to the first frame less
/// what the providers took.
fn metrics(cur: &lifecycle::Turn, now: Now) -> CallEvent {
    let t = &cur.timings;
    let engine_ms =
        t.stt_ms.unwrap_or(0) + t.webhook_ms.unwrap_or(0) + t.tts_first_byte_ms.unwrap_or(0);
    CallEvent::Metrics {
        timestamp: now.ms(),
        key: "ttfb.turn".into(),
        duration: t.first_frame_ms.unwrap_or(0),
        data: serde_json::json!({
            "turn": cur.turn,
            "timings": t,
            "platform_ms": t.first_frame_ms.map(|f| f.saturating_sub(engine_ms)),
        }),
    }
}

#[cfg(test)]
#[path = "completion_tests.rs"]
mod tests;
