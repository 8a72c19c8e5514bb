//! # comparisons: whole-program workloads x allocators
//!
//! Glossary:
//! - *runner*: a bin `alloc_<name>` whose `#[global_allocator]` is one allocator of the
//!   table ([`for_each_allocator!`]); it runs one workload per process ([`runner`]).
//! - *workload*: a program that allocates in a known pattern and checks its own results
//!   ([`workloads`]); scale 1 is the quick size.
//! - *driver*: the `comparisons` bin: runs workloads x allocators as child processes,
//!   interleaving allocators across repetitions, and writes tables, JSON and SVG plots.
//! - *trace*: a recorded allocation trace of a real program, replayed by every runner
//!   ([`trace`]).
//!
//! Run path: driver -> `alloc_<name> run WORKLOAD --scale ..` -> `RESULT {checksum, metrics}`
//! on stdout, or `FAILED: ..` and a non-zero exit. The driver times the child (wall clock,
//! rusage CPU time and peak RSS from `wait4`) and compares checksums across allocators.

pub mod allocators;
pub mod common;
pub mod runner;
pub mod trace;
pub mod workloads;
