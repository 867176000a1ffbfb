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
use super::turn::{CallInfo, ToCall, TurnInput, TurnKind};
use crate::StreamState;
use crate::audio::FRAME_BYTES;
use crate::audio::vad::{Endpointer, VadEvent};
use axum::extract::ws::{Message, WebSocket};
use callbot_core::recordings::recording_key;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use lifecycle::Turn;
use playout::QItem;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CALLER: &str = "caller";

#[derive(Debug, Clone, PartialEq)]
enum End {
    CallerHungUp,
    Bot,
    Transfer,
    Killed,
    MaxDuration,
    Silence,
    /// The call's own socket kept sending commands over the rate (closed with 1008).
    TooManyCommands,
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
    out: out::Out,
    pipe_tx: mpsc::Sender<ToCall>,
    ep: Endpointer,
    recorder: Recorder,
    /// Recording chunks to the writer task (`None` once the call has ended).
    recording: Option<mpsc::Sender<Vec<u8>>>,
    recording_task: Option<tokio::task::JoinHandle<()>>,
    /// The rules of turn-taking, keys, silence and history (no I/O).
    conv: conversation::Conversation,
    /// The current turn's task (aborted when the turn ends early or the call does).
    turn_task: Option<tokio::task::JoinHandle<()>>,
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
    /// The suggestion started early on the caller's words, for their next turn (`preempt.rs`).
    early: Option<crate::engine::turn::Early>,
    /// `mute`d tracks: the caller's audio is not heard by the bot; the bot's is not sent.
    muted_caller: bool,
    muted_bot: bool,
    /// Commands this call's own socket may still send (`/call` legs).
    command_rate: crate::rate::CommandRate,
    /// The socket was closed for what its client sent: held a moment before it is dropped, so
    /// the client reads the close before its unread messages reset the connection.
    linger: bool,
    /// `playId` of the `tts` playing now, and the text of a streamed `tts` not yet spoken.
    playing: Option<String>,
    tts_stream: String,
    /// A transfer on its way (its result comes back on the call's queue) holds the next turn.
    transferring: bool,
    /// The leg's socket has closed (during a transfer, the carrier taking the call).
    stream_closed: bool,
    /// What answered, and what a machine gets.
    machine: machine::Machine,
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
    rtc_rx: Option<mpsc::Receiver<leg::RtcEvent>>,
) {
    let Some(engine) = state.engine.clone() else {
        return close(socket, "no call engine").await;
    };
    let events = EventBus::new();
    let kill = CancellationToken::new();
    // One queue for everything that reaches the loop from its tasks and from outside.
    let (pipe_tx, pipe_rx) = mpsc::channel(64);
    let live = LiveCall {
        sid: call.sid.clone(),
        tenant: call.tenant.clone(),
        bot: bot.id.clone(),
        user: call.user.as_ref().map(|u| u.as_str().to_owned()),
        started_ms: now_ms(),
        events: events.clone(),
        kill: kill.clone(),
        channel: leg.channel(),
        commands: pipe_tx.clone(),
    };
    let registration: Registration = engine.live.register(live);
    let presence = super::lease::Presence::enter(&state, &call).await;
    let plan = setup::plan(&state, &call, &bot);
    let (listen, stt_rx) = listen::Listen::start(&engine, &plan);
    let (sink, stream) = socket.split();
    // A `/call` client reads the call's events on its own socket, from a forwarder task that
    // shares a writer task with the call; a Twilio leg's loop writes its socket itself.
    let done = CancellationToken::new();
    let (out, writer, forwarder) = if leg.channel().is_phone() {
        (out::Out::direct(sink), None, None)
    } else {
        let (tx, writer) = crate::ws::writer(sink);
        let forwarder = tokio::spawn(control::forward_events(
            events.subscribe(),
            tx.clone(),
            done.clone(),
        ));
        (out::Out::Task(tx), Some(writer), Some(forwarder))
    };
    let max_call = plan.max_call;
    let io = Io {
        events,
        leg,
        out,
        pipe_tx,
        listen,
    };
    let mut actor = Actor::new(&state, engine, &call, plan, io);
    tracing::info!(call_sid = %call.sid, bot_id = %bot.id, "call engine started");
    let inputs = Inputs {
        stream,
        rtc: rtc_rx,
        pipeline: pipe_rx,
        stt: stt_rx,
        kill,
        max_call,
    };
    let (linger, mut pipe_rx) = actor.run(inputs).await;
    actor.finish(&call.tenant, &call.sid, &mut pipe_rx).await;
    actor.out.finish().await;
    presence.leave().await;
    drop(actor);
    done.cancel();
    if let Some(f) = forwarder {
        let _ = f.await;
    }
    if let Some(w) = writer {
        let _ = w.await;
    }
    drop(registration);
    if let Some(stream) = linger {
        // The close is out; the socket stays open a moment so the client reads it before its
        // unread messages reset the connection.
        tokio::time::sleep(crate::ws::CLOSE_LINGER).await;
        drop(stream);
    }
}

/// The call's channels and parts the actor is built around.
struct Io {
    events: EventBus,
    leg: leg::Leg,
    out: out::Out,
    pipe_tx: mpsc::Sender<ToCall>,
    listen: listen::Listen,
}

impl Actor {
    /// The actor at the call's start, its greeting queued and started.
    fn new(
        state: &StreamState,
        engine: Engine,
        call: &callbot_core::store::CallRecord,
        plan: setup::Plan,
        io: Io,
    ) -> Self {
        // Up to 16 s of recording waiting for a slow disk or S3; beyond that the actor keeps it.
        let (rec_tx, rec_rx) = mpsc::channel(8);
        let recording_task = tokio::spawn(super::recorder::write(
            engine.recordings.clone(),
            recording_key(call.tenant.as_str(), call.sid.as_str()),
            rec_rx,
        ));
        let now = Instant::now();
        let vad = plan.vad();
        let machine = machine::Machine::new(plan.voicemail.clone(), io.leg.detects_machine());
        let conv = conversation::Conversation::new(
            now,
            plan.silence_timeout,
            state.settings.calls.reprompt_line.clone(),
        );
        let mut actor = Actor {
            engine,
            tenant: call.tenant.clone(),
            sid: call.sid.clone(),
            state: state.clone(),
            info: Arc::new(plan.info),
            events: io.events,
            leg: io.leg,
            out: io.out,
            pipe_tx: io.pipe_tx,
            ep: Endpointer::new(vad),
            recorder: Recorder::default(),
            recording: Some(rec_tx),
            recording_task: Some(recording_task),
            conv,
            turn_task: None,
            end: None,
            inbound: Vec::with_capacity(512),
            carry: Vec::with_capacity(2 * FRAME_BYTES),
            // A reply's lead and its marks: the most one pump moves.
            outbox: Vec::with_capacity(32),
            malformed: 0,
            dropped: 0,
            persisting: Vec::new(),
            listen: io.listen,
            early: None,
            muted_caller: false,
            muted_bot: false,
            command_rate: crate::rate::CommandRate::default(),
            linger: false,
            playing: None,
            tts_stream: String::new(),
            transferring: false,
            stream_closed: false,
            machine,
        };
        // The first line of a call: nothing is queued yet, so it cannot be refused.
        let _ = actor
            .conv
            .bot_turn(TurnKind::bot(plan.greeting), now, false);
        actor.start_next();
        actor
    }
}

/// What the actor listens to while the call lasts.
struct Inputs {
    stream: SplitStream<WebSocket>,
    rtc: Option<mpsc::Receiver<leg::RtcEvent>>,
    /// Turn tasks' progress, supervisor commands and carrier answers ([`ToCall`]).
    pipeline: mpsc::Receiver<ToCall>,
    stt: mpsc::Receiver<crate::speech::SttEvent>,
    kill: CancellationToken,
    max_call: Duration,
}

impl Actor {
    /// The call's loop: moves each input to its handler until the call ends. Returns the
    /// socket's reading half when the socket was closed for what its client sent (an oversized
    /// message, a flood of commands), to be held while the close is read, and the turn messages'
    /// receiver (the end of the call still reads it).
    async fn run(
        &mut self,
        mut i: Inputs,
    ) -> (Option<SplitStream<WebSocket>>, mpsc::Receiver<ToCall>) {
        let mut beats = self.engine.clock.subscribe(self.leg.pace());
        // A Twilio leg's media stream is read on the beat, not as each message lands: the
        // beat's messages (about three) in one read, one wake-up instead of three.
        let on_beat = self.leg.reads_on_beat();
        let deadline = tokio::time::sleep(i.max_call);
        tokio::pin!(deadline);
        // Made once: a fresh `cancelled()` per turn of the loop would join and leave the
        // token's waiter list each time.
        let killed = i.kill.clone().cancelled_owned();
        tokio::pin!(killed);
        while self.end.is_none() {
            // In this order, not at random: a beat (at most one per 20 ms, so it starves nothing)
            // is taken without polling the queues first, and the end of the call and the
            // queues come before the socket, so a flood of messages cannot hold them back.
            tokio::select! {
                biased;
                _ = beats.next() => {
                    // The beat's audio is written before the caller's messages are read, so
                    // its write acknowledges them (no separate acknowledgement from the read).
                    self.tick();
                    if self.out.pending() {
                        self.out.push().await;
                    }
                    if on_beat {
                        self.read_waiting(&mut i.stream);
                    }
                    self.out.check_stall(Instant::now());
                }
                _ = &mut killed => self.end = Some(End::Killed),
                _ = &mut deadline => self.end = Some(End::MaxDuration),
                ev = recv_opt(&mut i.rtc) => match ev {
                    Some(leg::RtcEvent::Audio(frame)) => self.rtc_audio(&frame),
                    Some(leg::RtcEvent::Closed(why)) => {
                        tracing::info!(call_sid = %self.sid, why, "WebRTC leg closed");
                        self.end = Some(End::CallerHungUp);
                    }
                    None => {
                        i.rtc = None;
                        self.end = Some(End::CallerHungUp);
                    }
                },
                Some(m) = i.pipeline.recv() => self.on_pipeline(m),
                Some(ev) = i.stt.recv() => self.on_stt(ev),
                msg = i.stream.next(), if !self.stream_closed && !on_beat => self.on_socket(msg),
                // The socket took back-pressured messages.
                _ = self.out.drained(), if self.out.pending() => {}
            }
            if self.out.pending() {
                self.out.push().await;
            }
        }
        let linger = self.linger.then_some(i.stream);
        (linger, i.pipeline)
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
        if !self.out.send(m) {
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
            self.caller_over_bot();
        }
    }

    fn start_next(&mut self) {
        if self.end.is_some() || self.transferring {
            return;
        }
        let Some((turn, q)) = self.conv.next() else {
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
            early: if caller.is_some() {
                self.early.take()
            } else {
                None
            },
        };
        let task = tokio::spawn(pipeline::run(
            self.engine.clone(),
            self.info.clone(),
            input,
            self.pipe_tx.clone(),
        ));
        self.turn_task = Some(task);
        self.conv.begin(Turn::new(turn, t0, endpoint, caller));
    }
}

mod carrier;
mod completion;
mod control;
mod conversation;
mod interrupt;
mod media_in;
mod out;
mod preempt;
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
mod machine;
mod playout;
mod progress;
mod recognition;
mod setup;
mod turns;
