//! Per-bot turn-taking in calls: `turn_detection` (the end-of-turn model's verdict with the
//! words, the words' heuristic, or the silence alone) and `barge_in_ms` (how long the caller must
//! talk over the bot). The model test runs the real Smart Turn model on ONNX Runtime
//! (`CALLBOT_TEST_TURN_MODEL`, `CALLBOT_TEST_ONNXRUNTIME`; scripts/test.sh sets them) on real
//! speech.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::TurnModelSettings;
use callbot_twilio_sim::carrier::{Event, Script, Step};
use callbot_twilio_sim::events_until_end;
use common::hook::{self, Answer, Hook};
use common::{CALLER, TestApp, finished_call, spawn_app_with, wait_bot};
use serde_json::{Value, json};
use std::time::Duration;

async fn bot(app: &TestApp, hook: &Hook, extra: Value) -> String {
    let mut body = json!({"goal": "Take reservations", "webhook": hook.url, "voice": "local:en-us", "first_message": "Hello."});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    b["number"].as_str().unwrap().to_owned()
}

async fn goodbye() -> Hook {
    hook::start(|_| Answer::Json(json!({"say": "Done. Goodbye.", "action": "hangup"}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_asking_for_the_model_where_none_is_loaded_hears_by_the_heuristic_and_is_told() {
    let app = spawn_app_with(|s| s.calls.turn_model = TurnModelSettings::Off).await;
    let hook = goodbye().await;
    let number = bot(&app, &hook, json!({"turn_detection": "model"})).await;
    let steps = vec![
        wait_bot(),
        Step::Audio(callbot_stream::speech::instant::voiced_tone(800)),
        Step::Silence(Duration::from_secs(4)),
    ];
    let (call, events) = common::dial_watched(&app, &number, steps).await;
    let told = events
        .iter()
        .find(|e| e["event"] == "error" && e["sender"] == "turn_detection");
    assert!(
        told.is_some_and(|e| e["error"].as_str().unwrap().contains("heuristic")),
        "{events:?}"
    );
    assert_eq!(hook.requests().len(), 1, "the turn still ended: {call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_that_needs_longer_speech_to_be_interrupted_talks_on() {
    let long = "This is a very long answer that goes on and on about our opening hours and our menu and our wine list and the weather. It will not end soon at all.";
    let run = |barge_in_ms: Option<u64>| async move {
        let app = spawn_app_with(|s| {
            s.calls.end_silence = Duration::from_millis(400);
            s.calls.webhook_timeout = Duration::from_millis(800);
        })
        .await;
        let hook = hook::start(move |req| match req["turn"].as_u64() {
            Some(1) => Answer::Json(json!({"say": long})),
            _ => Answer::Json(json!({"say": "Okay.", "action": "hangup"})),
        })
        .await;
        let extra = match barge_in_ms {
            Some(ms) => json!({"barge_in_ms": ms}),
            None => json!({}),
        };
        let number = bot(&app, &hook, extra).await;
        let script = Script {
            steps: vec![
                wait_bot(),
                Step::Audio(callbot_stream::speech::instant::voiced_tone(800)),
                Step::Silence(Duration::from_millis(2500)),
                // 700 ms over the bot: past the platform's 300 ms, short of 1500 ms.
                Step::Audio(callbot_stream::speech::instant::voiced_tone(700)),
                Step::Silence(Duration::from_secs(15)),
            ],
            hangup_when_done: true,
        };
        let mut call = app.sim().dial(CALLER, &number, script).unwrap();
        let events = events_until_end(&mut call, Duration::from_secs(40)).await;
        let cleared = events
            .iter()
            .any(|e| matches!(e, Event::Cleared { dropped_bytes } if *dropped_bytes > 0));
        let v = finished_call(&app, &call.sid).await;
        (cleared, v["turns"][1]["interrupted"].clone())
    };
    let (cleared, interrupted) = run(None).await;
    assert!(cleared, "the platform's 300 ms cut the bot");
    assert_eq!(interrupted, true);
    let (cleared, interrupted) = run(Some(1500)).await;
    assert!(!cleared, "1500 ms: the bot talked on");
    assert_eq!(interrupted, false);
}

/// The model's verdict decides where the words say nothing either way: after "Yes." the
/// heuristic waits the bot's usual silence; the model ends the turn at once ("finished") or
/// waits the long silence ("not finished"), never the usual one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_end_of_turn_model_decides_an_unsure_turn() {
    let (Some(speech), Some(model)) = (common::real_speech(), turn_model()) else {
        return;
    };
    let app = spawn_app_with(move |s| {
        s.calls.speech = speech;
        s.calls.turn_model = model;
        s.calls.end_silence = Duration::from_millis(800);
        s.calls.webhook_timeout = Duration::from_secs(2);
    })
    .await;
    let said = {
        use callbot_stream::speech::TextToSpeech as _;
        callbot_stream::speech::espeak::Espeak::new("espeak-ng")
            .synthesize("Yes.", "en-us")
            .await
            .unwrap()
            .ulaw
    };
    let mut waited = Vec::new();
    for detection in ["heuristic", "model"] {
        let hook = goodbye().await;
        let number = bot(&app, &hook, json!({"turn_detection": detection})).await;
        let steps = vec![
            wait_bot(),
            Step::Audio(said.clone()),
            Step::Silence(Duration::from_secs(5)),
        ];
        let (call, events) = common::dial_watched(&app, &number, steps).await;
        assert!(
            !events.iter().any(|e| e["sender"] == "turn_detection"),
            "the model is loaded: {events:?}"
        );
        let t = &call["turns"][1]["timings"];
        waited.push(t["endpoint_ms"].as_u64().unwrap());
    }
    let (heuristic, model) = (waited[0], waited[1]);
    eprintln!("end of turn after \"Yes.\": heuristic {heuristic} ms, model {model} ms");
    assert!(
        (800..1100).contains(&heuristic),
        "one word: the usual silence ({heuristic} ms)"
    );
    assert!(
        !(600..1500).contains(&model),
        "the model's verdict, not the usual silence ({model} ms)"
    );
}

fn turn_model() -> Option<TurnModelSettings> {
    let model = std::env::var_os("CALLBOT_TEST_TURN_MODEL");
    let runtime = std::env::var_os("CALLBOT_TEST_ONNXRUNTIME");
    match (model, runtime) {
        (Some(m), Some(r)) => Some(TurnModelSettings::Onnx {
            model: m.into(),
            runtime: r.into(),
        }),
        _ => {
            assert!(
                std::env::var_os("CALLBOT_SKIP_SPEECH").is_some(),
                "CALLBOT_TEST_TURN_MODEL and CALLBOT_TEST_ONNXRUNTIME must be set (./scripts/test.sh sets them); CALLBOT_SKIP_SPEECH=1 skips knowingly"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_api_takes_turn_detection_and_barge_in_and_refuses_what_it_cannot_honour() {
    let app = common::spawn_app().await;
    let base = json!({"goal": "Take reservations", "webhook": "https://example.com/hook"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let (status, b) = app
        .create_bot(
            &app.api_key,
            with(json!({"turn_detection": "model", "barge_in_ms": 600})),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let (_, b) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!(b["turn_detection"], "model", "{b}");
    assert_eq!(b["smart_endpointing"], true);
    assert_eq!(b["barge_in_ms"], 600);
    // The older flag still works and shows as its turn_detection.
    let (status, b) = app
        .patch_json(
            &app.api_key,
            &format!("/bots/{id}"),
            &json!({"smart_endpointing": false}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (b["turn_detection"].clone(), b["barge_in_ms"].clone()),
        (json!("silence"), json!(600))
    );
    let (status, b) = app
        .patch_json(
            &app.api_key,
            &format!("/bots/{id}"),
            &json!({"barge_in_ms": null}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert!(
        b.get("barge_in_ms").is_none(),
        "back to the platform's: {b}"
    );
    assert_eq!(b["turn_detection"], "silence", "kept: {b}");
    for (bad, field) in [
        (json!({"turn_detection": "vad"}), "turn_detection"),
        (
            json!({"turn_detection": "silence", "smart_endpointing": true}),
            "turn_detection",
        ),
        (json!({"barge_in_ms": 50}), "barge_in_ms"),
        (json!({"barge_in_ms": 5000}), "barge_in_ms"),
    ] {
        let (status, e) = app.create_bot(&app.api_key, with(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e["error"].as_str().unwrap().contains(field), "{bad}: {e}");
    }
}

/// "Okay." over the bot's long answer: by default the bot talks on and the word is no turn
/// (it shows as an `asrFinal` event); a bot with `interrupt_on_backchannel` is cut by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledgement_over_the_bot_does_not_cut_it_unless_the_bot_says_so() {
    let Some(speech) = common::real_speech() else {
        return;
    };
    let app = spawn_app_with(move |s| {
        s.calls.speech = speech;
        s.calls.webhook_timeout = Duration::from_secs(2);
    })
    .await;
    let say = |text: &'static str| async move {
        use callbot_stream::speech::TextToSpeech as _;
        callbot_stream::speech::espeak::Espeak::new("espeak-ng")
            .synthesize(text, "en-us")
            .await
            .unwrap()
            .ulaw
    };
    let (ask, okay) = (
        say("I would like a table for two.").await,
        say("Okay.").await,
    );
    let long = "Of course. We have tables at six, seven and eight tonight, and the terrace is open if the weather holds. Our set menu is thirty five dollars and changes every week.";
    for interrupts in [false, true] {
        let hook = hook::start(move |req| match req["turn"].as_u64() {
            Some(1) => Answer::Json(json!({"say": long})),
            _ => Answer::Json(json!({"say": "Goodbye.", "action": "hangup"})),
        })
        .await;
        let number = bot(&app, &hook, json!({"interrupt_on_backchannel": interrupts})).await;
        let script = Script {
            steps: vec![
                wait_bot(),
                Step::Audio(ask.clone()),
                Step::Silence(Duration::from_millis(3000)),
                Step::Audio(okay.clone()),
                Step::Silence(Duration::from_secs(15)),
            ],
            hangup_when_done: true,
        };
        let mut call = app.sim().dial(CALLER, &number, script).unwrap();
        let watch = common::observe(&app, &call.sid).await;
        let carrier = events_until_end(&mut call, Duration::from_secs(60)).await;
        let events = tokio::time::timeout(Duration::from_secs(10), watch)
            .await
            .unwrap()
            .unwrap();
        let cleared = carrier
            .iter()
            .any(|e| matches!(e, Event::Cleared { dropped_bytes } if *dropped_bytes > 0));
        let v = finished_call(&app, &call.sid).await;
        assert_eq!(
            cleared, interrupts,
            "interrupt_on_backchannel {interrupts}: {v}"
        );
        assert_eq!(v["turns"][1]["interrupted"], interrupts, "{v}");
        if !interrupts {
            assert_eq!(
                hook.requests().len(),
                1,
                "the acknowledgement is no turn: {v}"
            );
            assert!(
                events.iter().any(|e| e["event"] == "asrFinal"
                    && e["text"].as_str().unwrap().to_lowercase().contains("okay")),
                "{events:?}"
            );
        }
    }
}
