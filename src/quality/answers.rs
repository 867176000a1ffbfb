//! `callbot bench answers`: how well a language model answers on the phone. A fixed evaluation
//! (`bench/answers/eval.yaml`: bots with their facts and tools, caller turns with what a good
//! answer does) is put to each model given, through the same prompt, tools and adapter a call in
//! LLM mode uses, and scored by rules so every model is judged the same way: uses the bot's
//! facts, admits what it does not know, calls the right tool with the right arguments, ends the
//! call when asked, stays short, invents no numbers. Prints the score per category, time to first
//! token and generation speed per model.

use crate::bench_setup::pct;
use anyhow::Context as _;
use callbot_core::domain::{BotMode, Brain, Variables};
use callbot_stream::engine::webhook::HistoryEntry;
use callbot_stream::llm::{ChatRequest, Llm, LlmEvent, openai::OpenAiLlm, prompt};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The built-in evaluation.
pub const BUILT_IN: &str = include_str!("../../bench/answers/eval.yaml");

/// Tokens per answer: what a call in LLM mode allows a round.
const MAX_TOKENS: u32 = 160;
/// Words a spoken answer may have.
const MAX_WORDS: usize = 40;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    pub bots: BTreeMap<String, EvalBot>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalBot {
    pub goal: String,
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub transfer_numbers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub bot: String,
    pub category: String,
    #[serde(default)]
    pub history: Vec<BTreeMap<String, String>>,
    pub caller: String,
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub mentions: Vec<Vec<String>>,
    #[serde(default)]
    pub avoids: Vec<String>,
    #[serde(default)]
    pub tool: Option<ExpectTool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectTool {
    pub name: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

impl EvalSet {
    /// Parses a set and checks that every case names a bot of the set.
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let set: Self = serde_yaml_ng::from_str(yaml).context("the evaluation set")?;
        for c in &set.cases {
            anyhow::ensure!(
                set.bots.contains_key(&c.bot),
                "case {}: no bot {:?} in the set",
                c.id,
                c.bot
            );
            for line in &c.history {
                anyhow::ensure!(
                    line.len() == 1 && (line.contains_key("bot") || line.contains_key("caller")),
                    "case {}: a history line is {{bot: ...}} or {{caller: ...}}",
                    c.id
                );
            }
        }
        Ok(set)
    }
}

/// What a model answered one case.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub text: String,
    /// The first tool call: its name and arguments (JSON text).
    pub tool: Option<(String, String)>,
    pub ttft: Option<Duration>,
    pub total: Duration,
    pub tokens: u32,
}

/// One rule's verdict on an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `expected` (the case's own expectation), `short`, `no_invented_numbers`.
    pub rule: &'static str,
    pub passed: bool,
    pub why: String,
}

/// The answer judged: the case's expectation, then (for a spoken answer) shortness and numbers.
pub fn score(case: &Case, bot: &EvalBot, answer: &Answer) -> Vec<Check> {
    let mut out = vec![expected(case, answer)];
    if answer.tool.is_none() {
        let words = answer.text.split_whitespace().count();
        let markup = answer.text.contains("**")
            || answer.text.contains('#')
            || answer.text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("- ") || l.starts_with("* ") || l.starts_with("1.")
            });
        out.push(Check {
            rule: "short",
            passed: words > 0 && words <= MAX_WORDS && !markup,
            why: format!("{words} words{}", if markup { ", markup" } else { "" }),
        });
        let known = numbers(&format!(
            "{} {} {} {}",
            bot.context,
            bot.goal,
            case.caller,
            case.history
                .iter()
                .flat_map(|l| l.values())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let invented: Vec<String> = numbers(&answer.text)
            .into_iter()
            .filter(|n| !known.contains(n))
            .collect();
        let echoed = echoes_the_prompt(&answer.text);
        out.push(Check {
            rule: "own_words",
            passed: echoed.is_none(),
            why: format!("repeats the instructions: {echoed:?}"),
        });
        out.push(Check {
            rule: "no_invented_numbers",
            passed: invented.is_empty(),
            why: format!("invented {invented:?}"),
        });
    }
    out
}

fn expected(case: &Case, answer: &Answer) -> Check {
    let check = |passed: bool, why: String| Check {
        rule: "expected",
        passed,
        why,
    };
    if let Some(want) = &case.expect.tool {
        let Some((name, args)) = &answer.tool else {
            return check(
                false,
                format!("said {:?} instead of calling {}", answer.text, want.name),
            );
        };
        if name != &want.name {
            return check(false, format!("called {name} instead of {}", want.name));
        }
        let args: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        for (key, value) in &want.args {
            let got = match &args[key] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if !got.to_lowercase().contains(&value.to_lowercase()) {
                return check(false, format!("{name}: {key} = {got:?}, wanted {value:?}"));
            }
        }
        return check(true, format!("called {name}"));
    }
    if let Some((name, _)) = &answer.tool {
        return check(false, format!("called {name} instead of answering"));
    }
    let text = format!(" {} ", answer.text.to_lowercase().replace('’', "'"));
    let has = |p: &str| crate::testcall::judge::contains_words(&text, &p.to_lowercase());
    for group in &case.expect.mentions {
        if !group.iter().any(|p| has(p)) {
            return check(false, format!("mentions none of {group:?}"));
        }
    }
    if let Some(p) = case.expect.avoids.iter().find(|p| has(p)) {
        return check(false, format!("says {p:?}"));
    }
    check(true, "as expected".into())
}

/// Six words in a row of the prompt's own wording (not the bot's facts) that the answer repeats:
/// a model that echoes its instructions has not answered, whatever phrases it happens to hold.
fn echoes_the_prompt(answer: &str) -> Option<String> {
    const RUN: usize = 6;
    let fixed = prompt::system_prompt(&prompt::PromptParts {
        goal: "",
        context: "",
        instructions: None,
        variables: &Variables::EMPTY,
    });
    let words = |t: &str| -> Vec<String> {
        t.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let fixed: std::collections::HashSet<Vec<String>> =
        words(&fixed).windows(RUN).map(<[String]>::to_vec).collect();
    words(answer)
        .windows(RUN)
        .find(|w| fixed.contains(*w))
        .map(|w| w.join(" "))
}

/// The numbers in `text`, written in digits ("fifteen" and "15" are both "15").
pub fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for w in super::wer::normalise(text) {
        if w.chars().all(|c| c.is_ascii_digit()) {
            run.push_str(&w);
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

#[derive(Debug, Clone)]
pub struct AnswersOptions {
    /// The GGUF models compared.
    pub models: Vec<PathBuf>,
    pub worker: Option<PathBuf>,
    pub threads: u32,
    /// Another evaluation set instead of the built-in one.
    pub set: Option<PathBuf>,
    /// One line per case.
    pub verbose: bool,
}

/// Puts every case to every model; the report's lines.
pub async fn run(opts: &AnswersOptions) -> anyhow::Result<Vec<String>> {
    let yaml = match &opts.set {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => BUILT_IN.to_owned(),
    };
    let set = EvalSet::parse(&yaml)?;
    let mut out = vec![format!(
        "callbot bench answers: {} cases, {} bots; greedy, max_tokens {MAX_TOKENS}, the call engine's prompt and tools; {} threads",
        set.cases.len(),
        set.bots.len(),
        opts.threads
    )];
    for model in &opts.models {
        let program = callbot_stream::llm::worker::program(opts.worker.as_deref());
        let name = model.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let worker = match callbot_stream::llm::worker::start(&program, model, opts.threads).await {
            Ok(w) => w,
            // One model that cannot run does not hide the others' figures.
            Err(e) => {
                out.push(format!("{name}: cannot run: {e}"));
                continue;
            }
        };
        let llm = OpenAiLlm::new(&worker.base_url, None, "local", "local");
        let mut results = Vec::with_capacity(set.cases.len());
        for case in &set.cases {
            let bot = &set.bots[&case.bot];
            let answer = ask(&llm, bot, case).await?;
            let checks = score(case, bot, &answer);
            if opts.verbose {
                out.push(case_line(name, case, &answer, &checks));
            }
            results.push((case, answer, checks));
        }
        out.extend(summary(name, &results));
    }
    Ok(out)
}

async fn ask(llm: &OpenAiLlm, bot: &EvalBot, case: &Case) -> anyhow::Result<Answer> {
    let brain = Brain::parse(BotMode::Llm, false, &bot.tools, &bot.transfer_numbers)
        .map_err(|(field, e)| anyhow::anyhow!("bot {}: {field}: {e}", case.bot))?;
    let system = prompt::system_prompt(&prompt::PromptParts {
        goal: &bot.goal,
        context: &bot.context,
        instructions: None,
        variables: &Variables::EMPTY,
    });
    let history: Vec<HistoryEntry> = case
        .history
        .iter()
        .flat_map(|l| l.iter())
        .map(|(who, said)| HistoryEntry {
            role: if who == "caller" { "user" } else { "bot" },
            content: said.clone(),
        })
        .collect();
    let request = ChatRequest {
        // The engine's choice for the embedded model: the facts go with the caller's words.
        messages: prompt::messages(system, &history, &case.caller, Some(&bot.context)),
        tools: callbot_stream::engine::offered_by(&brain),
        max_tokens: MAX_TOKENS,
        temperature: 0.0,
    };
    let started = Instant::now();
    let mut answer = Answer::default();
    let mut stream = llm.chat(&request).await.context("asking the model")?;
    while let Some(ev) = stream.next().await {
        match ev.context("the model's answer")? {
            LlmEvent::Text(s) => {
                answer.ttft.get_or_insert_with(|| started.elapsed());
                answer.text.push_str(&s);
            }
            LlmEvent::ToolCall(c) => {
                answer.ttft.get_or_insert_with(|| started.elapsed());
                answer.tool.get_or_insert((c.name, c.arguments));
            }
            LlmEvent::Usage(u) => answer.tokens += u.completion_tokens,
            LlmEvent::Done(_) => break,
        }
    }
    answer.total = started.elapsed();
    answer.text = answer.text.trim().to_owned();
    Ok(answer)
}

fn case_line(model: &str, case: &Case, a: &Answer, checks: &[Check]) -> String {
    let said = match &a.tool {
        Some((n, args)) => format!("<{n} {args}>"),
        None => format!("{:?}", a.text),
    };
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.rule, c.why))
        .collect();
    let verdict = if failed.is_empty() {
        "pass".to_owned()
    } else {
        format!("FAIL ({})", failed.join("; "))
    };
    format!("  {model} {:<16} {said} -> {verdict}", case.id)
}

fn summary(model: &str, results: &[(&Case, Answer, Vec<Check>)]) -> Vec<String> {
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut all = (0, 0);
    for (case, _, checks) in results {
        for c in checks {
            let key = if c.rule == "expected" {
                format!("{} (expected)", case.category)
            } else {
                c.rule.to_owned()
            };
            let e = by.entry(key).or_default();
            e.0 += usize::from(c.passed);
            e.1 += 1;
            all.0 += usize::from(c.passed);
            all.1 += 1;
        }
    }
    let cases_passed = results
        .iter()
        .filter(|(_, _, c)| c.iter().all(|c| c.passed))
        .count();
    let mut ttft: Vec<f64> = results
        .iter()
        .filter_map(|(_, a, _)| a.ttft.map(|t| t.as_secs_f64() * 1e3))
        .collect();
    ttft.sort_by(f64::total_cmp);
    let (tokens, secs) = results.iter().fold((0u64, 0.0f64), |(n, s), (_, a, _)| {
        let generating = a.total.saturating_sub(a.ttft.unwrap_or_default());
        (n + u64::from(a.tokens), s + generating.as_secs_f64())
    });
    let mut out = vec![format!(
        "{model}: cases passed {cases_passed}/{}  checks {}/{} ({:.0} %)   time to first token p50 {:.0} ms  p95 {:.0} ms   generation {:.0} tokens/s",
        results.len(),
        all.0,
        all.1,
        100.0 * all.0 as f64 / all.1.max(1) as f64,
        pct(&ttft, 0.5),
        pct(&ttft, 0.95),
        tokens as f64 / secs.max(1e-9)
    )];
    for (k, (p, n)) in by {
        out.push(format!("  {k:<28} {p}/{n}"));
    }
    out
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
