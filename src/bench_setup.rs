//! What the call benchmarks share: a `callbot serve` child process (pinned to its own cores, its
//! CPU and memory read from /proc), a webhook served from the benchmark process, one bot, and
//! simulated Twilio callers dialling it.

use anyhow::{Context as _, bail};
use callbot_core::wiring;
use callbot_twilio_sim::carrier::{self, Answer, CallContext, Script, Step};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The API key of the benchmark's server.
pub(crate) const KEY: &str = "bench-key-0123456789";

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
        .env("CALLBOT_RTC_ALLOW_PRIVATE", "1")
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

/// What a quick business answers every turn.
pub(crate) const ANSWER: &str = "Sure, noted. Anything else?";

/// A webhook that answers every turn at once with [`ANSWER`].
pub(crate) fn instant_hook() -> axum::Router {
    axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::Json(serde_json::json!({"say": ANSWER})) }),
    )
}

/// A benchmark's server with one bot, and how to dial it as Twilio would.
pub(crate) struct BenchPlatform {
    /// Killed when the benchmark ends.
    _child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) bot_id: String,
    pub(crate) number: String,
    token: String,
    account: String,
    /// The simulated carriers' underruns and how late their 20 ms clocks ran: past a few ms,
    /// this process (not the server) was the bottleneck, and the pacing figures are partly its own.
    pub(crate) probe: Arc<callbot_twilio_sim::probe::Probe>,
    /// The server's data directory (removed when the benchmark ends).
    _dir: tempfile::TempDir,
}

impl BenchPlatform {
    /// Starts [`serve_child`] with `env`, serves `hook` (a router with a `/hook` route) from this
    /// process, and creates a bot from `bot` with its `webhook` set to that route.
    pub(crate) async fn start(
        cores: usize,
        concurrency: usize,
        env: &[(&str, String)],
        hook: axum::Router,
        mut bot: Value,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        bot["webhook"] = format!("http://{}/hook", listener.local_addr()?).into();
        tokio::spawn(async move { axum::serve(listener, hook).await });
        let (mut child, base) = serve_child(dir.path(), KEY, cores, concurrency, env)?;
        let http = reqwest::Client::new();
        let mut attempt = 0;
        let created: Value = loop {
            match http
                .post(format!("{base}/bots"))
                .header("x-api-key", KEY)
                .json(&bot)
                .send()
                .await
            {
                Ok(r) => break r.error_for_status()?.json().await?,
                Err(e) => {
                    if let Some(status) = child.0.try_wait()? {
                        let log = std::fs::read_to_string(dir.path().join("serve.log"))
                            .unwrap_or_default();
                        bail!("callbot serve exited ({status}) before the benchmark began:\n{log}");
                    }
                    attempt += 1;
                    if attempt == 5 {
                        return Err(e).context("creating the benchmark bot");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        let token = wiring::local_sim_token(dir.path())?;
        Ok(Self {
            pid: child.0.id(),
            _child: child,
            base,
            http,
            bot_id: created["id"].as_str().context("bot id")?.to_owned(),
            number: created["number"].as_str().context("bot number")?.to_owned(),
            account: wiring::local_sim_account_sid(&token),
            token,
            probe: Arc::default(),
            _dir: dir,
        })
    }

    /// Caller `i` dials the bot and follows `steps`, hanging up at the end; the carrier's events
    /// go to `events`, and the arrival of each bot media message (time, audio bytes) to
    /// `media_times` when given.
    /// The task ends with the call's SID, its final status, and when it ended.
    pub(crate) fn dial(
        &self,
        i: usize,
        steps: Vec<Step>,
        events: tokio::sync::mpsc::UnboundedSender<carrier::Event>,
        media_times: Option<carrier::MediaTimes>,
    ) -> tokio::task::JoinHandle<(String, String, Instant)> {
        let base = &self.base;
        let ctx = CallContext {
            sid: callbot_core::domain::CallSid::generate().to_string(),
            account_sid: self.account.clone(),
            from: format!("+1555{i:07}"),
            to: self.number.clone(),
            direction: "inbound".into(),
            auth_token: self.token.clone(),
            http: self.http.clone(),
            status_callback: Some(format!("{base}/voice/status")),
            status_events: vec!["completed".into()],
            events,
            bot_audio: None,
            media_times,
            probe: Some(self.probe.clone()),
        };
        let answer = Answer::Url(format!("{base}/voice?bot_id={}", self.bot_id));
        tokio::spawn(async move {
            let sid = ctx.sid.clone();
            // The carrier's control channel stays open (nobody steers these calls).
            let (_ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(1);
            let script = Script {
                steps,
                hangup_when_done: true,
            };
            let status = carrier::run_call(ctx, answer, script, ctl_rx, 0).await;
            (sid, status, Instant::now())
        })
    }

    /// The call's record, from `GET /calls/{sid}`.
    pub(crate) async fn record(&self, sid: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/calls/{sid}", self.base))
            .header("x-api-key", KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}
