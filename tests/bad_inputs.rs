//! A table of bad requests, each with the status and error code it must get. None may panic,
//! and none may leave anything behind.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::Value;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    key: bool,
    content_type: Option<&'static str>,
    body: Option<String>,
    idempotency_key: Option<&'static str>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn post(
    name: &'static str,
    body: &str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: "POST",
        path: "/bots",
        key: true,
        content_type: Some("application/json"),
        body: Some(body.to_owned()),
        idempotency_key: None,
        status,
        code,
        field,
    }
}

fn cases() -> Vec<Case> {
    let ok = r#""goal":"g","webhook":"https://example.com/h""#;
    vec![
        post("not json", "{goal:", 400, "invalid_json", None),
        post("empty body", "", 400, "invalid_json", None),
        post("json array", "[1,2]", 400, "invalid_json", None),
        post(
            "missing goal",
            r#"{"webhook":"https://example.com/h"}"#,
            400,
            "invalid_json",
            Some("goal"),
        ),
        post(
            "missing webhook",
            r#"{"goal":"g"}"#,
            400,
            "missing_webhook",
            Some("webhook"),
        ),
        post(
            "goal wrong type",
            r#"{"goal":5,"webhook":"https://example.com/h"}"#,
            400,
            "invalid_json",
            Some("goal"),
        ),
        post(
            "unknown field",
            &format!(r#"{{{ok},"colour":"red"}}"#),
            400,
            "invalid_json",
            Some("colour"),
        ),
        post(
            "blank goal",
            r#"{"goal":"   ","webhook":"https://example.com/h"}"#,
            400,
            "empty_field",
            Some("goal"),
        ),
        post(
            "goal too long",
            &format!(
                r#"{{"goal":"{}","webhook":"https://example.com/h"}}"#,
                "x".repeat(2001)
            ),
            400,
            "too_long",
            Some("goal"),
        ),
        post(
            "context too long",
            &format!(r#"{{{ok},"context":"{}"}}"#, "x".repeat(8001)),
            400,
            "too_long",
            Some("context"),
        ),
        post(
            "webhook not a url",
            r#"{"goal":"g","webhook":"not a url"}"#,
            400,
            "invalid_webhook",
            Some("webhook"),
        ),
        post(
            "webhook ftp",
            r#"{"goal":"g","webhook":"ftp://example.com/"}"#,
            400,
            "invalid_webhook",
            Some("webhook"),
        ),
        post(
            "webhook with credentials",
            r#"{"goal":"g","webhook":"https://u:p@example.com/"}"#,
            400,
            "invalid_webhook",
            Some("webhook"),
        ),
        post(
            "webhook metadata address",
            r#"{"goal":"g","webhook":"https://169.254.169.254/"}"#,
            400,
            "webhook_not_allowed",
            Some("webhook"),
        ),
        post(
            "webhook plain http",
            r#"{"goal":"g","webhook":"http://example.com/"}"#,
            400,
            "webhook_not_allowed",
            Some("webhook"),
        ),
        post(
            "voice without provider",
            &format!(r#"{{{ok},"voice":"emma"}}"#),
            400,
            "invalid_voice",
            Some("voice"),
        ),
        post(
            "voice playht",
            &format!(r#"{{{ok},"voice":"playht:jennifer"}}"#),
            400,
            "voice_provider_discontinued",
            Some("voice"),
        ),
        post(
            "voice unknown provider",
            &format!(r#"{{{ok},"voice":"azure:jenny"}}"#),
            400,
            "invalid_voice",
            Some("voice"),
        ),
        post(
            "area code letters",
            &format!(r#"{{{ok},"area_code":"4a5"}}"#),
            400,
            "invalid_area_code",
            Some("area_code"),
        ),
        post(
            "country too long",
            &format!(r#"{{{ok},"country":"USA"}}"#),
            400,
            "invalid_country",
            Some("country"),
        ),
        post(
            "first message empty",
            &format!(r#"{{{ok},"first_message":""}}"#),
            400,
            "empty_field",
            Some("first_message"),
        ),
        post(
            "control characters",
            r#"{"goal":"a\u0000b","webhook":"https://example.com/h"}"#,
            400,
            "invalid_text",
            Some("goal"),
        ),
        Case {
            content_type: Some("text/xml"),
            ..post(
                "xml content type",
                "<bot/>",
                415,
                "unsupported_media_type",
                None,
            )
        },
        Case {
            body: Some(format!(r#"{{{ok},"context":"{}"}}"#, "x".repeat(70_000))),
            ..post("oversized body", "", 413, "payload_too_large", None)
        },
        Case {
            key: false,
            ..post(
                "no API key",
                &format!("{{{ok}}}"),
                401,
                "unauthorized",
                None,
            )
        },
        Case {
            idempotency_key: Some("has space"),
            ..post(
                "bad idempotency key",
                &format!("{{{ok}}}"),
                400,
                "invalid_idempotency_key",
                None,
            )
        },
        Case {
            method: "GET",
            path: "/bots/not-a-bot-id",
            body: None,
            ..post("malformed bot id", "", 404, "not_found", None)
        },
        Case {
            method: "GET",
            path: "/bots/bot_0123456789abcdef0123456789abcdef",
            body: None,
            ..post("unknown bot id", "", 404, "not_found", None)
        },
        Case {
            method: "PATCH",
            path: "/bots/bot_0123456789abcdef0123456789abcdef",
            ..post(
                "patch unknown bot",
                r#"{"goal":"x"}"#,
                404,
                "not_found",
                None,
            )
        },
        Case {
            method: "DELETE",
            path: "/bots/bot_0123456789abcdef0123456789abcdef",
            body: None,
            ..post("delete unknown bot", "", 404, "not_found", None)
        },
        Case {
            method: "GET",
            path: "/no/such/route",
            body: None,
            ..post("unknown route", "", 404, "not_found", None)
        },
        Case {
            method: "PUT",
            path: "/bots",
            ..post("wrong method", "{}", 405, "method_not_allowed", None)
        },
        // The ticket route's optional body gets the same checks as every JSON body.
        Case {
            path: "/call/tickets",
            content_type: Some("text/plain"),
            ..post(
                "ticket body not JSON",
                "purpose=call",
                415,
                "unsupported_media_type",
                None,
            )
        },
        Case {
            path: "/call/tickets",
            body: Some(format!(r#"{{"purpose":"{}"}}"#, "x".repeat(70_000))),
            ..post("oversized ticket body", "", 413, "payload_too_large", None)
        },
    ]
}

#[tokio::test]
async fn bad_inputs_get_clear_errors_and_change_nothing() {
    let app = spawn_app_with_strict_webhooks().await;
    let table = cases();
    assert!(table.len() >= 20);
    for case in table {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut req = app.client.request(method, app.url(case.path));
        if case.key {
            req = req.header("x-api-key", &app.api_key);
        }
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(k) = case.idempotency_key {
            req = req.header("idempotency-key", k);
        }
        if let Some(body) = case.body {
            req = req.body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: body is not JSON: {text}", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["code"], case.code, "{}: {body}", case.name);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}: no error text",
            case.name
        );
        if let Some(field) = case.field {
            assert_eq!(body["field"], field, "{}: {body}", case.name);
            assert!(
                body["error"].as_str().unwrap().contains(field),
                "{}: message must name the field",
                case.name
            );
        }
    }
    let (_, list) = app.get(&app.api_key, "/bots").await;
    assert_eq!(
        list,
        serde_json::json!([]),
        "no bad request may create anything"
    );
}

#[tokio::test]
async fn empty_patch_is_refused() {
    let app = common::spawn_app().await;
    let (_, bot) = app.create_bot(&app.api_key, common::bot_body()).await;
    let id = bot["id"].as_str().unwrap();
    for (body, code) in [
        ("{}", "empty_update"),
        (r#"{"status":"deleted"}"#, "invalid_status"),
        (r#"{"voice":"playht:x"}"#, "voice_provider_discontinued"),
    ] {
        let resp = app
            .client
            .patch(app.url(&format!("/bots/{id}")))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.json::<Value>().await.unwrap()["code"], code);
    }
    let (_, unchanged) = app.get(&app.api_key, &format!("/bots/{id}")).await;
    assert_eq!(unchanged["voice"], "local:en-gb");
    assert_eq!(unchanged["status"], "active");
}

async fn spawn_app_with_strict_webhooks() -> common::TestApp {
    common::spawn_app_with(|s| s.webhook_policy.allow_private = false).await
}

/// A query string that does not parse is refused as JSON, like every other bad input.
#[tokio::test]
async fn bad_query_strings_get_json_errors() {
    let app = common::spawn_app().await;
    for path in [
        "/calls?limit=many",
        "/calls?limit=-1",
        "/call-status?callSid=CA1&user_id=u&callSid=CA2",
        "/calls/CA00000000000000000000000000000001/recording?expires=soon&sig=x",
    ] {
        let r = app
            .client
            .get(app.url(path))
            .header("x-api-key", &app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_query", "{path}: {v}");
    }
}
