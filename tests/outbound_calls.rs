//! Outbound calls as in the Starlis API, through the Twilio simulator: placing, progress,
//! ending, bad input, idempotency, and the per-user rate limit under a race (SQLite and DynamoDB).
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestApp, call_status, call_view, eventually, new_bot, outbound, short_call, spawn_app,
    spawn_app_with,
};
use serde_json::{Value, json};

const CALLEE: &str = "+15552223333";

#[tokio::test]
async fn outbound_calls_go_through_twilio_and_report_progress() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    app.sim().set_callee_script(CALLEE, short_call());
    let (status, body) = outbound(
        &app,
        &app.api_key,
        json!({"user_id": "u1", "number": CALLEE, "first_message": "Hi, it's the dentist", "bot_id": bot}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["success"].as_bool(), body["message"].as_str()),
        (Some(true), Some("Call initiated"))
    );
    let sid = body["callSid"].as_str().unwrap().to_owned();
    let done = eventually(|| {
        let (app, sid) = (&app, sid.clone());
        async move {
            let (_, v) = call_status(app, &app.api_key, &sid, "u1").await;
            (v["status"] == "completed").then_some(v)
        }
    })
    .await;
    assert_eq!(done["success"], true);
    assert_eq!(done["callSid"], sid.as_str());
    assert!(
        done["startTime"].is_string() && done["endTime"].is_string(),
        "{done}"
    );
    assert!(done["duration"].is_number());
    let twilio_call = app.sim().call(&sid).unwrap();
    assert_eq!(
        (
            twilio_call.direction.as_str(),
            twilio_call.from.as_str(),
            twilio_call.to.as_str()
        ),
        ("outbound-api", number.as_str(), CALLEE)
    );
    let v = call_view(&app, &sid).await;
    assert_eq!(
        (v["direction"].as_str(), v["user_id"].as_str()),
        (Some("outbound-api"), Some("u1"))
    );
    assert!(
        app.sim()
            .request_log()
            .iter()
            .any(|l| l.starts_with("POST") && l.ends_with("/Calls.json"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_outbound_calls_per_user_per_minute_even_in_a_race() {
    outbound_race(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_outbound_calls_per_user_per_minute_on_dynamodb() {
    let dir = tempfile::tempdir().unwrap();
    let Some(dynamo) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.store = dynamo.store.clone();
        s.aws = dynamo.aws.clone();
    })
    .await;
    outbound_race(&app).await;
}

async fn outbound_race(app: &TestApp) {
    new_bot(app).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (c, url, key) = (
                app.client.clone(),
                app.url("/outbound-call"),
                app.api_key.clone(),
            );
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", key)
                    .json(&json!({"user_id": "racer", "number": CALLEE}))
                    .send()
                    .await
                    .unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (200, _, _) => ok += 1,
            (429, Some(secs), body) => {
                assert!((1..=60).contains(&secs), "retry-after {secs}");
                assert_eq!(body["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, limited), (5, 15));
    // The limit is per end user.
    let (status, _) = outbound(
        app,
        &app.api_key,
        json!({"user_id": "someone-else", "number": CALLEE}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, calls) = app.get(&app.api_key, "/calls").await;
    assert_eq!(
        calls["calls"].as_array().unwrap().len(),
        6,
        "one record per placed call"
    );
}

#[tokio::test]
async fn end_call_bad_input_and_idempotency() {
    let app = spawn_app().await;
    new_bot(&app).await;
    let key = app.api_key.clone();
    for (body, msg) in [
        (
            json!({"number": CALLEE}),
            "User ID and phone number are required",
        ),
        (
            json!({"user_id": "u"}),
            "User ID and phone number are required",
        ),
    ] {
        let (status, b) = outbound(&app, &key, body).await;
        assert_eq!((status, b["error"].as_str()), (400, Some(msg)));
    }
    let (status, b) = outbound(&app, &key, json!({"user_id": "u", "number": "12345"})).await;
    assert_eq!((status, b["field"].as_str()), (400, Some("number")));
    let (status, _) = outbound(
        &app,
        &key,
        json!({"user_id": "u", "number": CALLEE, "bot_id": "bot_00000000000000000000000000000000"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, b) = app
        .post_json(&key, "/end-call", &json!({"user_id": "u"}))
        .await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("Call SID and user ID are required"))
    );

    // Idempotency-Key: a retried request returns the first call, and no second call is placed.
    let send = || {
        app.client
            .post(app.url("/outbound-call"))
            .header("x-api-key", &key)
            .header("idempotency-key", "call-once")
            .json(&json!({"user_id": "u", "number": CALLEE}))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first, again);
    let sid = first["callSid"].as_str().unwrap().to_owned();
    let calls_placed = app
        .sim()
        .request_log()
        .iter()
        .filter(|l| l.ends_with("/Calls.json"))
        .count();
    assert_eq!(calls_placed, 1);

    // The callee stays on the line (the default script) until we end the call.
    eventually(|| {
        let (app, sid) = (&app, sid.clone());
        async move {
            let (_, v) = call_status(app, &app.api_key, &sid, "u").await;
            (v["status"] == "in-progress").then_some(())
        }
    })
    .await;
    let (status, _) = app
        .post_json(
            &key,
            "/end-call",
            &json!({"callSid": sid, "user_id": "someone"}),
        )
        .await;
    assert_eq!(status, 404, "another user's call is not found");
    let (status, b) = app
        .post_json(&key, "/end-call", &json!({"callSid": sid, "user_id": "u"}))
        .await;
    assert_eq!((status, b["success"].as_bool()), (200, Some(true)), "{b}");
    eventually(|| {
        let (app, sid) = (&app, sid.clone());
        async move {
            let (_, v) = call_status(app, &app.api_key, &sid, "u").await;
            (v["status"] == "completed").then_some(())
        }
    })
    .await;
    // Ending it again is harmless.
    let (status, _) = app
        .post_json(&key, "/end-call", &json!({"callSid": sid, "user_id": "u"}))
        .await;
    assert_eq!(status, 200);
}

/// Per-call variables: a placeholder without a value refuses the call before anyone is dialled;
/// with values, the greeting is spoken filled, the webhook gets the filled goal and every value
/// (built-ins in the bot's time zone included), and the call record keeps the call's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn variables_fill_the_bots_words_and_go_with_every_turn() {
    use callbot_twilio_sim::carrier::{Script, Step};
    use common::hook::{self, Answer};
    let app = spawn_app().await;
    let hook =
        hook::start(|_| Answer::Json(json!({"say": "See you then.", "action": "hangup"}))).await;
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Remind {{name}} of the {{ appointment }}", "webhook": hook.url,
                   "first_message": "Hi {{name}}, this is {{shop}}.", "voice": "local:en-us",
                   "timezone": "America/New_York", "variables": {"shop": "Bella Vista"}}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let (bot, number) = (b["id"].as_str().unwrap(), b["number"].as_str().unwrap());
    let (_, shown) = app.get(&app.api_key, &format!("/bots/{bot}")).await;
    assert_eq!(
        (&shown["timezone"], &shown["variables"]),
        (&json!("America/New_York"), &json!({"shop": "Bella Vista"}))
    );

    let (status, body) = outbound(
        &app,
        &app.api_key,
        json!({"user_id": "u1", "number": CALLEE, "bot_id": bot, "variables": {"name": "Ana"}}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("missing_variables")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("{{appointment}}"),
        "{body}"
    );
    assert!(
        app.sim()
            .request_log()
            .iter()
            .all(|l| !l.ends_with("/Calls.json")),
        "nobody dialled"
    );

    app.sim().set_callee_script(
        CALLEE,
        Script {
            steps: vec![
                common::wait_bot(),
                Step::Audio(callbot_stream::speech::instant::voiced_tone(800)),
                Step::Silence(std::time::Duration::from_secs(10)),
            ],
            hangup_when_done: true,
        },
    );
    let vars = json!({"name": "Ana", "appointment": "3 PM cleaning"});
    let (status, body) = outbound(
        &app,
        &app.api_key,
        json!({"user_id": "u1", "number": CALLEE, "bot_id": bot, "variables": vars}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sid = body["callSid"].as_str().unwrap().to_owned();
    let v = common::finished_call(&app, &sid).await;
    assert_eq!(v["variables"], vars, "{v}");
    let reqs: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| r.body["type"] == "turn")
        .collect();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0].body;
    assert_eq!(r["goal"], "Remind Ana of the 3 PM cleaning");
    assert_eq!(
        r["history"][0],
        json!({"role": "bot", "content": "Hi Ana, this is Bella Vista."})
    );
    let sent = &r["variables"];
    assert_eq!(
        (
            &sent["name"],
            &sent["shop"],
            &sent["caller_number"],
            &sent["bot_number"]
        ),
        (
            &json!("Ana"),
            &json!("Bella Vista"),
            &json!(CALLEE),
            &json!(number)
        ),
        "{sent}"
    );
    for builtin in ["date", "time", "weekday"] {
        assert!(
            sent[builtin].as_str().is_some_and(|s| !s.is_empty()),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn bad_placeholders_zones_and_variables_are_refused() {
    let app = spawn_app().await;
    let mut body = common::bot_body();
    body["first_message"] = json!("Hi {{first name}}");
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(
        (status, &b["code"]),
        (400, &json!("invalid_placeholder")),
        "{b}"
    );
    let mut body = common::bot_body();
    body["timezone"] = json!("Mars/Olympus");
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(
        (status, &b["code"]),
        (400, &json!("invalid_timezone")),
        "{b}"
    );
    let (bot, _) = new_bot(&app).await;
    for bad in [
        json!({"date": "x"}),
        json!({"a b": "x"}),
        json!(["x"]),
        json!({"n": {"o": 1}}),
    ] {
        let (status, b) = outbound(
            &app,
            &app.api_key,
            json!({"user_id": "u1", "number": CALLEE, "bot_id": bot, "variables": bad}),
        )
        .await;
        assert_eq!(
            (status, &b["code"]),
            (400, &json!("invalid_variables")),
            "{bad}: {b}"
        );
    }
}

/// A bot that leaves messages, with a webhook that answers every turn.
async fn voicemail_bot(app: &TestApp, voicemail: Value) -> (String, common::hook::Hook) {
    use common::hook::{self, Answer};
    let hook = hook::start(|_| Answer::Json(json!({"say": "Okay."}))).await;
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Remind patients of appointments", "webhook": hook.url,
                   "first_message": "Hello, this is Bella Dental.", "voice": "local:en-us",
                   "voicemail": voicemail}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    (b["id"].as_str().unwrap().to_owned(), hook)
}

/// A recorded greeting: speech-like sound, then a 1 kHz beep.
fn greeting_with_beep(speech_ms: u64) -> Vec<callbot_twilio_sim::carrier::Step> {
    use callbot_twilio_sim::carrier::Step;
    vec![
        Step::Audio(callbot_stream::speech::instant::voiced_tone(speech_ms)),
        Step::Audio(common::beep(500)),
        Step::Silence(std::time::Duration::from_secs(20)),
    ]
}

/// `bot` calls `CALLEE`, who is `kind` to machine detection (a person when `None`) and plays
/// `steps`, then hangs up: the call's sid, and its record once it has ended.
async fn call_callee(
    app: &TestApp,
    bot: &str,
    kind: Option<callbot_twilio_sim::amd::Callee>,
    steps: Vec<callbot_twilio_sim::carrier::Step>,
    variables: Value,
) -> (String, Value) {
    if let Some(kind) = kind {
        app.sim().set_callee_kind(CALLEE, kind);
    }
    let script = callbot_twilio_sim::carrier::Script {
        steps,
        hangup_when_done: true,
    };
    app.sim().set_callee_script(CALLEE, script);
    let (status, body) = outbound(
        app,
        &app.api_key,
        json!({"user_id": "u1", "number": CALLEE, "bot_id": bot, "variables": variables}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sid = body["callSid"].as_str().unwrap().to_owned();
    let v = common::finished_call(app, &sid).await;
    (sid, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_machine_gets_the_bots_message_after_its_beep() {
    use callbot_twilio_sim::amd::Callee;
    let app = spawn_app().await;
    let (bot, hook) = voicemail_bot(
        &app,
        json!({"action": "leave_message", "message": "Hi {{name}}, please call Bella Dental back."}),
    )
    .await;
    let greeting = std::time::Duration::from_millis(4000);
    let (sid, v) = call_callee(
        &app,
        &bot,
        Some(Callee::Machine { greeting }),
        greeting_with_beep(3500),
        json!({"name": "Ana"}),
    )
    .await;
    assert_eq!(v["answered_by"], "machine_end_beep", "{v}");
    let said: Vec<&str> = v["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["bot_text"].as_str())
        .collect();
    assert_eq!(
        said.last().copied(),
        Some("Hi Ana, please call Bella Dental back."),
        "{v}"
    );
    // The bot hung up itself (through the REST API), long before the machine would have.
    assert!(
        app.sim()
            .request_log()
            .iter()
            .any(|l| l.starts_with("POST") && l.ends_with(&format!("/Calls/{sid}.json"))),
        "{:?}",
        app.sim().request_log()
    );
    assert!(v["duration"].as_u64().unwrap_or(99) < 20, "{v}");
    // The business hears of it too, signed like every webhook request.
    let notices: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| r.body["type"] == "answered_by")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].signature_ok);
    assert_eq!(
        (&notices[0].body["answered_by"], &notices[0].body["source"]),
        (&json!("machine_end_beep"), &json!("carrier"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_machine_is_hung_up_on_unless_the_bot_leaves_messages() {
    use callbot_twilio_sim::amd::Callee;
    let app = spawn_app().await;
    let (bot, _hook) = voicemail_bot(&app, json!({"action": "hang_up"})).await;
    let greeting = std::time::Duration::from_secs(8);
    let (_, v) = call_callee(
        &app,
        &bot,
        Some(Callee::Machine { greeting }),
        greeting_with_beep(7500),
        json!({}),
    )
    .await;
    // `Enable` mode: the verdict comes within the greeting, and the bot hangs up at once.
    assert_eq!(v["answered_by"], "machine_start", "{v}");
    assert!(v["duration"].as_u64().unwrap_or(99) < 8, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_is_talked_to_and_verdicts_must_be_signed() {
    use callbot_twilio_sim::carrier::Step;
    let app = spawn_app().await;
    let (bot, hook) = voicemail_bot(
        &app,
        json!({"action": "leave_message", "message": "Please call us back."}),
    )
    .await;
    let steps = vec![
        common::wait_bot(),
        Step::Audio(callbot_stream::speech::instant::voiced_tone(700)),
        common::wait_answer(),
    ];
    let (sid, v) = call_callee(&app, &bot, None, steps, json!({})).await;
    assert_eq!(v["answered_by"], "human", "{v}");
    assert!(
        hook.requests().iter().any(|r| r.body["type"] == "turn"),
        "the person was talked to"
    );
    let texts: Vec<&str> = v["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["bot_text"].as_str())
        .collect();
    assert!(!texts.contains(&"Please call us back."), "{v}");

    // A verdict without Twilio's signature changes nothing.
    let url = app.url("/twilio/amd");
    let forged = app
        .client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl")
        .body(format!("CallSid={sid}&AnsweredBy=machine_start"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(call_view(&app, &sid).await["answered_by"], "human");
}

/// A reply to the machine's greeting that is still being prepared at the beep is never heard:
/// it is cut before its first frame (played as silence), the greeting's words stay on the
/// record, and the message plays instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_to_the_greeting_is_not_left_on_the_machine() {
    use callbot_twilio_sim::amd::Callee;
    use callbot_twilio_sim::carrier::Step;
    use common::hook::{self, Answer};
    let app = spawn_app().await;
    let reply = "Okay, tell me more.";
    let hook = hook::start(move |_| {
        Answer::Slow(
            std::time::Duration::from_millis(1200),
            json!({"say": reply}),
        )
    })
    .await;
    let message = "Please call Bella Dental back.";
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Remind patients", "webhook": hook.url, "voice": "local:en-us",
                   "first_message": "Hello.",
                   "voicemail": {"action": "leave_message", "message": message}}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let bot = b["id"].as_str().unwrap().to_owned();
    // The greeting, then a pause long enough to end a turn; Twilio's verdict comes at 3.9 s.
    // The beep is too faint to be heard as the caller's sound here: a loud one would itself
    // cancel the reply being prepared, as a caller who goes on talking does.
    let steps = vec![
        Step::Audio(callbot_stream::speech::instant::voiced_tone(2500)),
        Step::Silence(std::time::Duration::from_secs(20)),
    ];
    let greeting = std::time::Duration::from_millis(3900);
    let (_, v) = call_callee(
        &app,
        &bot,
        Some(Callee::Machine { greeting }),
        steps,
        json!({}),
    )
    .await;
    let turns = v["turns"].as_array().unwrap();
    // The turn the greeting made keeps its words, and nothing of what was being prepared for it
    // (a filler, then the reply) was heard: the only words heard are the message.
    let greeting = turns
        .iter()
        .find(|t| t["user_text"] != "")
        .unwrap_or_else(|| panic!("the greeting's words are on the record: {v}"));
    assert_eq!(greeting["interrupted"], true, "{v}");
    let heard: Vec<&str> = turns
        .iter()
        .filter_map(|t| t["bot_text"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(heard, vec![message], "{v}");
    assert!(
        turns
            .iter()
            .any(|t| t["bot_text"] == message && t["action"] == "hangup"),
        "{v}"
    );
}
