//! Several instances on one store: limits held in the store hold across them (concurrent calls
//! per tenant, refused in `/voice` with a spoken line before answering; observer sockets per
//! user), and a live call is watched and supervised from an instance other than the one whose
//! engine holds it (the socket is relayed there); an observer's `user_id` filters, it grants nothing.

#![allow(clippy::unwrap_used)]

mod common;

use callbot_core::settings::StoreSettings;
use callbot_twilio_sim::twiml::{self, Verb};
use common::{TestApp, new_bot, sid, spawn_app_with};
use std::time::Duration;

async fn voice(app: &TestApp, bot: &str, call: &str, to: &str) -> Vec<Verb> {
    let r = app
        .twilio_post(
            &format!("/voice?bot_id={bot}"),
            &[("CallSid", call), ("From", "+15557654321"), ("To", to)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    twiml::parse(&r.text().await.unwrap()).unwrap()
}

/// Opens `/frontend-stream?{query}` with the tenant's key: the socket, or the refusal's status.
async fn observe(
    app: &TestApp,
    query: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!(
        "{}/frontend-stream?{query}",
        app.base.replace("http://", "ws://")
    );
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", app.api_key.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn concurrent_calls_per_tenant_hold_across_two_instances() {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.db");
    let limit = |db: std::path::PathBuf| {
        move |s: &mut callbot_core::settings::Settings| {
            s.store = StoreSettings::Sqlite { path: db };
            s.limits.max_calls_per_tenant = 2;
        }
    };
    let a = spawn_app_with(limit(db.clone())).await;
    let b = spawn_app_with(limit(db)).await;
    let (bot, number) = new_bot(&a).await;
    let (first, second) = (sid(), sid());
    assert!(matches!(
        voice(&a, &bot, &first, &number).await[0],
        Verb::ConnectStream { .. }
    ));
    assert!(matches!(
        voice(&b, &bot, &second, &number).await[0],
        Verb::ConnectStream { .. }
    ));
    // The third concurrent call, on either instance, is told so before it is answered.
    let third = voice(&a, &bot, &sid(), &number).await;
    assert!(
        matches!(third.as_slice(), [Verb::Say(t), Verb::Hangup] if t.contains("busy")),
        "{third:?}"
    );
    // A retried webhook of a call that holds a place is answered again.
    assert!(matches!(
        voice(&b, &bot, &first, &number).await[0],
        Verb::ConnectStream { .. }
    ));
    // The first call ends (Twilio's status callback): its place is free again.
    let r = a
        .twilio_post(
            "/voice/status",
            &[
                ("CallSid", first.as_str()),
                ("CallStatus", "completed"),
                ("SequenceNumber", "3"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(matches!(
        voice(&b, &bot, &sid(), &number).await[0],
        Verb::ConnectStream { .. }
    ));
    let (_, list) = a.get(&a.api_key, "/calls").await;
    assert_eq!(
        list["calls"].as_array().unwrap().len(),
        3,
        "refused calls leave no record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observer_sockets_are_limited_per_user_not_calls() {
    use callbot_twilio_sim::carrier::{Script, Step};
    let app = spawn_app_with(|s| s.limits.max_observers_per_user = 2).await;
    let (_, number) = new_bot(&app).await;
    // Four calls at once for one tenant: far from the call limit, all answered and live.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            app.sim()
                .dial(
                    "+15557654321",
                    &number,
                    Script {
                        steps: vec![Step::Silence(Duration::from_secs(20))],
                        hangup_when_done: true,
                    },
                )
                .unwrap()
        })
        .collect();
    let sid0 = calls[0].sid.clone();
    common::eventually(|| async {
        let (_, v) = app.get(&app.api_key, "/call/lists").await;
        (v["calls"].as_array()?.len() == 4).then_some(())
    })
    .await;
    let open = |sid: String| {
        let app = &app;
        async move { observe(app, &format!("callSid={sid}")).await }
    };
    // Wait until each call's engine holds it, then watch it: two observers, the third refused.
    let w1 = common::eventually(|| async { open(sid0.clone()).await.ok() }).await;
    let w2 = common::eventually(|| async { open(calls[1].sid.clone()).await.ok() }).await;
    assert_eq!(open(calls[2].sid.clone()).await.err(), Some(429));
    // Closing one frees its place.
    drop(w1);
    common::eventually(|| async { open(calls[2].sid.clone()).await.ok() }).await;
    drop(w2);
}

#[tokio::test]
async fn outbound_calls_count_against_the_same_limit() {
    use serde_json::json;
    let app = spawn_app_with(|s| s.limits.max_calls_per_tenant = 1).await;
    new_bot(&app).await;
    let body = json!({"user_id": "u1", "number": "+15551234567"});
    let (status, first) = common::outbound(&app, &app.api_key, body.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = common::outbound(&app, &app.api_key, body).await;
    assert_eq!(status, 429, "{second}");
    assert_eq!(second["code"], "too_many_calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_call_is_watched_and_supervised_from_another_instance() {
    use callbot_twilio_sim::carrier::Step;
    use common::callws;
    use serde_json::json;
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.db");
    let on = |db: std::path::PathBuf| {
        move |s: &mut callbot_core::settings::Settings| {
            s.store = StoreSettings::Sqlite { path: db };
        }
    };
    let a = spawn_app_with(on(db.clone())).await;
    let b = spawn_app_with(on(db)).await;
    let (_, number) = new_bot(&a).await;
    // The call reaches instance A (its carrier, its media stream, its engine).
    let call = common::dial(
        &a,
        &number,
        vec![
            common::wait_bot(),
            Step::Dtmf('7'),
            Step::Silence(Duration::from_secs(20)),
        ],
    );
    let sid = call.sid.clone();
    // Both watched and supervised through instance B.
    let watcher = common::observe(&b, &sid).await;
    let mut sup = common::eventually(|| async {
        callws::open(&b, &format!("/call?id={sid}"), Some(&b.api_key))
            .await
            .ok()
    })
    .await;
    // Another tenant, or a forged relay header, gets nowhere.
    let other = b.new_key("globex").await;
    assert_eq!(
        callws::open(&b, &format!("/call?id={sid}"), Some(&other))
            .await
            .err(),
        Some(404)
    );
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("{}/call?id={sid}", a.base.replace("http://", "ws://"));
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert(
            "x-callbot-relay",
            "cbt_0123456789abcdefghijklmnopqrstuvwxyzABCD"
                .parse()
                .unwrap(),
        );
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
            other => panic!("a forged relay ticket was accepted: {:?}", other.is_ok()),
        }
    }
    // Events of the call on A arrive through B; B's commands act on the call on A.
    sup.wait("dtmf", |e| e["digit"] == "7").await;
    sup.say_and_wait("Watched from another instance.").await;
    sup.send(json!({"command": "hangup", "reason": "supervisor"}))
        .await;
    sup.wait("hangup", |_| true).await;
    let seen = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the relayed observer socket closes when the call ends")
        .unwrap();
    let names: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(names.contains(&"dtmf"), "{names:?}");
    assert_eq!(names.last(), Some(&"hangup"), "{names:?}");
    let v = common::finished_call(&a, &sid).await;
    assert!(
        v["turns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["bot_text"] == "Watched from another instance."),
        "{v}"
    );
    // Once the call has ended it is live nowhere.
    assert_eq!(
        callws::open(&b, &format!("/call?id={sid}"), Some(&b.api_key))
            .await
            .err(),
        Some(404)
    );
}

/// `user_id` on `/frontend-stream` is a filter, not a permission: it narrows the socket to that
/// end user's call; the tenant's key watches any of its calls without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_observer_user_id_filters_and_grants_nothing() {
    use serde_json::json;
    let app = spawn_app_with(|_| {}).await;
    new_bot(&app).await;
    let (status, v) = common::outbound(
        &app,
        &app.api_key,
        json!({"user_id": "u1", "number": "+15551234567"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sid = v["callSid"].as_str().unwrap().to_owned();
    let open = |query: String| {
        let app = &app;
        async move { observe(app, &query).await }
    };
    // The callee answers and the engine holds the call; its own user watches it.
    let mine =
        common::eventually(|| async { open(format!("callSid={sid}&user_id=u1")).await.ok() }).await;
    // Another user's filter does not match: the same answer as for a call that is not live.
    assert_eq!(
        open(format!("callSid={sid}&user_id=u2")).await.err(),
        Some(404)
    );
    // Without a filter, the tenant's key watches it: user_id never was the permission.
    assert!(open(format!("callSid={sid}")).await.is_ok());
    drop(mine);
}
