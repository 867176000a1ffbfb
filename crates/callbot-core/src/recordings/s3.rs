//! Recordings in an S3 bucket (AWS). A call's audio is spooled to a local file as it runs (memory
//! per call stays small) and sent to S3 as a multipart upload: each complete part
//! ([`PART_BYTES`], S3's minimum, about 2.7 minutes of audio) is uploaded as soon as it fills, the
//! rest when the call ends, when the first part is sent again with the final header. What a
//! crashed process left in its spool is uploaded by [`Recordings::recover`] at the next start.

use super::{RecordingWriter, Recordings, RecordingsError, WavFile, safe};
use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use std::path::{Path, PathBuf};

/// The size of every part but the last (S3 refuses smaller ones).
pub const PART_BYTES: u64 = 5 * 1024 * 1024;

fn s3_err(e: impl std::error::Error + 'static) -> RecordingsError {
    RecordingsError::Backend(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
}

async fn file_range(path: &Path, offset: u64, len: u64) -> Result<ByteStream, RecordingsError> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| RecordingsError::Backend(e.to_string()))
}

/// Recordings in an S3 bucket (production). Objects are written with server-side encryption and
/// `audio/wav`; the bucket itself blocks public access (links go through the API).
#[derive(Debug, Clone)]
pub struct S3Recordings {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Where recordings in progress are spooled.
    spool: PathBuf,
}

impl S3Recordings {
    async fn put_body(&self, key: &str, body: ByteStream) -> Result<(), RecordingsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("audio/wav")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(s3_err)
    }

    pub async fn connect(aws: &crate::settings::AwsSettings, bucket: &str, spool: PathBuf) -> Self {
        let conf = aws.sdk_config().await;
        // Local S3-compatible servers answer on one host: path-style addressing.
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(aws.endpoint_url.is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: bucket.to_owned(),
            spool,
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
        self.put_body(safe(key)?, bytes.into()).await
    }

    async fn begin(&self, key: &str) -> Result<Box<dyn RecordingWriter>, RecordingsError> {
        let key = safe(key)?.to_owned();
        let spool = WavFile::create(self.spool.join(&key)).await?;
        Ok(Box::new(S3Writer {
            s3: self.clone(),
            key,
            spool,
            upload: None,
            parts: Vec::new(),
            uploaded: 0,
        }))
    }

    async fn recover(&self, idle: std::time::Duration) -> Result<usize, RecordingsError> {
        let mut n = 0;
        // Everything in the spool is a recording not yet uploaded.
        for path in super::idle_files(&self.spool, idle, |_| true).await {
            let Some(key) = path
                .strip_prefix(&self.spool)
                .ok()
                .and_then(|rel| rel.to_str())
                .filter(|k| safe(k).is_ok())
                .map(str::to_owned)
            else {
                continue;
            };
            let body = ByteStream::from_path(&path)
                .await
                .map_err(|e| RecordingsError::Backend(e.to_string()))?;
            self.put_body(&key, body).await?;
            tracing::warn!(key = %key, "a recording left unfinished by an earlier run was uploaded");
            let _ = tokio::fs::remove_file(&path).await;
            n += 1;
        }
        Ok(n)
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

/// One call's recording on its way to S3.
#[derive(Debug)]
struct S3Writer {
    s3: S3Recordings,
    key: String,
    spool: WavFile,
    /// The multipart upload, once the first part has filled.
    upload: Option<String>,
    /// Uploaded parts; part `n` is `parts[n - 1]`.
    parts: Vec<CompletedPart>,
    /// Spool bytes covered by uploaded parts.
    uploaded: u64,
}

impl S3Writer {
    async fn upload_part(
        &mut self,
        number: i32,
        offset: u64,
        len: u64,
    ) -> Result<(), RecordingsError> {
        let s3 = &self.s3;
        let upload = match &self.upload {
            Some(u) => u.clone(),
            None => {
                let created = s3
                    .client
                    .create_multipart_upload()
                    .bucket(&s3.bucket)
                    .key(&self.key)
                    .content_type("audio/wav")
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .send()
                    .await
                    .map_err(s3_err)?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| RecordingsError::Backend("no UploadId".into()))?
                    .to_owned();
                self.upload = Some(id.clone());
                id
            }
        };
        let body = file_range(self.spool.path(), offset, len).await?;
        let out = s3
            .client
            .upload_part()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(upload)
            .part_number(number)
            .body(body)
            .send()
            .await
            .map_err(s3_err)?;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build();
        let i = usize::try_from(number - 1).unwrap_or(0);
        if i < self.parts.len() {
            self.parts[i] = part;
        } else {
            self.parts.push(part);
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), RecordingsError> {
        self.spool.sync().await?;
        let Some(upload) = self.upload.clone() else {
            // Shorter than one part: one object.
            let body = ByteStream::from_path(self.spool.path())
                .await
                .map_err(|e| RecordingsError::Backend(e.to_string()))?;
            return self.s3.put_body(&self.key, body).await;
        };
        // The first part again, now with the final header; then the rest.
        self.upload_part(1, 0, PART_BYTES).await?;
        let len = self.spool.len();
        if len > self.uploaded {
            let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
            self.upload_part(number, self.uploaded, len - self.uploaded)
                .await?;
        }
        self.s3
            .client
            .complete_multipart_upload()
            .bucket(&self.s3.bucket)
            .key(&self.key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(s3_err)
    }
}

#[async_trait]
impl RecordingWriter for S3Writer {
    /// The audio is written once the spool has it (an error here means it is not). Parts go up
    /// as they fill; a part S3 refuses stays in the spool and is tried again at the next append
    /// and at the end, so the audio is in the file exactly once and memory holds none of it.
    async fn append(&mut self, pcm: &[u8]) -> Result<(), RecordingsError> {
        self.spool.append(pcm).await?;
        while self.spool.len() - self.uploaded >= PART_BYTES {
            let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
            if let Err(e) = self.upload_part(number, self.uploaded, PART_BYTES).await {
                tracing::warn!(key = %self.key, part = number, error = %e, "uploading a recording part failed; it stays in the spool and is tried again");
                break;
            }
            self.uploaded += PART_BYTES;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), RecordingsError> {
        match self.complete().await {
            Ok(()) => {
                let _ = tokio::fs::remove_file(self.spool.path()).await;
                Ok(())
            }
            Err(e) => {
                // The spool stays for `recover`; S3 drops the unfinished upload (bucket lifecycle).
                if let Some(upload) = &self.upload {
                    let _ = self
                        .s3
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.s3.bucket)
                        .key(&self.key)
                        .upload_id(upload)
                        .send()
                        .await;
                }
                Err(e)
            }
        }
    }
}
