//! `Linear`: the seed's index, an address-ordered doubly linked list of free blocks searched
//! by walking it, O(n). Kept as the reference the fast indexes are tested against.
//!
//! Invariants (checked by `check`): `head.prev == null`; for consecutive `a, b`:
//! `a.next == b`, `b.prev == a`, `a < b` (strictly increasing addresses); `#nodes == len`.

use core::ptr;

use super::block::Block;
use super::engine::{FreeIndex, fit_start};
use super::policy::{AddrSearch, SizeSearch};
use crate::strategy::CheckError;

/// The list node kept in a free block's node area.
#[repr(C)]
struct Link {
    /// Header address of the free block below in address order (null for the first).
    prev: *mut u8,
    /// Header address of the free block above in address order (null for the last).
    next: *mut u8,
}

/// The O(n) reference index: an address-ordered list walked from its head.
pub struct Linear {
    head: *mut u8,
    len: usize,
}

// SAFETY: the pointers name free blocks of the one heap that owns this index, whose nodes
// only the index reads and writes, and only through `&mut self` or `&self` of the index;
// nothing is tied to a thread, so moving the index moves that exclusive access with it.
unsafe impl Send for Linear {}

/// The link of block `b`.
#[inline]
fn link(b: *mut u8) -> *mut Link {
    // SAFETY: node memory follows the header; `b` is a block header (non-null).
    unsafe { Block::at(b) }.node::<Link>()
}

impl Linear {
    /// The lowest-address block's header (null if the list is empty).
    #[inline]
    pub(super) fn first(&self) -> *mut u8 {
        self.head
    }

    /// The number of blocks.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Links `b` between `prev` and `next` (either may be null).
    ///
    /// # Safety
    /// `prev` and `next` are consecutive list members (or null at an end); `b` is not in it.
    #[inline]
    unsafe fn link_between(&mut self, b: *mut u8, prev: *mut u8, next: *mut u8) {
        // SAFETY: all three are free blocks whose node memory this index owns.
        unsafe {
            link(b).write(Link { prev, next });
            if prev.is_null() {
                self.head = b;
            } else {
                (*link(prev)).next = b;
            }
            if !next.is_null() {
                (*link(next)).prev = b;
            }
        }
    }

    /// Iterates the blocks in address order. Each block's `next` link is read before the
    /// block is yielded, so the caller may write over the node of a yielded block.
    pub(super) fn iter(&self) -> impl Iterator<Item = Block> + '_ {
        let mut at = self.head;
        core::iter::from_fn(move || {
            if at.is_null() {
                return None;
            }
            // SAFETY: `at` is a list member; its node holds the next link.
            let b = unsafe { Block::at(at) };
            // SAFETY: `at` is a list member, so its node holds the next link.
            at = unsafe { (*link(at)).next };
            Some(b)
        })
    }
}

// SAFETY: only node memory of listed blocks is written; the list holds exactly what was
// inserted and not removed.
unsafe impl FreeIndex for Linear {
    const EMPTY: Self = Linear { head: ptr::null_mut(), len: 0 };

    #[inline]
    unsafe fn insert(&mut self, b: Block, _size: usize, hint: Option<Block>) {
        let b = b.ptr();
        // SAFETY: the walk follows list links of live free blocks.
        unsafe {
            let (mut prev, mut next) = match hint {
                Some(h) => (h.ptr(), (*link(h.ptr())).next),
                None => (ptr::null_mut(), self.head),
            };
            while !next.is_null() && next < b {
                prev = next;
                next = (*link(next)).next;
            }
            self.link_between(b, prev, next);
        }
        self.len += 1;
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, _size: usize) {
        // SAFETY: `b` is listed; its neighbours are listed or null.
        unsafe {
            let Link { prev, next } = link(b.ptr()).read();
            if prev.is_null() {
                self.head = next;
            } else {
                (*link(prev)).next = next;
            }
            if !next.is_null() {
                (*link(next)).prev = prev;
            }
        }
        self.len -= 1;
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, _old_size: usize, new: Block, _new_size: usize) {
        // SAFETY: `old` is listed; `new` takes its position (read before write: the nodes
        // may overlap).
        unsafe {
            let Link { prev, next } = link(old.ptr()).read();
            self.link_between(new.ptr(), prev, next);
        }
    }

    unsafe fn resized(&mut self, _b: Block, _old_size: usize, _new_size: usize) {}

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let mut n = 0;
        let mut prev: *mut u8 = ptr::null_mut();
        for b in self.iter() {
            visit(b)?;
            // SAFETY: `visit` found `b` to be a live free block of the heap.
            let l = unsafe { link(b.ptr()).read() };
            if l.prev != prev {
                return Err(CheckError {
                    what: "linear: node.prev != previous node",
                    addr: b.addr(),
                    detail: 0,
                });
            }
            if !prev.is_null() && prev >= b.ptr() {
                let what = "linear: addresses not strictly increasing";
                return Err(CheckError { what, addr: b.addr(), detail: prev.addr() });
            }
            n += 1;
            if n > self.len {
                return Err(CheckError {
                    what: "linear: more nodes than len (cycle?)",
                    addr: b.addr(),
                    detail: n,
                });
            }
            prev = b.ptr();
        }
        if n != self.len {
            return Err(CheckError { what: "linear: #nodes != len", addr: self.head.addr(), detail: n });
        }
        Ok(n)
    }
}

impl Linear {
    // ANCHOR: linear_first_fit
    /// The first listed block at or above `from` that fits: the walk of first and next fit.
    ///
    /// # Safety
    /// The list holds only live free blocks.
    #[inline]
    pub(super) unsafe fn first_at(&self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: every listed block is a live free block.
        self.iter()
            .find(|&b| b.addr() >= from && unsafe { b.size() >= need && fit_start(b, need, align).is_some() })
    }
    // ANCHOR_END: linear_first_fit
}

// SAFETY: returns only listed blocks that `fit_start` accepts (`first_at`).
unsafe impl AddrSearch for Linear {
    #[inline]
    unsafe fn first_fit(&mut self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { self.first_at(from, need, align) }
    }
}

// ANCHOR: linear_best_fit
// SAFETY: returns only listed blocks that `fit_start` accepts.
unsafe impl SizeSearch for Linear {
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block> {
        let mut best: Option<(usize, Block)> = None;
        for b in self.iter() {
            // SAFETY: every listed block is a live free block.
            let (size, fits) = unsafe { (b.size(), fit_start(b, need, align).is_some()) };
            // Strictly smaller only: on a tie the earlier (lower) address stays.
            if size >= need && fits && best.is_none_or(|(s, _)| size < s) {
                best = Some((size, b));
            }
        }
        best.map(|(_, b)| b)
    }
}
// ANCHOR_END: linear_best_fit
