//! One play-out clock for all the calls of an engine: a single 20 ms ticker whose beats every
//! call's loop waits on, instead of a timer per call (thousands of timers firing 50 times a
//! second cost more than the audio they pace). It beats at two paces: every 20 ms for legs that
//! play as they receive (RTP), and every 60 ms for legs whose far end buffers what it is sent
//! (Twilio, `/call` sockets), which then get three frames per beat in one write instead of three
//! wake-ups and three writes. A call that misses beats (a busy worker) gets the latest one; its
//! pacing reads the time itself, so a late beat sends the frames that fell due.

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// The fine beat.
pub const BEAT: Duration = Duration::from_millis(20);
/// Fine beats per coarse beat.
const COARSE_EVERY: u64 = 3;

/// How often a call's loop wakes to send audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Every 20 ms: the far end plays what it gets at once (a small lead).
    Fine,
    /// Every 60 ms: the far end buffers (a lead of 200 ms covers the longer beat).
    Coarse,
}

/// The engine's clock. Cheap to clone; every clone shares one ticker, started by the first call
/// that subscribes (so it runs on the runtime that serves calls).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    beats: Arc<OnceLock<[watch::Receiver<u64>; 2]>>,
}

impl Clock {
    /// A call's view of the clock, at `pace`.
    pub fn subscribe(&self, pace: Pace) -> Beats {
        let [fine, coarse] = self.beats.get_or_init(start);
        let rx = match pace {
            Pace::Fine => fine.clone(),
            Pace::Coarse => coarse.clone(),
        };
        Beats { rx }
    }
}

/// Starts the ticker. It never stops: the clock keeps its receivers, and an idle ticker is one
/// wake-up every 20 ms for the whole process.
fn start() -> [watch::Receiver<u64>; 2] {
    let (fine_tx, fine) = watch::channel(0u64);
    let (coarse_tx, coarse) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(BEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n = 0u64;
        loop {
            every.tick().await;
            n = n.wrapping_add(1);
            let sent = fine_tx.send(n).is_ok();
            let sent = if n % COARSE_EVERY == 1 {
                coarse_tx.send(n).is_ok()
            } else {
                sent
            };
            if !sent {
                return;
            }
        }
    });
    [fine, coarse]
}

/// One call's subscription.
#[derive(Debug)]
pub struct Beats {
    rx: watch::Receiver<u64>,
}

impl Beats {
    /// Waits for the next beat (at once when one came since the last wait). Safe to cancel.
    pub async fn next(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_call_beats_every_20_ms_on_one_ticker() {
        let clock = Clock::default();
        let mut a = clock.subscribe(Pace::Fine);
        let mut b = clock.clone().subscribe(Pace::Fine);
        let t0 = tokio::time::Instant::now();
        for _ in 0..5 {
            a.next().await;
            b.next().await;
        }
        // The first beat is at once, then one every 20 ms.
        assert_eq!(t0.elapsed(), Duration::from_millis(80));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_call_gets_the_latest_beat_not_a_backlog() {
        let clock = Clock::default();
        let mut a = clock.subscribe(Pace::Fine);
        a.next().await;
        // Off the beat, so the order of two timers due at once does not matter.
        tokio::time::sleep(Duration::from_millis(110)).await;
        let t0 = tokio::time::Instant::now();
        a.next().await;
        assert_eq!(
            t0.elapsed(),
            Duration::ZERO,
            "the beat that came while busy"
        );
        a.next().await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(10),
            "and no backlog after it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn buffered_legs_beat_every_60_ms_on_the_same_ticker() {
        let clock = Clock::default();
        let mut fine = clock.subscribe(Pace::Fine);
        let mut coarse = clock.subscribe(Pace::Coarse);
        fine.next().await;
        coarse.next().await;
        let t0 = tokio::time::Instant::now();
        for _ in 0..4 {
            coarse.next().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(240));
        // The fine beat kept its 20 ms meanwhile (its latest beat is waiting).
        fine.next().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(240));
        fine.next().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(260));
    }
}
