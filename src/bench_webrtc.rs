//! `callbot bench webrtc`: N concurrent WebRTC calls (`/call/webrtc`, PCMU over DTLS-SRTP on
//! loopback) against a `callbot serve` child process with the instant speech engines, the same
//! setup as `bench calls` so the two CPU figures compare: a Twilio media stream against a WebRTC
//! leg. The callers are str0m peers in this process (off the server's core): each sends 20 ms of
//! audio every 20 ms like a browser (a second of voice every five) and receives the bot's.

use crate::bench_setup::{BenchPlatform, has_taskset, proc_usage};
use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[derive(Debug, Clone)]
pub struct WebrtcBenchOptions {
    pub concurrency: usize,
    pub duration: Duration,
    pub server_cores: usize,
}

#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    frames_in: AtomicU64,
    turns: AtomicU64,
    ended: AtomicU64,
}

async fn one_call(
    base: &str,
    key: &str,
    bot: &str,
    duration: Duration,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let offer = callbot_stream::rtc::Offer::new().await?;
    let url = format!("{}/call/webrtc", base.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut().insert("x-api-key", key.parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    let (mut sink, mut stream) = ws.split();
    let invite = json!({"command": "invite", "option": {"callee": bot, "offer": offer.sdp}});
    sink.send(Message::text(invite.to_string())).await?;
    let answer = loop {
        let Some(Ok(Message::Text(t))) = stream.next().await else {
            anyhow::bail!("the socket closed before the answer");
        };
        let v: Value = serde_json::from_str(&t)?;
        if v["event"] == "answer" {
            break v["sdp"].as_str().context("answer sdp")?.to_owned();
        }
    };
    let mut leg = offer.answered(&answer)?;
    counts.connected.fetch_add(1, Ordering::Relaxed);
    let c = counts.clone();
    let events = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(t) = m
                && t.contains("\"asrFinal\"")
            {
                c.turns.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let c = counts.clone();
    let audio_in = tokio::spawn(async move {
        while let Some(e) = leg.events.recv().await {
            if let callbot_stream::engine::call::leg::RtcEvent::Audio(_) = e {
                c.frames_in.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let voice = callbot_stream::speech::instant::voiced_tone(1000);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let end = Instant::now() + duration;
    let mut i = 0usize;
    while Instant::now() < end {
        tick.tick().await;
        // 1 s of voice, then 4 s of quiet, over and over.
        let at = i % 250;
        let mut frame = [0xFFu8; 160];
        if at < 50 {
            frame.copy_from_slice(&voice[at * 160..at * 160 + 160]);
        }
        let _ = leg.media.try_send(frame);
        i += 1;
    }
    sink.send(Message::text(r#"{"command":"hangup"}"#)).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), events).await;
    drop(leg.media);
    let _ = tokio::time::timeout(Duration::from_secs(5), audio_in).await;
    counts.ended.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

pub async fn webrtc(opts: WebrtcBenchOptions) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(opts.concurrency > 0, "--concurrency must be at least 1");
    let hook = crate::bench_setup::instant_hook();
    let bot = json!({"goal": "Benchmark", "voice": "local:en-us",
                     "first_message": "Hello, this is the benchmark bot."});
    let platform =
        BenchPlatform::start(opts.server_cores, opts.concurrency, &[], hook, bot).await?;
    let (pid, key) = (platform.pid, crate::bench_setup::KEY);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss0) = proc_usage(pid)?;
    let started = Instant::now();
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for i in 0..opts.concurrency {
        let (base, bot, counts) = (
            platform.base.clone(),
            platform.bot_id.clone(),
            counts.clone(),
        );
        let duration = opts.duration;
        tasks.push(tokio::spawn(async move {
            // Spread the starts over a second, as calls arrive.
            tokio::time::sleep(Duration::from_millis((i as u64 * 1000) / 50 % 1000)).await;
            one_call(&base, key, &bot, duration, counts).await
        }));
    }
    tokio::time::sleep(opts.duration.mul_f64(0.6)).await;
    let (_, rss_mid) = proc_usage(pid)?;
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        if let Err(e) = t.await? {
            failed += 1;
            first_error.get_or_insert(e.to_string());
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, _) = proc_usage(pid)?;
    let rss1 = rss_mid;
    drop(platform);
    let n = opts.concurrency as f64;
    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    let mut lines = vec![
        format!(
            "callbot bench webrtc: {} concurrent WebRTC calls (PCMU, DTLS-SRTP on loopback) for {:.0} s, server on {} core(s){}, instant speech engines, local webhook",
            opts.concurrency,
            opts.duration.as_secs_f64(),
            opts.server_cores,
            if has_taskset() { " (taskset)" } else { "" },
        ),
        format!(
            "calls connected      {}/{}  (failed {failed})",
            counts.connected.load(Ordering::Relaxed),
            opts.concurrency
        ),
        format!(
            "caller turns heard   {}",
            counts.turns.load(Ordering::Relaxed)
        ),
        format!(
            "bot audio received   {:.1} s per call",
            counts.frames_in.load(Ordering::Relaxed) as f64 * 0.02 / n
        ),
        format!(
            "server CPU           {cpu_pct:.1} % of one core = {:.3} % per call (~{:.0} WebRTC calls per core)",
            cpu_pct / n,
            if cpu_pct > 0.0 {
                100.0 * n / cpu_pct
            } else {
                f64::INFINITY
            }
        ),
        format!(
            "server RSS           {:.1} MB at start, {:.1} MB with the calls up ({:.0} KB per call)",
            rss0 as f64 / 1e6,
            rss1 as f64 / 1e6,
            (rss1 as f64 - rss0 as f64) / 1e3 / n
        ),
    ];
    if let Some(e) = first_error {
        lines.push(format!("first failure        {e}"));
    }
    Ok(lines)
}
