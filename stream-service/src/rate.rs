//! Commands per socket, without I/O: a token bucket (a steady rate and a burst), and a limit on
//! how many commands a socket may keep sending past it before it is closed. Sockets that carry
//! commands (`/call`, `/call/webrtc`, supervisors) check each text message here; audio frames are
//! not commands.

use std::time::Instant;

/// Commands a second a socket may send, on average.
pub const PER_SECOND: f64 = 50.0;
/// Commands a socket may send at once after a quiet while (a burst of trickled ICE candidates,
/// a streamed `tts`).
pub const BURST: f64 = 100.0;
/// Refused commands after which the socket is closed (1008): a client that keeps sending at
/// many times the rate is not slowed down by errors.
pub const CLOSE_AFTER: u32 = 200;

/// The `hangup` reason of a call whose own socket was closed for its commands.
pub const HANGUP_REASON: &str = "too_many_commands";

/// What to do with one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the rate: answered with an `error` event (429), not applied.
    Refuse,
    /// Over the rate for too long: the socket is closed.
    Close,
}

/// One socket's budget.
#[derive(Debug, Clone)]
pub struct CommandRate {
    tokens: f64,
    last: Option<Instant>,
    refused: u32,
}

impl Default for CommandRate {
    fn default() -> Self {
        CommandRate {
            tokens: BURST,
            last: None,
            refused: 0,
        }
    }
}

impl CommandRate {
    /// The verdict on a command that arrived at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * PER_SECOND;
            self.tokens = (self.tokens + refill).min(BURST);
        }
        self.last = Some(now);
        if self.tokens >= BURST {
            // Calm again: past refusals are forgiven.
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.refused += 1;
        if self.refused >= CLOSE_AFTER {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

/// The close frame for a socket that sent too many commands (1008, policy violation).
pub fn too_many() -> axum::extract::ws::Message {
    axum::extract::ws::Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1008,
        reason: "too many commands".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let mut r = CommandRate::default();
        let t0 = Instant::now();
        for i in 0..BURST as usize {
            assert_eq!(r.check(t0), Verdict::Allow, "command {i} of the burst");
        }
        assert_eq!(r.check(t0), Verdict::Refuse);
        // 100 ms later, five more (50 a second).
        let t1 = t0 + Duration::from_millis(100);
        for _ in 0..5 {
            assert_eq!(r.check(t1), Verdict::Allow);
        }
        assert_eq!(r.check(t1), Verdict::Refuse);
    }

    #[test]
    fn a_flood_is_closed_and_a_calm_client_is_forgiven() {
        let mut r = CommandRate::default();
        let t0 = Instant::now();
        let verdicts: Vec<_> = (0..1000).map(|_| r.check(t0)).collect();
        let closed_at = verdicts.iter().position(|v| *v == Verdict::Close);
        assert_eq!(closed_at, Some(BURST as usize + CLOSE_AFTER as usize - 1));
        // A client over the rate once, then quiet for the bucket to fill, starts afresh.
        let mut r = CommandRate::default();
        for _ in 0..(BURST as usize + CLOSE_AFTER as usize - 2) {
            r.check(t0);
        }
        let later = t0 + Duration::from_secs(3);
        assert_eq!(r.check(later), Verdict::Allow);
        for _ in 0..BURST as usize - 1 {
            r.check(later);
        }
        assert_eq!(r.check(later), Verdict::Refuse, "forgiven: not closed");
    }
}
