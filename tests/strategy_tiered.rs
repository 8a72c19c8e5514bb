//! The shared strategy harness run on `Tiered` over `Mmap` and `Tracked<Mmap>` (the tiered
//! design reserves 64 MiB arenas, more than the harness's `Fixed`
//! region holds, so it is not run over `Fixed`).

#[macro_use]
mod harness;

use stratalloc::Tiered;

strategy_suite!(mmap, Tiered, mmap);
strategy_suite!(tracked, Tiered, tracked);
