//! Recordings in a local directory (`callbot serve`): each call's WAV file is appended as the call
//! runs (as `<key>.part`), its header rewritten at every flush, so the file is a valid recording
//! of everything up to the last flush at any moment, including after a crash; it takes its final
//! name when the call ends, or at the next start after a crash ([`Recordings::recover`]).

use super::{RecordingWriter, Recordings, RecordingsError, safe, wav_header};
use async_trait::async_trait;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A WAV file written in place: samples appended, sizes in the header kept current. The file work
/// runs on the blocking pool, one job per append.
#[derive(Debug)]
pub struct WavFile {
    path: PathBuf,
    /// `None` only while a job holds it.
    file: Option<std::fs::File>,
    data: u64,
}

/// Bytes of the WAV header before the samples.
const HEADER_LEN: u64 = 44;

fn io(e: impl std::fmt::Display) -> RecordingsError {
    RecordingsError::Backend(e.to_string())
}

impl WavFile {
    /// Creates (or truncates) the file at `path`, with its directories, holding a header only.
    pub async fn create(path: PathBuf) -> Result<Self, RecordingsError> {
        let p = path.clone();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&p)?;
            f.write_all(&wav_header(0))?;
            Ok(f)
        })
        .await
        .map_err(io)?
        .map_err(io)?;
        Ok(Self {
            path,
            file: Some(file),
            data: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file (header and samples).
    pub fn len(&self) -> u64 {
        HEADER_LEN + self.data
    }

    pub fn is_empty(&self) -> bool {
        self.data == 0
    }

    /// Appends samples and rewrites the header's sizes.
    pub async fn append(&mut self, pcm: &[u8]) -> Result<(), RecordingsError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io("recording file lost by an earlier failure"))?;
        let data = self.data + pcm.len() as u64;
        let size = u32::try_from(data).map_err(|_| io("recording over 4 GiB"))?;
        let pcm = pcm.to_vec();
        let at = HEADER_LEN + self.data;
        let (file, res) = tokio::task::spawn_blocking(move || {
            // Positioned writes: three calls, no seeks.
            let res = (|| -> std::io::Result<()> {
                file.write_all_at(&pcm, at)?;
                let header = wav_header(size);
                file.write_all_at(&header[4..8], 4)?;
                file.write_all_at(&header[40..44], 40)
            })();
            (file, res)
        })
        .await
        .map_err(io)?;
        self.file = Some(file);
        res.map_err(io)?;
        self.data = data;
        Ok(())
    }

    /// Flushes the file to the disk.
    pub async fn sync(&mut self) -> Result<(), RecordingsError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let (file, res) = tokio::task::spawn_blocking(move || {
            let res = file.sync_data();
            (file, res)
        })
        .await
        .map_err(io)?;
        self.file = Some(file);
        res.map_err(io)
    }
}

#[derive(Debug)]
struct LocalWriter {
    file: WavFile,
    done: PathBuf,
}

#[async_trait]
impl RecordingWriter for LocalWriter {
    async fn append(&mut self, pcm: &[u8]) -> Result<(), RecordingsError> {
        self.file.append(pcm).await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), RecordingsError> {
        self.file.sync().await?;
        tokio::fs::rename(self.file.path(), &self.done)
            .await
            .map_err(io)
    }
}

#[derive(Debug, Clone)]
pub struct LocalRecordings {
    pub dir: PathBuf,
}

/// The suffix of a recording still being written.
const IN_PROGRESS: &str = ".part";

impl LocalRecordings {
    /// Where the recording under `key` is written while its call runs.
    pub fn in_progress(&self, key: &str) -> Result<PathBuf, RecordingsError> {
        Ok(self.dir.join(format!("{}{IN_PROGRESS}", safe(key)?)))
    }
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

    async fn begin(&self, key: &str) -> Result<Box<dyn RecordingWriter>, RecordingsError> {
        let done = self.dir.join(safe(key)?);
        Ok(Box::new(LocalWriter {
            file: WavFile::create(self.in_progress(key)?).await?,
            done,
        }))
    }

    async fn recover(&self, idle: std::time::Duration) -> Result<usize, RecordingsError> {
        let mut n = 0;
        let unfinished = |p: &std::path::Path| p.to_str().is_some_and(|p| p.ends_with(IN_PROGRESS));
        for path in super::idle_files(&self.dir, idle, unfinished).await {
            let Some(done) = path
                .to_str()
                .and_then(|p| p.strip_suffix(IN_PROGRESS))
                .map(PathBuf::from)
            else {
                continue;
            };
            tokio::fs::rename(&path, &done).await.map_err(io)?;
            tracing::warn!(path = %done.display(), "a recording left unfinished by an earlier run was kept");
            n += 1;
        }
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_file_is_a_valid_recording_after_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let r = LocalRecordings {
            dir: dir.path().to_path_buf(),
        };
        let mut w = r.begin("t1/CA1.wav").await.unwrap();
        let frames = |n: i16| -> Vec<u8> {
            (0..n)
                .flat_map(|i| [i.to_le_bytes(), (-i).to_le_bytes()])
                .flatten()
                .collect()
        };
        let part = r.in_progress("t1/CA1.wav").unwrap();
        for chunk in 1..=3 {
            w.append(&frames(100)).await.unwrap();
            // As a crash would leave it: readable, every sample so far.
            let bytes = std::fs::read(&part).unwrap();
            let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
            assert_eq!(reader.len(), 200 * chunk);
            assert!(
                !r.exists("t1/CA1.wav").await.unwrap(),
                "final only when finished"
            );
        }
        w.finish().await.unwrap();
        assert!(!part.exists());
        let bytes = r.get("t1/CA1.wav").await.unwrap().unwrap();
        let samples: Vec<i16> = hound::WavReader::new(std::io::Cursor::new(bytes))
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(&samples[..4], [0, 0, 1, -1]);
        // Beginning again replaces the recording.
        let w = r.begin("t1/CA1.wav").await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(r.get("t1/CA1.wav").await.unwrap().unwrap().len(), 44);
        // A crash: the next start keeps what was written under the final name, unless it is
        // being written still (another process on the same directory).
        let mut w = r.begin("t1/CA2.wav").await.unwrap();
        w.append(&frames(50)).await.unwrap();
        drop(w);
        assert_eq!(r.recover(Duration::from_secs(30)).await.unwrap(), 0);
        assert_eq!(r.recover(Duration::ZERO).await.unwrap(), 1);
        let bytes = r.get("t1/CA2.wav").await.unwrap().unwrap();
        assert_eq!(
            hound::WavReader::new(std::io::Cursor::new(bytes))
                .unwrap()
                .len(),
            100
        );
        assert_eq!(r.recover(Duration::ZERO).await.unwrap(), 0);
    }
}
