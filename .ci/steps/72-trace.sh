#!/usr/bin/env bash
# Program traces (issue 20) on real programs: python3 (threaded), sqlite3, git and gcc are
# each recorded through the preload library (STRATALLOC_TRACE), must print what they print
# without it, and their trace (the largest file: git and gcc run many processes, each
# writing <trace>.<pid>) is profiled and replayed by every allocator of
# `comparisons replay` (1 rep); every replay must pass its stamped-block checks and the
# report must end with its recommendation. Then the preload tests' edge_cases.c and
# fork_stress.c run while recording and their traces must read back. (The threaded C
# program, fork and bad-input tests run in 70-harness.sh's `cargo test -p comparisons`.)
#
# Needs: python3, sqlite3, git, gcc (comparisons/preload/tests/install-tools.sh).
# Run from anywhere: bash .ci/steps/72-trace.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash comparisons/preload/tests/install-tools.sh
cargo build --release -p stratalloc-preload -p comparisons --bins
target=${CARGO_TARGET_DIR:-$PWD/target}/release
lib=$target/libstratalloc_preload.so
programs=$PWD/comparisons/preload/tests/programs
python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$programs/hello.c" "$work/hello.c"

run() { # run NAME DIR [TRACE]: the program's stdout
    local env=()
    [ $# -gt 2 ] && env=(LD_PRELOAD="$lib" STRATALLOC_TRACE="$3")
    case $1 in
    python) env "${env[@]}" "$python" "$programs/threaded.py" ;;
    sqlite) env "${env[@]}" sqlite3 "$2/t.db" <"$programs/query.sql" ;;
    git) env "${env[@]}" bash "$programs/git_workload.sh" "$2" ;;
    gcc) env "${env[@]}" gcc -O2 -o "$2/hello" "$work/hello.c" && "$2/hello" ;;
    esac
}

for p in python sqlite git gcc; do
    echo "== trace: $p"
    mkdir -p "$work/$p/plain" "$work/$p/traced" "$work/$p/trace"
    run "$p" "$work/$p/plain" >"$work/$p/plain.out"
    run "$p" "$work/$p/traced" "$work/$p/trace/t.trace" >"$work/$p/traced.out"
    cmp -s "$work/$p/plain.out" "$work/$p/traced.out" ||
        { echo "FAILED: $p printed something else while recorded" >&2; diff "$work/$p/plain.out" "$work/$p/traced.out" | head >&2; exit 1; }
    main=$(ls -S "$work/$p/trace"/t.trace* | sed -n 1p)
    echo "$(ls "$work/$p/trace" | wc -l) trace file(s); replaying the largest, $main ($(wc -c <"$main") bytes)"
    "$target/comparisons" replay "$main" --profile | sed -n 1,3p
    "$target/comparisons" replay "$main" --no-build --reps 1 --timeout 600 --out "$work/$p/report" | tee "$work/$p/report.txt"
    grep -q '^fastest: .*; least memory: ' "$work/$p/report.txt" ||
        { echo "FAILED: the $p replay has no recommendation" >&2; exit 1; }
done
# The preload tests' C stress programs while recording: every C-API edge case from many
# threads (with malloc in signal handlers), and 1,000 forks beside threads that come and go.
# They must pass as without recording, and every trace they leave must read back.
cflags=(-O1 -fno-builtin -Wall -Wno-alloc-size-larger-than -Wno-use-after-free -pthread)
for t in edge_cases fork_stress; do
    echo "== trace: $t.c while recording"
    gcc "${cflags[@]}" -o "$work/$t" "comparisons/preload/tests/$t.c"
    mkdir -p "$work/$t.trace"
    LD_PRELOAD="$lib" STRATALLOC_TRACE="$work/$t.trace/t.trace" "$work/$t" 2>/dev/null | tail -1
    for f in "$work/$t.trace"/t.trace*; do
        "$target/comparisons" replay "$f" --profile >/dev/null ||
            { echo "FAILED: $f does not read back" >&2; exit 1; }
    done
    echo "$(ls "$work/$t.trace" | wc -l) trace file(s) read back"
done
echo "trace: 4 programs recorded and replayed, 2 stress programs recorded"
