//! Where call recordings go (`Recordings`): a local directory for `callbot serve`; links to them
//! are short-lived and signed (`link_token`/`check_link`).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecordingsError {
    #[error("recordings backend: {0}")]
    Backend(String),
    #[error("bad recording key")]
    BadKey,
}

/// Recording storage.
///
/// - `put` overwrites (idempotent) and does not block the runtime.
/// - Keys are `{tenant}/{call_sid}.wav`: plain ASCII, no `..`.
#[async_trait]
pub trait Recordings: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> &'static str;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RecordingsError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RecordingsError>;
    async fn exists(&self, key: &str) -> Result<bool, RecordingsError>;
}

pub fn recording_key(tenant: &str, sid: &str) -> String {
    format!("{tenant}/{sid}.wav")
}

fn safe(key: &str) -> Result<&str, RecordingsError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && !key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(key)
    } else {
        Err(RecordingsError::BadKey)
    }
}

#[derive(Debug, Clone)]
pub struct LocalRecordings {
    pub dir: PathBuf,
}

#[async_trait]
impl Recordings for LocalRecordings {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RecordingsError> {
        let path = self.dir.join(safe(key)?);
        let dir = path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| self.dir.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = tempfile::NamedTempFile::new_in(&dir)?;
            std::fs::write(tmp.path(), &bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })
        .await
        .map_err(|e| RecordingsError::Backend(e.to_string()))?
        .map_err(|e| RecordingsError::Backend(e.to_string()))
    }

    async fn exists(&self, key: &str) -> Result<bool, RecordingsError> {
        Ok(tokio::fs::try_exists(self.dir.join(safe(key)?))
            .await
            .unwrap_or(false))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RecordingsError> {
        let path = self.dir.join(safe(key)?);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RecordingsError::Backend(e.to_string())),
        }
    }
}

/// Recordings in an S3 bucket (production). Objects are written with server-side encryption and
/// `audio/wav`; the bucket itself blocks public access (links go through the API).
#[derive(Debug, Clone)]
pub struct S3Recordings {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Recordings {
    pub async fn connect(aws: &crate::settings::AwsSettings, bucket: &str) -> Self {
        let conf = aws.sdk_config().await;
        // Local S3-compatible servers answer on one host: path-style addressing.
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(aws.endpoint_url.is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: bucket.to_owned(),
        }
    }

    /// Creates the bucket if missing (development and tests; production has it from the template).
    pub async fn ensure_bucket(&self) -> Result<(), RecordingsError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                RecordingsError::Backend(format!(
                    "creating bucket {}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })
    }
}

#[async_trait]
impl Recordings for S3Recordings {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RecordingsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(safe(key)?)
            .content_type("audio/wav")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(bytes.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                RecordingsError::Backend(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RecordingsError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(safe(key)?)
            .send()
            .await
        {
            Ok(o) => o
                .body
                .collect()
                .await
                .map(|b| Some(b.into_bytes().to_vec()))
                .map_err(|e| RecordingsError::Backend(e.to_string())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(RecordingsError::Backend(
                aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, RecordingsError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(safe(key)?)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(RecordingsError::Backend(
                aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }
}

fn link_mac(secret: &[u8], sid: &str, expires: u64) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(b"recording-link\0");
    m.update(sid.as_bytes());
    m.update(b"\0");
    m.update(expires.to_string().as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Query string for a link to a call's recording, valid until `expires` (unix seconds).
pub fn link_query(secret: &[u8], sid: &str, expires: u64) -> String {
    format!("expires={expires}&sig={}", link_mac(secret, sid, expires))
}

/// Whether a link's `expires`/`sig` are valid for `sid` at `now`.
pub fn check_link(secret: &[u8], sid: &str, expires: u64, sig: &str, now: u64) -> bool {
    use subtle::ConstantTimeEq;
    now <= expires
        && bool::from(
            link_mac(secret, sid, expires)
                .as_bytes()
                .ct_eq(sig.as_bytes()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_put_get_and_key_checks() {
        let dir = tempfile::tempdir().unwrap();
        let r = LocalRecordings {
            dir: dir.path().to_path_buf(),
        };
        r.put("t1/CA1.wav", b"RIFF".to_vec()).await.unwrap();
        assert_eq!(r.get("t1/CA1.wav").await.unwrap().unwrap(), b"RIFF");
        assert!(r.get("t1/none.wav").await.unwrap().is_none());
        for bad in ["../x", "/etc/passwd", "a//b", "a/../b", "a b"] {
            assert!(
                matches!(r.put(bad, vec![]).await, Err(RecordingsError::BadKey)),
                "{bad}"
            );
        }
    }

    #[test]
    fn links_expire_and_bind_the_call() {
        let q = link_query(b"k", "CA1", 100);
        let sig = q.split("sig=").nth(1).unwrap();
        assert!(check_link(b"k", "CA1", 100, sig, 99));
        assert!(!check_link(b"k", "CA1", 100, sig, 101));
        assert!(!check_link(b"k", "CA2", 100, sig, 99));
        assert!(!check_link(b"other", "CA1", 100, sig, 99));
    }
}
