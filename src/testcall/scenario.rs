//! The scenario file: which bot, how the calls run (`text` or `phone`), and each scenario's
//! caller and expectations. Parsed whole before any call is made, so a mistake in the file is
//! told at once, with where it is.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
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

impl Suite {
    /// Parses and checks a scenario file.
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let suite: Self = serde_yaml_ng::from_str(yaml)?;
        anyhow::ensure!(!suite.scenarios.is_empty(), "the file has no scenarios");
        for s in &suite.scenarios {
            anyhow::ensure!(!s.name.trim().is_empty(), "a scenario has no name");
            let turns = match &s.caller {
                Caller::Lines(l) => {
                    anyhow::ensure!(
                        l.iter().all(|l| !l.trim().is_empty()),
                        "scenario {:?}: an empty caller line",
                        s.name
                    );
                    l.len()
                }
                Caller::Persona(p) => p.max_turns,
            };
            anyhow::ensure!(
                (1..=MAX_TURNS).contains(&turns),
                "scenario {:?}: 1-{MAX_TURNS} caller turns",
                s.name
            );
        }
        Ok(suite)
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
    fn mistakes_are_told_before_any_call() {
        for bad in [
            "scenarios: []\n",
            "scenarios:\n  - {name: a, caller: []}\n",
            "scenarios:\n  - {name: a, caller: [\" \"]}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {sayz: [x]}}\n",
            "scenarios:\n  - {name: a, caller: [hi], expect: {ends: maybe}}\n",
            "scenarios:\n  - {name: a, caller: {persona: p, goal: g, max_turns: 0}}\n",
        ] {
            assert!(Suite::parse(bad).is_err(), "{bad}");
        }
    }
}
