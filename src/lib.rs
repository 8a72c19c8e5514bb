//! # stratalloc
//!
//! Pluggable memory allocators: the textbook free lists (first-fit, next-fit, best-fit,
//! segregated-fit) and the Go runtime's tiered allocator, side by side, each usable as the
//! `#[global_allocator]` of a real program.
//!
//! ```text
//!   Heap<S, P>            front end: GlobalAlloc + Allocator, zero-size requests, statistics
//!     └─ S: Strategy      placement: FirstFit, NextFit, BestFit, SegregatedFit, Tiered,
//!                         or layers around them: ThreadCache<Arenas<BestFit>>, Segregate<..>
//!          └─ P: PageSource   memory: Mmap (the OS), Fixed (your region), Tracked, Failing
//! ```
//!
//! - [`source`]: the [`PageSource`] trait, Go's address-space states and the sources.
//! - [`strategy`]: the [`Strategy`] contract every design implements.
//! - [`heap`]: [`Heap`], what users write.
//! - [`strategies`]: the designs.
//! - [`strategies::layers`]: strategies generic over an inner strategy ([`ThreadCache`],
//!   [`Arenas`], [`Segregate`]), so that allocators are composed as types.
//! - [`any`] and [`compose`]: choosing a strategy, or a composition, by name at run time.
//!
//! ```
//! use stratalloc::{Heap, Tiered};
//! #[global_allocator]
//! static GLOBAL: Heap<Tiered> = Heap::new();
//!
//! fn main() {
//!     let words: Vec<String> = (0..1000).map(|i| format!("word {i}")).collect();
//!     assert_eq!(words[999], "word 999");
//!     assert!(GLOBAL.stats().live_objects > 0); // the heap really serves this program
//! }
//! ```
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod strategy;

pub mod any;
pub mod compose;
pub mod heap;
pub mod source;
#[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
pub mod static_tls;
pub mod sync;

#[path = "../strategies/mod.rs"]
pub mod strategies;

pub use any::{AnyInner, AnyStrategy, ComposeError, StrategyKind};
pub use compose::Spec;
pub use heap::{Heap, SourceCalls, Stats};
#[cfg(unix)]
pub use source::Mmap;
pub use source::{Failing, Fixed, Op, PageSource, Region, SourceError, State, Tracked, TrackedCounts};
pub use strategies::Tiered;
pub use strategies::freelist::{
    AddrRegions, AddrTree, BestFit, FirstFit, Linear, NextFit, SegregatedFit, SizeBins, SizeTree,
};
pub use strategies::layers::{Arenas, DRAIN_EVERY, Identity, REMOTE_MAX_BYTES, Segregate, ThreadCache};
pub use strategy::{BadFree, BlockInfo, CachedFree, CheckError, ConstInit, Found, Strategy, StrategyStats};
