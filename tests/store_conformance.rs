//! Both store adapters pass the same conformance suite: SQLite on a real file, and DynamoDB against
//! the local DynamoDB-compatible server started by scripts/test.sh.

#![allow(clippy::unwrap_used)]

mod common;

use callbot_core::store::conformance;
use callbot_core::store::sqlite::SqliteStore;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
    conformance::run_all(store.clone()).await;
    conformance::campaigns::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_survives_reopen_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let tenant = callbot_core::domain::TenantId::parse("reopen").unwrap();
    let bot = conformance::sample_bot(&tenant);
    {
        let store = SqliteStore::open(&path).unwrap();
        callbot_core::store::Store::create_bot(&store, &bot, 10, None)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let got = callbot_core::store::Store::get_bot(&store, &tenant, &bot.id)
        .await
        .unwrap();
    assert_eq!(got.map(|b| b.id), Some(bot.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let store = callbot_core::wiring::store(&settings)
        .await
        .expect("connect to the DynamoDB stand-in");
    assert_eq!(store.kind(), "dynamodb");
    conformance::run_all(store.clone()).await;
    conformance::campaigns::run_all(store).await;
}
