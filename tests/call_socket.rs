//! `wss /call`: calls driven over a WebSocket with RustPBX's commands and events — a call to a bot
//! with the audio in the socket (PCMU and PCM 16 kHz), every command and the events they cause,
//! bad commands answered with `error` events while the call goes on, tickets (single use,
//! expiring, bound to a purpose), and supervisor mode on a live phone call, refused to other
//! tenants. The engine is the one phone calls use (instant speech stand-ins).

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::apikey::KeyHash;
use callbot_core::domain::TenantId;
use callbot_core::store::TicketPurpose;
use callbot_stream::speech::instant::voiced_tone;
use callbot_twilio_sim::carrier::{Event, Step};
use common::callws::{self, CallClient};
use common::hook::{self, Answer, Hook};
use common::{TestApp, spawn_app_with};
use serde_json::{Value, json};
use std::time::Duration;

async fn app_and_bot() -> (TestApp, Hook, String, String) {
    let app = spawn_app_with(|s| {
        s.calls.end_silence = Duration::from_millis(400);
        s.calls.webhook_timeout = Duration::from_millis(1500);
    })
    .await;
    let hook = hook::start(|req| {
        Answer::Json(
            json!({"say": format!("You said {}.", req["user_text"].as_str().unwrap_or(""))}),
        )
    })
    .await;
    let body = json!({"goal": "Take reservations", "webhook": hook.url, "voice": "local:en-us",
        "first_message": "Hello from the bot.", "transfer_numbers": ["+15550102222"]});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let id = b["id"].as_str().unwrap().to_owned();
    let number = b["number"].as_str().unwrap().to_owned();
    (app, hook, id, number)
}

/// One utterance: 900 ms of voiced sound, then enough silence to end the turn.
fn utterance() -> Vec<u8> {
    let mut a = voiced_tone(900);
    a.extend(std::iter::repeat_n(0xFF, 8 * 700));
    a
}

fn is_reply(e: &Value, turn: u32) -> bool {
    e["trackId"] == format!("reply-{turn}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_over_the_socket_runs_like_a_phone_call() {
    let (app, hook, bot, _) = app_and_bot().await;
    let mut c = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    let answer = c
        .invite(json!({"callee": bot, "caller": "tester", "codec": "pcmu"}))
        .await;
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    assert_eq!(answer["trackId"], sid.as_str());
    assert_eq!(answer["codec"], "pcmu");
    // The greeting plays as PCMU frames of 20 ms.
    c.wait("trackStart", |e| is_reply(e, 0)).await;
    c.wait("trackEnd", |e| is_reply(e, 0)).await;
    assert!(c.audio.lock().unwrap().len() >= 160 * 20, "greeting audio");
    assert!(c.frame_sizes.lock().unwrap().iter().all(|&n| n == 160));

    // RustPBX's live list shows it as a websocket call.
    let (_, live) = app.get(&app.api_key, "/call/lists").await;
    let entry = live["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == sid.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(entry["call_type"], "websocket");
    assert_eq!(entry["option"]["caller"], "tester");

    // The caller speaks: VAD, recognition, the webhook, the reply — as on the phone.
    c.send_audio(&utterance(), 160).await;
    c.wait("speaking", |_| true).await;
    c.wait("silence", |_| true).await;
    let fin = c.wait("asrFinal", |_| true).await;
    let heard = fin["text"].as_str().unwrap().to_owned();
    assert!(heard.starts_with("utterance of"), "{fin}");
    c.wait("trackEnd", |e| is_reply(e, 1)).await;
    c.wait("metrics", |e| e["key"] == "ttfb.turn").await;
    assert_eq!(hook.requests()[0].body["user_text"], heard.as_str());

    // Bad commands: an error event each, and the call goes on.
    c.send_raw("not json").await;
    c.send(json!({"command": "dance"})).await;
    c.send(json!({"command": "tts"})).await;
    c.send(json!({"command": "tts", "text": 5})).await;
    c.send(json!({"command": "mute", "trackId": "nobody"}))
        .await;
    c.send(json!({"command": "refer", "target": "+15550102222"}))
        .await;
    c.send(json!({"command": "pause"})).await;
    c.send(json!({"command": "invite", "option": {"callee": bot}}))
        .await;
    for want in [
        "invalid_json",
        "unknown_command",
        "tts: missing field `text`",
        "invalid type",
        "unknown trackId",
        "refer needs a phone leg",
        "pause is not supported",
        "already in a call",
    ] {
        c.wait("error", |e| e["error"].as_str().unwrap().contains(want))
            .await;
    }

    // tts speaks a line; history adds one; mute/unmute are accepted.
    c.send(json!({"command": "history", "speaker": "user", "text": "I prefer the terrace."}))
        .await;
    c.send(json!({"command": "mute", "trackId": "caller"}))
        .await;
    c.send(json!({"command": "unmute", "trackId": "caller"}))
        .await;
    c.send(json!({"command": "tts", "text": "An operator line that is long enough to be interrupted while it plays.", "playId": "op-1"}))
        .await;
    c.wait("trackStart", |e| is_reply(e, 2)).await;
    // interrupt cuts it where it was.
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.send(json!({"command": "interrupt"})).await;
    let cut = c.wait("interruption", |e| is_reply(e, 2)).await;
    assert!(cut["position"].as_u64().unwrap() > 0, "{cut}");
    // A streamed tts: spoken per sentence, the rest at endOfStream, then the call hangs up.
    c.send(json!({"command": "tts", "text": "Thanks for ", "streaming": true, "playId": "s"}))
        .await;
    c.send(json!({"command": "tts", "text": "calling. Good", "streaming": true, "playId": "s"}))
        .await;
    c.send(json!({"command": "tts", "text": "bye.", "streaming": true, "endOfStream": true, "playId": "s", "autoHangup": true}))
        .await;
    let hangup = c.wait("hangup", |_| true).await;
    assert_eq!(hangup["reason"], "bot_hangup", "{hangup}");
    c.closed().await;

    let call = common::finished_call(&app, &sid).await;
    assert_eq!(call["channel"], "websocket");
    assert_eq!(call["status"], "completed");
    let turns = call["turns"].as_array().unwrap();
    let bot_lines: Vec<&str> = turns
        .iter()
        .map(|t| t["bot_text"].as_str().unwrap_or(""))
        .collect();
    assert!(
        turns.iter().any(|t| t["user_text"] == heard.as_str()),
        "{call}"
    );
    assert!(bot_lines.contains(&"Thanks for calling."), "{bot_lines:?}");
    assert!(bot_lines.contains(&"Goodbye."), "{bot_lines:?}");
    let interrupted = turns
        .iter()
        .find(|t| t["interrupted"] == true)
        .unwrap_or_else(|| panic!("{call}"));
    assert!(
        interrupted["bot_text"].as_str().unwrap().len()
            < interrupted["bot_text_full"].as_str().unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pcm_16k_audio_in_the_socket_and_a_hangup_command() {
    let (app, _hook, _, number) = app_and_bot().await;
    let mut c = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    // The bot by its number this time.
    let answer = c.invite(json!({"callee": number, "codec": "pcm"})).await;
    assert_eq!(answer["codec"], "pcm");
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    c.wait("trackEnd", |e| is_reply(e, 0)).await;
    assert!(c.frame_sizes.lock().unwrap().iter().all(|&n| n == 640));
    // The caller's utterance as 16-bit 16 kHz PCM.
    let pcm16: Vec<u8> = utterance()
        .iter()
        .flat_map(|&b| {
            let s = callbot_stream::audio::g711::decode_sample(b);
            [s, s]
        })
        .flat_map(i16::to_le_bytes)
        .collect();
    c.send_audio(&pcm16, 640).await;
    let fin = c.wait("asrFinal", |_| true).await;
    // 900 ms of voice, give or take the endpointer's edges.
    let ms: u64 = fin["text"].as_str().unwrap()["utterance of ".len()..]
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!((800..1400).contains(&ms), "{fin}");
    c.send(json!({"command": "hangup", "reason": "done", "initiator": "tester"}))
        .await;
    let h = c.wait("hangup", |_| true).await;
    assert_eq!(
        (h["reason"].as_str(), h["initiator"].as_str()),
        (Some("done"), Some("tester"))
    );
    c.closed().await;
    let call = common::finished_call(&app, &sid).await;
    assert_eq!(call["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_are_single_use_expire_and_open_only_their_purpose() {
    let (app, _hook, bot, _) = app_and_bot().await;
    // No credentials, a wrong key, or a key in the URL: refused before the upgrade.
    assert_eq!(callws::open(&app, "/call", None).await.err(), Some(401));
    assert_eq!(
        callws::open(&app, "/call", Some("cb_wrongwrongwrong"))
            .await
            .err(),
        Some(401)
    );
    let url = format!("/call?api_key={}", app.api_key);
    assert_eq!(callws::open(&app, &url, None).await.err(), Some(401));
    // The observer socket refuses a key in the URL outright (it used to take one).
    let url = format!(
        "/frontend-stream?callSid=CA00000000000000000000000000000001&api_key={}",
        app.api_key
    );
    assert_eq!(callws::open(&app, &url, None).await.err(), Some(400));

    let t = callws::ticket(&app, &app.api_key, "call").await;
    let mut c = callws::open(&app, &format!("/call?ticket={t}"), None)
        .await
        .unwrap();
    let answer = c.invite(json!({"callee": bot})).await;
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    // Used once: gone.
    assert_eq!(
        callws::open(&app, &format!("/call?ticket={t}"), None)
            .await
            .err(),
        Some(401)
    );
    // An observer ticket does not open a call.
    let o = callws::ticket(&app, &app.api_key, "observe").await;
    assert_eq!(
        callws::open(&app, &format!("/call?ticket={o}"), None)
            .await
            .err(),
        Some(401)
    );
    // An expired ticket.
    let (raw, hash) = callbot_core::store::new_ticket();
    app.state
        .store
        .put_ticket(
            &hash,
            &TenantId::parse("acme").unwrap(),
            &TicketPurpose::Call,
            callbot_stream::engine::events::now_ms() - 1,
        )
        .await
        .unwrap();
    assert_eq!(KeyHash::of(&raw), hash);
    assert_eq!(
        callws::open(&app, &format!("/call?ticket={raw}"), None)
            .await
            .err(),
        Some(401)
    );
    // The call is killed through the REST API like a phone call.
    let (status, killed) = app
        .post_json(&app.api_key, &format!("/call/kill/{sid}"), &json!({}))
        .await;
    assert_eq!(status, 200, "{killed}");
    let h = c.wait("hangup", |_| true).await;
    assert_eq!(h["reason"], "killed");
    c.closed().await;
    // Bad ticket requests.
    // Only the purposes clients present: the platform's own (stream tokens, relays) are refused.
    for purpose in ["admin", "stream", "relay"] {
        let (status, body) = app
            .post_json(&app.api_key, "/call/tickets", &json!({"purpose": purpose}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_purpose")),
            "{purpose}"
        );
    }
    let (status, _) = app
        .post_json("cb_nobodynobody", "/call/tickets", &json!({}))
        .await;
    assert_eq!(status, 401);

    // Invites that cannot start a call: an error, a hangup, a close.
    for (option, want) in [
        (json!({}), "callee is required"),
        (
            json!({"callee": "bot_0123456789abcdef0123456789abcdef"}),
            "no bot",
        ),
        (json!({"callee": "someone"}), "neither a bot id"),
        (json!({"callee": "+15559999999"}), "no bot"),
        (json!({"callee": bot, "codec": "g729"}), "codec"),
    ] {
        let mut c = callws::open(&app, "/call", Some(&app.api_key))
            .await
            .unwrap();
        c.send(json!({"command": "tts", "text": "too early"})).await;
        c.wait("error", |e| {
            e["error"].as_str().unwrap().contains("invite first")
        })
        .await;
        c.send(json!({"command": "invite", "option": option})).await;
        c.wait("error", |e| e["error"].as_str().unwrap().contains(want))
            .await;
        c.wait("hangup", |e| e["reason"] == "invite_failed").await;
        c.closed().await;
    }
    // Another tenant's bot is "no bot" to this tenant.
    let other = app.new_key("globex").await;
    let mut c = callws::open(&app, "/call", Some(&other)).await.unwrap();
    c.send(json!({"command": "invite", "option": {"callee": bot}}))
        .await;
    c.wait("error", |e| e["code"] == 404).await;
    drop(c);
    // The WebRTC endpoint needs an offer.
    let mut c = callws::open(&app, "/call/webrtc", Some(&app.api_key))
        .await
        .unwrap();
    c.send(json!({"command": "invite", "option": {"callee": bot}}))
        .await;
    c.wait("error", |e| e["error"].as_str().unwrap().contains("offer"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisor_speaks_into_a_phone_call_and_transfers_it() {
    let (app, _hook, _, number) = app_and_bot().await;
    let mut call = common::dial(
        &app,
        &number,
        vec![
            common::wait_bot(),
            Step::Dtmf('5'),
            Step::Silence(Duration::from_secs(20)),
        ],
    );
    let sid = call.sid.clone();
    // The store lists the call as soon as `/voice` answers it.
    common::eventually(|| async {
        let (_, v) = app.get(&app.api_key, "/call/lists").await;
        v["calls"]
            .as_array()?
            .iter()
            .any(|c| c["id"] == sid.as_str() && c["call_type"] == "twilio")
            .then_some(())
    })
    .await;
    // Ids must be call sids.
    assert_eq!(
        callws::open(&app, "/call?id=bogus", Some(&app.api_key))
            .await
            .err(),
        Some(400)
    );
    // The engine holds it once Twilio's media stream has connected, a moment later: until then
    // the supervisor socket answers 404 like for any call that is not live.
    let mut sup: CallClient = common::eventually(|| async {
        callws::open(&app, &format!("/call?id={sid}"), Some(&app.api_key))
            .await
            .ok()
    })
    .await;
    // Another tenant cannot attach to the call the engine now holds.
    let other = app.new_key("globex").await;
    assert_eq!(
        callws::open(&app, &format!("/call?id={sid}"), Some(&other))
            .await
            .err(),
        Some(404)
    );
    tickets_open_only_the_call_they_name(&app, &sid, &other).await;
    sup.wait("dtmf", |e| e["digit"] == "5").await;
    // The keypress's reply ends first (it may be playing as the supervisor attaches).
    sup.say_and_wait("A supervisor is on the line.").await;
    sup.send(json!({"command": "invite", "option": {}})).await;
    sup.wait("error", |e| {
        e["error"].as_str().unwrap().contains("supervisor")
    })
    .await;
    // Only to the numbers the bot declares.
    sup.send(json!({"command": "refer", "target": "+19005550123"}))
        .await;
    sup.wait("error", |e| {
        e["code"] == 403 && e["error"].as_str().unwrap().contains("transfer_numbers")
    })
    .await;
    sup.send(json!({"command": "refer", "target": "tel:+15550102222", "options": {"timeout": 20}}))
        .await;
    let h = sup.wait("hangup", |_| true).await;
    assert_eq!(h["reason"], "transferred");
    let events = callbot_twilio_sim::events_until_end(&mut call, Duration::from_secs(20)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Dialed(n) if n == "+15550102222")),
        "{events:?}"
    );
    let v = common::finished_call(&app, &sid).await;
    assert!(
        v["turns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["bot_text"] == "A supervisor is on the line."),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn play_fetches_a_wav_into_the_call_and_reports_what_it_cannot_play() {
    let (app, _hook, bot, _) = app_and_bot().await;
    // A file server: one second of a 16 kHz tone as WAV, and a file that is not audio.
    let tone: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 9000.0) as i16)
        .collect();
    let wav = callbot_stream::audio::wav::write_mono(&tone, 16_000);
    let files = axum::Router::new()
        .route(
            "/hello.wav",
            axum::routing::get(move || {
                let wav = wav.clone();
                async move { ([("content-type", "audio/wav")], wav) }
            }),
        )
        .route("/notes.txt", axum::routing::get(|| async { "not audio" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, files).await });

    let mut c = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    let answer = c.invite(json!({"callee": bot})).await;
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    c.wait("trackEnd", |e| is_reply(e, 0)).await;
    let before = c.audio.lock().unwrap().len();
    c.send(json!({"command": "play", "url": format!("{base}/hello.wav")}))
        .await;
    let end = c.wait("trackEnd", |e| is_reply(e, 1)).await;
    let ms = end["duration"].as_u64().unwrap();
    assert!((1000..=1040).contains(&ms), "one second of audio: {end}");
    let played = c.audio.lock().unwrap().len() - before;
    assert!((7_900..=8_400).contains(&played), "{played} bytes of PCMU");
    c.send(json!({"command": "play", "url": format!("{base}/notes.txt")}))
        .await;
    c.wait("error", |e| {
        e["error"].as_str().unwrap().contains("not a playable file")
    })
    .await;
    c.send(json!({"command": "play", "url": format!("{base}/missing.wav"), "autoHangup": true}))
        .await;
    c.wait("error", |e| e["error"].as_str().unwrap().contains("404"))
        .await;
    c.send(json!({"command": "hangup"})).await;
    let h = c.wait("hangup", |_| true).await;
    assert_eq!(h["reason"], "hangup_command");
    let call = common::finished_call(&app, &sid).await;
    assert_eq!(call["status"], "completed");
}

/// A `call` ticket places new calls only; a `supervise` ticket is issued for one live call of
/// the tenant and opens that call only (not another, not a new call).
async fn tickets_open_only_the_call_they_name(app: &common::TestApp, sid: &str, other_key: &str) {
    let live = format!("/call?id={sid}");
    let call_ticket = callws::ticket(app, &app.api_key, "call").await;
    assert_eq!(
        callws::open(app, &format!("{live}&ticket={call_ticket}"), None)
            .await
            .err(),
        Some(401),
        "a call ticket does not attach to a live call"
    );
    let supervise = |key: &str, body: serde_json::Value| {
        let key = key.to_owned();
        async move { app.post_json(&key, "/call/tickets", &body).await }
    };
    let (status, v) = supervise(&app.api_key, json!({"purpose": "supervise"})).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("missing_call_id")),
        "{v}"
    );
    let (status, v) = supervise(other_key, json!({"purpose": "supervise", "call_id": sid})).await;
    assert_eq!(status, 404, "another tenant's call: {v}");
    let (status, v) = supervise(&app.api_key, json!({"purpose": "call", "call_id": sid})).await;
    assert_eq!(status, 400, "{v}");
    async fn bound(app: &common::TestApp, sid: &str) -> String {
        let body = json!({"purpose": "supervise", "call_id": sid});
        let (status, v) = app.post_json(&app.api_key, "/call/tickets", &body).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["purpose"], "supervise");
        v["ticket"].as_str().unwrap().to_owned()
    }
    let elsewhere = "CA0000000000000000000000000000000e";
    let t = bound(app, sid).await;
    assert_eq!(
        callws::open(app, &format!("/call?id={elsewhere}&ticket={t}"), None)
            .await
            .err(),
        Some(401),
        "bound to its call"
    );
    let t = bound(app, sid).await;
    assert_eq!(
        callws::open(app, &format!("/call?ticket={t}"), None)
            .await
            .err(),
        Some(401),
        "a supervise ticket places no call"
    );
    let t = bound(app, sid).await;
    let watcher = callws::open(app, &format!("{live}&ticket={t}"), None).await;
    assert!(watcher.is_ok(), "the ticket opens its call");
}

/// A call whose record cannot be written (a fault injected in the store's own database) is
/// refused with 503 and gives its place among the tenant's calls back: with room for one call,
/// two such failures in a row leave the account able to call once the store recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_whose_record_cannot_be_written_gives_its_place_back() {
    let app = spawn_app_with(|s| s.limits.max_calls_per_tenant = 1).await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Hello."}))).await;
    let body = json!({"goal": "Answer", "webhook": hook.url, "voice": "local:en-us"});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    let bot = b["id"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(app.dir.path().join("callbot.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_calls BEFORE INSERT ON calls
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    for _ in 0..2 {
        let mut c = callws::open(&app, "/call", Some(&app.api_key))
            .await
            .unwrap();
        c.send(json!({"command": "invite", "option": {"callee": bot}}))
            .await;
        c.wait("error", |e| e["code"] == 503).await;
        c.wait("hangup", |e| e["reason"] == "invite_failed").await;
        c.closed().await;
    }
    let scope = callbot_core::store::leases::calls_scope(&TenantId::parse("acme").unwrap());
    let now = callbot_core::store::leases::now_ms();
    assert_eq!(app.state.store.count_leases(&scope, now).await.unwrap(), 0);

    db.execute_batch("DROP TRIGGER refuse_calls;").unwrap();
    let mut c = callws::open(&app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    let answer = c.invite(json!({"callee": bot})).await;
    assert!(answer["callSid"].as_str().is_some(), "{answer}");
}

/// A `/call` leg that is an outbound call its client placed, answered: the client and the sid.
async fn outbound_leg(app: &TestApp, bot: &str) -> (CallClient, String) {
    let mut c = callws::open(app, "/call", Some(&app.api_key))
        .await
        .unwrap();
    let answer = c
        .invite(json!({"callee": bot, "codec": "pcmu", "machineDetection": true}))
        .await;
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    (c, sid)
}

/// A `/call` leg that is an outbound call its client placed (`machineDetection`): the engine
/// hears a recorded greeting and its beep, stops talking while it plays, leaves the bot's
/// message after the beep and hangs up; a person who says hello and waits is talked to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_hears_an_answering_machine_on_a_socket_leg() {
    let (app, _hook, bot, _) = app_and_bot().await;
    let (status, _) = app
        .patch_json(
            &app.api_key,
            &format!("/bots/{bot}"),
            &json!({"voicemail": {"action": "leave_message", "message": "Please call the bot back."}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut machine = voiced_tone(3000);
    machine.extend(common::beep(500));
    machine.extend(std::iter::repeat_n(0xFF, 8 * 300));

    let (mut c, sid) = outbound_leg(&app, &bot).await;
    c.send_audio(&machine, 160).await;
    let start = c
        .wait("answeredBy", |e| e["answeredBy"] == "machine_start")
        .await;
    assert_eq!(start["source"], "engine");
    c.wait("answeredBy", |e| e["answeredBy"] == "machine_end_beep")
        .await;
    c.wait("hangup", |_| true).await;
    let v = common::finished_call(&app, &sid).await;
    assert_eq!(v["answered_by"], "machine_end_beep", "{v}");
    // The message was heard whole and ended the call; the machine's own words are on the record.
    let turns = v["turns"].as_array().unwrap();
    assert!(
        turns
            .iter()
            .any(|t| t["bot_text"] == "Please call the bot back." && t["action"] == "hangup"),
        "{v}"
    );
    assert!(turns.iter().any(|t| t["user_text"] != ""), "{v}");

    // A person: hello, then waiting for an answer.
    let (mut c, sid) = outbound_leg(&app, &bot).await;
    let mut hello = voiced_tone(600);
    hello.extend(std::iter::repeat_n(0xFF, 8 * 1500));
    c.send_audio(&hello, 160).await;
    let verdict = c.wait("answeredBy", |_| true).await;
    assert_eq!(verdict["answeredBy"], "human");
    c.wait("trackStart", |e| is_reply(e, 1)).await;
    assert!(c.all("hangup").is_empty(), "a person is not hung up on");
    c.send(json!({"command": "hangup"})).await;
    c.closed().await;
    let v = common::finished_call(&app, &sid).await;
    assert_eq!(v["answered_by"], "human", "{v}");
}
