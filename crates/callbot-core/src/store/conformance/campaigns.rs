//! Conformance checks of the campaign store: a row is claimed once, the concurrency bound holds
//! under racing claims, attempts end only once, and cancelling stops waiting rows.

use super::tenant;
use crate::domain::{
    BotId, CallSid, CallingWindow, CampaignId, CampaignStatus, Outcome, PhoneNumber, RetryPolicy,
    RowState, Variables,
};
use crate::store::campaigns::{Campaign, CampaignRow, Finish};
use crate::store::{Store, StoreError};
use crate::time_fmt;
use std::sync::Arc;

fn campaign(max_concurrency: u32, rows: u32) -> (Campaign, Vec<CampaignRow>) {
    let now = time_fmt::now();
    let c = Campaign {
        id: CampaignId::generate(),
        tenant: tenant(),
        bot: BotId::generate(),
        name: "reminders".into(),
        window: CallingWindow::default(),
        retry: RetryPolicy::default(),
        max_concurrency,
        status: CampaignStatus::Running,
        rows,
        created_at: now,
        updated_at: now,
    };
    let rows = (0..rows)
        .map(|i| {
            let to = PhoneNumber::parse(&format!("+1555010{i:04}")).unwrap();
            let vars =
                Variables::parse(&serde_json::json!({"name": format!("n{i}")}), "v").unwrap();
            CampaignRow::new(i, to, vars)
        })
        .collect();
    (c, rows)
}

pub async fn run_all(store: Arc<dyn Store>) {
    rows_round_trip_and_claims_are_single(&*store).await;
    racing_claims_never_exceed_the_bound(store.clone()).await;
    attempts_end_once_and_retries_wait(&*store).await;
    cancelling_stops_waiting_rows_and_completion_needs_all(&*store).await;
    rows_are_released_once_each(&*store).await;
    listings_are_the_tenants_newest_first(&*store).await;
}

async fn rows_are_released_once_each(store: &dyn Store) {
    let (c, rows) = campaign(2, 5);
    store.create_campaign(&c, &rows).await.unwrap();
    assert_eq!(store.release_rows(&c.id, 2).await.unwrap(), 0..2);
    assert_eq!(store.release_rows(&c.id, 2).await.unwrap(), 2..4);
    assert_eq!(store.release_rows(&c.id, 2).await.unwrap(), 4..5);
    assert_eq!(
        store.release_rows(&c.id, 1).await.unwrap(),
        5..5,
        "all released"
    );
    let unknown = store.release_rows(&CampaignId::generate(), 1).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn listings_are_the_tenants_newest_first(store: &dyn Store) {
    let t = tenant();
    let (mut older, rows) = campaign(1, 1);
    older.tenant = t.clone();
    store.create_campaign(&older, &rows).await.unwrap();
    let (mut newer, rows) = campaign(1, 1);
    newer.tenant = t.clone();
    store.create_campaign(&newer, &rows).await.unwrap();
    let ids: Vec<_> = store
        .list_campaigns(&t)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec![newer.id, older.id]);
}

async fn rows_round_trip_and_claims_are_single(store: &dyn Store) {
    let (c, rows) = campaign(2, 3);
    store.create_campaign(&c, &rows).await.unwrap();
    assert_eq!(
        store.get_campaign(&c.tenant, &c.id).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        store.get_campaign(&tenant(), &c.id).await.unwrap(),
        None,
        "another tenant's"
    );
    assert_eq!(store.campaign_rows(&c.id, None, 10).await.unwrap(), rows);
    assert_eq!(
        store.campaign_rows(&c.id, Some(0), 1).await.unwrap(),
        rows[1..2].to_vec()
    );
    assert!(store.claim_row(&c.id, 0, 1_000, 61_000).await.unwrap());
    assert!(
        !store.claim_row(&c.id, 0, 1_000, 61_000).await.unwrap(),
        "claimed twice"
    );
    let sid = CallSid::generate();
    assert!(store.row_dialled(&c.id, 0, &sid).await.unwrap());
    let active = store.active_rows(&c.id).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].state, RowState::Calling);
    assert_eq!(
        active[0].attempts[0].call_sid.as_deref(),
        Some(sid.as_str())
    );
}

async fn racing_claims_never_exceed_the_bound(store: Arc<dyn Store>) {
    let (c, rows) = campaign(3, 12);
    store.create_campaign(&c, &rows).await.unwrap();
    let claims = (0..12u32).map(|i| {
        let (store, id) = (store.clone(), c.id.clone());
        tokio::spawn(async move { store.claim_row(&id, i, 5, 60_000).await.unwrap() })
    });
    let mut won = 0;
    for h in claims {
        won += u32::from(h.await.unwrap());
    }
    assert_eq!(won, 3);
    assert_eq!(store.active_rows(&c.id).await.unwrap().len(), 3);
    let counts = store.campaign_counts(&c.id).await.unwrap();
    assert_eq!(counts.state(RowState::Dialling), 3);
    assert_eq!(counts.state(RowState::Pending), 9);
}

async fn attempts_end_once_and_retries_wait(store: &dyn Store) {
    let (c, rows) = campaign(5, 2);
    store.create_campaign(&c, &rows).await.unwrap();
    let sid = CallSid::generate();
    assert!(store.claim_row(&c.id, 1, 10, 70).await.unwrap());
    assert!(store.row_dialled(&c.id, 1, &sid).await.unwrap());
    let other = CallSid::generate();
    let busy = |s| Finish {
        call_sid: Some(s),
        outcome: Outcome::Busy,
        retry_at_ms: Some(500),
    };
    assert!(
        !store.finish_attempt(&c.id, 1, &busy(&other)).await.unwrap(),
        "another call's end"
    );
    assert!(store.finish_attempt(&c.id, 1, &busy(&sid)).await.unwrap());
    assert!(
        !store.finish_attempt(&c.id, 1, &busy(&sid)).await.unwrap(),
        "ended twice"
    );
    assert!(
        store
            .due_rows(&c.id, 499, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.index != 1)
    );
    assert!(
        !store.claim_row(&c.id, 1, 499, 1_000).await.unwrap(),
        "not due yet"
    );
    let due = store.due_rows(&c.id, 500, 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(due[1].outcome(), Some(Outcome::Busy));
    // A claim given back leaves no attempt behind.
    assert!(store.claim_row(&c.id, 1, 500, 1_000).await.unwrap());
    assert!(store.unclaim_row(&c.id, 1, 900).await.unwrap());
    let row = &store.campaign_rows(&c.id, Some(0), 1).await.unwrap()[0];
    assert_eq!(
        (row.state, row.attempts.len(), row.next_at_ms),
        (RowState::Pending, 1, 900)
    );
    let done = Finish {
        call_sid: None,
        outcome: Outcome::Answered,
        retry_at_ms: None,
    };
    assert!(store.claim_row(&c.id, 1, 900, 1_000).await.unwrap());
    assert!(store.finish_attempt(&c.id, 1, &done).await.unwrap());
    let counts = store.campaign_counts(&c.id).await.unwrap();
    assert_eq!(counts.by_outcome.get("answered"), Some(&1));
}

async fn cancelling_stops_waiting_rows_and_completion_needs_all(store: &dyn Store) {
    let (c, rows) = campaign(5, 3);
    store.create_campaign(&c, &rows).await.unwrap();
    assert!(store.claim_row(&c.id, 0, 1, 100).await.unwrap());
    assert!(
        !store.complete_if_done(&c.id).await.unwrap(),
        "rows still wait"
    );
    let paused = store
        .set_campaign_status(
            &c.tenant,
            &c.id,
            &[CampaignStatus::Running],
            CampaignStatus::Paused,
        )
        .await
        .unwrap();
    assert_eq!(paused.status, CampaignStatus::Paused);
    assert!(
        !store.claim_row(&c.id, 1, 1, 100).await.unwrap(),
        "a paused campaign dials nobody"
    );
    let again = store
        .set_campaign_status(
            &c.tenant,
            &c.id,
            &[CampaignStatus::Running],
            CampaignStatus::Paused,
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store
        .set_campaign_status(
            &c.tenant,
            &c.id,
            &[CampaignStatus::Paused],
            CampaignStatus::Cancelled,
        )
        .await
        .unwrap();
    let counts = store.campaign_counts(&c.id).await.unwrap();
    assert_eq!(
        (
            counts.state(RowState::Cancelled),
            counts.state(RowState::Dialling)
        ),
        (2, 1)
    );
    let at_work = store.campaigns_at_work().await.unwrap();
    assert!(
        at_work.iter().any(|w| w.id == c.id),
        "its call in progress still needs a dialer"
    );
    let end = Finish {
        call_sid: None,
        outcome: Outcome::Failed,
        retry_at_ms: Some(5),
    };
    assert!(store.finish_attempt(&c.id, 0, &end).await.unwrap());
    let row = &store.campaign_rows(&c.id, None, 1).await.unwrap()[0];
    assert_eq!(
        row.state,
        RowState::Done,
        "a cancelled campaign's row is not retried"
    );
    assert!(
        !store
            .campaigns_at_work()
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == c.id)
    );
    let wrong_tenant = store
        .set_campaign_status(
            &tenant(),
            &c.id,
            &[CampaignStatus::Cancelled],
            CampaignStatus::Running,
        )
        .await;
    assert!(
        matches!(wrong_tenant, Err(StoreError::NotFound)),
        "{wrong_tenant:?}"
    );
}
