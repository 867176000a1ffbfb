//! A tenant's own API keys over REST: listed by id and label only, created (shown once), revoked
//! at once; never another tenant's.

#![allow(clippy::unwrap_used)]

mod common;

use common::spawn_app;
use serde_json::json;

#[tokio::test]
async fn tenants_list_create_and_revoke_their_own_keys() {
    let app = spawn_app().await;
    let (status, v) = app.get(&app.api_key, "/keys").await;
    assert_eq!(status, 200, "{v}");
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{v}");
    assert_eq!(keys[0]["current"], true);
    assert!(keys[0]["id"].as_str().unwrap().starts_with("key_"));
    assert!(
        !v.to_string().contains(&app.api_key),
        "the key itself is never listed"
    );

    let (status, created) = app
        .post_json(&app.api_key, "/keys", &json!({"label": "ci"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let new_key = created["key"].as_str().unwrap().to_owned();
    let new_id = created["id"].as_str().unwrap().to_owned();
    let (status, v) = app.get(&new_key, "/keys").await;
    assert_eq!(status, 200, "the new key works");
    let mine: Vec<_> = v["keys"].as_array().unwrap().iter().collect();
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter()
            .any(|k| k["id"] == new_id.as_str() && k["label"] == "ci" && k["current"] == true)
    );

    // Bad labels and missing keys are refused with JSON errors.
    for bad in [
        json!({"label": ""}),
        json!({"label": "x".repeat(65)}),
        json!({}),
    ] {
        let (status, v) = app.post_json(&app.api_key, "/keys", &bad).await;
        assert_eq!(status, 400, "{bad} → {v}");
        assert!(v["code"].is_string());
    }
    assert_eq!(app.get("", "/keys").await.0, 401);

    // Another tenant sees none of them and cannot revoke them.
    let other = app.new_key("globex").await;
    let (_, v) = app.get(&other, "/keys").await;
    assert_eq!(v["keys"].as_array().unwrap().len(), 1);
    let revoke = |key: String, id: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .delete(app.url(&format!("/keys/{id}")))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, v) = revoke(other.clone(), new_id.clone()).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(app.get(&new_key, "/keys").await.0, 200);

    // Revoked: refused from the next request on.
    let (status, v) = revoke(app.api_key.clone(), new_id.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["revoked"], true);
    assert_eq!(app.get(&new_key, "/keys").await.0, 401);
    let (status, _) = revoke(app.api_key.clone(), new_id).await;
    assert_eq!(status, 404, "revoking twice finds nothing");
    let (status, _) = revoke(app.api_key.clone(), "nonsense".into()).await;
    assert_eq!(status, 404);
}
