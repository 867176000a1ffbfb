//! The carrier side of a simulated call, as Twilio behaves: fetch the answer URL with a signed
//! POST, run the TwiML, open the media WebSocket with a signed handshake, play the caller's script
//! in real time as 20 ms μ-law frames, play the bot's audio out at real-time speed (echoing marks
//! when playout reaches them, dropping it on `clear`), and post signed status callbacks.

use crate::twiml::{self, Verb};
use crate::wire::{Outbound, check_outbound, media_in};
use callbot_core::twilio::signature;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// 20 ms of μ-law at 8 kHz.
pub const FRAME_BYTES: usize = 160;
const SILENCE: u8 = 0xFF;

/// One step of what the simulated caller does on the media stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// μ-law audio, sent in 20 ms frames.
    Audio(Vec<u8>),
    /// Silence for this long.
    Silence(Duration),
    /// A key press (`dtmf` event).
    Dtmf(char),
    /// Listen (silently) until the bot has said something and then been quiet for `quiet`, or
    /// `max` has passed: a caller who waits for the bot to finish.
    WaitForBot { quiet: Duration, max: Duration },
    /// From here on the carrier plays the bot's audio but never echoes its marks (a carrier
    /// fault: the application must not wait for them forever).
    LoseMarks,
}

/// The caller's side of a call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
    /// Hang up when the steps are done; otherwise stay on the line (silent) until the call ends.
    pub hangup_when_done: bool,
}

/// What a simulated call observes, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The machine-detection verdict was posted to `AsyncAmdStatusCallback`.
    MachineDetected {
        answered_by: String,
        http_status: u16,
    },
    /// The answer URL returned this TwiML.
    Answered {
        twiml: String,
    },
    /// The answer URL failed.
    AnswerFailed {
        status: u16,
    },
    Said(String),
    /// The media WebSocket is open and `start` was sent.
    StreamStarted {
        url: String,
        parameters: Vec<(String, String)>,
    },
    /// The WebSocket handshake was refused (HTTP status, 0 when the connection failed).
    StreamRefused {
        status: u16,
    },
    /// The bot sent audio (bytes of μ-law).
    BotAudio {
        bytes: usize,
    },
    /// Playout reached a mark (or `clear` discarded the audio before it).
    MarkEchoed(String),
    /// `clear` dropped this much queued audio.
    Cleared {
        dropped_bytes: usize,
    },
    /// A message from the server broke the protocol (wrong shape, extra fields, binary frame).
    ProtocolError(String),
    DtmfSent(char),
    /// The caller starts an utterance (an `Audio` step begins).
    CallerSpeaking,
    /// The server closed the stream.
    StreamClosed,
    /// The caller's playout ran dry in the middle of the bot's speech (audio resumed within
    /// 500 ms and the caller said nothing meanwhile): an audible hole of this length.
    Underrun(Duration),
    Dialed(String),
    StatusCallback {
        status: String,
        http_status: u16,
    },
    Ended {
        status: String,
        duration_secs: u64,
    },
}

/// Commands from the REST API to a live call.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Hangup,
    Redirect(String),
}

/// Everything a call needs to talk to the application like Twilio does.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    /// `inbound` or `outbound-api`.
    pub direction: String,
    pub auth_token: String,
    pub http: reqwest::Client,
    pub status_callback: Option<String>,
    /// Which progress events go to `status_callback` (`initiated`, `ringing`, `answered`, `completed`).
    pub status_events: Vec<String>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Every byte of bot audio received, for tests that listen to it (`None`: not kept).
    pub bot_audio: Option<Arc<Mutex<Vec<u8>>>>,
    /// When each bot media message arrived and how many bytes of audio it carried (benchmarks
    /// of pacing).
    pub media_times: Option<MediaTimes>,
    /// Counts for benchmarks: underruns, and how late the carrier's 20 ms clock ran (whether
    /// the client kept up).
    pub probe: Option<Arc<crate::probe::Probe>>,
}

/// Arrival time and audio bytes of each bot media message of a call.
pub type MediaTimes = Arc<Mutex<Vec<(Instant, usize)>>>;

impl CallContext {
    pub(crate) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn base_params(&self, status: &str) -> Vec<(String, String)> {
        [
            ("CallSid", self.sid.as_str()),
            ("AccountSid", self.account_sid.as_str()),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
            ("Caller", self.from.as_str()),
            ("Called", self.to.as_str()),
            ("CallStatus", status),
            ("ApiVersion", "2010-04-01"),
            ("Direction", self.direction.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// POSTs a signed form to `url`, as Twilio does for every voice webhook.
    pub async fn signed_post(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<(u16, String)> {
        let sig = signature::compute(self.auth_token.as_bytes(), url, params);
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", sig)
            .header("User-Agent", "TwilioProxy/1.1")
            .body(serde_urlencoded::to_string(params)?)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// Posts a progress callback if `event` was asked for. `seq` is Twilio's SequenceNumber.
    pub async fn status_callback(
        &self,
        event: &str,
        status: &str,
        seq: u32,
        duration: Option<u64>,
    ) {
        let Some(url) = &self.status_callback else {
            return;
        };
        if !self.status_events.iter().any(|e| e == event) {
            return;
        }
        let mut params = self.base_params(status);
        params.push(("SequenceNumber".into(), seq.to_string()));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("Timestamp".into(), crate::rfc2822_now()));
        if let Some(d) = duration {
            params.push(("CallDuration".into(), d.to_string()));
            params.push(("Duration".into(), d.div_ceil(60).to_string()));
        }
        let http_status = match self.signed_post(url, &params).await {
            Ok((s, _)) => s,
            Err(_) => 0,
        };
        self.emit(Event::StatusCallback {
            status: status.to_owned(),
            http_status,
        });
    }
}

/// Where the call's first TwiML comes from.
#[derive(Debug, Clone)]
pub enum Answer {
    Url(String),
    Twiml(String),
}

/// Runs an answered call to its end and returns its final status (`completed` or `failed`).
/// Status callbacks for `answered` and `completed` are posted here; the caller posts earlier ones.
pub async fn run_call(
    ctx: CallContext,
    answer: Answer,
    mut script: Script,
    mut control: mpsc::Receiver<Control>,
    mut seq: u32,
) -> String {
    let started = Instant::now();
    ctx.status_callback("answered", "in-progress", seq, None)
        .await;
    seq += 1;
    let mut doc = match answer {
        Answer::Twiml(t) => Some(t),
        Answer::Url(url) => match ctx.signed_post(&url, &ctx.base_params("in-progress")).await {
            Ok((200, body)) => Some(body),
            Ok((status, _)) => {
                ctx.emit(Event::AnswerFailed { status });
                None
            }
            Err(_) => {
                ctx.emit(Event::AnswerFailed { status: 0 });
                None
            }
        },
    };
    let mut status = if doc.is_some() { "completed" } else { "failed" };
    'documents: while let Some(xml) = doc.take() {
        ctx.emit(Event::Answered { twiml: xml.clone() });
        let verbs = match twiml::parse(&xml) {
            Ok(v) => v,
            Err(e) => {
                ctx.emit(Event::ProtocolError(format!("bad TwiML: {e}")));
                status = "failed";
                break;
            }
        };
        for verb in verbs {
            match verb {
                Verb::Say(text) => ctx.emit(Event::Said(text)),
                Verb::Pause(secs) => {
                    tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
                }
                Verb::Hangup => break 'documents,
                Verb::Dial { number, .. } => {
                    ctx.emit(Event::Dialed(number));
                    break 'documents;
                }
                Verb::ConnectStream { url, parameters } => {
                    match run_stream(&ctx, &url, &parameters, &mut script, &mut control).await {
                        StreamEnd::ServerClosed => {}
                        StreamEnd::CallerHungUp | StreamEnd::Hangup => break 'documents,
                        StreamEnd::Redirect(next) => {
                            doc = Some(next);
                            continue 'documents;
                        }
                    }
                }
            }
        }
    }
    let duration = started.elapsed().as_secs();
    ctx.status_callback("completed", status, seq, Some(duration))
        .await;
    ctx.emit(Event::Ended {
        status: status.to_owned(),
        duration_secs: duration,
    });
    status.to_owned()
}

enum StreamEnd {
    ServerClosed,
    CallerHungUp,
    Hangup,
    Redirect(String),
}

/// What the simulated phone still has to play to the caller.
enum Playout {
    Audio(usize),
    Mark(String),
}

/// Walks the caller's script one 20 ms frame at a time.
struct Cursor<'a> {
    script: &'a mut Script,
    offset: usize,
    /// Bot audio arrived since the current `WaitForBot` began.
    heard: bool,
    /// How long the playout queue has been empty.
    idle: Duration,
    /// `Step::LoseMarks` was reached.
    lose_marks: bool,
}

enum Frame {
    /// The first frame of an utterance.
    Speech([u8; FRAME_BYTES]),
    Audio([u8; FRAME_BYTES]),
    Dtmf(char),
    Done,
}

impl Cursor<'_> {
    fn next_frame(&mut self) -> Frame {
        loop {
            let Some(step) = self.script.steps.first_mut() else {
                return Frame::Done;
            };
            match step {
                Step::Audio(bytes) => {
                    if self.offset >= bytes.len() {
                        self.script.steps.remove(0);
                        self.offset = 0;
                        continue;
                    }
                    let mut frame = [SILENCE; FRAME_BYTES];
                    let end = (self.offset + FRAME_BYTES).min(bytes.len());
                    frame[..end - self.offset].copy_from_slice(&bytes[self.offset..end]);
                    let first = self.offset == 0;
                    self.offset = end;
                    return if first {
                        Frame::Speech(frame)
                    } else {
                        Frame::Audio(frame)
                    };
                }
                Step::Silence(left) => {
                    if left.is_zero() {
                        self.script.steps.remove(0);
                        continue;
                    }
                    *left = left.saturating_sub(Duration::from_millis(20));
                    return Frame::Audio([SILENCE; FRAME_BYTES]);
                }
                Step::Dtmf(d) => {
                    let d = *d;
                    self.script.steps.remove(0);
                    return Frame::Dtmf(d);
                }
                Step::LoseMarks => {
                    self.lose_marks = true;
                    self.script.steps.remove(0);
                    continue;
                }
                Step::WaitForBot { quiet, max } => {
                    if (self.heard && self.idle >= *quiet) || max.is_zero() {
                        self.script.steps.remove(0);
                        self.heard = false;
                        continue;
                    }
                    *max = max.saturating_sub(Duration::from_millis(20));
                    return Frame::Audio([SILENCE; FRAME_BYTES]);
                }
            }
        }
    }
}

fn sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

async fn run_stream(
    ctx: &CallContext,
    url: &str,
    parameters: &[(String, String)],
    script: &mut Script,
    control: &mut mpsc::Receiver<Control>,
) -> StreamEnd {
    let Ok(mut request) = url.into_client_request() else {
        ctx.emit(Event::StreamRefused { status: 0 });
        return StreamEnd::ServerClosed;
    };
    let sig = signature::compute(ctx.auth_token.as_bytes(), url, &[]);
    if let Ok(v) = sig.parse() {
        request.headers_mut().insert("X-Twilio-Signature", v);
    }
    // Twilio's messages are small: a read buffer of their size, not the 128 KiB default (which
    // is zero-filled on every read and would make a busy simulator the bottleneck).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    // Each frame goes out as it falls due (no Nagle delay), as a real-time sender's must.
    let mut ws =
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                ctx.emit(Event::StreamRefused {
                    status: resp.status().as_u16(),
                });
                return StreamEnd::ServerClosed;
            }
            Err(_) => {
                ctx.emit(Event::StreamRefused { status: 0 });
                return StreamEnd::ServerClosed;
            }
        };
    let stream_sid = sid("MZ");
    let custom: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let hello = [
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json!({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
               "start": {"streamSid": stream_sid, "accountSid": ctx.account_sid, "callSid": ctx.sid,
                         "tracks": ["inbound"], "customParameters": custom,
                         "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    ];
    for m in hello {
        if ws.send(Message::text(m.to_string())).await.is_err() {
            return StreamEnd::ServerClosed;
        }
    }
    ctx.emit(Event::StreamStarted {
        url: url.to_owned(),
        parameters: parameters.to_vec(),
    });
    let mut seq: u64 = 2;
    let mut chunk: u64 = 0;
    let mut queue: VecDeque<Playout> = VecDeque::new();
    let mut cursor = Cursor {
        script,
        offset: 0,
        heard: false,
        idle: Duration::ZERO,
        lose_marks: false,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Underrun detection: bot audio has played, and the caller has not spoken since it ran dry.
    let mut played = false;
    let mut caller_spoke = false;
    let stop = |seq: u64| {
        json!({"event": "stop", "sequenceNumber": seq.to_string(), "streamSid": stream_sid,
               "stop": {"accountSid": ctx.account_sid, "callSid": ctx.sid}})
        .to_string()
    };
    loop {
        tokio::select! {
            due = tick.tick() => {
                if let Some(probe) = &ctx.probe {
                    probe.lag.record(tokio::time::Instant::now().saturating_duration_since(due));
                }
                // Caller → server: the next frame of the script.
                let next = match cursor.next_frame() {
                    Frame::Speech(frame) => {
                        ctx.emit(Event::CallerSpeaking);
                        Frame::Audio(frame)
                    }
                    other => other,
                };
                let out = match next {
                    Frame::Speech(frame) | Frame::Audio(frame) => {
                        if !cursor.idle.is_zero() && frame.iter().any(|&b| b != SILENCE) {
                            caller_spoke = true;
                        }
                        chunk += 1;
                        media_in(seq, &stream_sid, chunk, &frame)
                    }
                    Frame::Dtmf(d) => {
                        ctx.emit(Event::DtmfSent(d));
                        json!({"event": "dtmf", "sequenceNumber": seq.to_string(), "streamSid": stream_sid,
                               "dtmf": {"track": "inbound_track", "digit": d.to_string()}})
                        .to_string()
                    }
                    Frame::Done if cursor.script.hangup_when_done => {
                        let _ = ws.send(Message::text(stop(seq))).await;
                        let _ = ws.close(None).await;
                        return StreamEnd::CallerHungUp;
                    }
                    Frame::Done => {
                        chunk += 1;
                        media_in(seq, &stream_sid, chunk, &[SILENCE; FRAME_BYTES])
                    }
                };
                seq += 1;
                if ws.send(Message::text(out)).await.is_err() {
                    return StreamEnd::ServerClosed;
                }
                // Phone → caller: 20 ms of queued bot audio plays out; marks behind it come back.
                if queue.iter().any(|p| matches!(p, Playout::Audio(_))) {
                    cursor.idle = Duration::ZERO;
                } else {
                    cursor.idle += Duration::from_millis(20);
                }
                let mut budget = FRAME_BYTES;
                while let Some(front) = queue.front_mut() {
                    match front {
                        Playout::Audio(left) if budget > 0 => {
                            let used = (*left).min(budget);
                            *left -= used;
                            budget -= used;
                            if *left == 0 { queue.pop_front(); }
                        }
                        Playout::Audio(_) => break,
                        Playout::Mark(_) if cursor.lose_marks => {
                            queue.pop_front();
                        }
                        Playout::Mark(_) => {
                            if let Some(Playout::Mark(name)) = queue.pop_front() {
                                let echo = json!({"event": "mark", "sequenceNumber": seq.to_string(),
                                                  "streamSid": stream_sid, "mark": {"name": name}});
                                seq += 1;
                                ctx.emit(Event::MarkEchoed(name));
                                if ws.send(Message::text(echo.to_string())).await.is_err() {
                                    return StreamEnd::ServerClosed;
                                }
                            }
                        }
                    }
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        ctx.emit(Event::ProtocolError("binary frame (Twilio warning 31950)".into()));
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        ctx.emit(Event::StreamClosed);
                        return StreamEnd::ServerClosed;
                    }
                    Some(Ok(_)) => continue,
                };
                match check_outbound(&text, &stream_sid) {
                    Ok(Outbound::Media(bytes)) => {
                        cursor.heard = true;
                        let dry = cursor.idle;
                        if played && !caller_spoke && !dry.is_zero() && dry < Duration::from_millis(500) {
                            ctx.emit(Event::Underrun(dry));
                            if let Some(probe) = &ctx.probe {
                                probe.underrun();
                            }
                        }
                        played = true;
                        caller_spoke = false;
                        cursor.idle = Duration::ZERO;
                        if let Some(times) = &ctx.media_times
                            && let Ok(mut t) = times.lock()
                        {
                            t.push((Instant::now(), bytes.len()));
                        }
                        ctx.emit(Event::BotAudio { bytes: bytes.len() });
                        if let Some(all) = &ctx.bot_audio
                            && let Ok(mut all) = all.lock()
                        {
                            all.extend_from_slice(&bytes);
                        }
                        queue.push_back(Playout::Audio(bytes.len()));
                    }
                    Ok(Outbound::Mark(name)) => queue.push_back(Playout::Mark(name)),
                    Ok(Outbound::Clear) => {
                        let mut dropped = 0;
                        for p in queue.drain(..) {
                            match p {
                                Playout::Audio(n) => dropped += n,
                                Playout::Mark(name) => {
                                    let echo = json!({"event": "mark", "sequenceNumber": seq.to_string(),
                                                      "streamSid": stream_sid, "mark": {"name": name}});
                                    seq += 1;
                                    ctx.emit(Event::MarkEchoed(name));
                                    let _ = ws.send(Message::text(echo.to_string())).await;
                                }
                            }
                        }
                        ctx.emit(Event::Cleared { dropped_bytes: dropped });
                    }
                    Err(e) => ctx.emit(Event::ProtocolError(e)),
                }
            }
            cmd = control.recv() => {
                let _ = ws.send(Message::text(stop(seq))).await;
                let _ = ws.close(None).await;
                return match cmd {
                    Some(Control::Redirect(twiml)) => StreamEnd::Redirect(twiml),
                    Some(Control::Hangup) | None => StreamEnd::Hangup,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_frames() {
        let mut s = Script {
            steps: vec![
                Step::Audio(vec![1; 200]),
                Step::Dtmf('5'),
                Step::Silence(Duration::from_millis(40)),
            ],
            hangup_when_done: true,
        };
        let mut c = Cursor {
            script: &mut s,
            offset: 0,
            heard: false,
            idle: Duration::ZERO,
            lose_marks: false,
        };
        assert!(matches!(c.next_frame(), Frame::Speech(f) if f[0] == 1));
        assert!(matches!(c.next_frame(), Frame::Audio(f) if f[39] == 1 && f[40] == SILENCE));
        assert!(matches!(c.next_frame(), Frame::Dtmf('5')));
        assert!(matches!(c.next_frame(), Frame::Audio(f) if f == [SILENCE; FRAME_BYTES]));
        assert!(matches!(c.next_frame(), Frame::Audio(_)));
        assert!(matches!(c.next_frame(), Frame::Done));
    }
}
