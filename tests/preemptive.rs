//! Preemptive suggestions in webhook mode, on real speech (whisper through the phone path, the
//! OpenAI-compatible stand-in as the model): the suggestion starts while endpointing still waits
//! out the silence and is used when the final words match; when the caller goes on speaking,
//! the early one is dropped and the webhook gets the suggestion for the whole utterance.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::LlmSettings;
use callbot_twilio_sim::carrier::Step;
use common::hook::{self, Answer};
use common::openai::{self, Reply};
use common::{spawn_app_with, wait_bot};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn say(text: &str) -> Vec<u8> {
    use callbot_stream::speech::TextToSpeech as _;
    callbot_stream::speech::espeak::Espeak::new("espeak-ng")
        .synthesize(text, "en-us")
        .await
        .unwrap()
        .ulaw
}

/// The caller's words the model was asked about (the last user message).
fn asked_about(req: &Value) -> String {
    let m = req["messages"].as_array().unwrap();
    m.last().unwrap()["content"].as_str().unwrap().to_owned()
}

/// One call of `steps` to a webhook-mode bot that waits 3 s of silence before ending a turn.
/// The call's record, the model's requests, and when the webhook was first asked.
async fn call(steps: Vec<Step>) -> Option<(Value, Vec<openai::Seen>, Instant, String)> {
    let speech = common::real_speech()?;
    let standin = openai::start(|req| Reply::text(&format!("Echo: {}", asked_about(req)))).await;
    let s = standin.clone();
    let app = spawn_app_with(move |settings| {
        settings.calls.speech = speech;
        settings.calls.webhook_timeout = Duration::from_secs(2);
        settings.llm = LlmSettings::OpenAi {
            base_url: url::Url::parse(&s.base).unwrap(),
            api_key: Some(SecretString::from(openai::KEY.to_owned())),
            model: "standin-1".into(),
        };
        settings.llm_timeout = Duration::from_secs(5);
    })
    .await;
    let asked: Arc<Mutex<Option<Instant>>> = Arc::default();
    let a = asked.clone();
    let hook = hook::start(move |_| {
        a.lock().unwrap().get_or_insert_with(Instant::now);
        Answer::Json(json!({"say": "Thank you. Goodbye.", "action": "hangup"}))
    })
    .await;
    let body = json!({"goal": "Take table reservations", "webhook": hook.url, "voice": "local:en-us",
                      "first_message": "Hello.", "turn_detection": "silence", "end_silence_ms": 3000});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let number = b["number"].as_str().unwrap().to_owned();
    let (v, _) = common::dial_watched(&app, &number, steps).await;
    let when = asked.lock().unwrap().expect("the webhook was asked");
    let reqs: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| r.body["type"] == "turn")
        .collect();
    assert_eq!(reqs.len(), 1, "{v}");
    let suggestion = reqs[0].body["llm_suggestion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Some((v, standin.requests(), when, suggestion))
}

/// One after the other: each call's recognition has the machine's cores to itself, so the
/// decode that starts the early suggestion is done well within the silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_suggestions_are_used_when_the_words_match_and_dropped_when_they_do_not() {
    if common::real_speech().is_none() {
        return;
    }
    the_suggestion_starts_before_the_turn_ends_and_is_used_when_the_words_match().await;
    words_after_a_pause_replace_the_early_suggestion().await;
}

async fn the_suggestion_starts_before_the_turn_ends_and_is_used_when_the_words_match() {
    let steps = vec![
        wait_bot(),
        Step::Audio(say("I would like a table for four people.").await),
        Step::Silence(Duration::from_secs(6)),
    ];
    let Some((v, asked, webhook_at, suggestion)) = call(steps).await else {
        return;
    };
    assert_eq!(asked.len(), 1, "one request, the early one: {v}");
    let llm = &v["turns"][1]["timings"]["llm"];
    assert_eq!(llm["preemptive"], true, "{v}");
    let heard = v["turns"][1]["user_text"].as_str().unwrap().to_owned();
    assert!(heard.to_lowercase().contains("table"), "{v}");
    // The model was asked while endpointing still waited out its 3 s of silence.
    let ahead = webhook_at.duration_since(asked[0].at);
    assert!(
        ahead >= Duration::from_millis(300),
        "asked only {ahead:?} before the webhook"
    );
    assert!(suggestion.to_lowercase().contains("table"), "{suggestion}");
}

async fn words_after_a_pause_replace_the_early_suggestion() {
    let steps = vec![
        wait_bot(),
        Step::Audio(say("I would like a table.").await),
        // Long enough for the probe and the early request, short of the 3 s end of turn.
        Step::Silence(Duration::from_millis(1200)),
        Step::Audio(say("For four people at seven.").await),
        Step::Silence(Duration::from_secs(6)),
    ];
    let Some((v, asked, _, suggestion)) = call(steps).await else {
        return;
    };
    // The first early request was on the words before the pause; the webhook never got its
    // answer, but the one for the whole utterance (asked early again, or by the turn).
    assert!(asked.len() >= 2, "{v}");
    let first = asked_about(&asked[0].body).to_lowercase();
    assert!(
        first.contains("table") && !first.contains("seven") && !first.contains('7'),
        "{first}"
    );
    let last = asked_about(&asked.last().unwrap().body).to_lowercase();
    assert!(last.contains("seven") || last.contains('7'), "{last}");
    assert_eq!(
        v["turns"].as_array().unwrap().len(),
        2,
        "one caller turn: {v}"
    );
    // The webhook got the suggestion for the whole utterance.
    let s = suggestion.to_lowercase();
    assert!(
        s.starts_with("echo") && (s.contains("seven") || s.contains('7')),
        "{s}"
    );
}
