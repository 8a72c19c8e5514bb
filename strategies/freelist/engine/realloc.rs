//! Realloc: a shrink moves to where the policy would place a fresh block (talc's method), else
//! shrinks in place; a grow takes the free block above, else the free block below (moving the
//! contents down). The caller falls back to allocate, copy, free.

use core::ptr::{self, NonNull};

use super::super::block::{Block, HEADER_BYTES, MIN_BLOCK_BYTES, PREV_FREE, block_need};
use super::{Core, FreeIndex, Policy};

impl<X: Policy> Core<X> {
    /// Resizes in place if the block can (shrink, or grow into a free block above); returns
    /// `true` if it did.
    ///
    /// # Safety
    /// `p` is a live payload of this heap.
    pub unsafe fn resize_in_place(&mut self, p: NonNull<u8>, new: usize) -> bool {
        let Some(need) = block_need(new) else { return false };
        // SAFETY: `p` is live (caller); its neighbours are valid blocks of its chunk.
        unsafe {
            let a = Block::from_payload(p);
            let size = a.size();
            let ok =
                if need <= size { self.shrink(a, size, need) } else { self.grow_into_next(a, size, need) };
            if ok {
                // Counted in usable sizes: the block's size after the change.
                self.live_bytes = self.live_bytes + a.size() - size;
                self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
            }
            ok
        }
    }

    /// Shrinks used block `a` to `need` bytes, freeing the tail if it can stand as a block
    /// or join a free block above.
    ///
    /// # Safety
    /// `a` is a live used block of `size >= need` bytes.
    unsafe fn shrink(&mut self, a: Block, size: usize, need: usize) -> bool {
        // SAFETY: the tail `a + need..a + size` belongs to `a`; the block above is valid.
        unsafe {
            let tail = size - need;
            if tail >= MIN_BLOCK_BYTES || (tail > 0 && a.next().is_free()) {
                a.set_header(need | (a.header() & PREV_FREE));
                let t = a.next();
                t.set_header(tail);
                self.release_block::<false>(t, tail);
            }
        }
        true
    }

    /// Grows used block `a` into the free block above it if that gives `need` bytes.
    ///
    /// # Safety
    /// `a` is a live used block of `size < need` bytes.
    unsafe fn grow_into_next(&mut self, a: Block, size: usize, need: usize) -> bool {
        // SAFETY: the block above `a` is valid; all writes lie inside `a` and that block, and
        // the index is told before the new remainder's header can land in the old node.
        unsafe {
            let n = a.next();
            if !n.is_free() || size + n.size() < need {
                return false;
            }
            let n_size = n.size();
            let rest = size + n_size - need;
            let a_size = if rest >= MIN_BLOCK_BYTES { need } else { size + n_size };
            self.free_bytes -= a_size - size;
            let r = Block::at(a.ptr().add(need));
            if rest >= MIN_BLOCK_BYTES {
                self.policy.index_mut().replace(n, n_size, r, rest);
            } else {
                self.blocks -= 1;
                self.policy.index_mut().remove(n, n_size);
            }
            a.set_header(a_size | (a.header() & PREV_FREE));
            if rest >= MIN_BLOCK_BYTES {
                r.write_free(rest);
            } else {
                a.next().set_prev_free(false);
            }
            self.grown(a);
        }
        true
    }

    /// Grows used block `a` (payload `p`, `old` bytes requested) into the free block below
    /// it (and the free block above, if any), moving the contents down. For alignments up
    /// to `BLOCK_ALIGN` only (the payload moves). Returns the new payload.
    ///
    /// # Safety
    /// `p` is a live payload of this heap allocated for `old` bytes with alignment
    /// `<= BLOCK_ALIGN`; `new > old` bytes did not fit in place.
    pub unsafe fn grow_backward(&mut self, p: NonNull<u8>, old: usize, new: usize) -> Option<NonNull<u8>> {
        let need = block_need(new)?;
        // SAFETY: `p` is live; its neighbours are valid blocks of its chunk; the index is told
        // before the copy overwrites the lower block's node; headers above the copied bytes
        // are written after the copy; `b`'s payload, whose bit is set, lies in the same chunk
        // and is aligned like every payload.
        unsafe {
            let a = Block::from_payload(p);
            if !a.prev_is_free() {
                return None;
            }
            let (b, size, n) = (a.prev(), a.size(), a.next());
            let (b_size, n_size) = (b.size(), if n.is_free() { n.size() } else { 0 });
            let total = b_size + size + n_size;
            if total < need {
                return None;
            }
            self.policy.index_mut().remove(b, b_size);
            self.blocks -= 1;
            if n_size > 0 {
                self.policy.index_mut().remove(n, n_size);
                self.blocks -= 1;
            }
            self.free_bytes -= b_size + n_size;
            ptr::copy(p.as_ptr(), b.payload().as_ptr(), old);
            let rest = total - need;
            let b_new = if rest >= MIN_BLOCK_BYTES { need } else { total };
            // `b` was free, so the block below it is not.
            b.set_header(b_new);
            if rest >= MIN_BLOCK_BYTES {
                let r = b.next();
                r.write_free(rest);
                r.next().set_prev_free(true);
                self.free_bytes += rest;
                self.blocks += 1;
                self.policy.index_mut().insert(r, rest, None);
            } else {
                b.next().set_prev_free(false);
            }
            // The payload moves from `p` to `b`'s: its bit moves, and it counts `b`'s size.
            self.live.take(p.addr().get());
            self.live.mark(b.payload().addr().get());
            self.live_bytes = self.live_bytes - (size - HEADER_BYTES) + (b.size() - HEADER_BYTES);
            self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
            self.grown(b);
            Some(b.payload())
        }
    }

    // ANCHOR: shrink_by_moving
    /// A shrinking realloc's first choice: a new block of `new` bytes (alignment `align`)
    /// where the policy places a fresh allocation of that size, taken from the free blocks
    /// only (no growth). The caller copies the contents and frees the old block, whose whole
    /// space then coalesces with its neighbours. `None` (nothing done) if the block would not
    /// shrink or no free block fits: then it shrinks in place.
    ///
    /// Placing a shrunk block by the policy, instead of leaving it where it was, is what
    /// keeps free space in few large blocks under a realloc-heavy load: see the loss
    /// breakdown of `examples/freelist_efficiency.rs`.
    ///
    /// # Safety
    /// `p` is a live payload of this heap allocated for `old > new` bytes with alignment
    /// `align`.
    pub unsafe fn shrink_by_moving(
        &mut self,
        p: NonNull<u8>,
        new: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        let need = block_need(new)?;
        // SAFETY: `p` is live (caller).
        if need >= unsafe { Block::from_payload(p).size() } {
            return None;
        }
        // SAFETY: the index holds only live free blocks; `f` is one into which the request
        // fits (the policy's contract), disjoint from the used block of `p`; the block carved
        // from it is a used block of a chunk, counted and marked once.
        unsafe {
            let f = self.policy.find(need, align).or_else(|| self.policy.find_rest(need, align))?;
            let (a, a_size, _) = self.carve(f, need, align);
            self.handed_live(a, a_size);
            Some(a.payload())
        }
    }
    // ANCHOR_END: shrink_by_moving
}
