//! `callbot bench voices`: how fast a caller hears the bot, by recogniser and endpointing, and
//! what the platform adds to each cloud voice. In-process servers, real speech (espeak-ng makes
//! the caller's sentences, whisper.cpp hears them), simulated Twilio calls, a webhook that answers
//! at once, and the provider stand-ins on loopback. Figures come from the stored turn records:
//! end of the caller's speech → first reply frame sent is `endpoint_ms + first_frame_ms`.

use crate::bench_setup::pct;
use anyhow::Context as _;
use callbot_core::settings::{
    DeepgramSettings, ElevenLabsSettings, OpenAiAudioSettings, PollySettings, Settings,
    SpeechSettings, SttChoice,
};
use callbot_provider_sim::{deepgram, voices};
use callbot_stream::speech::TextToSpeech as _;
use callbot_twilio_sim::carrier::{Script, Step};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct VoiceBenchOptions {
    pub model: PathBuf,
    /// Calls per scenario (each with three caller turns, or one greeting for the voices).
    pub calls: usize,
}

const SENTENCES: &[&str] = &[
    "I would like to book a table for four people at seven o'clock tonight.",
    "My name is Alex Morgan, and my number is five five five, zero one zero one.",
    "Do you have anything vegetarian on the menu?",
];

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) key: String,
    sim: callbot_twilio_sim::Sim,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn server(
    model: &std::path::Path,
    change: impl FnOnce(&mut Settings),
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut s = Settings::for_local(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    s.addr = listener.local_addr()?;
    s.calls.speech = SpeechSettings::Local {
        model: model.to_path_buf(),
        espeak: "espeak-ng".into(),
        whisper_workers: 1,
        decoding: Default::default(),
    };
    change(&mut s);
    let platform = crate::server::build(s).await?;
    let (key, hash) = callbot_core::apikey::generate();
    platform
        .state
        .store
        .put_api_key(
            &hash,
            &callbot_core::domain::TenantId::parse("bench")
                .map_err(|e| anyhow::anyhow!(e.message))?,
            "bench",
        )
        .await?;
    let sim = platform.sim.clone().context("local telephony")?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::server::run(listener, platform, async {
        let _ = rx.await;
    }));
    Ok(Server {
        base,
        key: callbot_core::apikey::reveal(&key).to_owned(),
        sim,
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: tx,
    })
}

impl Server {
    pub(crate) async fn bot(
        &self,
        hook: &str,
        voice: &str,
        extra: Value,
    ) -> anyhow::Result<String> {
        let mut body = json!({"goal": "Benchmark", "webhook": hook, "voice": voice,
                              "first_message": "Thank you for calling the Blue Door bistro."});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let b: Value = self
            .http
            .post(format!("{}/bots", self.base))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(b["number"].as_str().context("number")?.to_owned())
    }

    /// One call; returns its turn records.
    pub(crate) async fn call(&self, number: &str, steps: Vec<Step>) -> anyhow::Result<Vec<Value>> {
        let mut c = self
            .sim
            .dial(
                "+15550001111",
                number,
                Script {
                    steps,
                    hangup_when_done: true,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        callbot_twilio_sim::events_until_end(&mut c, Duration::from_secs(120)).await;
        for _ in 0..100 {
            let v: Value = self
                .http
                .get(format!("{}/calls/{}", self.base, c.sid))
                .header("x-api-key", &self.key)
                .send()
                .await?
                .json()
                .await?;
            if v["recording_url"].is_string() {
                return Ok(v["turns"].as_array().cloned().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("call {} did not finish", c.sid)
    }
}

/// [`SENTENCES`] said by espeak-ng, as the caller's μ-law audio.
pub(crate) async fn caller_sentences() -> anyhow::Result<Vec<Vec<u8>>> {
    let espeak = callbot_stream::speech::espeak::Espeak::new("espeak-ng");
    let mut speech = Vec::new();
    for s in SENTENCES {
        speech.push(espeak.synthesize(s, "en-us").await?.ulaw);
    }
    Ok(speech)
}

pub(crate) fn wait() -> Step {
    Step::WaitForBot {
        quiet: Duration::from_millis(600),
        max: Duration::from_secs(20),
    }
}

async fn hook() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::Json(json!({"say": "Sure. Anything else?"})) }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(url)
}

struct Latency {
    e2e: Vec<f64>,
    endpoint: Vec<f64>,
    recognised: Vec<f64>,
    partials: Vec<f64>,
}

/// Caller turns of `calls` calls, three sentences each.
async fn caller_turns(
    srv: &Server,
    number: &str,
    calls: usize,
    speech: &[Vec<u8>],
) -> anyhow::Result<Latency> {
    let mut l = Latency {
        e2e: vec![],
        endpoint: vec![],
        recognised: vec![],
        partials: vec![],
    };
    for _ in 0..calls {
        let mut steps = vec![wait()];
        for s in speech {
            steps.push(Step::Audio(s.clone()));
            steps.push(wait());
        }
        for t in srv.call(number, steps).await?.iter().skip(1) {
            let tm = &t["timings"];
            let (Some(ep), Some(first)) =
                (tm["endpoint_ms"].as_f64(), tm["first_frame_ms"].as_f64())
            else {
                continue;
            };
            l.e2e.push(ep + first);
            l.endpoint.push(ep);
            l.recognised
                .push(tm["stt_final_ms"].as_f64().unwrap_or(0.0));
            l.partials.push(tm["partials"].as_f64().unwrap_or(0.0));
        }
    }
    for v in [
        &mut l.e2e,
        &mut l.endpoint,
        &mut l.recognised,
        &mut l.partials,
    ] {
        v.sort_by(f64::total_cmp);
    }
    Ok(l)
}

fn latency_line(name: &str, l: &Latency) -> String {
    format!(
        "{name:<34} p50 {:>5.0} ms  p95 {:>5.0} ms   (silence waited p50 {:.0} ms, recognition after it p50 {:.0} ms, partials p50 {:.0}; {} turns)",
        pct(&l.e2e, 0.5),
        pct(&l.e2e, 0.95),
        pct(&l.endpoint, 0.5),
        pct(&l.recognised, 0.5),
        pct(&l.partials, 0.5),
        l.e2e.len()
    )
}

pub async fn voices(opts: VoiceBenchOptions) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        opts.model.exists(),
        "{} is missing; run `callbot models install`",
        opts.model.display()
    );
    let mut out = vec![format!(
        "callbot bench voices: {} calls per scenario, 3 caller sentences each (espeak-ng), whisper.cpp {}, webhook answering at once",
        opts.calls,
        opts.model
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model")
    )];
    let speech = caller_sentences().await?;
    let hook = hook().await?;

    out.push("end of caller speech → first reply audio sent:".into());
    for (name, smart) in [
        ("local whisper, fixed 700 ms silence", false),
        ("local whisper, smart endpointing", true),
    ] {
        let srv = server(&opts.model, |_| {}).await?;
        let number = srv
            .bot(&hook, "local:en-us", json!({"smart_endpointing": smart}))
            .await?;
        let l = caller_turns(&srv, &number, opts.calls, &speech).await?;
        out.push(latency_line(name, &l));
    }
    let dg = deepgram::start(|ms| {
        if ms < 2500 {
            "Do you have anything vegetarian on the menu?".into()
        } else {
            "I would like to book a table for four people.".into()
        }
    })
    .await;
    let dg_base = dg.base.clone();
    let srv = server(&opts.model, move |s| {
        s.providers.deepgram = Some(DeepgramSettings {
            api_key: SecretString::from(deepgram::KEY),
            base_url: url::Url::parse(&dg_base).unwrap_or_else(|e| unreachable!("{e}")),
            model: "nova-3".into(),
            language: "en-US".into(),
        });
        s.providers.stt = SttChoice::Deepgram;
    })
    .await?;
    let number = srv.bot(&hook, "local:en-us", json!({})).await?;
    let l = caller_turns(&srv, &number, opts.calls, &speech).await?;
    out.push(latency_line("Deepgram stand-in (endpointing 350)", &l));
    out.push(format!(
        "{:<34} the stand-in answers on loopback with no processing time; 'recognition after it' is the wait for its final",
        ""
    ));

    out.push("platform-added time to the first audio of a cloud voice (first chunk in → first frame out, greeting):".into());
    let (el, oa, po) = (
        voices::elevenlabs().await,
        voices::openai_speech().await,
        voices::polly().await,
    );
    let (elb, oab, pob) = (el.base.clone(), oa.base.clone(), po.base.clone());
    let srv = server(&opts.model, move |s| {
        s.providers.elevenlabs = Some(ElevenLabsSettings {
            api_key: SecretString::from(voices::ELEVEN_KEY),
            base_url: url::Url::parse(&elb).unwrap_or_else(|e| unreachable!("{e}")),
            model: "eleven_flash_v2_5".into(),
        });
        s.providers.openai = Some(OpenAiAudioSettings {
            api_key: SecretString::from(voices::OPENAI_KEY),
            base_url: url::Url::parse(&format!("{oab}/v1")).unwrap_or_else(|e| unreachable!("{e}")),
            tts_model: "gpt-4o-mini-tts".into(),
            stt_model: "gpt-4o-mini-transcribe".into(),
        });
        s.providers.polly = Some(PollySettings {
            endpoint_url: Some(pob),
        });
        s.aws.access_key_id = Some("AKIDSTANDIN".into());
        s.aws.secret_access_key = Some(SecretString::from("standin-secret"));
    })
    .await?;
    for voice in [
        "local:en-us",
        "elevenlabs:george",
        "openai:coral",
        "polly:Joanna",
    ] {
        let number = srv.bot(&hook, voice, json!({})).await?;
        let mut added = Vec::new();
        let mut first_byte = Vec::new();
        for _ in 0..opts.calls.max(1) * 2 {
            let turns = srv.call(&number, vec![wait()]).await?;
            let tm = &turns.first().context("greeting turn")?["timings"];
            if let (Some(f), Some(b)) = (
                tm["first_frame_ms"].as_f64(),
                tm["tts_first_byte_ms"].as_f64(),
            ) {
                added.push(f - b);
                first_byte.push(b);
            }
        }
        added.sort_by(f64::total_cmp);
        first_byte.sort_by(f64::total_cmp);
        out.push(format!(
            "{voice:<34} p50 {:>5.1} ms  p95 {:>5.1} ms   (request → first chunk p50 {:.0} ms, stand-in included; {} calls)",
            pct(&added, 0.5),
            pct(&added, 0.95),
            pct(&first_byte, 0.5),
            added.len()
        ));
    }
    Ok(out)
}
