#!/usr/bin/env bash
# The long fuzzing run: every property-based parser test (Twilio media messages, form bodies,
# webhook answers, stream tokens, signatures, `/call` commands, numbers, webhook URLs) with many
# more cases than the test suite's 256. Usage: scripts/fuzz.sh [CASES] (default 200000).
# A failure prints the smallest input that breaks the property and saves it under
# */proptest-regressions/, where the normal test suite replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-200000}"
PROPTEST_CASES="$cases" cargo test --release --locked -p callbot-core -p callbot-stream --lib fuzz::
