//! What a benchmark learns from many simulated calls without an event per message: playout
//! underruns, and how late the carriers' own 20 ms clocks ran. A carrier that runs late (its
//! process overloaded) reads the bot's audio late too, so its pacing figures and underruns are
//! its own, not the server's; the lateness says when.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Shared by the calls of a benchmark; every update is one relaxed atomic add.
#[derive(Debug, Default)]
pub struct Probe {
    /// How late each tick of the carriers' clocks fired.
    pub lag: Lateness,
    underruns: AtomicU64,
}

impl Probe {
    pub(crate) fn underrun(&self) {
        self.underruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the bot's audio ran dry mid-reply (as [`crate::carrier::Event::Underrun`]).
    pub fn underruns(&self) -> u64 {
        self.underruns.load(Ordering::Relaxed)
    }
}

/// How late each tick of the carriers' clocks fired, in 1 ms buckets up to a second (later ticks
/// count in the last). Shared by many calls; recording is one relaxed atomic add.
#[derive(Debug)]
pub struct Lateness {
    buckets: Box<[AtomicU64]>,
}

const BUCKETS: usize = 1000;

impl Default for Lateness {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Lateness {
    pub fn record(&self, late: Duration) {
        let ms = (late.as_millis() as usize).min(BUCKETS - 1);
        self.buckets[ms].fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The lateness at quantile `q` (0..=1), to the millisecond (upper edge of its bucket);
    /// `None` before any tick.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return Some(Duration::from_millis(ms as u64 + 1));
            }
        }
        Some(Duration::from_millis(BUCKETS as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_recorded_lateness() {
        let l = Lateness::default();
        assert_eq!(l.quantile(0.99), None);
        for _ in 0..98 {
            l.record(Duration::from_micros(300));
        }
        l.record(Duration::from_millis(25));
        l.record(Duration::from_secs(3));
        assert_eq!(l.count(), 100);
        assert_eq!(l.quantile(0.5), Some(Duration::from_millis(1)));
        assert_eq!(l.quantile(0.99), Some(Duration::from_millis(26)));
        assert_eq!(l.quantile(1.0), Some(Duration::from_millis(1000)));
    }
}
