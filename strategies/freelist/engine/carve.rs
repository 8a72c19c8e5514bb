//! Allocation: the inlined fast path (the policy's `find`, then `take`), its cold rest (the
//! rest of the search, else growth), and carving a used block out of a free one (the split
//! step of a textbook fit allocator).

use core::alloc::Layout;
use core::ptr::NonNull;

use super::super::block::{
    BLOCK_ALIGN, Block, HEADER_BYTES, MIN_BLOCK_BYTES, PREV_FREE, block_need, layout_need,
};
use super::{Core, FreeIndex, Policy, fit_start};
use crate::source::PageSource;

impl<X: Policy> Core<X> {
    // ANCHOR: core_alloc
    /// Allocates; returns the payload and whether it is known to read as zero already.
    ///
    /// # Safety
    /// `src` is this heap's source; `layout.size() > 0`.
    #[inline]
    pub unsafe fn alloc<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<(NonNull<u8>, bool)> {
        // Unchecked: a block found for `need` proves it in range (it is no bigger than the
        // block); otherwise `alloc_rest` checks it.
        let need = layout_need(layout);
        // SAFETY: the index holds only live free blocks of this heap.
        match unsafe { self.policy.find(need, layout.align()) } {
            // SAFETY: `f` is an indexed free block into which the request fits.
            Some(f) => Some(unsafe { self.take(f, need, layout) }),
            None => self.alloc_rest(src, layout),
        }
    }

    /// [`alloc`](Self::alloc) without the zero flag (a plain allocation): the result is one
    /// pointer, so the fast path's return joins the slow path's without testing which
    /// variant of a pair came back.
    ///
    /// # Safety
    /// As for [`alloc`](Self::alloc).
    #[inline]
    pub unsafe fn alloc_plain<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let need = layout_need(layout);
        // SAFETY: the index holds only live free blocks of this heap.
        match unsafe { self.policy.find(need, layout.align()) } {
            // SAFETY: `f` is an indexed free block into which the request fits (`find`).
            Some(f) => Some(unsafe { self.take(f, need, layout) }.0),
            None => self.alloc_rest_plain(src, layout),
        }
    }

    /// [`alloc_rest`](Self::alloc_rest) for [`alloc_plain`](Self::alloc_plain).
    #[cold]
    #[inline(never)]
    fn alloc_rest_plain<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc_rest(src, layout).map(|(p, _)| p)
    }

    /// [`alloc`](Self::alloc) when the policy's common case found nothing: the rest of its
    /// search, else growth. Out of line, so the allocation path keeps few registers live.
    #[cold]
    #[inline(never)]
    fn alloc_rest<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<(NonNull<u8>, bool)> {
        let (need, align) = (block_need(layout.size())?, layout.align());
        // SAFETY: the index holds only live free blocks of this heap; `find` just failed.
        let f = match unsafe { self.policy.find_rest(need, align) } {
            Some(f) => f,
            None => self.grow(src, need, align)?,
        };
        // SAFETY: `f` is an indexed free block into which the request fits.
        Some(unsafe { self.take(f, need, layout) })
    }

    /// Counts the allocation and carves it from `f`; returns the payload and whether it
    /// reads as zero.
    ///
    /// # Safety
    /// As for [`carve`](Self::carve), with `need == layout_need(layout)` (which equals
    /// `block_need(layout.size())` for every block that can be found).
    #[inline]
    unsafe fn take(&mut self, f: Block, need: usize, layout: Layout) -> (NonNull<u8>, bool) {
        // SAFETY: forwarded.
        let (a, a_size, zero) = unsafe { self.carve(f, need, layout.align()) };
        // SAFETY: `a` is a used block just carved from a chunk; its payload is aligned.
        unsafe { self.handed_live(a, a_size) };
        (a.payload(), zero)
    }

    /// Counts used block `a` of `a_size` bytes, just carved, as live (its usable size) and
    /// sets its bit in the live-start map.
    ///
    /// # Safety
    /// `a` is a used block of a chunk of this heap, not yet counted or marked.
    #[inline(always)]
    pub(super) unsafe fn handed_live(&mut self, a: Block, a_size: usize) {
        self.count_alloc(a_size - HEADER_BYTES);
        // SAFETY: `a`'s payload lies in a chunk and is `BLOCK_ALIGN`-aligned (caller).
        unsafe { self.live.mark(a.payload().addr().get()) };
    }
    // ANCHOR_END: core_alloc

    #[inline]
    pub(super) fn count_alloc(&mut self, bytes: usize) {
        self.live_bytes += bytes;
        self.live_objects += 1;
        // A branch, not a max: a new peak is rare once a program runs, so the store is
        // skipped.
        if self.live_bytes > self.peak_live_bytes {
            self.peak_live_bytes = self.live_bytes;
        }
    }

    // ANCHOR: carve
    /// Cuts a used block of `need` bytes aligned for `align` out of indexed free block `f`:
    /// a gap below stays free in place ([`carve_gap`](Self::carve_gap)), a remainder of at
    /// least `MIN_BLOCK_BYTES` above becomes a free block that takes `f`'s place in the
    /// index. Returns the used block, its size and whether its payload is zero.
    ///
    /// # Safety
    /// `f` is an indexed free block and `fit_start(f, need, align)` is `Some`.
    #[inline]
    pub(super) unsafe fn carve(&mut self, f: Block, need: usize, align: usize) -> (Block, usize, bool) {
        // SAFETY: `f` is a live free block (caller), so its header and the header above are
        // valid; every address written lies inside `f` above its node (`need >=
        // MIN_BLOCK_BYTES`), or is the header above `f`, so the index can still read the
        // node; `f`'s own header is rewritten after the index is done.
        unsafe {
            let f_size = f.size();
            if align > BLOCK_ALIGN
                && let Some(q) = fit_start(f, need, align)
                && q != f.addr()
            {
                return self.carve_gap(f, f_size, q, need);
            }
            let rest = f_size - need;
            let a_size = if rest >= MIN_BLOCK_BYTES {
                let r = Block::at(f.ptr().add(need));
                r.write_free(rest);
                self.blocks += 1;
                self.policy.index_mut().replace(f, f_size, r, rest);
                need
            } else {
                // `f` becomes the used block: `blocks` is unchanged.
                Block::at(f.ptr().add(f_size)).set_prev_free(false);
                self.policy.index_mut().remove(f, f_size);
                f_size
            };
            // A free block's PREV_FREE is clear (coalescing), and so is the used block's.
            f.set_header(a_size);
            self.free_bytes -= a_size;
            let zero = self.handed_out(f, f_size, f, a_size);
            (f, a_size, zero)
        }
    }
    // ANCHOR_END: carve

    /// [`carve`](Self::carve) when the aligned start `q` lies above `f`'s start: `f` shrinks
    /// to the gap below `q` (it stays indexed, resized), and a remainder above the used
    /// block is indexed as a new free block.
    ///
    /// # Safety
    /// As for `carve`, with `q = fit_start(f, need, align) > f.addr()` and `f_size` its size.
    #[cold]
    unsafe fn carve_gap(&mut self, f: Block, f_size: usize, q: usize, need: usize) -> (Block, usize, bool) {
        // SAFETY: `q..q + need` lies inside `f`, above a gap of at least `MIN_BLOCK_BYTES`
        // (`fit_start`), so no write lands in `f`'s node.
        unsafe {
            let a = Block::at(f.ptr().with_addr(q));
            let (gap, rest) = (q - f.addr(), f.addr() + f_size - q - need);
            let a_size = if rest >= MIN_BLOCK_BYTES { need } else { need + rest };
            self.free_bytes -= a_size;
            self.blocks += 1;
            a.set_header(a_size | PREV_FREE);
            f.write_free(gap);
            self.policy.index_mut().resized(f, f_size, gap);
            if rest >= MIN_BLOCK_BYTES {
                let r = a.next();
                r.write_free(rest);
                self.blocks += 1;
                self.policy.index_mut().insert(r, rest, Some(f));
            } else {
                a.next().set_prev_free(false);
            }
            let zero = self.handed_out(f, f_size, a, a_size);
            (a, a_size, zero)
        }
    }
}
