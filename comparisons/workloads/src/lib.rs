//! # workloads: the one place for what stratalloc measures and how
//!
//! Glossary:
//! - *allocator table*: [`for_each_allocator!`], every allocator and composition, one line
//!   each; everything that runs allocators reads it ([`allocators`]).
//! - *workload*: a program that allocates in a known pattern and checks its own results
//!   ([`suite`]); scale 1 is the quick size. The harness runs each in a process of its own
//!   with the allocator as `#[global_allocator]`; the examples and benches call the same code
//!   on allocator values.
//! - *stamped block*: [`Block`], an allocation with a tag at both ends, checked when freed
//!   ([`check`]); the churn's lighter one-byte tag is in [`churn`].
//! - *trace*: a recorded allocation trace of a real program, replayed by every allocator
//!   ([`trace`]).
//! - *program trace*: the allocation calls of any program, recorded by the preload library
//!   ([`trace_format`]), decoded and profiled ([`program_trace`]) and replayed with its
//!   threads ([`program_replay`]).
//! - [`Rng`]: the one seeded generator ([`rng`]).

//!
//! Without the default feature `run`, only the table and the generator are built (what the
//! preload library needs).

pub mod allocators;
#[cfg(feature = "run")]
pub mod check;
#[cfg(feature = "run")]
pub mod churn;
#[cfg(feature = "run")]
pub mod program_replay;
#[cfg(feature = "run")]
pub mod program_trace;
pub mod rng;
#[cfg(feature = "run")]
pub mod suite;
#[cfg(feature = "run")]
pub mod targets;
#[cfg(feature = "run")]
pub mod trace;
pub mod trace_format;

#[cfg(feature = "run")]
pub use check::{Alloc, Block, Check, Global};
pub use rng::Rng;
#[cfg(feature = "run")]
pub use suite::{ALL, Ctx, Outcome, Workload, find};
