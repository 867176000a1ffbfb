//! The worker binary as `callbot serve` runs it: loads the GGUF, prints its address, answers the
//! OpenAI chat completions API (whole and streamed), reuses the cached prompt prefix, refuses bad
//! requests in OpenAI's error shape, and exits when its stdin closes.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn model() -> Option<String> {
    match std::env::var("CALLBOT_TEST_LLM_MODEL") {
        Ok(m) => Some(m),
        Err(_) if std::env::var("CALLBOT_SKIP_LLM").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPING the worker tests: CALLBOT_SKIP_LLM=1");
            None
        }
        Err(_) => panic!(
            "CALLBOT_TEST_LLM_MODEL is not set: run scripts/test.sh, or set CALLBOT_SKIP_LLM=1 to skip knowingly"
        ),
    }
}

#[tokio::test]
async fn the_worker_speaks_openai_and_caches_the_prefix() {
    let Some(model) = model() else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbot-llm"))
        .args(["--model", &model, "--threads", "2", "--exit-with-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let models: serde_json::Value = http
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");

    let ask = |user: &str, stream: bool| {
        serde_json::json!({"model": "local", "stream": stream, "stream_options": {"include_usage": true},
            "max_tokens": 24, "temperature": 0,
            "messages": [{"role": "system", "content": "You are the voice of a restaurant on a phone call. Answer in one short sentence."},
                         {"role": "user", "content": user}]})
    };
    let v: serde_json::Value = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&ask("Are you open on Sunday?", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty(),
        "{v}"
    );
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Streamed, same system prompt: the prefix comes from the KV cache.
    let resp = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&ask("Do you have a table for two?", true))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = resp.text().await.unwrap();
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]", "{body}");
    let text: String = events
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!text.trim().is_empty(), "{body}");
    let usage: serde_json::Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert!(
        usage["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 20,
        "{usage}"
    );

    // Several at once (batched), one of them abandoned after its first bytes: all the others end
    // properly and the worker keeps serving.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (http, base) = (http.clone(), base.clone());
        let body = ask(
            &format!("Question {i}: can I bring a dog to dinner number {i}?"),
            true,
        );
        tasks.push(tokio::spawn(async move {
            let mut resp = http
                .post(format!("{base}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            if i == 0 {
                let _ = resp.chunk().await;
                return None; // hang up mid-stream
            }
            Some(resp.text().await.unwrap())
        }));
    }
    for t in tasks {
        if let Some(body) = t.await.unwrap() {
            assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
            assert!(
                body.contains("\"finish_reason\":\"stop\"")
                    || body.contains("\"finish_reason\":\"length\""),
                "{body}"
            );
        }
    }

    // Bad requests: OpenAI's error shape.
    for (body, code) in [
        (serde_json::json!({"messages": []}), "invalid_request"),
        (
            serde_json::json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "invalid_request",
        ),
        (
            serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}),
            "invalid_request",
        ),
        // Cannot become a prompt (C strings): refused alone, the model is left as it was.
        (
            serde_json::json!({"messages": [{"role": "user", "content": "a\u{0}b"}]}),
            "invalid_request",
        ),
    ] {
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (e["error"]["code"].as_str(), e["error"]["type"].as_str()),
            (Some(code), Some("invalid_request_error")),
            "{e}"
        );
    }
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let after: serde_json::Value = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&ask("Are you open on Sunday?", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        after["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 20,
        "the cache survived bad requests: {after}"
    );

    // The supervising process goes away: the worker follows.
    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
