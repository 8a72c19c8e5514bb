#!/usr/bin/env bash
# Loom model checks of the tiered strategy's lock-free structures: the remote-free stack and
# the tiny-block counter (strategies/tiered/remote.rs, compiled by tests/loom_tiered.rs
# against loom's atomics). A separate target directory keeps the normal build cache intact.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test loom_tiered -- --test-threads=1
