#!/usr/bin/env bash
# Runs a program with a given allocator as its malloc, for the comparison harness.
#
#   comparisons/preload/run-preloaded.sh ALLOCATOR PROGRAM [ARGS...]
#
# ALLOCATOR: glibc (no preload) | mimalloc (Debian's libmimalloc2.0, the anchor) |
#            first-fit | next-fit | best-fit | segregated-fit | tiered (stratalloc)
# The stratalloc library is $STRATALLOC_PRELOAD_LIB, by default
# target/release/libstratalloc_preload.so of this repository (build it first:
# cargo build --release -p stratalloc-preload). Other STRATALLOC_* variables pass through
# (STRATALLOC_STATS=1 prints the heap's statistics to stderr at exit).
# Exit status: the program's; 2 when the allocator is unknown or its library is missing.
set -euo pipefail
allocator=${1:?usage: run-preloaded.sh ALLOCATOR PROGRAM [ARGS...]}
shift
repo=$(cd "$(dirname "$0")/../.." && pwd)
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
stratalloc=${STRATALLOC_PRELOAD_LIB:-$repo/target/release/libstratalloc_preload.so}
case $allocator in
glibc) exec "$@" ;;
mimalloc) lib=$mimalloc ;;
first-fit | next-fit | best-fit | segregated-fit | tiered)
    lib=$stratalloc
    export STRATALLOC_STRATEGY=$allocator
    ;;
*)
    echo "run-preloaded.sh: unknown allocator '$allocator'" >&2
    exit 2
    ;;
esac
[ -e "$lib" ] || {
    echo "run-preloaded.sh: $lib not found" >&2
    exit 2
}
LD_PRELOAD=$lib${LD_PRELOAD:+:$LD_PRELOAD} exec "$@"
