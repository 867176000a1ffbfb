//! `callbot test SCENARIOS.yaml`: test calls for customers. Each scenario is a caller (scripted
//! lines, or a persona a model plays) talking to a bot over the call WebSocket, and what the
//! bot must do (phrases it must and must not say, tools it must call with which arguments, how
//! the call ends, how long it may take to answer). Runs on the phone path (the caller's lines
//! spoken by espeak-ng and recognised by the platform) or, for speed, as text. `scenario` holds
//! the file's shape, `judge` the verdicts (both without I/O, in `callbot_core::testcall`, shared
//! with the API), `drive` the calls, `report` what is printed, `runner` the runs the API asks
//! for (`POST /bots/{id}/tests`).

pub mod drive;
pub mod report;
pub mod runner;

pub use callbot_core::testcall::{Mode, Outcome, Suite, judge, scenario};

/// Where the calls go and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API's base URL, e.g. `http://127.0.0.1:8080`.
    pub base: url::Url,
    pub api_key: secrecy::SecretString,
}

/// `callbot test`'s arguments.
#[derive(Debug)]
pub struct Options {
    pub file: std::path::PathBuf,
    pub bot: Option<String>,
    pub mode: Option<String>,
    pub server: String,
    pub api_key: secrecy::SecretString,
    pub report: Option<std::path::PathBuf>,
}

/// Reads the file, runs its scenarios, prints the report (and writes the JSON one); whether
/// every scenario passed. An error is a file or target that cannot be used at all.
pub async fn main(o: Options, out: &mut impl std::io::Write) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let yaml = std::fs::read_to_string(&o.file)
        .with_context(|| format!("reading {}", o.file.display()))?;
    let suite = Suite::parse(&yaml).with_context(|| format!("{}", o.file.display()))?;
    let bot = o
        .bot
        .or_else(|| suite.bot.clone())
        .context("which bot: --bot or `bot:` in the file")?;
    let mode = match o.mode.as_deref() {
        Some("phone") => Some(Mode::Phone),
        Some(_) => Some(Mode::Text),
        None => None,
    };
    let mut base = url::Url::parse(&o.server).with_context(|| format!("--server {}", o.server))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let target = Target {
        base,
        api_key: o.api_key,
    };
    let outcomes = run(&target, &suite, &bot, mode).await;
    for l in report::lines(&outcomes) {
        writeln!(out, "{l}")?;
    }
    if let Some(path) = &o.report {
        let json = serde_json::to_vec_pretty(&report::json(&outcomes))?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(outcomes.iter().all(|o| o.passed))
}

/// Runs every scenario of `suite` against `bot` (one after the other: each is a call).
pub async fn run(target: &Target, suite: &Suite, bot: &str, mode: Option<Mode>) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(suite.scenarios.len());
    for s in &suite.scenarios {
        out.push(scenario(target, suite, s, bot, mode).await);
    }
    out
}

/// One scenario's call and verdicts (`mode` overrides the scenario's and the suite's).
pub async fn scenario(
    target: &Target,
    suite: &Suite,
    s: &scenario::Scenario,
    bot: &str,
    mode: Option<Mode>,
) -> Outcome {
    let mode = suite.mode_of(s, mode);
    let bot = s.bot.as_deref().unwrap_or(bot);
    match drive::call(target, bot, s, mode).await {
        Ok(call) => {
            let checks = judge::judge(&s.expect, &call);
            Outcome {
                name: s.name.clone(),
                mode,
                passed: checks.iter().all(|c| c.passed),
                error: None,
                checks,
                call_sid: Some(call.sid),
                transcript: call.transcript,
            }
        }
        Err(e) => Outcome::failed_to_run(&s.name, mode, format!("{e:#}")),
    }
}
