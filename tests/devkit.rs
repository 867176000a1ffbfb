//! The developer kit cannot drift from the server: the checked-in Postman collection and curl
//! script equal what `callbot devkit` generates from the live OpenAPI description, the script is
//! valid bash, and its functions work against a running server.

#![allow(clippy::unwrap_used)]
mod common;

use std::process::Command;

fn checked_in(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_checked_in_kit_is_what_the_api_description_generates() {
    let (_, doc) = callbot_functions::api();
    let postman = serde_json::to_string_pretty(&callbot::devkit::postman(&doc)).unwrap() + "\n";
    assert_eq!(
        checked_in("callbot.postman_collection.json"),
        postman,
        "regenerate: target/debug/callbot devkit postman > examples/callbot.postman_collection.json"
    );
    assert_eq!(
        checked_in("callbot-curl.sh"),
        callbot::devkit::curl(&doc),
        "regenerate: target/debug/callbot devkit curl > examples/callbot-curl.sh"
    );
    let v: serde_json::Value = serde_json::from_str(&postman).unwrap();
    assert_eq!(
        v["info"]["schema"],
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    );
    for folder in v["item"].as_array().unwrap() {
        for item in folder["item"].as_array().unwrap() {
            let url = &item["request"]["url"];
            assert!(
                url["raw"].as_str().unwrap().starts_with("{{baseUrl}}/"),
                "{item}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_functions_work_against_a_server() {
    let app = common::spawn_app().await;
    let script = format!("{}/examples/callbot-curl.sh", env!("CARGO_MANIFEST_DIR"));
    let run = |body: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -eu; source '{script}'; {body}"))
            .env("CALLBOT_URL", &app.base)
            .env("CALLBOT_API_KEY", &app.api_key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let created = tokio::task::block_in_place(|| run("callbot_create_bot"));
    let id = created["id"].as_str().unwrap().to_owned();
    let got = tokio::task::block_in_place(|| run(&format!("callbot_get_bot {id}")));
    assert_eq!(got["goal"], "Take table reservations for Bella Vista");
    let calls = tokio::task::block_in_place(|| run("callbot_list_calls 'limit=5'"));
    assert!(calls["calls"].is_array());
    let ticket = tokio::task::block_in_place(|| run("callbot_create_ticket"));
    assert!(ticket["ticket"].as_str().unwrap().starts_with("cbt_"));
}
