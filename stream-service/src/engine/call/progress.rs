//! A turn's progress on the actor: the turn task's messages (stage, words heard, the reply and
//! its audio, failures), the 20 ms beat that paces the reply out and releases overdue marks, the
//! conversation's timers, and the turn's completion.

use super::Actor;
use super::conversation;
use super::lifecycle::{Reply, Turn};
use super::playout::QItem;
use super::{CALLER, End, leg};
use crate::audio::{FRAME_BYTES, g711};
use crate::engine::events::{CallEvent, EventBus, now_ms};
use crate::engine::turn::{Fallback, ToCall};
use crate::engine::webhook::Action;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::time::{Duration, Instant};

impl Actor {
    pub(super) fn on_pipeline(&mut self, m: ToCall) {
        let m = match m {
            ToCall::Command(cmd) => return self.command(cmd),
            ToCall::TransferDone { number, result } => {
                return self.transfer_done(number, result);
            }
            ToCall::Answered(a) => return self.answered(a, "carrier"),
            m => m,
        };
        let Some(cur) = self.conv.current_mut().filter(|c| Some(c.turn) == m.turn()) else {
            return;
        };
        let turn = cur.turn;
        match m {
            ToCall::Stage { stage, .. } => cur.stage(stage),
            ToCall::Streaming { .. } => cur.begin_streaming(),
            ToCall::Recognised {
                text,
                stt,
                provider,
                partials,
                ..
            } => {
                cur.timings.stt_provider = Some(provider.to_owned());
                cur.timings.stt_final_ms = Some(stt.as_millis() as u64);
                cur.timings.partials = partials;
                if !text.is_empty() {
                    heard_events(&self.events, turn, &text);
                }
                cur.recognised(text, stt);
            }
            ToCall::Reply {
                say,
                action,
                fallback,
                webhook,
                sentences,
                ..
            } => {
                let reply = Reply {
                    say,
                    action,
                    fallback,
                };
                self.on_reply(reply, sentences, webhook);
            }
            ToCall::Audio {
                sentence,
                ulaw,
                tts,
                provider,
                ..
            } => cur.audio(sentence, &ulaw, tts, provider),
            ToCall::SentenceDone { sentence, .. } => cur.sentence_done(sentence),
            ToCall::TtsFallback {
                sentence,
                provider,
                error,
                ..
            } => {
                cur.timings.tts_fallback = true;
                let error = format!(
                    "tts_fallback: {provider} failed on sentence {sentence} ({error}); the local voice spoke it"
                );
                turn_error(&self.events, turn, "tts", error);
            }
            ToCall::SpeechFailed {
                sentence, error, ..
            } => {
                let error = format!("sentence {sentence}: {error}");
                turn_error(&self.events, turn, "tts", error);
            }
            ToCall::Sentence { text, .. } => cur.sentence(text),
            ToCall::Act {
                action, fallback, ..
            } => cur.act(action, fallback),
            ToCall::Llm { timings, .. } => {
                if let Some(e) = &timings.error {
                    let error = format!("language model failed ({e})");
                    turn_error(&self.events, turn, "llm", error);
                }
                cur.llm(timings);
            }
            ToCall::Finished { .. } => {
                cur.synthesis_finished();
                self.maybe_complete();
            }
            // The call's own messages were taken above (they name no turn).
            ToCall::Command(_) | ToCall::TransferDone { .. } | ToCall::Answered(_) => {}
        }
        // First audio of a reply goes out now, not at the next tick (as silence for a reply a
        // machine's message replaces, which is then cut).
        let unheard = self.reply_unheard(turn);
        let muted = self.muted_bot;
        self.muted_bot = muted || unheard;
        self.pump(Instant::now(), false);
        self.muted_bot = muted;
        if unheard {
            self.drop_unheard(turn);
        }
    }

    /// The turn's reply is decided (or begins): a webhook answer counts toward (or resets) the
    /// failures in a row, and a fallback is reported.
    fn on_reply(&mut self, reply: Reply, sentences: Vec<String>, webhook: Option<Duration>) {
        let Some(turn) = self.conv.current().map(|c| c.turn) else {
            return;
        };
        if webhook.is_some() {
            let failed = reply
                .fallback
                .as_ref()
                .is_some_and(Fallback::is_webhook_failure);
            self.conv.webhook_result(failed);
        }
        if let Some(reason) = &reply.fallback {
            let error = fallback_error(reason, &reply.action, self.conv.webhook_failures());
            turn_error(&self.events, turn, "webhook", error);
        }
        if let Some(cur) = self.conv.current_mut() {
            cur.reply(reply, sentences, webhook);
        }
    }

    pub(super) fn mark_echoed(&mut self, name: &str) {
        let Some(cur) = self.conv.current_mut() else {
            return;
        };
        let Some((turn, id)) = name
            .split_once('-')
            .and_then(|(t, i)| Some((t.parse::<u32>().ok()?, i.parse::<u32>().ok()?)))
        else {
            return;
        };
        if turn == cur.turn {
            cur.mark_back(id);
        }
    }

    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        while let Some((turn, id)) = self.leg.due_mark(now) {
            if let Some(cur) = self.conv.current_mut().filter(|c| c.turn == turn) {
                cur.mark_back(id);
            }
        }
        self.pump(now, true);
        if let Some(cur) = self.conv.current_mut() {
            let lost = cur.release_overdue_marks(now);
            if lost > 0 {
                tracing::warn!(call_sid = %self.sid, turn = cur.turn, lost, "the carrier did not echo marks; the reply counts as heard by its length");
                self.events.emit(CallEvent::Error {
                    track_id: format!("reply-{}", cur.turn),
                    timestamp: now_ms(),
                    sender: "telephony".into(),
                    error: format!(
                        "{lost} playback marks did not come back; the reply counts as heard by its length"
                    ),
                    code: None,
                });
            }
        }
        self.maybe_complete();
        self.timers(now);
        self.listen_timers();
        self.start_next();
    }

    /// Sends the reply's frames that are due (real time plus the lead; see [`playout::Playout::due`])
    /// and the marks behind them.
    pub(super) fn pump(&mut self, now: Instant, tick: bool) {
        let mut send = std::mem::take(&mut self.outbox);
        let mut started_track = None;
        if let Some(cur) = self.conv.current_mut() {
            if cur
                .playback
                .due(now, tick, self.leg.lead_frames(), &mut send)
            {
                started_track = Some(cur.turn);
            }
            if cur.timings.first_frame_ms.is_none() && cur.playback.sent() > 0 {
                cur.timings.first_frame_ms = Some(cur.t0.elapsed().as_millis() as u64);
            }
        }
        if let Some(turn) = started_track {
            self.events.emit(CallEvent::TrackStart {
                track_id: format!("reply-{turn}"),
                timestamp: now_ms(),
            });
        }
        let turn = self.conv.current().map(|c| c.turn).unwrap_or(0);
        for item in send.drain(..) {
            match item {
                QItem::Frame(f) => {
                    let f = if self.muted_bot {
                        [g711::SILENCE; FRAME_BYTES]
                    } else {
                        f
                    };
                    self.recorder.bot_frame(&f);
                    if self.events.observed() {
                        self.events.emit(CallEvent::Audio {
                            timestamp: now_ms(),
                            track: "outbound".into(),
                            payload: B64.encode(f),
                        });
                    }
                    match self.leg.frame(&f, now) {
                        Ok(Some(m)) => self.send(m),
                        Ok(None) => {}
                        Err(leg::Full) => self.dropped += 1,
                    }
                }
                QItem::Mark(id) => {
                    if let Some(m) = self.leg.take_media() {
                        self.send(m);
                    }
                    if let Some(m) = self.leg.mark(turn, id, now) {
                        self.send(m);
                    }
                }
            }
        }
        if let Some(m) = self.leg.take_media() {
            self.send(m);
        }
        self.outbox = send;
    }

    /// Keys then quiet make a turn; silence gets a reprompt, then ends the call (the rules are
    /// the conversation's; what is queued starts at the end of the tick).
    pub(super) fn timers(&mut self, now: Instant) {
        let due = self.conv.tick(now, self.ep.in_speech());
        if due == conversation::Due::GiveUp {
            self.hang_up(End::Silence);
        }
    }

    /// Completes the current turn once its reply has been synthesised, sent and heard.
    pub(super) fn maybe_complete(&mut self) {
        let done = self.conv.current_mut().is_some_and(Turn::complete);
        if done {
            self.complete(false);
        }
    }
}

/// An `error` event about turn `turn`'s reply.
fn turn_error(events: &EventBus, turn: u32, sender: &str, error: String) {
    events.emit(CallEvent::Error {
        track_id: format!("reply-{turn}"),
        timestamp: now_ms(),
        sender: sender.into(),
        error,
        code: None,
    });
}

/// The caller's words of turn `turn`, recognised: `asrFinal` and the transcript line.
fn heard_events(events: &EventBus, turn: u32, text: &str) {
    let ts = now_ms();
    events.emit(CallEvent::AsrFinal {
        track_id: CALLER.into(),
        timestamp: ts,
        index: turn,
        start_time: None,
        end_time: Some(ts),
        text: text.to_owned(),
    });
    events.emit(CallEvent::Transcription {
        timestamp: ts,
        role: "user".into(),
        text: text.to_owned(),
    });
}

/// The `error` event's text for a reply that fell back (`failures`: webhook failures in a row).
fn fallback_error(reason: &Fallback, action: &Action, failures: u32) -> String {
    match (reason, action) {
        (Fallback::TransferRefused, _) => "the webhook asked to transfer the call to a number outside the bot's transfer_numbers; refused".into(),
        (Fallback::WebhookUnavailable, Action::Transfer(to)) => format!(
            "the webhook failed {failures} turns in a row; transferring the call to the fallback number {to}"
        ),
        (Fallback::WebhookUnavailable, _) => format!(
            "the webhook failed {failures} turns in a row; ending the call (the bot has no fallback_number)"
        ),
        (other, _) => format!("webhook failed ({}); spoke the fallback line", other.code()),
    }
}
