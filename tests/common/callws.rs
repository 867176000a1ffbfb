//! A RustPBX-style client of `wss /call`: sends commands and audio frames, collects events and
//! the bot's audio in the background so a test can wait for what it expects.

use super::{TestApp, eventually};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

pub struct CallClient {
    sink: Sink,
    /// Every event received so far, in order.
    pub events: Arc<Mutex<Vec<Value>>>,
    /// The bot's audio (binary frames) received so far.
    pub audio: Arc<Mutex<Vec<u8>>>,
    /// Sizes of the binary frames.
    pub frame_sizes: Arc<Mutex<Vec<usize>>>,
    pub closed: Arc<std::sync::atomic::AtomicBool>,
}

/// Opens `path` (with its query) on the app, with `key` as `X-API-Key` when given.
/// Err: the HTTP status of a refused upgrade.
pub async fn open(app: &TestApp, path: &str, key: Option<&str>) -> Result<CallClient, u16> {
    let url = format!("{}{path}", app.base.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut().insert("x-api-key", k.parse().unwrap());
    }
    let ws = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => return Err(r.status().as_u16()),
        Err(e) => panic!("connecting {path}: {e}"),
    };
    let (sink, mut stream) = ws.split();
    let events = Arc::new(Mutex::new(Vec::new()));
    let audio = Arc::new(Mutex::new(Vec::new()));
    let frame_sizes = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (e, a, f, c) = (
        events.clone(),
        audio.clone(),
        frame_sizes.clone(),
        closed.clone(),
    );
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Text(t) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        e.lock().unwrap().push(v);
                    }
                }
                Message::Binary(b) => {
                    f.lock().unwrap().push(b.len());
                    a.lock().unwrap().extend_from_slice(&b);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        c.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    Ok(CallClient {
        sink,
        events,
        audio,
        frame_sizes,
        closed,
    })
}

impl CallClient {
    pub async fn send(&mut self, v: Value) {
        self.sink.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.sink
            .send(Message::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// Sends `bytes` as binary frames of `frame` bytes, one every 20 ms.
    pub async fn send_audio(&mut self, bytes: &[u8], frame: usize) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for chunk in bytes.chunks(frame) {
            tick.tick().await;
            self.sink
                .send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
    }

    pub async fn invite(&mut self, option: Value) -> Value {
        self.send(json!({"command": "invite", "option": option}))
            .await;
        self.wait("answer", |_| true).await
    }

    /// The first event named `name` matching `pred`, waiting up to 30 s.
    pub async fn wait(&self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let found = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["event"] == name && pred(e))
                .cloned();
            if let Some(v) = found {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no matching {name} event within 30 s; got {:?}",
            self.events.lock().unwrap().clone()
        )
    }

    /// Supervisor: after the track playing now ends, speaks `text` into the call with `tts` and
    /// waits until that new track has been played to its end.
    pub async fn say_and_wait(&mut self, text: &str) {
        self.wait("trackEnd", |_| true).await;
        let before = self.all("trackStart").len();
        self.send(json!({"command": "tts", "text": text})).await;
        let track = eventually(|| {
            let starts = self.all("trackStart");
            async move {
                starts
                    .get(before)
                    .map(|e| e["trackId"].as_str().unwrap().to_owned())
            }
        })
        .await;
        self.wait("trackEnd", |e| e["trackId"] == track.as_str())
            .await;
    }

    /// Events named `name` so far.
    pub fn all(&self, name: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == name)
            .cloned()
            .collect()
    }

    /// Waits for the socket to close.
    pub async fn closed(&self) {
        let c = self.closed.clone();
        eventually(|| {
            let done = c.load(std::sync::atomic::Ordering::SeqCst);
            async move { done.then_some(()) }
        })
        .await
    }
}

/// A ticket for `purpose` from `POST /call/tickets`.
pub async fn ticket(app: &TestApp, key: &str, purpose: &str) -> String {
    let (status, v) = app
        .post_json(key, "/call/tickets", &json!({"purpose": purpose}))
        .await;
    assert_eq!(status, 201, "{v}");
    v["ticket"].as_str().unwrap().to_owned()
}
