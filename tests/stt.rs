//! Recognisers in calls: Deepgram live streaming through its stand-in (`common::deepgram`):
//! interim results as `asrDelta`, finals as the webhook's words, its `speech_final` ending the turn
//! before our own silence, a socket dropped mid-utterance losing no words, an unreachable service
//! falling back to the local recogniser; OpenAI transcriptions per utterance (and their fallback);
//! and the local recogniser's partials before the final, with real speech.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::{DeepgramSettings, OpenAiAudioSettings, Settings, SttChoice};
use callbot_twilio_sim::carrier::Step;
use common::hook::{self, Answer, Hook};
use common::{TestApp, spawn_app_with, wait_bot};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

const LONG: &str = "I would like a table for two at seven.";

fn script(ms: u64) -> String {
    if ms < 1000 {
        "Yes please.".into()
    } else {
        LONG.into()
    }
}

fn speak(ms: u64) -> Step {
    Step::Audio(callbot_stream::speech::instant::voiced_tone(ms))
}

fn with_deepgram(s: &mut Settings, base: &str, key: &str) {
    s.providers.deepgram = Some(DeepgramSettings {
        api_key: SecretString::from(key),
        base_url: url::Url::parse(base).unwrap(),
        model: "nova-3".into(),
        language: "en-US".into(),
    });
    s.providers.stt = SttChoice::Deepgram;
    s.providers.stt_timeout = Duration::from_millis(1500);
    s.calls.webhook_timeout = Duration::from_millis(1500);
}

/// A webhook that ends the call after the caller's first turn.
async fn goodbye() -> Hook {
    hook::start(|_| Answer::Json(json!({"say": "Done. Goodbye.", "action": "hangup"}))).await
}

async fn bot(app: &TestApp, hook: &Hook) -> String {
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Take reservations", "webhook": hook.url, "voice": "local:en-us", "first_message": "Hello."}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    b["number"].as_str().unwrap().to_owned()
}

fn asr(events: &[Value], kind: &str, index: u64) -> Vec<(usize, String)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == kind && e["index"].as_u64() == Some(index))
        .map(|(i, e)| (i, e["text"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// A call recognised by the Deepgram stand-in `dg` (with `key`): the caller speaks 1.5 s, then
/// stays quiet until the webhook's goodbye. Returns the finished call, its events and the webhook.
async fn deepgram_call(
    dg: &common::deepgram::StandIn,
    key: &'static str,
) -> (Value, Vec<Value>, Hook) {
    let base = dg.base.clone();
    let app = spawn_app_with(move |s| with_deepgram(s, &base, key)).await;
    let hook = goodbye().await;
    let number = bot(&app, &hook).await;
    let steps = vec![
        wait_bot(),
        speak(1500),
        Step::Silence(Duration::from_secs(4)),
    ];
    let (call, events) = common::dial_watched(&app, &number, steps).await;
    (call, events, hook)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deepgram_partials_reach_observers_and_its_finals_make_the_turn() {
    let dg = common::deepgram::start(script).await;
    let (call, events, hook) = deepgram_call(&dg, common::deepgram::KEY).await;

    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].body["user_text"], LONG);
    let deltas = asr(&events, "asrDelta", 1);
    let finals = asr(&events, "asrFinal", 1);
    assert!(!deltas.is_empty(), "interim results reach observers");
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(deltas[0].0 < finals[0].0, "partials come before the final");
    assert_eq!(finals[0].1, LONG);
    let t = &call["turns"][1]["timings"];
    assert_eq!(t["stt_provider"], "deepgram", "{t}");
    assert!(t["partials"].as_u64().unwrap() >= 1, "{t}");
    assert!(t["stt_final_ms"].is_u64(), "{t}");
    // Deepgram's speech_final (endpointing=350) ended the turn before our 700 ms of silence.
    let waited = t["endpoint_ms"].as_u64().unwrap();
    assert!(
        (300..650).contains(&waited),
        "ended after {waited} ms of silence: {t}"
    );

    let conns = common::eventually(|| {
        let dg = dg.clone();
        async move {
            let c = dg.connections();
            c.first().is_some_and(|c| c.close_stream).then_some(c)
        }
    })
    .await;
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c.authorization, format!("Token {}", common::deepgram::KEY));
    for (k, v) in [
        ("model", "nova-3"),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", "350"),
        ("utterance_end_ms", "1000"),
        ("language", "en-US"),
    ] {
        assert_eq!(
            c.query.get(k).map(String::as_str),
            Some(v),
            "{k}: {:?}",
            c.query
        );
    }
    // The whole call's audio was streamed (greeting, speech, silence), as it arrived.
    assert!(c.audio_bytes > 8 * 2500, "{}", c.audio_bytes);
    assert!(c.sent.iter().any(|k| k == "interim") && c.sent.iter().any(|k| k == "final"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_deepgram_socket_loses_no_words() {
    let dg = common::deepgram::start(script).await;
    dg.drop_first_after(Duration::from_millis(600));
    let (call, _, hook) = deepgram_call(&dg, common::deepgram::KEY).await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        reqs[0].body["user_text"], LONG,
        "every word, though the socket dropped mid-sentence"
    );
    assert_eq!(call["turns"][1]["timings"]["stt_provider"], "deepgram");
    let conns = dg.connections();
    assert_eq!(conns.len(), 2, "reconnected once");
    assert!(
        conns[1].audio_bytes >= 8 * 1500,
        "the utterance was sent again: {}",
        conns[1].audio_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_deepgram_falls_back_to_the_local_recogniser() {
    let dg = common::deepgram::start(script).await;
    let (call, _, hook) = deepgram_call(&dg, "wrong-key").await;
    assert!(dg.refused() >= 1);
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        reqs[0].body["user_text"]
            .as_str()
            .unwrap()
            .starts_with("utterance of"),
        "the local (instant) recogniser heard it: {}",
        reqs[0].body["user_text"]
    );
    assert_eq!(call["turns"][1]["timings"]["stt_provider"], "instant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_transcribes_each_utterance_and_falls_back_when_it_fails() {
    let st = common::voices::openai_speech().await;
    let base = st.base.clone();
    let app = spawn_app_with(move |s| {
        s.providers.openai = Some(OpenAiAudioSettings {
            api_key: SecretString::from(common::voices::OPENAI_KEY),
            base_url: url::Url::parse(&format!("{base}/v1")).unwrap(),
            tts_model: "gpt-4o-mini-tts".into(),
            stt_model: "gpt-4o-mini-transcribe".into(),
        });
        s.providers.stt = SttChoice::OpenAi;
        s.providers.stt_timeout = Duration::from_millis(1500);
        s.calls.end_silence = Duration::from_millis(400);
    })
    .await;
    let hook = goodbye().await;
    let number = bot(&app, &hook).await;
    let steps = || {
        vec![
            wait_bot(),
            speak(1200),
            Step::Silence(Duration::from_secs(3)),
        ]
    };
    let (call, _) = common::dial_watched(&app, &number, steps()).await;
    let said = hook.requests()[0].body["user_text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(said.starts_with("I would like a table for 1"), "{said}");
    assert_eq!(call["turns"][1]["timings"]["stt_provider"], "openai");
    let req = st
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/audio/transcriptions")
        .unwrap();
    assert_eq!(req.body["model"], "gpt-4o-mini-transcribe");
    assert_eq!(req.body["language"], "en");
    assert_eq!(req.body["response_format"], "json");
    assert_eq!(req.body["file"]["filename"], "utterance.wav");
    // The conversation steers the recogniser: the bot's goal and its last line ("Hello.").
    let prompt = req.body["prompt"].as_str().unwrap();
    assert!(prompt.starts_with("Take reservations. Hello."), "{prompt}");
    assert!(
        req.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );

    st.set_mode(common::voices::Mode::Status(500));
    let (call, _) = common::dial_watched(&app, &number, steps()).await;
    let said = hook.requests()[1].body["user_text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        said.starts_with("utterance of"),
        "the local recogniser took over: {said}"
    );
    assert_eq!(call["turns"][1]["timings"]["stt_provider"], "instant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_partials_come_before_the_final_with_real_speech() {
    let Some(speech) = common::real_speech() else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.calls.speech = speech;
        s.calls.webhook_timeout = Duration::from_secs(2);
    })
    .await;
    let hook = goodbye().await;
    let number = bot(&app, &hook).await;
    let said =
        "I would like to book a table for four people at seven o'clock tonight, near the window.";
    let speech = {
        use callbot_stream::speech::TextToSpeech as _;
        callbot_stream::speech::espeak::Espeak::new("espeak-ng")
            .synthesize(said, "en-us")
            .await
            .unwrap()
    };
    let (call, events) = common::dial_watched(
        &app,
        &number,
        vec![
            wait_bot(),
            Step::Audio(speech.ulaw),
            Step::Silence(Duration::from_secs(6)),
        ],
    )
    .await;
    let deltas = asr(&events, "asrDelta", 1);
    let finals = asr(&events, "asrFinal", 1);
    assert!(
        !deltas.is_empty(),
        "partials while the caller spoke: {events:?}"
    );
    assert_eq!(finals.len(), 1);
    assert!(deltas[0].0 < finals[0].0);
    assert!(
        callbot_stream::speech::word_overlap("I would like to book a table", &deltas[0].1) > 0.0,
        "{deltas:?}"
    );
    assert!(
        callbot_stream::speech::word_overlap(said, &finals[0].1) >= 0.6,
        "{finals:?}"
    );
    let t = &call["turns"][1]["timings"];
    assert_eq!(t["stt_provider"], "whisper.cpp", "{t}");
    assert!(t["partials"].as_u64().unwrap() >= 1, "{t}");
}

#[tokio::test]
async fn a_quiet_deepgram_session_keeps_alive_and_finalize_flushes_the_words() {
    use callbot_stream::speech::deepgram::{DeepgramSession, ListenParams, SttEvent};
    let dg = common::deepgram::start(script).await;
    let settings = DeepgramSettings {
        api_key: SecretString::from(common::deepgram::KEY),
        base_url: url::Url::parse(&dg.base).unwrap(),
        model: "nova-3".into(),
        language: "en-US".into(),
    };
    let params = ListenParams {
        endpointing: Duration::from_millis(2000),
        utterance_end: Duration::from_millis(1000),
    };
    let (mut session, mut events) = DeepgramSession::start(settings, params);
    // Speech, then our own endpointer ends the turn before Deepgram's 2 s of silence.
    for frame in callbot_stream::speech::instant::voiced_tone(1200).chunks(320) {
        session.push(frame);
    }
    session.finalize();
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await.unwrap() {
                SttEvent::Final { text, end } if !text.is_empty() => break (text, end),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        ev,
        (LONG.to_owned(), true),
        "Finalize answers with the words, marked as the end"
    );
    // No audio for a while (a carrier that stopped sending): KeepAlive, never a silent timeout.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let c = dg.connections();
    assert_eq!(c.len(), 1);
    assert!(c[0].keepalives >= 1, "{:?}", c[0]);
    assert_eq!(c[0].finalizes, 1);
    drop(session);
    common::eventually(|| {
        let dg = dg.clone();
        async move { dg.connections()[0].close_stream.then_some(()) }
    })
    .await;
}
