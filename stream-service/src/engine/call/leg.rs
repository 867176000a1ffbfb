//! Media legs: how a call's audio, marks and hang-up travel between the engine and the other
//! party. The engine works in one format (G.711 μ-law, 8 kHz, 20 ms frames); each leg converts
//! at its edge:
//! - Twilio media stream: JSON `media` messages with base64 payloads, `mark`s that Twilio echoes
//!   when the audio before them has played, `clear` to drop what is buffered;
//! - `/call` WebSocket: binary frames, PCMU 8 kHz or PCM 16-bit little-endian 16 kHz, both ways;
//! - WebRTC: RTP PCMU, handed to the leg's RTC task frame by frame.
//!
//! Legs whose far end does not echo marks get them from a play-out clock: a mark comes back when
//! the audio queued before it has had time to play (each frame plays 20 ms after the previous
//! one, or now when the line was idle). So "what the caller heard" means the same on every leg.

use crate::audio::{FRAME_BYTES, g711};
use crate::engine::clock::Pace;
use axum::extract::ws::Message;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const FRAME: Duration = Duration::from_millis(20);

/// Audio format of a `/call` WebSocket (`invite.option.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketCodec {
    /// G.711 μ-law, 8 kHz: 160 bytes per 20 ms.
    Pcmu,
    /// Signed 16-bit little-endian PCM, 16 kHz mono: 640 bytes per 20 ms.
    Pcm16k,
}

impl SocketCodec {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "pcmu" | "ulaw" | "mulaw" => Some(SocketCodec::Pcmu),
            "pcm" | "l16" | "pcm16" => Some(SocketCodec::Pcm16k),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SocketCodec::Pcmu => "pcmu",
            SocketCodec::Pcm16k => "pcm",
        }
    }
}

#[derive(Debug)]
pub enum LegKind {
    Twilio {
        stream_sid: String,
    },
    Socket {
        codec: SocketCodec,
    },
    /// Frames go to the RTC task, which packetises them as RTP; trickled ICE candidates too.
    Rtc {
        media: mpsc::Sender<[u8; FRAME_BYTES]>,
        candidates: mpsc::Sender<String>,
    },
}

/// The RTC task's frame queue is full (it fell behind by more than a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// What a WebRTC leg's RTC task reports to the call.
#[derive(Debug)]
pub enum RtcEvent {
    /// 20 ms of the caller's audio (the RTP payload, PCMU).
    Audio([u8; FRAME_BYTES]),
    /// The leg is gone (ICE failed or timed out, DTLS closed): the caller hung up.
    Closed(String),
}

/// One leg's conversion state.
#[derive(Debug)]
pub struct Leg {
    pub kind: LegKind,
    /// When the audio queued so far will have played (legs without echoed marks).
    play_end: Option<Instant>,
    /// Marks waiting for the play-out clock: (due, turn, id).
    marks: VecDeque<(Instant, u32, u32)>,
    down: HalfBand,
    up: HalfBand,
    pcm: Vec<i16>,
    /// Twilio: the μ-law of frames due this beat, sent as one `media` message.
    media: Vec<u8>,
    /// The engine listens for an answering machine on this leg (asked for by a `/call` invite;
    /// a Twilio leg's carrier detects machines itself).
    detect_machine: bool,
}

impl Leg {
    pub fn new(kind: LegKind) -> Self {
        Leg {
            kind,
            play_end: None,
            marks: VecDeque::new(),
            down: HalfBand::default(),
            up: HalfBand::default(),
            pcm: Vec::with_capacity(2 * FRAME_BYTES),
            media: Vec::new(),
            detect_machine: false,
        }
    }

    /// The engine listens for an answering machine on this leg.
    pub fn with_machine_detection(mut self, on: bool) -> Self {
        self.detect_machine = on;
        self
    }

    pub fn detects_machine(&self) -> bool {
        self.detect_machine
    }

    pub fn channel(&self) -> callbot_core::domain::Channel {
        use callbot_core::domain::Channel;
        match self.kind {
            LegKind::Twilio { .. } => Channel::Twilio,
            LegKind::Socket { .. } => Channel::Websocket,
            LegKind::Rtc { .. } => Channel::Webrtc,
        }
    }

    /// Frames sent ahead of real time. A carrier or a WebSocket client buffers what it gets: 260
    /// ms ahead, so with a beat every 60 ms at least 170 ms is still queued when the next beat's
    /// frames arrive (the `clear` of a barge-in drops it all at once, whatever its length). RTP
    /// goes nearly as it plays, since a browser's jitter buffer grows with bursts.
    pub fn lead_frames(&self) -> u64 {
        match self.kind {
            LegKind::Rtc { .. } => 2,
            _ => 13,
        }
    }

    /// How often the call's loop sends audio: a far end that buffers (Twilio, a `/call` client,
    /// 260 ms ahead) takes three frames every 60 ms; RTP goes every 20 ms.
    /// Whether the leg's socket is read on the beat rather than as each message lands: Twilio's
    /// media stream (audio, marks, keys and `stop`, none of which needs less than a beat).
    /// Sockets that carry commands are read at once.
    pub fn reads_on_beat(&self) -> bool {
        matches!(self.kind, LegKind::Twilio { .. })
    }

    pub fn pace(&self) -> Pace {
        match self.kind {
            LegKind::Rtc { .. } => Pace::Fine,
            _ => Pace::Coarse,
        }
    }

    /// One frame of the bot's audio for the far end: a message for the WebSocket, or `None`
    /// when the frame went to the RTC task or waits for [`Leg::take_media`] (Twilio: a beat's
    /// frames go in one `media` message); `Err(Full)` when the RTC task's queue is full (the
    /// frame is dropped and counted by the caller).
    pub fn frame(&mut self, f: &[u8; FRAME_BYTES], now: Instant) -> Result<Option<Message>, Full> {
        if !matches!(self.kind, LegKind::Twilio { .. }) {
            let start = self.play_end.filter(|e| *e > now).unwrap_or(now);
            self.play_end = Some(start + FRAME);
        }
        match &self.kind {
            LegKind::Twilio { .. } => {
                self.media.extend_from_slice(f);
                Ok(None)
            }
            LegKind::Socket {
                codec: SocketCodec::Pcmu,
            } => Ok(Some(Message::Binary(bytes::Bytes::copy_from_slice(f)))),
            LegKind::Socket {
                codec: SocketCodec::Pcm16k,
            } => {
                let mut out = Vec::with_capacity(4 * FRAME_BYTES);
                for &b in f {
                    let s = g711::decode_sample(b);
                    let (a, c) = self.up.interpolate(s);
                    out.extend_from_slice(&a.to_le_bytes());
                    out.extend_from_slice(&c.to_le_bytes());
                }
                Ok(Some(Message::Binary(out.into())))
            }
            LegKind::Rtc { media, .. } => media.try_send(*f).map(|()| None).map_err(|_| Full),
        }
    }

    /// Twilio: the frames given since the last call as one `media` message (whole frames, so
    /// the payload is a multiple of 160 bytes, which Twilio plays in order). `None` when there
    /// are none, and on every other leg.
    pub fn take_media(&mut self) -> Option<Message> {
        let LegKind::Twilio { stream_sid } = &self.kind else {
            return None;
        };
        if self.media.is_empty() {
            return None;
        }
        use base64::Engine as _;
        // One allocation, of the message's exact size (the message owns its text).
        const HEAD: &str = r#"{"event":"media","streamSid":""#;
        const MID: &str = r#"","media":{"payload":""#;
        const TAIL: &str = r#""}}"#;
        let b64 = self.media.len().div_ceil(3) * 4;
        let mut text =
            String::with_capacity(HEAD.len() + stream_sid.len() + MID.len() + b64 + TAIL.len());
        text.push_str(HEAD);
        text.push_str(stream_sid);
        text.push_str(MID);
        base64::engine::general_purpose::STANDARD.encode_string(&self.media, &mut text);
        text.push_str(TAIL);
        self.media.clear();
        Some(Message::text(text))
    }

    /// A mark after the frames sent so far (Twilio: after [`Leg::take_media`]): a message for
    /// Twilio, or queued on the play-out clock.
    pub fn mark(&mut self, turn: u32, id: u32, now: Instant) -> Option<Message> {
        match &self.kind {
            LegKind::Twilio { stream_sid } => Some(Message::text(format!(
                r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"{turn}-{id}"}}}}"#
            ))),
            _ => {
                let due = self.play_end.unwrap_or(now).max(now);
                self.marks.push_back((due, turn, id));
                None
            }
        }
    }

    /// Drops the audio the far end has buffered (barge-in, `interrupt`): Twilio's `clear`; on
    /// the other legs the play-out clock stops and pending marks are never heard.
    pub fn clear(&mut self) -> Option<Message> {
        self.play_end = None;
        self.media.clear();
        self.marks.clear();
        match &self.kind {
            LegKind::Twilio { stream_sid } => Some(Message::text(format!(
                r#"{{"event":"clear","streamSid":"{stream_sid}"}}"#
            ))),
            _ => None,
        }
    }

    /// The next mark whose audio has played by `now` (legs without echoed marks).
    pub fn due_mark(&mut self, now: Instant) -> Option<(u32, u32)> {
        match self.marks.front() {
            Some(&(due, turn, id)) if due <= now => {
                self.marks.pop_front();
                Some((turn, id))
            }
            _ => None,
        }
    }

    /// Caller audio from a `/call` binary frame, as μ-law 8 kHz into `out` (cleared first).
    /// Errors when the frame cannot be audio in the negotiated codec.
    pub fn socket_audio(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        out.clear();
        match self.kind {
            LegKind::Socket {
                codec: SocketCodec::Pcmu,
            } => out.extend_from_slice(data),
            LegKind::Socket {
                codec: SocketCodec::Pcm16k,
            } => {
                if !data.len().is_multiple_of(4) {
                    return Err("PCM 16 kHz frames carry whole pairs of 16-bit samples");
                }
                self.pcm.clear();
                for pair in data.chunks_exact(4) {
                    let a = i16::from_le_bytes([pair[0], pair[1]]);
                    let b = i16::from_le_bytes([pair[2], pair[3]]);
                    self.pcm.push(self.down.decimate(a, b));
                }
                out.extend(self.pcm.iter().map(|&s| g711::encode_sample(s)));
            }
            _ => return Err("audio frames are not expected on this leg"),
        }
        Ok(())
    }
}

/// A 2:1 half-band low-pass (15 taps, windowed sinc, cut at 4 kHz of 16 kHz): decimation of
/// 16 kHz caller audio to 8 kHz, and interpolation of 8 kHz bot audio to 16 kHz, sample by sample
/// with no allocation. Written by hand: it runs for every frame of every PCM call.
#[derive(Debug, Default)]
struct HalfBand {
    hist: [i32; 16],
    at: usize,
}

/// Taps (Q15) of the half-band filter; the odd ones off centre are zero.
const TAPS: [i32; 15] = [
    -84, 0, 659, 0, -2_688, 0, 10_206, 16_384, 10_206, 0, -2_688, 0, 659, 0, -84,
];

impl HalfBand {
    fn push(&mut self, s: i32) {
        self.hist[self.at] = s;
        self.at = (self.at + 1) % 16;
    }

    fn filtered(&self) -> i32 {
        let mut acc: i64 = 0;
        for (k, &t) in TAPS.iter().enumerate() {
            if t != 0 {
                let idx = (self.at + 16 - 1 - k) % 16;
                acc += i64::from(t) * i64::from(self.hist[idx]);
            }
        }
        (acc >> 15) as i32
    }

    /// Two 16 kHz samples in, one 8 kHz sample out.
    fn decimate(&mut self, a: i16, b: i16) -> i16 {
        self.push(i32::from(a));
        self.push(i32::from(b));
        self.filtered().clamp(-32_768, 32_767) as i16
    }

    /// One 8 kHz sample in, two 16 kHz samples out (zero-stuffed, filtered, gain 2).
    fn interpolate(&mut self, s: i16) -> (i16, i16) {
        self.push(i32::from(s));
        let a = self.filtered() * 2;
        self.push(0);
        let b = self.filtered() * 2;
        (
            a.clamp(-32_768, 32_767) as i16,
            b.clamp(-32_768, 32_767) as i16,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * hz * std::f32::consts::TAU / rate).sin() * 8000.0) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f32 {
        (x.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn only_the_twilio_stream_is_read_on_the_beat() {
        let twilio = Leg::new(LegKind::Twilio {
            stream_sid: "MZ1".into(),
        });
        assert!(twilio.reads_on_beat());
        assert_eq!(twilio.pace(), Pace::Coarse);
        // Commands on a `/call` socket are read as they land.
        let socket = Leg::new(LegKind::Socket {
            codec: SocketCodec::Pcmu,
        });
        assert!(!socket.reads_on_beat());
    }

    #[test]
    fn half_band_keeps_speech_and_stops_aliases() {
        let mut f = HalfBand::default();
        let speech = tone(1000.0, 16_000.0, 3200);
        let out: Vec<i16> = speech
            .chunks_exact(2)
            .map(|p| f.decimate(p[0], p[1]))
            .collect();
        let kept = rms(&out[50..]) / rms(&speech);
        assert!((0.85..1.15).contains(&kept), "1 kHz passes: {kept}");
        let mut f = HalfBand::default();
        let alias = tone(6500.0, 16_000.0, 3200);
        let out: Vec<i16> = alias
            .chunks_exact(2)
            .map(|p| f.decimate(p[0], p[1]))
            .collect();
        let leaked = rms(&out[50..]) / rms(&alias);
        assert!(leaked < 0.1, "6.5 kHz would fold to 1.5 kHz: {leaked}");
        let mut f = HalfBand::default();
        let up: Vec<i16> = tone(1000.0, 8000.0, 1600)
            .into_iter()
            .flat_map(|s| {
                let (a, b) = f.interpolate(s);
                [a, b]
            })
            .collect();
        let gain = rms(&up[100..]) / rms(&tone(1000.0, 16_000.0, 3200));
        assert!(
            (0.85..1.15).contains(&gain),
            "interpolation keeps level: {gain}"
        );
    }

    #[test]
    fn play_out_clock_returns_marks_when_their_audio_has_played() {
        let (tx, _rx) = mpsc::channel(64);
        let mut leg = Leg::new(LegKind::Rtc {
            media: tx,
            candidates: mpsc::channel(1).0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            leg.frame(&[0xFF; FRAME_BYTES], t0).unwrap();
        }
        assert!(leg.mark(1, 7, t0).is_none());
        assert_eq!(leg.due_mark(t0 + Duration::from_millis(99)), None);
        assert_eq!(leg.due_mark(t0 + Duration::from_millis(100)), Some((1, 7)));
        leg.frame(&[0xFF; FRAME_BYTES], t0).unwrap();
        leg.mark(1, 8, t0);
        leg.clear();
        assert_eq!(
            leg.due_mark(t0 + Duration::from_secs(9)),
            None,
            "cleared audio is never heard"
        );
    }

    #[test]
    fn socket_pcm_frames_convert_both_ways() {
        let mut leg = Leg::new(LegKind::Socket {
            codec: SocketCodec::Pcm16k,
        });
        let mut out = Vec::new();
        leg.socket_audio(&[0u8; 640], &mut out).unwrap();
        assert_eq!(out.len(), 160, "20 ms at 16 kHz is one 8 kHz frame");
        assert!(leg.socket_audio(&[0u8; 3], &mut out).is_err());
        let Ok(Some(Message::Binary(b))) = leg.frame(&[0xFF; FRAME_BYTES], Instant::now()) else {
            panic!("a binary frame")
        };
        assert_eq!(b.len(), 640);
        assert_eq!(SocketCodec::parse("PCMU"), Some(SocketCodec::Pcmu));
        assert_eq!(SocketCodec::parse("g722"), None);
    }

    #[test]
    fn twilio_gets_a_beats_frames_in_one_media_message_in_order() {
        let mut leg = Leg::new(LegKind::Twilio {
            stream_sid: "MZ1".into(),
        });
        let now = Instant::now();
        assert!(leg.take_media().is_none(), "nothing to send");
        for b in [1u8, 2, 3] {
            assert!(leg.frame(&[b; FRAME_BYTES], now).unwrap().is_none());
        }
        let Some(Message::Text(text)) = leg.take_media() else {
            panic!("one text message")
        };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(v["event"], "media");
        assert_eq!(v["streamSid"], "MZ1");
        use base64::Engine as _;
        let audio = base64::engine::general_purpose::STANDARD
            .decode(v["media"]["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(audio.len(), 3 * FRAME_BYTES);
        assert!(audio[..FRAME_BYTES].iter().all(|&b| b == 1));
        assert!(audio[2 * FRAME_BYTES..].iter().all(|&b| b == 3));
        assert!(leg.take_media().is_none(), "sent once");
        leg.frame(&[4; FRAME_BYTES], now).unwrap();
        leg.clear();
        assert!(leg.take_media().is_none(), "cleared audio is never sent");
        assert_eq!(leg.pace(), Pace::Coarse);
    }
}
