//! Black-box tests of the bots API through `spawn_app()`: shapes, auth, tenant isolation,
//! idempotency, numbers, quotas (on SQLite and DynamoDB) and the API description.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, bot_body, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use std::collections::HashSet;

#[tokio::test]
async fn create_list_get_patch_delete() {
    let app = spawn_app().await;
    let (status, created) = app.create_bot(&app.api_key, bot_body()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("bot_"));
    assert!(created["number"].as_str().unwrap().starts_with("+1555"));
    assert_eq!(created["status"], "active");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        created["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let (status, list) = app.get(&app.api_key, "/bots").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["calls_today"], 0);
    assert_eq!(list[0]["goal"], "Take restaurant reservations");
    assert_eq!(list[0]["voice"], "local:en-gb");
    assert!(
        list[0].get("webhook_secret").is_none(),
        "the secret is shown only at creation"
    );

    let (status, one) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["context"], "Open 5PM–10PM");

    let resp = app
        .client
        .patch(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &app.api_key)
        .json(
            &json!({"goal": "Answer questions", "status": "paused", "first_message": "Hi there!"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["goal"], "Answer questions");
    assert_eq!(patched["status"], "paused");
    assert_eq!(patched["first_message"], "Hi there!");
    assert_eq!(
        patched["number"], created["number"],
        "PATCH never changes the number"
    );

    let resp = app
        .client
        .patch(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &app.api_key)
        .json(&json!({"rotate_webhook_secret": true, "first_message": null}))
        .send()
        .await
        .unwrap();
    let rotated: Value = resp.json().await.unwrap();
    assert_ne!(rotated["webhook_secret"], created["webhook_secret"]);
    assert!(rotated.get("first_message").is_none());

    let resp = app
        .client
        .delete(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "Bot deleted"})
    );
    let (status, body) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let number =
        callbot_core::domain::PhoneNumber::parse(created["number"].as_str().unwrap()).unwrap();
    assert!(
        app.state
            .store
            .bot_by_number(&number)
            .await
            .unwrap()
            .is_none(),
        "number mapping released"
    );
}

#[tokio::test]
async fn list_is_newest_first() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, b) = app
            .create_bot(
                &app.api_key,
                json!({"goal": format!("g{i}"), "webhook": "https://example.com/"}),
            )
            .await;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let (_, list) = app.get(&app.api_key, "/bots").await;
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn numbers_are_bought_with_webhooks_and_released() {
    let app = spawn_app().await;
    let sim = app.sim.clone().unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (c, url, key) = (app.client.clone(), app.url("/bots"), app.api_key.clone());
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", key)
                    .json(&bot_body())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                r.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut bots = Vec::new();
    for t in tasks {
        let b = t.await.unwrap();
        assert!(
            seen.insert(b["number"].as_str().unwrap().to_owned()),
            "numbers are distinct"
        );
        bots.push(b);
    }
    // Each number is owned at "Twilio" and points at our /voice with the bot id.
    for b in &bots {
        let owned = sim
            .number(b["number"].as_str().unwrap())
            .expect("number owned");
        assert_eq!(
            owned.voice_url.as_deref(),
            Some(format!("{}/voice?bot_id={}", app.base, b["id"].as_str().unwrap()).as_str())
        );
        assert_eq!(
            owned.status_callback.as_deref(),
            Some(app.url("/voice/status").as_str())
        );
    }
    let id = bots[0]["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        sim.number(bots[0]["number"].as_str().unwrap()).is_none(),
        "released at Twilio"
    );
    assert_eq!(sim.numbers().len(), 5);
}

#[tokio::test]
async fn authentication_is_required() {
    let app = spawn_app().await;
    for key in [None, Some("wrong-key-123"), Some("x")] {
        let mut req = app.client.get(app.url("/bots"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    // Health, API description and docs are public.
    for path in ["/healthz", "/openapi.json", "/docs"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = spawn_app().await;
    let other = app.new_key("globex").await;
    let (_, bot) = app.create_bot(&app.api_key, bot_body()).await;
    let id = bot["id"].as_str().unwrap();
    let (status, _) = app.get(&other, &format!("/bots/{id}")).await;
    assert_eq!(status, 404);
    let (_, list) = app.get(&other, "/bots").await;
    assert_eq!(list, json!([]));
    let patch = app
        .client
        .patch(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &other)
        .json(&json!({"goal": "hijack"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);
    let del = app
        .client
        .delete(app.url(&format!("/bots/{id}")))
        .header("x-api-key", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    let (status, still) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!(
        (status, still["goal"].as_str()),
        (200, Some("Take restaurant reservations"))
    );
}

#[tokio::test]
async fn idempotency_key_replays_and_conflicts() {
    let app = spawn_app().await;
    let send = |body: Value, key: &'static str| {
        app.client
            .post(app.url("/bots"))
            .header("x-api-key", &app.api_key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send(bot_body(), "order-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(bot_body(), "order-1").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let mut changed = bot_body();
    changed["goal"] = json!("Something else");
    let conflict = send(changed, "order-1").await.unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.json::<Value>().await.unwrap()["code"],
        "idempotency_conflict"
    );
    let (_, list) = app.get(&app.api_key, "/bots").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "replays create nothing");

    // Concurrent requests with one key create exactly one bot and all get the same answer.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, url, k) = (app.client.clone(), app.url("/bots"), app.api_key.clone());
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", k)
                    .header("idempotency-key", "burst")
                    .json(&bot_body())
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap()["id"].clone(),
                )
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, 201);
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 1);
    let (_, list) = app.get(&app.api_key, "/bots").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

async fn quota_race(app: &TestApp) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (c, url, k) = (app.client.clone(), app.url("/bots"), app.api_key.clone());
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", k)
                    .json(&bot_body())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut created, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (201, _) => created += 1,
            (409, body) => {
                assert_eq!(body["code"], "quota_exceeded");
                limited += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!((created, limited), (10, 40));
    let (status, list) = app.get(&app.api_key, "/bots").await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(10)),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_race_on_sqlite() {
    let app = spawn_app().await;
    quota_race(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_race_on_dynamodb() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.store = settings.store;
        s.aws = settings.aws;
    })
    .await;
    assert_eq!(app.state.store.kind(), "dynamodb");
    quota_race(&app).await;
}

#[tokio::test]
async fn quota_is_configurable() {
    let app = spawn_app_with(|s| s.limits.max_bots_per_tenant = 2).await;
    assert_eq!(app.create_bot(&app.api_key, bot_body()).await.0, 201);
    assert_eq!(app.create_bot(&app.api_key, bot_body()).await.0, 201);
    let (status, body) = app.create_bot(&app.api_key, bot_body()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("quota_exceeded"))
    );
    // Another tenant has its own quota.
    let other = app.new_key("initech").await;
    assert_eq!(app.create_bot(&other, bot_body()).await.0, 201);
}

#[tokio::test]
async fn private_webhooks_need_operator_permission() {
    let strict = spawn_app_with(|s| s.webhook_policy.allow_private = false).await;
    for hook in [
        "http://example.com/hook",
        "https://127.0.0.1:9000/hook",
        "https://192.168.1.5/",
        "https://localhost/",
    ] {
        let (status, body) = strict
            .create_bot(&strict.api_key, json!({"goal": "g", "webhook": hook}))
            .await;
        assert_eq!(
            (status, body["code"].as_str(), body["field"].as_str()),
            (400, Some("webhook_not_allowed"), Some("webhook")),
            "{hook}"
        );
    }
    let dev = spawn_app().await;
    let (status, _) = dev
        .create_bot(
            &dev.api_key,
            json!({"goal": "g", "webhook": "http://127.0.0.1:9000/hook"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn openapi_describes_the_routes() {
    let app = spawn_app().await;
    let doc: Value = app.public_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    // Every operation that needs a key says it may answer 401 — and does.
    let mut guarded = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                guarded += 1;
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                if method == "get" && !path.contains('{') {
                    let (status, body) = app.get("", path).await;
                    assert_eq!(status, 401, "{method} {path}: {body}");
                    assert_eq!(body["code"], "unauthorized", "{method} {path}");
                }
            }
        }
    }
    assert!(guarded > 15, "{guarded}");
    for (path, method) in [
        ("/bots", "post"),
        ("/bots", "get"),
        ("/bots/{id}", "get"),
        ("/bots/{id}", "patch"),
        ("/bots/{id}", "delete"),
        ("/healthz", "get"),
        ("/outbound-call", "post"),
        ("/end-call", "post"),
        ("/call-status", "get"),
        ("/calls", "get"),
        ("/calls/{sid}", "get"),
        ("/voice", "post"),
        ("/voice/status", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["CreateBotRequest"]["properties"]["goal"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["name"],
        "X-API-Key"
    );
    let html = app.public_text("/docs").await;
    assert!(html.contains("/openapi.json"));
    let health: Value = app.public_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "sqlite");
}
