//! The scenario file: which bot, how the calls run (`text` or `phone`), and each scenario's
//! caller and expectations. Parsed whole before any call is made, so a mistake in the file is
//! told at once, with where it is.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The caller's lines go in as text (the `text` command): no speech either way but the
    /// bot's synthesis. Fast, and exact about the words.
    #[default]
    Text,
    /// The caller's lines are spoken (espeak-ng, 8 kHz μ-law) and recognised by the platform,
    /// as on a phone line.
    Phone,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The bot's id or number (the command line's `--bot` wins).
    #[serde(default)]
    pub bot: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Another bot than the suite's.
    #[serde(default)]
    pub bot: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    pub caller: Caller,
    #[serde(default)]
    pub expect: Expect,
}

/// Who calls: lines said in order (each after the bot has answered the previous one), or a
/// persona a language model plays (through the platform's `/llm/v1` gateway).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Caller {
    Lines(Vec<String>),
    Persona(Persona),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Who the caller is and how they talk.
    pub persona: String,
    /// What they want from the call.
    pub goal: String,
    /// Caller turns at most (default 6).
    #[serde(default = "default_turns")]
    pub max_turns: usize,
    /// The model that plays the caller (default: the first the platform's `/llm/v1/models`
    /// lists).
    #[serde(default)]
    pub model: Option<String>,
}

fn default_turns() -> usize {
    6
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Phrases the bot must say (each somewhere in the call, any case, whole words).
    #[serde(default)]
    pub says: Vec<String>,
    /// Phrases the bot must never say.
    #[serde(default)]
    pub never_says: Vec<String>,
    /// Tools the bot's model must call, with arguments that must match (strings: contained,
    /// any case; other values: equal).
    #[serde(default)]
    pub tools: Vec<ToolExpect>,
    /// How the call must end: `hangup` (the bot hangs up), `transfer`, or `open` (the bot
    /// neither hangs up nor transfers).
    #[serde(default)]
    pub ends: Option<Ending>,
    /// The longest the bot may take to start answering a caller turn, in ms.
    #[serde(default)]
    pub max_latency_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolExpect {
    pub name: String,
    #[serde(default)]
    pub args: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    Hangup,
    Transfer,
    Open,
}

/// Caller lines and persona turns at most: a scenario is a phone call, not a soak test.
const MAX_TURNS: usize = 30;
/// The longest answer a scenario may allow for, in ms.
pub const MAX_LATENCY_MS: u64 = 600_000;
/// What a name, a caller's line or a phrase must be: some visible text, no control characters
/// but tabs and line breaks (the API description's pattern for them).
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$";

/// Phrases in `says` (and in `never_says`) and tools at most per scenario.
pub const MAX_PHRASES: usize = 50;
pub const MAX_TOOLS: usize = 20;

/// The most characters a field may hold.
pub fn longest(field: &str) -> usize {
    match field {
        "name" => 200,
        "says" | "never_says" => 500,
        "tools.name" => 64,
        _ => 2000,
    }
}

fn spoken(text: &str) -> bool {
    text.chars().any(|c| !c.is_whitespace() && !c.is_control())
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// Scenarios in one file at most.
const MAX_SCENARIOS: usize = 20;

/// A scenario file that cannot be used, and why (with where, for a syntax error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(String);

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(ScenarioError(format!($($msg)+)));
        }
    };
}

impl Suite {
    /// Parses and checks a scenario file (YAML, or JSON, which is YAML too).
    pub fn parse(yaml: &str) -> Result<Self, ScenarioError> {
        let suite: Self =
            serde_yaml_ng::from_str(yaml).map_err(|e| ScenarioError(e.to_string()))?;
        suite.checked()
    }

    /// Parses and checks scenarios sent as JSON (the API's `POST /bots/{id}/tests`).
    pub fn from_json(v: serde_json::Value) -> Result<Self, ScenarioError> {
        let suite: Self = serde_path_to_error::deserialize(v).map_err(|e| {
            let at = e.path().to_string();
            ScenarioError(format!("{at}: {}", e.into_inner()))
        })?;
        suite.checked()
    }

    fn checked(self) -> Result<Self, ScenarioError> {
        for s in &self.scenarios {
            let e = &s.expect;
            let texts = std::iter::once(("name", &s.name))
                .chain(e.says.iter().map(|p| ("says", p)))
                .chain(e.never_says.iter().map(|p| ("never_says", p)))
                .chain(e.tools.iter().map(|t| ("tools.name", &t.name)));
            let caller: Vec<(&str, &String)> = match &s.caller {
                Caller::Lines(l) => l.iter().map(|l| ("caller", l)).collect(),
                Caller::Persona(p) => vec![("persona", &p.persona), ("goal", &p.goal)],
            };
            for (field, text) in texts.chain(caller) {
                ensure!(
                    spoken(text),
                    "scenario {:?}: {field} {text:?} is empty or holds control characters",
                    s.name
                );
                let max = longest(field);
                ensure!(
                    text.chars().count() <= max,
                    "scenario {:?}: {field} is longer than {max} characters",
                    s.name
                );
            }
            ensure!(
                e.says.len() <= MAX_PHRASES && e.never_says.len() <= MAX_PHRASES,
                "scenario {:?}: at most {MAX_PHRASES} phrases in says and in never_says",
                s.name
            );
            ensure!(
                e.tools.len() <= MAX_TOOLS,
                "scenario {:?}: at most {MAX_TOOLS} tools",
                s.name
            );
            ensure!(
                e.max_latency_ms.is_none_or(|ms| ms <= MAX_LATENCY_MS),
                "scenario {:?}: max_latency_ms is at most {MAX_LATENCY_MS}",
                s.name
            );
        }
        ensure!(!self.scenarios.is_empty(), "no scenarios given");
        ensure!(
            self.scenarios.len() <= MAX_SCENARIOS,
            "at most {MAX_SCENARIOS} scenarios in one run"
        );
        for s in &self.scenarios {
            ensure!(!s.name.trim().is_empty(), "a scenario has no name");
            let turns = match &s.caller {
                Caller::Lines(l) => {
                    ensure!(
                        l.iter().all(|l| !l.trim().is_empty()),
                        "scenario {:?}: an empty caller line",
                        s.name
                    );
                    l.len()
                }
                Caller::Persona(p) => p.max_turns,
            };
            ensure!(
                (1..=MAX_TURNS).contains(&turns),
                "scenario {:?}: 1-{MAX_TURNS} caller turns",
                s.name
            );
        }
        Ok(self)
    }

    /// The mode `s` (one of this suite's scenarios) runs in: `over` (a command line's), else
    /// the scenario's, else the suite's, else text.
    pub fn mode_of(&self, s: &Scenario, over: Option<Mode>) -> Mode {
        over.or(s.mode).or(self.mode).unwrap_or_default()
    }

    /// Caller turns at most over all scenarios: bounds how long a run may take.
    pub fn max_turns(&self) -> usize {
        self.scenarios
            .iter()
            .map(|s| match &s.caller {
                Caller::Lines(l) => l.len(),
                Caller::Persona(p) => p.max_turns,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_personas_parse_with_their_expectations() {
        let s = Suite::parse(
            "bot: bot_1\nmode: phone\nscenarios:\n  - name: a\n    caller: [\"Hi.\", \"Bye.\"]\n    expect: {says: [booked], ends: hangup, max_latency_ms: 3000, tools: [{name: book, args: {size: 4}}]}\n  - name: b\n    caller: {persona: a busy parent, goal: book a table}\n",
        )
        .unwrap();
        assert_eq!(s.mode, Some(Mode::Phone));
        assert!(matches!(&s.scenarios[0].caller, Caller::Lines(l) if l.len() == 2));
        assert_eq!(s.scenarios[0].expect.ends, Some(Ending::Hangup));
        assert_eq!(s.scenarios[0].expect.tools[0].args["size"], 4);
        assert!(matches!(&s.scenarios[1].caller, Caller::Persona(p) if p.max_turns == 6));
    }

    #[test]
    fn json_scenarios_parse_and_a_mistake_names_where_it_is() {
        let ok = serde_json::json!({"scenarios": [{"name": "a", "caller": ["Hi."], "expect": {"says": ["hello"]}}]});
        let s = Suite::from_json(ok).unwrap();
        assert_eq!(s.scenarios[0].expect.says, ["hello"]);
        assert_eq!(s.max_turns(), 1);
        let bad = serde_json::json!({"scenarios": [{"name": "a", "caller": ["Hi."], "expect": {"sayz": []}}]});
        let e = Suite::from_json(bad).unwrap_err().to_string();
        assert!(
            e.contains("scenarios[0].expect") && e.contains("sayz"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_told_before_any_call() {
        for bad in [
            "scenarios: []\n",
            "scenarios:\n  - {name: a, caller: []}\n",
            "scenarios:\n  - {name: a, caller: [\" \"]}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {sayz: [x]}}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {ends: maybe}}\n",
            "scenarios:\n  - {name: a, caller: {persona: p, goal: g, max_turns: 0}}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {says: [\"\"]}}\n",
            "scenarios:\n  - {name: \"a\\u0001\", caller: [hi]}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {max_latency_ms: 600001}}\n",
        ] {
            assert!(Suite::parse(bad).is_err(), "{bad}");
        }
    }
}
