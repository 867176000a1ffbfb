//! A campaign's retry policy: per outcome (no answer, busy, failed, machine), how many attempts a
//! row gets in all and how long to wait before the next one.

use super::Outcome;
use crate::domain::ParseError;

/// At most `attempts` calls to a row whose calls end this way, `delay_secs` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u8,
    delay_secs: u32,
}

impl Retry {
    pub const MAX_ATTEMPTS: u8 = 10;
    /// A week.
    pub const MAX_DELAY_SECS: u32 = 7 * 24 * 3600;

    pub fn new(attempts: u8, delay_secs: u32) -> Result<Self, ParseError> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&attempts) {
            return Err(bad(format!("attempts must be 1 to {}", Self::MAX_ATTEMPTS)));
        }
        if delay_secs > Self::MAX_DELAY_SECS {
            return Err(bad(format!(
                "delay_seconds must be at most {}",
                Self::MAX_DELAY_SECS
            )));
        }
        Ok(Self {
            attempts,
            delay_secs,
        })
    }

    pub fn attempts(&self) -> u8 {
        self.attempts
    }

    pub fn delay_secs(&self) -> u32 {
        self.delay_secs
    }
}

fn bad(message: String) -> ParseError {
    ParseError::new("invalid_retry", message)
}

const OUTCOMES: [(&str, Outcome); 4] = [
    ("no_answer", Outcome::NoAnswer),
    ("busy", Outcome::Busy),
    ("failed", Outcome::Failed),
    ("machine", Outcome::Machine),
];

/// The rule for each outcome that may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    rules: [Retry; 4],
}

impl Default for RetryPolicy {
    /// No answer: 2 attempts an hour apart; busy: 3, 10 minutes apart; failed and machine: 1.
    fn default() -> Self {
        let r = |attempts, delay_secs| Retry {
            attempts,
            delay_secs,
        };
        Self {
            rules: [r(2, 3600), r(3, 600), r(1, 0), r(1, 0)],
        }
    }
}

impl RetryPolicy {
    /// `{"no_answer": {"attempts": 3, "delay_seconds": 3600}, "busy": …, "failed": …,
    /// "machine": …}`; outcomes left out keep the default rule.
    pub fn parse(raw: &serde_json::Value) -> Result<Self, ParseError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("retry must be an object keyed by outcome".into()))?;
        let mut policy = Self::default();
        for (key, rule) in obj {
            let i = OUTCOMES.iter().position(|(n, _)| n == key).ok_or_else(|| {
                bad(format!(
                    "retry: {key:?} is not one of no_answer, busy, failed, machine"
                ))
            })?;
            let fields = rule.as_object().ok_or_else(|| {
                bad(format!(
                    "retry.{key} must be {{\"attempts\", \"delay_seconds\"}}"
                ))
            })?;
            if let Some(k) = fields
                .keys()
                .find(|k| !matches!(k.as_str(), "attempts" | "delay_seconds"))
            {
                return Err(bad(format!("retry.{key}: unknown field {k:?}")));
            }
            let int = |name: &str, default: u64| -> Result<u64, ParseError> {
                match fields.get(name) {
                    None => Ok(default),
                    Some(v) => v
                        .as_u64()
                        .ok_or_else(|| bad(format!("retry.{key}.{name} must be a whole number"))),
                }
            };
            let d = policy.rules[i];
            let attempts = u8::try_from(int("attempts", d.attempts.into())?).unwrap_or(u8::MAX);
            let delay =
                u32::try_from(int("delay_seconds", d.delay_secs.into())?).unwrap_or(u32::MAX);
            policy.rules[i] = Retry::new(attempts, delay)
                .map_err(|e| bad(format!("retry.{key}: {}", e.message)))?;
        }
        Ok(policy)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = OUTCOMES
            .iter()
            .zip(self.rules)
            .map(|((n, _), r)| {
                (
                    (*n).to_owned(),
                    serde_json::json!({"attempts": r.attempts, "delay_seconds": r.delay_secs}),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// The rule for `outcome`; `None` for outcomes that are never retried (answered, interrupted).
    pub fn rule(&self, outcome: Outcome) -> Option<Retry> {
        OUTCOMES
            .iter()
            .position(|(_, o)| *o == outcome)
            .map(|i| self.rules[i])
    }

    /// After `attempts_made` attempts, the last ending with `outcome`: the wait before the next
    /// attempt, or `None` when the row is done.
    pub fn next_delay_secs(&self, outcome: Outcome, attempts_made: u32) -> Option<u32> {
        let rule = self.rule(outcome)?;
        (attempts_made < u32::from(rule.attempts)).then_some(rule.delay_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answered_or_interrupted_row_is_never_called_again() {
        let p = RetryPolicy::parse(&json!({"no_answer": {"attempts": 5}})).unwrap();
        assert_eq!(p.next_delay_secs(Outcome::Answered, 1), None);
        assert_eq!(p.next_delay_secs(Outcome::Interrupted, 1), None);
    }

    #[test]
    fn a_row_gets_the_attempts_of_its_last_outcome_then_stops() {
        let p =
            RetryPolicy::parse(&json!({"busy": {"attempts": 3, "delay_seconds": 120}})).unwrap();
        assert_eq!(p.next_delay_secs(Outcome::Busy, 1), Some(120));
        assert_eq!(p.next_delay_secs(Outcome::Busy, 2), Some(120));
        assert_eq!(p.next_delay_secs(Outcome::Busy, 3), None);
    }

    #[test]
    fn outcomes_left_out_keep_the_defaults() {
        let p =
            RetryPolicy::parse(&json!({"machine": {"attempts": 2, "delay_seconds": 60}})).unwrap();
        assert_eq!(p.next_delay_secs(Outcome::NoAnswer, 1), Some(3600));
        assert_eq!(p.next_delay_secs(Outcome::Failed, 1), None);
        assert_eq!(p.next_delay_secs(Outcome::Machine, 1), Some(60));
        assert_eq!(RetryPolicy::parse(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            json!({"voicemail": {"attempts": 2}}),
            json!({"busy": {"attempts": 0}}),
            json!({"busy": {"attempts": 11}}),
            json!({"busy": {"delay_seconds": -1}}),
            json!({"busy": {"delay_seconds": 700000}}),
            json!({"busy": {"tries": 2}}),
            json!({"busy": 3}),
            json!([]),
        ] {
            assert_eq!(
                RetryPolicy::parse(&bad).unwrap_err().code,
                "invalid_retry",
                "{bad}"
            );
        }
    }
}
