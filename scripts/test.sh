#!/usr/bin/env bash
# The whole test suite: installs what the tests need (a Python venv with the local AWS stand-in),
# starts the stand-in on loopback, and runs every Rust test in the workspace. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CALLBOT_VENV:-$PWD/.venv}"
work="$(mktemp -d)"
pidfile="$work/standin.pid"
cleanup() {
  if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

endpoint="$(infra/local/start-aws-standin.sh "$venv" "$work/standin.log" 3>"$pidfile")"
echo "local DynamoDB/S3 stand-in: $endpoint"
export CALLBOT_TEST_DYNAMODB_ENDPOINT="$endpoint"

cargo test --workspace --locked "$@"
