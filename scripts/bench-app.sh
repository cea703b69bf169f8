#!/usr/bin/env bash
# The technician app's figures (BENCHMARKS.md, "The technician's app"), in Debian's Chromium:
# cold start of `mobile-shell serve` with 500 jobs on the device to the job list rendered, and a
# tap on a checklist item to the screen showing it saved. Needs Chromium and tests/js's npm
# packages (scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mobile-shell
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/mobile-shell --data-dir "$dir" demo --jobs 500 > /dev/null
MOBILE_SHELL=target/release/mobile-shell DATA_DIR="$dir" node tests/js/app-bench.mjs
