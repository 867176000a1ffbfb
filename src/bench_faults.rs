//! `callbot bench calls --faults`: a fault soak. N concurrent simulated Twilio calls for S seconds
//! against a `callbot serve` child while everything that can go wrong does: each call's webhook
//! cycles through a timeout, a 500, a garbage answer and a slow answer between good ones, and the
//! recogniser is saturated (one utterance at a time, a bounded queue with a deadline). It prints
//! what a caller would notice: turns sent, turns answered, turns lost (target 0), the longest dead
//! air after the caller stopped speaking (target < 3 s), and the server's memory per call early in
//! the run against the end (bounded: no growth with call length).

use crate::bench_calls::CallBenchOptions;
use crate::bench_setup::{BenchPlatform, has_taskset, pct, proc_usage};
use anyhow::bail;
use callbot_twilio_sim::carrier::{self, Step};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server's webhook deadline in the soak.
const WEBHOOK_TIMEOUT: Duration = Duration::from_millis(2000);
/// The recogniser: one utterance at a time, this long each.
const DECODE: Duration = Duration::from_millis(150);
/// The silence after the bot's words a caller takes as their turn.
const QUIET: Duration = Duration::from_secs(3);
/// How long each caller utterance is.
const UTTERANCE: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, Copy)]
enum Fault {
    Good,
    /// No answer before the deadline.
    Timeout,
    ServerError,
    /// 200 with a body that is not JSON.
    Garbage,
    /// A good answer, late (after the "One moment." filler would start).
    Slow,
}

/// What each call's webhook does, turn after turn: never two failures in a row, so the calls
/// keep going (the give-up after repeated failures is tested elsewhere).
const CYCLE: [Fault; 6] = [
    Fault::Timeout,
    Fault::Good,
    Fault::ServerError,
    Fault::Slow,
    Fault::Garbage,
    Fault::Good,
];

async fn faulty_webhook(
    State(turns): State<Arc<Mutex<HashMap<String, usize>>>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let sid = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["call_sid"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let n = {
        let mut t = turns.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(sid).or_insert(0);
        *n += 1;
        *n - 1
    };
    let good = || axum::Json(json!({"say": crate::bench_setup::ANSWER})).into_response();
    match CYCLE[n % CYCLE.len()] {
        Fault::Good => good(),
        Fault::Timeout => {
            tokio::time::sleep(WEBHOOK_TIMEOUT + Duration::from_secs(1)).await;
            good()
        }
        Fault::ServerError => {
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
        }
        Fault::Garbage => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            "{\"say\": \"Sure, noted\", <<<",
        )
            .into_response(),
        Fault::Slow => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            good()
        }
    }
}

use axum::extract::State;

/// One call's view from the carrier: when the caller started each utterance, when bot audio
/// arrived.
#[derive(Debug, Default)]
struct Heard {
    spoke: Vec<Instant>,
    bot_audio: Vec<Instant>,
}

/// (sent, answered, dead air of each answered utterance): the longest silence the caller sat
/// through between the end of their words and the end of the bot's answer (before it, and between
/// its parts, e.g. after "One moment.").
fn score(h: &Heard, ended: Instant) -> (usize, usize, Vec<f64>) {
    let mut answered = 0;
    let mut dead = Vec::new();
    for (i, &start) in h.spoke.iter().enumerate() {
        let end = start + UTTERANCE;
        let next = h.spoke.get(i + 1).copied().unwrap_or(ended);
        let heard: Vec<Instant> = h
            .bot_audio
            .iter()
            .copied()
            .filter(|&t| t >= end && t < next)
            .collect();
        let Some(&first) = heard.first() else {
            continue;
        };
        answered += 1;
        let gaps = heard.windows(2).map(|w| w[1].duration_since(w[0]));
        let longest = gaps
            .chain([first.duration_since(end)])
            .max()
            .unwrap_or_default();
        dead.push(longest.as_secs_f64());
    }
    (h.spoke.len(), answered, dead)
}

pub async fn soak(opts: CallBenchOptions) -> anyhow::Result<Vec<String>> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let hook = axum::Router::new()
        .route("/hook", axum::routing::post(faulty_webhook))
        .with_state(Arc::new(Mutex::new(HashMap::new())));
    let env: Vec<(&str, String)> = vec![
        ("CALLBOT_SPEECH", "instant-loaded".into()),
        ("CALLBOT_INSTANT_STT_WORKERS", "1".into()),
        ("CALLBOT_INSTANT_STT_MS", DECODE.as_millis().to_string()),
        (
            "CALLBOT_WEBHOOK_TIMEOUT_MS",
            WEBHOOK_TIMEOUT.as_millis().to_string(),
        ),
    ];
    let bot = json!({"goal": "Fault soak", "voice": "local:en-us",
                     "first_message": "Hello, this is the soak bot."});
    let platform =
        BenchPlatform::start(opts.server_cores, opts.concurrency, &env, hook, bot).await?;
    let pid = platform.pid;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss0) = proc_usage(pid)?;
    let started = Instant::now();
    let speech = Arc::new(callbot_stream::speech::instant::voiced_tone(
        UTTERANCE.as_millis() as u64,
    ));
    let mut tasks = Vec::new();
    let mut heard = Vec::new();
    for i in 0..opts.concurrency {
        let h = Arc::new(Mutex::new(Heard::default()));
        heard.push(h.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let now = Instant::now();
                let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
                match e {
                    carrier::Event::CallerSpeaking => h.spoke.push(now),
                    carrier::Event::BotAudio { .. } => h.bot_audio.push(now),
                    _ => {}
                }
            }
        });
        // Speak, then wait for the bot: a patient caller takes 3 s of silence after the bot
        // spoke as its turn being over (the dead-air target), and speaks again after 15 s
        // without an answer (a lost turn).
        let wait = Step::WaitForBot {
            quiet: QUIET,
            max: Duration::from_secs(15),
        };
        let mut steps = vec![
            Step::Silence(Duration::from_millis((i as u64 * 37) % 2000)),
            wait.clone(),
        ];
        // More turns than the run holds (a turn takes 5-8 s), so every call is up for the whole
        // sampling window; the calls finish their turns after it.
        let turns = (opts.duration.as_secs() / 5).max(1);
        for _ in 0..turns {
            steps.push(Step::Audio(speech.to_vec()));
            steps.push(wait.clone());
        }
        tasks.push(platform.dial(i, steps, tx, None));
    }
    // Memory per call early (a tenth of the way) and at the end (calls still up).
    // Also a sample at every tenth of the run, to see whether memory levels off.
    let early_at = started + opts.duration / 10;
    let mut rss_early = None;
    let mut rss_late = rss0;
    let mut by_tenth = Vec::with_capacity(10);
    let late_until = started + opts.duration.mul_f64(0.9);
    while Instant::now() < late_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok((_, rss)) = proc_usage(pid) {
            if rss_early.is_none() && Instant::now() >= early_at {
                rss_early = Some(rss);
            }
            let tenth = started.elapsed().as_secs_f64() / opts.duration.as_secs_f64() * 10.0;
            if tenth >= by_tenth.len() as f64 + 1.0 {
                by_tenth.push(rss);
            }
            rss_late = rss;
        }
    }
    let (cpu1, _) = proc_usage(pid)?;
    let wall = started.elapsed().as_secs_f64();
    let (mut sent, mut answered, mut dead) = (0, 0, Vec::new());
    let mut sids = Vec::new();
    let mut completed = 0;
    for (t, h) in tasks.into_iter().zip(&heard) {
        let (sid, status, ended) = t.await?;
        completed += usize::from(status == "completed");
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        let (s, a, d) = score(&h, ended);
        sent += s;
        answered += a;
        dead.extend(d);
        sids.push(sid);
    }
    dead.sort_by(f64::total_cmp);
    // What the records say: every utterance a turn, and what each turn fell back to.
    let mut recorded = 0;
    let mut fallbacks: std::collections::BTreeMap<String, usize> = Default::default();
    for sid in &sids {
        let v = platform.record(sid).await?;
        for t in v["turns"].as_array().into_iter().flatten() {
            if t["turn"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            recorded += 1;
            let f = t["fallback"].as_str().unwrap_or("none").to_owned();
            *fallbacks.entry(f).or_default() += 1;
        }
    }
    let n = opts.concurrency as f64;
    let per_call = |rss: u64| rss.saturating_sub(rss0) as f64 / n / 1e3;
    let rss_early = rss_early.unwrap_or(rss_late);
    let fallbacks = fallbacks
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(vec![
        format!(
            "callbot bench calls --faults: {} concurrent calls for {:.0} s, server on {} core(s){}; webhook per call cycles timeout ({} ms deadline) / good / 500 / slow (1.5 s) / garbage / good; recogniser saturated (1 at a time, {} ms each, queue {} with a 4 s deadline)",
            opts.concurrency,
            opts.duration.as_secs_f64(),
            opts.server_cores,
            if has_taskset() { " (taskset)" } else { "" },
            WEBHOOK_TIMEOUT.as_millis(),
            DECODE.as_millis(),
            callbot_stream::speech::instant::QUEUE,
        ),
        format!("calls completed      {completed}/{}", opts.concurrency),
        format!("turns sent           {sent}"),
        format!(
            "turns answered       {answered} (bot audio after the caller's words, before they spoke again)"
        ),
        format!(
            "turns lost           {} (target 0)",
            sent - answered.min(sent)
        ),
        format!("turns on record      {recorded} (fallbacks: {fallbacks})"),
        format!(
            "dead air             p50 {:.2} s   p99 {:.2} s   longest {:.2} s (target < 3 s; per turn the longest silence from the end of the caller's words to the end of the answer, endpointing included)",
            pct(&dead, 0.5),
            pct(&dead, 0.99),
            dead.last().copied().unwrap_or(f64::NAN)
        ),
        format!(
            "server memory        {:.0} KB per call at {:.0} s, {:.0} KB per call at {:.0} s ({:+.1} %; target ± 10 %, RSS {:.1} MB idle)",
            per_call(rss_early),
            opts.duration.as_secs_f64() / 10.0,
            per_call(rss_late),
            opts.duration.as_secs_f64() * 0.9,
            (per_call(rss_late) / per_call(rss_early) - 1.0) * 100.0,
            rss0 as f64 / 1e6
        ),
        format!(
            "memory by tenth      {} KB per call at 1/10, 2/10, ... of the run",
            by_tenth
                .iter()
                .map(|&r| format!("{:.0}", per_call(r)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "server CPU           {:.1} % of one core",
            (cpu1 - cpu0) / wall * 100.0
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_scored_by_what_the_caller_heard() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let h = Heard {
            // Three utterances: answered 700 ms after its end; never answered; answered at once
            // ("One moment.") then after a 1.9 s pause.
            spoke: vec![at(0), at(5_000), at(12_000)],
            bot_audio: vec![at(1_700), at(1_720), at(13_500), at(13_520), at(15_420)],
        };
        let (sent, answered, dead) = score(&h, at(20_000));
        assert_eq!((sent, answered), (3, 2));
        assert_eq!(dead.len(), 2);
        assert!(
            (dead[0] - 0.7).abs() < 1e-3 && (dead[1] - 1.9).abs() < 1e-3,
            "{dead:?}"
        );
    }
}
