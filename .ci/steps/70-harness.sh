#!/usr/bin/env bash
# The comparison harness (comparisons/harness): its tests, then a smoke run of the README's
# main command, cut down to one workload, one rep and two allocators.
#
# The tests prove that a deliberately broken allocator (overlapping blocks) is reported
# FAILED by the driver, that every workload passes with the system allocator, that every row
# of the allocator table has a runner slot, that C workloads (c-larson, c-python) pass with
# glibc and with a strategy preloaded (on the library built below), and that a preloaded
# malloc with overlapping blocks is reported FAILED (needs gcc and python3). The smoke
# run proves that `cargo run --release -p comparisons -- --quick` builds its runner bins,
# runs children and writes results.md, results.json and the SVG plots. (.ci/run runs the full
# quick run; its committed output is in book/src/results/.)
#
# Run from anywhere: bash .ci/steps/70-harness.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== harness: cargo test -p comparisons (with the preload library for the C workloads)"
cargo build --release -p stratalloc-preload
STRATALLOC_PRELOAD_LIB="${CARGO_TARGET_DIR:-$PWD/target}/release/libstratalloc_preload.so" \
    cargo test -p comparisons

echo "== harness: smoke run of the driver (larson; tiered and mimalloc; 1 rep)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --release -p comparisons -- --quick --workloads larson --allocators tiered,mimalloc \
    --reps 1 --timeout 120 --out "$out"
for f in results.md results.json tables.md wall_ratio.svg rss_ratio.svg; do
    test -s "$out/$f" || { echo "FAILED: the driver did not write $f" >&2; exit 1; }
done
ok=$(grep -c '"verdict": "ok"' "$out/results.json" || true)
if [ "$ok" -ne 2 ]; then
    echo "FAILED: expected 2 ok results in results.json, found $ok" >&2
    exit 1
fi
echo "smoke: 2 passed, 0 failed"

echo "== harness: 'replot' draws the plots again from results.json"
rm "$out/wall_ratio.svg" "$out/rss_ratio.svg"
cargo run --release -p comparisons -- replot "$out"
for f in wall_ratio.svg rss_ratio.svg; do
    grep -q '<svg' "$out/$f" || { echo "FAILED: replot did not write $f" >&2; exit 1; }
done
