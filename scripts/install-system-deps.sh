#!/usr/bin/env bash
# Installs the system packages the build and the offline speech engines need, from Debian's
# registry, when they are missing: cmake and g++ (whisper.cpp is compiled by the whisper-rs-sys
# build script), espeak-ng (speech synthesis), python3-venv (the test stand-ins, model download).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2
fi
