//! Chunks: growth from the page source (a new chunk, or an adjacent chunk extended) and the
//! hand-back of wholly free chunks (Go's sysReserve/sysMap/sysUsed on growth, sysFree on
//! hand-back).

use core::ptr::{self, NonNull};

use super::super::block::{
    BLOCK_ALIGN, Block, CHUNK_OVERHEAD_BYTES, ChunkHead, FIRST_BLOCK_OFFSET, HEADER_BYTES, MIN_BLOCK_BYTES,
    PREV_FREE,
};
use super::fresh::Fresh;
use super::{
    CHUNK_BYTES, Core, FreeIndex, MERGE_MAX_BYTES, Policy, RETAIN_FREE_BYTES, RETAIN_MAX_BYTES, fit_start,
};
use crate::source::{PageSource, align_up};

impl<X: Policy> Core<X> {
    // ANCHOR: grow
    /// Gets memory from the source with room for the request: extends an adjacent chunk
    /// when the source hands out the neighbouring range, or lays out a new chunk.
    #[cold]
    pub(super) fn grow<P: PageSource>(&mut self, src: &P, need: usize, align: usize) -> Option<Block> {
        let pad = if align > BLOCK_ALIGN { align + MIN_BLOCK_BYTES } else { 0 };
        let min = need.checked_add(pad)?.checked_add(CHUNK_OVERHEAD_BYTES)?;
        let min = align_up(min, P::PAGE_BYTES.max(BLOCK_ALIGN))?;
        // Growth stays small (the heap's footprint overshoots by at most one chunk): chunks
        // are few anyway, since a chunk the source places next to another joins it.
        let want = align_up(CHUNK_BYTES, P::PAGE_BYTES)?;
        // The live-start map's first pool comes before the first chunk, so that a source
        // handing out neighbouring ranges puts later chunks next to it.
        if !self.live.prepare(src) {
            return None;
        }
        let (base, bytes) = match src.alloc_ready(min.max(want), P::PAGE_BYTES) {
            Ok(b) => (b, min.max(want)),
            Err(_) if min < want => (src.alloc_ready(min, P::PAGE_BYTES).ok()?, min),
            Err(_) => return None,
        };
        if !self.live.cover(src, base.addr().get(), base.addr().get() + bytes) {
            // No map for it: no block may be handed out there. Back to the source, untouched.
            // SAFETY: the range was just taken from `src` and nothing has used it.
            let _ = unsafe { src.free(base, bytes) };
            return None;
        }
        if self.released {
            // Growth right after a chunk went back: keep what is free now, and the new chunk,
            // next time (see `retain_bytes`).
            let held = self.free_bytes.saturating_add(bytes);
            self.retain_bytes = self.retain_bytes.max(held).min(RETAIN_MAX_BYTES);
            self.released = false;
        }
        let base = base.as_ptr();
        // SAFETY: the source just gave `bytes` Ready bytes at `base`, owned by nobody else.
        let f = unsafe {
            match self.extend_chunk::<P>(base, bytes) {
                Some(f) => f,
                None => self.new_chunk::<P>(base.cast(), bytes),
            }
        };
        // SAFETY: `f` is an indexed free block of the chunk just grown.
        unsafe { fit_start(f, need, align) }.map(|_| f)
    }

    /// Lays out a new chunk and makes its tail fresh if the source zeroes.
    ///
    /// # Safety
    /// As for [`add_chunk`](Self::add_chunk).
    unsafe fn new_chunk<P: PageSource>(&mut self, base: *mut ChunkHead, bytes: usize) -> Block {
        // SAFETY: forwarded.
        let f = unsafe { self.add_chunk(base, bytes) };
        if P::FRESH_ZEROED {
            // SAFETY: the chunk was just laid out.
            let end = unsafe { ChunkHead::end_sentinel(base) };
            self.fresh = Fresh { lo: f.addr(), hi: end.addr() };
        }
        f
    }

    /// If `base..base + bytes` touches a chunk (just above or just below it), makes it part
    /// of that chunk as a free block, coalesced; returns the free block.
    ///
    /// # Safety
    /// `base..base + bytes` is fresh Ready memory from this heap's source, owned by nobody.
    unsafe fn extend_chunk<P: PageSource>(&mut self, base: *mut u8, bytes: usize) -> Option<Block> {
        let limit = if P::RELEASES_MEMORY { MERGE_MAX_BYTES } else { usize::MAX };
        let (lo, hi) = (base.addr(), base.addr() + bytes);
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: `c` is a live chunk of the list.
            let (c_lo, c_bytes, next) = unsafe { (c.addr(), ChunkHead::bytes(c), (*c).next) };
            if c_bytes.saturating_add(bytes) <= limit {
                if c_lo + c_bytes == lo {
                    // SAFETY: the new range starts where chunk `c` ends.
                    return Some(unsafe { self.extend_up::<P>(c, bytes) });
                }
                if hi == c_lo {
                    // SAFETY: the new range ends where chunk `c` starts.
                    return Some(unsafe { self.extend_down(c, base.cast(), bytes) });
                }
            }
            c = next;
        }
        None
    }

    /// Chunk `c` grows by `bytes` at its top: the old END sentinel becomes the header of a
    /// free block of `bytes` bytes, then freed like any block (coalescing below).
    ///
    /// # Safety
    /// `c` is a live chunk and the `bytes` above it are fresh memory of this heap.
    unsafe fn extend_up<P: PageSource>(&mut self, c: *mut ChunkHead, bytes: usize) -> Block {
        // SAFETY: the old END sentinel and everything above it up to the new end are ours.
        unsafe {
            let old_end = ChunkHead::end_sentinel(c);
            let last_free = old_end.prev_is_free();
            (*c).begin += bytes;
            self.committed_bytes += bytes;
            let new_end = ChunkHead::end_sentinel(c);
            new_end.set_header(0);
            old_end.set_header(bytes | if last_free { PREV_FREE } else { 0 });
            let m = self.release_block::<false>(old_end, bytes);
            if P::FRESH_ZEROED {
                // No block starts at or above `lo` when the new space joined the old last
                // block: then nothing is claimed until a block is cut above it.
                let lo = if m == old_end { m.addr() } else { old_end.addr() + HEADER_BYTES };
                self.fresh = Fresh { lo, hi: new_end.addr() };
            } else if self.fresh.hi == old_end.addr() {
                self.fresh = Fresh { lo: 0, hi: 0 };
            }
            m
        }
    }

    /// Chunk `c` grows by `bytes` at its bottom: its head moves down to `base`, and the
    /// space from the new first block to the old one becomes a free block, coalesced above.
    ///
    /// # Safety
    /// `c` is a live chunk and `base..c` (`bytes` long) is fresh memory of this heap.
    unsafe fn extend_down(&mut self, c: *mut ChunkHead, base: *mut ChunkHead, bytes: usize) -> Block {
        // SAFETY: `base..c` is ours; the old head becomes the inside of the new free block,
        // after its links are moved to the new head.
        unsafe {
            let ChunkHead { prev, next, begin } = c.read();
            base.write(ChunkHead { prev, next, begin: begin + bytes });
            if prev.is_null() {
                self.chunks = base;
            } else {
                (*prev).next = base;
            }
            if !next.is_null() {
                (*next).prev = base;
            }
            self.committed_bytes += bytes;
            let b = ChunkHead::first(base);
            b.set_header(bytes);
            self.release_block::<false>(b, bytes)
        }
    }
    // ANCHOR_END: grow

    /// Lays out a chunk (links, sentinels, one free block), links it first and indexes the
    /// block.
    ///
    /// # Safety
    /// `base..base + bytes` is Ready memory owned by this heap alone; `bytes` is a multiple
    /// of the page size and at least `CHUNK_OVERHEAD_BYTES + MIN_BLOCK_BYTES`.
    unsafe fn add_chunk(&mut self, base: *mut ChunkHead, bytes: usize) -> Block {
        let size = bytes - CHUNK_OVERHEAD_BYTES;
        // SAFETY: every write lies inside the new chunk.
        unsafe {
            base.write(ChunkHead { prev: ptr::null_mut(), next: self.chunks, begin: bytes });
            if !self.chunks.is_null() {
                (*self.chunks).prev = base;
            }
            self.chunks = base;
            ChunkHead::end_sentinel(base).set_header(PREV_FREE);
            let f = ChunkHead::first(base);
            f.write_free(size);
            self.chunk_count += 1;
            self.committed_bytes += bytes;
            self.free_bytes += size;
            self.blocks += 1;
            self.policy.index_mut().insert(f, size, None);
            f
        }
    }

    /// A cheap filter: free block `m` ends at an END sentinel (the only header of size 0)
    /// and starts where a chunk's first block would (one page-aligned offset).
    ///
    /// # Safety
    /// `m` is a live free block.
    #[inline]
    pub(super) unsafe fn may_be_whole_chunk<P: PageSource>(m: Block) -> bool {
        // The address test first: it needs no memory access.
        // SAFETY: the block above a live block is a block or the END sentinel.
        (m.addr() - FIRST_BLOCK_OFFSET).is_multiple_of(P::PAGE_BYTES) && unsafe { m.next().size() == 0 }
    }

    /// If free block `m` spans its whole chunk, hands the chunk back to the source (Go's
    /// sysFree); returns whether it did.
    ///
    /// # Safety
    /// `m` is an indexed free block of this heap; `src` is its source.
    #[cold]
    pub(super) unsafe fn release_chunk<P: PageSource>(&mut self, src: &P, m: Block) -> bool {
        let chunk = m.ptr().wrapping_sub(FIRST_BLOCK_OFFSET).cast::<ChunkHead>();
        // Only a chunk of the list may be read as one: the word below a block that is not
        // first is user data.
        if !self.is_chunk_head(chunk) {
            return false;
        }
        // SAFETY: `chunk` is a live chunk of this heap and `m` its first block.
        unsafe {
            let (size, bytes) = (m.size(), ChunkHead::bytes(chunk));
            if bytes != size + CHUNK_OVERHEAD_BYTES {
                return false;
            }
            self.policy.index_mut().remove(m, size);
            self.blocks -= 1;
            self.free_bytes -= size;
            self.unlink_chunk(chunk);
            if src.free(NonNull::new_unchecked(chunk.cast()), bytes).is_err() {
                // The source refused it back: keep the chunk, laid out afresh.
                self.add_chunk(chunk, bytes);
                return false;
            }
        }
        true
    }

    /// Whether `head` is one of this heap's chunks (walks the chunk list: chunks are few).
    fn is_chunk_head(&self, head: *mut ChunkHead) -> bool {
        let mut c = self.chunks;
        while !c.is_null() {
            if c == head {
                return true;
            }
            // SAFETY: `c` is a live chunk of the list.
            c = unsafe { (*c).next };
        }
        false
    }

    /// Removes a chunk from the list and the totals.
    ///
    /// # Safety
    /// `chunk` is in the list.
    unsafe fn unlink_chunk(&mut self, chunk: *mut ChunkHead) {
        // SAFETY: `chunk` and its neighbours are live chunks of the list.
        unsafe {
            let (prev, next) = ((*chunk).prev, (*chunk).next);
            if prev.is_null() {
                self.chunks = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            let bytes = ChunkHead::bytes(chunk);
            self.chunk_count -= 1;
            self.committed_bytes -= bytes;
            let base = chunk.addr();
            if self.fresh.hi > base && self.fresh.hi < base + bytes {
                self.fresh = Fresh { lo: 0, hi: 0 };
            }
        }
    }

    /// Hands every wholly free chunk back to the source, and the live-start map when no chunk
    /// is left; returns the bytes given back.
    ///
    /// # Safety
    /// `src` is this heap's source.
    pub unsafe fn trim<P: PageSource>(&mut self, src: &P) -> usize {
        // Asked to give memory back: the free memory kept cached starts afresh.
        (self.retain_bytes, self.released) = (RETAIN_FREE_BYTES, false);
        let mut given = 0;
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: `c` is a live chunk; its first block is valid; the next link is read
            // before the chunk may be given back.
            unsafe {
                let next = (*c).next;
                let first = ChunkHead::first(c);
                let bytes = ChunkHead::bytes(c);
                if first.is_free()
                    && first.size() + CHUNK_OVERHEAD_BYTES == bytes
                    && self.release_chunk(src, first)
                {
                    given += bytes;
                }
                c = next;
            }
        }
        if self.chunks.is_null() {
            // No chunk left: the live-start map covers nothing still held, so it goes too.
            given += self.live.bytes;
            // SAFETY: the map's pools came from `src`; no chunk, so no bit is used.
            unsafe { self.live.release(src) };
        }
        given
    }

    /// Gives every chunk and the live-start map back to the source, live blocks included,
    /// and empties the heap (what a dropped heap does).
    ///
    /// # Safety
    /// `src` is this heap's source; no block of this heap is used after the call.
    pub unsafe fn release_all<P: PageSource>(&mut self, src: &P) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: `c` is a live chunk of the list (from `src`); the next link is read
            // before the chunk goes back.
            unsafe {
                let (next, bytes) = ((*c).next, ChunkHead::bytes(c));
                // A source that refuses a range back keeps it: nothing else can be done.
                let _ = src.free(NonNull::new_unchecked(c.cast()), bytes);
                c = next;
            }
        }
        // SAFETY: the pools came from `src`; the chunks they described are gone.
        unsafe { self.live.release(src) };
        *self = Core::EMPTY;
    }
}

/// Whether `addr` lies inside one of the chunks of the list starting at `c`.
///
/// # Safety
/// `c` is null or the first of a list of live chunks.
pub(super) unsafe fn in_some_chunk(mut c: *mut ChunkHead, addr: usize) -> bool {
    while !c.is_null() {
        // SAFETY: `c` is a live chunk of the list (caller).
        let bytes = unsafe { ChunkHead::bytes(c) };
        if (c.addr()..c.addr() + bytes).contains(&addr) && addr.is_multiple_of(size_of::<usize>()) {
            return true;
        }
        // SAFETY: `c` is a live chunk of the list (caller), whose head holds the next link.
        c = unsafe { (*c).next };
    }
    false
}
