//! The call engine end to end, through the Twilio simulator: the carrier calls `/voice`, opens the
//! signed media stream and plays the caller; the engine answers through a real webhook server.
//! Most tests use the instant speech stand-ins (they test the platform); the first uses the real
//! offline engines (espeak-ng speaks the caller, whisper.cpp recognises it).

#![allow(clippy::unwrap_used)]
mod common;

use callbot_twilio_sim::carrier::{Event, Script, Step};
use callbot_twilio_sim::events_until_end;
use common::hook::{self, Answer, Hook};
use common::{CALLER, TestApp, finished_call, spawn_app_with, wait_bot};
use serde_json::{Value, json};
use std::time::Duration;

async fn bot_with_hook(app: &TestApp, hook: &Hook, extra: Value) -> (String, String) {
    let mut body = json!({"goal": "Take reservations", "webhook": hook.url, "context": "Open 5PM-10PM", "voice": "local:en-us"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    (
        b["id"].as_str().unwrap().to_owned(),
        b["number"].as_str().unwrap().to_owned(),
    )
}

fn fast_settings(s: &mut callbot_core::settings::Settings) {
    s.calls.end_silence = Duration::from_millis(400);
    s.calls.webhook_timeout = Duration::from_millis(800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_conversation_with_real_speech() {
    let Some(speech) = common::real_speech() else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.calls.speech = speech;
        s.calls.webhook_timeout = Duration::from_secs(2);
    })
    .await;
    let hook = hook::start(|req| {
        if req["turn"].as_u64() == Some(1) {
            Answer::Json(json!({"say": "Great. I booked a table for four at seven. Goodbye!", "action": "hangup"}))
        } else {
            Answer::Json(json!({"say": "Sorry?"}))
        }
    })
    .await;
    let (_, number) = bot_with_hook(
        &app,
        &hook,
        json!({"first_message": "Bella Vista, how can I help?"}),
    )
    .await;
    let tts = callbot_stream::speech::espeak::Espeak::new("espeak-ng");
    let said = "I would like a table for four people at seven.";
    let speech = {
        use callbot_stream::speech::TextToSpeech as _;
        tts.synthesize(said, "en-us").await.unwrap()
    };
    let script = Script {
        steps: vec![
            wait_bot(),
            Step::Audio(speech.ulaw),
            Step::Silence(Duration::from_secs(20)),
        ],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(60)).await;
    assert!(
        events.iter().any(|e| matches!(e, Event::BotAudio { .. })),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::ProtocolError(_))),
        "{events:?}"
    );
    // The bot hung up through the REST API (not the caller's script running out).
    assert!(
        app.sim()
            .request_log()
            .iter()
            .any(|l| l.starts_with("POST") && l.contains(&format!("/Calls/{}.json", call.sid))),
        "{:?}",
        app.sim().request_log()
    );

    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert!(r.signature_ok, "webhook signature must verify");
    assert_eq!(r.idempotency_key, format!("{}:1", call.sid));
    let heard = r.body["user_text"].as_str().unwrap();
    let overlap = callbot_stream::speech::word_overlap(said, heard);
    assert!(
        overlap >= 0.6,
        "recognised {heard:?} for {said:?} ({overlap:.2})"
    );
    assert_eq!(
        r.body["history"][0],
        json!({"role": "bot", "content": "Bella Vista, how can I help?"})
    );
    assert_eq!(r.body["from"], CALLER);

    let v = finished_call(&app, &call.sid).await;
    let turns = v["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{v}");
    assert_eq!(turns[1]["action"], "hangup");
    // A loaded machine may say a filler first ("One moment.") while recognition runs.
    assert_eq!(
        common::without_fillers(turns[1]["bot_text"].as_str().unwrap()),
        "Great. I booked a table for four at seven. Goodbye!"
    );
    let t = &turns[1]["timings"];
    for k in [
        "stt_ms",
        "webhook_ms",
        "tts_first_byte_ms",
        "first_frame_ms",
        "first_mark_ms",
    ] {
        assert!(t[k].is_u64(), "{k} missing: {t}");
    }
    assert!(t["first_mark_ms"].as_u64() >= t["first_frame_ms"].as_u64());
    assert_eq!(v["transcript"][1]["role"], "user");
    assert_eq!(v["status"], "completed");
    // The recording: a stereo WAV with the caller on the left and the bot on the right.
    let wav = app
        .client
        .get(v["recording_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(wav.status(), 200);
    let (left, right, rate) =
        callbot_stream::audio::wav::read_stereo(&wav.bytes().await.unwrap()).unwrap();
    assert_eq!(rate, 8000);
    let energy =
        |x: &[i16]| x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    assert!(
        energy(&left) > 1e4 && energy(&right) > 1e4,
        "both channels carry speech"
    );
    // A tampered link is refused.
    let bad = v["recording_url"]
        .as_str()
        .unwrap()
        .replace("sig=", "sig=0");
    assert_eq!(app.client.get(bad).send().await.unwrap().status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn barge_in_clears_playback_and_cuts_the_history() {
    let app = spawn_app_with(fast_settings).await;
    let long = "This is a very long answer that goes on and on about our opening hours and our menu and our wine list and the weather. It will not end soon at all.";
    let hook = hook::start(move |req| match req["turn"].as_u64() {
        Some(1) => Answer::Json(json!({"say": long})),
        _ => Answer::Json(json!({"say": "Okay.", "action": "hangup"})),
    })
    .await;
    let (_, number) = bot_with_hook(&app, &hook, json!({"first_message": "Hi."})).await;
    let script = Script {
        steps: vec![
            wait_bot(),
            Step::Audio(callbot_stream::speech::instant::voiced_tone(800)),
            // Let the long answer start playing, then talk over it.
            Step::Silence(Duration::from_millis(2500)),
            Step::Audio(callbot_stream::speech::instant::voiced_tone(1200)),
            Step::Silence(Duration::from_secs(15)),
        ],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(40)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Cleared { dropped_bytes } if *dropped_bytes > 0)),
        "clear expected: {events:?}"
    );
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let history = reqs[1].body["history"].as_array().unwrap().clone();
    let last_bot = history.iter().rev().find(|h| h["role"] == "bot").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !last_bot.is_empty() && last_bot.len() < long.len() && long.starts_with(&last_bot),
        "history cut at what was heard: {last_bot:?}"
    );
    let v = finished_call(&app, &call.sid).await;
    let t1 = &v["turns"][1];
    assert_eq!(t1["interrupted"], true);
    assert_eq!(t1["bot_text"].as_str().unwrap(), last_bot);
    assert_eq!(t1["bot_text_full"], long);
}

/// A carrier that never echoes marks: each reply counts as heard once its audio has had time to
/// play, so turns go on and a hang-up happens, instead of the call hanging until its maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_marks_hold_a_turn_only_as_long_as_its_audio() {
    let app = spawn_app_with(fast_settings).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Goodbye.", "action": "hangup"}))).await;
    let (_, number) = bot_with_hook(&app, &hook, json!({"first_message": "Hi."})).await;
    let script = Script {
        steps: vec![
            Step::LoseMarks,
            wait_bot(),
            // The greeting counts as heard once its audio had time to play (its length plus
            // the grace); speaking before that would be barge-in.
            Step::Silence(Duration::from_secs(2)),
            Step::Audio(callbot_stream::speech::instant::voiced_tone(800)),
            Step::Silence(Duration::from_secs(60)),
        ],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(25)).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::MarkEchoed(_))),
        "{events:?}"
    );
    let v = finished_call(&app, &call.sid).await;
    assert_eq!(v["turns"][0]["bot_text"], "Hi.", "{v}");
    assert_eq!(v["turns"][1]["bot_text"], "Goodbye.", "{v}");
    assert_eq!(v["turns"][1]["action"], "hangup", "{v}");
    assert!(v["duration"].as_u64().unwrap_or(0) < 20, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_failures_speak_the_fallback_and_the_call_goes_on() {
    let app = spawn_app_with(|s| {
        fast_settings(s);
        s.calls.webhook_failure_limit = 4;
    })
    .await;
    let hook = hook::start(|req| match req["turn"].as_u64() {
        Some(1) => Answer::Slow(Duration::from_secs(3), json!({"say": "too late"})),
        Some(2) => Answer::Status(500),
        Some(3) => Answer::Raw("{not json"),
        _ => Answer::Json(json!({"say": "Thanks, bye.", "action": "hangup"})),
    })
    .await;
    let (_, number) = bot_with_hook(&app, &hook, json!({})).await;
    let mut steps = vec![wait_bot()];
    for _ in 0..4 {
        steps.push(Step::Audio(callbot_stream::speech::instant::voiced_tone(
            700,
        )));
        steps.push(wait_bot());
    }
    steps.push(Step::Silence(Duration::from_secs(10)));
    let mut call = app
        .sim()
        .dial(
            CALLER,
            &number,
            Script {
                steps,
                hangup_when_done: true,
            },
        )
        .unwrap();
    events_until_end(&mut call, Duration::from_secs(60)).await;
    let v = finished_call(&app, &call.sid).await;
    let turns = v["turns"].as_array().unwrap();
    let fallback_line = app.state.settings.calls.fallback_line.clone();
    let reasons: Vec<_> = turns[1..4]
        .iter()
        .map(|t| t["fallback"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(reasons, vec!["timeout", "http_500", "bad_json"], "{v}");
    for t in &turns[1..4] {
        assert_eq!(t["bot_text"].as_str().unwrap(), fallback_line, "{v}");
        assert_eq!(t["action"], "continue");
    }
    // The business's system failing is not the caller's fault: it is not "I did not catch that".
    assert_ne!(fallback_line, app.state.settings.calls.not_heard_line);
    assert_eq!(turns[4]["action"], "hangup");
    // A 500 is retried once inside the deadline, with the same idempotency key.
    let keys: Vec<_> = hook
        .requests()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys.iter()
            .filter(|k| **k == format!("{}:2", call.sid))
            .count(),
        2,
        "{keys:?}"
    );
}

/// A webhook that keeps failing: after `CALLBOT_WEBHOOK_FAILURE_LIMIT` turns in a row the caller
/// is put through to the bot's fallback number (or, without one, told goodbye).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_webhook_hands_the_caller_to_the_fallback_number() {
    let app = spawn_app_with(|s| {
        fast_settings(s);
        s.calls.webhook_failure_limit = 2;
    })
    .await;
    let hook = hook::start(|_| Answer::Status(503)).await;
    let (_, number) = bot_with_hook(&app, &hook, json!({"fallback_number": "+15557771234"})).await;
    let mut steps = vec![wait_bot()];
    for _ in 0..3 {
        steps.push(Step::Audio(callbot_stream::speech::instant::voiced_tone(
            700,
        )));
        steps.push(wait_bot());
    }
    steps.push(Step::Silence(Duration::from_secs(10)));
    let mut call = app
        .sim()
        .dial(
            CALLER,
            &number,
            Script {
                steps,
                hangup_when_done: true,
            },
        )
        .unwrap();
    let watch = common::observe(&app, &call.sid).await;
    let events = events_until_end(&mut call, Duration::from_secs(60)).await;
    assert!(
        events.contains(&Event::Dialed("+15557771234".into())),
        "{events:?}"
    );
    let v = finished_call(&app, &call.sid).await;
    let turns = v["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{v}");
    assert_eq!(turns[1]["fallback"], "http_503");
    assert_eq!(turns[1]["action"], "continue");
    assert_eq!(turns[2]["fallback"], "webhook_unavailable", "{v}");
    assert_eq!(turns[2]["action"], "transfer");
    assert!(
        turns[2]["bot_text"]
            .as_str()
            .unwrap()
            .contains("put you through"),
        "{v}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.iter().any(|e| e["event"] == "error"
            && e["error"]
                .as_str()
                .unwrap_or("")
                .contains("2 turns in a row")),
        "{seen:?}"
    );
    let (_, bot) = app.get(&app.api_key, "/bots").await;
    assert_eq!(bot[0]["fallback_number"], "+15557771234");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dtmf_reaches_the_webhook_and_transfer_reaches_twilio() {
    let app = spawn_app_with(fast_settings).await;
    let hook = hook::start(|req| {
        if req["dtmf"] == "42" {
            Answer::Json(json!({"say": "Connecting you.", "action": "transfer", "transfer_to": "+15557770000"}))
        } else if req["dtmf"] == "9" {
            // A number the bot does not declare (a premium line): refused.
            Answer::Json(json!({"say": "Connecting you.", "action": "transfer", "transfer_to": "+19005550123"}))
        } else {
            Answer::Json(json!({"say": "Please enter your code."}))
        }
    })
    .await;
    let (_, number) = bot_with_hook(&app, &hook, json!({"transfer_numbers": ["+1555777*"]})).await;
    let steps = vec![
        wait_bot(),
        Step::Dtmf('9'),
        Step::Dtmf('#'),
        wait_bot(),
        Step::Dtmf('4'),
        Step::Silence(Duration::from_millis(100)),
        Step::Dtmf('2'),
        Step::Dtmf('#'),
        Step::Silence(Duration::from_secs(10)),
    ];
    let mut call = app
        .sim()
        .dial(
            CALLER,
            &number,
            Script {
                steps,
                hangup_when_done: true,
            },
        )
        .unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(30)).await;
    assert!(
        events.contains(&Event::Dialed("+15557770000".into())),
        "{events:?}"
    );
    assert!(
        !events.contains(&Event::Dialed("+19005550123".into())),
        "{events:?}"
    );
    let reqs = hook.requests();
    assert_eq!(reqs[0].body["dtmf"], "9");
    assert_eq!(reqs[1].body["dtmf"], "42");
    assert_eq!(reqs[1].body["user_text"], "");
    let v = common::finished_call(&app, &call.sid).await;
    let refused = &v["turns"][1];
    assert_eq!(refused["fallback"], "transfer_refused", "{v}");
    assert_eq!(refused["action"], "continue", "{v}");
    assert!(
        refused["bot_text_full"]
            .as_str()
            .unwrap()
            .contains("can't transfer"),
        "{v}"
    );
    let twiml_update = app
        .sim()
        .request_log()
        .into_iter()
        .find(|l| l.contains(&format!("/Calls/{}.json", call.sid)) && l.starts_with("POST"));
    assert!(
        twiml_update.is_some(),
        "the transfer is a REST update of the call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_calls_are_listed_and_killed() {
    let app = spawn_app_with(fast_settings).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "ok"}))).await;
    let (_, number) = bot_with_hook(&app, &hook, json!({})).await;
    let script = Script {
        steps: vec![Step::Silence(Duration::from_secs(30))],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    let sid = call.sid.clone();
    common::eventually(|| async {
        let (_, v) = app.get(&app.api_key, "/call/lists").await;
        v["calls"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["sid"] == sid.as_str()))
            .then_some(())
    })
    .await;
    // The store lists the call from `/voice` on; wait until the engine holds it too (a call
    // killed before its media stream connects has no recording to wait for below).
    let _watch = common::observe(&app, &sid).await;
    let other = app.new_key("someone-else").await;
    let (status, _) = app
        .post_json(&other, &format!("/call/kill/{sid}"), &json!({}))
        .await;
    assert_eq!(status, 404, "another tenant cannot kill the call");
    let (status, body) = app
        .post_json(&app.api_key, &format!("/call/kill/{sid}"), &json!({}))
        .await;
    assert_eq!(
        (status, body["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let events = events_until_end(&mut call, Duration::from_secs(10)).await;
    assert!(
        matches!(events.last(), Some(Event::Ended { .. })),
        "{events:?}"
    );
    let v = finished_call(&app, &sid).await;
    assert_eq!(v["status"], "completed");
    let (status, _) = app
        .post_json(&app.api_key, &format!("/call/kill/{sid}"), &json!({}))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_dynamodb_and_s3_the_call_is_stored_and_the_recording_served() {
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let bucket = format!(
        "callbot-rec-{}",
        callbot_core::domain::CallSid::generate().as_str()[2..14].to_lowercase()
    );
    let app = spawn_app_with(|s| {
        fast_settings(s);
        s.store = aws.store.clone();
        s.aws = aws.aws.clone();
        s.recordings = callbot_core::settings::RecordingsSettings::S3 {
            bucket: bucket.clone(),
            create_bucket: true,
        };
    })
    .await;
    let hook =
        hook::start(|_| Answer::Json(json!({"say": "Noted. Goodbye.", "action": "hangup"}))).await;
    let (_, number) = bot_with_hook(&app, &hook, json!({})).await;
    let script = Script {
        steps: vec![
            wait_bot(),
            Step::Audio(callbot_stream::speech::instant::voiced_tone(700)),
            Step::Silence(Duration::from_secs(10)),
        ],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    events_until_end(&mut call, Duration::from_secs(30)).await;
    let v = finished_call(&app, &call.sid).await;
    assert_eq!(v["turns"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["turns"][1]["action"], "hangup");
    let wav = app
        .client
        .get(v["recording_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(wav.status(), 200);
    assert_eq!(wav.headers()["content-type"], "audio/wav");
    let (l, r, _) = callbot_stream::audio::wav::read_stereo(&wav.bytes().await.unwrap()).unwrap();
    assert_eq!(l.len(), r.len());
    assert!(!l.is_empty());
}

/// A raw media-stream client: malformed messages become `error` events and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_media_messages_are_reported_and_the_call_survives() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(fast_settings).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "ok"}))).await;
    let (bot, number) = bot_with_hook(&app, &hook, json!({})).await;
    let call_sid = callbot_core::domain::CallSid::generate().to_string();
    let r = app
        .twilio_post(
            &format!("/voice?bot_id={bot}"),
            &[("CallSid", &call_sid), ("From", CALLER), ("To", &number)],
            None,
        )
        .await;
    let verbs = callbot_twilio_sim::twiml::parse(&r.text().await.unwrap()).unwrap();
    let mut ws = common::open_media_stream(&app, &verbs, &call_sid).await;
    // Watch the call's events.
    let watch = common::observe(&app, &call_sid).await;
    for bad in [
        "not json",
        r#"{"event":"media","streamSid":"MZ1","media":{"payload":"@@@"}}"#,
        r#"{"event":"dtmf","streamSid":"MZ1"}"#,
    ] {
        ws.send(Message::text(bad)).await.unwrap();
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    // Still alive: good media is taken, the engine answers marks, then the caller hangs up.
    // 160 bytes of μ-law silence (0xFF) are 216 "/" in base64 (spec §1.5).
    let silence = "/".repeat(216);
    for i in 0..10 {
        let m = json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ1", "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": silence}});
        ws.send(Message::text(m.to_string())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::text(json!({"event": "stop", "sequenceNumber": "20", "streamSid": "MZ1", "stop": {"accountSid": "AC1", "callSid": call_sid}}).to_string())).await.unwrap();
    let seen: Vec<String> = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        seen.iter().filter(|e| *e == "error").count() >= 4,
        "{seen:?}"
    );
    assert_eq!(seen.last().map(String::as_str), Some("hangup"), "{seen:?}");
    let v = finished_call(&app, &call_sid).await;
    assert_eq!(v["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_caller_is_reprompted_then_hung_up_on_the_bots_own_timer() {
    let app = spawn_app_with(fast_settings).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "ok"}))).await;
    let (bot, number) = bot_with_hook(
        &app,
        &hook,
        json!({"silence_timeout_secs": 3, "max_call_secs": 600}),
    )
    .await;
    let (_, view) = app.get(&app.api_key, &format!("/bots/{bot}")).await;
    assert_eq!(
        (
            view["silence_timeout_secs"].as_u64(),
            view["max_call_secs"].as_u64()
        ),
        (Some(3), Some(600))
    );
    let (status, body) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "x", "webhook": hook.url, "silence_timeout_secs": 1}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("silence_timeout_secs"))
    );
    let script = Script {
        steps: vec![Step::Silence(Duration::from_secs(30))],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    let started = std::time::Instant::now();
    let events = events_until_end(&mut call, Duration::from_secs(30)).await;
    assert!(
        matches!(events.last(), Some(Event::Ended { .. })),
        "{events:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the bot hung up, not the caller"
    );
    let v = finished_call(&app, &call.sid).await;
    let turns = v["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{v}");
    assert_eq!(
        turns[1]["bot_text"],
        app.state.settings.calls.reprompt_line.as_str()
    );
    assert!(
        hook.requests().is_empty(),
        "silence is not a turn for the webhook"
    );
    // PATCH null returns to the platform default.
    let resp = app
        .client
        .patch(app.url(&format!("/bots/{bot}")))
        .header("x-api-key", &app.api_key)
        .json(&json!({"silence_timeout_secs": null}))
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert!(
        b.get("silence_timeout_secs").is_none() && b["max_call_secs"] == 600,
        "{b}"
    );
}

/// The stream service on its own (as on ECS): on shutdown it stops taking streams, lets live
/// calls run for the drain time, then ends them cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_service_drains_live_calls_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream_addr = listener.local_addr().unwrap();
    let app = spawn_app_with(|s| {
        fast_settings(s);
        s.stream_base_url = Some(format!("ws://{stream_addr}").parse().unwrap());
        s.calls.drain = Duration::from_secs(2);
    })
    .await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "ok"}))).await;
    let (_, number) = bot_with_hook(&app, &hook, json!({})).await;
    let (stt, tts) =
        callbot_stream::speech::from_settings(&callbot_core::settings::SpeechSettings::Instant)
            .await
            .unwrap();
    let engine = callbot_stream::engine::Engine::new(
        stt,
        tts,
        app.state.recordings.clone(),
        app.state.telephony.clone(),
    );
    let state = callbot_stream::StreamState {
        settings: app.state.settings.clone(),
        store: app.state.store.clone(),
        twilio: app.state.twilio.clone(),
        engine: Some(engine.clone()),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(callbot_stream::serve(
        listener,
        state,
        engine.clone(),
        Duration::from_secs(2),
        async {
            let _ = stop_rx.await;
        },
    ));
    let script = Script {
        steps: vec![Step::Silence(Duration::from_secs(40))],
        hangup_when_done: true,
    };
    let mut call = app.sim().dial(CALLER, &number, script).unwrap();
    common::eventually(|| {
        let live = engine.live.clone();
        async move { (!live.is_empty()).then_some(()) }
    })
    .await;
    let health = format!("http://{stream_addr}/healthz");
    assert_eq!(app.client.get(&health).send().await.unwrap().status(), 200);
    let stopped = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(20)).await;
    assert!(
        matches!(events.last(), Some(Event::Ended { .. })),
        "{events:?}"
    );
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "ended after {took:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v = finished_call(&app, &call.sid).await;
    assert_eq!(v["status"], "completed");
    // No new streams once it is down.
    assert!(app.client.get(&health).send().await.is_err());
}
