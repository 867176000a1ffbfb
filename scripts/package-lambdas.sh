#!/usr/bin/env bash
# Builds the three Lambda functions as deployment zips with cargo-lambda (from PyPI, with zig) and
# prints their sizes. arm64 (what the template deploys) needs the aarch64-unknown-linux-gnu std
# library; where rustup cannot fetch it, this falls back to x86_64 and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CALLBOT_VENV:-$PWD/.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q 'cargo-lambda==1.9.2' >&2
export PATH="$venv/bin:$PATH"
arch="--arm64"
if ! rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
  if ! timeout 120 rustup target add aarch64-unknown-linux-gnu >&2; then
    echo "aarch64 std library not available here: building x86_64 zips instead" >&2
    arch="--x86-64"
  fi
fi
cargo lambda build --profile lambda $arch --output-format zip -p callbot-functions --bins >&2
target="${CARGO_TARGET_DIR:-$PWD/target}"
for f in bots voice calls; do
  zip="$target/lambda/$f/bootstrap.zip"
  printf '%-6s %s bytes (%s)\n' "$f" "$(stat -c %s "$zip")" "$zip"
done
