//! Campaigns end to end against the Twilio simulator: a 200-row campaign with people, busy
//! lines, unanswered phones and answering machines, driven by a dialer on an injected clock
//! (concurrency bound, retries, calling window); the API's refusals, uploads and transitions.
//! (A server killed mid-campaign: `campaign_restart.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use callbot_functions::campaigns::dialer::{Dialer, PassReport};
use callbot_twilio_sim::amd::Callee;
use common::{ManualClock, TestApp, spawn_app_with};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// An app whose dialer the test drives, with room for a 200-row campaign.
async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.campaign_dialer = false;
        s.limits.calls_per_bot_per_day = 1000;
    })
    .await
}

async fn bot(app: &TestApp, extra: Value) -> String {
    let mut body = common::bot_body();
    body["first_message"] = json!("Hi {{name}}, this is a reminder.");
    body["silence_timeout_secs"] = json!(3);
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, bot) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{bot}");
    bot["id"].as_str().unwrap().to_owned()
}

fn number(i: usize) -> String {
    format!("+1555020{i:04}")
}

/// Watches the simulator: the most calls live at once, and whether a number was ever in two
/// live calls at once.
struct Watch {
    max: Arc<AtomicUsize>,
    doubled: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn watch(sim: callbot_twilio_sim::Sim) -> Watch {
    let (max, doubled) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (m, d) = (max.clone(), doubled.clone());
    let task = tokio::spawn(async move {
        loop {
            let live = sim.live_callees();
            m.fetch_max(live.len(), Ordering::Relaxed);
            if live.iter().collect::<HashSet<_>>().len() != live.len() {
                d.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    Watch { max, doubled, task }
}

/// Passes until `done(campaign)`, checking the store's bound after each; the passes' sum.
async fn drive(
    app: &TestApp,
    dialer: &mut Dialer,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> PassReport {
    let mut sum = PassReport::default();
    let cid = callbot_core::domain::CampaignId::parse(id).unwrap();
    for _ in 0..3000 {
        let r = dialer.pass().await;
        sum.placed += r.placed;
        sum.finished += r.finished;
        sum.deferred += r.deferred;
        let active = app.state.store.active_rows(&cid).await.unwrap().len();
        assert!(active <= 10, "{active} rows active at once");
        let (_, c) = app.get(&app.api_key, &format!("/campaigns/{id}")).await;
        if done(&c) {
            return sum;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("the campaign did not get there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_row_campaign_keeps_its_bounds_retries_and_window() {
    let app = app().await;
    let bot = bot(&app, json!({})).await;
    let sim = app.sim();
    let rows: Vec<Value> = (0..200)
        .map(|i| {
            let n = number(i);
            match i % 5 {
                0 => sim.set_callee_kind(&n, Callee::Busy),
                1 => sim.set_callee_kind(
                    &n,
                    Callee::NoAnswer {
                        ring: Duration::from_secs(1),
                    },
                ),
                2 => {
                    sim.set_callee_kind(
                        &n,
                        Callee::Machine {
                            greeting: Duration::from_secs(3),
                        },
                    );
                    sim.set_callee_script(
                        &n,
                        callbot_twilio_sim::carrier::Script {
                            steps: vec![callbot_twilio_sim::carrier::Step::Silence(
                                Duration::from_secs(6),
                            )],
                            hangup_when_done: true,
                        },
                    );
                }
                _ => sim.set_callee_script(&n, common::short_call()),
            }
            json!({"to": n, "variables": {"name": format!("Caller {i}")}})
        })
        .collect();
    let (status, c) = app
        .post_json(&app.api_key, "/campaigns", &json!({
            "bot_id": bot, "name": "two hundred", "rows": rows, "max_concurrency": 10,
            "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
            "retry": {"busy": {"attempts": 2, "delay_seconds": 600},
                      "no_answer": {"attempts": 2, "delay_seconds": 3600}}}))
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (c["rows"].as_u64(), c["counts"]["pending"].as_u64()),
        (Some(200), Some(200))
    );
    let w = watch(sim.clone());
    // Thursday 10:00 UTC (the bot's zone): every row gets its first call.
    let clock = ManualClock::at("2026-12-03T10:00:00Z");
    let mut dialer = Dialer::new(app.state.clone(), clock.clone());
    let first = drive(&app, &mut dialer, &id, |c| {
        c["counts"]["done"] == 120 && c["counts"]["pending"] == 80
    })
    .await;
    assert_eq!(first.placed, 200);
    assert_eq!(
        c_outcomes(&app, &id).await,
        json!({"answered": 80, "machine": 40})
    );
    // Nothing is due until the busy rows' ten minutes have passed.
    assert_eq!(dialer.pass().await.placed, 0);
    clock.set("2026-12-03T10:10:01Z");
    let second = drive(&app, &mut dialer, &id, |c| c["counts"]["done"] == 160).await;
    assert_eq!(second.placed, 40, "only the busy rows were due");
    // Saturday: the unanswered rows are due, but the window is closed.
    clock.set("2026-12-05T12:00:00Z");
    for _ in 0..3 {
        assert_eq!(dialer.pass().await.placed, 0, "a call outside the window");
    }
    clock.set("2026-12-07T09:00:00Z");
    let third = drive(&app, &mut dialer, &id, |c| c["status"] == "completed").await;
    assert_eq!(third.placed, 40);
    w.task.abort();
    assert_eq!(
        c_outcomes(&app, &id).await,
        json!({"answered": 80, "machine": 40, "busy": 40, "no_answer": 40})
    );
    let max = w.max.load(Ordering::Relaxed);
    assert!(
        (2..=10).contains(&max),
        "at most 10 calls at once, and more than one: {max}"
    );
    assert!(
        !w.doubled.load(Ordering::Relaxed),
        "a number was in two calls at once"
    );
    let creates = sim
        .request_log()
        .iter()
        .filter(|l| l.starts_with("POST") && l.ends_with("/Calls.json"))
        .count();
    assert_eq!(
        creates, 280,
        "200 first calls, 40 busy and 40 unanswered retries"
    );
    // Every row's attempts name their calls; the results say the same, one line per row.
    let (_, page) = app
        .get(&app.api_key, &format!("/campaigns/{id}/rows?limit=5"))
        .await;
    assert_eq!(
        page["rows"][0]["attempts"].as_array().unwrap().len(),
        2,
        "{page}"
    );
    assert_eq!(page["rows"][0]["outcome"], "busy");
    assert_eq!(page["rows"][3]["attempts"][0]["outcome"], "answered");
    assert_eq!(page["next_after"], 4);
    let csv = results(&app, &id).await;
    assert_eq!(csv.lines().count(), 201);
    assert!(csv.starts_with("row,to,state,outcome,attempts,call_sid,answered_by,duration_secs,last_attempt_at,summary,success,success_reason,structured_data,name\n"), "{csv}");
    assert!(
        csv.contains(&format!("\n2,{},done,machine,1,CA", number(2))),
        "{csv}"
    );
    assert!(
        csv.contains(",Caller 199\n") || csv.ends_with(",Caller 199\n"),
        "{csv}"
    );
}

async fn c_outcomes(app: &TestApp, id: &str) -> Value {
    app.get(&app.api_key, &format!("/campaigns/{id}")).await.1["outcomes"].clone()
}

async fn results(app: &TestApp, id: &str) -> String {
    let resp = app
        .client
        .get(app.url(&format!("/campaigns/{id}/results.csv")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_campaigns_are_refused_naming_the_row_and_nothing_is_stored() {
    let app = app().await;
    let bot = bot(&app, json!({})).await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post_json(&app.api_key, "/campaigns", &body).await }
    };
    let row = |to: &str, name: Option<&str>| match name {
        Some(n) => json!({"to": to, "variables": {"name": n}}),
        None => json!({"to": to}),
    };
    for (body, code, field) in [
        (
            json!({"bot_id": bot, "rows": [row("+15551230001", Some("A")), row("+15551230002", None)]}),
            "missing_variables",
            "rows[1]",
        ),
        (
            json!({"bot_id": bot, "rows": [row("+15551230001", Some("A")), row("+1 555 123 0001", Some("B"))]}),
            "duplicate_number",
            "rows[1].to",
        ),
        (
            json!({"bot_id": bot, "rows": [row("12", Some("A"))]}),
            "invalid_phone_number",
            "rows[0].to",
        ),
        (json!({"bot_id": bot, "rows": []}), "invalid_rows", "rows"),
        (
            json!({"bot_id": bot, "rows_csv": "number,name\n+15551230001,A\n"}),
            "invalid_csv",
            "rows_csv",
        ),
        (
            json!({"bot_id": bot, "rows_csv": "to,name,time\n+15551230001,A,7\n"}),
            "invalid_variables",
            "rows_csv line 2",
        ),
        (
            json!({"bot_id": bot, "rows_csv": "to,name\n+15551230001,A\n+15551230002,\n"}),
            "missing_variables",
            "rows_csv line 3",
        ),
        (
            json!({"bot_id": bot, "rows": [row("+15551230001", Some("A"))], "window": {"start": "18:00", "end": "09:00"}}),
            "invalid_window",
            "window",
        ),
        (
            json!({"bot_id": bot, "rows": [row("+15551230001", Some("A"))], "retry": {"busy": {"attempts": 0}}}),
            "invalid_retry",
            "retry",
        ),
        (
            json!({"bot_id": bot, "rows": [row("+15551230001", Some("A"))], "max_concurrency": 0}),
            "invalid_max_concurrency",
            "max_concurrency",
        ),
        (
            json!({"rows": [row("+15551230001", Some("A"))]}),
            "missing_fields",
            "bot_id",
        ),
    ] {
        let (status, err) = post(body.clone()).await;
        assert_eq!(
            (status, err["code"].as_str(), err["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body} -> {err}"
        );
    }
    let (status, err) = post(json!({"bot_id": "bot_0123456789abcdef0123456789abcdef", "rows": [row("+15551230001", Some("A"))]})).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("not_found")));
    let (_, list) = app.get(&app.api_key, "/campaigns").await;
    assert_eq!(list["campaigns"], json!([]), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_csv_campaign_pauses_resumes_and_cancels_for_its_tenant_only() {
    let app = app().await;
    let bot = bot(&app, json!({"variables": {"name": "there"}})).await;
    let csv = "to,name,when\n+15551230001,Ana,7 PM\n+15551230002,,8 PM\n+15551230003,Bo,\n";
    let form = reqwest::multipart::Form::new()
        .text("bot_id", bot.clone())
        .text("name", "Upload")
        .text("max_concurrency", "2")
        .text("window", r#"{"start": "00:00", "end": "24:00"}"#)
        .part(
            "rows",
            reqwest::multipart::Part::text(csv)
                .file_name("list.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let resp = app
        .client
        .post(app.url("/campaigns"))
        .header("x-api-key", &app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let c: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            c["name"].as_str(),
            c["max_concurrency"].as_u64(),
            c["status"].as_str()
        ),
        (Some("Upload"), Some(2), Some("running"))
    );
    assert_eq!(
        c["window"],
        json!({"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "24:00"})
    );
    let (_, page) = app
        .get(&app.api_key, &format!("/campaigns/{id}/rows"))
        .await;
    assert_eq!(
        page["rows"][1]["variables"],
        json!({"when": "8 PM"}),
        "an empty cell leaves the bot's default"
    );
    assert_eq!(page["rows"][2]["variables"], json!({"name": "Bo"}));
    // Another tenant sees nothing of it.
    let other = app.new_key("globex").await;
    assert_eq!(app.get(&other, &format!("/campaigns/{id}")).await.0, 404);
    assert_eq!(
        app.post_json(&other, &format!("/campaigns/{id}/pause"), &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&other, "/campaigns").await.1["campaigns"],
        json!([])
    );
    // Paused, nothing is dialled; resumed, it is; cancelled, the rest never rings.
    let (s, v) = app
        .post_json(&app.api_key, &format!("/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("paused")));
    let (s, v) = app
        .post_json(&app.api_key, &format!("/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("invalid_transition")),
        "{v}"
    );
    let mut dialer = Dialer::new(app.state.clone(), ManualClock::at("2026-12-03T03:00:00Z"));
    assert_eq!(dialer.pass().await.placed, 0, "a paused campaign dials");
    app.sim()
        .set_callee_script("+15551230001", common::short_call());
    app.post_json(&app.api_key, &format!("/campaigns/{id}/resume"), &json!({}))
        .await;
    assert_eq!(dialer.pass().await.placed, 2, "max_concurrency 2");
    let (s, v) = app
        .post_json(&app.api_key, &format!("/campaigns/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (s, v["counts"]["cancelled"].as_u64()),
        (200, Some(1)),
        "{v}"
    );
    let v = drive(&app, &mut dialer, &id, |c| c["counts"]["done"] == 2).await;
    assert_eq!(v.placed, 0);
    let (_, c) = app.get(&app.api_key, &format!("/campaigns/{id}")).await;
    assert_eq!(c["status"], "cancelled");
    let (s, v) = app
        .post_json(&app.api_key, &format!("/campaigns/{id}/resume"), &json!({}))
        .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("invalid_transition")));
    // The first row's call got its variables.
    let (_, page) = app
        .get(&app.api_key, &format!("/campaigns/{id}/rows?limit=1"))
        .await;
    let sid = page["rows"][0]["attempts"][0]["call_sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = common::call_view(&app, &sid).await;
    assert_eq!(call["variables"], json!({"name": "Ana", "when": "7 PM"}));
}
