//! Twilio's answering-machine detection, as the simulator plays it: a test says what a callee
//! is (a person, a machine with a greeting of some length, a fax), and an outbound call created
//! with `MachineDetection` and `AsyncAmd=true` gets the verdict posted, signed, to its
//! `AsyncAmdStatusCallback` when Twilio would give it: a person after a second and a half; a
//! machine at once with `Enable` (`machine_start`, within its greeting) or at its greeting's end
//! with `DetectMessageEnd` (`machine_end_beep`); a fax after a second.

use crate::carrier::{CallContext, Event};
use std::time::Duration;

/// What a callee is, for machine detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    Person,
    /// A voicemail greeting of this length, its beep included.
    Machine {
        greeting: Duration,
    },
    Fax,
    /// The line is busy: the call ends `busy` after a short ring, unanswered.
    Busy,
    /// Nobody picks up: the call rings for `ring` (or the request's `Timeout`, if shorter) and
    /// ends `no-answer`.
    NoAnswer {
        ring: Duration,
    },
}

impl Callee {
    /// The final status of a call nobody answers, and how long it rings first.
    pub fn unanswered(self, timeout: Duration) -> Option<(&'static str, Duration)> {
        match self {
            Callee::Busy => Some(("busy", Duration::from_millis(300))),
            Callee::NoAnswer { ring } => Some(("no-answer", ring.min(timeout))),
            Callee::Person | Callee::Machine { .. } | Callee::Fax => None,
        }
    }
}

/// The detection an outbound call asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `DetectMessageEnd` (else `Enable`).
    pub message_end: bool,
    pub callback: String,
}

/// Twilio's verdict for `callee` under `req`, and how long after the answer it comes.
pub fn verdict(callee: Callee, req: &Request) -> (&'static str, Duration) {
    match callee {
        Callee::Person => ("human", Duration::from_millis(1500)),
        Callee::Fax => ("fax", Duration::from_secs(1)),
        // Never answered: no verdict is posted.
        Callee::Busy | Callee::NoAnswer { .. } => ("unknown", Duration::ZERO),
        Callee::Machine { greeting } if req.message_end => ("machine_end_beep", greeting),
        Callee::Machine { greeting } => {
            ("machine_start", greeting.min(Duration::from_millis(2500)))
        }
    }
}

/// Posts the verdict once it is due, if the call is still up then (`live` says so).
pub async fn post_verdict(ctx: CallContext, callee: Callee, req: Request, live: impl Fn() -> bool) {
    let (answered_by, after) = verdict(callee, &req);
    tokio::time::sleep(after).await;
    if !live() {
        return;
    }
    let params: Vec<(String, String)> = [
        ("CallSid", ctx.sid.as_str()),
        ("AccountSid", ctx.account_sid.as_str()),
        ("AnsweredBy", answered_by),
        ("MachineDetectionDuration", &after.as_millis().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let http_status = match ctx.signed_post(&req.callback, &params).await {
        Ok((s, _)) => s,
        Err(_) => 0,
    };
    let _ = ctx.events.send(Event::MachineDetected {
        answered_by: answered_by.to_owned(),
        http_status,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_mode() {
        let greeting = Duration::from_secs(6);
        let end = Request {
            message_end: true,
            callback: String::new(),
        };
        let start = Request {
            message_end: false,
            ..end.clone()
        };
        assert_eq!(
            verdict(Callee::Machine { greeting }, &end),
            ("machine_end_beep", greeting)
        );
        assert_eq!(
            verdict(Callee::Machine { greeting }, &start),
            ("machine_start", Duration::from_millis(2500))
        );
        assert_eq!(verdict(Callee::Person, &end).0, "human");
        assert_eq!(verdict(Callee::Fax, &start).0, "fax");
    }
}
