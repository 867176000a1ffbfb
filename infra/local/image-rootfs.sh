#!/usr/bin/env bash
# Builds the runtime stage of infra/Dockerfile.stream as a directory, without a Docker engine: the
# stage's base (debian:SUITE-slim) from Debian's registry with debootstrap (the minbase variant the
# slim images are made from), then the stage's own RUN lines executed inside it as the image build
# executes them. The files the stage copies from the build stage (binary, model) are put in by the
# test that runs it (stream-service/tests/image_runtime.rs), so they are always this build's.
# Needs root (debootstrap, chroot). Cached: rebuilt only when the stage's FROM or RUN lines change.
# Usage: infra/local/image-rootfs.sh ROOTFS_DIR   (prints ROOTFS_DIR when ready)
set -euo pipefail
out="${1:?rootfs dir}"
here="$(cd "$(dirname "$0")" && pwd)"
dockerfile="$here/../Dockerfile.stream"

# The runtime stage: from the last FROM to the end, continuation lines joined.
stage="$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$dockerfile" \
  | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')"
base="$(printf '%s\n' "$stage" | awk '/^FROM /{print $2; exit}')"
case "$base" in
  debian:*-slim) suite="${base#debian:}"; suite="${suite%-slim}" ;;
  *) echo "image-rootfs: the runtime stage's base $base is not a debian:SUITE-slim image" >&2; exit 1 ;;
esac
runs="$(printf '%s\n' "$stage" | sed -n 's/^RUN //p')"
stamp="$(printf '%s\n%s\n' "$base" "$runs" | sha256sum | cut -d' ' -f1)"
if [ -f "$out/.callbot-stage" ] && [ "$(cat "$out/.callbot-stage")" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

command -v debootstrap >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q debootstrap >&2
}
rm -rf "$out"
echo "image-rootfs: $base from debootstrap (minbase, $suite)" >&2
debootstrap --variant=minbase "$suite" "$out" http://deb.debian.org/debian >&2
cp /etc/resolv.conf "$out/etc/resolv.conf"
while IFS= read -r run; do
  [ -n "$run" ] || continue
  echo "image-rootfs: RUN $run" >&2
  chroot "$out" /bin/sh -c "$run" >&2
done <<<"$runs"
echo "$stamp" >"$out/.callbot-stage"
echo "$out"
