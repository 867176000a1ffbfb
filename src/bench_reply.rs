//! `callbot bench reply`: how long a webhook-mode caller waits for the reply when the bot asks
//! the model for a suggestion, with and without preemptive suggestions. In-process servers, real
//! speech (espeak-ng says the caller's sentences, whisper.cpp hears them), simulated Twilio
//! calls, a webhook that answers `continue` without words (so the suggestion is what is said),
//! and the model: the embedded one, or an OpenAI-compatible stand-in answering after a fixed
//! delay. Figures come from the stored turn records: the end of the caller's turn → the webhook
//! asked is recognition plus the wait for the suggestion (`stt_ms + llm.waited_ms`); the end of
//! their speech → first reply audio is `endpoint_ms + first_frame_ms` (a filler line, said after
//! 1.2 s without a reply, counts as the reply's first audio).

use crate::bench_setup::pct;
use crate::bench_voices::{caller_sentences, server, wait};
use callbot_core::settings::LlmSettings;
use callbot_twilio_sim::carrier::Step;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReplyBenchOptions {
    /// The whisper model.
    pub model: PathBuf,
    /// The embedded language model (GGUF) and its worker program.
    pub llm_model: PathBuf,
    pub worker: Option<PathBuf>,
    /// The stand-in model's delay before it answers.
    pub standin_delay: Duration,
    /// Calls per scenario, three caller turns each.
    pub calls: usize,
}

#[derive(Default)]
struct Waits {
    to_webhook: Vec<f64>,
    suggestion: Vec<f64>,
    e2e: Vec<f64>,
    early: usize,
}

pub async fn reply(opts: ReplyBenchOptions) -> anyhow::Result<Vec<String>> {
    for (what, p) in [
        ("whisper model", &opts.model),
        ("language model", &opts.llm_model),
    ] {
        anyhow::ensure!(
            p.exists(),
            "the {what} {} is missing; run `callbot models install`",
            p.display()
        );
    }
    let mut out = vec![format!(
        "callbot bench reply: webhook mode with suggestions, {} calls per scenario, 3 caller sentences each (espeak-ng), whisper.cpp {}, webhook answering `continue` without words",
        opts.calls,
        opts.model
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model")
    )];
    let speech = caller_sentences().await?;
    let hook = hook().await?;
    let standin = crate::bench_llm::delayed_model(opts.standin_delay).await?;
    let models = [
        (
            format!(
                "embedded {}",
                opts.llm_model
                    .file_stem()
                    .and_then(|n| n.to_str())
                    .unwrap_or("model")
            ),
            LlmSettings::Local {
                model: opts.llm_model.clone(),
                worker: opts.worker.clone(),
                threads: 1,
            },
        ),
        (
            format!(
                "stand-in answering after {} ms",
                opts.standin_delay.as_millis()
            ),
            LlmSettings::OpenAi {
                base_url: url::Url::parse(&standin)?,
                api_key: None,
                model: "m".into(),
            },
        ),
    ];
    out.push("end of turn → webhook asked (recognition + waiting for the suggestion); end of speech → first reply audio:".into());
    for (name, llm) in models {
        for preemptive in [false, true] {
            let llm = llm.clone();
            let srv = server(&opts.model, move |s| {
                s.llm = llm;
                s.calls.preemptive = preemptive;
                s.calls.turn_model = callbot_core::settings::TurnModelSettings::Off;
            })
            .await?;
            let number = srv
                .bot(
                    &hook,
                    "local:en-us",
                    json!({"turn_detection": "silence",
                    "context": "Open 5 PM to 10 PM. Vegetarian dishes available."}),
                )
                .await?;
            let w = turns(&srv, &number, opts.calls, &speech).await?;
            out.push(line(&name, preemptive, &w));
        }
    }
    Ok(out)
}

async fn turns(
    srv: &crate::bench_voices::Server,
    number: &str,
    calls: usize,
    speech: &[Vec<u8>],
) -> anyhow::Result<Waits> {
    let mut w = Waits::default();
    for _ in 0..calls {
        let mut steps = vec![wait()];
        for s in speech {
            steps.push(Step::Audio(s.clone()));
            steps.push(wait());
        }
        for t in srv.call(number, steps).await?.iter().skip(1) {
            let tm = &t["timings"];
            let llm = &tm["llm"];
            let Some(waited) = llm["waited_ms"].as_f64() else {
                continue;
            };
            w.to_webhook
                .push(tm["stt_ms"].as_f64().unwrap_or(0.0) + waited);
            w.suggestion.push(waited);
            if let (Some(ep), Some(first)) =
                (tm["endpoint_ms"].as_f64(), tm["first_frame_ms"].as_f64())
            {
                w.e2e.push(ep + first);
            }
            w.early += usize::from(llm["preemptive"] == true);
        }
    }
    for v in [&mut w.to_webhook, &mut w.suggestion, &mut w.e2e] {
        v.sort_by(f64::total_cmp);
    }
    anyhow::ensure!(!w.to_webhook.is_empty(), "no turn asked the model");
    Ok(w)
}

fn line(model: &str, preemptive: bool, w: &Waits) -> String {
    format!(
        "{model:<36} preemptive {:<3}  webhook asked p50 {:>5.0} ms  p95 {:>5.0} ms  (suggestion wait p50 {:>4.0} ms)   first audio p50 {:>5.0} ms  p95 {:>5.0} ms   early {}/{} turns",
        if preemptive { "on" } else { "off" },
        pct(&w.to_webhook, 0.5),
        pct(&w.to_webhook, 0.95),
        pct(&w.suggestion, 0.5),
        pct(&w.e2e, 0.5),
        pct(&w.e2e, 0.95),
        w.early,
        w.to_webhook.len()
    )
}

/// A webhook that lets the suggestion speak: `continue` without words.
async fn hook() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::Json(json!({"action": "continue"})) }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(url)
}
