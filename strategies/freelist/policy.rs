//! The placement policies: a few lines each over a searchable index.
//!
//! - [`First`]: the lowest-address free block that fits.
//! - [`Next`]: the lowest-address fitting block at or above a rover (the end of the last
//!   block handed out), wrapping around to the lowest address.
//! - [`Best`]: the smallest fitting block, the lowest address among equals.
//!
//! "Fits" is [`fit_start`](super::engine::fit_start) for every policy and index, so an index
//! changes only the cost of a decision, never the decision.

use super::block::Block;
use super::engine::{FreeIndex, Policy};

/// An index that finds the lowest-address fitting block at or above an address.
///
/// # Safety
/// *Implementors must guarantee* that `first_fit` returns the indexed block of lowest
/// address `>= from` for which `fit_start(b, need, align)` is `Some`, or `None` if none,
/// and leaves the same blocks indexed (it may tighten bounds the index keeps about them).
pub unsafe trait AddrSearch: FreeIndex {
    /// The lowest-address indexed block at or above `from` that fits.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn first_fit(&mut self, from: usize, need: usize, align: usize) -> Option<Block>;
}

/// An index that finds the smallest fitting block, lowest address among equal sizes.
///
/// # Safety
/// *Implementors must guarantee* that `best_fit` returns, among the indexed blocks for which
/// `fit_start(b, need, align)` is `Some`, the one of least `(size, address)`, or `None`.
pub unsafe trait SizeSearch: FreeIndex {
    /// The smallest fitting indexed block (lowest address on ties).
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block>;

    /// [`best_fit`](Self::best_fit), free to reorganise the index first (an index that
    /// defers work until a search, as [`SizeBins`](super::SizeBins)' pending blocks, does
    /// it here). Best fit's policy asks this one; the answer is `best_fit`'s.
    ///
    /// # Safety
    /// As for `best_fit`.
    #[inline]
    unsafe fn find_best(&mut self, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { self.best_fit(need, align) }
    }
}

/// First fit over index `I`.
pub struct First<I> {
    index: I,
}

// ANCHOR: first
// SAFETY: `find` returns what `first_fit` returns, which fits (AddrSearch contract).
unsafe impl<I: AddrSearch> Policy for First<I> {
    type Index = I;
    const EMPTY: Self = First { index: I::EMPTY };
    const NAME: &'static str = "first-fit";

    #[inline]
    fn index(&self) -> &I {
        &self.index
    }
    #[inline]
    fn index_mut(&mut self) -> &mut I {
        &mut self.index
    }
    #[inline]
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { self.index.first_fit(0, need, align) }
    }
}
// ANCHOR_END: first

/// Next fit over index `I`. The rover is an address, not a pointer to a block, so frees,
/// coalescing and chunks given back can never leave it dangling: it only says where the
/// next search starts.
pub struct Next<I> {
    index: I,
    /// The search starts at the first free block at or above this address (the end of the
    /// last block handed out), then wraps around to address 0.
    rover: usize,
}

// ANCHOR: next
// SAFETY: `find` returns what `first_fit` returns, which fits (AddrSearch contract).
unsafe impl<I: AddrSearch> Policy for Next<I> {
    type Index = I;
    const EMPTY: Self = Next { index: I::EMPTY, rover: 0 };
    const NAME: &'static str = "next-fit";

    #[inline]
    fn index(&self) -> &I {
        &self.index
    }
    #[inline]
    fn index_mut(&mut self) -> &mut I {
        &mut self.index
    }
    #[inline]
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe {
            self.index.first_fit(self.rover, need, align).or_else(|| self.index.first_fit(0, need, align))
        }
    }
    #[inline]
    fn handed_out(&mut self, end: usize) {
        self.rover = end;
    }
}
// ANCHOR_END: next

/// Best fit over index `I`.
pub struct Best<I> {
    index: I,
}

// ANCHOR: best
// SAFETY: `find` returns what `best_fit` returns, which fits (SizeSearch contract).
unsafe impl<I: SizeSearch> Policy for Best<I> {
    type Index = I;
    const EMPTY: Self = Best { index: I::EMPTY };
    const NAME: &'static str = "best-fit";

    #[inline]
    fn index(&self) -> &I {
        &self.index
    }
    #[inline]
    fn index_mut(&mut self) -> &mut I {
        &mut self.index
    }
    #[inline]
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { self.index.find_best(need, align) }
    }
}
// ANCHOR_END: best
