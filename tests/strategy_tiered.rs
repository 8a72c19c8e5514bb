//! The shared strategy harness run on `Tiered` over `Mmap` and `Tracked<Mmap>` (the tiered
//! design reserves 64 MiB arenas, more than the harness's `Fixed`
//! region holds, so it is not run over `Fixed`).

#[macro_use]
mod harness;

use stratalloc::Tiered;

/// `Tiered` keeps the head slot groups it made Ready (see `Opts::kept_metadata_bytes`): at
/// most one arena's, in these tests' heaps (small objects stay in the first arena).
const TIERED_OPTS: harness::Opts = harness::Opts {
    kept_metadata_bytes: stratalloc::strategies::tiered::HEADS_BYTES,
    ..harness::Opts::DEFAULT
};

strategy_suite!(mmap, Tiered, mmap, TIERED_OPTS);
strategy_suite!(tracked, Tiered, tracked, TIERED_OPTS);
