#!/usr/bin/env bash
# Builds the Lambda functions exactly as the README's deploy guide does, with `sam build`
# (BuildMethod rust-cargolambda: `cargo lambda build --release --arm64 --bin lambda` in functions/,
# under functions/.cargo/config.toml), zips each artifact the way `sam deploy` uploads it, and checks
# the packages the way Lambda will load them. Installs what it needs into venvs: cargo-lambda 1.9.2
# (with zig) and the SAM CLI 1.170.0; the aarch64 std library with rustup.
#
# Checked for each function: the zip holds one entry, `bootstrap`, executable; it is an arm64 ELF
# needing no glibc symbol newer than provided.al2023's (2.34); the zip is at most 7,000,000 bytes
# (the size budget: larger fails). Prints one line per function; the artifacts stay in .aws-sam/build.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CALLBOT_VENV:-$PWD/.venv}"
sam_venv="${CALLBOT_SAM_VENV:-$PWD/.venv-sam}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q '1.9.2'; then
  echo "installing cargo-lambda 1.9.2 (with zig) into $venv" >&2
  "$venv/bin/pip" install -q 'cargo-lambda==1.9.2' >&2
fi
# The SAM CLI has pins of its own (boto3, cfn-lint): it gets a venv of its own.
[ -x "$sam_venv/bin/python" ] || python3 -m venv "$sam_venv"
if ! "$sam_venv/bin/sam" --version 2>/dev/null | grep -q '1.170.0'; then
  echo "installing the SAM CLI 1.170.0 into $sam_venv" >&2
  "$sam_venv/bin/pip" install -q 'aws-sam-cli==1.170.0' >&2
fi
if ! rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
  timeout 300 rustup target add aarch64-unknown-linux-gnu >&2 || {
    echo "cannot install the aarch64-unknown-linux-gnu std library (rustup); the functions are arm64" >&2
    exit 1
  }
fi
# SAM takes each binary from functions/target/lambda/NAME: a shared CARGO_TARGET_DIR would hide it.
# Every function runs the one executable `lambda` (its routes or worker chosen by environment),
# so SAM builds it once for all of them (the shared artifact directory); one cargo run first
# builds it with the very same settings, and SAM's own run then finds it up to date.
(cd functions && env -u CARGO_TARGET_DIR PATH="$venv/bin:$PATH" \
  cargo lambda build --release --arm64 --locked >&2)
env -u CARGO_TARGET_DIR PATH="$venv/bin:$PATH" SAM_CLI_TELEMETRY=0 \
  "$sam_venv/bin/sam" build --beta-features -t sam-template.yaml >&2
"$venv/bin/python" - .aws-sam/build <<'PY'
import os, re, stat, subprocess, sys, tempfile, zipfile

root = sys.argv[1]
budget = 7_000_000
failed = False
def artifact_dirs(template):
    """Each function's artifact directory, from the built template's CodeUri (functions built
    from the same code share one, e.g. CallsFunction-Shared)."""
    dirs, current = {}, None
    for line in open(template):
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            current = m.group(1)
        m = re.match(r"^      CodeUri: (\S+)\s*$", line)
        if m and current:
            dirs[current] = m.group(1)
    return dirs

dirs = artifact_dirs(os.path.join(root, "template.yaml"))
for name in ("bots", "voice", "calls"):
    exe = os.path.join(root, dirs[f"{name.capitalize()}Function"], "bootstrap")
    problems = []
    # As `sam deploy` zips a function: deflated, the file's mode kept.
    path = os.path.join(tempfile.gettempdir(), f"callbot-{name}.zip")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(exe, "bootstrap")
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
        mode = entries[0].external_attr >> 16
        data = z.read(entries[0])
    if [e.filename for e in entries] != ["bootstrap"] or not mode & stat.S_IXUSR:
        problems.append(f"zip holds {[(e.filename, oct(e.external_attr >> 16)) for e in entries]}, want one executable bootstrap")
    if data[:4] != b"\x7fELF" or int.from_bytes(data[18:20], "little") != 183:  # EM_AARCH64
        problems.append("bootstrap is not an arm64 ELF executable")
    versions = subprocess.run(["readelf", "-V", "-W", exe], capture_output=True, text=True, check=True).stdout
    glibc = max((tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([0-9.]+)", versions)), default=(0,))
    if glibc > (2, 34):
        problems.append(f"needs glibc {'.'.join(map(str, glibc))}, provided.al2023 has 2.34")
    if size > budget:
        problems.append(f"{size} bytes is over the {budget} byte budget")
    os.remove(path)
    print(f"{name:<6} {size:>9} bytes zipped, {len(data):>9} unpacked, needs glibc {'.'.join(map(str, glibc))} ({exe})")
    for p in problems:
        print(f"  {name}: {p}", file=sys.stderr)
        failed = True
# The campaign dialer and the post-call function are the calls executable, started for other events.
for worker in ("CampaignDialerFunction", "PostCallFunction"):
    if dirs.get(worker) != dirs["CallsFunction"]:
        print(f"{worker} is not built from the calls executable: {dirs.get(worker)}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
PY
