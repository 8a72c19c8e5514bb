#!/usr/bin/env bash
# The preload library under real programs (issue 6): installs the tools the tests run (and
# libmimalloc2.0, the comparison harness's anchor), builds
# target/release/libstratalloc_preload.so and runs comparisons/preload/tests/real_programs.sh:
# python3, sqlite3, git, gcc, a threaded C++ program, perl and the C edge-case test under
# every strategy, compared with runs without the library. (`cargo test -p stratalloc-preload`, part of
# `cargo test --workspace`, runs the same script.)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash comparisons/preload/tests/install-tools.sh --mimalloc
cargo build --release -p stratalloc-preload
bash comparisons/preload/tests/real_programs.sh target/release/libstratalloc_preload.so
