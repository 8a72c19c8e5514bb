#!/usr/bin/env bash
# The checks that need a nightly toolchain: Miri, ThreadSanitizer and the strict-provenance
# lints. Stable CI does not depend on them (it cannot fetch a nightly); run this where one is
# installed (`rustup toolchain install nightly --component miri rust-src`).
#
#   .ci/sanitizers.sh [lints|miri|tsan|all]     (default: all)
#
# - lints: the library built with -D fuzzy_provenance_casts -D lossy_provenance_casts;
# - miri:  tests/model_fixed.rs (every strategy over Fixed and Tracked<Fixed>: a model
#          sequence and threads that free each other's blocks) under Miri with
#          -Zmiri-strict-provenance; plus the library's unit tests that run over Fixed;
# - tsan:  the threaded tests under ThreadSanitizer (std rebuilt with -Zbuild-std).
#
# Exit status: 0 when every check that was asked for ran and passed; 1 when one failed;
# 2 when a check could not run because the toolchain or a component is missing (it says so
# in one line: that is never a pass).
set -uo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in lints | miri | tsan | all) ;; *)
    echo "usage: $0 [lints|miri|tsan|all]" >&2
    exit 2
    ;;
esac

export CARGO_TERM_PROGRESS_WHEN=never
TARGET=$(rustc -vV | sed -n 's/^host: //p')
status=0
missing=0

have_nightly() {
    cargo +nightly --version >/dev/null 2>&1
}
have_component() {
    rustup +nightly component list --installed 2>/dev/null | grep -q "^$1"
}
# not_run WHAT WHY: one line, and the exit status says it did not run.
not_run() {
    echo "NOT RUN: $1: $2 (this is not a pass)"
    missing=1
}
run() {
    local name=$1
    shift
    echo "== $name: $*"
    local t0
    t0=$(date +%s)
    if "$@"; then
        echo "-- $name: passed in $(($(date +%s) - t0)) s"
    else
        echo "!! $name: FAILED after $(($(date +%s) - t0)) s"
        status=1
    fi
}

lints() {
    have_nightly || { not_run lints "no nightly toolchain"; return; }
    RUSTFLAGS="-D fuzzy_provenance_casts -D lossy_provenance_casts -Zcrate-attr=feature(strict_provenance_lints)" \
        run "provenance lints" cargo +nightly build -p stratalloc --target-dir target/nightly-lints
}

miri() {
    have_nightly || { not_run miri "no nightly toolchain"; return; }
    have_component miri || { not_run miri "the nightly toolchain has no miri component"; return; }
    have_component rust-src || { not_run miri "the nightly toolchain has no rust-src component"; return; }
    export MIRIFLAGS="-Zmiri-strict-provenance ${MIRIFLAGS:-}"
    run "miri: model_fixed" cargo +nightly miri test --target-dir target/miri --test model_fixed
    # The library's unit tests that run over Fixed (Miri has no PROT_NONE mappings, so the
    # ones over Mmap cannot run): the free lists' bins and classes, their edge cases, and
    # Tiered's Miri tests (every object path, the span map reader, a cross-thread free).
    run "miri: library unit tests over Fixed" cargo +nightly miri test --target-dir target/miri --lib -- \
        freelist::bins freelist::segregated large_alignments_up_to_1mib realloc_grows_and_shrinks_in_place \
        adjacent_growth_extends_the_chunk double_frees_are_ignored_by_every_policy miri_
}

tsan() {
    have_nightly || { not_run tsan "no nightly toolchain"; return; }
    have_component rust-src || { not_run tsan "the nightly toolchain has no rust-src component"; return; }
    # The suites that run several threads on one heap: cross-thread frees, thread exit.
    export RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1"
    local cmd=(cargo +nightly test -Zbuild-std --target "$TARGET" --target-dir target/tsan)
    run "thread sanitizer: tiered_threads" "${cmd[@]}" --test tiered_threads
    run "thread sanitizer: threads of the shared suites" "${cmd[@]}" \
        --test model_fixed --test strategy_tiered --test freelist -- threads
    unset RUSTFLAGS
}

case "$what" in
lints) lints ;;
miri) miri ;;
tsan) tsan ;;
all)
    lints
    miri
    tsan
    ;;
esac

if [ "$status" != 0 ]; then
    echo "sanitizers: FAILED"
    exit 1
fi
if [ "$missing" != 0 ]; then
    echo "sanitizers: some checks did not run (see NOT RUN above)"
    exit 2
fi
echo "sanitizers: every check passed"
