//! The shared strategy suite (see `tests/harness/mod.rs`) for `FirstFit`, over `Mmap`, a 64 MiB
//! `Fixed` region and `Tracked<Mmap>`.

#[macro_use]
mod harness;

strategy_suite!(mmap, stratalloc::FirstFit, mmap);
strategy_suite!(fixed, stratalloc::FirstFit, fixed);
strategy_suite!(tracked, stratalloc::FirstFit, tracked);
