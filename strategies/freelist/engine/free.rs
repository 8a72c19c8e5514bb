//! Freeing: the header prefetch before the lock, the refusal of pointers that are not live
//! payloads (by the live-start map) and their classification, and coalescing with free neighbours by their boundary tags (Knuth's method, TAOCP 2.5).

use core::ptr::NonNull;

use super::super::block::{BLOCK_ALIGN, Block, ChunkHead, FLAGS, FREE, HEADER_BYTES};
use super::{Core, FreeIndex, Policy};
use crate::source::PageSource;
use crate::strategy::BadFree;

impl<X: Policy> Core<X> {
    // ANCHOR: prefetch_free
    /// Starts fetching the header a free of payload `p` reads first. Called before the lock
    /// is taken, so that this cache miss overlaps the lock's atomic instruction (which waits
    /// for earlier stores) instead of following it. A prefetch reads nothing and never
    /// faults.
    ///
    /// Only this header: prefetching the header above as well (where `layout.size()` says
    /// it usually is) measured no faster, and cost 6 instructions and a branch that the
    /// compiler would not turn into a select and that mispredicted on a third of the frees
    /// (whether a request is under 56 bytes, where the block size is clamped to
    /// `MIN_BLOCK_BYTES`).
    #[inline(always)]
    pub fn prefetch_free(p: NonNull<u8>) {
        prefetch(p.as_ptr().wrapping_sub(HEADER_BYTES));
    }
    // ANCHOR_END: prefetch_free

    // ANCHOR: core_dealloc
    /// Frees the block of payload `p`, coalescing with free neighbours, and hands a wholly
    /// free chunk back to the source while more than `retain_bytes` are free. Returns
    /// the block's usable size, or `None`, changing nothing, if `p` is not the payload of a
    /// used block of this heap (its bit in the live-start map is clear: a double, interior,
    /// foreign or stack pointer). The map is read before any memory `p` names, so any
    /// pointer is safe to pass.
    ///
    /// # Safety
    /// `src` is this heap's source; if `p` is a live payload of this heap, no one uses it
    /// after the call.
    #[inline]
    pub unsafe fn dealloc<P: PageSource>(&mut self, src: &P, p: NonNull<u8>) -> Option<usize> {
        if !self.live.take(p.addr().get()) {
            return None;
        }
        // SAFETY: the bit was set, so `p` is the payload of a used block of a chunk of this
        // heap (the map's invariant), whose header and neighbours are valid.
        unsafe {
            let a = Block::from_payload(p);
            let size = a.header() & !FLAGS;
            debug_assert!(size != 0 && !a.is_free(), "live bit set on free block {:p}", a.ptr());
            self.live_bytes -= size - HEADER_BYTES;
            let m = self.release_block::<true>(a, size);
            // Apart from `live_bytes` (in another basic block), so that the compiler does
            // not pair the two updates in a vector register (four more instructions).
            self.live_objects -= 1;
            // The address test first: it is rarely true (a block at a chunk's start), while
            // the churn keeps more than `retain_bytes` free.
            if Self::may_be_whole_chunk::<P>(m) && self.free_bytes > self.retain_bytes {
                self.released |= self.release_chunk(src, m);
            }
            Some(size - HEADER_BYTES)
        }
    }
    // ANCHOR_END: core_dealloc

    /// Whether `p` is the payload of a used block of this heap (its live bit): what a free or
    /// realloc must be given. Safe for any pointer: reads only the live-start map.
    #[inline]
    pub fn is_live(&mut self, p: *const u8) -> bool {
        self.live.is_set(p.addr())
    }

    /// Why `p`, which [`is_live`](Self::is_live) refused, is not a live payload: outside
    /// every chunk (`Foreign`); the payload of a free block, or the old payload of a block
    /// merged into a free one, whose header word is left marked FREE (`NotLive`); anywhere
    /// else in a chunk (`Interior`). Walks the chunk list and the blocks of `p`'s chunk,
    /// reading only headers and free blocks (never a used payload): for the error path.
    #[cold]
    pub fn classify(&self, p: *const u8) -> BadFree {
        let addr = p.addr();
        let mut c = self.chunks;
        // SAFETY: live chunks of the list; blocks tile each chunk up to its END sentinel (the
        // block-format invariant), so each header read is a block's; the word read inside a
        // free block lies in it, and free blocks hold only the heap's metadata.
        unsafe {
            while !c.is_null() && !(c.addr()..c.addr() + ChunkHead::bytes(c)).contains(&addr) {
                c = (*c).next;
            }
            if c.is_null() {
                return BadFree::Foreign;
            }
            let end = ChunkHead::end_sentinel(c).addr();
            let mut b = ChunkHead::first(c);
            while b.addr() < end && b.end() <= addr {
                b = b.next();
            }
            if b.addr() >= end || addr < b.addr() || !b.is_free() {
                return BadFree::Interior;
            }
            let aligned = addr.is_multiple_of(BLOCK_ALIGN);
            if addr == b.payload().addr().get()
                || (aligned && addr - HEADER_BYTES >= b.payload().addr().get() && {
                    let word = b.ptr().with_addr(addr - HEADER_BYTES).cast::<usize>().read();
                    word & FREE != 0
                })
            {
                return BadFree::NotLive;
            }
        }
        BadFree::Interior
    }

    // ANCHOR: release_block
    /// Makes `a..a + size` free, coalescing; returns the resulting free block. `USED`: it
    /// is a used block that was counted in `blocks` (a free: the common case, where a block
    /// with no free neighbour leaves `blocks` as it is); otherwise new space or a used
    /// block's tail, not counted yet.
    ///
    /// # Safety
    /// `a..a + size` lies in a chunk, is not in any block in use, and starts a block whose
    /// header says whether the block below is free.
    #[inline]
    pub(super) unsafe fn release_block<const USED: bool>(&mut self, a: Block, size: usize) -> Block {
        let counted = USED as usize;
        // SAFETY: `a`'s neighbours are valid blocks (or sentinels) of the same chunk; no write
        // lands in the node of an indexed block (only headers and footers change).
        unsafe {
            let next = Block::at(a.ptr().add(size));
            let prev_free = a.prev_is_free();
            self.free_bytes += size;
            match (prev_free, next.is_free()) {
                (false, false) => {
                    a.write_free(size);
                    next.set_prev_free(true);
                    self.blocks += 1 - counted;
                    self.policy.index_mut().insert(a, size, None);
                    a
                }
                (false, true) => {
                    let n_size = next.size();
                    a.write_free(size + n_size);
                    self.blocks -= counted;
                    self.policy.index_mut().replace(next, n_size, a, size + n_size);
                    a
                }
                (true, false) => {
                    let b = a.prev();
                    let b_size = b.size();
                    a.set_header(size | FREE); // stale inside `b`, for `classify`
                    b.write_free(b_size + size);
                    next.set_prev_free(true);
                    self.blocks -= counted;
                    self.policy.index_mut().resized(b, b_size, b_size + size);
                    b
                }
                (true, true) => {
                    let b = a.prev();
                    let (b_size, n_size) = (b.size(), next.size());
                    a.set_header(size | FREE); // stale inside `b`, for `classify`
                    self.policy.index_mut().remove(next, n_size);
                    self.blocks -= 1 + counted;
                    b.write_free(b_size + size + n_size);
                    self.policy.index_mut().resized(b, b_size, b_size + size + n_size);
                    b
                }
            }
        }
    }
    // ANCHOR_END: release_block
}

/// Hints the CPU to fetch the cache line of `p` (no effect on results; never faults).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it neither faults nor changes memory, whatever `p`.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
