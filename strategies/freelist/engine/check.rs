//! The checker ([`Core::check`]): walks every chunk, block and the index, and verifies the
//! block format, the index and the totals. Tests call it after every operation.

use core::ptr;

use super::super::block::{
    BLOCK_ALIGN, Block, CHUNK_OVERHEAD_BYTES, ChunkHead, FLAGS, FREE, HEADER_BYTES, MARK_INDEX, MARK_WALK,
    MIN_BLOCK_BYTES, NODE_BYTES, PREV_FREE,
};
use super::chunk::in_some_chunk;
use super::fresh::Fresh;
use super::{Core, FreeIndex, Policy, RETAIN_FREE_BYTES, RETAIN_MAX_BYTES};
use crate::source::PageSource;
use crate::strategy::CheckError;

/// Builds a [`CheckError`].
fn broken(what: &'static str, addr: usize, detail: usize) -> Result<(), CheckError> {
    Err(CheckError { what, addr, detail })
}

/// Totals of one walk over every chunk.
#[derive(Default)]
struct Walk {
    chunks: usize,
    chunk_bytes: usize,
    free_blocks: usize,
    free_bytes: usize,
    used_blocks: usize,
    usable_bytes: usize,
}

impl<X: Policy> Core<X> {
    /// Walks every chunk and block and the index, checking every invariant of the block
    /// format, of the index and of the statistics.
    ///
    /// # Safety
    /// No other access to the heap during the call.
    pub unsafe fn check<P: PageSource>(&mut self) -> Result<(), CheckError> {
        let mut walk = Walk::default();
        // SAFETY: exclusive access (caller); only this heap's chunks are read.
        let r = unsafe { self.walk_chunks::<P>(&mut walk) }
            .and_then(|()| self.check_totals(&walk))
            // SAFETY: the walk found every chunk consistent, so marks can be set and read.
            .and_then(|()| unsafe { self.check_index(walk.free_blocks) })
            .and_then(|()| self.check_fresh());
        // SAFETY: exclusive access (caller). Marks are set only on headers of blocks the walk
        // found in consistent chunks, and this walks those chunks again; it runs whatever the
        // outcome, so no mark is left behind.
        unsafe { self.clear_marks() };
        r
    }

    /// Walks the chunk list and each chunk's blocks; marks free blocks with `MARK_WALK`.
    ///
    /// # Safety
    /// No other access to the heap during the call (as for [`Core::check`]).
    unsafe fn walk_chunks<P: PageSource>(&self, walk: &mut Walk) -> Result<(), CheckError> {
        let mut c = self.chunks;
        let mut prev: *mut ChunkHead = ptr::null_mut();
        while !c.is_null() {
            // SAFETY: `c` is reached through the list of live chunks.
            unsafe {
                if (*c).prev != prev {
                    return broken("chunk.prev != previous chunk in the list", c.addr(), 0);
                }
                if walk.chunks > self.chunk_count {
                    return broken("chunk list longer than chunk_count (cycle?)", c.addr(), walk.chunks);
                }
                self.walk_blocks::<P>(c, walk)?;
                prev = c;
                c = (*c).next;
            }
        }
        Ok(())
    }

    /// Walks the blocks of one chunk.
    ///
    /// # Safety
    /// No other access to the heap during the call (as for [`Core::check`]).
    unsafe fn walk_blocks<P: PageSource>(
        &self,
        c: *mut ChunkHead,
        walk: &mut Walk,
    ) -> Result<(), CheckError> {
        // SAFETY: `c` is a live chunk; every block read lies before its END sentinel, which
        // the loop checks before following a size.
        unsafe {
            let bytes = ChunkHead::bytes(c);
            if (*c).begin & FLAGS != 0 || !bytes.is_multiple_of(P::PAGE_BYTES) || bytes == 0 {
                return broken("BEGIN sentinel != chunk bytes (page multiple, no flags)", c.addr(), bytes);
            }
            let end = ChunkHead::end_sentinel(c);
            if let Some(a) = self.live.first_uncovered(c.addr(), c.addr() + bytes) {
                return broken("chunk byte outside the live-start map", a, bytes);
            }
            let mut b = ChunkHead::first(c);
            let mut prev_free = false;
            let mut sum = 0;
            while b.addr() < end.addr() {
                let (size, h) = (b.size(), b.header());
                if size < MIN_BLOCK_BYTES || !size.is_multiple_of(BLOCK_ALIGN) || b.addr() + size > end.addr()
                {
                    return broken("block size < MIN_BLOCK_BYTES, unaligned, or past END", b.addr(), size);
                }
                if (h & PREV_FREE != 0) != prev_free {
                    return broken("PREV_FREE != FREE of the block below", b.addr(), h);
                }
                if h & (MARK_WALK | MARK_INDEX) != 0 {
                    return broken("checker mark left set", b.addr(), h);
                }
                if h & FREE != 0 {
                    if prev_free {
                        return broken("two adjacent free blocks (missed coalescing)", b.addr(), size);
                    }
                    if b.footer() != size {
                        return broken("free block footer != header size", b.addr(), b.footer());
                    }
                    b.set_header(h | MARK_WALK);
                    walk.free_blocks += 1;
                    walk.free_bytes += size;
                } else {
                    if !self.live.is_set_walk(b.payload().addr().get()) {
                        return broken("used block without its live bit", b.addr(), h);
                    }
                    walk.used_blocks += 1;
                    walk.usable_bytes += size - HEADER_BYTES;
                }
                prev_free = h & FREE != 0;
                sum += size;
                b = Block::at(b.ptr().add(size));
            }
            if end.header() != if prev_free { PREV_FREE } else { 0 } {
                return broken("END sentinel != 0 | FREE of the last block", end.addr(), end.header());
            }
            if sum + CHUNK_OVERHEAD_BYTES != bytes {
                return broken("Σ block sizes + CHUNK_OVERHEAD_BYTES != chunk bytes", c.addr(), sum);
            }
            walk.chunks += 1;
            walk.chunk_bytes += bytes;
        }
        Ok(())
    }

    /// The counters against the walk's totals.
    fn check_totals(&self, w: &Walk) -> Result<(), CheckError> {
        let me = ptr::from_ref(self).addr();
        let equal = [
            (w.chunks, self.chunk_count, "chunk_count != #chunks"),
            (w.chunk_bytes, self.committed_bytes, "committed_bytes != Σ chunk bytes"),
            (w.free_blocks + w.used_blocks, self.blocks, "blocks != #used + #free blocks"),
            (w.free_bytes, self.free_bytes, "free_bytes != Σ free block sizes"),
            (w.used_blocks, self.live_objects, "live_objects != #used blocks"),
        ];
        for (walked, counted, what) in equal {
            if walked != counted {
                return broken(what, me, counted);
            }
        }
        if self.live_bytes != w.usable_bytes {
            return broken("live_bytes != Σ usable bytes of used blocks", me, self.live_bytes);
        }
        // Each used block's bit was seen set by the walk; as many bits as used blocks means
        // no other bit is set.
        let bits = self.live.count_set();
        if bits != w.used_blocks {
            return broken("live-start bits != #used blocks (a bit set off a used block)", me, bits);
        }
        if !(RETAIN_FREE_BYTES..=RETAIN_MAX_BYTES).contains(&self.retain_bytes) {
            return broken(
                "retain_bytes outside RETAIN_FREE_BYTES..=RETAIN_MAX_BYTES",
                me,
                self.retain_bytes,
            );
        }
        if self.peak_live_bytes < self.live_bytes {
            return broken("peak_live_bytes < live_bytes", me, self.peak_live_bytes);
        }
        Ok(())
    }

    /// Every indexed block is a walked free block, seen once; the index's own invariants.
    ///
    /// # Safety
    /// No other access to the heap during the call (as for [`Core::check`]).
    unsafe fn check_index(&self, free_blocks: usize) -> Result<(), CheckError> {
        let chunks = self.chunks;
        let mut visit = |b: Block| -> Result<(), CheckError> {
            // SAFETY: `chunks` is this heap's list of live chunks, which the walk checked.
            if !unsafe { in_some_chunk(chunks, b.addr()) } {
                return broken("index holds an address outside every chunk", b.addr(), 0);
            }
            // SAFETY: `b` lies in a live chunk; a header there was checked by the walk or is
            // a word of a block, readable either way.
            unsafe {
                let h = b.header();
                if h & (FREE | MARK_WALK) != FREE | MARK_WALK {
                    return broken("index holds a block the walk did not find free", b.addr(), h);
                }
                if h & MARK_INDEX != 0 {
                    return broken("block in the index twice", b.addr(), h);
                }
                b.set_header(h | MARK_INDEX);
            }
            Ok(())
        };
        // SAFETY: the index holds live free blocks (checked one by one by `visit`).
        let n = unsafe { self.policy.index().check(&mut visit) }?;
        if n != free_blocks {
            return broken("index length != #free blocks", ptr::from_ref(self).addr(), n);
        }
        Ok(())
    }

    /// The claim `carve` relies on: a free block starting at or above `fresh.lo` ends at
    /// `fresh.hi` and reads as zero but for its header, node and footer.
    fn check_fresh(&self) -> Result<(), CheckError> {
        let Fresh { lo, hi } = self.fresh;
        if lo >= hi {
            return Ok(());
        }
        let mut c = self.chunks;
        // SAFETY: live chunks of the list; blocks are walked up to the END sentinel (the walk
        // checked the tiling).
        unsafe {
            while !c.is_null() && ChunkHead::end_sentinel(c).addr() != hi {
                c = (*c).next;
            }
            if c.is_null() {
                return broken("fresh tail outside every chunk", lo, hi);
            }
            let mut b = ChunkHead::first(c);
            while b.addr() < lo {
                b = b.next();
            }
            if b.addr() >= hi {
                return Ok(());
            }
            if !b.is_free() || b.end() != hi {
                return broken("block above fresh.lo is used or does not end at fresh.hi", b.addr(), hi);
            }
            let mut w = b.addr() + HEADER_BYTES + NODE_BYTES;
            while w < hi - HEADER_BYTES {
                let word = b.ptr().with_addr(w).cast::<usize>().read();
                if word != 0 {
                    return broken("fresh free block not zero outside its metadata", w, word);
                }
                w += size_of::<usize>();
            }
        }
        Ok(())
    }

    /// Clears the checker's marks on every block.
    ///
    /// # Safety
    /// No other access to the heap during the call (as for [`Core::check`]).
    unsafe fn clear_marks(&self) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: live chunks; the walk stops at the END sentinel or a broken size.
            unsafe {
                let end = ChunkHead::end_sentinel(c).addr();
                let mut b = ChunkHead::first(c);
                while b.addr() < end {
                    b.set_header(b.header() & !(MARK_WALK | MARK_INDEX));
                    let size = b.size();
                    if size == 0 {
                        break;
                    }
                    b = Block::at(b.ptr().add(size));
                }
                c = (*c).next;
            }
        }
    }
}
