#!/usr/bin/env bash
# One run of each real program of the preload tests under each allocator: wall seconds and
# peak RSS (KiB), as a Markdown table. A quick look, not a benchmark (one run, no warm-up,
# a shared machine): the comparison harness measures properly.
#
#   comparisons/preload/time-real-programs.sh [ALLOCATOR...]
#
# ALLOCATOR as for run-preloaded.sh; default: glibc mimalloc and the five strategies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
programs=$here/tests/programs
allocators=("$@")
[ ${#allocators[@]} -gt 0 ] || allocators=(glibc mimalloc first-fit next-fit best-fit segregated-fit tiered)
python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$programs/hello.c" "$work/hello.c"

run_one() { # run_one ALLOCATOR NAME -> "seconds rss"
    local dir
    dir=$(mktemp -d "$work/run.XXXXXX")
    local cmd
    case $2 in
    python) cmd=("$python" "$programs/threaded.py") ;;
    sqlite) cmd=(sh -c "sqlite3 '$dir/t.db' < '$programs/query.sql'") ;;
    git) cmd=(bash "$programs/git_workload.sh" "$dir") ;;
    gcc) cmd=(gcc -O2 -o "$dir/hello" "$work/hello.c") ;;
    esac
    /usr/bin/time -f '%e %M' -o "$work/time" "$here/run-preloaded.sh" "$1" "${cmd[@]}" >/dev/null 2>&1 ||
        echo "FAILED" >"$work/time"
    rm -rf "$dir"
    cat "$work/time"
}

echo "| allocator | python s | python KiB | sqlite s | sqlite KiB | git s | git KiB | gcc s | gcc KiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for a in "${allocators[@]}"; do
    row="| $a |"
    for p in python sqlite git gcc; do
        read -r s k < <(run_one "$a" "$p")
        row="$row ${s} | ${k:-} |"
    done
    echo "$row"
done
echo
echo "RSS is the peak of the largest single process (for git and gcc: one of their children)."
