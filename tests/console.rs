//! The web console in a real Chromium (Debian's, headless, through chromedriver): sign in, a bot
//! form that shows the API's validation error beside the field, a call from the browser over
//! WebRTC whose fake microphone plays synthesised speech (recognised by whisper.cpp on the
//! server, answered by the webhook, the reply heard in the page), the live page following a phone
//! call in progress (surviving a malformed socket message), an action that fails showing its
//! error, and the call page with its latency waterfall and a recording that plays.
//! Screenshots of each page: `target/test-artifacts/console/`.

#![allow(clippy::unwrap_used)]
mod common;

use callbot::browser::{self, Browser};
use callbot_stream::speech::TextToSpeech as _;
use callbot_stream::speech::espeak::Espeak;
use callbot_twilio_sim::carrier::Step;
use common::hook::{self, Answer};
use serde_json::json;
use std::time::Duration;

/// A WAV for the fake microphone: `lead` of silence, `text` spoken by espeak-ng, 6 s of silence.
async fn mic(path: &std::path::Path, text: &str, lead: Duration) {
    let (pcm, rate) = Espeak::new("espeak-ng").pcm(text, "en-us").await.unwrap();
    let mut all = vec![0i16; (lead.as_millis() as u32 * rate / 1000) as usize];
    all.extend(pcm);
    all.extend(std::iter::repeat_n(0i16, 6 * rate as usize));
    std::fs::write(path, callbot_stream::audio::wav::write_mono(&all, rate)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_real_browser() {
    let Some(speech) = common::real_speech() else {
        return;
    };
    if !browser::available() {
        return;
    }
    let app = common::spawn_app_with(|s| {
        s.calls.speech = speech;
        s.calls.webhook_timeout = Duration::from_secs(3);
    })
    .await;
    let hook = hook::start(|req| {
        Answer::Json(
            json!({"say": format!("You said: {}", req["user_text"].as_str().unwrap_or(""))}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("mic.wav");
    mic(
        &wav,
        "I would like a table for two tonight.",
        Duration::from_secs(5),
    )
    .await;
    let b = Browser::start("console", Some(&wav)).await.unwrap();
    let c = &b.client;

    // Sign in.
    c.goto(&app.url("/console")).await.unwrap();
    b.css("#key")
        .await
        .unwrap()
        .send_keys(&app.api_key)
        .await
        .unwrap();
    b.shot("01-sign-in").await.unwrap();
    common::submit(&b).await;
    b.until("document.querySelector('h1')?.textContent === 'Bots'", 10)
        .await
        .unwrap();

    // A bot from the form: the API's validation error beside the field, then a good one.
    b.click("a[href='#/bots/new']").await.unwrap();
    b.css("#bot-goal")
        .await
        .unwrap()
        .send_keys("Take table reservations for Bella Vista")
        .await
        .unwrap();
    b.css("#bot-webhook")
        .await
        .unwrap()
        .send_keys("ftp://example.com/hook")
        .await
        .unwrap();
    b.css("#bot-first_message")
        .await
        .unwrap()
        .send_keys("Bella Vista, hello.")
        .await
        .unwrap();
    common::submit(&b).await;
    let err = b
        .until(
            "document.querySelector('#bot-webhook-error')?.textContent",
            10,
        )
        .await
        .unwrap();
    assert!(err.as_str().unwrap().contains("webhook"), "{err}");
    b.shot("02-bot-form-validation").await.unwrap();
    let webhook = b.css("#bot-webhook").await.unwrap();
    webhook.clear().await.unwrap();
    webhook.send_keys(&hook.url).await.unwrap();
    common::submit(&b).await;
    b.until("document.querySelector('h1')?.textContent === 'Bots'", 10)
        .await
        .unwrap();
    let (_, bots) = app.get(&app.api_key, "/bots").await;
    let bot = bots.get("bots").unwrap_or(&bots)[0].clone();
    // An action that fails shows its error: a bot deleted elsewhere, then paused from the list.
    let (status, gone) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Short-lived", "webhook": hook.url}),
        )
        .await;
    assert_eq!(status, 201, "{gone}");
    c.goto(&app.url("/console#/bots/new")).await.unwrap();
    c.goto(&app.url("/console#/bots")).await.unwrap();
    b.until(
        &format!(
            "document.querySelector(\"a[href='#/bots/{}']\")",
            gone["id"].as_str().unwrap()
        ),
        10,
    )
    .await
    .unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/bots/{}", gone["id"].as_str().unwrap())))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    b.js(&format!(
        "document.querySelector(\"a[href='#/bots/{}']\").closest('tr').querySelector('button.secondary').click(); return 1;",
        gone["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let toast = b
        .until("!document.querySelector('#toast').hidden && document.querySelector('#toast').textContent", 10)
        .await
        .unwrap();
    assert!(
        !toast.as_str().unwrap_or("").is_empty(),
        "the failed pause is shown: {toast}"
    );
    hook.set_secret(
        app.state
            .store
            .get_bot(
                &callbot_core::domain::TenantId::parse("acme").unwrap(),
                &callbot_core::domain::BotId::parse(bot["id"].as_str().unwrap()).unwrap(),
            )
            .await
            .unwrap()
            .map(|b| secrecy::ExposeSecret::expose_secret(&b.webhook_secret).to_owned())
            .unwrap()
            .as_str(),
    );
    b.shot("03-bots").await.unwrap();

    // Talk to the bot: the fake microphone speaks after 5 s; whisper hears it; the reply plays.
    b.click(&format!("a[href='#/talk/{}']", bot["id"].as_str().unwrap()))
        .await
        .unwrap();
    let heard = b
        .until(
            "window.callbotStats.events.find(e => e.event === 'asrFinal')?.text",
            40,
        )
        .await
        .unwrap();
    let heard = heard.as_str().unwrap().to_lowercase();
    // The recogniser is prompted to write numbers as digits.
    assert!(
        heard.contains("table") && (heard.contains("two") || heard.contains('2')),
        "{heard}"
    );
    // The reply's audio became audible in the page.
    let rt = b
        .until("window.callbotStats.turns[0]?.round_trip_ms", 30)
        .await
        .unwrap();
    assert!(rt.as_u64().unwrap() > 0, "{rt}");
    b.until(
        "window.callbotStats.events.some(e => e.event === 'trackEnd' && e.trackId === 'reply-1')",
        30,
    )
    .await
    .unwrap();
    b.shot("04-talk").await.unwrap();
    let sid = b.js("return window.callbotStats.callSid;").await.unwrap();
    let sid = sid.as_str().unwrap().to_owned();
    b.click("button.danger").await.unwrap();
    b.until("window.callbotStats.state === 'ended'", 10)
        .await
        .unwrap();
    let call = common::finished_call(&app, &sid).await;
    assert_eq!(call["channel"], "webrtc");
    let turn = &call["turns"][1];
    // (After "One moment." when recognition is slow on a loaded machine.)
    assert!(
        turn["bot_text"].as_str().unwrap().contains("You said:"),
        "{call}"
    );

    // The live page follows a phone call in progress.
    let said = Espeak::new("espeak-ng")
        .synthesize("Do you have parking near the restaurant?", "en-us")
        .await
        .unwrap();
    let mut phone = common::dial(
        &app,
        bot["number"].as_str().unwrap(),
        vec![
            common::wait_bot(),
            Step::Audio(said.ulaw),
            Step::Silence(Duration::from_secs(40)),
        ],
    );
    c.goto(&app.url("/console#/live")).await.unwrap();
    b.click(&format!("a[href='#/live/{}']", phone.sid))
        .await
        .unwrap();
    b.until(
        "[...document.querySelectorAll('.transcript li.user')].some(li => li.textContent.toLowerCase().includes('parking'))",
        40,
    )
    .await.unwrap();
    b.until(
        "[...document.querySelectorAll('.transcript li.bot')].some(li => li.textContent.includes('You said'))",
        30,
    )
    .await.unwrap();
    b.shot("05-live").await.unwrap();
    // A malformed message on the live socket is skipped with a notice; the page goes on.
    let survived = b
        .js(
            "const l = window.callbotLive; l.socket.onmessage({ data: '{not json' }); \
             l.socket.onmessage({ data: '[1,2]' }); \
             return [l.status.textContent, document.querySelector('#toast').textContent];",
        )
        .await
        .unwrap();
    assert_eq!(survived[0], "watching", "{survived}");
    assert!(
        survived[1].as_str().unwrap().contains("cannot read"),
        "{survived}"
    );
    // Kill from the console.
    b.js("[...document.querySelectorAll('button')].find(x => x.textContent === 'Kill').click(); return 1;")
        .await.unwrap();
    let events = callbot_twilio_sim::events_until_end(&mut phone, Duration::from_secs(20)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, callbot_twilio_sim::carrier::Event::Ended { .. })),
        "{events:?}"
    );

    // The browser call's page: waterfall and a recording that plays.
    c.goto(&app.url(&format!("/console#/calls/{sid}")))
        .await
        .unwrap();
    b.until("document.querySelectorAll('svg.waterfall rect').length", 10)
        .await
        .unwrap();
    b.js("document.querySelector('audio').play(); return 1;")
        .await
        .unwrap();
    b.until("document.querySelector('audio').currentTime > 0.5", 10)
        .await
        .unwrap();
    b.shot("06-call").await.unwrap();
    // Calls list: the browser call as channel webrtc.
    c.goto(&app.url("/console#/calls")).await.unwrap();
    b.until(
        &format!("document.querySelector(\"a[href='#/calls/{sid}']\")"),
        10,
    )
    .await
    .unwrap();
    b.shot("07-calls").await.unwrap();
    // Phone width.
    c.set_window_size(390, 844).await.unwrap();
    b.shot("08-calls-phone-width").await.unwrap();
    let _ = c.clone().close().await;
}

/// A campaign from the console: a CSV list uploaded through the form, the campaign's page with
/// its progress and rows, paused from its button, and the results downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_from_the_console() {
    if !browser::available() {
        return;
    }
    let app = common::spawn_app_with(|s| s.campaign_dialer = false).await;
    let (status, bot) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Remind {{name}} of the table", "webhook": "https://example.com/hook"}),
        )
        .await;
    assert_eq!(status, 201, "{bot}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("list.csv");
    std::fs::write(
        &csv,
        "to,name\n+15551230001,Ana\n+15551230002,Bo\n+15551230003,Cy\n",
    )
    .unwrap();
    let b = Browser::start("console-campaign", None).await.unwrap();
    let c = &b.client;
    common::console_sign_in(&b, &app).await;
    c.goto(&app.url("/console#/campaigns")).await.unwrap();
    b.until(
        "document.querySelector('h1')?.textContent === 'Campaigns'",
        10,
    )
    .await
    .unwrap();
    b.css("#c-name")
        .await
        .unwrap()
        .send_keys("Console reminders")
        .await
        .unwrap();
    upload(&b, &csv).await;
    b.until(
        "document.querySelector('h1')?.textContent === 'Console reminders'",
        10,
    )
    .await
    .unwrap();
    let shown = b
        .until(
            "document.querySelector('main table tbody')?.rows.length",
            10,
        )
        .await
        .unwrap();
    assert_eq!(shown, 3);
    let (_, list) = app.get(&app.api_key, "/campaigns").await;
    let id = list["campaigns"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["campaigns"][0]["window"]["start"], "09:00");
    b.shot("campaign-page").await.unwrap();
    // Paused from its page.
    b.click("#c-pause").await.unwrap();
    b.until(
        "document.querySelector('main p.muted')?.textContent.startsWith('paused')",
        10,
    )
    .await
    .unwrap();
    let (_, c) = app.get(&app.api_key, &format!("/campaigns/{id}")).await;
    assert_eq!(c["status"], "paused");
    // A wrong upload shows the API's error.
    c_upload_error(&b, &app, dir.path()).await;
}

async fn c_upload_error(b: &Browser, app: &common::TestApp, dir: &std::path::Path) {
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "number,name\n+15551230001,Ana\n").unwrap();
    b.client
        .goto(&app.url("/console#/campaigns"))
        .await
        .unwrap();
    b.until("document.querySelector('#c-rows') !== null", 10)
        .await
        .unwrap();
    upload(b, &bad).await;
    let err = b
        .until("document.querySelector('form p.error')?.textContent", 10)
        .await
        .unwrap();
    assert!(err.as_str().unwrap().contains("\"to\" column"), "{err}");
}

/// Picks `list` in the campaign form and submits it.
async fn upload(b: &Browser, list: &std::path::Path) {
    b.css("#c-rows")
        .await
        .unwrap()
        .send_keys(list.to_str().unwrap())
        .await
        .unwrap();
    common::submit(b).await;
}

/// Test calls from the console: the bot's "Test calls" page, a run started from the form (a
/// mistake in the scenarios shown beside it), the run's page with each scenario's checks and
/// transcript once it finished, and the run in the bot's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_calls_from_the_console() {
    if !browser::available() {
        return;
    }
    let app = common::spawn_app().await;
    let (status, bot) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Answer questions", "webhook": "https://example.com/hook",
                   "first_message": "Hello from the test bot."}),
        )
        .await;
    assert_eq!(status, 201, "{bot}");
    let id = bot["id"].as_str().unwrap();
    let b = Browser::start("console-tests", None).await.unwrap();
    common::console_sign_in(&b, &app).await;
    b.click(&format!("a[href='#/tests/{id}']")).await.unwrap();
    b.until(
        "document.querySelector('h1')?.textContent.startsWith('Test calls')",
        10,
    )
    .await
    .unwrap();
    // The API's refusal is shown in the form.
    b.until(
        "(document.querySelector('#t-scenarios').value = '[]', true)",
        5,
    )
    .await
    .unwrap();
    common::submit(&b).await;
    let err = b
        .until("document.querySelector('form p.error')?.textContent", 10)
        .await
        .unwrap();
    assert!(err.as_str().unwrap().contains("no scenarios"), "{err}");
    let scenario = r#"[{"name": "greets", "caller": ["Hello?"], "expect": {"says": ["hello from the test bot"]}}]"#;
    let set = format!("(document.querySelector('#t-scenarios').value = {scenario:?}, true)");
    b.until(&set, 5).await.unwrap();
    common::submit(&b).await;
    // The run's page, refreshed until the run finished.
    let heading = b
        .until(
            "document.querySelector('#t-status')?.textContent.startsWith('passed') && document.querySelector('section.scenario h2')?.textContent",
            60,
        )
        .await
        .unwrap();
    assert_eq!(heading, "PASS greets");
    let lines = b
        .until("document.querySelectorAll('ol.transcript li').length", 5)
        .await
        .unwrap();
    assert!(lines.as_u64().unwrap() >= 2, "{lines}");
    b.shot("test-run-page").await.unwrap();
    let (_, list) = app.get(&app.api_key, &format!("/bots/{id}/tests")).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["runs"][0]["status"], "passed");
    b.client
        .goto(&app.url(&format!("/console#/tests/{id}")))
        .await
        .unwrap();
    let shown = b
        .until("document.querySelector('#t-runs tbody')?.rows.length", 10)
        .await
        .unwrap();
    assert_eq!(shown, 1);
}
