//! The beat of a background worker in `callbot serve` (the campaign dialer, the post-call
//! worker): a tick every so often until shutdown, a pass under way finished first.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Ticks every `every` (a late tick is not made up with a burst).
#[derive(Debug)]
pub struct Beat(tokio::time::Interval);

impl Beat {
    pub fn new(every: Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self(tick)
    }

    /// True at the next tick; false once `shutdown` has resolved (then it is not polled again).
    pub async fn next(&mut self, shutdown: Pin<&mut impl Future<Output = ()>>) -> bool {
        tokio::select! {
            () = shutdown => false,
            _ = self.0.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_at_once_then_every_period_until_shutdown() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = rx.await;
        };
        tokio::pin!(shutdown);
        let mut beat = Beat::new(Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        assert!(beat.next(shutdown.as_mut()).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(beat.next(shutdown.as_mut()).await);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        tx.send(()).unwrap();
        assert!(!beat.next(shutdown.as_mut()).await);
    }
}
