#!/usr/bin/env bash
# The threaded C++ program of the preload tests (tests/programs/containers.cpp: four threads
# of standard containers, over-aligned new, big arrays, exceptions) under glibc and under each
# STRATALLOC_STRATEGY given, REPS rounds, the allocators alternating within each round. Prints
# a Markdown table: median wall and CPU (user + system) seconds, and each median's ratio to
# glibc's.
#
#   comparisons/preload/time-cxx.sh LIB REPS STRATEGY...
#
# LIB is libstratalloc_preload.so (a release build). A strategy the library lacks fails.
# With BASE_LIB set to another build of the library, each strategy also runs under it, as
# `STRATEGY@base`, in the same rounds (an A/B run of two builds).
set -euo pipefail
lib=$(realpath "${1:?usage: time-cxx.sh LIB REPS STRATEGY...}")
reps=${2:?usage: time-cxx.sh LIB REPS STRATEGY...}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O1 -std=c++17 -pthread -Wall -o "$work/containers" "$here/tests/programs/containers.cpp"
"$work/containers" >"$work/ref"
allocators=(glibc)
for a in "$@"; do
    allocators+=("$a")
    if [ -n "${BASE_LIB:-}" ]; then allocators+=("$a@base"); fi
done
for ((r = 0; r < reps; r++)); do
    for a in "${allocators[@]}"; do
        if [ "$a" = glibc ]; then
            /usr/bin/time -f "$a %e %U %S" -a -o "$work/times" "$work/containers" >"$work/out"
        else
            s=${a%@base} l=$lib
            if [ "$s" != "$a" ]; then l=$(realpath "$BASE_LIB"); fi
            LD_PRELOAD=$l STRATALLOC_STATS=1 STRATALLOC_STRATEGY=$s \
                /usr/bin/time -f "$a %e %U %S" -a -o "$work/times" "$work/containers" >"$work/out" 2>"$work/err"
            grep -q "strategy=$s " "$work/err" || { cat "$work/err"; echo "$s: not served by $l"; exit 1; }
        fi
        cmp -s "$work/out" "$work/ref" || { echo "$a: output differs from glibc's"; exit 1; }
    done
done
python3 - "$work/times" "${allocators[@]}" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    a, wall, user, sys_ = line.rsplit(maxsplit=3)
    rows.setdefault(a, []).append((float(wall), float(user) + float(sys_)))
med = {a: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for a, v in rows.items()}
gw, gc = med["glibc"]
print(f"| allocator | wall s (median of {len(rows['glibc'])}) | CPU s | wall / glibc | CPU / glibc |")
print("|---|---|---|---|---|")
for a in sys.argv[2:]:
    w, c = med[a]
    print(f"| {a} | {w:.3f} | {c:.3f} | {w / gw:.2f} | {c / gc:.2f} |")
PY
