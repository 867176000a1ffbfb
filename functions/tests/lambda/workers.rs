//! The worker functions of the template, through the same executables as the API: the campaign
//! dialer (SQS events) and the post-call function (the table's stream).

use super::*;

/// A DynamoDB item in DynamoDB's JSON, as stream records carry it.
fn ddb_json(v: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => json!({"S": s}),
        A::N(n) => json!({"N": n}),
        A::Bool(b) => json!({"BOOL": b}),
        A::Null(_) => json!({"NULL": true}),
        A::M(m) => {
            json!({"M": m.iter().map(|(k, v)| (k.clone(), ddb_json(v))).collect::<serde_json::Map<_, _>>()})
        }
        A::L(l) => json!({"L": l.iter().map(ddb_json).collect::<Vec<_>>()}),
        other => panic!("not in a call item: {other:?}"),
    }
}

/// What a business's webhook received: (headers, body) of each POST.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn hook_server() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// The post-call function as the template runs it: a call ends (its status written by `voice`),
/// the table's stream hands the call item to the `calls` executable started with
/// `CALLBOT_LAMBDA_EVENTS=call-ended` (its model key read from Secrets Manager), which sends the
/// bot's webhook one signed `call.ended` event, and none again when the record comes twice.
pub(super) async fn post_call_through_the_stream(env: &Env, exes: &[Exe; 3]) {
    let (hook, received) = hook_server().await;
    let env = env.with(&[("CALLBOT_ALLOW_PRIVATE_WEBHOOKS", "1")]);
    let auth = json!({"x-api-key": KEY, "content-type": "application/json"});
    let mut bots = start("bots", &exes[0], &env).await;
    let created = bots
        .invoke(
            "POST",
            "/bots",
            auth,
            Some(json!({"goal": "Take reservations", "webhook": hook}).to_string()),
        )
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let bot = body(&created);
    let (id, number) = (bot["id"].as_str().unwrap(), bot["number"].as_str().unwrap());
    let secret = bot["webhook_secret"].as_str().unwrap().to_owned();
    let mut voice = start("voice", &exes[1], &env).await;
    let sid = callbot_core::domain::CallSid::generate().to_string();
    let signed = |path: &str, params: Vec<(String, String)>| {
        let url = format!("{PUBLIC}{path}");
        let sig = callbot_core::twilio::signature::compute(env.token.as_bytes(), &url, &params);
        (
            json!({"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig}),
            serde_urlencoded::to_string(&params).unwrap(),
        )
    };
    let p = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let (h, form) = signed(
        &format!("/voice?bot_id={id}"),
        p(&[("CallSid", &sid), ("From", "+15557654321"), ("To", number)]),
    );
    let answered = voice
        .invoke("POST", &format!("/voice?bot_id={id}"), h, Some(form))
        .await;
    assert_eq!(answered["statusCode"], 200, "{answered}");
    let (h, form) = signed(
        "/voice/status",
        p(&[
            ("CallSid", &sid),
            ("CallStatus", "completed"),
            ("SequenceNumber", "3"),
            ("CallDuration", "42"),
        ]),
    );
    let ended = voice.invoke("POST", "/voice/status", h, Some(form)).await;
    assert_eq!(
        ended["statusCode"].as_u64().map(|s| s / 100),
        Some(2),
        "{ended}"
    );

    // The stream's record of that write, built from the item as it now is.
    let table = env
        .vars
        .iter()
        .find(|(k, _)| k == "CALLBOT_DYNAMODB_TABLE")
        .unwrap()
        .1
        .clone();
    let ddb = aws_sdk_dynamodb::Client::new(&aws(&env.endpoint).sdk_config().await);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CALL#{sid}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CALL".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let image: serde_json::Map<String, Value> =
        item.iter().map(|(k, v)| (k.clone(), ddb_json(v))).collect();
    let record = json!({"eventID": "c4ca4238a0b923820dcc509a6f75849b", "eventName": "MODIFY",
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1795546800,
            "Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
            "SequenceNumber": "4421584500000000017450439091", "SizeBytes": 512,
            "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-12-03T00:00:00.000")});
    let secrets = secrets_client(&env.endpoint).await;
    let key_secret = format!("callbot-openai-{}", &sid[2..14]);
    secrets
        .create_secret()
        .name(&key_secret)
        .secret_string(json!({"api_key": "sk-test"}).to_string())
        .send()
        .await
        .unwrap();
    let mut post = start(
        "postcall",
        &exes[2],
        &env.with(&[
            ("CALLBOT_LAMBDA_EVENTS", "call-ended"),
            ("CALLBOT_LLM", "openai"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("OPENAI_SECRET_ID", &key_secret),
        ]),
    )
    .await;
    let event = json!({"Records": [record]});
    let answer = post.handle(event.clone()).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one call.ended event: {got:?}");
    let (headers, raw) = &got[0];
    let sent: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        (sent["type"].as_str(), sent["call_sid"].as_str()),
        (Some("call.ended"), Some(sid.as_str()))
    );
    assert_eq!(sent["duration"], 42, "{sent}");
    let sig = headers["x-callbot-signature"].to_str().unwrap();
    let ts: u64 = sig
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        callbot_core::webhook_sign::sign(secret.as_bytes(), ts, raw.as_bytes())
    );
    // The same record again (the stream delivers at least once): nothing is sent twice.
    let again = post.handle(event).await;
    assert_eq!(again, json!({"batchItemFailures": []}));
    assert_eq!(received.lock().unwrap().len(), 1);
}

/// A campaign as the template runs it: `calls` (with the queue's URL) stores it and sends its
/// first row to SQS; the same executable started as the campaign dialer
/// (`CALLBOT_LAMBDA_EVENTS=campaign-queue`) is handed that message as Lambda's SQS event, places
/// the call, and sends the row back to the queue to be watched.
pub(super) async fn campaign_through_the_queue(env: &Env, calls_exe: &Exe, bot: &str) {
    let sqs = aws_sdk_sqs::Client::new(&aws(&env.endpoint).sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("campaigns-{}", &bot[4..16]))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let env = env.with(&[("CALLBOT_CAMPAIGN_QUEUE_URL", &queue)]);
    let auth = json!({"x-api-key": KEY, "content-type": "application/json"});
    let mut calls = start("calls", calls_exe, &env).await;
    let created = calls
        .invoke(
            "POST",
            "/campaigns",
            auth,
            Some(
                json!({"bot_id": bot, "rows": [{"to": "+15552224444"}],
                "window": {"start": "00:00", "end": "23:59"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let receive = || async {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        out.messages.unwrap_or_default()
    };
    let released = receive().await;
    assert_eq!(released.len(), 1, "the one row released");
    let m = &released[0];
    let record = json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
        "body": m.body(), "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:campaigns", "awsRegion": "us-east-1"});
    let mut dialer = start(
        "campaigns",
        calls_exe,
        &env.with(&[("CALLBOT_LAMBDA_EVENTS", "campaign-queue")]),
    )
    .await;
    let placed_before = env.sim.request_log().len();
    let answer = dialer.handle(json!({"Records": [record]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let log = env.sim.request_log();
    assert!(
        log[placed_before..]
            .iter()
            .any(|l| l.starts_with("POST") && l.ends_with("/Calls.json")),
        "the row's call was placed: {log:?}"
    );
    // The row comes back (delayed) to be watched until its call ends.
    let watched = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = watched.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed]
        .clone();
    assert_eq!(delayed, "1");
}
