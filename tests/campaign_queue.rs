//! The AWS way of running campaigns: rows handed to a queue and worked by the `campaigns`
//! Lambda function's handler over the DynamoDB store. The SQS adapter against the local AWS
//! stand-in (real SQS wire protocol, delays, batches of ten); a campaign on the DynamoDB store
//! worked by two concurrent workers from Lambda-shaped SQS batches, with duplicated deliveries,
//! on an injected clock: the bound holds, nobody is called twice at once, retries and the
//! calling window are honoured, every row ends.

#![allow(clippy::unwrap_used)]

mod common;

use async_trait::async_trait;
use callbot_core::campaign_queue::{CampaignQueue, QueueError, RowMessage, SqsQueue};
use callbot_core::domain::{CampaignId, TenantId};
use callbot_functions::campaigns::dialer::{Clock, Dialer};
use callbot_functions::campaigns::queue::Worker;
use callbot_functions::lambda::{SqsEvent, sqs_batch};
use callbot_twilio_sim::amd::Callee;
use common::{ManualClock, TestApp};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

fn row_message(row: u32) -> RowMessage {
    RowMessage {
        tenant: TenantId::parse("acme").unwrap(),
        campaign: CampaignId::generate(),
        row,
    }
}

#[tokio::test]
async fn the_sqs_adapter_sends_row_messages_in_batches_with_their_delays() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let config = settings.aws.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name(format!("rows-{}", CampaignId::generate().as_str()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = SqsQueue::new(&config, &url);
    // Twelve messages: two requests of SendMessageBatch; the last one delayed two seconds.
    let mut sent: Vec<(RowMessage, Duration)> =
        (0..11).map(|i| (row_message(i), Duration::ZERO)).collect();
    sent.push((row_message(11), Duration::from_secs(2)));
    queue.send(&sent).await.unwrap();
    let receive = || async {
        sqs.receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    let mut now = Vec::new();
    for _ in 0..3 {
        now.extend(receive().await);
    }
    let rows: HashSet<u32> = now
        .iter()
        .map(|m| RowMessage::parse(m.body().unwrap()).unwrap().row)
        .collect();
    assert_eq!(
        rows,
        (0..11).collect(),
        "the undelayed messages, and only those"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = receive().await;
    assert_eq!(later.len(), 1);
    assert_eq!(
        RowMessage::parse(later[0].body().unwrap()).unwrap(),
        sent[11].0
    );
    // A queue that does not exist is an error, not a silent drop.
    let gone = SqsQueue::new(&config, &format!("{url}-missing"));
    assert!(gone.send(&sent[..1]).await.is_err());
}

/// The queue as the test runs it: messages become due on the injected clock.
#[derive(Debug)]
struct TestQueue {
    clock: Arc<ManualClock>,
    due: Mutex<Vec<(OffsetDateTime, RowMessage)>>,
    /// Refuses every send (the queue unreachable).
    down: AtomicBool,
}

impl TestQueue {
    fn new(clock: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            due: Mutex::default(),
            down: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl CampaignQueue for TestQueue {
    async fn send(&self, messages: &[(RowMessage, Duration)]) -> Result<(), QueueError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(QueueError("unreachable".into()));
        }
        let now = self.clock.now();
        let mut due = self.due.lock().unwrap();
        for (m, d) in messages {
            assert!(
                *d <= Duration::from_secs(900),
                "SQS delays stop at 15 minutes: {d:?}"
            );
            due.push((now + *d, m.clone()));
        }
        Ok(())
    }
}

impl TestQueue {
    /// Up to ten of the earliest messages, the clock moved to when they are due.
    fn next_batch(&self) -> Vec<RowMessage> {
        let mut due = self.due.lock().unwrap();
        due.sort_by_key(|(t, _)| *t);
        let n = due.len().min(10);
        let batch: Vec<_> = due.drain(..n).collect();
        if let Some((t, _)) = batch.last()
            && *t > self.clock.now()
        {
            self.clock.set_to(*t);
        }
        batch.into_iter().map(|(_, m)| m).collect()
    }

    fn redeliver(&self, m: RowMessage, after: Duration) {
        let at = self.clock.now() + after;
        self.due.lock().unwrap().push((at, m));
    }
}

/// An SQS event as Lambda hands it to a function (fields as AWS documents them).
fn lambda_event(batch: &[RowMessage]) -> (SqsEvent, Vec<String>) {
    let ids: Vec<String> = (0..batch.len())
        .map(|i| format!("059f36b4-87a3-44ab-83d2-66197{i:07}"))
        .collect();
    let records: Vec<Value> = batch
        .iter()
        .zip(&ids)
        .map(|(m, id)| {
            json!({
                "messageId": id,
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": m.to_body(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:callbot-campaigns",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let event = serde_json::from_value(json!({ "Records": records })).unwrap();
    (event, ids)
}

async fn queue_app(dir: &std::path::Path, queue: Arc<TestQueue>) -> Option<TestApp> {
    let dynamo = common::dynamodb_settings(dir)?;
    let app = common::spawn_app_adjusted(
        |s| {
            s.store = dynamo.store.clone();
            s.aws = dynamo.aws.clone();
            s.campaign_dialer = false;
            s.limits.calls_per_bot_per_day = 1000;
        },
        |mut p| {
            p.state.campaign_queue = Some(queue);
            p
        },
    )
    .await;
    Some(app)
}

fn number(i: usize) -> String {
    format!("+1555030{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_driven_campaign_on_dynamodb_keeps_its_bounds_and_calls_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Saturday noon in the bot's zone (UTC): the window (weekdays 9 to 17) is closed.
    let clock = ManualClock::at("2026-12-05T12:00:00Z");
    let queue = TestQueue::new(clock.clone());
    let Some(app) = queue_app(dir.path(), queue.clone()).await else {
        return;
    };
    let mut bot = common::bot_body();
    bot["first_message"] = json!("Hi {{name}}, this is a reminder.");
    bot["silence_timeout_secs"] = json!(3);
    let (status, bot) = app.create_bot(&app.api_key, bot).await;
    assert_eq!(status, 201, "{bot}");
    let sim = app.sim();
    let rows: Vec<Value> = (0..24)
        .map(|i| {
            let n = number(i);
            match i % 4 {
                0 => sim.set_callee_kind(&n, Callee::Busy),
                1 => sim.set_callee_kind(
                    &n,
                    Callee::NoAnswer {
                        ring: Duration::from_millis(500),
                    },
                ),
                2 => sim.set_callee_kind(
                    &n,
                    Callee::Machine {
                        greeting: Duration::from_secs(2),
                    },
                ),
                _ => sim.set_callee_script(&n, common::short_call()),
            }
            json!({"to": n, "variables": {"name": format!("Caller {i}")}})
        })
        .collect();
    let (status, c) = app
        .post_json(&app.api_key, "/campaigns", &json!({
            "bot_id": bot["id"], "name": "queued", "rows": rows, "max_concurrency": 4,
            "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
            "retry": {"busy": {"attempts": 2, "delay_seconds": 600}}}))
        .await;
    assert_eq!(status, 201, "{c}");
    let id = CampaignId::parse(c["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        queue.due.lock().unwrap().len(),
        4,
        "max_concurrency rows released"
    );
    let workers: Vec<Worker> = (0..2)
        .map(|_| {
            Worker::new(
                Dialer::for_rows(app.state.clone(), clock.clone()),
                queue.clone() as Arc<dyn CampaignQueue>,
            )
        })
        .collect();
    let monday_nine = callbot_core::time_fmt::parse_rfc3339("2026-12-07T09:00:00Z").unwrap();
    let creates = || {
        sim.request_log()
            .iter()
            .filter(|l| l.starts_with("POST") && l.ends_with("/Calls.json"))
            .count()
    };
    let (mut max_live, mut delivered) = (0, 0usize);
    for round in 0.. {
        assert!(round < 20_000, "the campaign did not complete");
        let (_, view) = app.get(&app.api_key, &format!("/campaigns/{id}")).await;
        if view["status"] == "completed" {
            break;
        }
        let batch = queue.next_batch();
        assert!(
            !batch.is_empty(),
            "no message left for a running campaign: {view}"
        );
        if clock.now() < monday_nine {
            assert_eq!(creates(), 0, "a call outside the window");
        }
        // Some messages are delivered twice, as SQS may (each twin lives on as a second chain
        // of messages for its row until the row ends).
        for m in &batch {
            delivered += 1;
            if delivered % 5 == 0 && delivered <= 40 {
                queue.redeliver(m.clone(), Duration::ZERO);
            }
        }
        // Two Lambda instances, each with half the batch, at once.
        let half = batch.len().div_ceil(2);
        let (a, b) = batch.split_at(half);
        let ((ea, ia), (eb, ib)) = (lambda_event(a), lambda_event(b));
        let (ra, rb) = tokio::join!(sqs_batch(&workers[0], ea), sqs_batch(&workers[1], eb));
        for (resp, ids, part) in [(ra, ia, a), (rb, ib, b)] {
            for f in resp.failures {
                let i = ids.iter().position(|x| *x == f.id).unwrap();
                queue.redeliver(part[i].clone(), Duration::from_secs(180));
            }
        }
        let live = sim.live_callees();
        assert!(
            live.iter().collect::<HashSet<_>>().len() == live.len(),
            "a number in two calls at once: {live:?}"
        );
        max_live = max_live.max(live.len());
        let active = app.state.store.active_rows(&id).await.unwrap().len();
        assert!(active <= 4, "{active} rows active at once");
        // Calls take real time; the clock of the queue does not wait for them.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, view) = app.get(&app.api_key, &format!("/campaigns/{id}")).await;
    assert_eq!(
        view["outcomes"],
        json!({"answered": 6, "machine": 6, "busy": 6, "no_answer": 6}),
        "{view}"
    );
    assert_eq!(
        creates(),
        36,
        "24 first calls, 6 busy and 6 unanswered retries"
    );
    assert!((1..=4).contains(&max_live), "{max_live} calls at once");
    let rows = app.state.store.campaign_rows(&id, None, 100).await.unwrap();
    let first_call = rows
        .iter()
        .flat_map(|r| &r.attempts)
        .map(|a| a.at_ms)
        .min()
        .unwrap();
    assert!(
        first_call >= monday_nine.unix_timestamp() * 1000,
        "the first call waited for the window"
    );
    // Busy rows are tried again after 10 minutes, unanswered ones (the default rule) after an hour.
    for (class, wait_ms) in [(0, 600_000), (1, 3_600_000)] {
        for r in rows.iter().filter(|r| r.index % 4 == class) {
            let (a, b) = (&r.attempts[0], &r.attempts[1]);
            assert!(
                b.at_ms - a.at_ms >= wait_ms,
                "row {}: its retry waited its delay",
                r.index
            );
        }
    }
}

#[tokio::test]
async fn a_batch_reports_what_failed_and_drops_what_is_not_a_row() {
    let clock = ManualClock::at("2026-12-07T10:00:00Z");
    let queue = TestQueue::new(clock.clone());
    let app = common::spawn_app_adjusted(|s| s.campaign_dialer = false, |p| p).await;
    let worker = Worker::new(
        Dialer::for_rows(app.state.clone(), clock.clone()),
        queue.clone() as Arc<dyn CampaignQueue>,
    );
    let (mut event, _) = lambda_event(&[row_message(0)]);
    // A message for a campaign that does not exist is handled (dropped), not retried forever.
    let resp = sqs_batch(&worker, event).await;
    assert!(resp.failures.is_empty());
    let garbage = json!({"Records": [{"messageId": "m-1", "body": "{\"row\": \"x\"}",
        "eventSource": "aws:sqs"}]});
    event = serde_json::from_value(garbage).unwrap();
    let resp = sqs_batch(&worker, event).await;
    assert!(
        resp.failures.is_empty(),
        "redelivering a bad body cannot help"
    );
    assert!(queue.due.lock().unwrap().is_empty());
    let json = serde_json::to_value(callbot_functions::lambda::BatchResponse {
        failures: vec![callbot_functions::lambda::ItemFailure { id: "m-2".into() }],
    })
    .unwrap();
    assert_eq!(
        json,
        json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
    );
    // A row whose next message cannot be sent is reported, to be delivered again.
    let (_, bot) = app.create_bot(&app.api_key, common::bot_body()).await;
    let (status, c) = app
        .post_json(
            &app.api_key,
            "/campaigns",
            &json!({"bot_id": bot["id"],
            "rows": [{"to": "+15550309999"}]}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    queue.down.store(true, Ordering::Relaxed);
    let m = RowMessage {
        tenant: TenantId::parse("acme").unwrap(),
        campaign: CampaignId::parse(c["id"].as_str().unwrap()).unwrap(),
        row: 0,
    };
    let (event, ids) = lambda_event(&[m]);
    let resp = sqs_batch(&worker, event).await;
    assert_eq!(resp.failures.len(), 1);
    assert_eq!(resp.failures[0].id, ids[0]);
}

#[tokio::test]
async fn a_campaign_whose_queue_is_down_is_refused_and_dials_nobody() {
    let queue = TestQueue::new(ManualClock::at("2026-12-07T10:00:00Z"));
    queue.down.store(true, Ordering::Relaxed);
    let q = queue.clone();
    let app = common::spawn_app_adjusted(
        |s| s.campaign_dialer = false,
        |mut p| {
            p.state.campaign_queue = Some(q);
            p
        },
    )
    .await;
    let (_, bot) = app.create_bot(&app.api_key, common::bot_body()).await;
    let (status, err) = app
        .post_json(
            &app.api_key,
            "/campaigns",
            &json!({"bot_id": bot["id"],
            "rows": [{"to": "+15550309998"}]}),
        )
        .await;
    assert_eq!(status, 503, "{err}");
    let (_, list) = app.get(&app.api_key, "/campaigns").await;
    assert_eq!(list["campaigns"][0]["status"], "cancelled", "{list}");
    assert_eq!(list["campaigns"][0]["counts"]["cancelled"], 1);
}
