//! The webhook examples a customer copies (Python, Node.js, PHP; standard library only), each
//! run as a real server against a real call: it must verify our signature (a forged request is
//! refused with 401) and answer turns so the bot speaks its words.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_stream::speech::instant::voiced_tone;
use callbot_twilio_sim::carrier::Step;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(lang: &str, port: u16, secret: &str) -> Server {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut cmd = match lang {
        "python" => {
            let mut c = Command::new("python3");
            c.arg(format!("{dir}/webhook.py")).arg(port.to_string());
            c
        }
        "node" => {
            let mut c = Command::new("node");
            c.arg(format!("{dir}/webhook.js")).arg(port.to_string());
            c
        }
        "php" => {
            let mut c = Command::new("php");
            c.args([
                "-S",
                &format!("127.0.0.1:{port}"),
                &format!("{dir}/webhook.php"),
            ]);
            c
        }
        other => panic!("{other}"),
    };
    let child = cmd
        .env("WEBHOOK_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting the {lang} example (scripts/test.sh installs php): {e}")
        });
    Server(child)
}

async fn example_answers_a_real_call(lang: &str) {
    let app = common::spawn_app_with(|s| {
        s.calls.end_silence = Duration::from_millis(400);
        s.calls.webhook_timeout = Duration::from_secs(3);
    })
    .await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Book tables", "webhook": url, "voice": "local:en-us", "llm_suggestion": false}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let secret = b["webhook_secret"].as_str().unwrap();
    let _server = start(lang, port, secret);
    // Ready when it answers (a forged signature: 401).
    let client = reqwest::Client::new();
    let forged = common::eventually(|| async {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-callbot-signature", "t=1,v1=00")
            .body(r#"{"turn":1,"user_text":"hi"}"#)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    })
    .await;
    assert_eq!(forged, 401, "{lang} refuses a forged signature");

    let mut call = common::dial(
        &app,
        b["number"].as_str().unwrap(),
        vec![
            common::wait_bot(),
            Step::Audio(voiced_tone(800)),
            common::wait_bot(),
        ],
    );
    let _ = callbot_twilio_sim::events_until_end(&mut call, Duration::from_secs(30)).await;
    let v: Value = common::finished_call(&app, &call.sid).await;
    let turn = &v["turns"][1];
    // (After "One moment." when the example server is slow to answer on a loaded machine.)
    assert_eq!(
        common::without_fillers(turn["bot_text"].as_str().unwrap_or_default()),
        "I can book a table for you. For how many people, and when?",
        "{lang}: {v}"
    );
    assert!(turn["fallback"].is_null(), "{lang}: {turn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_example_answers_a_call() {
    example_answers_a_real_call("python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_example_answers_a_call() {
    example_answers_a_real_call("node").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_php_example_answers_a_call() {
    example_answers_a_real_call("php").await;
}
