//! `callbot serve` killed with SIGKILL mid-campaign, restarted on the same data: the campaign
//! completes and nobody is called twice.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{Value, json};
use std::time::Duration;

fn number(i: usize) -> String {
    format!("+1555020{i:04}")
}

/// `callbot serve` killed with SIGKILL while calls are in progress, then restarted on the same
/// data: every row ends, and no number is called twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_campaign_without_calling_anyone_twice() {
    use common::serve::start_serve_with;
    let dir = tempfile::tempdir().unwrap();
    let key = "kill-test-key-0123456789";
    let env = [("CALLBOT_LLM", "off"), ("CALLBOT_SPEECH", "instant")];
    let (mut server, base, _) = start_serve_with(dir.path(), Some(key), &env);
    let client = reqwest::Client::new();
    let post = |base: String, path: &str, body: Value| {
        let req = client
            .post(format!("{base}{path}"))
            .header("x-api-key", key)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let get = |base: String, path: String| {
        let req = client.get(format!("{base}{path}")).header("x-api-key", key);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut body = common::bot_body();
    body["silence_timeout_secs"] = json!(3);
    let bot = post(base.clone(), "/bots", body).await;
    let rows: Vec<Value> = (0..24).map(|i| json!({"to": number(i)})).collect();
    let c = post(base.clone(), "/campaigns", json!({"bot_id": bot["id"], "rows": rows, "max_concurrency": 4,
        "window": {"start": "00:00", "end": "24:00"}, "retry": {"failed": {"attempts": 3, "delay_seconds": 0}}})).await;
    let id = c["id"].as_str().unwrap().to_owned();
    // Kill it while calls are up, after some rows finished.
    let mut progress = Value::Null;
    for _ in 0..600 {
        progress = get(base.clone(), format!("/campaigns/{id}")).await;
        if progress["counts"]["done"].as_u64() >= Some(4)
            && progress["counts"]["calling"].as_u64() >= Some(1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        progress["counts"]["calling"].as_u64() >= Some(1),
        "{progress}"
    );
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    let (_server, base, _) = start_serve_with(dir.path(), Some(key), &env);
    let mut done = Value::Null;
    for _ in 0..1200 {
        done = get(base.clone(), format!("/campaigns/{id}")).await;
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    let interrupted = done["outcomes"]["interrupted"].as_u64().unwrap_or(0);
    assert!(
        interrupted >= 1,
        "the calls cut by the kill end interrupted: {done}"
    );
    assert_eq!(
        done["outcomes"]["answered"].as_u64().unwrap_or(0) + interrupted,
        24,
        "{done}"
    );
    // Every number got exactly one call, across both processes.
    let calls = get(base.clone(), "/calls?limit=100".into()).await;
    let mut called: Vec<String> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["to"].as_str().unwrap().to_owned())
        .collect();
    called.sort();
    let mut once = called.clone();
    once.dedup();
    assert_eq!(once, called, "a number called twice");
    // A number not called at all is a row the kill caught between its claim and its call's
    // record: it ended interrupted, and was not risked again.
    let rows = get(base.clone(), format!("/campaigns/{id}/rows?limit=100")).await;
    for row in rows["rows"].as_array().unwrap() {
        let to = row["to"].as_str().unwrap();
        if !called.iter().any(|c| c == to) {
            assert_eq!(row["outcome"], "interrupted", "{row}");
            assert_eq!(row["attempts"].as_array().unwrap().len(), 1, "{row}");
        }
    }
    assert!(called.len() >= 20, "most rows were called: {called:?}");
}
