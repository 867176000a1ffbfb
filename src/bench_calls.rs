//! `callbot bench calls`: N concurrent simulated Twilio calls, paced in real time, against a
//! `callbot serve` child process running the instant speech stand-ins (so the figures are the
//! platform's own) and an instant in-process webhook. The carriers run in this process; the
//! server's CPU and memory are read from /proc, so they are the server's alone.

use anyhow::{Context as _, bail};
use callbot_core::wiring;
use callbot_twilio_sim::carrier::{self, Answer, CallContext, Script, Step};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

pub(crate) struct Child(pub(crate) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (user+system CPU seconds, resident set bytes) of a process.
pub(crate) fn proc_usage(pid: u32) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    Ok((cpu, rss_kb * 1024))
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

pub(crate) fn has_taskset() -> bool {
    Command::new("taskset").arg("--version").output().is_ok()
}

/// `callbot serve` as a child process for a benchmark: instant speech, no LLM, limits raised for
/// `concurrency` calls, pinned to the first `cores` CPUs (this process moves to the others).
/// Returns the child and its base URL.
pub(crate) fn serve_child(
    dir: &std::path::Path,
    key: &str,
    cores: usize,
    concurrency: usize,
    env: &[(&str, String)],
) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe()?;
    let taskset = has_taskset();
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(format!("0-{}", cores.max(1) - 1)).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    // Keep this process (the simulated callers) off the server's cores when there are others.
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if taskset && cpus > cores {
        let _ = Command::new("taskset")
            .args([
                "-a",
                "-p",
                "-c",
                &format!("{}-{}", cores, cpus - 1),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status();
    }
    let n = concurrency.to_string();
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env("CALLBOT_DATA_DIR", dir)
        .env("CALLBOT_API_KEY", key)
        .env("CALLBOT_SPEECH", "instant")
        // The platform's own figures: no language model in the turn (`bench llm` measures it).
        .env("CALLBOT_LLM", "off")
        .env("CALLBOT_ALLOW_PRIVATE_WEBHOOKS", "1")
        .env("CALLBOT_MAX_CALLS_PER_TENANT", &n)
        .env(
            "CALLBOT_CALLS_PER_BOT_PER_DAY",
            (concurrency * 10).to_string(),
        )
        .env(
            "CALLBOT_WEBHOOKS_PER_BOT_PER_SECOND",
            (concurrency * 10).to_string(),
        )
        .env("CALLBOT_END_SILENCE_MS", "500")
        .env("TOKIO_WORKER_THREADS", cores.max(1).to_string())
        .env("RUST_LOG", "warn")
        .env_remove("CALLBOT_STORE")
        .env_remove("CALLBOT_STT")
        .env_remove("ELEVENLABS_API_KEY")
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("TWILIO_ACCOUNT_SID")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("serve.log"))?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().context("starting callbot serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let child = Child(child);
    let mut first = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut first)?;
    if !first.contains("listening on http://") {
        bail!("callbot serve did not start (first line {first:?}); run it by hand to see why");
    }
    // Keep reading what it prints: a closed pipe would fail its next line (and the server).
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let base = format!(
        "http://{}",
        first.trim().rsplit("http://").next().unwrap_or("")
    );
    Ok((child, base))
}

pub async fn calls(opts: CallBenchOptions) -> anyhow::Result<Vec<String>> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let key = "bench-key-0123456789";
    // The webhook: answers at once with a short line.
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::Json(json!({"say": "Sure, noted. Anything else?"})) }),
    );
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", hook_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });

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
    let (child, base) = serve_child(dir.path(), key, opts.server_cores, opts.concurrency, &env)?;
    let pid = child.0.id();
    let http = reqwest::Client::new();
    let bot: serde_json::Value = http
        .post(format!("{base}/bots"))
        .header("x-api-key", key)
        .json(&json!({"goal": "Benchmark", "webhook": hook_url, "voice": voice, "first_message": "Hello, this is the benchmark bot."}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let number = bot["number"].as_str().context("bot number")?.to_owned();
    let bot_id = bot["id"].as_str().context("bot id")?.to_owned();
    let token = wiring::local_sim_token(dir.path())?;
    let account = wiring::local_sim_account_sid(&token);
    let voice_url = format!("{base}/voice?bot_id={bot_id}");

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
        let ctx = CallContext {
            sid: callbot_core::domain::CallSid::generate().to_string(),
            account_sid: account.clone(),
            from: format!("+1555{:07}", i),
            to: number.clone(),
            direction: "inbound".into(),
            auth_token: token.clone(),
            http: http.clone(),
            status_callback: Some(format!("{base}/voice/status")),
            status_events: vec!["completed".into()],
            events: tx,
            bot_audio: Arc::new(Mutex::new(Vec::new())),
            media_times: Some(times),
        };
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
        let sid = ctx.sid.clone();
        let (_ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(1);
        let answer = Answer::Url(voice_url.clone());
        tasks.push(tokio::spawn(async move {
            let _keep = _ctl_tx;
            let status = carrier::run_call(
                ctx,
                answer,
                Script {
                    steps,
                    hangup_when_done: true,
                },
                ctl_rx,
                0,
            )
            .await;
            (sid, status)
        }));
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
        let (sid, status) = t.await?;
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
        let v: serde_json::Value = http
            .get(format!("{base}/calls/{sid}"))
            .header("x-api-key", key)
            .send()
            .await?
            .json()
            .await?;
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
