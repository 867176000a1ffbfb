//! Deepgram live recognition: one WebSocket per call (`/v1/listen`, `Authorization: Token`), the
//! caller's μ-law sent as it arrives, interim and final `Results`, `speech_final` and
//! `UtteranceEnd` for endpointing, `KeepAlive` while no audio flows, `Finalize` when our own
//! endpointer ends a turn first, `CloseStream` at hang-up. A dropped socket is reconnected and
//! the audio of the unfinished utterance sent again, so no words are lost; when it cannot be
//! reconnected the call falls back to the local recogniser.

use super::SpeechError;
use bytes::Bytes;
use callbot_core::settings::DeepgramSettings;
use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use super::SttEvent;

enum Cmd {
    Audio(Bytes),
    Finalize,
    /// The current utterance is handled: its audio need not be kept for a reconnect.
    UtteranceDone,
}

/// Audio kept for re-sending after a reconnect (the unfinished utterance): 30 s at most.
const KEEP_BYTES: usize = 30 * 8000;
const KEEPALIVE_AFTER: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RECONNECTS: u32 = 3;

/// One call's recognition session. Dropping it closes the stream (`CloseStream`).
#[derive(Debug)]
pub struct DeepgramSession {
    cmds: mpsc::Sender<Cmd>,
    /// Audio that could not be queued (the task is behind): counted, never silently.
    pub dropped_chunks: u64,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Audio(b) => write!(f, "Audio({})", b.len()),
            Cmd::Finalize => f.write_str("Finalize"),
            Cmd::UtteranceDone => f.write_str("UtteranceDone"),
        }
    }
}

/// Per-call query parameters.
#[derive(Debug, Clone, Copy)]
pub struct ListenParams {
    /// Silence after speech before `speech_final` (Deepgram's `endpointing`).
    pub endpointing: Duration,
    pub utterance_end: Duration,
}

impl DeepgramSession {
    /// Starts the session task; events arrive on the returned receiver.
    pub fn start(
        settings: DeepgramSettings,
        params: ListenParams,
    ) -> (Self, mpsc::Receiver<SttEvent>) {
        let (ev_tx, ev_rx) = mpsc::channel(64);
        (Self::start_into(settings, params, ev_tx), ev_rx)
    }

    /// Starts the session task; events go to `events` (a channel the call shares with its
    /// other recognisers).
    pub fn start_into(
        settings: DeepgramSettings,
        params: ListenParams,
        events: mpsc::Sender<SttEvent>,
    ) -> Self {
        let (cmds, cmd_rx) = mpsc::channel(256);
        tokio::spawn(run(settings, params, cmd_rx, events));
        Self {
            cmds,
            dropped_chunks: 0,
        }
    }

    /// Caller audio (8 kHz μ-law). Never blocks.
    pub fn push(&mut self, ulaw: &[u8]) {
        if self
            .cmds
            .try_send(Cmd::Audio(Bytes::copy_from_slice(ulaw)))
            .is_err()
        {
            self.dropped_chunks += 1;
        }
    }

    /// Our endpointer ended the turn: ask for the final now.
    pub fn finalize(&self) {
        let _ = self.cmds.try_send(Cmd::Finalize);
    }

    pub fn utterance_done(&self) {
        let _ = self.cmds.try_send(Cmd::UtteranceDone);
    }
}

/// The `/v1/listen` URL for these settings.
pub fn listen_url(s: &DeepgramSettings, p: ListenParams) -> String {
    let mut u = s.base_url.clone();
    u.set_path("/v1/listen");
    u.query_pairs_mut()
        .append_pair("model", &s.model)
        .append_pair("encoding", "mulaw")
        .append_pair("sample_rate", "8000")
        .append_pair("channels", "1")
        .append_pair("interim_results", "true")
        .append_pair("endpointing", &p.endpointing.as_millis().to_string())
        .append_pair("utterance_end_ms", &p.utterance_end.as_millis().to_string())
        .append_pair("vad_events", "true")
        .append_pair("smart_format", "true")
        .append_pair("punctuate", "true")
        .append_pair("language", &s.language);
    u.into()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &DeepgramSettings, p: ListenParams) -> Result<Ws, SpeechError> {
    let mut req = listen_url(s, p)
        .into_client_request()
        .map_err(|e| SpeechError::Engine(format!("deepgram URL: {e}")))?;
    let auth = format!("Token {}", s.api_key.expose_secret());
    req.headers_mut().insert(
        "authorization",
        auth.parse()
            .map_err(|_| SpeechError::Engine("deepgram key is not a valid header value".into()))?,
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err(SpeechError::Timeout),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(SpeechError::Engine(
            format!("deepgram refused the stream ({})", resp.status()),
        )),
        Ok(Err(_)) => Err(SpeechError::Engine("deepgram: cannot connect".into())),
    }
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    channel: Option<serde_json::Value>,
}

/// The event a server text frame means, if any.
pub fn parse_message(text: &str) -> Option<SttEvent> {
    let m: Incoming = serde_json::from_str(text).ok()?;
    match m.kind.as_str() {
        "Results" => {
            let transcript = m
                .channel
                .as_ref()
                .and_then(|c| c["alternatives"][0]["transcript"].as_str())
                .unwrap_or("")
                .trim()
                .to_owned();
            if m.is_final {
                Some(SttEvent::Final {
                    text: transcript,
                    end: m.speech_final || m.from_finalize,
                })
            } else if transcript.is_empty() {
                None
            } else {
                Some(SttEvent::Partial { text: transcript })
            }
        }
        "UtteranceEnd" => Some(SttEvent::UtteranceEnd),
        _ => None,
    }
}

async fn run(
    settings: DeepgramSettings,
    params: ListenParams,
    mut cmds: mpsc::Receiver<Cmd>,
    events: mpsc::Sender<SttEvent>,
) {
    // Audio of the utterance in progress (re-sent after a reconnect).
    // A ring: once full, each chunk drops as many bytes from the front as it adds (no moves).
    let mut kept: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut ws = match connect(&settings, params).await {
        Ok(ws) => ws,
        Err(e) => {
            let _ = events
                .send(SttEvent::Failed {
                    error: e.to_string(),
                })
                .await;
            return;
        }
    };
    let mut last_sent = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Audio(b)) => {
                    keep(&mut kept, &b);
                    last_sent = Instant::now();
                    if ws.send(Message::Binary(b)).await.is_err() {
                        match reconnect(&settings, params, kept.make_contiguous(), &events).await {
                            Some(w) => ws = w,
                            None => return,
                        }
                    }
                }
                Some(Cmd::Finalize) => {
                    let _ = ws.send(Message::text(r#"{"type":"Finalize"}"#)).await;
                }
                Some(Cmd::UtteranceDone) => kept.clear(),
                None => {
                    // The call ended: flush, read the last results, close.
                    let _ = ws.send(Message::text(r#"{"type":"CloseStream"}"#)).await;
                    let drain = async {
                        while let Some(Ok(m)) = ws.next().await {
                            if let Message::Text(t) = m
                                && let Some(ev) = parse_message(t.as_str())
                            {
                                let _ = events.try_send(ev);
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(ev) = parse_message(t.as_str())
                        && events.send(ev).await.is_err()
                    {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    match reconnect(&settings, params, kept.make_contiguous(), &events).await {
                        Some(w) => ws = w,
                        None => return,
                    }
                }
            },
            _ = tick.tick() => {
                if last_sent.elapsed() >= KEEPALIVE_AFTER {
                    let _ = ws.send(Message::text(r#"{"type":"KeepAlive"}"#)).await;
                    last_sent = Instant::now();
                }
            }
        }
    }
}

/// Appends `b` to the replay ring, dropping its oldest bytes beyond [`KEEP_BYTES`].
fn keep(kept: &mut std::collections::VecDeque<u8>, b: &[u8]) {
    let b = &b[b.len().saturating_sub(KEEP_BYTES)..];
    let over = (kept.len() + b.len()).saturating_sub(KEEP_BYTES);
    kept.drain(..over.min(kept.len()));
    kept.extend(b);
}

/// A new connection with the unfinished utterance sent again; `None` (after a `Failed` event)
/// when Deepgram cannot be reached.
async fn reconnect(
    settings: &DeepgramSettings,
    params: ListenParams,
    kept: &[u8],
    events: &mpsc::Sender<SttEvent>,
) -> Option<Ws> {
    let mut last = SpeechError::Engine("deepgram: connection lost".into());
    for attempt in 0..RECONNECTS {
        tokio::time::sleep(Duration::from_millis(100 * 3u64.pow(attempt))).await;
        match connect(settings, params).await {
            Ok(mut ws) => {
                tracing::warn!(
                    attempt,
                    resent_bytes = kept.len(),
                    "deepgram stream reconnected"
                );
                let mut ok = true;
                for chunk in kept.chunks(1600) {
                    if ws
                        .send(Message::Binary(Bytes::copy_from_slice(chunk)))
                        .await
                        .is_err()
                    {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    let _ = events.send(SttEvent::Restarted).await;
                    return Some(ws);
                }
            }
            Err(e) => last = e,
        }
    }
    let _ = events
        .send(SttEvent::Failed {
            error: last.to_string(),
        })
        .await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_events() {
        let interim = r#"{"type":"Results","is_final":false,"speech_final":false,"channel":{"alternatives":[{"transcript":"a table","confidence":0.9}]}}"#;
        assert_eq!(
            parse_message(interim),
            Some(SttEvent::Partial {
                text: "a table".into()
            })
        );
        let fin = r#"{"type":"Results","is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"A table for two."}]}}"#;
        assert_eq!(
            parse_message(fin),
            Some(SttEvent::Final {
                text: "A table for two.".into(),
                end: true
            })
        );
        let flushed = r#"{"type":"Results","is_final":true,"speech_final":false,"from_finalize":true,"channel":{"alternatives":[{"transcript":""}]}}"#;
        assert_eq!(
            parse_message(flushed),
            Some(SttEvent::Final {
                text: String::new(),
                end: true
            })
        );
        assert_eq!(
            parse_message(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":4.5}"#),
            Some(SttEvent::UtteranceEnd)
        );
        assert_eq!(
            parse_message(r#"{"type":"Metadata","request_id":"x"}"#),
            None
        );
        assert_eq!(parse_message("not json"), None);
    }

    #[test]
    fn url_carries_the_stream_format() {
        let s = DeepgramSettings {
            api_key: secrecy::SecretString::from("k"),
            base_url: url::Url::parse("wss://api.deepgram.com").unwrap_or_else(|e| panic!("{e}")),
            model: "nova-3".into(),
            language: "en-US".into(),
        };
        let u = listen_url(
            &s,
            ListenParams {
                endpointing: Duration::from_millis(300),
                utterance_end: Duration::from_millis(1000),
            },
        );
        assert!(u.starts_with("wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000"), "{u}");
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn the_replay_ring_keeps_the_last_bytes_without_growing() {
        let mut kept = std::collections::VecDeque::new();
        for i in 0..(KEEP_BYTES / 320 + 50) {
            keep(&mut kept, &[(i % 251) as u8; 320]);
        }
        assert_eq!(kept.len(), KEEP_BYTES);
        let last = ((KEEP_BYTES / 320 + 49) % 251) as u8;
        assert_eq!(*kept.back().unwrap(), last);
        assert!(kept.capacity() < 2 * KEEP_BYTES);
        keep(&mut kept, &vec![7; KEEP_BYTES + 10]);
        assert!(kept.len() == KEEP_BYTES && kept.iter().all(|&b| b == 7));
    }
}
