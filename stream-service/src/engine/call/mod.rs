//! The per-call actor. It owns the verified media stream: inbound frames go through G.711 and the
//! endpointer without allocating; caller turns become pipeline tasks; replies are paced out as
//! 20 ms frames a little ahead of real time with a mark per chunk; echoed marks tell what the
//! caller heard, which is what barge-in cuts the history at. Timers: DTMF entry, silence reprompt,
//! maximum duration. At the end, words still unprocessed are transcribed and stored, the call
//! record is closed and the recording written.

use super::Engine;
use super::events::{CallEvent, EventBus, now_ms};
use super::live::{LiveCall, Registration};
use super::pipeline;
use super::recorder::Recorder;
use super::turn::{CallInfo, Fallback, ToCall, TurnInput, TurnKind};
use super::webhook::Action;
use crate::StreamState;
use crate::audio::vad::{Endpointer, VadConfig, VadEvent};
use crate::audio::{FRAME_BYTES, g711};
use axum::extract::ws::{Message, WebSocket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use callbot_core::domain::BotMode;
use callbot_core::recordings::recording_key;
use futures_util::StreamExt;
use lifecycle::{QItem, Reply, Turn};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames sent ahead of real time (the carrier buffers them): 200 ms.
const LEAD_FRAMES: u64 = 10;
const DEFAULT_GREETING: &str = "Hello! How can I help you today?";
const CALLER: &str = "caller";

#[derive(Debug, Clone, PartialEq)]
enum End {
    CallerHungUp,
    Bot,
    Transfer,
    Killed,
    MaxDuration,
    Silence,
    /// A `hangup` command (the `/call` client or a supervisor).
    Command {
        reason: Option<String>,
        initiator: Option<String>,
    },
}

struct Actor {
    engine: Engine,
    tenant: callbot_core::domain::TenantId,
    sid: callbot_core::domain::CallSid,
    state: StreamState,
    info: Arc<CallInfo>,
    events: EventBus,
    /// How audio, marks and hang-up reach the other party.
    leg: leg::Leg,
    out: mpsc::Sender<Message>,
    pipe_tx: mpsc::Sender<ToCall>,
    ep: Endpointer,
    recorder: Recorder,
    /// Recording chunks to the writer task (`None` once the call has ended).
    recording: Option<mpsc::Sender<Vec<u8>>>,
    recording_task: Option<tokio::task::JoinHandle<()>>,
    /// The rules of turn-taking, keys, silence and history (no I/O).
    conv: conversation::Conversation,
    current: Option<Turn>,
    end: Option<End>,
    inbound: Vec<u8>,
    carry: Vec<u8>,
    /// Frames and marks due this tick (kept to reuse its buffer).
    outbox: Vec<QItem>,
    malformed: u64,
    dropped: u64,
    /// Turn writes in flight.
    persisting: Vec<tokio::task::JoinHandle<()>>,
    /// Recognition and endpointing state (streaming recogniser, partials).
    listen: listen::Listen,
    /// `mute`d tracks: the caller's audio is not heard by the bot; the bot's is not sent.
    muted_caller: bool,
    muted_bot: bool,
    /// `playId` of the `tts` playing now, and the text of a streamed `tts` not yet spoken.
    playing: Option<String>,
    tts_stream: String,
}

/// Runs a Twilio media stream's call, once the stream is verified (its record read: same bot
/// and tenant as the token, not ended).
pub(crate) async fn run_twilio(
    socket: WebSocket,
    state: StreamState,
    call: callbot_core::store::CallRecord,
    bot: &callbot_core::domain::BotId,
    stream_sid: String,
) {
    let bot = match state.store.get_bot(&call.tenant, bot).await {
        Ok(Some(b)) => b,
        _ => return close(socket, "unknown bot").await,
    };
    let leg = leg::Leg::new(leg::LegKind::Twilio { stream_sid });
    drive(socket, state, call, bot, leg, None).await;
}

/// Runs one call over any leg until it ends: the engine is the same for every leg (`leg`), with
/// the RTC task's media events for a WebRTC leg.
pub(crate) async fn drive(
    socket: WebSocket,
    state: StreamState,
    call: callbot_core::store::CallRecord,
    bot: callbot_core::store::Bot,
    leg: leg::Leg,
    mut rtc_rx: Option<mpsc::Receiver<leg::RtcEvent>>,
) {
    let Some(engine) = state.engine.clone() else {
        return close(socket, "no call engine").await;
    };
    let settings = &state.settings.calls;
    let events = EventBus::new();
    let kill = CancellationToken::new();
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<crate::engine::command::Command>(32);
    let live = LiveCall {
        sid: call.sid.clone(),
        tenant: call.tenant.clone(),
        bot: bot.id.clone(),
        user: call.user.as_ref().map(|u| u.as_str().to_owned()),
        started_ms: now_ms(),
        events: events.clone(),
        kill: kill.clone(),
        channel: leg.channel(),
        commands: cmd_tx,
    };
    let registration: Registration = engine.live.register(live);
    // Where the call runs, for sockets that name it on another instance (`/frontend-stream`,
    // `/call?id=`): they are relayed here.
    let route = super::lease::LeaseKeeper::acquire_unlimited(
        state.store.clone(),
        callbot_core::store::leases::route_scope(&call.sid),
        state.settings.instance_base(),
    )
    .await;
    // The call's place among its tenant's concurrent calls (taken by `/voice`, `/outbound-call`
    // or the socket's `invite`), kept while the call lives.
    let lease = super::lease::LeaseKeeper::start(
        state.store.clone(),
        callbot_core::store::leases::calls_scope(&call.tenant),
        call.sid.to_string(),
    );
    // An outbound call with a `prompt` is a conversation the model leads, whatever the bot's mode.
    let instructions = call.prompt.as_ref().map(|p| p.as_str().to_owned());
    let mode = if instructions.is_some() {
        BotMode::Llm
    } else {
        bot.brain.mode()
    };
    let today = callbot_core::time_fmt::day_key(callbot_core::time_fmt::now());
    let system_prompt = crate::llm::prompt::system_prompt(&crate::llm::prompt::PromptParts {
        goal: bot.goal.as_str(),
        context: bot.context.as_str(),
        instructions: instructions.as_deref(),
        date: &today,
    });
    let info = Arc::new(CallInfo {
        bot_id: bot.id.clone(),
        call_sid: call.sid.to_string(),
        from: call.from.clone(),
        to: call.to.clone(),
        goal: instructions
            .clone()
            .unwrap_or_else(|| bot.goal.as_str().to_owned()),
        context: bot.context.as_str().to_owned(),
        webhook: bot.webhook.as_ref().map(|w| w.url().clone()),
        webhook_secret: bot.webhook_secret.expose_secret().as_bytes().to_vec(),
        policy: state.settings.webhook_policy,
        voice: bot.voice.clone(),
        webhook_timeout: settings.webhook_timeout,
        webhooks_per_second: settings.webhooks_per_bot_per_second,
        store: state.store.clone(),
        fallback_line: settings.fallback_line.clone(),
        not_heard_line: settings.not_heard_line.clone(),
        webhook_failure_limit: settings.webhook_failure_limit,
        mode,
        brain: bot.brain.clone(),
        system_prompt,
        tasks: super::tasks::CallTasks::new(),
    });
    let greeting = call
        .first_message
        .as_ref()
        .or(bot.first_message.as_ref())
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| DEFAULT_GREETING.to_owned());
    let max_call = bot
        .timers
        .max_call_secs()
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(settings.max_call);
    let silence_timeout = bot
        .timers
        .silence_timeout_secs()
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(settings.silence_timeout);
    let end_silence = bot
        .timers
        .end_silence_ms()
        .map(|ms| Duration::from_millis(ms.into()))
        .unwrap_or(settings.end_silence);
    let vad = VadConfig {
        end_silence,
        ..VadConfig::default()
    };
    let (listen, mut stt_rx, mut partial_rx) =
        listen::Listen::start(&engine, end_silence, bot.timers.smart_endpointing());

    let (sink, mut stream) = socket.split();
    let (out, writer) = crate::ws::writer(sink);
    // A `/call` client reads the call's events on its own socket.
    let done = CancellationToken::new();
    let forwarder = (!leg.channel().is_phone()).then(|| {
        tokio::spawn(control::forward_events(
            events.subscribe(),
            out.clone(),
            done.clone(),
        ))
    });
    let (pipe_tx, mut pipe_rx) = mpsc::channel(32);
    // Up to 16 s of recording waiting for a slow disk or S3; beyond that the actor keeps it.
    let (rec_tx, rec_rx) = mpsc::channel(8);
    let recording_task = tokio::spawn(super::recorder::write(
        engine.recordings.clone(),
        recording_key(call.tenant.as_str(), call.sid.as_str()),
        rec_rx,
    ));
    let now = Instant::now();
    let mut actor = Actor {
        engine,
        tenant: call.tenant.clone(),
        sid: call.sid.clone(),
        state: state.clone(),
        info,
        events,
        leg,
        out,
        pipe_tx,
        ep: Endpointer::new(vad),
        recorder: Recorder::default(),
        recording: Some(rec_tx),
        recording_task: Some(recording_task),
        conv: conversation::Conversation::new(
            now,
            silence_timeout,
            state.settings.calls.reprompt_line.clone(),
        ),
        current: None,
        end: None,
        inbound: Vec::with_capacity(512),
        carry: Vec::with_capacity(2 * FRAME_BYTES),
        outbox: Vec::with_capacity(2 * LEAD_FRAMES as usize),
        malformed: 0,
        dropped: 0,
        persisting: Vec::new(),
        listen,
        muted_caller: false,
        muted_bot: false,
        playing: None,
        tts_stream: String::new(),
    };
    tracing::info!(call_sid = %call.sid, bot_id = %bot.id, "call engine started");
    // The first line of a call: nothing is queued yet, so it cannot be refused.
    let _ = actor.conv.bot_turn(TurnKind::bot(greeting), now, false);
    actor.start_next();

    let mut beats = actor.engine.clock.subscribe();
    let mut too_big = false;
    let deadline = tokio::time::sleep(max_call);
    tokio::pin!(deadline);
    while actor.end.is_none() {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => actor.on_text(text.as_str()).await,
                Some(Ok(Message::Binary(data))) => actor.on_binary(&data),
                Some(Err(e)) if crate::ws::is_too_big(&e) => {
                    // A message over the socket's limit: closed with 1009, the call ends.
                    actor.send(crate::ws::too_big());
                    actor.end = Some(End::CallerHungUp);
                    too_big = true;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => actor.end = Some(End::CallerHungUp),
                Some(Ok(_)) => {}
            },
            ev = recv_opt(&mut rtc_rx) => match ev {
                Some(leg::RtcEvent::Audio(frame)) => actor.rtc_audio(&frame),
                Some(leg::RtcEvent::Closed(why)) => {
                    tracing::info!(call_sid = %call.sid, why, "WebRTC leg closed");
                    actor.end = Some(End::CallerHungUp);
                }
                None => {
                    rtc_rx = None;
                    actor.end = Some(End::CallerHungUp);
                }
            },
            Some(cmd) = cmd_rx.recv() => actor.command(cmd).await,
            Some(m) = pipe_rx.recv() => actor.on_pipeline(m).await,
            ev = recv_opt(&mut stt_rx) => match ev {
                Some(ev) => actor.on_stt(ev),
                None => stt_rx = None,
            },
            Some(p) = partial_rx.recv() => actor.on_partial(p),
            _ = beats.next() => actor.tick().await,
            _ = kill.cancelled() => actor.end = Some(End::Killed),
            _ = &mut deadline => actor.end = Some(End::MaxDuration),
        }
    }
    actor.finish(&call.tenant, &call.sid, &mut pipe_rx).await;
    lease.release().await;
    route.release().await;
    drop(actor);
    done.cancel();
    if let Some(f) = forwarder {
        let _ = f.await;
    }
    let _ = writer.await;
    drop(registration);
    if too_big {
        tokio::time::sleep(crate::ws::CLOSE_LINGER).await;
    }
}

/// The next message of an optional receiver; pending forever without one.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn close(mut socket: WebSocket, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1008,
            reason: reason.to_owned().into(),
        })))
        .await;
}

impl Actor {
    fn send(&mut self, m: Message) {
        if self.out.try_send(m).is_err() {
            self.dropped += 1;
        }
    }

    fn vad_event(&mut self, event: Option<VadEvent>) {
        let now = Instant::now();
        match event {
            Some(VadEvent::SpeechStarted) => {
                self.listen_started();
                let ts = now_ms();
                self.events.emit(CallEvent::Speaking {
                    track_id: CALLER.into(),
                    timestamp: ts,
                    start_time: ts,
                });
            }
            Some(VadEvent::SpeechEnded {
                audio,
                speech,
                silence,
            }) => {
                let ts = now_ms();
                self.events.emit(CallEvent::Silence {
                    track_id: CALLER.into(),
                    timestamp: ts,
                    start_time: ts.saturating_sub(silence.as_millis() as u64),
                    duration: silence.as_millis() as u64,
                });
                tracing::debug!(
                    speech_ms = speech.as_millis() as u64,
                    silence_ms = silence.as_millis() as u64,
                    "caller turn ended"
                );
                self.conv.caller_finished(now);
                self.listen_ended(audio, speech, now, silence);
            }
            Some(VadEvent::Discarded) | None => {}
        }
        if self.ep.in_speech() {
            self.conv.caller_active(now);
            if self.ep.speech_so_far() >= self.state.settings.calls.barge_in_min {
                self.barge_in();
            }
        }
    }

    fn start_next(&mut self) {
        if self.end.is_some() {
            return;
        }
        let Some((turn, q)) = self.conv.next(self.current.is_some()) else {
            return;
        };
        let conversation::Queued { kind, t0, endpoint } = q;
        let caller = match &kind {
            TurnKind::Caller { dtmf, audio, .. } => Some((audio.clone(), dtmf.clone())),
            TurnKind::Bot { .. } | TurnKind::Play { .. } => None,
        };
        self.playing = match &kind {
            TurnKind::Bot { play_id, .. } => play_id.clone(),
            _ => None,
        };
        let input = TurnInput {
            turn,
            kind,
            history: self.conv.history().to_vec(),
            webhook_failures: self.conv.webhook_failures(),
        };
        let task = tokio::spawn(pipeline::run(
            self.engine.clone(),
            self.info.clone(),
            input,
            self.pipe_tx.clone(),
        ));
        self.current = Some(Turn::new(turn, task, t0, endpoint, caller));
    }

    async fn on_pipeline(&mut self, m: ToCall) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        match m {
            ToCall::Stage { turn, stage } if turn == cur.turn => cur.stage(stage),
            ToCall::Streaming { turn } if turn == cur.turn => cur.begin_streaming(),
            ToCall::Recognised {
                turn,
                text,
                stt,
                provider,
                partials,
            } if turn == cur.turn => {
                cur.recognised(text.clone(), stt);
                cur.timings.stt_provider = Some(provider.to_owned());
                cur.timings.stt_final_ms = Some(stt.as_millis() as u64);
                cur.timings.partials = partials;
                if !text.is_empty() {
                    let ts = now_ms();
                    self.events.emit(CallEvent::AsrFinal {
                        track_id: CALLER.into(),
                        timestamp: ts,
                        index: turn,
                        start_time: None,
                        end_time: Some(ts),
                        text: text.clone(),
                    });
                    self.events.emit(CallEvent::Transcription {
                        timestamp: ts,
                        role: "user".into(),
                        text,
                    });
                }
            }
            ToCall::Reply {
                turn,
                say,
                action,
                fallback,
                webhook,
                sentences,
            } if turn == cur.turn => {
                if webhook.is_some() {
                    let failed = fallback.as_ref().is_some_and(Fallback::is_webhook_failure);
                    self.conv.webhook_result(failed);
                }
                let failures = self.conv.webhook_failures();
                if let Some(reason) = &fallback {
                    let error = match reason {
                        Fallback::TransferRefused => "the webhook asked to transfer the call to a number outside the bot's transfer_numbers; refused".into(),
                        Fallback::WebhookUnavailable => match &action {
                            Action::Transfer(to) => format!("the webhook failed {failures} turns in a row; transferring the call to the fallback number {to}"),
                            _ => format!("the webhook failed {failures} turns in a row; ending the call (the bot has no fallback_number)"),
                        },
                        other => format!("webhook failed ({}); spoke the fallback line", other.code()),
                    };
                    self.events.emit(CallEvent::Error {
                        track_id: format!("reply-{turn}"),
                        timestamp: now_ms(),
                        sender: "webhook".into(),
                        error,
                        code: None,
                    });
                }
                let reply = Reply {
                    say,
                    action,
                    fallback,
                };
                cur.reply(reply, sentences, webhook);
            }
            ToCall::Audio {
                turn,
                sentence,
                ulaw,
                tts,
                provider,
            } if turn == cur.turn => cur.audio(sentence, &ulaw, tts, provider),
            ToCall::SentenceDone { turn, sentence } if turn == cur.turn => {
                cur.sentence_done(sentence)
            }
            ToCall::TtsFallback {
                turn,
                sentence,
                provider,
                error,
            } if turn == cur.turn => {
                cur.timings.tts_fallback = true;
                self.events.emit(CallEvent::Error {
                    track_id: format!("reply-{turn}"),
                    timestamp: now_ms(),
                    sender: "tts".into(),
                    error: format!(
                        "tts_fallback: {provider} failed on sentence {sentence} ({error}); the local voice spoke it"
                    ),
                    code: None,
                });
            }
            ToCall::SpeechFailed {
                turn,
                sentence,
                error,
            } if turn == cur.turn => {
                self.events.emit(CallEvent::Error {
                    track_id: format!("reply-{turn}"),
                    timestamp: now_ms(),
                    sender: "tts".into(),
                    error: format!("sentence {sentence}: {error}"),
                    code: None,
                });
            }
            ToCall::Sentence { turn, text } if turn == cur.turn => cur.sentence(text),
            ToCall::Act {
                turn,
                action,
                fallback,
            } if turn == cur.turn => cur.act(action, fallback),
            ToCall::Llm { turn, timings } if turn == cur.turn => {
                if let Some(e) = &timings.error {
                    self.events.emit(CallEvent::Error {
                        track_id: format!("reply-{turn}"),
                        timestamp: now_ms(),
                        sender: "llm".into(),
                        error: format!("language model failed ({e})"),
                        code: None,
                    });
                }
                cur.llm(timings);
            }
            ToCall::Finished { turn } if turn == cur.turn => {
                cur.synthesis_finished();
                self.maybe_complete().await;
            }
            _ => {}
        }
        // First audio of a reply goes out now, not at the next tick.
        self.pump(Instant::now(), false);
    }

    fn mark_echoed(&mut self, name: &str) {
        let Some(cur) = self.current.as_mut() else {
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

    async fn tick(&mut self) {
        let now = Instant::now();
        while let Some((turn, id)) = self.leg.due_mark(now) {
            if let Some(cur) = self.current.as_mut().filter(|c| c.turn == turn) {
                cur.mark_back(id);
            }
        }
        self.pump(now, true);
        if let Some(cur) = self.current.as_mut() {
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
        self.maybe_complete().await;
        self.timers(now).await;
        self.listen_timers();
        self.start_next();
    }

    /// Sends the reply's frames that are due (real time plus the lead) and the marks behind them.
    ///
    /// The lead goes out at once; after that one frame per tick. The frame clock is anchored on
    /// the first tick (30 ms back, so ticks fall mid-frame and ±10 ms of timer jitter never sends
    /// two frames on one tick and none on the next).
    fn pump(&mut self, now: Instant, tick: bool) {
        let mut send = std::mem::take(&mut self.outbox);
        let mut started_track = None;
        if let Some(cur) = self.current.as_mut() {
            let p = &mut cur.playback;
            if p.started.is_some() && p.origin.is_none() && tick {
                p.origin = now.checked_sub(Duration::from_millis(30));
            }
            if !p.queue.is_empty() {
                if p.started.is_none() {
                    p.started = Some(now);
                    started_track = Some(cur.turn);
                }
                let lead = self.leg.lead_frames();
                let due = match p.origin {
                    Some(o) => lead + now.duration_since(o).as_millis() as u64 / 20,
                    None => lead,
                };
                while p.sent < due {
                    match p.queue.pop_front() {
                        Some(QItem::Frame(f)) => {
                            p.sent += 1;
                            send.push(QItem::Frame(f));
                        }
                        Some(QItem::Mark(id)) => {
                            p.outstanding += 1;
                            send.push(QItem::Mark(id));
                        }
                        None => break,
                    }
                }
                // A mark right behind the last due frame goes out with it.
                while let Some(QItem::Mark(_)) = p.queue.front() {
                    if let Some(QItem::Mark(id)) = p.queue.pop_front() {
                        p.outstanding += 1;
                        send.push(QItem::Mark(id));
                    }
                }
                if cur.timings.first_frame_ms.is_none() && p.sent > 0 {
                    cur.timings.first_frame_ms = Some(cur.t0.elapsed().as_millis() as u64);
                }
            }
        }
        if let Some(turn) = started_track {
            self.events.emit(CallEvent::TrackStart {
                track_id: format!("reply-{turn}"),
                timestamp: now_ms(),
            });
        }
        let turn = self.current.as_ref().map(|c| c.turn).unwrap_or(0);
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
                    if let Some(m) = self.leg.mark(turn, id, now) {
                        self.send(m);
                    }
                }
            }
        }
        self.outbox = send;
    }

    /// Keys then quiet make a turn; silence gets a reprompt, then ends the call (the rules are
    /// the conversation's; what is queued starts at the end of the tick).
    async fn timers(&mut self, now: Instant) {
        let due = self
            .conv
            .tick(now, self.current.is_some(), self.ep.in_speech());
        if due == conversation::Due::GiveUp {
            self.hang_up(End::Silence).await;
        }
    }

    /// Completes the current turn once its reply has been synthesised, sent and heard.
    async fn maybe_complete(&mut self) {
        let done = self.current.as_mut().is_some_and(Turn::complete);
        if done {
            self.complete(false).await;
        }
    }
}

mod control;
mod conversation;
mod media_in;
/// The media fast path, for the parser fuzz tests.
#[cfg(test)]
pub(crate) mod media_in_fast {
    pub(crate) use super::media_in::{Fast, fast_media};
}
pub(crate) use control::forward_events;
mod ending;
pub mod leg;
mod lifecycle;
mod listen;
mod turns;
