#!/usr/bin/env bash
# The free lists and `Fixed` build and work without std (`--no-default-features`).
#
# The library is `#![no_std]` and names `std` only behind the `std` feature, so a build
# without default features proves that no std item slipped into the core, the free-list
# strategies or the page sources. Their unit tests then run in that configuration too (the
# test harness itself uses std, the code under test does not).
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== no_std: build the library without default features"
cargo build --lib --no-default-features

echo "== no_std: clippy without default features"
cargo clippy --lib --no-default-features -- -D warnings

echo "== no_std: no 'std::' in the free lists outside their tests (tests.rs, tests_*.rs)"
if grep -rn --include='*.rs' -E '\bstd::' strategies/freelist | grep -v -E 'strategies/freelist/tests(_[a-z_]+)?\.rs:'; then
    echo "the free lists must not use std" >&2
    exit 1
fi

echo "== no_std: free-list and Fixed unit tests without default features"
cargo test --lib --no-default-features -- freelist source::
