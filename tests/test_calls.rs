//! `callbot test` (the binary, as a customer's CI runs it) on the repository's examples: the
//! booking scenarios against the walkthrough's bot with `examples/webhook.py` as its webhook,
//! in text and on the phone path (espeak-ng speaks, whisper hears); the tool scenarios against an
//! LLM-mode bot whose model is the OpenAI-compatible stand-in (a persona caller included); a
//! scenario that cannot pass exits 1 naming the failed check; a broken file exits 2.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::LlmSettings;
use common::openai::{self, Reply};
use common::{TestApp, spawn_app_with};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

struct Webhook(Child);

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bot whose webhook is `examples/webhook.py`, running with the bot's secret.
async fn bot_with_example_webhook(app: &TestApp, body: Value) -> (String, Webhook) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut body = body;
    body["webhook"] = json!(format!("http://127.0.0.1:{port}/"));
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    let child = Command::new("python3")
        .arg(format!("{EXAMPLES}/webhook.py"))
        .arg(port.to_string())
        .env("WEBHOOK_SECRET", b["webhook_secret"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until it listens.
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (b["id"].as_str().unwrap().to_owned(), Webhook(child))
}

/// `callbot test FILE --bot BOT ...` against the app: exit code, stdout, the JSON report.
async fn run_cli(app: &TestApp, file: &str, bot: &str, extra: &[&str]) -> (i32, String, Value) {
    let report = app
        .dir
        .path()
        .join(format!("report-{}.json", rand::random::<u32>()));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_callbot"));
    cmd.args([
        "test",
        file,
        "--bot",
        bot,
        "--server",
        &app.base,
        "--api-key",
        &app.api_key,
    ])
    .arg("--report")
    .arg(&report)
    .args(extra)
    .env("CALLBOT_DATA_DIR", app.dir.path())
    .env("RUST_LOG", "warn");
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("callbot test finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let json = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), stdout, json)
}

/// The checks a scenario's outcome failed, by name.
fn failed_checks(outcome: &Value) -> Vec<&str> {
    outcome["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect()
}

fn booking_bot() -> Value {
    json!({"goal": "Take restaurant reservations", "context": "Open 5PM-10PM", "voice": "local:en-us",
           "first_message": "Bella Vista, how can I help you?", "llm_suggestion": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_booking_examples_pass_as_text_and_a_failing_scenario_exits_1() {
    let app = spawn_app_with(|s| s.calls.end_silence = Duration::from_millis(500)).await;
    let (bot, _hook) = bot_with_example_webhook(&app, booking_bot()).await;
    let file = format!("{EXAMPLES}/tests/booking.yaml");
    let (code, stdout, report) = run_cli(&app, &file, &bot, &[]).await;
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report["passed"], true, "{report}");
    let first = &report["scenarios"][0];
    assert_eq!(first["mode"], "text");
    let lines: Vec<&str> = first["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(lines[0], "Bella Vista, how can I help you?", "{report}");
    assert!(
        lines.iter().any(|l| l.contains("booked that table")),
        "{report}"
    );
    assert!(first["transcript"][2]["latency_ms"].is_u64(), "{report}");

    // Expectations the bot cannot meet: exit 1, the failed checks named. (A local answer can
    // take 0-1 ms, so no latency bound fails for sure here; the judge's tests cover that one.)
    let failing = app.dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        "scenarios:\n  - name: offers dessert\n    caller: [I would like a table for two.]\n    expect:\n      says: [free dessert]\n      never_says: [booked]\n      ends: hangup\n      max_latency_ms: 60000\n",
    )
    .unwrap();
    let (code, stdout, report) = run_cli(&app, failing.to_str().unwrap(), &bot, &[]).await;
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(report["passed"], false);
    let failed = failed_checks(&report["scenarios"][0]);
    assert_eq!(failed, ["says", "never_says", "ends"], "{report}");
    let latency = &report["scenarios"][0]["checks"][3];
    assert_eq!(latency["check"], "max_latency_ms", "{report}");
    assert_eq!(latency["passed"], true, "{report}");
    assert!(stdout.contains("FAIL offers dessert"), "{stdout}");

    // A file that is not a scenario file: exit 2 before any call.
    std::fs::write(&failing, "scenarios:\n  - name: x\n    caller: []\n").unwrap();
    let (code, _, _) = run_cli(&app, failing.to_str().unwrap(), &bot, &[]).await;
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_booking_examples_pass_on_the_phone_path() {
    let Some(speech) = common::real_speech() else {
        return;
    };
    let app = spawn_app_with(move |s| {
        s.calls.speech = speech;
        s.calls.end_silence = Duration::from_millis(700);
    })
    .await;
    let (bot, _hook) = bot_with_example_webhook(&app, booking_bot()).await;
    let file = format!("{EXAMPLES}/tests/booking.yaml");
    let (code, stdout, report) = run_cli(&app, &file, &bot, &["--mode", "phone"]).await;
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report["scenarios"][0]["mode"], "phone", "{report}");
}

/// The stand-in model: the persona's lines through the gateway, and the bot's turns (the
/// tool for a day, end_call for a goodbye, words after the tool's result).
fn model(req: &Value) -> Reply {
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    if system.contains("phoning a business") {
        return Reply::text("Is a table free on Tuesday evening? Thanks, bye. DONE");
    }
    let last = msgs.last().unwrap();
    let text = last["content"].as_str().unwrap_or_default().to_lowercase();
    if last["role"] == "tool" {
        Reply::text("We have tables at 18:30 and 20:45.")
    } else if text.contains("bye") {
        Reply::Tool {
            text: Some("Goodbye!".into()),
            name: "end_call".into(),
            arguments: "{}".into(),
        }
    } else if text.contains("tuesday") {
        Reply::Tool {
            text: None,
            name: "check_availability".into(),
            arguments: r#"{"date": "Tuesday", "people": 2}"#.into(),
        }
    } else {
        Reply::text("How can I help?")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tool_examples_see_the_tool_its_arguments_and_a_persona_caller() {
    let standin = openai::start(model).await;
    let s = standin.clone();
    let app = spawn_app_with(move |settings| {
        settings.llm = LlmSettings::OpenAi {
            base_url: url::Url::parse(&s.base).unwrap(),
            api_key: Some(SecretString::from(openai::KEY.to_owned())),
            model: "standin-1".into(),
        };
    })
    .await;
    let tools = json!([{"name": "check_availability", "description": "Free tables for a date and party size",
        "parameters": {"type": "object", "properties": {"date": {"type": "string"}, "people": {"type": "integer"}},
                       "required": ["date", "people"]}}]);
    let body = json!({"goal": "Take reservations for Bella Vista", "mode": "llm", "tools": tools,
                      "voice": "local:en-us", "first_message": "Bella Vista, how can I help?"});
    let (bot, _hook) = bot_with_example_webhook(&app, body).await;
    let file = format!("{EXAMPLES}/tests/tools.yaml");
    let (code, stdout, report) = run_cli(&app, &file, &bot, &[]).await;
    assert_eq!(code, 0, "{stdout}");
    let persona = &report["scenarios"][1]["transcript"];
    assert_eq!(persona[1]["role"], "caller", "{report}");
    assert_eq!(
        persona[1]["text"],
        "Is a table free on Tuesday evening? Thanks, bye."
    );
    // The persona was played by the model the platform lists, through its gateway.
    let played = standin
        .requests()
        .into_iter()
        .find(|r| {
            let system = r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default();
            system.contains("phoning a business")
        })
        .expect("the persona's request reached the model");
    assert_eq!(played.body["model"], "standin-1");
    assert_eq!(played.authorization, format!("Bearer {}", openai::KEY));
    // The tool's arguments came from the call's record: a day the model did not give fails.
    let wrong = app.dir.path().join("wrong-day.yaml");
    std::fs::write(
        &wrong,
        "scenarios:\n  - name: friday\n    caller: [Do you have a table free on Tuesday?]\n    expect:\n      tools: [{name: check_availability, args: {date: friday}}]\n",
    )
    .unwrap();
    let (code, stdout, _) = run_cli(&app, wrong.to_str().unwrap(), &bot, &[]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(r#"called: check_availability {"date":"Tuesday","people":2}"#),
        "{stdout}"
    );
}

/// A finished run of the API: read until it is neither queued nor running.
async fn finished_run(app: &TestApp, bot: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (status, run) = app
            .get(&app.api_key, &format!("/bots/{bot}/tests/{id}"))
            .await;
        assert_eq!(status, 200, "{run}");
        if run["status"] != "queued" && run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("test run {id} did not finish in 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_runs_the_booking_examples_and_keeps_the_outcomes() {
    let app = spawn_app_with(|s| s.calls.end_silence = Duration::from_millis(500)).await;
    let (bot, _hook) = bot_with_example_webhook(&app, booking_bot()).await;
    let yaml = std::fs::read_to_string(format!("{EXAMPLES}/tests/booking.yaml")).unwrap();
    let scenarios: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let path = format!("/bots/{bot}/tests");
    let (status, run) = app.post_json(&app.api_key, &path, &scenarios).await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["scenarios"], 2);
    let id = run["id"].as_str().unwrap().to_owned();
    let run = finished_run(&app, &bot, &id).await;
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["passed"], 2);
    let first = &run["outcomes"][0];
    assert_eq!(
        first["transcript"][0]["text"],
        "Bella Vista, how can I help you?"
    );
    assert!(
        first["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );
    // The outcome names a real call of the tenant's.
    let sid = first["call_sid"].as_str().unwrap();
    let (status, call) = app.get(&app.api_key, &format!("/calls/{sid}")).await;
    assert_eq!(
        (status, call["bot_id"].as_str()),
        (200, Some(bot.as_str())),
        "{call}"
    );

    // A scenario the bot cannot pass: the run fails, the failed checks named.
    let failing = json!({"mode": "text", "scenarios": [{"name": "offers dessert",
        "caller": ["I would like a table for two."], "expect": {"says": ["free dessert"], "ends": "hangup"}}]});
    let (status, run) = app.post_json(&app.api_key, &path, &failing).await;
    assert_eq!(status, 202, "{run}");
    let failed_id = run["id"].as_str().unwrap().to_owned();
    let run = finished_run(&app, &bot, &failed_id).await;
    assert_eq!(
        (run["status"].as_str(), run["passed"].as_u64()),
        (Some("failed"), Some(0)),
        "{run}"
    );
    let failed = failed_checks(&run["outcomes"][0]);
    assert_eq!(failed, ["says", "ends"], "{run}");

    // Listed newest first; another tenant sees neither the runs nor the bot.
    let (_, list) = app.get(&app.api_key, &path).await;
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [failed_id.as_str(), id.as_str()]);
    let other = app.new_key("other-co").await;
    assert_eq!(app.get(&other, &format!("{path}/{id}")).await.0, 404);
    assert_eq!(app.get(&other, &path).await.0, 404);
    assert_eq!(app.post_json(&other, &path, &failing).await.0, 404);
    assert_eq!(
        app.get(
            &app.api_key,
            &format!("{path}/tr_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b")
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.get(&app.api_key, &format!("{path}/nonsense")).await.0,
        404
    );

    // Scenarios that cannot run are refused before anything is stored.
    for (bad, says) in [
        (json!({"scenarios": []}), "no scenarios"),
        (
            json!({"scenarios": [{"name": "a", "caller": ["Hi."], "expect": {"sayz": ["x"]}}]}),
            "sayz",
        ),
        (
            json!({"scenarios": [{"name": "a", "caller": ["Hi."], "bot": bot}]}),
            "path",
        ),
        (
            json!({"scenarios": [{"name": "a", "caller": []}]}),
            "caller turns",
        ),
        (
            json!({"mode": "video", "scenarios": [{"name": "a", "caller": ["Hi."]}]}),
            "video",
        ),
    ] {
        let (status, err) = app.post_json(&app.api_key, &path, &bad).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (400, Some("invalid_scenarios")),
            "{bad}: {err}"
        );
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{bad}: {err}"
        );
    }
    let (_, list) = app.get(&app.api_key, &path).await;
    assert_eq!(
        list["runs"].as_array().unwrap().len(),
        2,
        "nothing stored for a refused run"
    );
}
