#!/usr/bin/env bash
# The cost of recording (STRATALLOC_TRACE): each real program of the preload tests run with
# the preload library untraced and traced, REPS times each (interleaved), median wall
# seconds, the ratio, and the size of the traces the program and its children wrote. The
# largest trace of the last traced run is then checked with `comparisons replay --profile`.
# (Each command runs under `sh -c`, which is recorded too: its own trace, out.trace, holds
# only a header, as dash leaves with _exit; the program's is out.trace.<pid>.)
#
#   comparisons/preload/time-tracing.sh [REPS]        (default 5)
#
# Needs: python3, sqlite3, git, gcc, and the release builds of the library and the driver
# (cargo build --release -p stratalloc-preload -p comparisons). STRATALLOC_STRATEGY applies
# to both runs (default: the library's default strategy).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=programs.sh
. "$here/programs.sh"
reps=${1:-5}
need_builds time-tracing.sh
python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$programs/hello.c" "$work/hello.c"

cmd_of() { # cmd_of NAME DIR
    case $1 in
    python) echo "$python $programs/threaded.py" ;;
    sqlite) echo "sh -c 'sqlite3 $2/t.db < $programs/query.sql'" ;;
    git) echo "bash $programs/git_workload.sh $2" ;;
    gcc) echo "gcc -O2 -o $2/hello $work/hello.c" ;;
    esac
}

seconds() { # seconds TRACE NAME -> wall seconds of one run (TRACE empty: untraced)
    local dir
    dir=$(mktemp -d "$work/run.XXXXXX")
    local start end
    start=$(date +%s.%N)
    if [ -n "$1" ]; then
        env LD_PRELOAD="$lib" STRATALLOC_TRACE="$1" sh -c "$(cmd_of "$2" "$dir")" >/dev/null 2>&1
    else
        env LD_PRELOAD="$lib" sh -c "$(cmd_of "$2" "$dir")" >/dev/null 2>&1
    fi
    end=$(date +%s.%N)
    rm -rf "$dir"
    echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "| program | untraced s | traced s | ratio | trace files | trace bytes |"
echo "|---|---|---|---|---|---|"
for p in python sqlite git gcc; do
    plain=() traced=()
    for _ in $(seq "$reps"); do
        rm -f "$work"/t.trace*
        plain+=("$(seconds "" "$p")")
        traced+=("$(seconds "$work/t.trace" "$p")")
    done
    a=$(printf '%s\n' "${plain[@]}" | median)
    b=$(printf '%s\n' "${traced[@]}" | median)
    files=$(ls "$work"/t.trace* | wc -l)
    bytes=$(cat "$work"/t.trace* | wc -c)
    main=$(ls -S "$work"/t.trace* | sed -n 1p) # the program's, not the sh -c wrapper's
    "$driver" replay "$main" --profile >/dev/null 2>"$work/err" ||
        { echo "FAILED: the $p trace $main does not read back: $(cat "$work/err")" >&2; exit 1; }
    printf '| %s | %.3f | %.3f | %.2fx | %s | %s |\n' "$p" "$a" "$b" "$(echo "$b / $a" | bc -l)" "$files" "$bytes"
done
