#!/usr/bin/env bash
# Builds the three Lambda functions as deployment zips with cargo-lambda (from PyPI, with zig),
# checks each package the way Lambda will load it, and unpacks its `bootstrap` for the tests.
#
# arm64 (what the template deploys) needs the aarch64-unknown-linux-gnu std library; where rustup
# cannot fetch it, this falls back to x86_64 and says so. Prints one line per function and, last,
# `arch=arm64|x86_64` so callers know which emulator (if any) runs the bootstraps.
#
# Checked for each zip: a single entry named `bootstrap`, executable (mode 0755), an ELF for the
# target architecture, needing no glibc symbol newer than provided.al2023's (2.34), and at most
# 5,000,000 bytes (the size budget; larger fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CALLBOT_VENV:-$PWD/.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q '1.9.2'; then
  echo "installing cargo-lambda 1.9.2 (with zig) into $venv" >&2
  "$venv/bin/pip" install -q 'cargo-lambda==1.9.2' >&2
fi
export PATH="$venv/bin:$PATH"
arch=arm64
if ! rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
  if ! timeout 300 rustup target add aarch64-unknown-linux-gnu >&2; then
    echo "aarch64 std library not available here: building x86_64 zips instead" >&2
    arch=x86_64
  fi
fi
flag="--arm64"
[ "$arch" = x86_64 ] && flag="--x86-64"
cargo lambda build --locked --profile lambda "$flag" --output-format zip -p callbot-functions --bins >&2
target="${CARGO_TARGET_DIR:-$PWD/target}"
"$venv/bin/python" - "$target/lambda" "$arch" <<'PY'
import os, re, stat, subprocess, sys, zipfile

root, arch = sys.argv[1], sys.argv[2]
budget = 5_000_000
machine = {"arm64": 183, "x86_64": 62}[arch]  # ELF e_machine: EM_AARCH64, EM_X86_64
failed = False
for name in ("bots", "voice", "calls"):
    path = os.path.join(root, name, "bootstrap.zip")
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
        problems = []
        if [e.filename for e in entries] != ["bootstrap"]:
            problems.append(f"entries {[e.filename for e in entries]}, want only bootstrap")
        entry = entries[0]
        mode = entry.external_attr >> 16
        if not mode & stat.S_IXUSR:
            problems.append(f"bootstrap mode {oct(mode)} is not executable")
        data = z.read(entry)
    if data[:4] != b"\x7fELF" or int.from_bytes(data[18:20], "little") != machine:
        problems.append(f"bootstrap is not an {arch} ELF executable")
    out = os.path.join(root, "unpacked", name)
    os.makedirs(out, exist_ok=True)
    exe = os.path.join(out, "bootstrap")
    with open(exe, "wb") as f:
        f.write(data)
    os.chmod(exe, 0o755)
    versions = subprocess.run(["readelf", "-V", "-W", exe], capture_output=True, text=True, check=True).stdout
    glibc = max((tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([0-9.]+)", versions)), default=(0,))
    if glibc > (2, 34):
        problems.append(f"needs glibc {'.'.join(map(str, glibc))}, provided.al2023 has 2.34")
    if size > budget:
        problems.append(f"{size} bytes is over the {budget} byte budget")
    print(f"{name:<6} {size:>9} bytes zipped, {len(data):>9} unpacked, glibc >= {'.'.join(map(str, glibc))} ({path})")
    for p in problems:
        print(f"  {name}: {p}", file=sys.stderr)
        failed = True
print(f"arch={arch}")
sys.exit(1 if failed else 0)
PY
