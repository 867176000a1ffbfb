//! No caller words are lost when a reply (or a filler covering a slow recogniser) has begun: a
//! caller who hangs up mid-answer, or talks over the filler before their own words were
//! recognised, finds every line they said in the call's turns.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::{Settings, SpeechSettings};
use callbot_twilio_sim::carrier::Step;
use callbot_twilio_sim::events_until_end;
use common::hook::{self, Answer};
use common::{finished_call, spawn_app_with, wait_bot};
use serde_json::json;
use std::time::Duration;

/// A recogniser that takes `decode` per utterance (one at a time), so the filler ("One
/// moment.") begins while the caller's words are still being recognised.
fn slow_recogniser(decode: Duration) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.calls.end_silence = Duration::from_millis(400);
        s.calls.webhook_timeout = Duration::from_millis(800);
        s.calls.speech = SpeechSettings::InstantLoaded { workers: 1, decode };
    }
}

/// The app with a 3 s recogniser, and a bot whose webhook answers "Okay." to every turn.
async fn app_and_bot() -> (common::TestApp, common::hook::Hook, String) {
    let app = spawn_app_with(slow_recogniser(Duration::from_secs(3))).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Okay."}))).await;
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Take reservations", "webhook": hook.url, "first_message": "Hi."}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let number = b["number"].as_str().unwrap().to_owned();
    (app, hook, number)
}

fn speak(ms: u64) -> Step {
    Step::Audio(callbot_stream::speech::instant::voiced_tone(ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_who_hangs_up_while_the_filler_plays_keeps_their_words() {
    let (app, _hook, number) = app_and_bot().await;
    // The turn starts 0.4 s after the words, the filler 1.2 s later, recognition ends at 3.4 s:
    // hanging up 2.5 s after speaking falls while the filler plays and the words are unknown.
    let steps = vec![
        wait_bot(),
        speak(800),
        Step::Silence(Duration::from_millis(2500)),
    ];
    let mut call = common::dial(&app, &number, steps);
    events_until_end(&mut call, Duration::from_secs(30)).await;
    let v = finished_call(&app, &call.sid).await;
    let turns = v["turns"].as_array().unwrap();
    let last = turns.last().unwrap();
    assert!(
        last["user_text"]
            .as_str()
            .unwrap()
            .starts_with("utterance of"),
        "the caller's words were not stored: {v}"
    );
    assert_eq!(last["fallback"], "call_ended", "{v}");
    assert!(
        last["bot_text_full"]
            .as_str()
            .unwrap()
            .starts_with("One moment"),
        "the filler that had begun is on the turn: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn talking_over_the_filler_before_the_words_are_recognised_loses_nothing() {
    let (app, hook, number) = app_and_bot().await;
    // The second line starts 2 s after the first: the filler is playing (from 1.6 s) and the
    // first line's words are not known yet (3.4 s).
    let steps = vec![
        wait_bot(),
        speak(800),
        Step::Silence(Duration::from_millis(2000)),
        speak(1000),
        common::wait_answer(),
        Step::Silence(Duration::from_secs(8)),
    ];
    let mut call = common::dial(&app, &number, steps);
    events_until_end(&mut call, Duration::from_secs(60)).await;
    let v = finished_call(&app, &call.sid).await;
    let said: Vec<String> = v["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            t["user_text"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(said.len(), 2, "both lines are turns: {said:?} in {v}");
    let asked: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| r.body["user_text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        asked.len(),
        2,
        "the webhook was asked about both lines: {asked:?}"
    );
}
