//! Conformance checks for `CallStore`: lifecycle and ordering of status updates, listings with
//! cursors and filters, tenant isolation, daily call quotas, rate slots under concurrency.

use super::{sample_bot, tenant, unique};
use crate::domain::{BotId, CallDirection, CallSid, CallStatus, TenantId, UserLabel};
use crate::store::postcall::Take;
use crate::store::{
    CallFilter, CallRecord, Cursor, IdempotencyRecord, RateDecision, StatusOutcome, StatusUpdate,
    Store, StoreError, TurnRecord, TurnTimings,
};
use crate::time_fmt;
use std::sync::Arc;
use time::Duration;

/// A live inbound call of `tenant`'s `bot` with a fresh sid.
pub fn sample_call(tenant: &TenantId, bot: &BotId) -> CallRecord {
    CallRecord::inbound(
        CallSid::generate(),
        tenant,
        bot,
        "+15557654321",
        "+15550100001",
        time_fmt::now(),
    )
}

fn upd(status: CallStatus, seq: i64, at: time::OffsetDateTime) -> StatusUpdate {
    StatusUpdate {
        status,
        seq: Some(seq),
        at,
        duration_secs: None,
    }
}

fn applied(o: StatusOutcome) -> CallRecord {
    match o {
        StatusOutcome::Applied(c) => c,
        other => panic!("expected the update to apply, got {other:?}"),
    }
}

pub(super) async fn lifecycle(store: &dyn Store) {
    let t = tenant();
    let bot = sample_bot(&t);
    let mut call = sample_call(&t, &bot.id);
    call.direction = CallDirection::Outbound;
    call.status = CallStatus::Queued;
    call.started_at = None;
    call.user = Some(UserLabel::parse("user 7").unwrap());
    call.variables = crate::domain::Variables::parse(
        &serde_json::json!({"name": "Ana", "party": 4}),
        "variables",
    )
    .unwrap();
    assert!(store.create_call(&call, None).await.unwrap());
    assert!(
        !store.create_call(&call, None).await.unwrap(),
        "a second create with the same sid changes nothing"
    );
    assert_eq!(
        store.call_by_sid(&call.sid).await.unwrap(),
        Some(call.clone())
    );
    assert_eq!(
        store.get_call(&t, &call.sid).await.unwrap(),
        Some(call.clone())
    );
    assert_eq!(
        store.get_call(&tenant(), &call.sid).await.unwrap(),
        None,
        "isolation"
    );
    let mut browser = sample_call(&t, &bot.id);
    browser.channel = crate::domain::Channel::Webrtc;
    assert!(store.create_call(&browser, None).await.unwrap());
    assert_eq!(
        store.call_by_sid(&browser.sid).await.unwrap(),
        Some(browser.clone()),
        "the channel is kept"
    );

    let t0 = call.created_at;
    let at = |s: i64| t0 + Duration::seconds(s);
    let sid = &call.sid;
    applied(
        store
            .update_call_status(sid, &upd(CallStatus::Ringing, 1, at(1)))
            .await
            .unwrap(),
    );
    let live = applied(
        store
            .update_call_status(sid, &upd(CallStatus::InProgress, 2, at(3)))
            .await
            .unwrap(),
    );
    assert_eq!(live.started_at, Some(at(3)));
    // The machine verdict is kept beside the status, and a later one replaces it.
    let verdict = store
        .set_answered_by(sid, crate::domain::AnsweredBy::MachineStart)
        .await
        .unwrap()
        .expect("the call exists");
    assert_eq!(
        verdict.answered_by,
        Some(crate::domain::AnsweredBy::MachineStart)
    );
    assert_eq!(verdict.status, CallStatus::InProgress);
    store
        .set_answered_by(sid, crate::domain::AnsweredBy::MachineEndBeep)
        .await
        .unwrap();
    assert_eq!(
        store
            .set_answered_by(&CallSid::generate(), crate::domain::AnsweredBy::Human)
            .await
            .unwrap(),
        None,
        "no such call"
    );
    // A late, lower-numbered callback is ignored.
    assert!(matches!(
        store
            .update_call_status(sid, &upd(CallStatus::Ringing, 1, at(1)))
            .await
            .unwrap(),
        StatusOutcome::Ignored(_)
    ));
    let mut done = upd(CallStatus::Completed, 3, at(13));
    done.duration_secs = Some(10);
    let done = applied(store.update_call_status(sid, &done).await.unwrap());
    assert_eq!(
        (done.duration_secs, done.ended_at, done.answered_by),
        (
            Some(10),
            Some(at(13)),
            Some(crate::domain::AnsweredBy::MachineEndBeep)
        ),
        "a status update keeps the verdict"
    );
    // Nothing moves a finished call.
    assert!(matches!(
        store
            .update_call_status(sid, &upd(CallStatus::InProgress, 9, at(20)))
            .await
            .unwrap(),
        StatusOutcome::Ignored(_)
    ));
    assert_eq!(store.call_by_sid(sid).await.unwrap(), Some(done));
    assert_eq!(
        store
            .update_call_status(&CallSid::generate(), &upd(CallStatus::Ringing, 0, at(0)))
            .await
            .unwrap(),
        StatusOutcome::UnknownCall
    );

    // Idempotency records go in with the call, atomically.
    let idem = IdempotencyRecord {
        tenant: t.clone(),
        scope: "POST /outbound-call".into(),
        key: unique("k"),
        request_hash: "h".into(),
        status: 200,
        body: "{}".into(),
        created_at: time_fmt::now(),
    };
    let other = sample_call(&t, &bot.id);
    assert!(store.create_call(&other, Some(&idem)).await.unwrap());
    let third = sample_call(&t, &bot.id);
    assert!(matches!(
        store.create_call(&third, Some(&idem)).await,
        Err(StoreError::IdempotencyKeyUsed)
    ));
    assert_eq!(
        store.call_by_sid(&third.sid).await.unwrap(),
        None,
        "nothing half-written"
    );
}

pub(super) async fn listing(store: &dyn Store) {
    let (t, other) = (tenant(), tenant());
    let (bot_a, bot_b) = (BotId::generate(), BotId::generate());
    let base = time_fmt::now();
    let mut sids = Vec::new();
    for i in 0..7 {
        let mut c = sample_call(&t, if i % 2 == 0 { &bot_a } else { &bot_b });
        c.created_at = base + Duration::milliseconds(i);
        if i == 3 {
            c.status = CallStatus::Completed;
        }
        store.create_call(&c, None).await.unwrap();
        sids.push(c.sid);
    }
    store
        .create_call(&sample_call(&other, &bot_a), None)
        .await
        .unwrap();
    let newest_first: Vec<_> = sids.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .list_calls(&t, &CallFilter::default(), cursor.as_ref(), 3)
            .await
            .unwrap();
        assert!(page.calls.len() <= 3);
        seen.extend(page.calls.iter().map(|c| c.sid.clone()));
        match page.next_cursor {
            Some(raw) => cursor = Some(Cursor::decode(&raw).expect("cursor decodes")),
            None => break,
        }
    }
    assert_eq!(
        seen, newest_first,
        "pages cover every call once, newest first"
    );

    let filter = |bot: Option<&BotId>, status| CallFilter {
        bot: bot.cloned(),
        status,
    };
    let by_bot = store
        .list_calls(&t, &filter(Some(&bot_a), None), None, 50)
        .await
        .unwrap();
    assert_eq!(by_bot.calls.len(), 4);
    assert!(
        by_bot
            .calls
            .iter()
            .all(|c| c.bot_id == bot_a && c.tenant == t)
    );
    let done = store
        .list_calls(&t, &filter(None, Some(CallStatus::Completed)), None, 50)
        .await
        .unwrap();
    assert_eq!(
        done.calls.iter().map(|c| &c.sid).collect::<Vec<_>>(),
        vec![&sids[3]]
    );
    // The other tenant sees only its own call, even through the shared bot id.
    let theirs = store
        .list_calls(&other, &filter(Some(&bot_a), None), None, 50)
        .await
        .unwrap();
    assert_eq!(theirs.calls.len(), 1);
}

pub(super) async fn daily_quota(store: &dyn Store) {
    let bot = BotId::generate();
    let day = "2026-02-03";
    for _ in 0..3 {
        store.count_call(&bot, day, 3).await.unwrap();
    }
    assert!(matches!(
        store.count_call(&bot, day, 3).await,
        Err(StoreError::QuotaExceeded { limit: 3 })
    ));
    assert_eq!(store.calls_today(&bot, day).await.unwrap(), 3);
    store.uncount_call(&bot, day).await.unwrap();
    store.count_call(&bot, day, 3).await.unwrap();
    assert_eq!(store.calls_today(&bot, "2026-02-04").await.unwrap(), 0);
    assert!(store.count_call(&bot, "2026-02-04", 0).await.is_err());
}

pub(super) async fn rate_slots(store: Arc<dyn Store>) {
    let scope = unique("rate");
    let now = time_fmt::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, scope) = (Arc::clone(&store), scope.clone());
            tokio::spawn(async move { store.acquire_rate_slot(&scope, 5, 60, now).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        match t.await.unwrap() {
            RateDecision::Allowed => allowed += 1,
            RateDecision::Limited { retry_after_secs } => {
                assert!((1..=60).contains(&retry_after_secs))
            }
        }
    }
    assert_eq!(allowed, 5, "exactly the limit is granted under concurrency");
    assert_eq!(
        store
            .acquire_rate_slot(&scope, 5, 60, now + Duration::seconds(30))
            .await
            .unwrap(),
        RateDecision::Limited {
            retry_after_secs: 30
        }
    );
    // The window slides: a minute later the slots are free again.
    assert_eq!(
        store
            .acquire_rate_slot(&scope, 5, 60, now + Duration::seconds(61))
            .await
            .unwrap(),
        RateDecision::Allowed
    );
}

/// Turns come back in order, replacing is idempotent, and another tenant sees none.
pub(super) async fn turns(store: &dyn Store) {
    let (t, other) = (
        TenantId::parse("turns-a").unwrap(),
        TenantId::parse("turns-b").unwrap(),
    );
    let call = sample_call(&t, &BotId::generate());
    let turn = |n: u32, text: &str| TurnRecord {
        turn: n,
        user_text: text.into(),
        dtmf: String::new(),
        bot_text: format!("reply {n}"),
        bot_text_full: format!("reply {n} in full"),
        interrupted: n == 2,
        action: "continue".into(),
        fallback: None,
        timings: TurnTimings {
            endpoint_ms: 700,
            stt_ms: Some(150),
            llm: Some(crate::store::LlmTimings {
                ttft_ms: Some(210),
                total_ms: 480,
                tokens_in: Some(320),
                tool_calls: 1,
                ..Default::default()
            }),
            ..TurnTimings::default()
        },
        at: "2026-11-24T10:00:00Z".into(),
    };
    for n in [2, 0, 1, 10] {
        store
            .put_turn(&t, &call.sid, &turn(n, "first"))
            .await
            .unwrap();
    }
    store
        .put_turn(&t, &call.sid, &turn(1, "again"))
        .await
        .unwrap();
    let got = store.turns(&t, &call.sid).await.unwrap();
    assert_eq!(
        got.iter().map(|x| x.turn).collect::<Vec<_>>(),
        vec![0, 1, 2, 10]
    );
    assert_eq!(got[1].user_text, "again");
    assert_eq!(got[2], turn(2, "first"));
    assert!(store.turns(&other, &call.sid).await.unwrap().is_empty());
    // Another tenant cannot overwrite a turn (refused or ignored, depending on the backend).
    let _ = store.put_turn(&other, &call.sid, &turn(1, "hijack")).await;
    assert_eq!(
        store.turns(&t, &call.sid).await.unwrap()[1].user_text,
        "again"
    );
}

/// A call is taken for its post-call work once it has ended, by one worker at a time (until the
/// hold lapses), and never again once processed; its analysis is kept.
pub(super) async fn post_call(store: &dyn Store) {
    let t = tenant();
    let call = sample_call(&t, &BotId::generate());
    assert!(store.create_call(&call, None).await.unwrap());
    assert_eq!(
        store.take_call(&call.sid, 1_000, 60_000).await.unwrap(),
        Take::Nothing,
        "a call in progress is not taken"
    );
    let ended = StatusUpdate {
        status: CallStatus::Completed,
        seq: None,
        at: time_fmt::now(),
        duration_secs: Some(12),
    };
    applied(store.update_call_status(&call.sid, &ended).await.unwrap());
    assert_eq!(
        store.take_call(&call.sid, 1_000, 60_000).await.unwrap(),
        Take::Taken
    );
    assert_eq!(
        store.take_call(&call.sid, 2_000, 62_000).await.unwrap(),
        Take::Held,
        "held by its first worker"
    );
    assert_eq!(
        store.take_call(&call.sid, 60_000, 120_000).await.unwrap(),
        Take::Taken,
        "the hold lapsed"
    );
    assert_eq!(store.call_analysis(&call.sid).await.unwrap(), None);
    let analysis = serde_json::json!({"summary": "Booked a table for two.", "errors": []});
    store
        .finish_post_call(&call.sid, Some(&analysis))
        .await
        .unwrap();
    assert_eq!(
        store.call_analysis(&call.sid).await.unwrap(),
        Some(analysis)
    );
    assert_eq!(
        store.take_call(&call.sid, 500_000, 560_000).await.unwrap(),
        Take::Nothing,
        "processed calls are not taken again"
    );
    assert_eq!(
        store
            .take_call(&CallSid::generate(), 1_000, 60_000)
            .await
            .unwrap(),
        Take::Nothing,
        "an unknown call"
    );
}
