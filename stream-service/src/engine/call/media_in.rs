//! What the legs bring in: the socket's messages (a Twilio leg's read on the beat), the Twilio
//! media protocol's messages (a borrowing fast path for the ~50 media messages a second), `/call`
//! binary audio frames and the WebRTC leg's frames, all turned into 20 ms μ-law frames for the
//! recorder, the endpointer and the recogniser.

use super::Actor;
use super::CALLER;
use crate::audio::FRAME_BYTES;
use crate::audio::g711;
use crate::audio::vad::FRAME_SAMPLES;
use crate::engine::events::CallEvent;
use crate::engine::events::now_ms;
use crate::protocol;
use crate::protocol::Inbound;
use axum::extract::ws::{Message, WebSocket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Instant;
use tokio::sync::mpsc;

/// Fast path for the ~50 media messages a second: borrow the payload, ignore the rest.
#[derive(Deserialize)]
struct FastMedia<'a> {
    event: &'a str,
    #[serde(borrow)]
    media: Option<FastPayload<'a>>,
}

#[derive(Deserialize)]
struct FastPayload<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

/// What the fast path made of a text frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    /// A `media` message: its audio is in the buffer.
    Audio,
    /// A `media` message whose payload is not base64.
    BadPayload,
    /// Anything else: for the full parser.
    Other,
}

/// Decodes a `media` message's payload into `out` (cleared first) without allocating for the
/// message itself.
pub(crate) fn fast_media(text: &str, out: &mut Vec<u8>) -> Fast {
    let Ok(FastMedia {
        event: "media",
        media: Some(m),
    }) = serde_json::from_str::<FastMedia<'_>>(text)
    else {
        return Fast::Other;
    };
    out.clear();
    match B64.decode_vec(m.payload.as_bytes(), out) {
        Ok(()) => Fast::Audio,
        Err(_) => Fast::BadPayload,
    }
}

impl Actor {
    pub(super) fn protocol_error(&mut self, what: &str) {
        self.malformed += 1;
        self.events.emit(CallEvent::Error {
            track_id: CALLER.into(),
            timestamp: now_ms(),
            sender: "stream".into(),
            error: format!("malformed message: {what}"),
            code: Some(400),
        });
    }

    pub(super) fn inbound(&mut self, text: &str) {
        match fast_media(text, &mut self.inbound) {
            Fast::Audio => return self.caller_audio(),
            Fast::BadPayload => return self.protocol_error("media payload is not base64"),
            Fast::Other => {}
        }
        match protocol::parse(text) {
            Ok(Inbound::Dtmf { dtmf, .. }) => {
                self.events.emit(CallEvent::Dtmf {
                    track_id: CALLER.into(),
                    timestamp: now_ms(),
                    digit: dtmf.digit.clone(),
                });
                if self.conv.key(&dtmf.digit, Instant::now()) {
                    self.start_next();
                }
            }
            Ok(Inbound::Mark { mark, .. }) => self.mark_echoed(&mark.name),
            Ok(Inbound::Stop { .. }) => self.stream_ended(),
            Ok(_) => {}
            Err(e) => self.protocol_error(&e.to_string()),
        }
    }

    pub(super) fn caller_audio(&mut self) {
        if self.muted_caller {
            // Muted: on the record, not heard by the bot.
            self.carry.clear();
            let mut at = 0;
            while self.inbound.len() - at >= FRAME_BYTES {
                let mut frame = [0u8; FRAME_BYTES];
                frame.copy_from_slice(&self.inbound[at..at + FRAME_BYTES]);
                at += FRAME_BYTES;
                self.recorder.caller_frame(&frame);
                if self.machine.listening() {
                    // A machine's greeting plays on while the bot waits for its beep.
                    let mut pcm = [0i16; FRAME_SAMPLES];
                    for (p, &b) in pcm.iter_mut().zip(&frame) {
                        *p = g711::decode_sample(b);
                    }
                    self.detect_machine(&pcm);
                }
            }
            self.flush_recording();
            return;
        }
        if self.events.observed() {
            self.events.emit(CallEvent::Audio {
                timestamp: now_ms(),
                track: "inbound".into(),
                payload: B64.encode(&self.inbound),
            });
        }
        self.carry.extend_from_slice(&self.inbound);
        let mut pcm = [0i16; FRAME_SAMPLES];
        let mut at = 0;
        let mut frame = [0u8; FRAME_BYTES];
        while self.carry.len() - at >= FRAME_BYTES {
            frame.copy_from_slice(&self.carry[at..at + FRAME_BYTES]);
            self.recorder.caller_frame(&frame);
            for (p, &b) in pcm.iter_mut().zip(&frame) {
                *p = g711::decode_sample(b);
            }
            self.detect_machine(&pcm);
            at += FRAME_BYTES;
            let event = self.ep.push(&pcm);
            self.vad_event(event);
            self.listen_frame(&frame);
        }
        self.carry.drain(..at);
        self.flush_recording();
    }

    /// Hands the recorded past to the writer every couple of seconds; when the writer has no
    /// room (a slow disk or S3), the chunk waits in the recorder for the next try.
    fn flush_recording(&mut self) {
        if let Some(chunk) = self.recorder.take_flush()
            && let Some(tx) = &self.recording
            && let Err(
                mpsc::error::TrySendError::Full(chunk) | mpsc::error::TrySendError::Closed(chunk),
            ) = tx.try_send(chunk)
        {
            self.recorder.hold(chunk);
        }
    }

    /// A binary frame: caller audio on a `/call` WebSocket leg.
    pub(super) fn on_binary(&mut self, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.inbound);
        let converted = self.leg.socket_audio(data, &mut buf);
        self.inbound = buf;
        match converted {
            Ok(()) => self.caller_audio(),
            Err(what) => self.protocol_error(what),
        }
    }

    /// 20 ms of caller audio from the WebRTC leg.
    pub(super) fn rtc_audio(&mut self, frame: &[u8; FRAME_BYTES]) {
        self.inbound.clear();
        self.inbound.extend_from_slice(frame);
        self.caller_audio();
    }
}

/// Messages a beat reads from a socket read on the beat, at most: about three arrive per beat, and
/// a backlog (a stalled network catching up) drains over a few beats without holding the worker.
const READ_PER_BEAT: usize = 32;

impl Actor {
    /// One message from the leg's socket (or its end).
    pub(super) fn on_socket(&mut self, msg: Option<Result<Message, axum::Error>>) {
        match msg {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
            Some(Ok(Message::Binary(data))) => self.on_binary(&data),
            Some(Err(e)) if crate::ws::is_too_big(&e) => {
                // A message over the socket's limit: closed with 1009, the call ends.
                self.send(crate::ws::too_big());
                self.end = Some(super::End::CallerHungUp);
                self.linger = true;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => self.stream_ended(),
            Some(Ok(_)) => {}
        }
    }

    /// The messages that arrived since the last beat, without waiting for more. (The socket is
    /// polled with a no-op waker: data arriving between beats does not wake the call.)
    pub(super) fn read_waiting(&mut self, stream: &mut SplitStream<WebSocket>) {
        use futures_util::FutureExt;
        for _ in 0..READ_PER_BEAT {
            if self.stream_closed || self.end.is_some() {
                return;
            }
            match stream.next().now_or_never() {
                Some(msg) => self.on_socket(msg),
                None => return,
            }
        }
    }
}
