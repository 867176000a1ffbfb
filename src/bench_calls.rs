//! `callbot bench calls`: N concurrent simulated Twilio calls, paced in real time, against a
//! `callbot serve` child process running the instant speech stand-ins (so the figures are the
//! platform's own) and an instant in-process webhook. The carriers run in this process; the
//! server's CPU and memory are read from /proc, so they are the server's alone.

use crate::bench_setup::{BenchPlatform, has_taskset, pct, proc_usage};
use anyhow::bail;
use callbot_twilio_sim::carrier::{self, Step};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct CallBenchOptions {
    pub concurrency: usize,
    pub duration: Duration,
    /// CPU cores the server may use (pinned with `taskset` when available, and its runtime
    /// limited to this many worker threads).
    pub server_cores: usize,
    /// Network providers: Deepgram hears the callers and ElevenLabs speaks, both stand-ins in
    /// this process (so the server's figures are its own cost per call with those providers).
    pub standins: bool,
}

pub async fn calls(opts: CallBenchOptions) -> anyhow::Result<Vec<String>> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    // The webhook: answers at once with a short line.
    let hook = crate::bench_setup::instant_hook();

    // The provider stand-ins live here, off the server's cores.
    let providers = if opts.standins {
        let dg = callbot_provider_sim::deepgram::start(|ms| {
            format!("I would like a table for {} people.", ms / 100)
        })
        .await;
        let el = callbot_provider_sim::voices::elevenlabs().await;
        Some((dg, el))
    } else {
        None
    };
    let mut env: Vec<(&str, String)> = Vec::new();
    if let Some((dg, el)) = &providers {
        env.push(("CALLBOT_STT", "deepgram".into()));
        env.push((
            "DEEPGRAM_API_KEY",
            callbot_provider_sim::deepgram::KEY.into(),
        ));
        env.push(("DEEPGRAM_BASE_URL", dg.base.clone()));
        env.push((
            "ELEVENLABS_API_KEY",
            callbot_provider_sim::voices::ELEVEN_KEY.into(),
        ));
        env.push(("ELEVENLABS_BASE_URL", el.base.clone()));
    }
    let voice = if providers.is_some() {
        "elevenlabs:george"
    } else {
        "local:en-us"
    };
    let bot = json!({"goal": "Benchmark", "voice": voice, "first_message": "Hello, this is the benchmark bot."});
    let platform =
        BenchPlatform::start(opts.server_cores, opts.concurrency, &env, hook, bot).await?;
    let pid = platform.pid;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss0) = proc_usage(pid)?;
    let started = Instant::now();
    let speech = Arc::new(callbot_stream::speech::instant::voiced_tone(1000));
    let mut tasks = Vec::new();
    let mut arrivals = Vec::new();
    let underruns = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..opts.concurrency {
        let times = Arc::new(Mutex::new(Vec::with_capacity(64 * 1024)));
        arrivals.push(times.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let count = underruns.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let carrier::Event::Underrun(_) = e {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        // Greeting, then talk and listen turn after turn until the duration is up.
        let wait = Step::WaitForBot {
            quiet: Duration::from_millis(300),
            max: Duration::from_secs(10),
        };
        let mut steps = vec![
            Step::Silence(Duration::from_millis((i as u64 * 7) % 1000)),
            wait.clone(),
        ];
        let turns = (opts.duration.as_secs() / 5).max(1);
        for _ in 0..turns {
            steps.push(Step::Audio(speech.to_vec()));
            steps.push(wait.clone());
        }
        steps.push(Step::Silence(
            opts.duration.saturating_sub(Duration::from_secs(turns * 4)),
        ));
        tasks.push(platform.dial(i, steps, tx, Some(times)));
    }
    // Sample the server while the calls are live.
    let mut peak_rss = rss0;
    let sample_until = started + opts.duration;
    while Instant::now() < sample_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok((_, rss)) = proc_usage(pid) {
            peak_rss = peak_rss.max(rss);
        }
    }
    let (cpu1, _) = proc_usage(pid)?;
    let wall = started.elapsed().as_secs_f64();
    let mut sids = Vec::new();
    let mut completed = 0;
    for t in tasks {
        let (sid, status, _) = t.await?;
        completed += usize::from(status == "completed");
        sids.push(sid);
    }
    // Frame gaps while the bot speaks (gaps over 500 ms are between replies).
    let mut gaps: Vec<f64> = Vec::new();
    for a in &arrivals {
        let times = a.lock().map(|t| t.clone()).unwrap_or_default();
        for w in times.windows(2) {
            let g = w[1].duration_since(w[0]).as_secs_f64() * 1e3;
            if g < 500.0 {
                gaps.push(g);
            }
        }
    }
    gaps.sort_by(f64::total_cmp);
    // Platform-added turn latency from the stored turns.
    let mut added: Vec<f64> = Vec::new();
    let mut turns_total = 0;
    for sid in sids.iter().take(200) {
        let v = platform.record(sid).await?;
        for t in v["turns"].as_array().into_iter().flatten() {
            let tm = &t["timings"];
            let (Some(first), Some(stt), Some(hook)) = (
                tm["first_frame_ms"].as_f64(),
                tm["stt_ms"].as_f64(),
                tm["webhook_ms"].as_f64(),
            ) else {
                continue;
            };
            turns_total += 1;
            added.push(first - stt - hook - tm["tts_first_byte_ms"].as_f64().unwrap_or(0.0));
        }
    }
    added.sort_by(f64::total_cmp);
    let n = opts.concurrency as f64;
    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    Ok(vec![
        format!(
            "callbot bench calls: {} concurrent calls for {:.0} s, server on {} core(s){}, {}, local webhook",
            opts.concurrency,
            opts.duration.as_secs_f64(),
            opts.server_cores,
            if has_taskset() { " (taskset)" } else { "" },
            if opts.standins {
                "Deepgram live recognition and ElevenLabs voice (stand-ins in the bench process)"
            } else {
                "instant speech engines"
            }
        ),
        format!("calls completed      {completed}/{}", opts.concurrency),
        format!(
            "server CPU           {cpu_pct:.1} % of one core in all, {:.3} % per call (≈ {:.0} such calls per core)",
            cpu_pct / n,
            n / (cpu_pct / 100.0)
        ),
        format!(
            "server RSS           {:.1} MB idle, {:.1} MB peak, {:.0} KB per call",
            rss0 as f64 / 1e6,
            peak_rss as f64 / 1e6,
            (peak_rss.saturating_sub(rss0)) as f64 / n / 1e3
        ),
        format!(
            "outbound frame gap   p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   ({} gaps)",
            pct(&gaps, 0.5),
            pct(&gaps, 0.99),
            gaps.last().copied().unwrap_or(f64::NAN),
            gaps.len()
        ),
        format!(
            "playout underruns    {} in all, {:.2} per call (the caller's buffer ran dry mid-reply)",
            underruns.load(std::sync::atomic::Ordering::Relaxed),
            underruns.load(std::sync::atomic::Ordering::Relaxed) as f64 / n
        ),
        format!(
            "platform turn latency p50 {:.1} ms   p99 {:.1} ms   ({turns_total} turns; end of speech → first frame, minus stt/webhook/tts)",
            pct(&added, 0.5),
            pct(&added, 0.99)
        ),
    ])
}
