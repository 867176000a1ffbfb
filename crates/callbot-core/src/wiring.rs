//! Picks the adapter for each trait from `Settings`: the only place that knows which
//! implementations exist.

use crate::apikey::KeyHash;
use crate::domain::TenantId;
use crate::settings::{Settings, StoreSettings, TelephonySettings};
use crate::store::dynamo::DynamoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::telephony::{LocalTelephony, Telephony};
use secrecy::ExposeSecret;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsupported(String),
}

pub async fn store(settings: &Settings) -> Result<Arc<dyn Store>, WiringError> {
    Ok(match &settings.store {
        StoreSettings::Sqlite { path } => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))??;
            Arc::new(store)
        }
        StoreSettings::Dynamodb {
            table,
            create_table,
        } => Arc::new(DynamoStore::connect(&settings.aws, table, *create_table).await?),
    })
}

pub fn telephony(
    settings: &Settings,
    store: Arc<dyn Store>,
) -> Result<Arc<dyn Telephony>, WiringError> {
    match &settings.telephony {
        TelephonySettings::Local => Ok(Arc::new(LocalTelephony::new(store))),
        TelephonySettings::Twilio { .. } => Err(WiringError::Unsupported(
            "the Twilio telephony adapter is not built yet; unset TWILIO_ACCOUNT_SID to use local telephony".into(),
        )),
    }
}

/// Registers `CALLBOT_API_KEY` (if set) for tenant `default`, stored hashed like any other key.
pub async fn bootstrap_dev_key(
    settings: &Settings,
    store: &dyn Store,
) -> Result<bool, WiringError> {
    let Some(key) = &settings.dev_api_key else {
        return Ok(false);
    };
    store
        .put_api_key(
            &KeyHash::of(key.expose_secret()),
            &TenantId::default_tenant(),
            "CALLBOT_API_KEY",
        )
        .await?;
    Ok(true)
}
