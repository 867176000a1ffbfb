//! Telephony end to end through the Twilio simulator: numbers bought and released, `/voice`
//! TwiML and its signed stream token, the media-stream handshake, status callbacks, daily
//! quotas and tenant isolation of call records (outbound calls: `outbound_calls.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use callbot_core::twilio::stream_token;
use callbot_twilio_sim::carrier::Event;
use callbot_twilio_sim::twiml::{self, Verb};
use callbot_twilio_sim::{Fault, Op, events_until_end};
use common::{
    TestApp, bot_body, call_status, call_view, eventually, new_bot, short_call, sid, spawn_app,
    spawn_app_with,
};
use serde_json::{Value, json};
use std::time::Duration;

const CALLER: &str = "+15557654321";
const CALLEE: &str = "+15552223333";

/// The verbs of a `/voice` answer.
async fn voice(app: &TestApp, bot: &str, call_sid: &str, to: &str) -> Vec<Verb> {
    let r = app
        .twilio_post(
            &format!("/voice?bot_id={bot}"),
            &[
                ("CallSid", call_sid),
                ("From", CALLER),
                ("To", to),
                ("Direction", "inbound"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    twiml::parse(&r.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn inbound_call_is_answered_with_a_signed_stream_and_recorded() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    let mut call = app.sim().dial(CALLER, &number, short_call()).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(10)).await;

    let twiml_text = events
        .iter()
        .find_map(|e| match e {
            Event::Answered { twiml } => Some(twiml.clone()),
            _ => None,
        })
        .expect("the answer URL returned TwiML");
    let verbs = twiml::parse(&twiml_text).unwrap();
    let [Verb::ConnectStream { url, parameters }, Verb::Hangup] = verbs.as_slice() else {
        panic!("expected <Connect><Stream> then <Hangup/>: {twiml_text}");
    };
    assert_eq!(
        url,
        &format!("{}/stream/{bot}", app.state.settings.stream_base())
    );
    let token = &parameters.iter().find(|(k, _)| k == "token").unwrap().1;
    let now = callbot_core::time_fmt::now().unix_timestamp();
    let claims = stream_token::verify(app.twilio_token().as_bytes(), token, now).unwrap();
    assert_eq!(
        (claims.bot.as_str(), claims.call.as_str()),
        (bot.as_str(), call.sid.as_str())
    );
    assert!(claims.expires_at <= now + stream_token::TOKEN_TTL_SECS);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StreamStarted { .. })),
        "the stream service accepted the signed handshake: {events:?}"
    );
    assert!(events.contains(&Event::Ended {
        status: "completed".into(),
        duration_secs: 0
    }));

    let sid = call.sid.clone();
    let view = eventually(|| {
        let app = &app;
        let sid = sid.clone();
        async move {
            let v = call_view(app, &sid).await;
            (v["status"] == "completed").then_some(v)
        }
    })
    .await;
    assert_eq!(view["direction"], "inbound");
    assert_eq!(view["from"], CALLER);
    assert_eq!(view["to"], number.as_str());
    assert_eq!(view["bot_id"], bot.as_str());
    assert!(
        view["ended_at"].is_string() && view["duration"].is_number(),
        "{view}"
    );
    let (_, list) = app.get(&app.api_key, &format!("/calls?bot_id={bot}")).await;
    assert_eq!(list["calls"][0]["sid"], sid.as_str());
    let (_, bots) = app.get(&app.api_key, "/bots").await;
    assert_eq!(bots[0]["calls_today"], 1);
}

#[tokio::test]
async fn webhooks_and_streams_need_a_valid_twilio_signature() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    let path = format!("/voice?bot_id={bot}");
    let form = [
        ("CallSid", "CA5f0e1d2c3b4a59687766554433221100"),
        ("To", number.as_str()),
    ];
    let unsigned = app
        .client
        .post(app.url(&path))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");
    let forged = app
        .client
        .post(app.url(&path))
        .header("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Signed for another URL (a different bot): refused.
    let other = app.url("/voice?bot_id=bot_00000000000000000000000000000000");
    assert_eq!(
        app.twilio_post(&path, &form, Some(&other)).await.status(),
        403
    );
    assert_eq!(
        app.twilio_post("/voice/status", &[("CallSid", &sid())], Some(&other))
            .await
            .status(),
        403
    );
    // A forged media-stream handshake never gets upgraded.
    let ws_url = format!("{}/stream/{bot}", app.state.settings.stream_base());
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut().insert(
        "x-twilio-signature",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("forged handshake was not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn behind_a_proxy_the_public_url_is_what_is_signed() {
    let app = spawn_app_with(|s| {
        s.public_base_url = Some("https://calls.example.com".parse().unwrap());
        s.stream_base_url = Some("wss://media.example.com".parse().unwrap());
    })
    .await;
    // Bots are created through the simulator reached directly, not via the public URL.
    let (bot, number) = new_bot(&app).await;
    assert_eq!(
        app.sim().number(&number).unwrap().voice_url.unwrap(),
        format!("https://calls.example.com/voice?bot_id={bot}")
    );
    let path = format!("/voice?bot_id={bot}");
    let form = [
        ("CallSid", "CA5f0e1d2c3b4a59687766554433221100"),
        ("To", number.as_str()),
    ];
    let public = format!("https://calls.example.com{path}");
    let r = app.twilio_post(&path, &form, Some(&public)).await;
    assert_eq!(r.status(), 200);
    let verbs = twiml::parse(&r.text().await.unwrap()).unwrap();
    assert!(
        matches!(&verbs[0], Verb::ConnectStream { url, .. } if url == &format!("wss://media.example.com/stream/{bot}"))
    );
    // Twilio adds the default port sometimes: both forms are accepted.
    let with_port = format!("https://calls.example.com:443{path}");
    let form2 = [
        ("CallSid", "CA5f0e1d2c3b4a59687766554433221101"),
        ("To", number.as_str()),
    ];
    assert_eq!(
        app.twilio_post(&path, &form2, Some(&with_port))
            .await
            .status(),
        200
    );
    // The internal URL is not what Twilio signed.
    assert_eq!(app.twilio_post(&path, &form, None).await.status(), 403);
}

#[tokio::test]
async fn unknown_paused_and_over_quota_bots_get_a_short_goodbye() {
    let app = spawn_app_with(|s| s.limits.calls_per_bot_per_day = 2).await;
    let (bot, number) = new_bot(&app).await;
    let first = sid();
    assert!(matches!(
        voice(&app, &bot, &first, &number).await[0],
        Verb::ConnectStream { .. }
    ));
    assert!(matches!(
        voice(&app, &bot, &sid(), &number).await[0],
        Verb::ConnectStream { .. }
    ));
    // Twilio retrying the first webhook gets the same answer and is not counted again.
    assert!(matches!(
        voice(&app, &bot, &first, &number).await[0],
        Verb::ConnectStream { .. }
    ));
    let over = voice(&app, &bot, &sid(), &number).await;
    assert!(
        matches!(over.as_slice(), [Verb::Say(t), Verb::Hangup] if t.contains("limit")),
        "{over:?}"
    );
    let (_, bots) = app.get(&app.api_key, "/bots").await;
    assert_eq!(bots[0]["calls_today"], 2);
    let (_, list) = app.get(&app.api_key, "/calls").await;
    assert_eq!(
        list["calls"].as_array().unwrap().len(),
        2,
        "refused calls leave no record"
    );

    let unknown = voice(
        &app,
        "bot_00000000000000000000000000000000",
        &sid(),
        &number,
    )
    .await;
    assert!(matches!(unknown.as_slice(), [Verb::Say(_), Verb::Hangup]));
    let garbage = voice(&app, "../etc", &sid(), &number).await;
    assert!(matches!(garbage.as_slice(), [Verb::Say(_), Verb::Hangup]));

    let (bot2, number2) = new_bot(&app).await;
    let r = app
        .client
        .patch(app.url(&format!("/bots/{bot2}")))
        .header("x-api-key", &app.api_key)
        .json(&json!({"status": "paused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let paused = voice(&app, &bot2, &sid(), &number2).await;
    assert!(matches!(paused.as_slice(), [Verb::Say(_), Verb::Hangup]));
    app.client
        .delete(app.url(&format!("/bots/{bot2}")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    let deleted = voice(&app, &bot2, &sid(), &number2).await;
    assert!(matches!(deleted.as_slice(), [Verb::Say(_), Verb::Hangup]));
}

#[tokio::test]
async fn status_callbacks_never_move_a_call_backwards() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    let call = sid();
    voice(&app, &bot, &call, &number).await;
    let status =
        |s: &'static str, seq: &'static str, extra: Option<(&'static str, &'static str)>| {
            let app = &app;
            let call = call.clone();
            async move {
                let mut p = vec![
                    ("CallSid", call.as_str()),
                    ("CallStatus", s),
                    ("SequenceNumber", seq),
                ];
                p.extend(extra);
                app.twilio_post("/voice/status", &p, None)
                    .await
                    .status()
                    .as_u16()
            }
        };
    // The completed callback overtakes the earlier ones.
    assert_eq!(
        status("completed", "3", Some(("CallDuration", "42"))).await,
        204
    );
    assert_eq!(status("ringing", "1", None).await, 204);
    assert_eq!(status("in-progress", "2", None).await, 204);
    assert_eq!(status("busy", "4", None).await, 204);
    let v = call_view(&app, &call).await;
    assert_eq!(
        (v["status"].as_str(), v["duration"].as_u64()),
        (Some("completed"), Some(42))
    );
    assert!(v["ended_at"].is_string());
    assert_eq!(status("exploded", "5", None).await, 400);
    assert_eq!(status("ringing", "x", None).await, 400);
    // An unknown call is acknowledged (Twilio does not retry) and changes nothing.
    let r = app
        .twilio_post(
            "/voice/status",
            &[("CallSid", &sid()), ("CallStatus", "ringing")],
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn failed_purchases_leave_no_bot_and_no_number() {
    let app = spawn_app().await;
    let sim = app.sim();
    sim.inject(Fault {
        op: Op::Search,
        status: 401,
        code: 20003,
    });
    let (status, body) = app.create_bot(&app.api_key, bot_body()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(
        !body["error"].as_str().unwrap().contains("20003"),
        "no provider internals leak"
    );
    sim.inject(Fault {
        op: Op::Buy,
        status: 500,
        code: 20500,
    });
    let (status, _) = app.create_bot(&app.api_key, bot_body()).await;
    assert_eq!(status, 503);
    let mut no_numbers = bot_body();
    no_numbers["area_code"] = json!("000");
    let (status, body) = app.create_bot(&app.api_key, no_numbers).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("no_numbers")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("no phone numbers"),
        "{body}"
    );
    let mut area = bot_body();
    area["area_code"] = json!("415");
    let (status, body) = app.create_bot(&app.api_key, area).await;
    assert_eq!(status, 201);
    assert!(
        body["number"].as_str().unwrap().starts_with("+1415"),
        "{body}"
    );
    assert_eq!(sim.numbers().len(), 1);
    let (_, bots) = app.get(&app.api_key, "/bots").await;
    assert_eq!(bots.as_array().unwrap().len(), 1);

    // Concurrent retries with one Idempotency-Key: each buys a number, one bot wins, the
    // losers' numbers are released again.
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (c, url, key) = (app.client.clone(), app.url("/bots"), app.api_key.clone());
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", key)
                    .header("idempotency-key", "same-request")
                    .json(&bot_body())
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        sim.numbers().len(),
        2,
        "every number but the winner's was released"
    );
}

#[tokio::test]
async fn call_records_are_tenant_scoped() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    let call = sid();
    voice(&app, &bot, &call, &number).await;
    let other = app.new_key("globex").await;
    assert_eq!(app.get(&other, &format!("/calls/{call}")).await.0, 404);
    let (status, list) = app.get(&other, "/calls").await;
    assert_eq!(
        (status, list["calls"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    assert_eq!(
        app.get(&other, &format!("/calls?bot_id={bot}")).await.1["calls"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(call_status(&app, &other, &call, "u").await.0, 404);
    assert_eq!(
        app.post_json(
            &other,
            "/end-call",
            &json!({"callSid": call, "user_id": "u"})
        )
        .await
        .0,
        404
    );
    assert_eq!(app.get(&app.api_key, "/calls?cursor=bogus").await.0, 400);
    assert_eq!(app.get(&app.api_key, "/calls?status=sleeping").await.0, 400);
    assert_eq!(app.get(&app.api_key, "/calls?limit=0").await.0, 400);
    assert_eq!(app.get(&app.api_key, "/calls?date=yesterday").await.0, 400);
    // The day filter: today's calls, none on a day long gone.
    let today = callbot_core::time_fmt::day_key(callbot_core::time_fmt::now());
    let (status, on_day) = app
        .get(&app.api_key, &format!("/calls?date={today}&limit=1"))
        .await;
    assert_eq!(status, 200, "{on_day}");
    assert_eq!(on_day["calls"].as_array().unwrap().len(), 1, "{on_day}");
    let (_, old) = app.get(&app.api_key, "/calls?date=2000-01-01").await;
    assert!(old["calls"].as_array().unwrap().is_empty(), "{old}");
    assert!(old["next_cursor"].is_null());
    assert_eq!(app.get(&app.api_key, "/calls/not-a-sid").await.0, 404);
    let resp = app.client.get(app.url("/calls")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_simulator_refuses_what_twilio_refuses() {
    let app = spawn_app().await;
    let sim = app.sim();
    let base = format!(
        "{}/_sim/twilio/2010-04-01/Accounts/{}",
        app.base,
        sim.account_sid()
    );
    let token = app.twilio_token();
    let c = &app.client;
    let r = c
        .get(format!("{base}/IncomingPhoneNumbers.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        (err["code"].as_u64(), err["status"].as_u64()),
        (Some(20003), Some(401))
    );
    assert!(err["more_info"].as_str().unwrap().ends_with("/20003"));
    let wrong = c
        .get(format!("{base}/IncomingPhoneNumbers.json"))
        .basic_auth(sim.account_sid(), Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let json_body = c
        .post(format!("{base}/IncomingPhoneNumbers.json"))
        .basic_auth(sim.account_sid(), Some(&token))
        .json(&json!({"PhoneNumber": "+15555550100"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let unknown = c
        .post(format!("{base}/IncomingPhoneNumbers.json"))
        .basic_auth(sim.account_sid(), Some(&token))
        .form(&[("PhoneNumber", "+15555550100"), ("VoiceURL", "https://x")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let e: Value = unknown.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("VoiceURL"), "{e}");
    let other_account = base.replace(sim.account_sid(), "AC00000000000000000000000000000000");
    let r = c
        .get(format!("{other_account}/IncomingPhoneNumbers.json"))
        .basic_auth(sim.account_sid(), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{base}/Calls.json"))
        .basic_auth(sim.account_sid(), Some(&token))
        .form(&[
            ("To", CALLEE),
            ("From", "+15550000000"),
            ("Url", "https://x/y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "From must be a number of the account");
    assert!(
        sim.numbers().is_empty(),
        "nothing was bought by refused requests"
    );
}

/// A simulator on its own port, like api.twilio.com, with an API key.
async fn standalone_twilio() -> (callbot_twilio_sim::Sim, String) {
    let sim = callbot_twilio_sim::Sim::new(
        "AC11111111111111111111111111111111",
        "account-auth-token",
        None,
    );
    sim.add_api_key("SK22222222222222222222222222222222", "api-key-secret");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = callbot_twilio_sim::rest::router(sim.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (sim, base)
}

#[tokio::test]
async fn twilio_mode_with_an_api_key_buys_answers_and_releases() {
    use callbot_core::settings::{TelephonySettings, TwilioCredentials};
    use secrecy::SecretString;
    let (sim, api_base) = standalone_twilio().await;
    let app = spawn_app_with(|s| {
        s.telephony = TelephonySettings::Twilio {
            account_sid: "AC11111111111111111111111111111111".into(),
            credentials: TwilioCredentials::Inline {
                auth_token: SecretString::from("account-auth-token".to_owned()),
                api_key: Some((
                    "SK22222222222222222222222222222222".into(),
                    SecretString::from("api-key-secret".to_owned()),
                )),
            },
            api_base,
        };
    })
    .await;
    assert!(app.sim.is_none(), "no embedded simulator in Twilio mode");
    let (bot, number) = new_bot(&app).await;
    assert!(sim.number(&number).is_some());
    // Webhooks are signed with the account's auth token, not the API key secret.
    let mut call = sim.dial(CALLER, &number, short_call()).unwrap();
    let events = events_until_end(&mut call, Duration::from_secs(10)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StreamStarted { .. })),
        "{events:?}"
    );
    assert_eq!(call_view(&app, &call.sid).await["bot_id"], bot.as_str());
    let r = app
        .client
        .delete(app.url(&format!("/bots/{bot}")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.number(&number).is_none());
}

/// Opens a media stream the way Twilio does (signed handshake, `connected`, `start` with the
/// TwiML's parameters) and returns the first thing the stream service sends back: a message, or
/// the close frame's code and reason.
async fn stream_once(
    app: &TestApp,
    verbs: &[Verb],
    call_sid: &str,
) -> Result<String, (u16, String)> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = common::open_media_stream(app, verbs, call_sid).await;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the stream service answered");
    match first {
        Some(Ok(Message::Text(t))) => Ok(t.to_string()),
        Some(Ok(Message::Close(Some(f)))) => Err((f.code.into(), f.reason.to_string())),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_opens_one_stream_for_a_call_that_has_not_ended() {
    let app = spawn_app().await;
    let (bot, number) = new_bot(&app).await;
    let call = sid();
    let verbs = voice(&app, &bot, &call, &number).await;
    // The first stream is the call: the greeting starts.
    let first = stream_once(&app, &verbs, &call).await.unwrap();
    assert!(first.contains("\"event\""), "{first}");
    // The same token again (a replay while the call is live) is refused.
    let (code, reason) = stream_once(&app, &verbs, &call).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("used already"), "{reason}");

    // A call that has ended takes no stream, even with a fresh token.
    let ended = sid();
    let verbs = voice(&app, &bot, &ended, &number).await;
    let r = app
        .twilio_post(
            "/voice/status",
            &[
                ("CallSid", ended.as_str()),
                ("CallStatus", "completed"),
                ("SequenceNumber", "9"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let (code, reason) = stream_once(&app, &verbs, &ended).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("completed"), "{reason}");
}
