//! The stratalloc book's examples, compiled and run by `cargo test -p book-examples`.
//!
//! - Each chapter whose ```` ```rust ```` blocks are self-contained is included below as the
//!   docs of a module, so that rustdoc runs its blocks as doc tests. Blocks that show code
//!   included from the sources (mdBook's include directive) are marked `ignore`: that code is
//!   compiled where it lives.
//! - [`bump`] and [`poisoned`] are the worked examples of the chapters "Writing your own
//!   strategy" and "Writing your own page source", [`counting`] that of "Layers"; the
//!   chapters include them by anchor.
//! - [`reports`] produce the deterministic figures committed in `book/src/measured/`, and
//!   `tests/measured.rs` checks that the committed files are still what the code prints.
//! - [`reports::policy_frames`] draws the step-through frames of the chapter "Free-list
//!   allocation" (`book/src/img/policy/`) from the real strategies; `tests/frames.rs` checks
//!   that the committed frames are what it draws today, and the fragmentation plot of the
//!   same chapter ([`reports::fragmentation`]).
//! - [`reports::span_frames`] draws the step-through of the chapter "Span"
//!   (`book/src/img/span/`) from one real `Tiered` span; `tests/frames.rs` checks it too.
//! - [`reports::scavenge`] also draws the plot of Ready memory against the scavenger's goal
//!   of the chapter "Freeing and scavenging" (`book/src/img/scavenge.svg`) from the run of
//!   its table; `tests/measured.rs` checks both and the plot's alt text and caption.
//! - [`reports::comparison_summary`] draws the time-against-memory summary of the chapter
//!   "Comparison" from the committed `results/results.json`; `tests/frames.rs` checks it.
//! - `tests/book_links.rs` checks every relative link, image, anchor and include of the book.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod bump;
pub mod counting;
pub mod poisoned;

/// The deterministic measurements committed under `book/src/measured/` (the examples of the
/// same names print them; `tests/measured.rs` checks the committed files are current).
pub mod reports {
    #[path = "../reports/comparison_summary.rs"]
    pub mod comparison_summary;
    #[path = "../reports/fragmentation.rs"]
    pub mod fragmentation;
    #[path = "../reports/policy_frames.rs"]
    pub mod policy_frames;
    #[path = "../reports/scavenge.rs"]
    pub mod scavenge;
    #[path = "../reports/size_class_waste.rs"]
    pub mod size_class_waste;
    #[path = "../reports/size_classes.rs"]
    pub mod size_classes;
    #[path = "../reports/span_frames.rs"]
    pub mod span_frames;
    #[path = "../reports/tiered_walk.rs"]
    pub mod tiered_walk;
}

/// Chapter "Using stratalloc".
#[doc = include_str!("../src/using.md")]
pub mod using {}

/// Chapter "Address-space states and the PageSource trait".
#[doc = include_str!("../src/page-sources.md")]
pub mod page_sources {}

/// Chapter "The Strategy contract and the Heap front end".
#[doc = include_str!("../src/strategy-contract.md")]
pub mod strategy_contract {}

/// Chapter "Why size classes".
#[doc = include_str!("../src/size-classes.md")]
pub mod size_classes {}

/// Chapter "One allocation walked through every tier".
#[doc = include_str!("../src/walkthrough.md")]
pub mod walkthrough {}

/// Chapter "Freeing and scavenging".
#[doc = include_str!("../src/freeing.md")]
pub mod freeing {}

/// Chapter "Layers: allocators built from parts".
#[doc = include_str!("../src/layers.md")]
pub mod layers {}

/// Chapter "Writing your own strategy".
#[doc = include_str!("../src/own-strategy.md")]
pub mod own_strategy {}

/// Chapter "Writing your own page source".
#[doc = include_str!("../src/own-source.md")]
pub mod own_source {}
