//! The language model in calls, through the Twilio simulator and a real webhook server, against
//! the OpenAI-compatible stand-in (`common::openai`): suggestions in webhook mode, LLM mode
//! streamed into speech, tools through the webhook, the built-in `end_call`, barge-in cancelling
//! the stream, model failures that leave the call going, and an outbound call led by `prompt`.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::{LlmSettings, Settings};
use callbot_twilio_sim::carrier::{Script, Step};
use callbot_twilio_sim::events_until_end;
use common::hook::{self, Answer, Hook};
use common::openai::{self, Reply, StandIn};
use common::{TestApp, finished_call, spawn_app_with, wait_bot};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

use common::CALLER;

/// The model says goodbye and ends the call (`end_call`).
fn bye() -> Reply {
    Reply::Tool {
        text: Some("Bye now.".into()),
        name: "end_call".into(),
        arguments: "{}".into(),
    }
}

fn speak(ms: u64) -> Step {
    Step::Audio(callbot_stream::speech::instant::voiced_tone(ms))
}

fn with_standin(s: &mut Settings, standin: &StandIn) {
    s.calls.end_silence = Duration::from_millis(400);
    s.calls.webhook_timeout = Duration::from_millis(1500);
    s.llm = LlmSettings::OpenAi {
        base_url: url::Url::parse(&standin.base).unwrap(),
        api_key: Some(SecretString::from(openai::KEY.to_owned())),
        model: "standin-1".into(),
    };
    s.llm_timeout = Duration::from_millis(1000);
}

async fn app_with(standin: &StandIn) -> TestApp {
    let s = standin.clone();
    spawn_app_with(move |settings| with_standin(settings, &s)).await
}

async fn bot(app: &TestApp, hook: Option<&Hook>, extra: Value) -> String {
    let mut body = json!({"goal": "Take reservations", "context": "Open 5PM-10PM", "voice": "local:en-us",
                          "first_message": "Hello."});
    if let Some(h) = hook {
        body["webhook"] = json!(h.url);
    }
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    if let Some(h) = hook {
        h.set_secret(b["webhook_secret"].as_str().unwrap());
    }
    b["number"].as_str().unwrap().to_owned()
}

async fn call(
    app: &TestApp,
    number: &str,
    steps: Vec<Step>,
) -> (String, Vec<callbot_twilio_sim::carrier::Event>) {
    let mut c = common::dial(app, number, steps);
    let events = events_until_end(&mut c, Duration::from_secs(90)).await;
    (c.sid.clone(), events)
}

/// A webhook that answers turn 1 with a say-less `continue` (speak the suggestion), then hangs up.
async fn sayless_then_bye() -> Hook {
    hook::start(|req| match req["turn"].as_u64() {
        Some(1) => Answer::Json(json!({"action": "continue"})),
        _ => Answer::Json(json!({"say": "Bye.", "action": "hangup"})),
    })
    .await
}

/// A caller who speaks once after the greeting and stays on the line for 4 s.
async fn one_turn(app: &TestApp, number: &str) -> String {
    let steps = vec![
        wait_bot(),
        speak(700),
        Step::Silence(Duration::from_secs(4)),
    ];
    call(app, number, steps).await.0
}

/// A caller who speaks twice, waiting for the bot each time.
async fn two_turns(app: &TestApp, number: &str) -> String {
    let steps = vec![
        wait_bot(),
        speak(700),
        wait_bot(),
        speak(700),
        Step::Silence(Duration::from_secs(5)),
    ];
    call(app, number, steps).await.0
}

fn is_tool_result(req: &Value) -> bool {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["role"] == "tool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_gets_the_streamed_suggestion_and_a_sayless_answer_speaks_it() {
    let standin = openai::start(|_| Reply::text("We are open from five until ten tonight.")).await;
    let app = app_with(&standin).await;
    let hook = sayless_then_bye().await;
    let number = bot(&app, Some(&hook), json!({})).await;
    let sid = two_turns(&app, &number).await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.signature_ok));
    assert_eq!(
        reqs[0].body["llm_suggestion"],
        "We are open from five until ten tonight."
    );
    assert_eq!(reqs[0].body["type"], "turn");
    // The model was asked with the bot's goal and context and the caller's words, key swapped in.
    let asked = &standin.requests()[0];
    assert_eq!(asked.authorization, format!("Bearer {}", openai::KEY));
    let system = asked.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("Take reservations") && system.contains("Open 5PM-10PM"),
        "{system}"
    );
    let said = asked.body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(said.starts_with("utterance of "), "{said}");
    let v = finished_call(&app, &sid).await;
    let t1 = &v["turns"][1];
    assert_eq!(
        t1["bot_text"], "We are open from five until ten tonight.",
        "{v}"
    );
    assert!(t1["fallback"].is_null(), "{v}");
    assert!(t1["timings"]["llm"]["ttft_ms"].is_number(), "{v}");
    assert_eq!(t1["timings"]["llm"]["tokens_in"], 41, "usage counted: {v}");
    // The second turn's request shares the first one's system prompt (the cacheable prefix).
    let second = &standin.requests()[1];
    assert_eq!(second.body["messages"][0], asked.body["messages"][0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suggestions_can_be_turned_off_and_failures_send_null() {
    let standin = openai::start(|_| Reply::Error {
        status: 500,
        kind: "server_error",
        code: "internal",
    })
    .await;
    let app = app_with(&standin).await;
    let hook = sayless_then_bye().await;
    // Suggestions on, model failing: null, and a say-less answer falls back (missing_say).
    let number = bot(&app, Some(&hook), json!({})).await;
    let sid = two_turns(&app, &number).await;
    let reqs = hook.requests();
    assert!(
        reqs[0]
            .body
            .as_object()
            .unwrap()
            .contains_key("llm_suggestion")
    );
    assert!(reqs[0].body["llm_suggestion"].is_null());
    let v = finished_call(&app, &sid).await;
    assert_eq!(v["turns"][1]["fallback"], "missing_say", "{v}");
    assert_eq!(
        v["turns"][1]["timings"]["llm"]["error"], "llm_http_500",
        "{v}"
    );
    let asked = standin.requests().len();
    // Suggestions off: the model is not asked at all.
    let hook2 = hook::start(|_| Answer::Json(json!({"say": "Bye.", "action": "hangup"}))).await;
    let number2 = bot(&app, Some(&hook2), json!({"llm_suggestion": false})).await;
    one_turn(&app, &number2).await;
    assert!(hook2.requests()[0].body["llm_suggestion"].is_null());
    assert_eq!(standin.requests().len(), asked);
}

/// An LLM-mode call of two caller turns: the model answers the first with `first`, the second
/// with "Goodbye then!" and `end_call`; after the first the caller waits with `wait`. The call's
/// record, and the stand-in.
async fn answer_then_goodbye(first: Reply, wait: Step) -> (Value, StandIn) {
    let standin = openai::start(move |req| {
        if openai::user_turns(req) >= 2 {
            return Reply::Tool {
                text: Some("Goodbye then!".into()),
                name: "end_call".into(),
                arguments: "{}".into(),
            };
        }
        first.clone()
    })
    .await;
    let app = app_with(&standin).await;
    let number = bot(&app, None, json!({"mode": "llm"})).await;
    let steps = vec![
        wait_bot(),
        speak(700),
        wait,
        speak(600),
        Step::Silence(Duration::from_secs(8)),
    ];
    let (sid, _) = call(&app, &number, steps).await;
    (finished_call(&app, &sid).await, standin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn llm_mode_speaks_the_first_sentence_while_the_model_still_writes() {
    let first = Reply::Text {
        pieces: vec![
            "Sure, I can help. ".into(),
            "What time would you like to come in tonight?".into(),
        ],
        gap: Duration::from_millis(900),
    };
    let (v, standin) = answer_then_goodbye(first, wait_bot()).await;
    let t1 = &v["turns"][1];
    assert_eq!(
        t1["bot_text"], "Sure, I can help. What time would you like to come in tonight?",
        "{v}"
    );
    let llm = &t1["timings"]["llm"];
    let first_frame = t1["timings"]["first_frame_ms"].as_u64().unwrap();
    // The second half came 0.9 s after the first: audio was already going out.
    assert!(first_frame < llm["total_ms"].as_u64().unwrap(), "{v}");
    assert!(llm["first_sentence_ms"].as_u64().unwrap() < 800, "{v}");
    // The tools were offered in OpenAI's shape; end_call ended the call after the goodbye played.
    let tools = &standin.requests()[0].body["tools"];
    assert!(
        tools
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "end_call"),
        "{tools}"
    );
    let t2 = &v["turns"][2];
    assert_eq!(
        (t2["action"].as_str(), t2["bot_text"].as_str()),
        (Some("hangup"), Some("Goodbye then!")),
        "{v}"
    );
    assert_eq!(t2["interrupted"], false);
    assert_eq!(v["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_slow_to_its_first_sentence_is_covered_by_one_moment() {
    // The first sentence is complete 2.4 s after the request: the caller hears "One moment."
    // at 1.2 s, then the answer (the filler never comes after it).
    let first = Reply::Text {
        pieces: ["Sure, ", "we are ", "open until ", "ten tonight."]
            .map(String::from)
            .to_vec(),
        gap: Duration::from_millis(800),
    };
    let (v, _) = answer_then_goodbye(first, common::wait_answer()).await;
    let t1 = &v["turns"][1];
    assert_eq!(
        t1["bot_text"], "One moment. Sure, we are open until ten tonight.",
        "{v}"
    );
    assert!(t1["fallback"].is_null(), "{v}");
    // The filler's audio went out before the model's first sentence was complete.
    let first_frame = t1["timings"]["first_frame_ms"].as_u64().unwrap();
    let first_sentence = t1["timings"]["llm"]["first_sentence_ms"].as_u64().unwrap();
    assert!(first_frame < first_sentence, "{v}");
    // A quick model (the goodbye) gets no filler.
    assert_eq!(v["turns"][2]["bot_text"], "Goodbye then!", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tool_call_goes_through_the_signed_webhook_and_back_to_the_model() {
    let standin = openai::start(|req| {
        if is_tool_result(req) {
            let result = req["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["role"] == "tool")
                .unwrap()["content"]
                .as_str()
                .unwrap()
                .to_owned();
            Reply::text(&format!(
                "On Sunday we are open {}.",
                if result.contains("10:00-16:00") {
                    "ten to four"
                } else {
                    "never"
                }
            ))
        } else {
            Reply::Tool {
                text: None,
                name: "check_hours".into(),
                arguments: r#"{"day":"Sunday"}"#.into(),
            }
        }
    })
    .await;
    let app = app_with(&standin).await;
    let hook = hook::start(|req| match req["type"].as_str() {
        Some("tool_call") => Answer::Json(json!({"result": {"open": "10:00-16:00"}})),
        _ => Answer::Json(json!({"say": "ignored"})),
    })
    .await;
    let tools = json!([{"name": "check_hours", "description": "Opening hours for a day",
                        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}}]);
    let number = bot(&app, Some(&hook), json!({"mode": "llm", "tools": tools})).await;
    let (sid, _) = call(
        &app,
        &number,
        vec![
            wait_bot(),
            speak(700),
            // (Through "One moment." if the tool round is slow on a loaded machine.)
            common::wait_answer(),
        ],
    )
    .await;
    let v = finished_call(&app, &sid).await;
    assert_eq!(
        common::without_fillers(v["turns"][1]["bot_text"].as_str().unwrap_or_default()),
        "On Sunday we are open ten to four.",
        "{v}"
    );
    assert_eq!(v["turns"][1]["timings"]["llm"]["tool_calls"], 1);
    let reqs = hook.requests();
    let tool = reqs
        .iter()
        .find(|r| r.body["type"] == "tool_call")
        .expect("a tool_call request");
    assert!(tool.signature_ok, "signed like every webhook request");
    assert_eq!(
        (tool.body["name"].as_str(), &tool.body["arguments"]),
        (Some("check_hours"), &json!({"day": "Sunday"}))
    );
    assert_eq!(tool.body["call_sid"], sid.as_str());
    assert_eq!(tool.idempotency_key, format!("{sid}:1:call_standin1"));
    // The turn notice follows, and what it answers changes nothing.
    let notice = common::eventually(|| async {
        hook.requests()
            .into_iter()
            .find(|r| r.body["type"] == "turn")
    })
    .await;
    assert_eq!(notice.body["reply"], "On Sunday we are open ten to four.");
    assert!(notice.signature_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn barge_in_cancels_the_stream() {
    let standin = openai::start(|_| Reply::Text {
        pieces: (0..40)
            .map(|i| format!("Part {i} of a very long answer. "))
            .collect(),
        gap: Duration::from_millis(250),
    })
    .await;
    let app = app_with(&standin).await;
    let number = bot(&app, None, json!({"mode": "llm"})).await;
    let steps = vec![
        wait_bot(),
        speak(700),
        Step::Silence(Duration::from_millis(2500)),
        speak(1200),
        Step::Silence(Duration::from_secs(2)),
    ];
    let mut c = app
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
    events_until_end(&mut c, Duration::from_secs(60)).await;
    // The first request was abandoned long before its 10 s of pieces were out.
    let first = common::eventually(|| async {
        standin
            .requests()
            .first()
            .filter(|r| r.finished.is_some())
            .cloned()
    })
    .await;
    assert!(first.cancelled, "the client closed the stream");
    assert!(first.finished.unwrap() - first.at < Duration::from_secs(8));
    let v = finished_call(&app, &c.sid).await;
    assert_eq!(v["turns"][1]["interrupted"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_timeouts_errors_and_broken_streams_leave_the_call_going() {
    let standin = openai::start(|req| {
        let turns = openai::user_turns(req);
        match turns {
            1 => Reply::Hang,
            2 => Reply::Error {
                status: 500,
                kind: "server_error",
                code: "internal",
            },
            3 => Reply::Error {
                status: 429,
                kind: "requests",
                code: "rate_limit_exceeded",
            },
            4 => Reply::Malformed,
            _ => bye(),
        }
    })
    .await;
    let app = app_with(&standin).await;
    let number = bot(&app, None, json!({"mode": "llm"})).await;
    let mut steps = vec![wait_bot()];
    for _ in 0..5 {
        steps.push(speak(700));
        steps.push(wait_bot());
    }
    steps.push(Step::Silence(Duration::from_secs(5)));
    let (sid, _) = call(&app, &number, steps).await;
    let v = finished_call(&app, &sid).await;
    let turns = v["turns"].as_array().unwrap();
    let line = app.state.settings.calls.fallback_line.clone();
    let reasons: Vec<_> = turns[1..5]
        .iter()
        .map(|t| t["fallback"].as_str().unwrap_or("-").to_owned())
        .collect();
    // The broken stream had begun a sentence ("Half") that never completed: still the fallback.
    assert_eq!(
        reasons[..3],
        ["llm_timeout", "llm_http_500", "llm_rate_limited"],
        "{v}"
    );
    assert!(
        turns[4]["timings"]["llm"]["error"] == "llm_bad_stream",
        "{v}"
    );
    for t in &turns[1..4] {
        // (The model's 1 s deadline is close to the filler's 1.2 s: a loaded machine may say
        // "One moment." before the fallback line.)
        let said = common::without_fillers(t["bot_text"].as_str().unwrap());
        assert_eq!(said, line, "{v}");
    }
    assert_eq!(turns[5]["action"], "hangup", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outbound_call_with_a_prompt_is_led_by_the_model() {
    let standin = openai::start(|req| {
        if req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "user")
        {
            Reply::Tool {
                text: Some("Great, see you Friday. Goodbye!".into()),
                name: "end_call".into(),
                arguments: "{}".into(),
            }
        } else {
            Reply::text("unexpected")
        }
    })
    .await;
    let app = app_with(&standin).await;
    let hook =
        hook::start(|_| Answer::Json(json!({"say": "the webhook must not decide this call"})))
            .await;
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Dental office", "webhook": hook.url}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let callee = "+15552224444";
    app.sim().set_callee_script(
        callee,
        Script {
            steps: vec![
                wait_bot(),
                speak(800),
                Step::Silence(Duration::from_secs(8)),
            ],
            hangup_when_done: true,
        },
    );
    let (status, body) = common::outbound(
        &app,
        &app.api_key,
        json!({
            "user_id": "u1", "number": callee, "bot_id": b["id"],
            "prompt": "Confirm the patient's appointment on Friday at 3 PM.",
            "first_message": "Hi, this is Bright Smiles calling about your appointment."
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sid = body["callSid"].as_str().unwrap().to_owned();
    let v = finished_call(&app, &sid).await;
    assert_eq!(
        v["turns"][0]["bot_text"],
        "Hi, this is Bright Smiles calling about your appointment."
    );
    assert_eq!(
        v["turns"][1]["bot_text"], "Great, see you Friday. Goodbye!",
        "{v}"
    );
    assert_eq!(v["turns"][1]["action"], "hangup");
    let system = standin.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("Confirm the patient's appointment on Friday at 3 PM."),
        "{system}"
    );
    // The webhook only hears about the turn afterwards (beside what answered the call).
    let notice = common::eventually(|| async {
        hook.requests()
            .into_iter()
            .find(|r| r.body["type"] == "turn")
    })
    .await;
    assert_eq!(notice.body["reply"], "Great, see you Friday. Goodbye!");
}

#[tokio::test]
async fn llm_bots_are_checked_when_saved() {
    let standin = openai::start(|_| Reply::text("x")).await;
    let app = app_with(&standin).await;
    let post = |body: Value| app.create_bot(&app.api_key, body);
    let (s, b) = post(json!({"goal": "g"})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("missing_webhook")),
        "{b}"
    );
    let (s, b) = post(json!({"goal": "g", "mode": "llm", "tools": [{"name": "end_call"}]})).await;
    assert_eq!(
        (s, b["code"].as_str(), b["field"].as_str()),
        (400, Some("invalid_tool"), Some("tools")),
        "{b}"
    );
    let (s, b) = post(json!({"goal": "g", "mode": "robot"})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_mode")), "{b}");
    let (s, b) =
        post(json!({"goal": "g", "webhook": "https://example.com/h", "tools": [{"name": "f"}]}))
            .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("tools_need_llm_mode")),
        "{b}"
    );
    let (s, b) = post(json!({"goal": "g", "mode": "llm", "transfer_numbers": ["+1555*"],
                             "tools": [{"name": "f", "description": "d", "parameters": {"type": "object"}}]})).await;
    assert_eq!(s, 201, "{b}");
    let (_, view) = app
        .get(
            &app.api_key,
            &format!("/bots/{}", b["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        (view["mode"].as_str(), view["llm_suggestion"].as_bool()),
        (Some("llm"), Some(true))
    );
    assert_eq!(view["tools"][0]["name"], "f");
    assert_eq!(view["transfer_numbers"], json!(["+1555*"]));
    assert!(view.get("webhook").is_none());
    // Back to webhook mode without a webhook: refused.
    let resp = app
        .client
        .patch(app.url(&format!("/bots/{}", b["id"].as_str().unwrap())))
        .header("x-api-key", &app.api_key)
        .json(&json!({"mode": "webhook", "tools": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Without a model: LLM bots and prompts are refused, not silently ignored.
    let off = common::spawn_app().await;
    let (s, b) = off
        .create_bot(&off.api_key, json!({"goal": "g", "mode": "llm"}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{b}"
    );
    let (bot_id, _) = common::new_bot(&off).await;
    let (s, b) = common::outbound(
        &off,
        &off.api_key,
        json!({"user_id": "u", "number": "+15552223333", "bot_id": bot_id, "prompt": "p"}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{b}"
    );
}

/// The embedded model (`callbot-llm` worker over SmolLM2), as `serve` runs it by default.
fn embedded(s: &mut Settings) -> bool {
    let Some((model, worker)) = common::embedded_model() else {
        return false;
    };
    s.calls.end_silence = Duration::from_millis(400);
    s.calls.webhook_timeout = Duration::from_secs(8);
    s.llm = LlmSettings::Local {
        model,
        worker: Some(worker),
        threads: 2,
    };
    // A loaded CI machine (other tests, builds beside it): the suggestion may take seconds here.
    s.llm_timeout = Duration::from_secs(15);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_model_suggests_and_a_sayless_answer_speaks_it() {
    let mut on = true;
    let app = spawn_app_with(|s| on = embedded(s)).await;
    if !on {
        return;
    }
    let hook = sayless_then_bye().await;
    let number = bot(&app, Some(&hook), json!({})).await;
    // The bot hangs up after turn 2; the caller stays on the line until then, however slow the
    // model is on a busy machine.
    let steps = vec![
        wait_bot(),
        speak(700),
        common::wait_answer(),
        speak(700),
        Step::Silence(Duration::from_secs(40)),
    ];
    let (sid, _) = call(&app, &number, steps).await;
    let reqs = hook.requests();
    let suggestion = reqs[0].body["llm_suggestion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let v = finished_call(&app, &sid).await;
    assert!(!suggestion.trim().is_empty(), "{:?} {v}", reqs[0].body);
    // (After "One moment." when the model is slow on a loaded machine.)
    let spoken = v["turns"][1]["bot_text"].as_str().unwrap_or_default();
    assert_eq!(common::without_fillers(spoken), suggestion, "{v}");
    let llm = &v["turns"][1]["timings"]["llm"];
    assert!(llm["tokens_out"].as_u64().unwrap() > 0, "{v}");
    // The second turn reused the first one's prompt from the worker's cache.
    assert!(
        v["turns"][2]["timings"]["llm"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 50,
        "{v}"
    );
}

/// A model that accepts the connection and never answers, not even with headers: after the
/// model's deadline the caller hears the fallback line, the turn records `llm_timeout`, and the
/// call goes on to its next turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_that_never_answers_gets_the_caller_an_honest_line_and_the_call_goes_on() {
    let (v, _) = answer_then_goodbye(Reply::NoHeaders, common::wait_answer()).await;
    let turns = v["turns"].as_array().unwrap();
    assert_eq!(turns[1]["fallback"], "llm_timeout", "{v}");
    let line = Settings::for_local(std::env::temp_dir())
        .calls
        .fallback_line;
    assert_eq!(
        common::without_fillers(turns[1]["bot_text"].as_str().unwrap()),
        line,
        "{v}"
    );
    assert_eq!(turns[2]["action"], "hangup", "{v}");
}

/// A bot's own suggestion deadline: a model slower than it (but within the platform's deadline)
/// leaves the webhook with `llm_suggestion: null` when the bot's deadline passes; the deadline is
/// checked when saved and shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suggestion_past_the_bots_deadline_leaves_the_webhook_a_null() {
    // Ten pieces 60 ms apart: about 600 ms, inside the platform's 1000 ms.
    let standin = openai::start(|_| Reply::Text {
        pieces: (0..10).map(|i| format!("word{i} ")).collect(),
        gap: Duration::from_millis(60),
    })
    .await;
    let app = app_with(&standin).await;
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "g", "webhook": "https://example.com/h", "suggestion_deadline_ms": 50}),
        )
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (400, Some("out_of_range")),
        "{b}"
    );
    let hook = hook::start(|_| Answer::Json(json!({"say": "Bye.", "action": "hangup"}))).await;
    let number = bot(&app, Some(&hook), json!({"suggestion_deadline_ms": 250})).await;
    let (_, bots) = app.get(&app.api_key, "/bots").await;
    let view = bots
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["number"] == number.as_str())
        .unwrap();
    assert_eq!(view["suggestion_deadline_ms"], 250, "{view}");
    let sid = one_turn(&app, &number).await;
    let reqs = hook.requests();
    assert!(
        reqs[0].body["llm_suggestion"].is_null(),
        "{:?}",
        reqs[0].body
    );
    let v = finished_call(&app, &sid).await;
    assert_eq!(
        v["turns"][1]["timings"]["llm"]["error"], "llm_timeout",
        "{v}"
    );
    // The same model within the platform's deadline: the webhook gets its words.
    let hook2 = hook::start(|_| Answer::Json(json!({"say": "Bye.", "action": "hangup"}))).await;
    let number2 = bot(&app, Some(&hook2), json!({})).await;
    one_turn(&app, &number2).await;
    let s = hook2.requests()[0].body["llm_suggestion"].clone();
    assert!(s.as_str().is_some_and(|s| s.starts_with("word0")), "{s}");
}
