#!/usr/bin/env bash
# Installs the system packages the build and the offline engines need, from Debian's registry,
# when they are missing: cmake and g++ (whisper.cpp and llama.cpp are compiled by the
# whisper-rs-sys and llama-cpp-sys-2 build scripts), libclang-dev (llama-cpp-sys-2 generates its
# bindings with bindgen), espeak-ng (speech synthesis), python3-venv (the test stand-ins, model
# download).
# With --tests also what only the test command needs: readelf (binutils: checks the Lambda packages)
# and, on a machine that is not arm64, qemu-user-static with arm64's C library (runs the packages);
# chromium and chromium-driver (the console and WebRTC tests drive a real browser); php-cli (the PHP
# webhook example runs against a real call; Node.js comes with the machine).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "${1:-}" = --tests ]; then
  command -v readelf >/dev/null || need+=(binutils)
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  command -v php >/dev/null || need+=(php-cli)
  if [ "$(uname -m)" != aarch64 ]; then
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
    [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2
fi
