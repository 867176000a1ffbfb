//! The `/llm/v1` gateway against the OpenAI-compatible stand-in: streaming passed through as it
//! arrives, non-streaming answers, the platform's key swapped in for the tenant's, refused keys,
//! the per-tenant rate limit, token usage counted per tenant (also for an answer the client
//! abandons), and nothing but inference forwarded (the account's files, batches, fine-tuning and
//! organisation endpoints are refused before they reach the provider; an optional model list).

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::LlmSettings;
use common::openai::{self, Reply};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn app(standin: &openai::StandIn, per_minute: u32) -> common::TestApp {
    app_with_models(standin, per_minute, Vec::new()).await
}

async fn app_with_models(
    standin: &openai::StandIn,
    per_minute: u32,
    models: Vec<String>,
) -> common::TestApp {
    let base = standin.base.clone();
    common::spawn_app_with(move |s| {
        s.llm = LlmSettings::OpenAi {
            base_url: url::Url::parse(&base).unwrap(),
            api_key: Some(SecretString::from(openai::KEY.to_owned())),
            model: "standin-1".into(),
        };
        s.llm_gateway_per_minute = per_minute;
        s.llm_gateway_models = models;
    })
    .await
}

fn chat(stream: bool) -> Value {
    json!({"model": "standin-1", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
}

/// A streamed chat completion through the gateway with the tenant's key.
async fn stream_chat(app: &common::TestApp) -> reqwest::Response {
    app.client
        .post(app.url("/llm/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .json(&chat(true))
        .send()
        .await
        .unwrap()
}

/// A stand-in that streams three sentences `gap` apart.
async fn three_sentences(gap: Duration) -> openai::StandIn {
    openai::start(move |_| Reply::Text {
        pieces: vec!["One. ".into(), "Two. ".into(), "Three.".into()],
        gap,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_through_as_they_arrive_with_the_key_swapped() {
    let standin = three_sentences(Duration::from_millis(400)).await;
    let app = app(&standin, 100).await;
    let started = Instant::now();
    let resp = stream_chat(&app).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    let mut first_text = None;
    let mut all = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = String::from_utf8(chunk.unwrap().to_vec()).unwrap();
        if first_text.is_none() && chunk.contains("One.") {
            first_text = Some(started.elapsed());
        }
        all.push_str(&chunk);
    }
    let total = started.elapsed();
    // The first piece came ~800 ms before the last: it was not held back.
    assert!(
        first_text.unwrap() + Duration::from_millis(500) < total,
        "{first_text:?} vs {total:?}"
    );
    assert!(all.trim_end().ends_with("data: [DONE]"), "{all}");
    assert!(
        all.contains("\"usage\""),
        "usage requested for counting: {all}"
    );
    // The model server saw the platform's key, never the tenant's.
    let seen = &standin.requests()[0];
    assert_eq!(seen.authorization, format!("Bearer {}", openai::KEY));
    assert!(!seen.body.to_string().contains(&app.api_key));
    // Non-streamed, with X-API-Key this time; and the models list.
    let (status, v) = app
        .post_json(&app.api_key, "/llm/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "One. Two. Three.");
    let (status, v) = app.get(&app.api_key, "/llm/v1/models").await;
    assert_eq!(
        (status, v["data"][0]["id"].as_str()),
        (200, Some("standin-1")),
        "{v}"
    );
    // Usage: both completions counted for this tenant (the models call has none).
    let usage = common::eventually(|| async {
        let (_, v) = app.get(&app.api_key, "/llm/usage").await;
        (v["usage"][0]["requests"] == 3).then_some(v)
    })
    .await;
    assert_eq!(usage["usage"][0]["prompt_tokens"], 82, "{usage}");
    assert_eq!(usage["usage"][0]["completion_tokens"], 18, "{usage}");
    let other = app.new_key("globex").await;
    let (_, v) = app.get(&other, "/llm/usage").await;
    assert_eq!(v["usage"], json!([]));
}

#[tokio::test]
async fn keys_are_checked_and_the_rate_limit_holds() {
    let standin = openai::start(|_| Reply::text("ok")).await;
    let app = app(&standin, 2).await;
    let url = app.url("/llm/v1/chat/completions");
    for req in [
        app.client.post(&url).json(&chat(false)),
        app.client
            .post(&url)
            .bearer_auth("cb_not_a_real_key_000000000000000000")
            .json(&chat(false)),
        app.client
            .post(&url)
            .bearer_auth(openai::KEY)
            .json(&chat(false)),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
    }
    assert!(
        standin.requests().is_empty(),
        "refused requests never reach the model server"
    );
    for _ in 0..2 {
        let (status, _) = app
            .post_json(&app.api_key, "/llm/v1/chat/completions", &chat(false))
            .await;
        assert_eq!(status, 200);
    }
    let resp = app
        .client
        .post(&url)
        .header("x-api-key", &app.api_key)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // The model server's own errors come back as they are.
    let (status, v) = app
        .post_json(
            &app.new_key("initech").await,
            "/llm/v1/chat/completions",
            &json!({"model": "m", "messages": []}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (status, _) = app
        .post_json(&app.api_key, "/llm/v1/../admin", &json!({}))
        .await;
    assert_ne!(status, 200);

    let off = common::spawn_app().await;
    let (status, v) = off
        .post_json(&off.api_key, "/llm/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("llm_unavailable")),
        "{v}"
    );
}

#[tokio::test]
async fn only_inference_reaches_the_provider() {
    let standin = openai::start(|_| Reply::text("ok")).await;
    let app = app(&standin, 100).await;
    for (method, path) in [
        ("GET", "/llm/v1/files"),
        ("POST", "/llm/v1/fine_tuning/jobs"),
        ("GET", "/llm/v1/batches"),
        ("GET", "/llm/v1/organization/costs"),
        ("DELETE", "/llm/v1/files/file-abc"),
        ("POST", "/llm/v1/assistants"),
    ] {
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&app.api_key)
            .json(&json!({"training_file": "file-abc", "model": "standin-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} {path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "endpoint_not_allowed", "{v}");
    }
    assert_eq!(
        standin.other_requests(),
        Vec::<String>::new(),
        "refused before the provider"
    );
    // Inference still goes through.
    let (status, v) = app.get(&app.api_key, "/llm/v1/models").await;
    assert_eq!(
        (status, v["data"][0]["id"].as_str()),
        (200, Some("standin-1")),
        "{v}"
    );
    let (status, _) = app
        .post_json(&app.api_key, "/llm/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_model_allow_list_refuses_other_models_and_names_the_allowed() {
    let standin = openai::start(|_| Reply::text("ok")).await;
    let app = app_with_models(&standin, 100, vec!["standin-1".into(), "other-2".into()]).await;
    let (status, v) = app
        .post_json(
            &app.api_key,
            "/llm/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "model_not_allowed");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("gpt-4o") && msg.contains("standin-1, other-2"),
        "{msg}"
    );
    assert!(standin.requests().is_empty(), "refused before the provider");
    let (status, _) = app
        .post_json(&app.api_key, "/llm/v1/chat/completions", &chat(false))
        .await;
    assert_eq!(status, 200);
    // The model list shows only allowed models the server has.
    let (status, v) = app.get(&app.api_key, "/llm/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (status, _) = app.get(&app.api_key, "/llm/v1/models/gpt-4o").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_client_abandons_is_counted() {
    let standin = three_sentences(Duration::from_millis(300)).await;
    let app = app(&standin, 100).await;
    let resp = stream_chat(&app).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    // The request is on the tally once the gateway sees the client gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = app.get(&app.api_key, "/llm/usage").await;
        if v["usage"][0]["requests"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never counted: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
