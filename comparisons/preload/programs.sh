# Sourced by rank-check.sh and time-tracing.sh (bash, after `set -euo pipefail`, with
# `here` set to this directory): where the release builds and the test programs are.
#   repo      the repository
#   lib       the preload library (release build)
#   driver    the comparisons driver (release build)
#   programs  comparisons/preload/tests/programs
#   need_builds NAME   exits 2, naming NAME and the cargo command, when a build is missing
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
lib=$target/release/libstratalloc_preload.so
driver=$target/release/comparisons
programs=$here/tests/programs

need_builds() {
    local f
    for f in "$lib" "$driver"; do
        [ -e "$f" ] || {
            echo "$1: $f not found (cargo build --release -p stratalloc-preload -p comparisons)" >&2
            exit 2
        }
    done
}
