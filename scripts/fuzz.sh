#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60, all)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain
# (sanitizers); without nightly it tries stable with RUSTC_BOOTSTRAP=1.
# Without cargo-fuzz it falls back to the same bodies as long property-test
# runs (PROPTEST_CASES) plus the corpus replay, and says so.
#
# New inputs go to fuzz/corpus-run/<target>/ (not committed); the committed
# seeds in fuzz/corpus/<target>/ are read only. A crash is copied to
# fuzz/regressions/<target>/ (commit it: tests/fuzz_corpus.rs replays it)
# and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
all=(parse_frame config_toml prefix_tables flow_roundtrip collector netflow_v5 netflow_v9 ipfix sflow_v5)
targets=("${@:-${all[@]}}")

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed; falling back to long property-test runs" >&2
    PROPTEST_CASES=$((secs * 1000)) timeout $((secs * 4 + 900)) \
        cargo test --test proptest_wire --test fuzz_corpus --test collector_fuzz
    exit $?
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    echo "no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t"
    echo "== $t: ${secs}s" >&2
    start=$(date +%s)
    # The build is not counted in the fuzzing time; the outer timeout
    # bounds build + run.
    if ! timeout $((secs + 1800)) "${fuzz[@]}" run --fuzz-dir fuzz "$t" \
        "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1; then
        status=1
        mkdir -p "fuzz/regressions/$t"
        for a in fuzz/artifacts/"$t"/*; do
            [ -f "$a" ] || continue
            cp "$a" "fuzz/regressions/$t/"
            echo "$t: crash input saved as fuzz/regressions/$t/$(basename "$a")" >&2
        done
    fi
    echo "== $t: done after $(($(date +%s) - start))s (including build)" >&2
done
exit $status
