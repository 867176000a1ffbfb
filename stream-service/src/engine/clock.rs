//! One play-out clock for all the calls of an engine: a single 20 ms ticker whose beats every
//! call's loop waits on, instead of a timer per call (thousands of timers firing 50 times a
//! second cost more than the audio they pace). It beats at two paces: every 20 ms for legs that
//! play as they receive (RTP), and every 60 ms for legs whose far end buffers what it is sent
//! (Twilio, `/call` sockets), which then get three frames per beat in one write instead of three
//! wake-ups and three writes. The coarse beat has three phases, 20 ms apart, and calls are spread
//! over them, so the work of a beat is spread too. A call that misses beats (a busy worker) gets the latest one; its
//! pacing reads the time itself, so a late beat sends the frames that fell due.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// The fine beat.
pub const BEAT: Duration = Duration::from_millis(20);
/// Fine beats per coarse beat, and so the coarse beat's phases.
const PHASES: usize = 3;

/// How often a call's loop wakes to send audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Every 20 ms: the far end plays what it gets at once (a small lead).
    Fine,
    /// Every 60 ms: the far end buffers (the leg's lead covers the longer beat).
    Coarse,
}

#[derive(Debug)]
struct Channels {
    fine: watch::Receiver<u64>,
    /// One per phase: the coarse beat of phase `p` falls on the fine beats `n` with
    /// `n % PHASES == p`, so each fine beat wakes a third of the coarse calls, not all of them
    /// every third beat.
    coarse: [watch::Receiver<u64>; PHASES],
}

/// The engine's clock. Cheap to clone; every clone shares one ticker, started by the first call
/// that subscribes (so it runs on the runtime that serves calls).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    beats: Arc<OnceLock<Channels>>,
    /// The phase the next coarse subscriber gets (round robin).
    next_phase: Arc<AtomicUsize>,
}

impl Clock {
    /// A call's view of the clock, at `pace` (coarse calls spread over the phases).
    pub fn subscribe(&self, pace: Pace) -> Beats {
        let channels = self.beats.get_or_init(start);
        let rx = match pace {
            Pace::Fine => channels.fine.clone(),
            Pace::Coarse => {
                let phase = self.next_phase.fetch_add(1, Ordering::Relaxed) % PHASES;
                channels.coarse[phase].clone()
            }
        };
        Beats { rx }
    }
}

/// Starts the ticker. It never stops: the clock keeps its receivers, and an idle ticker is one
/// wake-up every 20 ms for the whole process.
fn start() -> Channels {
    let (fine_tx, fine) = watch::channel(0u64);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..PHASES).map(|_| watch::channel(0u64)).unzip();
    let coarse: [watch::Receiver<u64>; PHASES] = match rxs.try_into() {
        Ok(a) => a,
        Err(_) => unreachable!("one receiver per phase"),
    };
    tokio::spawn(async move {
        let mut every = tokio::time::interval(BEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n = 0u64;
        loop {
            every.tick().await;
            n = n.wrapping_add(1);
            let phase = &txs[(n % PHASES as u64) as usize];
            if fine_tx.send(n).is_err() | phase.send(n).is_err() {
                return;
            }
        }
    });
    Channels { fine, coarse }
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

    #[tokio::test(start_paused = true)]
    async fn coarse_calls_are_spread_over_three_phases() {
        let clock = Clock::default();
        let t0 = tokio::time::Instant::now();
        let twice = |mut b: Beats| async move {
            b.next().await;
            let first = t0.elapsed();
            b.next().await;
            (first, t0.elapsed())
        };
        let (a, b, c) = tokio::join!(
            twice(clock.subscribe(Pace::Coarse)),
            twice(clock.subscribe(Pace::Coarse)),
            twice(clock.subscribe(Pace::Coarse)),
        );
        let ms = Duration::from_millis;
        // Beat 1 is at once; phases 1, 2, 0 fall on beats 1, 2, 3 and every third after.
        assert_eq!(b, (ms(0), ms(60)), "phase 1");
        assert_eq!(c, (ms(20), ms(80)), "phase 2");
        assert_eq!(a, (ms(40), ms(100)), "phase 0");
    }
}
