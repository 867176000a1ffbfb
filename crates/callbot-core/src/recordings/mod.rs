//! Where call recordings go (`Recordings`): a local directory for `callbot serve`, an S3 bucket in
//! AWS. Recordings are written as the call runs (`begin` → `RecordingWriter`), so memory per call
//! stays small and a crash loses only what was not yet flushed. Links to them are short-lived and
//! signed (`link_query`/`check_link`).

mod local;
mod s3;

pub use local::{LocalRecordings, WavFile};
pub use s3::{PART_BYTES, S3Recordings};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Recordings are 8 kHz, 16-bit, stereo (caller left, bot right): 4 bytes per sample frame.
pub const RATE: u32 = 8000;
pub const BYTES_PER_FRAME: u32 = 4;

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
    /// Starts a recording written while the call runs (replacing one under the same key).
    async fn begin(&self, key: &str) -> Result<Box<dyn RecordingWriter>, RecordingsError>;
    /// Finishes recordings left unfinished by a crashed run: those whose files nobody has written
    /// for `idle` (a live writer flushes every 2 s; another process may share the directory).
    /// Returns how many. Run at startup with [`RECOVER_IDLE`].
    async fn recover(&self, idle: std::time::Duration) -> Result<usize, RecordingsError> {
        let _ = idle;
        Ok(0)
    }
}

/// A recording being written. Not safe to use from two tasks; each call owns its writer.
#[async_trait]
pub trait RecordingWriter: Send + std::fmt::Debug {
    /// Appends interleaved 16-bit little-endian stereo samples at 8 kHz. When it returns, the
    /// audio is in the recording's file with its header updated (readable as it stands), and on
    /// S3 every complete part has been uploaded. Blocking file work runs off the runtime.
    async fn append(&mut self, pcm: &[u8]) -> Result<(), RecordingsError>;
    /// Completes the recording (on S3: the object appears).
    async fn finish(self: Box<Self>) -> Result<(), RecordingsError>;
}

/// How long a recording's file must have gone unwritten before `recover` takes it as abandoned.
pub const RECOVER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Finishes what a crashed earlier run left unfinished (S3: still in the local spool), logging
/// what it did; a failure leaves the files for the next start. For the processes that record
/// calls (`callbot serve`, the stream service), before they take calls.
pub async fn recover_at_startup(recordings: &dyn Recordings) {
    match recordings.recover(RECOVER_IDLE).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            recordings = n,
            "finished recordings an earlier run left behind"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "finishing earlier recordings failed; they stay for the next start"
        ),
    }
}

/// Files under `root` (any depth) that are `wanted` and not modified for `idle` (only those are
/// stat'ed: a directory of finished recordings costs its listing alone).
async fn idle_files(
    root: &std::path::Path,
    idle: std::time::Duration,
    wanted: impl Fn(&std::path::Path) -> bool,
) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            continue;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            let path = e.path();
            if e.file_type().await.is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if wanted(&path)
                && let Ok(meta) = e.metadata().await
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age >= idle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// The 44-byte header of a stereo 16-bit 8 kHz WAV holding `data` bytes of samples.
pub fn wav_header(data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&2u16.to_le_bytes()); // channels
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * BYTES_PER_FRAME).to_le_bytes());
    h[32..34].copy_from_slice(&(BYTES_PER_FRAME as u16).to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
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

    #[test]
    fn the_header_describes_stereo_pcm_at_8_khz() {
        let mut wav = wav_header(8).to_vec();
        wav.extend_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0]);
        let r = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        let samples: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, [1, 2, 3, 4]);
    }

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
