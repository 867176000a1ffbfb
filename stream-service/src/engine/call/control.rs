//! RustPBX commands on a call (from its own `/call` socket or a supervisor's) and the forwarding of
//! the call's events to a `/call` client. A bad command is answered with an `error` event; the call
//! goes on.

use super::End;
use super::conversation;
use super::leg;
use super::lifecycle::Turn;
use super::{Actor, CALLER};
use crate::engine::command::{self, Command, Speaker};
use crate::engine::events::CallEvent;
use crate::engine::events::now_ms;
use crate::engine::turn::{Heard, TurnKind};
use crate::engine::webhook::Action;
use axum::extract::ws::Message;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A `tts` command's fields.
struct Tts {
    text: String,
    play_id: Option<String>,
    auto_hangup: bool,
    streaming: bool,
    end_of_stream: bool,
}

/// Sentence ends in a streamed `tts` (what has arrived up to the last one is spoken).
const SENTENCE_END: [char; 4] = ['.', '!', '?', '\n'];

impl Actor {
    /// A text frame: the Twilio media protocol on a phone leg, a command on the others.
    pub(super) fn on_text(&mut self, text: &str) {
        if self.leg.channel().is_phone() {
            return self.inbound(text);
        }
        match self.command_rate.check(Instant::now()) {
            crate::rate::Verdict::Allow => {}
            crate::rate::Verdict::Refuse => {
                return self.command_error(
                    "rate_limited",
                    format!(
                        "more than {} commands a second; this one was not applied",
                        crate::rate::PER_SECOND
                    ),
                );
            }
            crate::rate::Verdict::Close => {
                tracing::warn!(call_sid = %self.sid, "closing a socket that kept sending commands over the rate");
                // The `hangup` event closes the socket with 1008, after the errors before it.
                self.linger = true;
                self.end = Some(End::TooManyCommands);
                return;
            }
        }
        match command::parse(text) {
            Ok(cmd) => self.command(cmd),
            Err(e) => self.command_error(e.code, e.message),
        }
    }

    /// The caller's words given as text (`text` command): a turn heard as written.
    fn caller_text(&mut self, text: String) {
        self.events.emit(CallEvent::AsrFinal {
            track_id: CALLER.into(),
            timestamp: now_ms(),
            index: self.conv.next_number(),
            start_time: None,
            end_time: None,
            text: text.clone(),
        });
        let heard = Heard {
            text,
            provider: "text",
            after: Duration::ZERO,
        };
        let dtmf = self.conv.take_keys();
        self.queue_caller(None, dtmf, Some(heard), 0, Instant::now(), Duration::ZERO);
    }

    fn command_error(&mut self, code: &str, message: String) {
        let status = match code {
            "unsupported_command" => 501,
            "forbidden" | "transfer_refused" => 403,
            "too_many_queued" | "rate_limited" => 429,
            _ => 400,
        };
        tracing::debug!(call_sid = %self.sid, code, %message, "call command refused");
        self.events.emit(CallEvent::Error {
            track_id: "command".into(),
            timestamp: now_ms(),
            sender: "command".into(),
            error: format!("{code}: {message}"),
            code: Some(status),
        });
    }

    /// Applies one command to the call.
    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Invite(_) => self.command_error(
                "invalid_command",
                "this socket is already in a call; open another for a new one".into(),
            ),
            Command::Candidate(list) => match &self.leg.kind {
                leg::LegKind::Rtc { candidates, .. } => {
                    let policy = crate::rtc::Policy::from_settings(&self.state.settings.rtc);
                    let mut refused = Vec::new();
                    for c in list {
                        match policy.remote_candidate(&c) {
                            Ok(()) => {
                                let _ = candidates.try_send(c);
                            }
                            Err(why) => refused.push(why),
                        }
                    }
                    for why in refused {
                        self.command_error("forbidden", format!("candidate refused: {why}"));
                    }
                }
                _ => self.command_error(
                    "invalid_command",
                    "candidate is for WebRTC legs (/call/webrtc)".into(),
                ),
            },
            Command::Tts {
                text,
                play_id,
                auto_hangup,
                streaming,
                end_of_stream,
            } => {
                let tts = Tts {
                    text,
                    play_id,
                    auto_hangup,
                    streaming,
                    end_of_stream,
                };
                self.tts(tts);
            }
            Command::Play { url, auto_hangup } => {
                let then = if auto_hangup {
                    Action::Hangup
                } else {
                    Action::Continue
                };
                self.speak_now(TurnKind::Play { url, then }, true);
            }
            Command::Interrupt => self.barge_in(),
            Command::Hangup { reason, initiator } => {
                self.hang_up(End::Command { reason, initiator })
            }
            Command::Refer { target, timeout } => self.refer(target, timeout),
            Command::Mute(track) | Command::Unmute(track) if self.track(&track).is_none() => self
                .command_error(
                    "invalid_command",
                    format!("unknown trackId {track:?}: \"caller\" or \"bot\""),
                ),
            Command::Mute(track) => self.set_muted(&track, true),
            Command::Unmute(track) => self.set_muted(&track, false),
            Command::History { speaker, text } => {
                let role = match speaker {
                    Speaker::User => "user",
                    Speaker::Bot => "bot",
                };
                self.conv.remember(role, text.clone());
                self.events.emit(CallEvent::Transcription {
                    timestamp: now_ms(),
                    role: role.into(),
                    text,
                });
            }
            Command::CallerText(text) => self.caller_text(text),
            Command::Unsupported(name) => self.command_error(
                "unsupported_command",
                format!("{name} is not supported on this platform"),
            ),
        }
    }

    /// `tts`: the text spoken now (a streamed one sentence by sentence as it arrives); a new
    /// `playId` interrupts what plays, the same one queues behind it.
    fn tts(&mut self, t: Tts) {
        let text = if t.streaming {
            self.tts_stream.push_str(&t.text);
            if self.tts_stream.chars().count() > command::MAX_TEXT {
                self.tts_stream.clear();
                return self.command_error(
                    "invalid_command",
                    format!(
                        "streamed tts text grew past {} characters",
                        command::MAX_TEXT
                    ),
                );
            }
            let cut = if t.end_of_stream {
                self.tts_stream.len()
            } else {
                self.tts_stream
                    .rfind(SENTENCE_END)
                    .map(|i| i + 1)
                    .unwrap_or(0)
            };
            self.tts_stream.drain(..cut).collect::<String>()
        } else {
            t.text
        };
        if text.trim().is_empty() {
            return;
        }
        let then = if t.auto_hangup && (!t.streaming || t.end_of_stream) {
            Action::Hangup
        } else {
            Action::Continue
        };
        let same = t.play_id.is_some() && t.play_id == self.playing;
        let kind = TurnKind::Bot {
            text: text.trim().to_owned(),
            then,
            play_id: t.play_id,
        };
        self.speak_now(kind, !same);
    }

    /// `refer`: a transfer, on a phone leg, to a number the bot declares.
    fn refer(&mut self, target: callbot_core::domain::PhoneNumber, timeout: Option<u32>) {
        if !self.leg.channel().is_phone() {
            return self.command_error(
                "invalid_command",
                format!(
                    "refer needs a phone leg; this call is {}",
                    self.leg.channel().as_str()
                ),
            );
        }
        if !self.info.brain.may_transfer_to(target.as_str()) {
            return self.command_error(
                "transfer_refused",
                format!("refer to {target} refused: it is not in the bot's transfer_numbers"),
            );
        }
        self.transfer(&target.to_string(), timeout);
    }

    /// Plays `kind` next: at once, cutting what plays now when `cut` (RustPBX: a `tts` with
    /// another `playId` interrupts), else after it. A reply still being prepared for the caller
    /// is never cut (their words would be lost): the new audio follows it.
    pub(super) fn speak_now(&mut self, kind: TurnKind, cut: bool) {
        let now = Instant::now();
        let cut = cut && self.conv.current().is_some_and(Turn::interruptible);
        if self.conv.bot_turn(kind, now, cut).is_err() {
            return self.command_error(
                "too_many_queued",
                format!(
                    "{} tts/play items are queued already; wait for a trackEnd",
                    conversation::MAX_QUEUED
                ),
            );
        }
        if cut {
            self.barge_in();
        }
        self.start_next();
        self.pump(now, false);
    }

    /// `true` for the caller's track, `false` for the bot's.
    fn track(&self, id: &str) -> Option<bool> {
        match id {
            "caller" | "user" => Some(true),
            "bot" => Some(false),
            _ if id.starts_with("reply-") => Some(false),
            _ => None,
        }
    }

    fn set_muted(&mut self, track: &str, muted: bool) {
        match self.track(track) {
            Some(true) => self.muted_caller = muted,
            Some(false) => self.muted_bot = muted,
            None => {}
        }
    }
}

/// Sends the call's events to a `/call` client as text frames until the call is `done`, then
/// what is left and a close. Events are never dropped for a slow client here; one that falls
/// more than the bus's capacity behind is told how many it missed.
pub(crate) async fn forward_events(
    mut rx: tokio::sync::broadcast::Receiver<CallEvent>,
    out: mpsc::Sender<Message>,
    done: CancellationToken,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let text = |e: &CallEvent| serde_json::to_string(e).ok().map(Message::text);
    let lagged = |n: u64| CallEvent::Error {
        track_id: "call".into(),
        timestamp: now_ms(),
        sender: "call".into(),
        error: format!("this client fell behind and missed {n} events"),
        code: None,
    };
    // Once the call is done, what the bus still holds is sent without waiting for more.
    let mut draining = false;
    loop {
        let event = if draining {
            match rx.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Lagged(n)) => lagged(n),
                Err(_) => break,
            }
        } else {
            tokio::select! {
                biased;
                e = rx.recv() => match e {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => lagged(n),
                    Err(RecvError::Closed) => break,
                },
                _ = done.cancelled() => {
                    draining = true;
                    continue;
                }
            }
        };
        if matches!(event, CallEvent::Audio { .. }) {
            continue;
        }
        if let Some(m) = text(&event)
            && !crate::ws::send(&out, m).await
        {
            return;
        }
        // The call's last event: its clients (its own socket, supervisors) are told and closed
        // (a socket that flooded commands with 1008), whether it came before or after `done`.
        if let CallEvent::Hangup { reason, .. } = &event {
            let close = if reason == crate::rate::HANGUP_REASON {
                crate::rate::too_many()
            } else {
                Message::Close(None)
            };
            let _ = crate::ws::send(&out, close).await;
            return;
        }
    }
    let _ = crate::ws::send(&out, Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hangup(reason: &str) -> CallEvent {
        CallEvent::Hangup {
            timestamp: 0,
            reason: reason.into(),
            initiator: "system".into(),
        }
    }

    /// Runs the forwarder over `events`, published before the call is `done`, and returns what
    /// it wrote: the race where `done` is seen before the last event is not left to chance.
    async fn forwarded(events: Vec<CallEvent>) -> Vec<Message> {
        let (tx, rx) = tokio::sync::broadcast::channel(16);
        let (out, mut out_rx) = mpsc::channel(16);
        let done = CancellationToken::new();
        for e in events {
            tx.send(e).unwrap();
        }
        done.cancel();
        forward_events(rx, out, done).await;
        let mut got = Vec::new();
        while let Ok(m) = out_rx.try_recv() {
            got.push(m);
        }
        got
    }

    fn close_code(m: &Message) -> Option<u16> {
        match m {
            Message::Close(f) => f.as_ref().map(|f| f.code),
            _ => panic!("not a close: {m:?}"),
        }
    }

    #[tokio::test]
    async fn a_flood_hangup_read_after_done_still_closes_with_1008() {
        let got = forwarded(vec![hangup(crate::rate::HANGUP_REASON)]).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(close_code(&got[1]), Some(1008));
    }

    #[tokio::test]
    async fn an_ordinary_hangup_closes_without_a_code_and_nothing_follows_it() {
        let got = forwarded(vec![hangup("caller"), hangup("caller")]).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(close_code(&got[1]), None);
    }
}
