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

# What bindgen (clang-sys) really loads: libclang.so, libclang.so.N, libclang-N.so or libclang-N.so.M
# in LIBCLANG_PATH or the usual library directories; libclang-cpp.so.N is a different library (the
# C++ API) and does not count. bindgen also needs clang's own headers (stddef.h and friends), which
# come with libclang-dev's dependencies, so both must be there.
have_libclang() {
  local dir f lib=""
  for dir in ${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib /usr/lib64 /usr/local/lib; do
    [ -d "$dir" ] || continue
    for f in "$dir"/libclang.so "$dir"/libclang.so.* "$dir"/libclang-[0-9]*.so "$dir"/libclang-[0-9]*.so.*; do
      if [ -e "$f" ]; then lib="$f"; break 2; fi
    done
  done
  [ -n "$lib" ] || return 1
  for f in /usr/lib/llvm-*/lib/clang/*/include/stddef.h /usr/lib/clang/*/include/stddef.h; do
    [ -e "$f" ] && return 0
  done
  return 1
}
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
have_libclang || need+=(libclang-dev)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "${1:-}" = --tests ]; then
  command -v readelf >/dev/null || need+=(binutils)
  [ -x /usr/bin/chromium ] || need+=(chromium)  # the browser tests start these two by path
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
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
