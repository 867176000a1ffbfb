//! The end of a call: words still in flight are transcribed and stored, the call record is
//! closed, the recording written and the `hangup` event sent.

use super::Actor;
use super::End;
use crate::audio::vad::VadEvent;
use crate::engine::events::CallEvent;
use crate::engine::events::now_ms;
use crate::engine::turn::Fallback;
use crate::engine::turn::ToCall;
use crate::engine::turn::TurnKind;
use axum::extract::ws::Message;
use callbot_core::domain::CallStatus;
use callbot_core::store::StatusUpdate;
use callbot_core::store::TurnRecord;
use callbot_core::store::TurnTimings;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::mpsc;

/// Caller words whose turn never completed: their turn, recognised text (if any), audio, keys,
/// and what the caller heard of the reply that had begun (a filler, the first sentences).
pub(super) struct Unheard {
    turn: u32,
    text: Option<String>,
    audio: Option<Vec<i16>>,
    dtmf: String,
    reply: Option<BegunReply>,
}

/// The part of a reply that had begun when the call ended.
pub(super) struct BegunReply {
    heard: String,
    full: String,
    timings: TurnTimings,
}

impl Actor {
    /// After the loop: nothing the caller said is lost, the record is closed, the recording kept.
    pub(super) async fn finish(
        &mut self,
        tenant: &callbot_core::domain::TenantId,
        sid: &callbot_core::domain::CallSid,
        pipe_rx: &mut mpsc::Receiver<ToCall>,
    ) {
        let why = self.end.clone().unwrap_or(End::CallerHungUp);
        if matches!(why, End::Killed | End::MaxDuration)
            && self.leg.channel().is_phone()
            && let Err(e) = self.engine.telephony.hangup_call(sid).await
        {
            tracing::error!(call_sid = %sid, error = %e, "hanging up failed");
        }
        let unheard = self.unheard(pipe_rx);
        for u in unheard {
            self.store_last_words(tenant, sid, u).await;
        }
        if why != End::Transfer {
            let at = callbot_core::time_fmt::now();
            let update = StatusUpdate {
                status: CallStatus::Completed,
                seq: None,
                at,
                duration_secs: Some((self.recorder.caller_ms() / 1000) as u32),
            };
            if let Err(e) = self.state.store.update_call_status(sid, &update).await {
                tracing::warn!(call_sid = %sid, error = %e, "closing the call record failed");
            }
        }
        // Turns still being written land before the call is reported finished.
        for h in self.persisting.drain(..) {
            let _ = h.await;
        }
        // The call's side tasks (a turn notice in flight) get the webhook's deadline, then end.
        self.info.tasks.close(self.info.webhook_timeout).await;
        self.finish_recording(sid).await;
        let (reason, initiator) = why.reason();
        self.events.emit(CallEvent::Hangup {
            timestamp: now_ms(),
            reason: reason.into(),
            initiator: initiator.into(),
        });
        tracing::info!(call_sid = %sid, reason, malformed = self.malformed, dropped = self.dropped, "call engine finished");
        // Closing the socket (written out with the rest by `Out::finish`) ends the stream; Twilio
        // then runs `<Hangup/>`.
        // A `/call` socket is closed by its event forwarder, after the `hangup` event.
        if self.leg.channel().is_phone() {
            let _ = self.out.send(Message::Close(None));
        }
    }

    /// Words in flight: the current turn (recognised or not), queued utterances, speech cut off
    /// by the hang-up and keys pressed without a turn yet.
    fn unheard(&mut self, pipe_rx: &mut mpsc::Receiver<ToCall>) -> Vec<Unheard> {
        let mut unheard: Vec<Unheard> = Vec::new();
        if let Some(mut cur) = self.conv.take_current() {
            if let Some(t) = self.turn_task.take() {
                t.abort();
            }
            while let Ok(m) = pipe_rx.try_recv() {
                if let ToCall::Recognised { turn, text, .. } = m
                    && turn == cur.turn
                {
                    cur.user_text = text;
                    cur.audio = None;
                }
            }
            // Whether or not a reply (or a filler) had begun: the caller's words are stored,
            // with what they heard of the answer.
            if cur.caller_turn {
                let text = (cur.audio.is_none()).then(|| cur.user_text.clone());
                let reply = cur.reply.is_some().then(|| {
                    cur.interrupt();
                    BegunReply {
                        heard: cur.heard_text(),
                        full: cur
                            .reply
                            .as_ref()
                            .map(|r| r.say.clone())
                            .unwrap_or_default(),
                        timings: cur.timings.clone(),
                    }
                });
                unheard.push(Unheard {
                    turn: cur.turn,
                    text,
                    audio: cur.audio.take(),
                    dtmf: cur.dtmf.clone(),
                    reply,
                });
            }
        }
        self.listen_flush();
        let now = Instant::now();
        let audio = match self.ep.flush() {
            Some(VadEvent::SpeechEnded { audio, .. }) => Some(audio),
            _ => None,
        };
        let dtmf = self.conv.take_keys();
        if audio.is_some() || !dtmf.is_empty() {
            let kind = TurnKind::Caller {
                audio,
                dtmf,
                heard: None,
                partials: 0,
            };
            self.conv.caller_turn(kind, now, Duration::ZERO, now);
        }
        for (turn, kind) in self.conv.unanswered() {
            if let TurnKind::Caller {
                audio, dtmf, heard, ..
            } = kind
            {
                let text = heard.map(|h| h.text);
                unheard.push(Unheard {
                    turn,
                    audio: if text.is_some() { None } else { audio },
                    text,
                    dtmf,
                    reply: None,
                });
            }
        }
        unheard
    }

    /// Transcribes (when needed) and stores words whose turn never completed.
    async fn store_last_words(
        &mut self,
        tenant: &callbot_core::domain::TenantId,
        sid: &callbot_core::domain::CallSid,
        u: Unheard,
    ) {
        let cue = self.info.cue(self.conv.history());
        let text = match (u.text, u.audio) {
            (Some(t), _) => t,
            (None, Some(a)) => match tokio::time::timeout(
                crate::speech::whisper::RECOGNITION_TIMEOUT,
                self.engine.stt.transcribe(a, &cue),
            )
            .await
            {
                Ok(Ok(t)) => t.text,
                _ => String::new(),
            },
            (None, None) => String::new(),
        };
        if text.is_empty() && u.dtmf.is_empty() {
            return;
        }
        let (bot_text, bot_text_full, timings) = match u.reply {
            Some(r) => (r.heard, r.full, r.timings),
            None => (String::new(), String::new(), TurnTimings::default()),
        };
        let record = TurnRecord {
            turn: u.turn,
            user_text: text,
            dtmf: u.dtmf,
            interrupted: bot_text != bot_text_full,
            bot_text,
            bot_text_full,
            action: "none".into(),
            fallback: Some(Fallback::CallEnded.code()),
            timings,
            at: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
        };
        if let Err(e) = self.state.store.put_turn(tenant, sid, &record).await {
            tracing::error!(call_sid = %sid, error = %e, "storing the last words failed");
        }
    }

    /// The rest of the recording, then the writer finishes it.
    async fn finish_recording(&mut self, sid: &callbot_core::domain::CallSid) {
        let rest = self.recorder.take_rest();
        if let Some(tx) = self.recording.take() {
            if !rest.is_empty() && tx.send(rest).await.is_err() {
                tracing::error!(call_sid = %sid, "the recording writer stopped early");
            }
            drop(tx);
        }
        if let Some(task) = self.recording_task.take()
            && let Err(e) = task.await
        {
            tracing::error!(call_sid = %sid, error = %e, "the recording writer failed");
        }
    }
}

impl End {
    /// The `hangup` event's reason and initiator.
    fn reason(&self) -> (&str, &str) {
        match self {
            End::CallerHungUp => ("caller_hangup", "caller"),
            End::Bot => ("bot_hangup", "bot"),
            End::Transfer => ("transferred", "bot"),
            End::Killed => ("killed", "api"),
            End::MaxDuration => ("max_duration", "system"),
            End::Silence => ("silence_timeout", "system"),
            End::TooManyCommands => (crate::rate::HANGUP_REASON, "system"),
            End::Command { reason, initiator } => (
                reason.as_deref().unwrap_or("hangup_command"),
                initiator.as_deref().unwrap_or("client"),
            ),
        }
    }
}
