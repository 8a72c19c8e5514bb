//! The shared strategy suite (see `tests/harness/mod.rs`) for `BestFit`, over `Mmap`, a 64 MiB
//! `Fixed` region and `Tracked<Mmap>`.

#[macro_use]
mod harness;

strategy_suite!(mmap, stratalloc::BestFit, mmap);
strategy_suite!(fixed, stratalloc::BestFit, fixed);
strategy_suite!(tracked, stratalloc::BestFit, tracked);
