//! The strategies: the free lists ([`freelist`]) and the Go runtime's tiered design.
//!
//! Each implements [`Strategy`](crate::Strategy) and [`ConstInit`](crate::ConstInit), so it
//! can be used in a `static` [`Heap`](crate::Heap).

pub mod freelist;
pub mod layers;
pub mod tiered;

pub use tiered::Tiered;
