//! `callbot bench browser`: the round trip a person at the console hears — end of their speech to
//! the first bot audio audible in the page — over WebRTC in a real Chromium (Debian's, headless),
//! with the local engines (whisper.cpp hears, espeak-ng speaks) and an instant webhook. The fake
//! microphone plays one espeak-ng sentence per turn; the page measures when the bot's audio
//! becomes audible (WebAudio level) against the `silence` event's start (the same clock: one
//! machine). The server's own share comes from the call's turn records.

use anyhow::Context as _;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BrowserBenchOptions {
    pub model: PathBuf,
    pub turns: usize,
}

fn pct(v: &[f64], p: f64) -> f64 {
    crate::bench_setup::pct(v, p)
}

pub async fn browser(opts: BrowserBenchOptions) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(opts.turns > 0, "--turns must be at least 1");
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::Json(json!({"say": "Okay, noted."})) }),
    );
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", hook_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });
    let srv = crate::bench_voices::server(&opts.model, |s| {
        s.calls.webhook_timeout = Duration::from_secs(3);
    })
    .await?;
    let http = reqwest::Client::new();
    let bot: Value = http
        .post(format!("{}/bots", srv.base))
        .header("x-api-key", &srv.key)
        .json(
            &json!({"goal": "Benchmark", "webhook": hook_url, "voice": "local:en-us",
                      "first_message": "Hello."}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bot_id = bot["id"].as_str().context("bot id")?.to_owned();

    // The microphone: 4 s, then per turn one sentence and 4.5 s for the bot to answer.
    let tts = callbot_stream::speech::espeak::Espeak::new("espeak-ng");
    let mut pcm: Vec<i16> = Vec::new();
    let mut rate = 22_050;
    for i in 0..opts.turns {
        let (s, r) = tts
            .pcm(&format!("Table number {} please.", i + 1), "en-us")
            .await?;
        rate = r;
        if pcm.is_empty() {
            pcm.resize(4 * r as usize, 0);
        }
        pcm.extend(s);
        pcm.extend(std::iter::repeat_n(0i16, (4.5 * f64::from(r)) as usize));
    }
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("mic.wav");
    std::fs::write(&wav, callbot_stream::audio::wav::write_mono(&pcm, rate))?;
    let seconds = pcm.len() as u64 / u64::from(rate);

    let b = crate::browser::Browser::start("bench-browser", Some(&wav)).await?;
    b.client.goto(&format!("{}/console", srv.base)).await?;
    b.js(&format!(
        "sessionStorage.setItem('callbot.key', {}); return 1;",
        serde_json::to_string(&srv.key)?
    ))
    .await?;
    b.client
        .goto(&format!("{}/console#/talk/{bot_id}", srv.base))
        .await?;
    b.until("window.callbotStats.state === 'connected'", 20)
        .await?;
    let n = opts.turns;
    b.until(
        &format!("window.callbotStats.turns.length >= {n}"),
        seconds + 30,
    )
    .await?;
    let stats = b.js("return window.callbotStats;").await?;
    if std::env::var_os("CALLBOT_BENCH_DEBUG").is_some() {
        for e in stats["events"].as_array().into_iter().flatten() {
            if ["silence", "speaking", "trackStart", "asrFinal", "metrics"]
                .contains(&e["event"].as_str().unwrap_or(""))
            {
                eprintln!("{e}");
            }
        }
        eprintln!("{}", stats["turns"]);
    }
    let sid = stats["callSid"].as_str().context("call sid")?.to_owned();
    b.js("document.querySelector('button.danger').click(); return 1;")
        .await?;
    let mut rt: Vec<f64> = stats["turns"]
        .as_array()
        .context("turns")?
        .iter()
        .filter_map(|t| t["round_trip_ms"].as_f64())
        .collect();
    rt.sort_by(f64::total_cmp);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = b.client.clone().close().await;
    let call: Value = http
        .get(format!("{}/calls/{sid}", srv.base))
        .header("x-api-key", &srv.key)
        .send()
        .await?
        .json()
        .await?;
    let mut endpoint = Vec::new();
    let mut sent = Vec::new();
    for t in call["turns"].as_array().into_iter().flatten().skip(1) {
        let x = &t["timings"];
        if let (Some(e), Some(f)) = (x["endpoint_ms"].as_f64(), x["first_frame_ms"].as_f64()) {
            endpoint.push(e);
            sent.push(e + f);
        }
    }
    endpoint.sort_by(f64::total_cmp);
    sent.sort_by(f64::total_cmp);
    Ok(vec![
        format!(
            "browser round trip over WebRTC, {} turns (local whisper + espeak-ng, instant webhook, headless Chromium)",
            rt.len()
        ),
        format!(
            "  end of speech -> bot audio audible in the page: p50 {:.0} ms, p95 {:.0} ms, min {:.0} ms, max {:.0} ms",
            pct(&rt, 0.5),
            pct(&rt, 0.95),
            rt.first().copied().unwrap_or(0.0),
            rt.last().copied().unwrap_or(0.0)
        ),
        format!(
            "  of which on the server (turn records): endpointing p50 {:.0} ms; end of speech -> first frame sent p50 {:.0} ms",
            pct(&endpoint, 0.5),
            pct(&sent, 0.5)
        ),
        format!(
            "  so network, jitter buffer and playout in the page add p50 {:.0} ms",
            pct(&rt, 0.5) - pct(&sent, 0.5)
        ),
    ])
}
