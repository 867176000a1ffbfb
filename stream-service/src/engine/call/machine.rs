//! What answered an outbound call, and what a machine gets: the carrier's verdict (Twilio's
//! machine detection) or, on legs whose carrier does not detect machines, the engine's own
//! detector on the first seconds of the called party's audio. A person goes on talking with the
//! bot; a machine is hung up on, or, when the bot leaves messages, muted until its greeting
//! ends and then given the message, after which the bot hangs up.

use super::{Actor, CALLER, End};
use crate::audio::amd::{AmdConfig, MachineDetector, Verdict};
use crate::audio::vad::FRAME_SAMPLES;
use crate::engine::events::{CallEvent, now_ms};
use crate::engine::turn::TurnKind;
use crate::engine::webhook::Action;
use callbot_core::domain::AnsweredBy;

/// A call's machine detection.
#[derive(Debug, Default)]
pub(super) struct Machine {
    /// The message left on a machine (placeholders filled); `None`: hang up on one.
    voicemail: Option<String>,
    /// The engine's own detector, while it listens.
    detector: Option<MachineDetector>,
    /// The last verdict.
    answered_by: Option<AnsweredBy>,
    /// The message is being left (or the call is ending for a machine): verdicts change nothing.
    settled: bool,
    /// A turn that was being prepared when the message was due (a reply to the machine's
    /// greeting): when it begins to play it is cut before a frame of it is heard.
    unheard: Option<u32>,
}

impl Machine {
    /// True while the engine's own detector listens.
    pub fn listening(&self) -> bool {
        self.detector.is_some()
    }

    /// `voicemail`: the message to leave; `detect`: run the engine's detector on this leg.
    pub fn new(voicemail: Option<String>, detect: bool) -> Self {
        Self {
            voicemail,
            detector: detect.then(|| MachineDetector::new(AmdConfig::default())),
            answered_by: None,
            settled: false,
            unheard: None,
        }
    }
}

fn from_verdict(v: Verdict) -> AnsweredBy {
    match v {
        Verdict::Human => AnsweredBy::Human,
        Verdict::MachineStart => AnsweredBy::MachineStart,
        Verdict::MachineEndBeep => AnsweredBy::MachineEndBeep,
        Verdict::MachineEndSilence => AnsweredBy::MachineEndSilence,
        Verdict::MachineEndOther => AnsweredBy::MachineEndOther,
        Verdict::Fax => AnsweredBy::Fax,
        Verdict::Unknown => AnsweredBy::Unknown,
    }
}

impl Actor {
    /// Feeds one 20 ms frame of the called party (decoded) to the engine's detector while it
    /// listens.
    pub(super) fn detect_machine(&mut self, pcm: &[i16; FRAME_SAMPLES]) {
        let Some(detector) = self.machine.detector.as_mut() else {
            return;
        };
        let verdict = detector.push(pcm).map(from_verdict);
        if detector.is_done() {
            self.machine.detector = None;
        }
        if let Some(a) = verdict {
            self.store_answered(a);
            self.answered(a, "engine");
        }
    }

    fn store_answered(&self, a: AnsweredBy) {
        let (store, sid) = (self.state.store.clone(), self.sid.clone());
        self.info.tasks.spawn(async move {
            if let Err(e) = store.set_answered_by(&sid, a).await {
                tracing::warn!(call_sid = %sid, error = %e, "could not store the machine verdict");
            }
        });
    }

    /// Tells the bot's webhook (if it has one) what answered: a signed `answered_by` notice
    /// whose answer is not read.
    fn notify_answered(&self, a: AnsweredBy, source: &str) {
        let Some(url) = self.info.webhook.clone() else {
            return;
        };
        let (engine, info) = (self.engine.clone(), self.info.clone());
        let body = serde_json::json!({
            "type": "answered_by",
            "bot_id": info.bot_id.as_str(),
            "call_sid": info.call_sid,
            "answered_by": a.as_str(),
            "source": source,
            "from": info.from,
            "to": info.to,
            "timestamp": callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
        });
        let idem = format!("{}:answered_by:{}", info.call_sid, a.as_str());
        self.info.tasks.spawn(async move {
            if let Err(e) =
                crate::engine::tools::post(&engine, &info, &url, &body, &idem).await
            {
                tracing::debug!(call_sid = %info.call_sid, error = ?e, "answered_by notice not delivered");
            }
        });
    }

    /// A verdict on what answered (`source`: `carrier` or `engine`), and what follows from it.
    pub(super) fn answered(&mut self, a: AnsweredBy, source: &str) {
        if self.machine.answered_by == Some(a) {
            // Twilio retries a callback it thinks failed: one verdict acts once.
            return;
        }
        self.machine.answered_by = Some(a);
        self.events.emit(CallEvent::AnsweredBy {
            track_id: CALLER.into(),
            timestamp: now_ms(),
            answered_by: a.as_str().into(),
            source: source.into(),
        });
        self.notify_answered(a, source);
        if source == "carrier" {
            // The carrier has spoken: the engine's own guess is no longer needed.
            self.machine.detector = None;
        }
        if self.machine.settled || !a.is_machine() {
            return;
        }
        let message = self.machine.voicemail.clone();
        match (message, a) {
            (None, _) | (_, AnsweredBy::Fax) => {
                self.machine.settled = true;
                tracing::info!(call_sid = %self.sid, answered_by = a.as_str(), "hanging up on a machine");
                self.hang_up(End::Command {
                    reason: Some(format!("answered_by_{}", a.as_str())),
                    initiator: Some("machine_detection".into()),
                });
            }
            (Some(_), AnsweredBy::MachineStart) => {
                // Its greeting plays: stop talking to it and wait for the beep.
                self.barge_in();
                self.muted_caller = true;
            }
            (Some(text), _) => {
                self.machine.settled = true;
                self.muted_caller = true;
                // A reply still being prepared cannot be cut yet; it is when it starts (below).
                self.machine.unheard = self
                    .conv
                    .current()
                    .filter(|c| !c.interruptible())
                    .map(|c| c.turn);
                tracing::info!(call_sid = %self.sid, answered_by = a.as_str(), "leaving a message");
                self.speak_now(
                    TurnKind::Bot {
                        text,
                        then: Action::Hangup,
                        play_id: None,
                    },
                    true,
                );
            }
        }
    }

    /// Whether `turn`'s reply must not be heard (see [`Machine::unheard`]); the caller mutes the
    /// bot around the pump that would send its first frames, then calls [`Actor::drop_unheard`].
    pub(super) fn reply_unheard(&self, turn: u32) -> bool {
        self.machine.unheard == Some(turn)
    }

    /// Cuts the unheard reply once it has begun (its frames went out as silence): it is stored
    /// as interrupted with nothing heard, and the message queued behind it plays next.
    pub(super) fn drop_unheard(&mut self, turn: u32) {
        let begun = self
            .conv
            .current()
            .is_some_and(|c| c.turn == turn && c.interruptible());
        if begun {
            self.machine.unheard = None;
            self.barge_in();
            self.start_next();
        } else if self.conv.current().is_none_or(|c| c.turn != turn) {
            // It ended without a word to play.
            self.machine.unheard = None;
        }
    }
}
