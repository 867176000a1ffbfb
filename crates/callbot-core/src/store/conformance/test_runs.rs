//! Conformance checks of the stored test runs: written, replaced, read back whole, listed
//! newest first, never seen by another tenant.

use super::tenant;
use crate::domain::BotId;
use crate::store::Store;
use crate::testcall::judge::{Line, Verdict};
use crate::testcall::{Mode, Outcome, RunStatus, TestRun, TestRunId};
use crate::time_fmt;

fn run(t: &crate::domain::TenantId, bot: &BotId) -> TestRun {
    let now = time_fmt::now().replace_nanosecond(0).unwrap();
    TestRun {
        id: TestRunId::generate(),
        tenant: t.clone(),
        bot: bot.clone(),
        status: RunStatus::Queued,
        mode: Some(Mode::Text),
        scenarios: serde_json::json!({"scenarios": [{"name": "a", "caller": ["Hi."]}]}),
        outcomes: Vec::new(),
        created_at: now,
        finished_at: None,
        deadline: now + time::Duration::minutes(3),
    }
}

pub(super) async fn lifecycle(store: &dyn Store) {
    let (t, other) = (tenant(), tenant());
    let bot = BotId::generate();
    let first = run(&t, &bot);
    store.put_test_run(&first).await.unwrap();
    store.put_test_run(&first).await.unwrap();
    let mut second = run(&t, &bot);
    store.put_test_run(&second).await.unwrap();
    second.status = RunStatus::Failed;
    second.finished_at = Some(second.created_at + time::Duration::seconds(20));
    second.outcomes = vec![Outcome {
        name: "a".into(),
        mode: Mode::Text,
        passed: false,
        error: None,
        checks: vec![Verdict {
            check: "says".into(),
            passed: false,
            detail: "\"hello\" was not said".into(),
        }],
        call_sid: Some("CA0123456789abcdef0123456789abcdef".into()),
        transcript: vec![Line {
            role: "bot".into(),
            text: "Hi there.".into(),
            heard: None,
            latency_ms: Some(640),
        }],
    }];
    store.put_test_run(&second).await.unwrap();
    let got = store.get_test_run(&t, &bot, &second.id).await.unwrap();
    assert_eq!(got.as_ref(), Some(&second), "read back whole");
    let listed = store.list_test_runs(&t, &bot, 10).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        [second.id.clone(), first.id.clone()],
        "newest first, once each"
    );
    assert_eq!(store.list_test_runs(&t, &bot, 1).await.unwrap().len(), 1);
    assert!(
        store
            .list_test_runs(&t, &BotId::generate(), 10)
            .await
            .unwrap()
            .is_empty(),
        "another bot's runs"
    );
    assert_eq!(
        store.get_test_run(&other, &bot, &first.id).await.unwrap(),
        None
    );
    assert!(
        store
            .list_test_runs(&other, &bot, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another tenant writing under the same id changes nothing.
    let mut stolen = first.clone();
    stolen.tenant = other.clone();
    stolen.status = RunStatus::Passed;
    let _ = store.put_test_run(&stolen).await;
    let kept = store
        .get_test_run(&t, &bot, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, RunStatus::Queued);
    assert_eq!(
        store.get_test_run(&other, &bot, &first.id).await.unwrap(),
        None
    );
}
