//! The test runs the API takes (`POST /bots/{id}/tests`) under `callbot serve`: each is run in
//! this process over its own call socket, as `callbot test` would, a few at once; the store is
//! told when a run starts, after each scenario, and when it ends. A run is held to a time
//! budget from its caller turns, so the deadline it stores is real: a run still `running`
//! past it was lost with its process, and reads as `interrupted`.

use super::Target;
use callbot_core::store::Store;
use callbot_core::testcall::{Outcome, RunStatus, Suite, TestRun};
use callbot_core::time_fmt;
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Runs made at once by one process.
const AT_ONCE: usize = 2;
/// Runs that may wait for a place meanwhile.
const WAITING: usize = 8;
/// Time a run may take: per caller turn (an answer may take 30 s to start and then play),
/// and per scenario (dialling, the greeting, the record).
const PER_TURN: Duration = Duration::from_secs(60);
const PER_SCENARIO: Duration = Duration::from_secs(30);
/// Past the budget, the last write may still take this long.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct LocalRunner {
    store: Arc<dyn Store>,
    /// This process's own API (its loopback address).
    base: url::Url,
    places: Arc<Semaphore>,
    /// Runs taken and not finished (running or waiting).
    taken: Arc<AtomicUsize>,
}

impl LocalRunner {
    /// A runner whose calls go to the API at `base` (this process's own address).
    pub fn new(store: Arc<dyn Store>, base: url::Url) -> Self {
        Self {
            store,
            base,
            places: Arc::new(Semaphore::new(AT_ONCE)),
            taken: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// The time `suite` may take.
pub fn budget(suite: &Suite) -> Duration {
    PER_TURN * suite.max_turns() as u32 + PER_SCENARIO * suite.scenarios.len() as u32
}

/// Gives the taken place back however the run ends.
struct Taken(Arc<AtomicUsize>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl callbot_functions::TestRunner for LocalRunner {
    fn has_room(&self) -> bool {
        self.taken.load(Ordering::SeqCst) < AT_ONCE + WAITING
    }

    fn start(&self, run: TestRun, suite: Suite, key: SecretString) -> bool {
        if self.taken.fetch_add(1, Ordering::SeqCst) >= AT_ONCE + WAITING {
            self.taken.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let taken = Taken(self.taken.clone());
        let (places, store) = (self.places.clone(), self.store.clone());
        let target = Target {
            base: self.base.clone(),
            api_key: key,
        };
        tokio::spawn(async move {
            let _taken = taken;
            let Ok(_place) = places.acquire_owned().await else {
                return;
            };
            execute(&*store, &target, run, &suite).await;
        });
        true
    }
}

/// Makes a run's calls, one scenario at a time, writing its progress.
async fn execute(store: &dyn Store, target: &Target, mut run: TestRun, suite: &Suite) {
    let budget = budget(suite);
    let until = tokio::time::Instant::now() + budget;
    run.status = RunStatus::Running;
    run.deadline = time_fmt::now() + budget + GRACE;
    tracing::info!(run = %run.id, bot = %run.bot, scenarios = suite.scenarios.len(), "test run started");
    save(store, &run).await;
    let bot = run.bot.to_string();
    for s in &suite.scenarios {
        let outcome =
            match tokio::time::timeout_at(until, super::scenario(target, suite, s, &bot, None))
                .await
            {
                Ok(o) => o,
                Err(_) => Outcome::failed_to_run(
                    &s.name,
                    suite.mode_of(s, None),
                    format!("the run passed its time limit ({} s)", budget.as_secs()),
                ),
            };
        run.outcomes.push(outcome);
        save(store, &run).await;
    }
    let passed = run.outcomes.iter().all(|o| o.passed);
    run.status = if passed {
        RunStatus::Passed
    } else {
        RunStatus::Failed
    };
    run.finished_at = Some(time_fmt::now());
    tracing::info!(run = %run.id, bot = %run.bot, status = ?run.status, "test run finished");
    save(store, &run).await;
}

/// Writes the run; a failed write is retried once, then logged (the run then reads as
/// `interrupted` after its deadline rather than as a result nobody stored).
async fn save(store: &dyn Store, run: &TestRun) {
    for attempt in 0..2 {
        match store.put_test_run(run).await {
            Ok(()) => return,
            Err(e) if attempt == 0 => {
                tracing::warn!(run = %run.id, error = %e, "storing a test run failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => tracing::error!(run = %run.id, error = %e, "storing a test run failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_budget_grows_with_its_turns_and_scenarios() {
        let suite = Suite::parse(
            "scenarios:\n  - {name: a, caller: [hi, bye]}\n  - {name: b, caller: {persona: p, goal: g, max_turns: 3}}\n",
        )
        .unwrap();
        assert_eq!(budget(&suite), PER_TURN * 5 + PER_SCENARIO * 2);
    }
}
