//! Sockets fail closed and never hold a call: a message over a socket's limit closes that socket
//! with 1009 and nothing else; a supervisor is told `hangup` and closed when its call ends; a
//! client that stops reading is dropped while its call ends normally; a socket that floods commands
//! gets `error` events (429), then is closed with 1008.

#![allow(clippy::unwrap_used)]
mod common;

use common::callws::{self, CallClient};
use common::hook::{self, Answer};
use common::{TestApp, eventually, spawn_app_with};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn app_and_bot() -> (TestApp, String, String) {
    let app = spawn_app_with(|s| {
        s.calls.end_silence = Duration::from_millis(400);
    })
    .await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Okay."}))).await;
    let body = json!({"goal": "Take reservations", "webhook": hook.url, "first_message": "Hello."});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    // The hook lives as long as the app's tests need it.
    std::mem::forget(hook);
    (
        app,
        b["id"].as_str().unwrap().to_owned(),
        b["number"].as_str().unwrap().to_owned(),
    )
}

async fn connect(app: &TestApp, path: &str) -> Ws {
    let url = format!("{}{path}", app.base.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", app.api_key.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads until the server closes: the text messages before, and the close code. A read error
/// before the close fails the test (the close must be readable).
async fn until_closed<S>(rx: &mut S) -> (Vec<Value>, Option<u16>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut texts = Vec::new();
    let read = async {
        while let Some(m) = rx.next().await {
            match m {
                Ok(Message::Text(t)) => texts.push(serde_json::from_str::<Value>(&t).unwrap()),
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(e) => panic!("the connection failed before the close: {e}"),
            }
        }
        None
    };
    let code = tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the server closes the socket");
    (texts, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_over_the_limit_closes_the_call_socket_with_1009() {
    let (app, bot, _) = app_and_bot().await;
    // Before the invite: the socket is closed, no error event is made of it.
    let ws = connect(&app, "/call").await;
    let (mut tx, mut rx) = ws.split();
    // Sent while the close is read: the server stops reading it at the limit.
    tokio::spawn(async move {
        let _ = tx.send(Message::text("x".repeat(8 * 1024 * 1024))).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (texts, code) = until_closed(&mut rx).await;
    assert_eq!(code, Some(1009), "{texts:?}");
    assert!(texts.is_empty(), "nothing but the close: {texts:?}");

    // During a call: the same, and the call ends.
    let mut ws = connect(&app, "/call").await;
    let invite = json!({"command": "invite", "option": {"callee": bot}});
    ws.send(Message::text(invite.to_string())).await.unwrap();
    let answer: Value = loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["event"] == "answer" {
                break v;
            }
        }
    };
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    ws.send(Message::binary(vec![0xFFu8; 100 * 1024]))
        .await
        .unwrap();
    let (texts, code) = until_closed(&mut ws).await;
    assert_eq!(code, Some(1009));
    assert!(
        !texts.iter().any(|e| e["event"] == "error"),
        "no error event for it: {texts:?}"
    );
    eventually(|| async {
        let (_, v) = app.get(&app.api_key, &format!("/calls/{sid}")).await;
        (v["status"] == "completed").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_observer_that_sends_a_big_message_is_closed_with_1009() {
    let (app, bot, _) = app_and_bot().await;
    let mut call = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    let answer = call.invite(json!({"callee": bot})).await;
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    let mut obs = connect(&app, &format!("/frontend-stream?callSid={sid}")).await;
    obs.send(Message::text("y".repeat(64 * 1024)))
        .await
        .unwrap();
    let (_, code) = until_closed(&mut obs).await;
    assert_eq!(code, Some(1009));
    // The call itself goes on.
    call.say_and_wait("Still here.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisor_is_told_hangup_and_closed_when_its_call_ends() {
    let (app, _, number) = app_and_bot().await;
    let call = common::dial(
        &app,
        &number,
        vec![
            common::wait_bot(),
            callbot_twilio_sim::carrier::Step::Silence(Duration::from_secs(2)),
        ],
    );
    let sid = call.sid.clone();
    let sup: CallClient = eventually(|| async {
        callws::open(&app, &format!("/call?id={sid}"), Some(&app.api_key))
            .await
            .ok()
    })
    .await;
    // The caller hangs up after their silence: the supervisor hears of it and is closed.
    sup.wait("hangup", |e| e["reason"] == "caller_hangup").await;
    sup.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_client_that_stops_reading_is_dropped_and_the_call_still_ends() {
    let (app, bot, _) = app_and_bot().await;
    // A client with a small receive window that reads only the answer, then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/call");
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", app.api_key.parse().unwrap());
    let (mut ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let invite = json!({"command": "invite", "option": {"callee": bot}});
    ws.send(Message::text(invite.to_string())).await.unwrap();
    let sid = loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["event"] == "answer" {
                break v["callSid"].as_str().unwrap().to_owned();
            }
        }
    };
    // Seconds of audio the client never reads fill the socket's buffers.
    let long = "This sentence is spoken to a client that does not listen. ".repeat(30);
    ws.send(Message::text(
        json!({"command": "tts", "text": long}).to_string(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    ws.send(Message::text(json!({"command": "hangup"}).to_string()))
        .await
        .unwrap();
    // The call ends and leaves the live list although its client never read again.
    let v = common::finished_call(&app, &sid).await;
    assert_eq!(v["status"], "completed", "{v}");
    // (Within the send deadlines: 5 s for the event forwarder, 5 s for the writer.)
    let mut listed = true;
    for _ in 0..60 {
        let (_, live) = app.get(&app.api_key, "/call/lists").await;
        listed = live["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == sid.as_str());
        if !listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!listed, "the call is still held 30 s after it ended");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_tts_commands_are_bounded_and_the_call_goes_on() {
    let (app, bot, _) = app_and_bot().await;
    let mut c = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    c.invite(json!({"callee": bot})).await;
    // One playId: each queues behind the one playing instead of cutting it.
    for i in 0..40 {
        c.send(json!({"command": "tts", "text": format!("Line number {i}."), "playId": "p1"}))
            .await;
    }
    let refused = c
        .wait("error", |e| {
            e["code"] == 429 && e["error"].as_str().unwrap().contains("too_many_queued")
        })
        .await;
    assert!(
        refused["error"].as_str().unwrap().contains("16"),
        "{refused}"
    );
    // What was queued still plays, and the call takes commands.
    c.wait("trackEnd", |_| true).await;
    c.send(json!({"command": "hangup"})).await;
    c.wait("hangup", |_| true).await;
}

/// Floods `ws` with `n` `history` commands at once and reads until the server closes it.
async fn flood(ws: Ws, n: usize) -> (Vec<Value>, Option<u16>) {
    let (mut tx, mut rx) = ws.split();
    let cmd = json!({"command": "history", "speaker": "user", "text": "again"}).to_string();
    tokio::spawn(async move {
        for _ in 0..n {
            if tx.feed(Message::text(cmd.clone())).await.is_err() {
                return;
            }
        }
        let _ = tx.flush().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    until_closed(&mut rx).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_that_floods_commands_gets_errors_then_is_closed() {
    let (app, bot, number) = app_and_bot().await;
    // The call's own socket.
    let mut ws = connect(&app, "/call").await;
    let invite = json!({"command": "invite", "option": {"callee": bot}});
    ws.send(Message::text(invite.to_string())).await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m
            && t.contains("\"answer\"")
        {
            break;
        }
    }
    let (texts, code) = flood(ws, 5000).await;
    assert_eq!(code, Some(1008), "closed for the flood");
    let limited = texts
        .iter()
        .filter(|e| e["event"] == "error" && e["code"] == 429)
        .count();
    assert!(limited > 0, "error events first: {texts:?}");

    // A supervisor of a phone call: the same, and the call is not affected.
    let call = common::dial(
        &app,
        &number,
        vec![
            common::wait_bot(),
            callbot_twilio_sim::carrier::Step::Silence(Duration::from_secs(6)),
        ],
    );
    let sid = call.sid.clone();
    let sup: Ws = eventually(|| async {
        let url = format!("{}/call?id={sid}", app.base.replace("http://", "ws://"));
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("x-api-key", app.api_key.parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .ok()
            .map(|(ws, _)| ws)
    })
    .await;
    let (texts, code) = flood(sup, 5000).await;
    assert_eq!(code, Some(1008));
    assert!(
        texts
            .iter()
            .any(|e| e["event"] == "error" && e["code"] == 429),
        "{texts:?}"
    );
    let (_, v) = app.get(&app.api_key, &format!("/calls/{sid}")).await;
    assert_eq!(v["status"], "in-progress", "the call goes on: {v}");
}
