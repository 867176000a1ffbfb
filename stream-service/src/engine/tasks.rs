//! The tasks a call starts besides its turns (local partial decodes, turn notices to the
//! webhook): owned by the call, so each ends with it. At the end of the call they get a short
//! grace to finish (a notice in flight is delivered), then whatever still runs is aborted.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::{AbortHandle, JoinSet};

/// A call's side tasks. Cheap to clone; every clone names the same set.
#[derive(Debug, Clone, Default)]
pub struct CallTasks {
    set: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl CallTasks {
    pub fn new() -> Self {
        Self {
            set: Arc::new(Mutex::new(Some(JoinSet::new()))),
        }
    }

    /// Runs `task` as one of the call's; `None` (and the task is dropped, never run) once the
    /// call has ended.
    pub fn spawn<F>(&self, task: F) -> Option<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut guard = self.set.lock().unwrap_or_else(|p| p.into_inner());
        let set = guard.as_mut()?;
        // Finished tasks are reaped as new ones come, so the set stays as small as what runs.
        while set.try_join_next().is_some() {}
        Some(set.spawn(task))
    }

    /// How many are running (finished ones not yet reaped count too).
    pub fn len(&self) -> usize {
        let guard = self.set.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map_or(0, JoinSet::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call ended: no new tasks; those running get `grace` to finish, then are aborted.
    pub async fn close(&self, grace: Duration) {
        let taken = {
            let mut guard = self.set.lock().unwrap_or_else(|p| p.into_inner());
            guard.take()
        };
        let Some(mut set) = taken else {
            return;
        };
        let _ =
            tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        set.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_still_running_when_the_call_ends_are_aborted_after_the_grace() {
        let tasks = CallTasks::new();
        let quick = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let q = quick.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            q.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let stuck = tasks
            .spawn(std::future::pending::<()>())
            .expect("the call is live");
        tasks.close(Duration::from_secs(1)).await;
        assert!(
            quick.load(std::sync::atomic::Ordering::SeqCst),
            "a quick task finishes"
        );
        assert!(stuck.is_finished(), "a stuck one is aborted");
        assert!(
            tasks.spawn(async {}).is_none(),
            "nothing starts after the end"
        );
    }
}
