//! The shared strategy suite (see `tests/harness/mod.rs`) for `NextFit`, over `Mmap`, a 64 MiB
//! `Fixed` region and `Tracked<Mmap>`.

#[macro_use]
mod harness;

strategy_suite!(mmap, stratalloc::NextFit, mmap);
strategy_suite!(fixed, stratalloc::NextFit, fixed);
strategy_suite!(tracked, stratalloc::NextFit, tracked);
