//! # comparisons: whole-program workloads x allocators
//!
//! Glossary:
//! - *runner*: a bin `alloc_<name>` whose `#[global_allocator]` is the allocator `name` of
//!   the table (`workloads::for_each_allocator!`); every runner bin is the one source
//!   `src/runner_bin.rs`, the allocator chosen by the bin's name at compile time. It runs
//!   one workload per process ([`runner`]).
//! - *workload*: a program that allocates in a known pattern and checks its own results
//!   (the `workloads` crate); scale 1 is the quick size.
//! - *driver*: the `comparisons` bin: runs workloads x allocators as child processes,
//!   interleaving allocators across repetitions, and writes tables, JSON and SVG plots.
//!
//! Run path: driver -> `alloc_<name> run WORKLOAD --scale ..` -> `RESULT {checksum, metrics}`
//! on stdout, or `FAILED: ..` and a non-zero exit. The driver times the child (wall clock,
//! rusage CPU time and peak RSS from `wait4`) and compares checksums across allocators.

pub mod runner;

pub use workloads;
