//! The split/coalesce core shared by every free-list policy: chunks, carving, freeing,
//! realloc in place, growth and hand-back, statistics and the checker.
//!
//! See [`super`] for the overview. A policy ([`Policy`]) is consulted only to *choose* a
//! free block and to keep its index up to date; everything that touches block memory is here.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use super::block::{
    BLOCK_ALIGN, Block, CHUNK_OVERHEAD_BYTES, ChunkHead, FIRST_BLOCK_OFFSET, FLAGS, FREE, HEADER_BYTES,
    MARK_INDEX, MARK_WALK, MIN_BLOCK_BYTES, NODE_BYTES, PREV_FREE, block_need, layout_need,
};
use crate::source::{PageSource, align_up};
use crate::strategy::{CheckError, StrategyStats};

/// Smallest chunk the heap asks its source for (a request that needs more gets its own size).
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// Largest chunk that growth may make by extending an adjacent chunk, for sources that give
/// memory back (smaller chunks can be handed back sooner); unbounded otherwise.
pub(super) const MERGE_MAX_BYTES: usize = 64 << 20;
/// Free memory kept cached: a chunk that becomes wholly free is handed back to the source
/// (`free`, Go's sysFree) only while the heap's free bytes exceed this.
pub(super) const RETAIN_FREE_BYTES: usize = 1024 * 1024;

/// The set of free blocks, kept in step with the core's changes, in an order a policy can
/// search.
///
/// Every method is told the sizes of the blocks it names and must not read their headers
/// (the core may have rewritten them); it may read the headers of the other indexed blocks,
/// which are unchanged. The node memory (`NODE_BYTES` after the header) of every indexed
/// block is intact when a method is called, and a method writes only node memory.
///
/// # Safety
/// *Implementors must guarantee* that the index holds exactly the blocks the core inserted
/// and did not remove, that searches return only indexed blocks, and that node memory of
/// indexed blocks is the only memory written.
pub unsafe trait FreeIndex: Send {
    /// An empty index (no work).
    const EMPTY: Self;

    /// `b` (of `size` bytes) became free; `hint`, if given, is the indexed block just below
    /// `b` in address order.
    ///
    /// # Safety
    /// `b` is a free block not in the index.
    unsafe fn insert(&mut self, b: Block, size: usize, hint: Option<Block>);

    /// `b` (indexed with `size` bytes) leaves the index.
    ///
    /// # Safety
    /// `b` is in the index with `size`.
    unsafe fn remove(&mut self, b: Block, size: usize);

    /// `new` (of `new_size` bytes) takes the place of `old` (indexed with `old_size`); no
    /// other indexed block lies between them in address order. `new`'s node may overlap
    /// `old`'s: read the old node before writing the new one.
    ///
    /// # Safety
    /// `old` is in the index, `new` is a free block not in it.
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize);

    /// `b` stays at its address, its size changed from `old_size` to `new_size`.
    ///
    /// # Safety
    /// `b` is in the index with `old_size`.
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize);

    /// Calls `visit` once per indexed block and checks the index's own invariants (ordering,
    /// links, balance); returns the number of blocks.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError>;
}

/// A placement policy of a [`FreeList`](super::FreeList): which free block a request takes
/// ([`First`](super::First), [`Next`](super::Next), [`Best`](super::Best) or
/// [`Segregated`](super::Segregated), over an index).
///
/// Sealed: implemented by those policies only. What a policy does is the free lists' own
/// business (the private trait it extends, whose methods choose blocks in heap memory); the
/// trait is public so that code can be generic over `FreeList<X>`.
pub trait Placement: Policy {}

impl<X: Policy> Placement for X {}

/// What a placement policy does: which free block a request takes. Owns its index. Public
/// only in name (declared in a private module, so no code outside the crate can name it,
/// implement it or call its methods), as the supertrait of [`Placement`].
///
/// # Safety
/// *Implementors must guarantee* that [`find`](Self::find) and
/// [`find_rest`](Self::find_rest) return only a block now in the index for which
/// [`fit_start`] returns `Some`.
pub unsafe trait Policy: Send {
    /// The index of free blocks.
    type Index: FreeIndex;
    /// An empty policy (no work).
    const EMPTY: Self;
    /// The strategy's name, as the runtime choice parses it.
    const NAME: &'static str;

    /// The index.
    fn index(&self) -> &Self::Index;
    /// The index, to change.
    fn index_mut(&mut self) -> &mut Self::Index;

    /// Chooses a free block with room for a block of `need` bytes aligned for `align`, in
    /// the common case: the policy's choice is `find(..).or_else(|| find_rest(..))`. It is
    /// inlined in the allocation path; [`find_rest`](Self::find_rest) is called out of line.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block>;

    /// The rest of the search, called only when [`find`](Self::find) returned `None` (for
    /// a policy whose `find` decides every request: `None`, the default). Kept out of the
    /// allocation path so that the registers a longer search needs are not saved on every
    /// request.
    ///
    /// # Safety
    /// As for [`find`](Self::find), which has just returned `None` for the same request.
    #[inline]
    unsafe fn find_rest(&mut self, need: usize, align: usize) -> Option<Block> {
        let _ = (need, align);
        None
    }

    /// A block ending at `end` was handed out (next fit moves its rover there).
    #[inline]
    fn handed_out(&mut self, end: usize) {
        let _ = end;
    }
}

// ANCHOR: fit_start
/// Where a block of `need` bytes aligned for `align` would start inside free block `b`, or
/// `None` if it does not fit. A non-empty gap below it must be able to stay a free block.
///
/// # Safety
/// `b` is a live block.
#[inline]
pub(super) unsafe fn fit_start(b: Block, need: usize, align: usize) -> Option<usize> {
    // SAFETY: the caller passes a live block.
    let (start, end) = (b.addr(), unsafe { b.end() });
    let q = if align <= BLOCK_ALIGN { start } else { aligned_start(start, align)? };
    (q.checked_add(need)? <= end).then_some(q)
}
// ANCHOR_END: fit_start

/// Start of the first block at or above `start` whose payload is `align`-aligned and whose
/// gap below is empty or can hold a free block.
#[cold]
fn aligned_start(start: usize, align: usize) -> Option<usize> {
    let mut p = align_up(start + HEADER_BYTES, align)?;
    if p - HEADER_BYTES != start && p - HEADER_BYTES - start < MIN_BLOCK_BYTES {
        p = align_up(start + HEADER_BYTES + MIN_BLOCK_BYTES, align)?;
    }
    Some(p - HEADER_BYTES)
}

/// The never-handed-out tail `lo..hi` of the newest chunk of a zeroing source.
///
/// Invariant: every word in `lo..hi` is zero except the header, index node and footer of the
/// free block that starts at or above `lo` (there is at most one, ending at `hi`, since
/// blocks above `lo` were never handed out and free blocks coalesce), and the footer of the
/// block containing `lo`. Empty (`lo == hi`) when unknown.
#[derive(Copy, Clone)]
struct Fresh {
    lo: usize,
    hi: usize,
}

/// The heap state behind the lock.
///
/// Invariants (checked by [`Core::check`]):
/// - `committed_bytes == reserved_bytes == Σ chunk bytes`, `chunk_count == #chunks`;
/// - `free_bytes == Σ size(free blocks)`;
/// - `live_objects == #used blocks`; `blocks == #used blocks + #free blocks`, so
///   `blocks - live_objects == #free blocks == index.len()`;
/// - `live_bytes <= Σ (size - HEADER_BYTES)` over used blocks; `peak_live_bytes >= live_bytes`.
///
/// `blocks` counts all blocks rather than free ones so that the common operations leave it
/// alone: a request that takes a whole free block, and a free that coalesces with neither
/// neighbour, change only `live_objects` (one counter update less on each).
pub struct Core<X> {
    pub(super) policy: X,
    chunks: *mut ChunkHead,
    chunk_count: usize,
    committed_bytes: usize,
    free_bytes: usize,
    blocks: usize,
    live_bytes: usize,
    live_objects: usize,
    peak_live_bytes: usize,
    fresh: Fresh,
}

// SAFETY: the raw pointers name chunks that this core alone owns (taken from the page source
// for it; blocks handed out are the users', and the core never touches their payloads);
// nothing is tied to a thread, so moving the core moves that ownership with it. The policy
// `X` is `Send` itself.
unsafe impl<X: Send> Send for Core<X> {}

impl<X: Policy> Core<X> {
    /// An empty heap.
    pub const EMPTY: Self = Core {
        policy: X::EMPTY,
        chunks: ptr::null_mut(),
        chunk_count: 0,
        committed_bytes: 0,
        free_bytes: 0,
        blocks: 0,
        live_bytes: 0,
        live_objects: 0,
        peak_live_bytes: 0,
        fresh: Fresh { lo: 0, hi: 0 },
    };

    /// Free blocks and free bytes now.
    pub fn free_totals(&self) -> (usize, usize) {
        (self.free_blocks(), self.free_bytes)
    }

    /// Free blocks now (derived: see the invariants on [`Core`]).
    fn free_blocks(&self) -> usize {
        self.blocks - self.live_objects
    }

    /// Free blocks now (tests).
    #[cfg(test)]
    pub fn free_blocks_for_test(&self) -> usize {
        self.free_blocks()
    }

    /// Chunks now (tests).
    #[cfg(test)]
    pub fn chunks_for_test(&self) -> usize {
        self.chunk_count
    }

    /// Free bytes now (tests).
    #[cfg(test)]
    pub fn free_bytes_for_test(&self) -> usize {
        self.free_bytes
    }

    /// Calls `visit` for every block of every chunk (diagnostics; see `FreeList::walk`).
    pub fn walk(&self, visit: &mut dyn FnMut(super::BlockInfo)) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: `c` is a live chunk of the list, and blocks tile it up to its END
            // sentinel (the block-format invariant), so every header read is a block's.
            unsafe {
                let (chunk, chunk_bytes) = (c.addr(), ChunkHead::bytes(c));
                let end = ChunkHead::end_sentinel(c).addr();
                let mut b = ChunkHead::first(c);
                while b.addr() < end {
                    let (addr, bytes, free) = (b.addr(), b.size(), b.is_free());
                    visit(super::BlockInfo { addr, bytes, free, chunk, chunk_bytes });
                    b = b.next();
                }
                c = (*c).next;
            }
        }
    }

    /// Statistics.
    pub fn stats(&self) -> StrategyStats {
        StrategyStats {
            live_bytes: self.live_bytes,
            live_objects: self.live_objects,
            peak_live_bytes: self.peak_live_bytes,
            committed_bytes: self.committed_bytes,
            reserved_bytes: self.committed_bytes,
        }
    }

    // ---------------------------------------------------------------- allocation

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
        // Counted first: nothing is live across `carve`'s cold calls but `f` and `self`.
        self.count_alloc(layout.size());
        // SAFETY: forwarded.
        let (a, zero) = unsafe { self.carve(f, need, layout.align()) };
        (a.payload(), zero)
    }
    // ANCHOR_END: core_alloc

    #[inline]
    fn count_alloc(&mut self, bytes: usize) {
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
    /// index. Returns the used block and whether its payload is zero.
    ///
    /// # Safety
    /// `f` is an indexed free block and `fit_start(f, need, align)` is `Some`.
    #[inline]
    unsafe fn carve(&mut self, f: Block, need: usize, align: usize) -> (Block, bool) {
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
            (f, zero)
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
    unsafe fn carve_gap(&mut self, f: Block, f_size: usize, q: usize, need: usize) -> (Block, bool) {
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
            (a, zero)
        }
    }

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
    unsafe fn handed_out(&mut self, f: Block, f_size: usize, a: Block, a_size: usize) -> bool {
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
    unsafe fn grown(&mut self, a: Block) {
        // SAFETY: forwarded.
        let end = unsafe { a.end() };
        if end > self.fresh.lo && a.addr() < self.fresh.hi {
            self.fresh.lo = end.min(self.fresh.hi);
        }
        self.policy.handed_out(end);
    }

    // ANCHOR: grow
    /// Gets memory from the source with room for the request: extends an adjacent chunk
    /// when the source hands out the neighbouring range, or lays out a new chunk.
    #[cold]
    fn grow<P: PageSource>(&mut self, src: &P, need: usize, align: usize) -> Option<Block> {
        let pad = if align > BLOCK_ALIGN { align + MIN_BLOCK_BYTES } else { 0 };
        let min = need.checked_add(pad)?.checked_add(CHUNK_OVERHEAD_BYTES)?;
        let min = align_up(min, P::PAGE_BYTES.max(BLOCK_ALIGN))?;
        // Growth stays small (the heap's footprint overshoots by at most one chunk): chunks
        // are few anyway, since a chunk the source places next to another joins it.
        let want = align_up(CHUNK_BYTES, P::PAGE_BYTES)?;
        let (base, bytes) = match src.alloc_ready(min.max(want), P::PAGE_BYTES) {
            Ok(b) => (b, min.max(want)),
            Err(_) if min < want => (src.alloc_ready(min, P::PAGE_BYTES).ok()?, min),
            Err(_) => return None,
        };
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

    // ---------------------------------------------------------------- free

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
    unsafe fn release_block<const USED: bool>(&mut self, a: Block, size: usize) -> Block {
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

    /// A cheap filter: free block `m` ends at an END sentinel (the only header of size 0)
    /// and starts where a chunk's first block would (one page-aligned offset).
    ///
    /// # Safety
    /// `m` is a live free block.
    #[inline]
    unsafe fn may_be_whole_chunk<P: PageSource>(m: Block) -> bool {
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
    unsafe fn release_chunk<P: PageSource>(&mut self, src: &P, m: Block) -> bool {
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

    /// Hands every wholly free chunk back to the source; returns the bytes given back.
    ///
    /// # Safety
    /// `src` is this heap's source.
    pub unsafe fn trim<P: PageSource>(&mut self, src: &P) -> usize {
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
        given
    }

    // ---------------------------------------------------------------- realloc

    /// Resizes in place if the block can (shrink, or grow into a free block above); returns
    /// `true` if it did.
    ///
    /// # Safety
    /// `p` is a live payload of this heap allocated for `old` bytes.
    pub unsafe fn resize_in_place(&mut self, p: NonNull<u8>, old: usize, new: usize) -> bool {
        let Some(need) = block_need(new) else { return false };
        // SAFETY: `p` is live (caller); its neighbours are valid blocks of its chunk.
        unsafe {
            let a = Block::from_payload(p);
            let size = a.size();
            let ok =
                if need <= size { self.shrink(a, size, need) } else { self.grow_into_next(a, size, need) };
            if ok {
                self.live_bytes = self.live_bytes - old + new;
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
        // are written after the copy.
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
            self.live_bytes = self.live_bytes - old + new;
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
        // fits (the policy's contract), disjoint from the used block of `p`.
        let a = unsafe {
            let f = self.policy.find(need, align).or_else(|| self.policy.find_rest(need, align))?;
            self.carve(f, need, align).0
        };
        self.count_alloc(new);
        Some(a.payload())
    }
    // ANCHOR_END: shrink_by_moving

    /// Usable bytes of a live payload.
    ///
    /// # Safety
    /// `p` is a live payload of this heap.
    pub unsafe fn usable(p: NonNull<u8>) -> usize {
        // SAFETY: forwarded.
        unsafe { Block::from_payload(p).size() - HEADER_BYTES }
    }
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

// -------------------------------------------------------------------- checker

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
        if self.live_bytes > w.usable_bytes {
            return broken("live_bytes > Σ usable bytes of used blocks", me, self.live_bytes);
        }
        if self.peak_live_bytes < self.live_bytes {
            return broken("peak_live_bytes < live_bytes", me, self.peak_live_bytes);
        }
        Ok(())
    }

    /// Every indexed block is a walked free block, seen once; the index's own invariants.
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

/// Whether `addr` lies inside one of the chunks of the list starting at `c`.
///
/// # Safety
/// `c` is null or the first of a list of live chunks.
unsafe fn in_some_chunk(mut c: *mut ChunkHead, addr: usize) -> bool {
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
