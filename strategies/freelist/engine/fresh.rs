//! The fresh tail: the never-handed-out memory of the newest chunk of a `FRESH_ZEROED`
//! source, which reads as zero, so that `alloc_zeroed` clears only what the heap wrote itself
//! (Go's counterpart: a span's `needzero` flag).

use core::ptr;

use super::super::block::{Block, HEADER_BYTES, NODE_BYTES};
use super::{Core, Policy};

/// The never-handed-out tail `lo..hi` of the newest chunk of a zeroing source.
///
/// Invariant: every word in `lo..hi` is zero except the header, index node and footer of the
/// free block that starts at or above `lo` (there is at most one, ending at `hi`, since
/// blocks above `lo` were never handed out and free blocks coalesce), and the footer of the
/// block containing `lo`. Empty (`lo == hi`) when unknown.
#[derive(Copy, Clone)]
pub(super) struct Fresh {
    pub(super) lo: usize,
    pub(super) hi: usize,
}

impl<X: Policy> Core<X> {
    /// Records that `a` (`a_size` bytes, cut from free block `f` of `f_size` bytes) is handed
    /// out: the policy's rover and the fresh tail move past it. Returns whether its payload
    /// reads as zero (`f` lay wholly in the fresh tail; its metadata words in `a` are cleared
    /// here, so call this after the index is done with `f`'s node).
    ///
    /// One test on the hot path: a free block that overlaps the fresh tail ends at
    /// `fresh.hi` (every block above `fresh.lo` is free and was never handed out, so they
    /// are one block, coalesced with a free block containing `fresh.lo`; see [`Fresh`]), so
    /// only a cut from the block ending at `fresh.hi` can overlap it; the exact overlap test
    /// is in the cold [`take_fresh`](Self::take_fresh).
    ///
    /// # Safety
    /// `a` lies inside `f`, which was a free block of `f_size` bytes.
    #[inline]
    pub(super) unsafe fn handed_out(&mut self, f: Block, f_size: usize, a: Block, a_size: usize) -> bool {
        self.policy.handed_out(a.addr() + a_size);
        if f.addr() + f_size != self.fresh.hi {
            return false;
        }
        // SAFETY: forwarded.
        unsafe { self.take_fresh(f, a, a_size) }
    }

    /// `a` (cut from `f`, which ends at `fresh.hi`) may overlap the fresh tail: if it does,
    /// move the tail's start past it (forgetting an exhausted tail), and clear `f`'s
    /// metadata words in `a` if `f` lay wholly in the tail.
    ///
    /// # Safety
    /// As for [`handed_out`](Self::handed_out).
    #[cold]
    unsafe fn take_fresh(&mut self, f: Block, a: Block, a_size: usize) -> bool {
        let end = a.addr() + a_size;
        if end <= self.fresh.lo || a.addr() >= self.fresh.hi {
            return false;
        }
        let zero = self.fresh_block(f);
        if zero {
            // SAFETY: `a` lies inside `f`, which lies in the fresh tail.
            unsafe { self.clear_fresh_metadata(f, a, a_size) };
        }
        self.fresh.lo = end.min(self.fresh.hi);
        if self.fresh.lo == self.fresh.hi {
            self.fresh = Fresh { lo: 0, hi: 0 };
        }
        zero
    }

    /// Whether `f` lies wholly in the fresh tail (so it reads as zero but for its metadata).
    fn fresh_block(&self, f: Block) -> bool {
        f.addr() >= self.fresh.lo && f.addr() < self.fresh.hi
    }

    /// Clears the metadata words of fresh free block `f` (node, footer) that lie in the
    /// payload of `a` (`a_size` bytes), which was cut from it.
    ///
    /// # Safety
    /// `a` lies inside `f`, which was free and lies in the fresh tail.
    unsafe fn clear_fresh_metadata(&self, f: Block, a: Block, a_size: usize) {
        let (lo, hi) = (a.payload().addr().get(), a.addr() + a_size);
        let node = f.addr() + HEADER_BYTES;
        let footer = self.fresh.hi - HEADER_BYTES;
        for (s, e) in [(node, node + NODE_BYTES), (footer, footer + HEADER_BYTES)] {
            let (s, e) = (s.max(lo), e.min(hi));
            if s < e {
                // SAFETY: `s..e` lies inside the payload of `a`, which this heap owns.
                unsafe { ptr::write_bytes(a.ptr().with_addr(s), 0, e - s) };
            }
        }
    }

    /// Records that used block `a`, grown in place, is handed out: the fresh tail and the
    /// policy's rover move past it.
    ///
    /// # Safety
    /// `a` is a live block.
    pub(super) unsafe fn grown(&mut self, a: Block) {
        // SAFETY: forwarded.
        let end = unsafe { a.end() };
        if end > self.fresh.lo && a.addr() < self.fresh.hi {
            self.fresh.lo = end.min(self.fresh.hi);
        }
        self.policy.handed_out(end);
    }
}
