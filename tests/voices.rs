//! Cloud voices in calls, through their stand-ins (`common::voices`): each provider gets the exact
//! request its API expects and the caller hears its audio (the recording's bot track carries the
//! stand-in's fixture, made by Python's standard library, not by the product's audio code);
//! voices a deployment cannot speak are refused when the bot is saved; a provider that fails
//! (500, 401, no answer, a cut stream) still reaches the caller in the local voice, recorded as
//! `tts_fallback`.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::settings::{ElevenLabsSettings, OpenAiAudioSettings, PollySettings, Settings};
use callbot_twilio_sim::carrier::Step;
use callbot_twilio_sim::events_until_end;
use common::voices::{self, Mode, StandIn};
use common::{TestApp, finished_call, spawn_app_with, wait_bot};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

const LINE: &str = "Thank you for calling the Blue Door bistro.";

struct StandIns {
    eleven: StandIn,
    openai: StandIn,
    polly: StandIn,
}

async fn standins() -> StandIns {
    StandIns {
        eleven: voices::elevenlabs().await,
        openai: voices::openai_speech().await,
        polly: voices::polly().await,
    }
}

fn configure(s: &mut Settings, st: &StandIns) {
    s.providers.elevenlabs = Some(ElevenLabsSettings {
        api_key: SecretString::from(voices::ELEVEN_KEY),
        base_url: url::Url::parse(&st.eleven.base).unwrap(),
        model: "eleven_flash_v2_5".into(),
    });
    s.providers.openai = Some(OpenAiAudioSettings {
        api_key: SecretString::from(voices::OPENAI_KEY),
        base_url: url::Url::parse(&format!("{}/v1", st.openai.base)).unwrap(),
        tts_model: "gpt-4o-mini-tts".into(),
        stt_model: "gpt-4o-mini-transcribe".into(),
    });
    s.providers.polly = Some(PollySettings {
        endpoint_url: Some(st.polly.base.clone()),
    });
    s.aws.access_key_id = Some("AKIDSTANDIN".into());
    s.aws.secret_access_key = Some(SecretString::from("standin-secret"));
    s.providers.tts_timeout = Duration::from_millis(1500);
}

fn skip() -> bool {
    if std::env::var_os("CALLBOT_SKIP_SPEECH").is_some() {
        eprintln!("CALLBOT_SKIP_SPEECH set: the voice stand-ins need espeak-ng; skipped");
        return true;
    }
    false
}

async fn bot(app: &TestApp, voice: &str) -> String {
    let (status, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "Greet callers", "webhook": "http://127.0.0.1:9/hook",
                   "voice": voice, "first_message": LINE}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    b["number"].as_str().unwrap().to_owned()
}

/// Dials `number`, hears the greeting, hangs up; returns the finished call and the bot track.
async fn greeting(app: &TestApp, number: &str) -> (Value, Vec<i16>) {
    let steps = vec![wait_bot(), Step::Silence(Duration::from_millis(200))];
    let mut c = common::dial(app, number, steps);
    events_until_end(&mut c, Duration::from_secs(60)).await;
    let v = finished_call(app, &c.sid).await;
    let wav = app
        .client
        .get(v["recording_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (_, bot, _) = callbot_stream::audio::wav::read_stereo(&wav).unwrap();
    (v, bot)
}

fn header(seen: &voices::Seen, name: &str) -> String {
    seen.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_cloud_voice_gets_its_exact_request_and_the_caller_hears_it() {
    if skip() {
        return;
    }
    let st = standins().await;
    let app = {
        let (e, o, p) = (st.eleven.clone(), st.openai.clone(), st.polly.clone());
        spawn_app_with(move |s| {
            configure(
                s,
                &StandIns {
                    eleven: e,
                    openai: o,
                    polly: p,
                },
            )
        })
        .await
    };

    // ElevenLabs: "emma" is not premade, so the account's list names it.
    let (call, track) = greeting(&app, &bot(&app, "elevenlabs:emma").await).await;
    let reqs = st.eleven.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", "/v1/voices")
    );
    assert_eq!(header(&reqs[0], "xi-api-key"), voices::ELEVEN_KEY);
    let tts = &reqs[1];
    assert_eq!(
        tts.path,
        format!("/v1/text-to-speech/{}/stream", voices::EMMA_ID)
    );
    assert_eq!(
        tts.query.get("output_format").map(String::as_str),
        Some("ulaw_8000")
    );
    assert_eq!(header(tts, "xi-api-key"), voices::ELEVEN_KEY);
    assert!(header(tts, "content-type").starts_with("application/json"));
    assert_eq!(
        tts.body,
        json!({"text": LINE, "model_id": "eleven_flash_v2_5"})
    );
    let heard = voices::carries(&track, &st.eleven.answers()[0]);
    assert!(
        heard > 0.99,
        "the bot track carries ElevenLabs' audio: {heard}"
    );
    let t0 = &call["turns"][0]["timings"];
    assert_eq!(t0["tts_provider"], "elevenlabs", "{t0}");
    assert!(t0.get("tts_fallback").is_none(), "{t0}");
    assert!(t0["tts_first_byte_ms"].is_u64());

    // A second call reuses the cached voice list.
    greeting(&app, &bot(&app, "elevenlabs:george").await).await;
    let reqs = st.eleven.requests();
    assert_eq!(reqs.len(), 3, "premade names need no lookup: {reqs:?}");
    assert_eq!(
        reqs[2].path,
        "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/stream"
    );

    // OpenAI: 24 kHz PCM, resampled to the phone line as it streams.
    let (call, track) = greeting(&app, &bot(&app, "openai:Coral").await).await;
    let reqs = st.openai.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/audio/speech");
    assert_eq!(
        header(&reqs[0], "authorization"),
        format!("Bearer {}", voices::OPENAI_KEY)
    );
    assert_eq!(
        reqs[0].body,
        json!({"model": "gpt-4o-mini-tts", "input": LINE, "voice": "coral", "response_format": "pcm"})
    );
    let heard = voices::carries(&track, &st.openai.answers()[0]);
    assert!(heard > 0.9, "the bot track carries OpenAI's audio: {heard}");
    assert_eq!(call["turns"][0]["timings"]["tts_provider"], "openai");

    // Polly: SigV4-signed SynthesizeSpeech, 8 kHz PCM, the neural engine Joanna has.
    let (call, track) = greeting(&app, &bot(&app, "polly:joanna").await).await;
    let reqs = st.polly.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/speech");
    assert!(
        header(&reqs[0], "authorization").starts_with("AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/")
    );
    let b = &reqs[0].body;
    assert_eq!(
        (
            b["Engine"].as_str(),
            b["OutputFormat"].as_str(),
            b["SampleRate"].as_str(),
            b["VoiceId"].as_str(),
            b["Text"].as_str()
        ),
        (
            Some("neural"),
            Some("pcm"),
            Some("8000"),
            Some("Joanna"),
            Some(LINE)
        ),
        "{b}"
    );
    let heard = voices::carries(&track, &st.polly.answers()[0]);
    assert!(heard > 0.99, "the bot track carries Polly's audio: {heard}");
    assert_eq!(call["turns"][0]["timings"]["tts_provider"], "polly");
    // A voice without the neural engine is asked for the standard one.
    greeting(&app, &bot(&app, "polly:Nicole").await).await;
    assert_eq!(st.polly.requests()[1].body["Engine"], "standard");
}

#[tokio::test]
async fn voices_a_deployment_cannot_speak_are_refused_when_the_bot_is_saved() {
    let bare = spawn_app_with(|_| {}).await;
    for (voice, missing) in [
        ("elevenlabs:emma", "ELEVENLABS_API_KEY"),
        ("polly:Joanna", "CALLBOT_POLLY"),
        ("openai:coral", "OPENAI_API_KEY"),
    ] {
        let (status, b) = bare
            .create_bot(
                &bare.api_key,
                json!({"goal": "g", "webhook": "http://127.0.0.1:9/h", "voice": voice}),
            )
            .await;
        assert_eq!(
            (status, b["code"].as_str()),
            (400, Some("voice_unavailable")),
            "{b}"
        );
        assert!(b["error"].as_str().unwrap().contains(missing), "{b}");
    }
    let (status, list) = bare.get(&bare.api_key, "/voices").await;
    assert_eq!(status, 200);
    let voices = list["voices"].as_array().unwrap();
    let joanna = voices
        .iter()
        .find(|v| v["voice"] == "polly:Joanna")
        .unwrap();
    assert_eq!(joanna["configured"], false);
    assert!(
        joanna["requires"]
            .as_str()
            .unwrap()
            .contains("CALLBOT_POLLY")
    );
    assert!(
        voices
            .iter()
            .any(|v| v["voice"] == "local:en-us" && v["configured"] == true)
    );
    let (status, _) = bare.get("not-a-key", "/voices").await;
    assert_eq!(status, 401);

    let st = standins().await;
    let app = spawn_app_with(move |s| configure(s, &st)).await;
    for (voice, code) in [
        ("polly:Emmanuelle", "unknown_voice"),
        ("openai:emma", "unknown_voice"),
        ("azure:x", "invalid_voice"),
    ] {
        let (status, b) = app
            .create_bot(
                &app.api_key,
                json!({"goal": "g", "webhook": "http://127.0.0.1:9/h", "voice": voice}),
            )
            .await;
        assert_eq!(
            (status, b["code"].as_str()),
            (400, Some(code)),
            "{voice}: {b}"
        );
    }
    let (_, b) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "g", "webhook": "http://127.0.0.1:9/h", "voice": "polly:x"}),
        )
        .await;
    assert!(
        b["error"].as_str().unwrap().contains("Joanna"),
        "a few valid names: {b}"
    );
    // PATCH is checked the same way, and a good voice is stored in the provider's spelling.
    let (_, created) = app
        .create_bot(
            &app.api_key,
            json!({"goal": "g", "webhook": "http://127.0.0.1:9/h", "voice": "polly:matthew"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let (_, shown) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!(shown["voice"], "polly:Matthew");
    let resp = app
        .client
        .patch(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &app.api_key)
        .json(&json!({"voice": "openai:nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unknown_voice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_voice_provider_still_reaches_the_caller_in_the_local_voice() {
    if skip() {
        return;
    }
    let st = standins().await;
    let (eleven, openai, polly) = (st.eleven.clone(), st.openai.clone(), st.polly.clone());
    let app = spawn_app_with(move |s| {
        configure(s, &st);
        s.providers.tts_timeout = Duration::from_millis(400);
    })
    .await;
    let cases = [
        ("elevenlabs:george", &eleven, Mode::Status(500)),
        ("elevenlabs:george", &eleven, Mode::Status(401)),
        ("elevenlabs:george", &eleven, Mode::Stall),
        ("elevenlabs:george", &eleven, Mode::Cut),
        ("openai:coral", &openai, Mode::Status(500)),
        ("openai:coral", &openai, Mode::Cut),
        ("polly:Joanna", &polly, Mode::Status(500)),
        ("polly:Joanna", &polly, Mode::Stall),
    ];
    for (voice, standin, mode) in cases {
        standin.set_mode(mode);
        let number = bot(&app, voice).await;
        let (call, track) = greeting(&app, &number).await;
        let t0 = &call["turns"][0];
        assert_eq!(
            t0["timings"]["tts_fallback"], true,
            "{voice} {mode:?}: {t0}"
        );
        assert_eq!(
            t0["bot_text"], LINE,
            "{voice} {mode:?}: the whole line was heard"
        );
        // The local voice (the instant stand-in in this suite: 60 ms a character) filled the gap.
        let voiced = track.iter().filter(|v| v.abs() > 500).count();
        assert!(
            voiced > 8000,
            "{voice} {mode:?}: a second or more of audio, got {voiced} samples"
        );
        if mode == Mode::Cut && voice.starts_with("elevenlabs") {
            let answers = standin.answers();
            let part = &answers.last().unwrap()[..4000];
            assert!(
                voices::carries(&track, part) > 0.99,
                "what arrived before the cut played"
            );
        }
        standin.set_mode(Mode::Speak);
    }
}
