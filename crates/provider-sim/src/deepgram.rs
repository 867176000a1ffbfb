//! A stand-in for Deepgram's live recognition WebSocket (`/v1/listen`). It checks the handshake
//! the way the service does (`Authorization: Token <key>` → 401; `encoding` without
//! `sample_rate` → 400; μ-law 8 kHz mono, interim results), takes binary audio frames and the
//! text control messages (`KeepAlive`, `Finalize`, `CloseStream`; anything else → close 1008),
//! closes idle streams with 1011 `NET-0001`, and answers in the real message shapes: interim
//! `Results` while the caller speaks, a final one with `speech_final` after the `endpointing`
//! silence (or `from_finalize` after `Finalize`), `UtteranceEnd`, and `Metadata` at the close.
//!
//! What it "recognises" is a script keyed on the audio: it finds voiced stretches in the μ-law
//! it receives (an energy detector on audio time, not wall time) and names each by its length.
//! It can drop a connection part way through an utterance, as a flaky network does.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_audio::g711;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const KEY: &str = "dg-standin-key-0001";

/// Words for an utterance of this many milliseconds of voiced audio.
pub type ScriptFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

#[derive(Debug, Default, Clone)]
pub struct Conn {
    pub query: HashMap<String, String>,
    pub authorization: String,
    pub audio_bytes: usize,
    pub keepalives: u32,
    pub finalizes: u32,
    pub close_stream: bool,
    /// Messages sent, by type (`Results` interim/final, `UtteranceEnd`, `Metadata`).
    pub sent: Vec<String>,
}

#[derive(Clone)]
pub struct StandIn {
    pub base: String,
    conns: Arc<Mutex<Vec<Conn>>>,
    script: ScriptFn,
    /// Drop the first connection after this much voiced audio of an utterance.
    drop_after: Arc<Mutex<Option<Duration>>>,
    refused: Arc<Mutex<u32>>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn").field("base", &self.base).finish()
    }
}

impl StandIn {
    pub fn connections(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }
    pub fn drop_first_after(&self, voiced: Duration) {
        *self.drop_after.lock().unwrap() = Some(voiced);
    }
    pub fn refused(&self) -> u32 {
        *self.refused.lock().unwrap()
    }
}

pub async fn start(script: impl Fn(u64) -> String + Send + Sync + 'static) -> StandIn {
    let s = StandIn {
        base: String::new(),
        conns: Arc::default(),
        script: Arc::new(script),
        drop_after: Arc::default(),
        refused: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/v1/listen", axum::routing::get(listen))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    StandIn { base, ..s }
}

fn refuse(s: &StandIn, status: u16, message: &str) -> Response {
    *s.refused.lock().unwrap() += 1;
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"err_code": if status == 401 {"INVALID_AUTH"} else {"Bad Request"}, "err_msg": message, "request_id": "00000000-0000-4000-8000-000000000000"})),
    )
        .into_response()
}

async fn listen(
    State(s): State<StandIn>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if auth != format!("Token {KEY}") {
        return refuse(&s, 401, "Invalid credentials.");
    }
    if q.contains_key("encoding") && !q.contains_key("sample_rate") {
        return refuse(&s, 400, "sample_rate is required with encoding");
    }
    let ok = q.get("encoding").map(String::as_str) == Some("mulaw")
        && q.get("sample_rate").map(String::as_str) == Some("8000")
        && q.get("channels").map(String::as_str).unwrap_or("1") == "1"
        && q.contains_key("model");
    if !ok {
        return refuse(
            &s,
            400,
            "this stand-in takes model, encoding=mulaw, sample_rate=8000, channels=1",
        );
    }
    let index = {
        let mut c = s.conns.lock().unwrap();
        c.push(Conn {
            query: q.clone(),
            authorization: auth,
            ..Conn::default()
        });
        c.len() - 1
    };
    ws.on_upgrade(move |socket| session(s, index, q, socket))
}

fn ms_param(q: &HashMap<String, String>, k: &str, default: u64) -> u64 {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn results(
    text: &str,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
    start: f64,
    dur: f64,
) -> String {
    json!({"type": "Results", "channel_index": [0, 1], "duration": dur, "start": start,
           "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
           "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": []}]},
           "metadata": {"request_id": "6d1f0c2e-0000-4000-8000-00000000abcd",
                        "model_info": {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"},
                        "model_uuid": "11111111-2222-3333-4444-555555555555"}})
    .to_string()
}

/// Words of `text` in proportion `part` (an interim guess).
fn prefix(text: &str, part: f64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = ((words.len() as f64 * part).ceil() as usize).clamp(1, words.len().max(1));
    words[..n.min(words.len())].join(" ")
}

async fn session(s: StandIn, index: usize, q: HashMap<String, String>, mut socket: WebSocket) {
    let endpointing = ms_param(&q, "endpointing", 10);
    let utterance_end = ms_param(&q, "utterance_end_ms", 0);
    let interim = q.get("interim_results").map(String::as_str) == Some("true");
    let drop_after = if index == 0 {
        *s.drop_after.lock().unwrap()
    } else {
        None
    };
    // Audio-time state (ms since the stream began).
    let mut t_ms: u64 = 0;
    let mut voiced_ms: u64 = 0;
    let mut silent_ms: u64 = 0;
    let mut in_speech = false;
    let mut seg_start: u64 = 0;
    let mut next_interim: u64 = 300;
    let mut since_final: Option<u64> = None;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let msg = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
            Err(_) => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: "NET-0001".into(),
                    })))
                    .await;
                return;
            }
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(m))) => m,
        };
        let mut out: Vec<(String, &str)> = Vec::new();
        match msg {
            Message::Binary(b) => {
                if b.is_empty() {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1002,
                            reason: "DATA-0000".into(),
                        })))
                        .await;
                    return;
                }
                s.conns.lock().unwrap()[index].audio_bytes += b.len();
                carry.extend_from_slice(&b);
                while carry.len() >= 160 {
                    let frame: Vec<i16> = carry.drain(..160).map(g711::decode_sample).collect();
                    let rms =
                        (frame.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 160.0).sqrt();
                    t_ms += 20;
                    if rms > 1000.0 {
                        if !in_speech {
                            in_speech = true;
                            seg_start = t_ms - 20;
                            voiced_ms = 0;
                            next_interim = 300;
                        }
                        voiced_ms += 20;
                        silent_ms = 0;
                        since_final = None;
                        if let Some(limit) = drop_after
                            && voiced_ms >= limit.as_millis() as u64
                        {
                            // The network fails mid-utterance: no close frame, just gone.
                            return;
                        }
                        if interim && voiced_ms >= next_interim {
                            next_interim += 300;
                            let guess = prefix(&(s.script)(voiced_ms), 0.5);
                            out.push((
                                results(
                                    &guess,
                                    false,
                                    false,
                                    false,
                                    seg_start as f64 / 1000.0,
                                    voiced_ms as f64 / 1000.0,
                                ),
                                "interim",
                            ));
                        }
                    } else if in_speech {
                        silent_ms += 20;
                        if silent_ms >= endpointing.max(10) {
                            in_speech = false;
                            let text = (s.script)(voiced_ms);
                            out.push((
                                results(
                                    &text,
                                    true,
                                    true,
                                    false,
                                    seg_start as f64 / 1000.0,
                                    (t_ms - seg_start) as f64 / 1000.0,
                                ),
                                "final",
                            ));
                            since_final = Some(0);
                        }
                    } else if let Some(n) = since_final.as_mut() {
                        *n += 20;
                        if utterance_end > 0 && *n >= utterance_end {
                            out.push((json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": (t_ms - *n) as f64 / 1000.0}).to_string(), "UtteranceEnd"));
                            since_final = None;
                        }
                    }
                }
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("KeepAlive") => s.conns.lock().unwrap()[index].keepalives += 1,
                    Some("Finalize") => {
                        s.conns.lock().unwrap()[index].finalizes += 1;
                        let text = if in_speech {
                            (s.script)(voiced_ms)
                        } else {
                            String::new()
                        };
                        in_speech = false;
                        out.push((
                            results(
                                &text,
                                true,
                                false,
                                true,
                                seg_start as f64 / 1000.0,
                                (t_ms - seg_start) as f64 / 1000.0,
                            ),
                            "final",
                        ));
                    }
                    Some("CloseStream") => {
                        s.conns.lock().unwrap()[index].close_stream = true;
                        if in_speech {
                            let text = (s.script)(voiced_ms);
                            let _ = socket
                                .send(Message::text(results(
                                    &text,
                                    true,
                                    true,
                                    false,
                                    seg_start as f64 / 1000.0,
                                    voiced_ms as f64 / 1000.0,
                                )))
                                .await;
                        }
                        let meta = json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": "6d1f0c2e-0000-4000-8000-00000000abcd",
                            "sha256": "0".repeat(64), "created": "2026-12-01T00:00:00.000Z", "duration": t_ms as f64 / 1000.0, "channels": 1});
                        let _ = socket.send(Message::text(meta.to_string())).await;
                        s.conns.lock().unwrap()[index].sent.push("Metadata".into());
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: 1000,
                                reason: "".into(),
                            })))
                            .await;
                        return;
                    }
                    _ => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: 1008,
                                reason: "unknown control message".into(),
                            })))
                            .await;
                        return;
                    }
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
        for (text, kind) in out {
            if socket.send(Message::text(text)).await.is_err() {
                return;
            }
            s.conns.lock().unwrap()[index].sent.push(kind.to_owned());
        }
    }
}
