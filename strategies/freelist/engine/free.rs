//! Freeing: the header prefetch before the lock, the detection of double and foreign frees,
//! and coalescing with free neighbours by their boundary tags (Knuth's method, TAOCP 2.5).

use core::ptr::NonNull;

use super::super::block::{Block, FLAGS, FREE, HEADER_BYTES};
use super::chunk::in_some_chunk;
use super::{Core, FreeIndex, Policy, RETAIN_FREE_BYTES};
use crate::source::PageSource;

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
    /// free chunk back to the source while more than `RETAIN_FREE_BYTES` are free. Returns
    /// `false`, and changes nothing, if the free is bad input it can see ([`Self::bad_free`]).
    ///
    /// # Safety
    /// `p` is a payload of this heap allocated for `size` bytes, live or freed before (a
    /// double free) but not handed out again since; `src` is its source.
    #[inline]
    pub unsafe fn dealloc<P: PageSource>(&mut self, src: &P, p: NonNull<u8>, size: usize) -> bool {
        // SAFETY: the caller passes a block of this heap.
        unsafe {
            let a = Block::from_payload(p);
            let header = a.header();
            if self.bad_free(a, header) {
                return false;
            }
            self.live_bytes -= size;
            let m = self.release_block::<true>(a, header & !FLAGS);
            // Apart from `live_bytes` (in another basic block), so that the compiler does
            // not pair the two updates in a vector register (four more instructions).
            self.live_objects -= 1;
            // The address test first: it is rarely true (a block at a chunk's start), while
            // the churn keeps more than `RETAIN_FREE_BYTES` free.
            if Self::may_be_whole_chunk::<P>(m) && self.free_bytes > RETAIN_FREE_BYTES {
                self.release_chunk(src, m);
            }
        }
        true
    }
    // ANCHOR_END: core_dealloc

    /// Whether freeing (or reallocating) block `a`, whose header word is `header`, is bad
    /// input this heap can see: the block is free already (a double free whose block was not
    /// handed out again: its header keeps the FREE bit, also when it was merged into the
    /// free block below, whose payload keeps the freed block's header word, marked FREE by
    /// `release_block`), or, in debug builds only (a walk of the chunk list), `a` lies in
    /// none of this heap's chunks (a foreign pointer). One predictable test on the header the
    /// free reads anyway.
    ///
    /// # Safety
    /// `header` was read from `a`, which is a block of this heap unless the pointer is
    /// foreign.
    #[inline]
    pub unsafe fn bad_free(&self, a: Block, header: usize) -> bool {
        // SAFETY: `self.chunks` is this heap's list of live chunks.
        header & FREE != 0 || (cfg!(debug_assertions) && !unsafe { in_some_chunk(self.chunks, a.addr()) })
    }

    /// [`Self::bad_free`] for the payload `p` of a realloc.
    ///
    /// # Safety
    /// As for `bad_free`: `p` is a payload of this heap, live or freed but not handed out
    /// again.
    pub unsafe fn bad_realloc(&self, p: NonNull<u8>) -> bool {
        // SAFETY: forwarded; the header lies just below the payload.
        unsafe {
            let a = Block::from_payload(p);
            self.bad_free(a, a.header())
        }
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
                    a.set_header(size | FREE); // stale inside `b`, for `bad_free`
                    b.write_free(b_size + size);
                    next.set_prev_free(true);
                    self.blocks -= counted;
                    self.policy.index_mut().resized(b, b_size, b_size + size);
                    b
                }
                (true, true) => {
                    let b = a.prev();
                    let (b_size, n_size) = (b.size(), next.size());
                    a.set_header(size | FREE); // stale inside `b`, for `bad_free`
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
