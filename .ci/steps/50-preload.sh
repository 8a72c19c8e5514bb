#!/usr/bin/env bash
# The preload library under real programs (issue 6): installs the tools the tests run (and
# libmimalloc2.0, the comparison harness's anchor), builds
# target/release/libstratalloc_preload.so and runs comparisons/preload/tests/real_programs.sh:
# python3, sqlite3, git, gcc, a threaded C++ program, perl and the C tests (edge cases, bad
# frees, fork stress) under every strategy, compared with runs without the library. (`cargo test -p stratalloc-preload`
# runs the same script when STRATALLOC_PRELOAD_LIB names the library, as below; without it,
# as in `cargo test --workspace`, it skips in one line and installs nothing.)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash comparisons/preload/tests/install-tools.sh --mimalloc
cargo build --release -p stratalloc-preload
STRATALLOC_PRELOAD_LIB="${CARGO_TARGET_DIR:-$PWD/target}/release/libstratalloc_preload.so" cargo test -p stratalloc-preload --test real_programs -- --nocapture
