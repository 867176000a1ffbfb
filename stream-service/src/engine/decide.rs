//! What a webhook-mode turn says, decided from the webhook's answer (or its failure), the model's
//! suggestion and the webhook's failures in a row: a plain function, no I/O.

use super::turn::Fallback;
use super::webhook::{self, Action, Failure};
use callbot_core::domain::{Brain, PhoneNumber};
use std::time::Duration;

/// What the caller hears when the webhook failed too many turns in a row, with a fallback
/// number...
pub const GIVE_UP_TRANSFER_LINE: &str =
    "I'm sorry, our system is not responding. Let me put you through to someone who can help.";
/// ...and without one.
pub const GIVE_UP_LINE: &str =
    "I'm sorry, our system is not responding right now. Please call back a little later. Goodbye.";
/// What the caller hears instead of a transfer outside the bot's `transfer_numbers`.
pub const TRANSFER_REFUSED_LINE: &str =
    "I'm sorry, I can't transfer this call. How else can I help?";

/// A reply decided in full (webhook mode, fallbacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub say: String,
    pub action: Action,
    pub fallback: Option<Fallback>,
    /// How long the webhook round took (`None`: no webhook was asked).
    pub webhook: Option<Duration>,
}

/// The bot's rules a decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub brain: &'a Brain,
    pub fallback_line: &'a str,
    /// Webhook failures in a row after which the call is handed over or ended.
    pub failure_limit: u32,
}

/// The reply of a webhook turn. `answer`: the webhook's reply or why there is none; `suggested`:
/// the model's suggestion, said when the webhook answers `continue` without words; `failures`:
/// webhook failures in a row before this turn; `took`: the webhook round's time.
pub fn decide(
    rules: Rules<'_>,
    answer: Result<webhook::Reply, Fallback>,
    suggested: Option<String>,
    failures: u32,
    took: Duration,
) -> Planned {
    let fallback_line = || rules.fallback_line.to_owned();
    let (say, action, fallback) = match answer {
        // A transfer only to the numbers the bot declares (toll fraud otherwise).
        Ok(webhook::Reply {
            action: Action::Transfer(to),
            ..
        }) if !rules.brain.may_transfer_to(to.as_str()) => {
            tracing::warn!(to = %to, "webhook asked for a transfer outside transfer_numbers; refused");
            (
                TRANSFER_REFUSED_LINE.to_owned(),
                Action::Continue,
                Some(Fallback::TransferRefused),
            )
        }
        Ok(webhook::Reply {
            say: Some(say),
            action,
        }) => (say, action, None),
        Ok(webhook::Reply {
            say: None,
            action: Action::Continue,
        }) => match suggested {
            Some(s) => (s, Action::Continue, None),
            None => (
                fallback_line(),
                Action::Continue,
                Some(Fallback::Webhook(Failure::MissingSay)),
            ),
        },
        Ok(webhook::Reply { say: None, action }) => (String::new(), action, None),
        Err(f) => (fallback_line(), Action::Continue, Some(f)),
    };
    // The business's system keeps failing: hand the caller over, or say goodbye, rather than
    // loop them through apologies until the maximum call length.
    let failed = fallback.as_ref().is_some_and(Fallback::is_webhook_failure);
    if failed && failures + 1 >= rules.failure_limit {
        tracing::warn!(failures = failures + 1, reason = ?fallback, "the webhook keeps failing; giving up on it");
        let to = rules
            .brain
            .fallback_number()
            .and_then(|n| PhoneNumber::parse(n).ok());
        let (say, action) = match to {
            Some(n) => (GIVE_UP_TRANSFER_LINE, Action::Transfer(n)),
            None => (GIVE_UP_LINE, Action::Hangup),
        };
        return Planned {
            say: say.to_owned(),
            action,
            fallback: Some(Fallback::WebhookUnavailable),
            webhook: Some(took),
        };
    }
    Planned {
        say,
        action,
        fallback,
        webhook: Some(took),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LINE: &str = "Sorry, one moment.";

    fn brain(json: serde_json::Value) -> Brain {
        serde_json::from_value(json).unwrap()
    }

    fn rules(brain: &Brain) -> Rules<'_> {
        Rules {
            brain,
            fallback_line: LINE,
            failure_limit: 3,
        }
    }

    fn reply(say: Option<&str>, action: Action) -> Result<webhook::Reply, Fallback> {
        Ok(webhook::Reply {
            say: say.map(str::to_owned),
            action,
        })
    }

    fn number(n: &str) -> PhoneNumber {
        PhoneNumber::parse(n).unwrap()
    }

    fn webhook_brain() -> Brain {
        brain(serde_json::json!({"mode": "webhook", "llm_suggestion": true}))
    }

    #[test]
    fn the_webhooks_words_and_action_are_said() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            reply(Some("Hi"), Action::Hangup),
            None,
            0,
            Duration::ZERO,
        );
        assert_eq!(
            (p.say.as_str(), p.action, p.fallback),
            ("Hi", Action::Hangup, None)
        );
    }

    #[test]
    fn continue_without_words_says_the_suggestion() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            reply(None, Action::Continue),
            Some("Sure.".into()),
            0,
            Duration::ZERO,
        );
        assert_eq!((p.say.as_str(), p.fallback), ("Sure.", None));
    }

    #[test]
    fn continue_without_words_or_suggestion_is_a_missing_say() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            reply(None, Action::Continue),
            None,
            0,
            Duration::ZERO,
        );
        assert_eq!(p.say, LINE);
        assert_eq!(p.fallback, Some(Fallback::Webhook(Failure::MissingSay)));
    }

    #[test]
    fn a_failed_webhook_speaks_the_fallback_line() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            Err(Fallback::Webhook(Failure::Timeout)),
            None,
            0,
            Duration::ZERO,
        );
        assert_eq!((p.say.as_str(), p.action), (LINE, Action::Continue));
        assert_eq!(p.fallback.unwrap().code(), "timeout");
    }

    #[test]
    fn a_transfer_outside_the_declared_numbers_is_refused() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            reply(Some("Moving you"), Action::Transfer(number("+15550001111"))),
            None,
            0,
            Duration::ZERO,
        );
        assert_eq!(
            (p.say.as_str(), p.action),
            (TRANSFER_REFUSED_LINE, Action::Continue)
        );
        assert_eq!(p.fallback, Some(Fallback::TransferRefused));
    }

    #[test]
    fn a_refused_transfer_never_counts_toward_giving_up() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            reply(None, Action::Transfer(number("+15550001111"))),
            None,
            9,
            Duration::ZERO,
        );
        assert_eq!(p.fallback, Some(Fallback::TransferRefused));
    }

    #[test]
    fn a_declared_transfer_goes_ahead() {
        let b = brain(
            serde_json::json!({"mode": "webhook", "llm_suggestion": false, "transfer_numbers": ["+15550001111"]}),
        );
        let to = number("+15550001111");
        let p = decide(
            rules(&b),
            reply(None, Action::Transfer(to.clone())),
            None,
            0,
            Duration::ZERO,
        );
        assert_eq!((p.action, p.fallback), (Action::Transfer(to), None));
    }

    #[test]
    fn the_limiting_failure_hangs_up_without_a_fallback_number() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            Err(Fallback::Webhook(Failure::Status(500))),
            None,
            2,
            Duration::ZERO,
        );
        assert_eq!((p.say.as_str(), p.action), (GIVE_UP_LINE, Action::Hangup));
        assert_eq!(p.fallback, Some(Fallback::WebhookUnavailable));
    }

    #[test]
    fn the_limiting_failure_transfers_to_the_fallback_number() {
        let b = brain(
            serde_json::json!({"mode": "webhook", "llm_suggestion": true, "fallback_number": "+15550002222"}),
        );
        let p = decide(
            rules(&b),
            Err(Fallback::RateLimited),
            None,
            2,
            Duration::ZERO,
        );
        assert_eq!(p.action, Action::Transfer(number("+15550002222")));
        assert_eq!(p.say, GIVE_UP_TRANSFER_LINE);
    }

    #[test]
    fn a_failure_below_the_limit_goes_on() {
        let b = webhook_brain();
        let p = decide(
            rules(&b),
            Err(Fallback::Webhook(Failure::BadJson)),
            None,
            1,
            Duration::ZERO,
        );
        assert_eq!(p.action, Action::Continue);
    }
}
