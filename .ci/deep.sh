#!/usr/bin/env bash
# The deep run (nightly or weekly, not part of .ci/run): every `random_ops` property of the
# shared harness with PROPTEST_CASES cases each, enough for at least 1,000,000 random
# operations in all (about 80 operations per case, 26 `random_ops` tests: 512 cases each).
#
#   .ci/deep.sh                      # 512 cases per property, a fresh seed per test
#   PROPTEST_CASES=64 .ci/deep.sh    # a smaller run
#   PROPTEST_RNG_SEED=123 .ci/deep.sh  # replay a seed a failure printed
#
# Each property prints "random_ops NAME: C cases, N operations, PROPTEST_RNG_SEED=S"; the
# script sums N and fails if the total is under DEEP_MIN_OPS (1,000,000 by default; 0 turns
# the check off). A failure prints its seed and minimal sequence and is persisted in
# tests/<file>.proptest-regressions, which every later run replays first.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES=${PROPTEST_CASES:-512}
min_ops=${DEEP_MIN_OPS:-1000000}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

t0=$(date +%s)
# Release-like speed is not needed: the dev profile (opt-level 1, debug assertions on) is what
# the properties are written for.
set +e
cargo test --test freelist --test strategy_reference --test strategy_tiered -- random_ops --nocapture \
    2>&1 | tee "$log" | grep -E '^random_ops |test result|FAILED|panicked'
status=${PIPESTATUS[0]}
set -e
total=$(awk '/^random_ops / { for (i = 1; i <= NF; i++) if ($i == "operations,") s += $(i - 1) } END { print s + 0 }' "$log")
props=$(grep -c '^random_ops ' "$log" || true)
echo "deep run: $props properties, $PROPTEST_CASES cases each, $total random operations in $(($(date +%s) - t0)) s"
if [ "$status" -ne 0 ]; then
    echo "deep run FAILED (exit $status)" >&2
    exit "$status"
fi
if [ "$total" -lt "$min_ops" ]; then
    echo "deep run too small: $total operations < $min_ops (raise PROPTEST_CASES)" >&2
    exit 1
fi
