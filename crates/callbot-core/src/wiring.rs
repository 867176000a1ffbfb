//! Picks the adapter for each trait from `Settings`: the only place that knows which
//! implementations exist.

use crate::apikey::KeyHash;
use crate::domain::TenantId;
use crate::settings::{Settings, StoreSettings, TelephonySettings, TwilioCredentials};
use crate::store::dynamo::DynamoStore;
use crate::store::{Store, StoreError};
use crate::telephony::Telephony;
use crate::twilio::rest::TwilioTelephony;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;
use std::sync::Arc;

/// Path of the embedded Twilio simulator's API under the local server (`callbot serve`).
pub const SIM_TWILIO_PATH: &str = "/_sim/twilio";

/// The Twilio account callbot talks to: the real one, or the embedded simulator's.
#[derive(Debug, Clone)]
pub struct TwilioAccount {
    pub account_sid: String,
    /// Verifies `X-Twilio-Signature` on webhooks and stream handshakes; keys stream tokens.
    pub auth_token: SecretString,
    /// REST base (`https://api.twilio.com`, or the simulator's).
    pub api_base: String,
    rest_username: String,
    rest_secret: SecretString,
    /// True for the embedded simulator of local mode.
    pub simulated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsupported(String),
    #[error("reading the Twilio secret: {0}")]
    Secret(String),
}

pub async fn store(settings: &Settings) -> Result<Arc<dyn Store>, WiringError> {
    Ok(match &settings.store {
        #[cfg(feature = "sqlite")]
        StoreSettings::Sqlite { path } => {
            let path = path.clone();
            let store =
                tokio::task::spawn_blocking(move || crate::store::sqlite::SqliteStore::open(&path))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))??;
            Arc::new(store)
        }
        #[cfg(not(feature = "sqlite"))]
        StoreSettings::Sqlite { .. } => {
            return Err(WiringError::Unsupported(
                "this build has no SQLite store (the Lambda functions use DynamoDB): \
                 set CALLBOT_STORE=dynamodb and CALLBOT_DYNAMODB_TABLE"
                    .into(),
            ));
        }
        StoreSettings::Dynamodb {
            table,
            create_table,
        } => Arc::new(DynamoStore::connect(&settings.aws, table, *create_table).await?),
    })
}

/// The Twilio account from settings. In local mode the simulator's auth token is generated once
/// into `{data_dir}/twilio-sim-token` (mode 0600) and its account sid derived from it, so
/// `callbot call` and the simulator sign exactly like the server expects.
pub async fn twilio_account(settings: &Settings) -> Result<TwilioAccount, WiringError> {
    match &settings.telephony {
        TelephonySettings::Twilio {
            account_sid,
            credentials,
            api_base,
        } => {
            let (auth_token, api_key) = match credentials {
                TwilioCredentials::Inline {
                    auth_token,
                    api_key,
                } => (auth_token.clone(), api_key.clone()),
                TwilioCredentials::SecretsManager { secret_id } => {
                    crate::secrets::twilio_secret(&settings.aws, secret_id)
                        .await
                        .map_err(|e| WiringError::Secret(e.to_string()))?
                }
            };
            let (rest_username, rest_secret) = match api_key {
                Some((sid, secret)) => (sid, secret),
                None => (account_sid.clone(), auth_token.clone()),
            };
            Ok(TwilioAccount {
                account_sid: account_sid.clone(),
                auth_token,
                api_base: api_base.clone(),
                rest_username,
                rest_secret,
                simulated: false,
            })
        }
        TelephonySettings::Local { .. } => {
            let token = local_sim_token(&settings.data_dir)?;
            let account_sid = local_sim_account_sid(&token);
            let token = SecretString::from(token);
            Ok(TwilioAccount {
                rest_username: account_sid.clone(),
                rest_secret: token.clone(),
                account_sid,
                auth_token: token,
                // The simulator runs in this process: reach it directly, not via PUBLIC_BASE_URL.
                api_base: format!("http://{}{SIM_TWILIO_PATH}", settings.addr),
                simulated: true,
            })
        }
    }
}

/// The simulator's account sid for a token: `AC` and 32 hex digits of its SHA-256.
pub fn local_sim_account_sid(token: &str) -> String {
    format!(
        "AC{}",
        &hex::encode(sha2::Sha256::digest(token.as_bytes()))[..32]
    )
}

/// Reads, or creates once, the local simulator's auth token in `data_dir`.
pub fn local_sim_token(data_dir: &std::path::Path) -> Result<String, WiringError> {
    let path = data_dir.join("twilio-sim-token");
    let io = |e: std::io::Error| WiringError::Unsupported(format!("{}: {e}", path.display()));
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim();
        if t.len() >= 32 {
            return Ok(t.to_owned());
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let token = crate::apikey::random_token("", 32);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path).map_err(io)?, token.as_bytes()).map_err(io)?;
    Ok(token)
}

pub fn telephony(account: &TwilioAccount) -> Result<Arc<dyn Telephony>, WiringError> {
    let t = TwilioTelephony::new(
        &account.api_base,
        &account.account_sid,
        &account.rest_username,
        account.rest_secret.clone(),
    )
    .map_err(|e| WiringError::Unsupported(e.to_string()))?;
    Ok(Arc::new(t))
}

/// The label of the key `CALLBOT_API_KEY` registers.
pub const DEV_KEY_LABEL: &str = "CALLBOT_API_KEY";

/// Registers `CALLBOT_API_KEY` (if set) for tenant `default`, stored hashed like any other key,
/// and revokes any key an earlier `CALLBOT_API_KEY` registered: a key from the variable works
/// exactly while the variable holds it. Returns whether a key is registered.
pub async fn bootstrap_dev_key(
    settings: &Settings,
    store: &dyn Store,
) -> Result<bool, WiringError> {
    let tenant = TenantId::default_tenant();
    let current = settings
        .dev_api_key
        .as_ref()
        .map(|k| crate::store::key_id(&KeyHash::of(k.expose_secret())));
    for old in store.list_api_keys(Some(&tenant)).await? {
        if old.label == DEV_KEY_LABEL && Some(&old.id) != current.as_ref() {
            store.revoke_api_key(Some(&tenant), &old.id).await?;
            tracing::info!(key_id = %old.id, "revoked the key of a CALLBOT_API_KEY that is no longer set");
        }
    }
    let Some(key) = &settings.dev_api_key else {
        return Ok(false);
    };
    store
        .put_api_key(&KeyHash::of(key.expose_secret()), &tenant, DEV_KEY_LABEL)
        .await?;
    Ok(true)
}

/// The recordings adapter the settings ask for.
pub async fn recordings(
    settings: &Settings,
) -> Result<Arc<dyn crate::recordings::Recordings>, WiringError> {
    match &settings.recordings {
        crate::settings::RecordingsSettings::Local { dir } => {
            Ok(Arc::new(crate::recordings::LocalRecordings {
                dir: dir.clone(),
            }))
        }
        crate::settings::RecordingsSettings::S3 {
            bucket,
            create_bucket,
        } => {
            let s3 = crate::recordings::S3Recordings::connect(
                &settings.aws,
                bucket,
                settings.data_dir.join("spool"),
            )
            .await;
            if *create_bucket {
                s3.ensure_bucket()
                    .await
                    .map_err(|e| WiringError::Unsupported(e.to_string()))?;
            }
            Ok(Arc::new(s3))
        }
    }
}

/// What every process (`callbot serve`, a Lambda function, the stream service) builds once from
/// settings: the store (with `CALLBOT_API_KEY` registered, if set), the Twilio account, telephony
/// and recordings.
#[derive(Debug, Clone)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub twilio: TwilioAccount,
    pub telephony: Arc<dyn Telephony>,
    pub recordings: Arc<dyn crate::recordings::Recordings>,
}

/// The campaign queue the settings name (SQS), if any.
pub async fn campaign_queue(
    settings: &Settings,
) -> Option<Arc<dyn crate::campaign_queue::CampaignQueue>> {
    let url = settings.campaign_queue_url.as_deref()?;
    let config = settings.aws.sdk_config().await;
    Some(Arc::new(crate::campaign_queue::SqsQueue::new(&config, url)))
}

/// This instance's internal URL for other instances (live calls reached from any instance):
/// `CALLBOT_INSTANCE_URL`; on ECS without it, the task's private IPv4 address (from the container
/// metadata endpoint) and the bound port; otherwise [`Settings::instance_base`].
pub async fn instance_url(settings: &Settings) -> Result<url::Url, WiringError> {
    let unusable = |e: String| WiringError::Unsupported(format!("CALLBOT_INSTANCE_URL: {e}"));
    if settings.instance_url.is_none()
        && let Some(meta) = &settings.ecs_metadata_uri
    {
        let ip = ecs_private_ip(meta)
            .await
            .map_err(|e| unusable(format!("unset, and the ECS metadata gave no address: {e}")))?;
        return url::Url::parse(&format!("http://{ip}:{}", settings.addr.port()))
            .map_err(|e| unusable(e.to_string()));
    }
    url::Url::parse(&settings.instance_base()).map_err(|e| unusable(e.to_string()))
}

/// The first private IPv4 address of the container's networks (ECS task metadata v4).
async fn ecs_private_ip(meta: &url::Url) -> Result<std::net::Ipv4Addr, String> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(meta.clone())
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["Networks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["IPv4Addresses"].as_array().into_iter().flatten())
        .find_map(|a| a.as_str()?.parse().ok())
        .ok_or_else(|| "no Networks[].IPv4Addresses".to_owned())
}

pub async fn backends(settings: &Settings) -> Result<Backends, WiringError> {
    let store = store(settings).await?;
    bootstrap_dev_key(settings, &*store).await?;
    let twilio = twilio_account(settings).await?;
    let telephony = telephony(&twilio)?;
    let recordings = recordings(settings).await?;
    Ok(Backends {
        store,
        twilio,
        telephony,
        recordings,
    })
}
