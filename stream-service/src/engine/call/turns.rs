//! Finishing turns: completion when the reply has been heard, barge-in when the caller talks over
//! it (the history keeps only what was heard), persistence, and the reply's action.

use super::Actor;
use super::End;
use super::lifecycle;
use crate::engine::events::CallEvent;
use crate::engine::events::now_ms;
use crate::engine::turn::Fallback;
use crate::engine::webhook::Action;
use crate::engine::webhook::HistoryEntry;
use callbot_core::store::TurnRecord;
use std::time::Instant;

impl Actor {
    /// The caller talked over the reply: stop it where they were, keep what they heard.
    pub(super) fn barge_in(&mut self) {
        let Some(cur) = self.conv.current() else {
            return;
        };
        if !cur.interruptible() {
            return;
        }
        let turn = cur.turn;
        let heard_frames = cur.playback.heard_frames();
        let heard = cur.playback.heard_text();
        if let Some(m) = self.leg.clear() {
            self.send(m);
        }
        self.recorder.bot_cleared();
        self.events.emit(CallEvent::Interruption {
            track_id: format!("reply-{turn}"),
            timestamp: now_ms(),
            position: heard_frames as u64 * 20,
            heard_text: heard,
        });
        // Completed synchronously: persistence is spawned inside.
        self.complete_now(true);
    }

    pub(super) fn complete(&mut self, interrupted: bool) {
        let action = self.complete_now(interrupted);
        match action {
            Some(Action::Hangup) => self.hang_up(End::Bot),
            Some(Action::Transfer(to)) => self.transfer(&to.to_string(), None),
            _ => {}
        }
    }

    /// Records the current turn (spawned write), updates the history; returns the action to take.
    fn complete_now(&mut self, interrupted: bool) -> Option<Action> {
        let mut cur = self.conv.take_current()?;
        if let Some(t) = self.turn_task.take() {
            t.abort();
        }
        if interrupted {
            cur.interrupt();
        }
        let heard = cur.heard_text();
        let lifecycle::Reply {
            say: full,
            action,
            fallback,
        } = cur.reply.clone().unwrap_or_default();
        let played_ms = cur.playback.sent() * 20;
        if cur.playback.started() {
            self.events.emit(CallEvent::TrackEnd {
                track_id: format!("reply-{}", cur.turn),
                timestamp: now_ms(),
                duration: played_ms,
            });
        }
        if cur.user_text.is_empty() && cur.dtmf.is_empty() && cur.caller_turn && fallback.is_none()
        {
            // Noise that recognised as nothing: not a turn. (Speech that could not be recognised
            // is one: it was answered, and its audio is in the recording.)
            self.conv.turn_ended(Instant::now());
            return None;
        }
        if !cur.user_text.is_empty() || !cur.dtmf.is_empty() {
            self.conv.remember(
                "user",
                HistoryEntry::caller_words(&cur.user_text, &cur.dtmf),
            );
        }
        if !heard.is_empty() {
            self.conv.remember("bot", heard.clone());
            self.events.emit(CallEvent::Transcription {
                timestamp: now_ms(),
                role: "bot".into(),
                text: heard.clone(),
            });
        }
        let t = &cur.timings;
        let engine_ms =
            t.stt_ms.unwrap_or(0) + t.webhook_ms.unwrap_or(0) + t.tts_first_byte_ms.unwrap_or(0);
        self.events.emit(CallEvent::Metrics {
            timestamp: now_ms(),
            key: "ttfb.turn".into(),
            duration: t.first_frame_ms.unwrap_or(0),
            data: serde_json::json!({"turn": cur.turn, "timings": t, "platform_ms": t.first_frame_ms.map(|f| f.saturating_sub(engine_ms))}),
        });
        let record = TurnRecord {
            turn: cur.turn,
            user_text: cur.user_text.clone(),
            dtmf: cur.dtmf.clone(),
            bot_text: heard,
            bot_text_full: full,
            interrupted,
            action: action.as_str().to_owned(),
            fallback: fallback.as_ref().map(Fallback::code),
            timings: cur.timings.clone(),
            at: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
        };
        self.persist(record);
        self.conv.turn_ended(Instant::now());
        if interrupted { None } else { Some(action) }
    }

    /// Stores a turn without holding up the call; the end of the call waits for these writes.
    fn persist(&mut self, record: TurnRecord) {
        let store = self.state.store.clone();
        let sid = self.sid.clone();
        let tenant = self.tenant.clone();
        self.persisting.retain(|h| !h.is_finished());
        self.persisting.push(tokio::spawn(async move {
            if let Err(e) = store.put_turn(&tenant, &sid, &record).await {
                tracing::error!(call_sid = %sid, turn = record.turn, error = %e, "storing a turn failed");
            }
        }));
    }
}
