//! `callbot bench calls`: N concurrent simulated Twilio calls, paced in real time, against a
//! `callbot serve` child process running the instant speech stand-ins (so the figures are the
//! platform's own) and an instant in-process webhook. The carriers run in this process; the
//! server's CPU and memory are read from /proc, so they are the server's alone.

use crate::bench_setup::{BenchPlatform, has_taskset, pct, proc_usage};
use anyhow::bail;
use callbot_twilio_sim::carrier::Step;
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
    /// Calls dialled per second until all are up.
    pub arrival_rate: u32,
}

pub async fn calls(opts: CallBenchOptions) -> anyhow::Result<Vec<String>> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if opts.arrival_rate == 0 {
        bail!("--arrival-rate must be at least 1 call per second");
    }
    let spacing = Duration::from_secs(1) / opts.arrival_rate;
    if spacing * opts.concurrency as u32 > opts.duration / 2 {
        bail!(
            "{} calls at {} a second take longer than half of --duration to arrive; raise --arrival-rate or --duration",
            opts.concurrency,
            opts.arrival_rate
        );
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
    let (_, rss0) = proc_usage(pid)?;
    let started = Instant::now();
    let speech = Arc::new(callbot_stream::speech::instant::voiced_tone(1000));
    let mut tasks = Vec::new();
    let mut arrivals = Vec::new();
    for i in 0..opts.concurrency {
        tokio::time::sleep_until((started + spacing * i as u32).into()).await;
        let times = Arc::new(Mutex::new(Vec::with_capacity(32 * 1024)));
        arrivals.push(times.clone());
        // No event is read (the probe counts what is needed): the carrier's sends fail at once
        // instead of waking a reader per message.
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
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
    // Every call is up: the steady state is measured from here until the first call ends.
    let (cpu0, _) = proc_usage(pid)?;
    let (client0, _) = proc_usage(std::process::id())?;
    let measured = Instant::now();
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
    let (client1, _) = proc_usage(std::process::id())?;
    let wall = measured.elapsed().as_secs_f64();
    let mut sids = Vec::new();
    let mut completed = 0;
    for t in tasks {
        let (sid, status, _) = t.await?;
        completed += usize::from(status == "completed");
        sids.push(sid);
    }
    // Pacing while the bot speaks, as the carrier sees it.
    let mut pace = Pacing::default();
    for a in &arrivals {
        let times = a.lock().map(|t| t.clone()).unwrap_or_default();
        pace.add_call(&times);
    }
    pace.gaps.sort_by(f64::total_cmp);
    pace.buffered.sort_by(f64::total_cmp);
    let gaps = &pace.gaps;
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
            "callbot bench calls: {} concurrent calls for {:.0} s (arriving {} a second; CPU over the {:.0} s all were up), server on {} core(s){}, {}, local webhook",
            opts.concurrency,
            opts.duration.as_secs_f64(),
            opts.arrival_rate,
            wall,
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
            "outbound message gap p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   ({} gaps)",
            pct(gaps, 0.5),
            pct(gaps, 0.99),
            gaps.last().copied().unwrap_or(f64::NAN),
            gaps.len()
        ),
        format!(
            "carrier buffer       p1 {:.1} ms   p50 {:.1} ms   (bot audio still queued when the next arrives)",
            pct(&pace.buffered, 0.01),
            pct(&pace.buffered, 0.5),
        ),
        format!(
            "playout underruns    {} in all, {:.2} per call (the caller's buffer ran dry mid-reply)",
            platform.probe.underruns(),
            platform.probe.underruns() as f64 / n
        ),
        format!(
            "bench client         {:.1} % CPU, its 20 ms clock late by p50 {} ms, p99 {} ms (late: the figures above are partly the client's)",
            (client1 - client0) / wall * 100.0,
            ms(platform.probe.lag.quantile(0.5)),
            ms(platform.probe.lag.quantile(0.99)),
        ),
        format!(
            "platform turn latency p50 {:.1} ms   p99 {:.1} ms   ({turns_total} turns; end of speech → first frame, minus stt/webhook/tts)",
            pct(&added, 0.5),
            pct(&added, 0.99)
        ),
    ])
}

/// A lateness to the millisecond, or `-` when nothing was measured.
fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| d.as_millis().to_string())
}

/// Bot audio pacing as the carrier sees it: the gaps between media messages within a reply, and
/// how much audio the carrier still had queued (as it plays 8,000 bytes a second from the first
/// message of a reply) when each later message arrived. A message that finds the queue empty
/// within a reply is an underrun; a gap over 500 ms starts a new reply.
#[derive(Debug, Default)]
struct Pacing {
    gaps: Vec<f64>,
    buffered: Vec<f64>,
}

impl Pacing {
    fn add_call(&mut self, arrivals: &[(Instant, usize)]) {
        let mut play_end: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        for &(at, bytes) in arrivals {
            let gap = last.map(|l| at.duration_since(l));
            last = Some(at);
            let within_reply = gap.is_some_and(|g| g < Duration::from_millis(500));
            if let Some(g) = gap.filter(|_| within_reply) {
                self.gaps.push(g.as_secs_f64() * 1e3);
            }
            let queued = play_end.map_or(Duration::ZERO, |e| e.saturating_duration_since(at));
            if within_reply {
                self.buffered.push(queued.as_secs_f64() * 1e3);
            }
            let audio = Duration::from_micros(bytes as u64 * 125);
            play_end = Some(at + queued + audio);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_reads_the_carriers_queue_at_each_arrival() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // A 200 ms lead, then 60 ms every 60 ms: 140 ms still queued at each arrival.
        let mut calls = vec![(ms(0), 1600)];
        calls.extend((1..=5).map(|i| (ms(i * 60), 480)));
        // A second reply after a pause; its second message comes 300 ms late: the queue
        // (100 ms) ran dry 200 ms before.
        calls.push((ms(2000), 800));
        calls.push((ms(2400), 160));
        let mut p = Pacing::default();
        p.add_call(&calls);
        assert_eq!(p.gaps.len(), 6);
        assert!((p.gaps[0] - 60.0).abs() < 1e-6);
        assert!((p.gaps[5] - 400.0).abs() < 1e-6);
        assert_eq!(p.buffered.len(), 6);
        assert!(
            p.buffered[..5].iter().all(|b| (b - 140.0).abs() < 1e-6),
            "{:?}",
            p.buffered
        );
        assert_eq!(p.buffered[5], 0.0, "the reply ran dry");
    }
}
