//! The verdicts on a finished test call: what was said, which tools ran, how the call ended and
//! how long the bot took, against a scenario's expectations. No I/O.

use super::scenario::{Ending, Expect};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A line of the call as the runner saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    /// `bot` or `caller`.
    pub role: String,
    pub text: String,
    /// Caller lines on the phone path: what the platform recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    /// Bot lines: end of the caller's turn (their text sent, or their audio ended) → the
    /// bot's reply started playing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// What a test call did.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub sid: String,
    pub transcript: Vec<Line>,
    /// The tools the bot's model called (name, arguments), from the call's record.
    pub tools: Vec<(String, Value)>,
    /// How it ended.
    pub ending: Option<Ending>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verdict {
    /// `says`, `never_says`, `tool`, `ends`, `max_latency_ms`.
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

fn verdict(check: &'static str, passed: bool, detail: String) -> Verdict {
    Verdict {
        check: check.to_owned(),
        passed,
        detail,
    }
}

/// One verdict per expectation.
pub fn judge(expect: &Expect, call: &Call) -> Vec<Verdict> {
    let said: String = call
        .transcript
        .iter()
        .filter(|l| l.role == "bot")
        .map(|l| format!(" {} ", l.text.to_lowercase()))
        .collect();
    let has = |p: &str| contains_words(&said, &p.to_lowercase());
    let mut out = Vec::new();
    for p in &expect.says {
        let ok = has(p);
        out.push(verdict("says", ok, format!("{p:?} {}", said_or_not(ok))));
    }
    for p in &expect.never_says {
        let ok = !has(p);
        out.push(verdict(
            "never_says",
            ok,
            format!("{p:?} {}", said_or_not(!ok)),
        ));
    }
    for t in &expect.tools {
        let found = call.tools.iter().find(|(name, args)| {
            name == &t.name && t.args.iter().all(|(k, want)| arg_matches(&args[k], want))
        });
        let detail = match found {
            Some((name, args)) => format!("{name} called with {args}"),
            None => {
                let called: Vec<String> =
                    call.tools.iter().map(|(n, a)| format!("{n} {a}")).collect();
                format!(
                    "{} with {:?} not called (called: {})",
                    t.name,
                    t.args,
                    if called.is_empty() {
                        "none".to_owned()
                    } else {
                        called.join(", ")
                    }
                )
            }
        };
        out.push(verdict("tool", found.is_some(), detail));
    }
    if let Some(want) = expect.ends {
        let got = call.ending.unwrap_or(Ending::Open);
        out.push(verdict(
            "ends",
            got == want,
            format!("wanted {want:?}, the call ended {got:?}").to_lowercase(),
        ));
    }
    if let Some(max) = expect.max_latency_ms {
        let worst = call.transcript.iter().filter_map(|l| l.latency_ms).max();
        let ok = worst.is_some_and(|w| w <= max);
        let detail = match worst {
            Some(w) => format!("slowest answer {w} ms (at most {max})"),
            None => "the bot never answered a caller turn".to_owned(),
        };
        out.push(verdict("max_latency_ms", ok, detail));
    }
    out
}

fn said_or_not(said: bool) -> &'static str {
    if said { "was said" } else { "was not said" }
}

/// `phrase` as whole words of `text` ("no" is not in "know"); the answer evaluation's phrases are
/// matched the same way.
pub fn contains_words(text: &str, phrase: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(phrase).any(|(i, _)| {
        edge(text[..i].chars().next_back()) && edge(text[i + phrase.len()..].chars().next())
    })
}

/// A wanted argument: strings are contained (any case) in the value's text; other values equal
/// (a number also matches its digits in a string: models write `"4"` as often as `4`).
fn arg_matches(got: &Value, want: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string(),
    };
    match want {
        Value::String(w) => text(got).contains(&w.to_lowercase()),
        Value::Number(n) => got == want || text(got).trim() == n.to_string().as_str(),
        other => got == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testcall::scenario::ToolExpect;
    use serde_json::json;

    fn call(bot: &[&str]) -> Call {
        Call {
            transcript: bot
                .iter()
                .map(|t| Line {
                    role: "bot".into(),
                    text: (*t).into(),
                    heard: None,
                    latency_ms: Some(500),
                })
                .collect(),
            ..Call::default()
        }
    }

    fn failed(v: &[Verdict]) -> Vec<&str> {
        v.iter()
            .filter(|v| !v.passed)
            .map(|v| v.check.as_str())
            .collect()
    }

    #[test]
    fn a_phrase_must_be_said_by_the_bot_as_whole_words() {
        let e = Expect {
            says: vec!["booked".into(), "No".into()],
            ..Expect::default()
        };
        assert!(failed(&judge(&e, &call(&["I have BOOKED it.", "No problem."]))).is_empty());
        assert_eq!(failed(&judge(&e, &call(&["I know, booked."]))), ["says"]);
        let mut c = call(&[]);
        c.transcript.push(Line {
            role: "caller".into(),
            text: "booked no".into(),
            heard: None,
            latency_ms: None,
        });
        assert_eq!(
            failed(&judge(&e, &c)),
            ["says", "says"],
            "the caller's words do not count"
        );
    }

    #[test]
    fn a_forbidden_phrase_fails() {
        let e = Expect {
            never_says: vec!["sorry for your loss".into()],
            ..Expect::default()
        };
        assert_eq!(
            failed(&judge(&e, &call(&["I'm sorry for your loss."]))),
            ["never_says"]
        );
        assert!(failed(&judge(&e, &call(&["Sorry, we are full."]))).is_empty());
    }

    #[test]
    fn a_tool_must_be_called_with_matching_arguments() {
        let e = Expect {
            tools: vec![ToolExpect {
                name: "book".into(),
                args: [
                    ("size".to_owned(), json!(4)),
                    ("name".into(), json!("miller")),
                ]
                .into(),
            }],
            ..Expect::default()
        };
        let mut c = call(&[]);
        c.tools = vec![("book".into(), json!({"size": "4", "name": "Ann Miller"}))];
        assert!(failed(&judge(&e, &c)).is_empty());
        c.tools = vec![("book".into(), json!({"size": 2, "name": "Miller"}))];
        assert_eq!(failed(&judge(&e, &c)), ["tool"]);
        c.tools = vec![("other".into(), json!({"size": 4, "name": "Miller"}))];
        assert_eq!(failed(&judge(&e, &c)), ["tool"]);
    }

    #[test]
    fn the_ending_must_be_the_one_wanted() {
        let e = Expect {
            ends: Some(Ending::Hangup),
            ..Expect::default()
        };
        let mut c = call(&["Bye."]);
        assert_eq!(failed(&judge(&e, &c)), ["ends"], "still open");
        c.ending = Some(Ending::Hangup);
        assert!(failed(&judge(&e, &c)).is_empty());
        c.ending = Some(Ending::Transfer);
        assert_eq!(failed(&judge(&e, &c)), ["ends"]);
    }

    #[test]
    fn the_slowest_answer_must_be_within_the_limit() {
        let e = Expect {
            max_latency_ms: Some(800),
            ..Expect::default()
        };
        let mut c = call(&["Hi."]);
        assert!(failed(&judge(&e, &c)).is_empty());
        c.transcript[0].latency_ms = Some(900);
        assert_eq!(failed(&judge(&e, &c)), ["max_latency_ms"]);
        c.transcript[0].latency_ms = None;
        assert_eq!(
            failed(&judge(&e, &c)),
            ["max_latency_ms"],
            "no answer at all"
        );
    }
}
