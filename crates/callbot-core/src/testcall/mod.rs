//! Test calls for customers, the parts without I/O that the CLI (`callbot test`) and the API
//! (`POST /bots/{id}/tests`) share: the scenario file (`scenario`), the verdicts on a finished
//! call (`judge`), a scenario's outcome, and a stored test run.

pub mod judge;
pub mod scenario;

use crate::domain::{BotId, TenantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use scenario::{Mode, ScenarioError, Suite};

/// One scenario's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    pub name: String,
    pub mode: Mode,
    /// Every check passed (and the call could be made).
    pub passed: bool,
    /// Why the scenario could not be run (no call, the bot never answered...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub checks: Vec<judge::Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    pub transcript: Vec<judge::Line>,
}

impl Outcome {
    /// A scenario that could not be run at all.
    pub fn failed_to_run(name: &str, mode: Mode, error: String) -> Self {
        Outcome {
            name: name.to_owned(),
            mode,
            passed: false,
            error: Some(error),
            checks: Vec::new(),
            call_sid: None,
            transcript: Vec::new(),
        }
    }
}

crate::uuid_id!(
    /// A test run's id: `tr_` and 32 lowercase hex digits of a UUIDv7 (ids sort by creation time).
    TestRunId, "tr_", "invalid_test_run_id", "test run id"
);

/// Where a run is. `queued` and `running` are the only ones that change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a free runner.
    Queued,
    Running,
    /// Every scenario passed.
    Passed,
    /// A scenario failed (or could not be made).
    Failed,
    /// The process running it stopped before it finished (told when read after its deadline).
    Interrupted,
}

impl RunStatus {
    pub fn finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// A test run as stored: the scenarios asked for, and their outcomes once run.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRun {
    pub id: TestRunId,
    pub tenant: TenantId,
    pub bot: BotId,
    pub status: RunStatus,
    /// Every scenario's mode, when the request chose one.
    pub mode: Option<Mode>,
    /// The scenarios as sent (already checked: they parse as a `Suite`).
    pub scenarios: serde_json::Value,
    /// One per scenario, in order, once finished.
    pub outcomes: Vec<Outcome>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// Past this, a run still queued or running was lost with its process.
    pub deadline: OffsetDateTime,
}

impl TestRun {
    /// The run as a reader sees it at `now`: one left unfinished past its deadline is
    /// `interrupted` (its process stopped; nothing else will finish it).
    pub fn seen_at(mut self, now: OffsetDateTime) -> Self {
        if !self.status.finished() && now > self.deadline {
            self.status = RunStatus::Interrupted;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_round_trip_and_bad_ones_are_refused() {
        let a = TestRunId::generate();
        assert_eq!(TestRunId::parse(a.as_str()).unwrap(), a);
        for bad in ["", "tr_", "tr_XYZ", "bot_0123456789abcdef0123456789abcdef"] {
            assert!(TestRunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unfinished_run_past_its_deadline_reads_as_interrupted() {
        let now = crate::time_fmt::now();
        let run = TestRun {
            id: TestRunId::generate(),
            tenant: TenantId::default_tenant(),
            bot: BotId::generate(),
            status: RunStatus::Running,
            mode: None,
            scenarios: serde_json::json!({}),
            outcomes: Vec::new(),
            created_at: now,
            finished_at: None,
            deadline: now + time::Duration::minutes(5),
        };
        assert_eq!(run.clone().seen_at(now).status, RunStatus::Running);
        let later = now + time::Duration::minutes(6);
        assert_eq!(run.clone().seen_at(later).status, RunStatus::Interrupted);
        let done = TestRun {
            status: RunStatus::Passed,
            ..run
        };
        assert_eq!(done.seen_at(later).status, RunStatus::Passed);
    }
}
