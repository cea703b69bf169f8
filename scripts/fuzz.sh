#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the other, and
# prints per target how long it ran and how many inputs it executed. Not part of CI (.ci/run).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain provide them.
# It is installed when missing. The first build takes several minutes. The corpus grows in
# fuzz/corpus/<target> (kept between runs, not committed); a crashing input is saved in
# fuzz/artifacts/<target>/ and the run stops with an error: turn it into a regression test
# (schemas/tests/wire_regressions.rs for the decoder, the server's tests for the session).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

seconds=${1:-60}
shift || true
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

log "building ${targets[*]}"
for target in "${targets[@]}"; do
    cargo fuzz build "$target"
done

status=0
summary=()
mkdir -p target   # the logs go here even when CARGO_TARGET_DIR puts the builds elsewhere
for target in "${targets[@]}"; do
    log "fuzzing $target for ${seconds}s"
    out="target/fuzz-$target.log"
    started=$(date +%s)
    # libFuzzer prints its progress on stderr; keep it for the summary.
    if cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tee "$out"; then
        result="no crash"
    else
        result="FAILED (see fuzz/artifacts/$target/ and fuzz/$out)"
        status=1
    fi
    ran=$(( $(date +%s) - started ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$out" | tail -n 1 || true)
    corpus=$(find "corpus/$target" -type f 2>/dev/null | wc -l)
    summary+=("$target: ${ran}s, ${execs:-?} executions, ${cov:-cov: ?}, corpus $corpus inputs, $result")
done

log "summary"
printf '%s\n' "${summary[@]}"
exit $status
