//! `callbot bench llm`: the language model's share of a turn, in figures.
//!
//! 1. The embedded model (the `callbot-llm` worker as `serve` runs it): scripted 10-turn
//!    conversations through the same adapter and prompts the call engine uses; time to first
//!    token and reply time at turns 1, 5 and 10 (p50/p95), generation speed, the worker's CPU and
//!    memory.
//! 2. How many concurrent calls one worker serves before time to first token passes 1 s: calls
//!    that each ask for a reply, then listen and speak for a few seconds, at rising concurrency.
//! 3. The platform's own added latency in LLM mode: simulated calls through the whole platform
//!    (Twilio simulator, media stream, engine, instant speech engines) against a model server that
//!    answers after a fixed delay; end of the caller's turn → first reply audio sent, minus the
//!    model's delay and the speech engines' time.

use crate::bench_setup::{pct, proc_usage};
use anyhow::Context as _;
use callbot_core::settings::{LlmSettings, Settings, SpeechSettings};
use callbot_stream::engine::webhook::HistoryEntry;
use callbot_stream::llm::{ChatRequest, Llm, LlmEvent, openai::OpenAiLlm, prompt};
use futures_util::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LlmBenchOptions {
    pub model: PathBuf,
    pub worker: Option<PathBuf>,
    pub threads: u32,
    /// Conversations of 10 turns for the per-turn figures.
    pub calls: usize,
    /// Concurrency levels tried for the capacity figure.
    pub levels: Vec<usize>,
    pub level_secs: u64,
    /// The fixed delay of the model stand-in in the platform-overhead run.
    pub standin_delay: Duration,
}

const CALLER_LINES: [&str; 10] = [
    "Hi, I'd like to book a table for tonight.",
    "There will be four of us.",
    "Around seven thirty if possible.",
    "Do you have anything by the window?",
    "Great. Is there parking nearby?",
    "One of us is vegetarian, is that a problem?",
    "Can we bring our own wine?",
    "What is the corkage fee?",
    "Okay, the name is Miller.",
    "That's all, thank you very much.",
];

const CONTEXT: &str = "Open 5 PM to 10 PM, Tuesday to Sunday. Window tables on request. Street \
     parking and a garage on Elm Street. Vegetarian dishes available. Corkage fee 15 dollars.";

fn bot_prompt() -> String {
    static NONE: callbot_core::domain::Variables = callbot_core::domain::Variables::EMPTY;
    prompt::system_prompt(&prompt::PromptParts {
        goal: "Take reservations for Bella Vista, an Italian restaurant",
        context: CONTEXT,
        instructions: None,
        variables: &NONE,
    })
}

/// One reply: (time to first token, whole reply, completion tokens, reply text, prompt tokens).
async fn one_reply(
    llm: &OpenAiLlm,
    history: &[HistoryEntry],
    line: &str,
) -> anyhow::Result<(Duration, Duration, u32, String, u32)> {
    let req = ChatRequest {
        messages: prompt::messages(bot_prompt(), history, line, Some(CONTEXT)),
        tools: Vec::new(),
        max_tokens: 60,
        temperature: 0.0,
    };
    let started = Instant::now();
    let mut stream = llm.chat(&req).await.context("model request")?;
    let (mut ttft, mut text, mut tokens, mut prompt_tokens) = (None, String::new(), 0, 0);
    while let Some(ev) = stream.next().await {
        match ev.context("model stream")? {
            LlmEvent::Text(t) => {
                ttft.get_or_insert_with(|| started.elapsed());
                text.push_str(&t);
            }
            LlmEvent::Usage(u) => {
                tokens = u.completion_tokens;
                prompt_tokens = u.prompt_tokens;
            }
            LlmEvent::ToolCall(_) => {}
            LlmEvent::Done(_) => break,
        }
    }
    let total = started.elapsed();
    Ok((ttft.unwrap_or(total), total, tokens, text, prompt_tokens))
}

/// A conversation: replies until `turns` are done or `until` has passed, the history growing as
/// heard, `pause` between turns (the caller listening and speaking). `who` makes the greeting,
/// and so the prompt after the shared system prompt, this call's own.
async fn conversation(
    llm: &OpenAiLlm,
    who: usize,
    turns: usize,
    pause: Duration,
    until: Option<Instant>,
) -> anyhow::Result<Vec<(Duration, Duration, u32)>> {
    let mut history = vec![HistoryEntry {
        role: "bot",
        content: format!("Bella Vista, this is desk {who}, how can I help you?"),
    }];
    let mut out = Vec::new();
    for line in CALLER_LINES.iter().cycle().take(turns) {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let (ttft, total, tokens, text, _) = one_reply(llm, &history, line).await?;
        out.push((ttft, total, tokens));
        history.push(HistoryEntry {
            role: "user",
            content: (*line).to_owned(),
        });
        history.push(HistoryEntry {
            role: "bot",
            content: callbot_stream::llm::sentences::clean(&text),
        });
        tokio::time::sleep(pause).await;
    }
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub async fn llm(opts: LlmBenchOptions) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let program = callbot_stream::llm::worker::program(opts.worker.as_deref());
    let worker = callbot_stream::llm::worker::start(&program, &opts.model, opts.threads)
        .await
        .context("starting the model worker")?;
    let pid = worker.pid.context("worker pid")?;
    let llm = OpenAiLlm::new(&worker.base_url, None, "local", "local");
    out.push(format!(
        "callbot bench llm: embedded model {} through callbot-llm ({} threads), {} conversations of 10 turns, max_tokens 60, greedy",
        opts.model.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        opts.threads,
        opts.calls
    ));
    // The first request finds nothing cached: the whole prompt is evaluated.
    let (cold, _, _, _, cold_tokens) = one_reply(&llm, &[], "Hello?").await?;
    let (cpu0, _) = proc_usage(pid)?;
    let started = Instant::now();
    let mut by_turn: Vec<Vec<(Duration, Duration, u32)>> = vec![Vec::new(); 10];
    let mut peak_rss = 0;
    for call in 0..opts.calls {
        for (i, r) in conversation(&llm, call, 10, Duration::ZERO, None)
            .await?
            .into_iter()
            .enumerate()
        {
            by_turn[i].push(r);
        }
        peak_rss = peak_rss.max(proc_usage(pid)?.1);
    }
    let (cpu1, rss) = proc_usage(pid)?;
    let busy = started.elapsed().as_secs_f64();
    out.push(format!(
        "cold start (nothing cached, {cold_tokens} prompt tokens evaluated): time to first token {:.0} ms; later calls of the bot find its system prompt cached",
        ms(cold)
    ));
    for t in [1usize, 5, 10] {
        let s = &by_turn[t - 1];
        let ttft = sorted(s.iter().map(|r| ms(r.0)).collect());
        let total = sorted(s.iter().map(|r| ms(r.1)).collect());
        out.push(format!(
            "turn {t:>2}: time to first token p50 {:>6.0} ms  p95 {:>6.0} ms   reply p50 {:>6.0} ms  p95 {:>6.0} ms",
            pct(&ttft, 0.5),
            pct(&ttft, 0.95),
            pct(&total, 0.5),
            pct(&total, 0.95)
        ));
    }
    let (tokens, gen_secs) = by_turn.iter().flatten().fold((0u64, 0.0f64), |(n, s), r| {
        (n + u64::from(r.2), s + (r.1 - r.0).as_secs_f64())
    });
    out.push(format!(
        "generation {:.0} tokens/s ({} tokens)   worker CPU {:.0} % of one core while busy   worker RSS {:.0} MB (peak {:.0} MB)",
        tokens as f64 / gen_secs.max(1e-9),
        tokens,
        (cpu1 - cpu0) / busy * 100.0,
        rss as f64 / 1e6,
        peak_rss.max(rss) as f64 / 1e6
    ));

    // Capacity: calls, each its own conversation (more calls than cache slots), that ask, then
    // listen and speak for 4 s, at rising concurrency.
    let mut served = 0;
    for &c in &opts.levels {
        let until = Instant::now() + Duration::from_secs(opts.level_secs);
        let llm = Arc::new(llm.clone());
        let mut tasks = Vec::new();
        for i in 0..c {
            let llm = llm.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(4000 * i as u64 / c as u64)).await;
                let turns = conversation(
                    &llm,
                    100 + i,
                    usize::MAX,
                    Duration::from_secs(4),
                    Some(until),
                )
                .await?;
                anyhow::Ok(turns.into_iter().map(|r| ms(r.0)).collect::<Vec<_>>())
            }));
        }
        let mut ttfts = Vec::new();
        for t in tasks {
            ttfts.extend(t.await??);
        }
        let ttfts = sorted(ttfts);
        let p95 = pct(&ttfts, 0.95);
        out.push(format!(
            "{c:>3} concurrent calls (each its own conversation, a turn every reply + 4 s): time to first token p50 {:>6.0} ms  p95 {:>6.0} ms  ({} replies)",
            pct(&ttfts, 0.5),
            p95,
            ttfts.len()
        ));
        if p95 <= 1000.0 {
            served = c;
        } else {
            break;
        }
    }
    out.push(format!(
        "one worker serves {served} concurrent calls with p95 time to first token ≤ 1 s"
    ));
    drop(worker);
    out.extend(platform_overhead(opts.standin_delay).await?);
    Ok(out)
}

/// A model server that streams a two-sentence reply after a fixed delay (OpenAI SSE format).
pub(crate) async fn delayed_model(delay: Duration) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || async move {
            tokio::time::sleep(delay).await;
            let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                let c = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                format!("data: {c}\n\n")
            };
            let body = [
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": "Sure, I can book that for you. "}), None),
                chunk(json!({"content": "What time would you like?"}), None),
                chunk(json!({}), Some("stop")),
                "data: [DONE]\n\n".to_owned(),
            ]
            .concat();
            ([("content-type", "text/event-stream")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

async fn platform_overhead(delay: Duration) -> anyhow::Result<Vec<String>> {
    use callbot_twilio_sim::carrier::{Script, Step};
    let base = delayed_model(delay).await?;
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::for_local(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    settings.addr = listener.local_addr()?;
    settings.calls.speech = SpeechSettings::Instant;
    settings.calls.end_silence = Duration::from_millis(500);
    settings.limits.max_calls_per_tenant = 64;
    settings.llm = LlmSettings::OpenAi {
        base_url: url::Url::parse(&base)?,
        api_key: None,
        model: "m".into(),
    };
    let platform = crate::server::build(settings).await?;
    let state = platform.state.clone();
    let sim = platform.sim.clone().context("local telephony")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::server::run(listener, platform, async {
        let _ = stopped.await;
    }));
    let tenant = callbot_core::domain::TenantId::parse("bench")?;
    let (key, hash) = callbot_core::apikey::generate();
    state.store.put_api_key(&hash, &tenant, "bench").await?;
    let http = reqwest::Client::new();
    let url = format!("http://{}", state.settings.addr);
    let bot: serde_json::Value = http
        .post(format!("{url}/bots"))
        .header("x-api-key", callbot_core::apikey::reveal(&key))
        .json(&json!({"goal": "Benchmark", "mode": "llm", "first_message": "Hello."}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let number = bot["number"].as_str().context("number")?.to_owned();
    let wait = Step::WaitForBot {
        quiet: Duration::from_millis(300),
        max: Duration::from_secs(10),
    };
    let (calls, turns) = (4, 6);
    let mut tasks = Vec::new();
    for i in 0..calls {
        let mut steps = vec![Step::Silence(Duration::from_millis(250 * i)), wait.clone()];
        for _ in 0..turns {
            steps.push(Step::Audio(callbot_stream::speech::instant::voiced_tone(
                800,
            )));
            steps.push(wait.clone());
        }
        let mut handle = sim.dial(
            &format!("+1555000{i:04}"),
            &number,
            Script {
                steps,
                hangup_when_done: true,
            },
        )?;
        tasks.push(tokio::spawn(async move {
            callbot_twilio_sim::events_until_end(&mut handle, Duration::from_secs(120)).await;
            handle.sid.clone()
        }));
    }
    let mut added = Vec::new();
    for t in tasks {
        let sid = t.await?;
        let sid = callbot_core::domain::CallSid::parse(&sid)?;
        // Turns are stored as they complete; the last lands just after the hang-up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for turn in state.store.turns(&tenant, &sid).await? {
            let t = &turn.timings;
            if let (Some(first), Some(_)) = (t.first_frame_ms, &t.llm) {
                let engines = t.stt_ms.unwrap_or(0) + t.tts_first_byte_ms.unwrap_or(0);
                added.push(first as f64 - engines as f64 - ms(delay));
            }
        }
    }
    let _ = stop.send(());
    let added = sorted(added);
    Ok(vec![format!(
        "platform overhead in LLM mode (model stand-in answering after {:.0} ms; {calls} calls x {turns} turns, instant speech): end of turn → first reply audio sent, minus the model's delay: p50 {:.1} ms  p95 {:.1} ms  ({} turns)",
        ms(delay),
        pct(&added, 0.5),
        pct(&added, 0.95),
        added.len()
    )])
}
