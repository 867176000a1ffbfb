//! After each call: a signed `call.ended` event for every call, and for bots that ask, the
//! analysis against the OpenAI stand-in (the exact request, the schema check, a model that does
//! not answer in JSON, a model that fails and is retried), stored on the call and sent as a
//! signed `call.analyzed` event.

#![allow(clippy::unwrap_used)]

mod common;

use callbot_core::settings::LlmSettings;
use callbot_twilio_sim::carrier::Step;
use common::hook::{self, Answer, Hook};
use common::openai::{self, Reply, StandIn};
use common::{TestApp, spawn_app_with, wait_answer, wait_bot};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn is_analysis(req: &Value) -> bool {
    req["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "record_analysis"))
}

async fn app_with(standin: Option<&StandIn>) -> TestApp {
    let base = standin.map(|s| s.base.clone());
    spawn_app_with(move |s| {
        s.calls.end_silence = Duration::from_millis(400);
        s.llm = match base {
            Some(b) => LlmSettings::OpenAi {
                base_url: url::Url::parse(&b).unwrap(),
                api_key: Some(SecretString::from(openai::KEY.to_owned())),
                model: "standin-1".into(),
            },
            None => LlmSettings::Off,
        };
    })
    .await
}

/// A bot whose webhook books the table at the first turn and hangs up.
async fn bot(app: &TestApp, analysis: Option<Value>) -> (String, Hook) {
    let hook = hook::start(|req| match req["type"].as_str() {
        Some("turn") => {
            Answer::Json(json!({"say": "Booked for four at seven.", "action": "hangup"}))
        }
        _ => Answer::Json(json!({})),
    })
    .await;
    let mut body = json!({"goal": "Take reservations", "webhook": hook.url, "voice": "local:en-us",
                          "first_message": "Bella Vista, hello."});
    if let Some(a) = analysis {
        body["analysis"] = a;
    }
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    (b["number"].as_str().unwrap().to_owned(), hook)
}

fn plan() -> Value {
    json!({"success_criteria": "A table was booked",
           "structured_data": {"type": "object", "properties": {"party": {"type": "integer", "minimum": 1}}, "required": ["party"]}})
}

/// One caller turn, then the bot's answer and hang-up; the call's sid.
async fn call(app: &TestApp, number: &str) -> String {
    let steps = vec![
        wait_bot(),
        Step::Audio(callbot_stream::speech::instant::voiced_tone(700)),
        wait_answer(),
        Step::Silence(Duration::from_secs(3)),
    ];
    let mut handle = common::dial(app, number, steps);
    callbot_twilio_sim::events_until_end(&mut handle, Duration::from_secs(30)).await;
    handle.sid.clone()
}

/// The events of `kind` the hook got for `sid`, once there are `n`.
async fn events(hook: &Hook, sid: &str, kind: &str, n: usize) -> Vec<common::hook::Received> {
    common::eventually(|| async {
        let got: Vec<_> = hook
            .requests()
            .into_iter()
            .filter(|r| r.body["type"] == kind && r.body["call_sid"] == sid)
            .collect();
        (got.len() >= n).then_some(got)
    })
    .await
}

fn tool(args: Value) -> Reply {
    Reply::Tool {
        text: None,
        name: "record_analysis".into(),
        arguments: args.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_is_analysed_and_both_events_are_signed() {
    let standin = openai::start(|req| {
        if is_analysis(req) {
            tool(json!({"summary": "The caller booked a table for four at seven.", "structured_data": {"party": 4},
                        "success": {"passed": true, "reason": "A table was booked."}}))
        } else {
            Reply::text("Sure.")
        }
    })
    .await;
    let app = app_with(Some(&standin)).await;
    let (number, hook) = bot(&app, Some(plan())).await;
    let sid = call(&app, &number).await;
    let ended = events(&hook, &sid, "call.ended", 1).await;
    let analyzed = events(&hook, &sid, "call.analyzed", 1).await;
    for e in [&ended[0], &analyzed[0]] {
        assert!(e.signature_ok, "{}", e.body);
        assert_eq!(
            e.idempotency_key,
            format!("{sid}:{}", e.body["type"].as_str().unwrap())
        );
        assert_eq!(e.body["event_id"], e.idempotency_key.as_str());
        assert_eq!(e.body["status"], "completed");
        assert!(
            e.body["recording_url"]
                .as_str()
                .unwrap()
                .contains("/recording?"),
            "{}",
            e.body
        );
        assert_eq!(
            e.body["transcript"][0],
            json!({"role": "bot", "text": "Bella Vista, hello."})
        );
        assert!(e.body.get("turns").is_none());
    }
    assert!(ended[0].body.get("analysis").is_none());
    let a = &analyzed[0].body["analysis"];
    assert_eq!(a["summary"], "The caller booked a table for four at seven.");
    assert_eq!(a["structured_data"], json!({"party": 4}));
    assert_eq!(
        a["success"],
        json!({"passed": true, "reason": "A table was booked."})
    );
    assert!(a.get("errors").is_none(), "{a}");
    // The request: the transcript, and one tool whose parameters carry the bot's schema.
    let asked: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| is_analysis(&r.body))
        .collect();
    assert_eq!(asked.len(), 1);
    let body = &asked[0].body;
    assert_eq!(asked[0].authorization, format!("Bearer {}", openai::KEY));
    let params = &body["tools"][0]["function"]["parameters"];
    assert_eq!(
        params["properties"]["structured_data"],
        plan()["structured_data"]
    );
    assert_eq!(
        params["required"],
        json!(["summary", "structured_data", "success"])
    );
    let transcript = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Bot: Bella Vista, hello.")
            && transcript.contains("Caller: utterance of"),
        "{transcript}"
    );
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("A table was booked")
    );
    // Stored on the call.
    let v = common::call_view(&app, &sid).await;
    assert_eq!(v["analysis"]["structured_data"], json!({"party": 4}), "{v}");
    assert_eq!(
        v["analysis"]["model"]
            .as_str()
            .map(|m| m.contains("standin-1")),
        Some(true),
        "{v}"
    );
    shown_in_the_console(&app, &sid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_model_gets_wrong_is_recorded_not_invented() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let standin = openai::start(move |req| {
        if !is_analysis(req) {
            return Reply::text("Sure.");
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::text("I think the call went well."),
            _ => tool(json!({"summary": "Booked.", "structured_data": {"party": "four"}, "success": {"passed": true}})),
        }
    })
    .await;
    let app = app_with(Some(&standin)).await;
    let (number, hook) = bot(&app, Some(plan())).await;
    let first = call(&app, &number).await;
    let a = &events(&hook, &first, "call.analyzed", 1).await[0].body["analysis"];
    assert_eq!(
        a["errors"],
        json!(["the model did not answer with the analysis as JSON"]),
        "{a}"
    );
    assert!(
        a.get("summary").is_none() && a.get("structured_data").is_none(),
        "{a}"
    );
    let second = call(&app, &number).await;
    let a = &events(&hook, &second, "call.analyzed", 1).await[0].body["analysis"];
    assert_eq!(a["summary"], "Booked.");
    assert!(
        a.get("structured_data").is_none(),
        "data that breaks the schema is not kept: {a}"
    );
    assert!(a.get("success").is_none(), "{a}");
    let errors: Vec<&str> = a["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors[0].starts_with("structured_data: /party"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("success:"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_model_is_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let standin = openai::start(move |req| {
        if !is_analysis(req) {
            return Reply::text("Sure.");
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::Error { status: 500, kind: "server_error", code: "internal" },
            _ => tool(json!({"summary": "Booked.", "structured_data": {"party": 2}, "success": {"passed": true, "reason": "Booked."}})),
        }
    })
    .await;
    let app = app_with(Some(&standin)).await;
    let (number, hook) = bot(&app, Some(plan())).await;
    let sid = call(&app, &number).await;
    let a = &events(&hook, &sid, "call.analyzed", 1).await[0].body["analysis"];
    assert_eq!(a["structured_data"], json!({"party": 2}), "{a}");
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_ends_with_an_event_analysed_or_not() {
    let app = app_with(None).await;
    let (number, hook) = bot(&app, None).await;
    let sid = call(&app, &number).await;
    let ended = events(&hook, &sid, "call.ended", 1).await;
    assert!(ended[0].signature_ok);
    // An outbound call nobody takes (busy) ends with its event too.
    let busy = "+15551239999";
    app.sim()
        .set_callee_kind(busy, callbot_twilio_sim::amd::Callee::Busy);
    let (_, b) = app.get(&app.api_key, "/bots").await;
    let bot_id = b.get("bots").unwrap_or(&b)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, placed) = common::outbound(
        &app,
        &app.api_key,
        json!({"user_id": "u1", "number": busy, "bot_id": bot_id}),
    )
    .await;
    assert_eq!(status, 200, "{placed}");
    let sid = placed["callSid"].as_str().unwrap();
    let ended = events(&hook, sid, "call.ended", 1).await;
    assert_eq!(ended[0].body["status"], "busy");
    assert!(ended[0].body["transcript"].as_array().unwrap().is_empty());
    // A bot cannot ask for an analysis where there is no model.
    let (status, err) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "x", "webhook": hook.url, "analysis": plan()}),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{err}"
    );
    assert!(
        hook.requests()
            .iter()
            .all(|r| r.body["type"] != "call.analyzed")
    );
}

/// The call page shows the analysis (in a real Chromium, when the machine has one).
async fn shown_in_the_console(app: &TestApp, sid: &str) {
    use callbot::browser::{self, Browser};
    if !browser::available() {
        return;
    }
    let b = Browser::start("console-analysis", None).await.unwrap();
    common::console_sign_in(&b, app).await;
    b.client
        .goto(&app.url(&format!("/console#/calls/{sid}")))
        .await
        .unwrap();
    let summary = b
        .until(
            "document.querySelector('.analysis .summary')?.textContent",
            10,
        )
        .await
        .unwrap();
    assert_eq!(summary, "The caller booked a table for four at seven.");
    let success = b
        .until(
            "document.querySelector('.analysis .success')?.textContent",
            10,
        )
        .await
        .unwrap();
    assert_eq!(success, "Passed: A table was booked.");
    b.shot("call-page-analysis").await.unwrap();
}
