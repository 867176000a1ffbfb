//! The store conformance suite: every `Store` adapter must pass `run_all`. Each check uses fresh
//! tenants and numbers, so one store instance can run the whole suite.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed check

mod calls;
pub mod campaigns;
mod test_runs;
pub use calls::sample_call;

use super::{Bot, IdempotencyRecord, Store, StoreError};
use crate::apikey::KeyHash;
use crate::domain::{
    BotId, BotStatus, Context, Goal, PhoneNumber, TenantId, Voice, WebhookPolicy, WebhookUrl,
};
use crate::time_fmt;
use secrecy::SecretString;
use std::sync::Arc;

pub(crate) fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub(crate) fn tenant() -> TenantId {
    TenantId::parse(&unique("t")).expect("valid tenant")
}

fn number() -> PhoneNumber {
    let n = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    ) % 10_000_000;
    PhoneNumber::parse(&format!("+1999{n:07}")).expect("valid number")
}

/// A valid bot for `tenant` with a random number.
pub fn sample_bot(tenant: &TenantId) -> Bot {
    let now = time_fmt::now();
    Bot {
        id: BotId::generate(),
        tenant: tenant.clone(),
        number: number(),
        number_sid: unique("PN"),
        goal: Goal::parse("Take restaurant reservations").expect("goal"),
        context: Context::parse("Open 5PM-10PM").expect("context"),
        webhook: Some(
            WebhookUrl::parse("https://example.com/hook", WebhookPolicy::default())
                .expect("webhook"),
        ),
        voice: Voice::parse("elevenlabs:emma").expect("voice"),
        first_message: None,
        brain: crate::domain::Brain::parse(
            crate::domain::BotMode::Llm,
            false,
            &[
                serde_json::json!({"name": "check_hours", "description": "Opening hours",
                                 "parameters": {"type": "object", "properties": {}}}),
            ],
            &["+1555*".to_owned()],
        )
        .expect("brain"),
        timers: crate::domain::CallTimers::parse(Some(15), None).expect("timers"),
        options: crate::domain::BotOptions {
            timezone: crate::domain::Timezone::parse("America/Chicago").expect("zone"),
            variables: crate::domain::Variables::parse(
                &serde_json::json!({"shop": "Bella Vista"}),
                "variables",
            )
            .expect("variables"),
            voicemail: crate::domain::Voicemail::parse(&serde_json::json!(
                {"action": "leave_message", "message": "Please call {{shop}} back."}
            ))
            .expect("voicemail"),
            analysis: crate::domain::AnalysisPlan::parse(&serde_json::json!(
                {"summary": true, "success_criteria": "A table was booked",
                 "structured_data": {"type": "object", "properties": {"party": {"type": "integer"}}}}
            ))
            .expect("analysis"),
        },
        status: BotStatus::Active,
        webhook_secret: SecretString::from(unique("whsec")),
        created_at: now,
        updated_at: now,
    }
}

/// Runs every check against `store`. Panics with a description on the first failure.
pub async fn run_all(store: Arc<dyn Store>) {
    api_keys(&*store).await;
    key_management(&*store).await;
    bot_crud_and_isolation(&*store).await;
    listing_is_newest_first(&*store).await;
    quota_and_uniqueness(&*store).await;
    idempotency(&*store).await;
    sequences_never_repeat(Arc::clone(&store)).await;
    quota_race(Arc::clone(&store)).await;
    calls::lifecycle(&*store).await;
    calls::listing(&*store).await;
    calls::daily_quota(&*store).await;
    calls::rate_slots(Arc::clone(&store)).await;
    calls::turns(&*store).await;
    calls::post_call(&*store).await;
    llm_usage(Arc::clone(&store)).await;
    tickets(Arc::clone(&store)).await;
    leases(Arc::clone(&store)).await;
    test_runs::lifecycle(&*store).await;
}

/// Of many concurrent holders exactly `limit` get a lease; the same holder renews rather than
/// taking a second place; a released or lapsed place goes to the next holder.
async fn leases(store: Arc<dyn Store>) {
    use crate::store::LeaseDecision;
    let scope = unique("lease");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (store, scope) = (Arc::clone(&store), scope.clone());
        tasks.push(tokio::spawn(async move {
            let got = store
                .acquire_lease(&scope, &format!("h{i}"), 3, 10_000, 1_000)
                .await
                .expect("acquire");
            (i, got)
        }));
    }
    let mut holders = Vec::new();
    for t in tasks {
        let (i, got) = t.await.expect("task");
        if got == LeaseDecision::Acquired {
            holders.push(i);
        }
    }
    assert_eq!(holders.len(), 3, "exactly the limit: {holders:?}");
    let first = format!("h{}", holders[0]);
    assert_eq!(
        store
            .acquire_lease(&scope, &first, 3, 20_000, 2_000)
            .await
            .unwrap(),
        LeaseDecision::Acquired,
        "a holder renews its own lease"
    );
    assert_eq!(
        store
            .acquire_lease(&scope, "late", 3, 20_000, 2_000)
            .await
            .unwrap(),
        LeaseDecision::Full
    );
    store.release_lease(&scope, &first).await.unwrap();
    store.release_lease(&scope, &first).await.unwrap();
    assert_eq!(
        store
            .acquire_lease(&scope, "late", 3, 20_000, 2_000)
            .await
            .unwrap(),
        LeaseDecision::Acquired,
        "a released place is free"
    );
    // The other two lapse at 10 s (the renewed ones hold to 20 s).
    assert!(store.renew_lease(&scope, "late", 30_000).await.unwrap());
    assert_eq!(
        store
            .acquire_lease(&scope, "later", 3, 40_000, 11_000)
            .await
            .unwrap(),
        LeaseDecision::Acquired,
        "a lapsed place is free"
    );
    assert!(!store.renew_lease(&scope, "nobody", 30_000).await.unwrap());
    assert_eq!(store.count_leases(&scope, 12_000).await.unwrap(), 2);
    assert_eq!(store.count_leases(&scope, 35_000).await.unwrap(), 1);
    let mut holders = store.lease_holders(&scope, 12_000).await.unwrap();
    holders.sort();
    assert_eq!(holders, ["late", "later"]);
    assert_eq!(
        store.lease_holders(&scope, 35_000).await.unwrap(),
        ["later"]
    );
    assert!(store.lease_holders("nothing", 0).await.unwrap().is_empty());
}

/// A ticket is taken once, by exactly one of many concurrent takers, only for its purpose and
/// only before it expires.
async fn tickets(store: Arc<dyn Store>) {
    use crate::store::{TicketPurpose, new_ticket};
    let t = tenant();
    let (_, hash) = new_ticket();
    store
        .put_ticket(&hash, &t, &TicketPurpose::Call, 10_000)
        .await
        .expect("put");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (store, hash) = (Arc::clone(&store), hash.clone());
        tasks.push(tokio::spawn(async move {
            store.take_ticket(&hash, &TicketPurpose::Call, 5_000).await
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        if let Some(got) = task.await.expect("task").expect("take") {
            won.push(got);
        }
    }
    assert_eq!(won, vec![t.clone()], "exactly one taker gets the ticket");
    let (_, expired) = new_ticket();
    store
        .put_ticket(&expired, &t, &TicketPurpose::Call, 10_000)
        .await
        .expect("put");
    assert_eq!(
        store
            .take_ticket(&expired, &TicketPurpose::Call, 10_001)
            .await
            .expect("take"),
        None,
        "an expired ticket is refused"
    );
    let (_, other) = new_ticket();
    store
        .put_ticket(&other, &t, &TicketPurpose::Observe, 10_000)
        .await
        .expect("put");
    assert_eq!(
        store
            .take_ticket(&other, &TicketPurpose::Call, 1)
            .await
            .expect("take"),
        None,
        "a ticket opens only what it was issued for"
    );
    // A ticket bound to one call opens only that call.
    let sid = |c: char| {
        crate::domain::CallSid::parse(&format!("CA{}", c.to_string().repeat(32))).expect("sid")
    };
    let (_, bound) = new_ticket();
    store
        .put_ticket(&bound, &t, &TicketPurpose::Supervise(sid('a')), 10_000)
        .await
        .expect("put");
    for wrong in [
        TicketPurpose::Supervise(sid('b')),
        TicketPurpose::Relay(sid('a')),
        TicketPurpose::Call,
    ] {
        assert_eq!(
            store.take_ticket(&bound, &wrong, 1).await.expect("take"),
            None,
            "a ticket for one call opens no other ({wrong:?})"
        );
        store
            .put_ticket(&bound, &t, &TicketPurpose::Supervise(sid('a')), 10_000)
            .await
            .expect("put again (the wrong take spent it)");
    }
    assert_eq!(
        store
            .take_ticket(&bound, &TicketPurpose::Supervise(sid('a')), 1)
            .await
            .expect("take"),
        Some(t.clone())
    );
    let (_, unknown) = new_ticket();
    assert_eq!(
        store
            .take_ticket(&unknown, &TicketPurpose::Call, 1)
            .await
            .expect("take"),
        None
    );
}

/// Concurrent adds all count; tallies are per tenant and listed newest day first.
async fn llm_usage(store: Arc<dyn Store>) {
    use crate::store::LlmUsage;
    let (a, b) = (tenant(), tenant());
    let add = |day: &str, p: u64| LlmUsage {
        day: day.into(),
        requests: 1,
        prompt_tokens: p,
        completion_tokens: 2,
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, a, u) = (Arc::clone(&store), a.clone(), add("2026-12-01", 10));
        tasks.push(tokio::spawn(
            async move { store.add_llm_usage(&a, &u).await },
        ));
    }
    for t in tasks {
        t.await.expect("task").expect("add");
    }
    store
        .add_llm_usage(&a, &add("2026-11-30", 5))
        .await
        .expect("add");
    let got = store.llm_usage(&a, 10).await.expect("usage");
    assert_eq!(
        got,
        vec![
            LlmUsage {
                day: "2026-12-01".into(),
                requests: 8,
                prompt_tokens: 80,
                completion_tokens: 16
            },
            add("2026-11-30", 5),
        ]
    );
    assert_eq!(store.llm_usage(&a, 1).await.expect("usage").len(), 1);
    assert!(store.llm_usage(&b, 10).await.expect("usage").is_empty());
}

async fn api_keys(store: &dyn Store) {
    let (a, b) = (tenant(), tenant());
    let h = KeyHash::of(&unique("key"));
    assert_eq!(store.tenant_for_api_key(&h).await.unwrap(), None);
    store.put_api_key(&h, &a, "first").await.unwrap();
    store
        .put_api_key(&h, &a, "again")
        .await
        .expect("re-adding the same key for the same tenant is idempotent");
    assert_eq!(store.tenant_for_api_key(&h).await.unwrap(), Some(a.clone()));
    assert!(matches!(
        store.put_api_key(&h, &b, "steal").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.tenant_for_api_key(&h).await.unwrap(), Some(a));
}

/// Keys are listed per tenant (ids and labels only) and revoked by id, only by their tenant.
async fn key_management(store: &dyn Store) {
    use crate::store::key_id;
    let (a, b) = (tenant(), tenant());
    let (ha1, ha2, hb) = (
        KeyHash::of(&unique("key")),
        KeyHash::of(&unique("key")),
        KeyHash::of(&unique("key")),
    );
    store.put_api_key(&ha1, &a, "laptop").await.unwrap();
    store.put_api_key(&ha2, &a, "ci").await.unwrap();
    store.put_api_key(&hb, &b, "other").await.unwrap();
    let listed = store.list_api_keys(Some(&a)).await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
    ids.sort();
    let mut want = vec![key_id(&ha1), key_id(&ha2)];
    want.sort();
    assert_eq!(ids, want, "a tenant lists exactly its keys");
    assert!(
        listed
            .iter()
            .all(|k| k.tenant == a && !k.created_at.is_empty())
    );
    assert!(listed.iter().any(|k| k.label == "laptop"));
    let all = store.list_api_keys(None).await.unwrap();
    assert!(
        all.iter().any(|k| k.id == key_id(&hb)),
        "the operator lists every tenant's keys"
    );
    assert!(
        !store.revoke_api_key(Some(&a), &key_id(&hb)).await.unwrap(),
        "a tenant cannot revoke another tenant's key"
    );
    assert_eq!(
        store.tenant_for_api_key(&hb).await.unwrap(),
        Some(b.clone())
    );
    assert!(store.revoke_api_key(Some(&a), &key_id(&ha1)).await.unwrap());
    assert!(
        !store.revoke_api_key(Some(&a), &key_id(&ha1)).await.unwrap(),
        "idempotent"
    );
    assert_eq!(store.tenant_for_api_key(&ha1).await.unwrap(), None);
    assert_eq!(
        store.tenant_for_api_key(&ha2).await.unwrap(),
        Some(a.clone())
    );
    assert!(!store.revoke_api_key(None, "key_nothex").await.unwrap());
    assert!(store.revoke_api_key(None, &key_id(&hb)).await.unwrap());
    assert_eq!(store.tenant_for_api_key(&hb).await.unwrap(), None);
}

async fn bot_crud_and_isolation(store: &dyn Store) {
    let (a, b) = (tenant(), tenant());
    let bot = sample_bot(&a);
    store.create_bot(&bot, 10, None).await.unwrap();
    let got = store
        .get_bot(&a, &bot.id)
        .await
        .unwrap()
        .expect("bot is readable by its tenant");
    assert_eq!(got.id, bot.id);
    assert_eq!(got.number, bot.number);
    assert_eq!(got.goal, bot.goal);
    assert_eq!(got.voice, bot.voice);
    assert_eq!(got.brain, bot.brain);
    assert_eq!(got.webhook, bot.webhook);
    assert_eq!(got.created_at, bot.created_at);
    assert_eq!(
        store
            .bot_by_number(&bot.number)
            .await
            .unwrap()
            .map(|b| b.id),
        Some(bot.id.clone())
    );
    assert_eq!(store.calls_today(&bot.id, "2026-01-01").await.unwrap(), 0);

    // Another tenant sees nothing and changes nothing.
    assert!(store.get_bot(&b, &bot.id).await.unwrap().is_none());
    assert!(store.list_bots(&b, "2026-01-01").await.unwrap().is_empty());
    let mut stolen = got.clone();
    stolen.tenant = b.clone();
    stolen.goal = Goal::parse("hijacked").unwrap();
    assert!(matches!(
        store.update_bot(&stolen).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.delete_bot(&b, &bot.id).await.unwrap().is_none());

    let mut changed = got.clone();
    changed.goal = Goal::parse("Answer questions about opening hours").unwrap();
    changed.status = BotStatus::Paused;
    changed.updated_at = time_fmt::now();
    store.update_bot(&changed).await.unwrap();
    let got = store.get_bot(&a, &bot.id).await.unwrap().unwrap();
    assert_eq!(got.goal.as_str(), "Answer questions about opening hours");
    assert_eq!(got.status, BotStatus::Paused);

    let deleted = store
        .delete_bot(&a, &bot.id)
        .await
        .unwrap()
        .expect("deleted");
    assert_eq!(deleted.id, bot.id);
    assert!(store.get_bot(&a, &bot.id).await.unwrap().is_none());
    assert!(store.bot_by_number(&bot.number).await.unwrap().is_none());
    assert!(
        store.delete_bot(&a, &bot.id).await.unwrap().is_none(),
        "second delete finds nothing"
    );
    assert!(matches!(
        store.update_bot(&changed).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_bots(&a).await.unwrap(), 0);
}

async fn listing_is_newest_first(store: &dyn Store) {
    let t = tenant();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let bot = sample_bot(&t);
        store.create_bot(&bot, 10, None).await.unwrap();
        ids.push(bot.id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let listed: Vec<BotId> = store
        .list_bots(&t, "2026-01-01")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.bot.id)
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(store.count_bots(&t).await.unwrap(), 4);
}

async fn quota_and_uniqueness(store: &dyn Store) {
    let t = tenant();
    let first = sample_bot(&t);
    store.create_bot(&first, 2, None).await.unwrap();
    // Same number for another bot is a conflict, and nothing is half-written.
    let mut dup = sample_bot(&t);
    dup.number = first.number.clone();
    assert!(matches!(
        store.create_bot(&dup, 2, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_bot(&t, &dup.id).await.unwrap().is_none());
    assert_eq!(store.count_bots(&t).await.unwrap(), 1);

    store.create_bot(&sample_bot(&t), 2, None).await.unwrap();
    let over = sample_bot(&t);
    assert!(matches!(
        store.create_bot(&over, 2, None).await,
        Err(StoreError::QuotaExceeded { limit: 2 })
    ));
    assert!(store.get_bot(&t, &over.id).await.unwrap().is_none());
    assert!(store.bot_by_number(&over.number).await.unwrap().is_none());
    // Deleting frees a slot.
    store.delete_bot(&t, &first.id).await.unwrap().unwrap();
    store.create_bot(&over, 2, None).await.unwrap();
    assert_eq!(store.count_bots(&t).await.unwrap(), 2);
}

async fn idempotency(store: &dyn Store) {
    let t = tenant();
    let record = IdempotencyRecord {
        tenant: t.clone(),
        scope: "POST /bots".into(),
        key: unique("idem"),
        request_hash: "abc".into(),
        status: 201,
        body: "{\"id\":\"x\"}".into(),
        created_at: time_fmt::now(),
    };
    assert!(
        store
            .get_idempotency(&t, "POST /bots", &record.key)
            .await
            .unwrap()
            .is_none()
    );
    let bot = sample_bot(&t);
    store.create_bot(&bot, 10, Some(&record)).await.unwrap();
    assert_eq!(
        store
            .get_idempotency(&t, "POST /bots", &record.key)
            .await
            .unwrap(),
        Some(record.clone())
    );
    let again = sample_bot(&t);
    assert!(matches!(
        store.create_bot(&again, 10, Some(&record)).await,
        Err(StoreError::IdempotencyKeyUsed)
    ));
    assert!(
        store.get_bot(&t, &again.id).await.unwrap().is_none(),
        "a replayed key creates nothing"
    );
    // Keys are per tenant and per scope.
    let other = tenant();
    assert!(
        store
            .get_idempotency(&other, "POST /bots", &record.key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_idempotency(&t, "POST /other", &record.key)
            .await
            .unwrap()
            .is_none()
    );
    // The idempotency check wins over the quota check: a replay at the limit is still a replay.
    assert!(matches!(
        store.create_bot(&again, 1, Some(&record)).await,
        Err(StoreError::IdempotencyKeyUsed)
    ));
}

async fn sequences_never_repeat(store: Arc<dyn Store>) {
    let name = unique("seq");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, name) = (Arc::clone(&store), name.clone());
            tokio::spawn(async move { store.next_sequence(&name).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
}

async fn quota_race(store: Arc<dyn Store>) {
    let t = tenant();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, bot) = (Arc::clone(&store), sample_bot(&t));
            tokio::spawn(async move { store.create_bot(&bot, 10, None).await })
        })
        .collect();
    let (mut ok, mut quota) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::QuotaExceeded { limit: 10 }) => quota += 1,
            Err(e) => panic!("unexpected error in quota race: {e}"),
        }
    }
    assert_eq!((ok, quota), (10, 40));
    assert_eq!(store.count_bots(&t).await.unwrap(), 10);
    assert_eq!(store.list_bots(&t, "2026-01-01").await.unwrap().len(), 10);
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_in_memory_passes() {
        let store = super::super::sqlite::SqliteStore::open_in_memory().unwrap();
        super::run_all(std::sync::Arc::new(store)).await;
    }
}
