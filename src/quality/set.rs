//! The benchmark's utterance set: the bot they are said to, the voices that say them, and each
//! utterance with its category, the bot's question before it and its expected words. The
//! repository's set (`bench/quality/utterances.yaml`) is built in; `--set` reads another.

use serde::Deserialize;

/// The built-in set.
pub const BUILT_IN: &str = include_str!("../../bench/quality/utterances.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Set {
    pub bot: Bot,
    pub voices: Vec<VoiceRate>,
    pub utterances: Vec<Utterance>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bot {
    pub goal: String,
    #[serde(default)]
    pub context: String,
}

/// An espeak-ng voice at a speaking rate (words per minute).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VoiceRate {
    pub voice: String,
    pub rate: u32,
}

impl VoiceRate {
    pub fn label(&self) -> String {
        format!("{}@{}", self.voice, self.rate)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utterance {
    pub id: String,
    pub category: String,
    #[serde(default)]
    pub asked: String,
    pub say: Said,
    #[serde(default)]
    pub pause_ms: Option<u32>,
    #[serde(default)]
    pub expect: Option<String>,
}

/// One stretch of speech, or several with pauses between them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Said {
    One(String),
    Parts(Vec<String>),
}

impl Utterance {
    pub fn parts(&self) -> Vec<&str> {
        match &self.say {
            Said::One(s) => vec![s.as_str()],
            Said::Parts(p) => p.iter().map(String::as_str).collect(),
        }
    }

    /// The words a perfect transcript holds.
    pub fn expected(&self) -> String {
        self.expect
            .clone()
            .unwrap_or_else(|| self.parts().join(" "))
    }

    /// Whether the caller pauses mid-sentence (the end-of-turn test).
    pub fn pauses(&self) -> bool {
        self.parts().len() > 1
    }
}

/// Reads a set, refusing one that is empty or has a part without words.
pub fn parse(yaml: &str) -> anyhow::Result<Set> {
    let set: Set = serde_yaml_ng::from_str(yaml)?;
    anyhow::ensure!(!set.voices.is_empty(), "the set has no voices");
    anyhow::ensure!(!set.utterances.is_empty(), "the set has no utterances");
    for u in &set.utterances {
        anyhow::ensure!(
            u.parts().iter().all(|p| !p.trim().is_empty()),
            "utterance {} has an empty part",
            u.id
        );
        anyhow::ensure!(
            u.pauses() == u.pause_ms.is_some(),
            "utterance {}: a list of parts needs pause_ms, and pause_ms needs parts",
            u.id
        );
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_reads_and_covers_every_category() {
        let set = parse(BUILT_IN).unwrap();
        let mut categories: Vec<&str> =
            set.utterances.iter().map(|u| u.category.as_str()).collect();
        categories.sort_unstable();
        categories.dedup();
        assert_eq!(
            categories,
            [
                "booking",
                "corrections",
                "dates",
                "names",
                "numbers",
                "yesno"
            ]
        );
        assert!(set.voices.len() >= 3);
        assert!(set.utterances.iter().filter(|u| u.pauses()).count() >= 5);
        let phone = set.utterances.iter().find(|u| u.id == "num-phone").unwrap();
        assert_eq!(phone.expected(), "It's 555 0192.");
    }

    #[test]
    fn a_broken_set_is_refused_with_its_reason() {
        let e = parse("bot: {goal: g}\nvoices: []\nutterances: []").unwrap_err();
        assert!(e.to_string().contains("no voices"), "{e}");
        let e = parse(
            "bot: {goal: g}\nvoices: [{voice: en-us, rate: 160}]\nutterances:\n  - {id: a, category: c, say: [x, y]}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pause_ms"), "{e}");
        assert!(parse("bot: {goal: g, colour: red}").is_err());
    }
}
