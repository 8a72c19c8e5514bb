#!/usr/bin/env bash
# Small-object measurements of a preloaded C program (bench/small_objects.c: hot
# malloc(16)/free pair, churn of 100k live objects of 16..1024 B, resident bytes per live
# 16-byte object) under several allocators side by side, in one run, and a table of ratios.
#
#   comparisons/preload/bench/run.sh [--reps N] [ALLOCATOR...]
#
# ALLOCATOR as for run-preloaded.sh (which this runs every program through): glibc,
# mimalloc, first-fit, next-fit, best-fit, segregated-fit, tiered. Default: all seven.
# STRATEGY@PATH runs a strategy from another build of the library (PATH is its
# libstratalloc_preload.so; the row is labelled STRATEGY@DIR, DIR the build's directory
# name two levels up), for before/after rows in the same run.
# Each rep runs every (metric, allocator) once, the allocators in an order rotated every
# rep; a cell is the median over the reps (default 5). Ratios: the hot pair against glibc,
# churn and resident bytes against mimalloc (issue 22's targets). Needs gcc, the library
# ($STRATALLOC_PRELOAD_LIB or target/release/libstratalloc_preload.so) and, for mimalloc,
# Debian's libmimalloc2.0. A failed run (non-zero exit) makes the cell FAILED.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reps=5
if [ "${1:-}" = --reps ]; then
    reps=${2:?--reps N}
    shift 2
fi
allocators=("$@")
[ ${#allocators[@]} -eq 0 ] && allocators=(glibc mimalloc first-fit next-fit best-fit segregated-fit tiered)
work=$(mktemp -d "${TMPDIR:-/tmp}/small-objects.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -fno-builtin -Wall -o "$work/small_objects" "$here/small_objects.c"
metrics=(hot churn rss)

declare -A values # "$metric $allocator" -> space-separated values
n=${#allocators[@]}
for ((rep = 0; rep < reps; rep++)); do
    for metric in "${metrics[@]}"; do
        for ((i = 0; i < n; i++)); do
            a=${allocators[$(((i + rep) % n))]}
            lib=${STRATALLOC_PRELOAD_LIB:-}
            name=$a
            if [[ $a == *@* ]]; then
                name=${a%%@*}
                lib=${a#*@}
            fi
            if out=$(STRATALLOC_PRELOAD_LIB=$lib "$here/../run-preloaded.sh" "$name" "$work/small_objects" "$metric" 2>"$work/err"); then
                v=$(awk -v m="$metric" '$1 == m { print $2 }' <<<"$out")
            else
                v=FAILED
                echo "$a $metric: $(tail -3 "$work/err")" >&2
            fi
            values["$metric $a"]+="${v:-FAILED} "
        done
    done
done

median() { # values... -> median, or FAILED if any run failed
    if [[ " $* " == *" FAILED "* ]]; then echo FAILED; return; fi
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print v[m]; else printf "%.2f\n", (v[m] + v[m + 1]) / 2 }'
}
ratio() { # value anchor
    if [ "$1" = FAILED ] || [ -z "${2:-}" ] || [ "$2" = FAILED ]; then echo -; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
declare -A med
for metric in "${metrics[@]}"; do
    for a in "${allocators[@]}"; do
        # shellcheck disable=SC2086
        med["$metric $a"]=$(median ${values["$metric $a"]})
    done
done
echo "| allocator | hot malloc(16)/free pair, ns | / glibc | churn 100k live 16..1024 B, ns/op | / mimalloc | resident B per live 16 B object | / mimalloc |"
echo "|---|---:|---:|---:|---:|---:|---:|"
label() { # allocator -> its row label
    if [[ $1 == *@* ]]; then echo "${1%%@*}@$(basename "$(dirname "$(dirname "${1#*@}")")")"; else echo "$1"; fi
}
for a in "${allocators[@]}"; do
    h=${med["hot $a"]} c=${med["churn $a"]} r=${med["rss $a"]}
    echo "| $(label "$a") | $h | $(ratio "$h" "${med["hot glibc"]:-}") | $c | $(ratio "$c" "${med["churn mimalloc"]:-}") | $r | $(ratio "$r" "${med["rss mimalloc"]:-}") |"
done
echo
echo "$reps reps, medians; $(nproc) CPUs; $(date -u +%Y-%m-%d)"
