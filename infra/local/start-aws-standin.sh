#!/usr/bin/env bash
# Installs (once) and starts the local DynamoDB/S3 stand-in (moto, serialised) on a free loopback
# port. Prints the endpoint URL on stdout and the server's PID on fd 3 if open.
# Usage: infra/local/start-aws-standin.sh VENV_DIR LOG_FILE
set -euo pipefail
venv="${1:?venv dir}"
log="${2:?log file}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import moto, flask, flask_cors; assert moto.__version__ == "5.2.5"' 2>/dev/null; then
  echo "installing the local AWS stand-in (moto 5.2.5) into $venv" >&2
  "$venv/bin/pip" install -q 'moto[dynamodb,s3]==5.2.5' flask flask-cors >&2
fi

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$venv/bin/python" "$here/aws_standin.py" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
    echo "http://127.0.0.1:$port"
    { echo "$pid" >&3; } 2>/dev/null || true
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the AWS stand-in exited; log follows" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "the AWS stand-in did not become ready in 10 s" >&2
kill "$pid" 2>/dev/null || true
exit 1
