//! `Bump`: the smallest complete strategy, the worked example of the book's chapter "Writing
//! your own strategy" (`book/src/own-strategy.md`, which includes this file by anchor).
//!
//! # Design
//! Glossary:
//! - *chunk*: a run of pages taken from the page source with `alloc_ready`; its first bytes
//!   hold a [`ChunkHeader`] linking it to the chunk before it, then the chunk's *start map*.
//! - *granule*: 8 bytes. Every block starts on a granule and is preceded by a one-granule
//!   *size word* holding its usable size.
//! - *start map*: one bit per granule of the chunk, set while a live block starts there. It is
//!   what lets the strategy recognise its blocks from their address alone (`block_of`, `free`
//!   without a layout): a pointer is a block only if its bit is set, so a double free, an
//!   interior pointer or a foreign one is refused without trusting any byte the program could
//!   have written.
//! - *cursor*: the address of the first free byte of the current (newest) chunk.
//!
//! Allocation path:
//! 1. lock the state;
//! 2. round the cursor (plus the size word) up to the alignment; if the block then ends
//!    before the chunk does, write its size word, set its start bit, move the cursor past it
//!    and return it (the fast path);
//! 3. otherwise take a new chunk big enough for the block from the source and bump there.
//!
//! Free path: find the chunk that holds the address (a walk of the chain: a real strategy
//! indexes its chunks, as the free lists do), check and clear the start bit, count. When the
//! last live block is freed, the cursor goes back to the start of the current chunk, and
//! [`trim`](Strategy::trim) may give the older chunks back. `release_all` gives every chunk
//! back.
//!
//! Invariants (checked by [`Strategy::check`]):
//! - `chunk == null` or `data(chunk) <= cursor <= end == chunk + chunk.bytes`;
//! - `committed_bytes == sum of chunk.bytes over the chain`;
//! - the start bits set over all chunks number `live_objects`, and the size words of their
//!   blocks sum to `live_bytes`; `live_bytes <= peak_live_bytes`.

use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use stratalloc::source::align_up;
use stratalloc::sync::SpinLock;
use stratalloc::{BadFree, BlockInfo, CheckError, ConstInit, PageSource, Strategy, StrategyStats};

/// Smallest chunk asked from the source.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Bytes of a granule: block starts and sizes are multiples of it.
const GRANULE: usize = 8;

/// The start of every chunk; its start map follows it.
struct ChunkHeader {
    /// The chunk taken before this one, or null.
    prev: *mut ChunkHeader,
    /// Length of this chunk, header and start map included.
    bytes: usize,
}

/// Bytes at the start of a chunk taken by its header.
const HEADER_BYTES: usize = size_of::<ChunkHeader>();

/// Bytes of the start map of a chunk of `bytes` (one bit per granule, whole words).
const fn map_bytes(bytes: usize) -> usize {
    bytes.div_ceil(GRANULE * 64) * 8
}

/// Offset of the first byte blocks may use in a chunk of `bytes`.
const fn data_offset(bytes: usize) -> usize {
    HEADER_BYTES + map_bytes(bytes)
}

/// A granule's start bit: the map word's address and the bit's mask.
fn start_bit(chunk: *mut ChunkHeader, addr: usize) -> (*mut u64, u64) {
    let g = (addr - chunk.addr()) / GRANULE;
    // The map starts right after the header; `g / 64` words in, inside the map because
    // `addr` is inside the chunk.
    let word = chunk.cast::<u8>().wrapping_add(HEADER_BYTES + g / 64 * 8).cast::<u64>();
    (word, 1 << (g % 64))
}

// ANCHOR: state
/// Everything `Bump` knows, behind one lock. Invariants: see the module docs.
struct BumpState {
    /// The newest chunk, or null before the first allocation.
    chunk: *mut ChunkHeader,
    /// First free byte of `chunk`.
    cursor: usize,
    /// End of `chunk`.
    end: usize,
    live_bytes: usize,
    live_objects: usize,
    peak_live_bytes: usize,
    committed_bytes: usize,
}

/// A bump allocator: blocks are placed one after the other and never reused one by one.
pub struct Bump {
    state: SpinLock<BumpState>,
}

// SAFETY: the chunk pointers are owned by the state alone, which is only reached under the
// lock; moving the state to another thread moves that ownership with it.
unsafe impl Send for BumpState {}

impl BumpState {
    /// No chunk, nothing counted.
    const EMPTY: BumpState = BumpState {
        chunk: ptr::null_mut(),
        cursor: 0,
        end: 0,
        live_bytes: 0,
        live_objects: 0,
        peak_live_bytes: 0,
        committed_bytes: 0,
    };
}

impl ConstInit for Bump {
    const INIT: Self = Bump { state: SpinLock::new(BumpState::EMPTY) };
}
// ANCHOR_END: state

impl BumpState {
    // ANCHOR: bump
    /// The fast path: the block at the aligned cursor, if it fits in the current chunk.
    #[inline]
    fn bump(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        if self.chunk.is_null() {
            return None;
        }
        let start = align_up(self.cursor + GRANULE, layout.align().max(GRANULE))?;
        let usable = align_up(layout.size(), GRANULE)?;
        let end = start.checked_add(usable)?;
        if end > self.end {
            return None;
        }
        self.cursor = end;
        // The chunk pointer carries the provenance of the whole chunk.
        let block = self.chunk.cast::<u8>().with_addr(start);
        let (word, bit) = start_bit(self.chunk, start);
        // SAFETY: `start - GRANULE .. end` lies in the current chunk's unused tail (past the
        // old cursor), which only this state owns; the size word is granule-aligned. The map
        // word is in the chunk's start map.
        unsafe {
            block.sub(GRANULE).cast::<usize>().write(usable);
            *word |= bit;
        }
        self.count_alloc(usable);
        NonNull::new(block)
    }
    // ANCHOR_END: bump

    // ANCHOR: grow
    /// The slow path: a new chunk from the source, big enough for `layout` at any alignment.
    #[cold]
    fn grow<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let need = layout.size().checked_add(layout.align())?.checked_add(HEADER_BYTES + 2 * GRANULE)?;
        // The start map takes 1/64 of the chunk; ask for enough to leave `need` after it.
        let bytes = align_up(need.checked_add(need / 63 + 64)?.max(CHUNK_BYTES), P::PAGE_BYTES)?;
        let base = src.alloc_ready(bytes, P::PAGE_BYTES).ok()?;
        let chunk = base.cast::<ChunkHeader>().as_ptr();
        // SAFETY: `base` is fresh Ready memory of `bytes > data_offset(bytes)` bytes, aligned
        // to a page, which is more than `ChunkHeader` needs; nothing else points into it.
        unsafe {
            chunk.write(ChunkHeader { prev: self.chunk, bytes });
            base.as_ptr().add(HEADER_BYTES).write_bytes(0, map_bytes(bytes));
        }
        self.chunk = chunk;
        self.cursor = base.as_ptr().addr() + data_offset(bytes);
        self.end = base.as_ptr().addr() + bytes;
        self.committed_bytes += bytes;
        self.bump(layout)
    }
    // ANCHOR_END: grow

    fn count_alloc(&mut self, usable: usize) {
        self.live_objects += 1;
        self.live_bytes += usable;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
    }

    // ANCHOR: lookup
    /// The chunk that holds `addr` and the live block starting there: the chunk, the start
    /// bit's word and mask, and the block's usable size. Refuses anything else, reading only
    /// the chain's headers and maps (never a byte the program may have written) before the
    /// start bit has proved a block starts at `addr`.
    fn lookup(&self, addr: usize) -> Result<(*mut ChunkHeader, *mut u64, u64, usize), BadFree> {
        let mut at = self.chunk;
        while !at.is_null() {
            // SAFETY: every chunk in the chain is Ready memory holding a header (invariant).
            let bytes = unsafe { (*at).bytes };
            let data = at.addr() + data_offset(bytes);
            if (at.addr()..at.addr() + bytes).contains(&addr) {
                if addr < data + GRANULE || !addr.is_multiple_of(GRANULE) {
                    return Err(BadFree::Interior);
                }
                let (word, bit) = start_bit(at, addr);
                // SAFETY: the map word is in this chunk's start map, which only the state
                // writes (under the lock we hold).
                if unsafe { *word } & bit == 0 {
                    return Err(BadFree::NotLive);
                }
                // SAFETY: a live block starts at `addr`, so its size word is the granule
                // below it, inside the chunk, written by `bump`.
                let usable = unsafe { at.cast::<u8>().with_addr(addr - GRANULE).cast::<usize>().read() };
                return Ok((at, word, bit, usable));
            }
            // SAFETY: as above.
            at = unsafe { (*at).prev };
        }
        Err(BadFree::Foreign)
    }
    // ANCHOR_END: lookup

    /// Frees the live block at `addr`, or refuses it.
    fn free(&mut self, addr: usize) -> Result<usize, BadFree> {
        let (_, word, bit, usable) = self.lookup(addr)?;
        // SAFETY: the start map word found by `lookup`, under the lock.
        unsafe { *word &= !bit };
        self.live_objects -= 1;
        self.live_bytes -= usable;
        if self.live_objects == 0 {
            // Nothing is live: the whole current chunk is free again (its map is all clear).
            // SAFETY: `chunk` is non-null (a block was live) and holds a header.
            self.cursor = self.chunk.addr() + data_offset(unsafe { (*self.chunk).bytes });
        }
        Ok(usable)
    }

    /// Gives every chunk of the chain after `first` (exclusive) back; returns the bytes.
    ///
    /// # Safety
    /// No block in those chunks is live or used again; `src` is the state's source.
    unsafe fn free_chain<P: PageSource>(src: &P, mut old: *mut ChunkHeader) -> usize {
        let mut given_back = 0;
        while let Some(chunk) = NonNull::new(old) {
            // SAFETY: every chunk in the chain is Ready memory from `src` holding a header;
            // no block in it is used again (caller), and it is unlinked before freeing.
            unsafe {
                let ChunkHeader { prev, bytes } = chunk.as_ptr().read();
                old = prev;
                if src.free(chunk.cast(), bytes).is_ok() {
                    given_back += bytes;
                }
            }
        }
        given_back
    }
}

// ANCHOR: strategy
// SAFETY: (1) blocks are cut from Ready chunks at increasing addresses, aligned by
// `align_up`, and a byte is handed out again only after every block was freed; (2) the
// strategy never writes to a block (size words and the start map lie outside every block);
// (3) `alloc_zeroed` is the trait's default, which clears; (4) failure is `None`, nothing
// panics or allocates; (5) all state is behind a lock.
unsafe impl Strategy for Bump {
    fn name(&self) -> &'static str {
        "bump"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let mut st = self.state.lock();
        match st.bump(layout) {
            Some(block) => Some(block),
            None => st.grow(src, layout),
        }
    }

    unsafe fn dealloc<P: PageSource>(&self, _src: &P, ptr: NonNull<u8>, _layout: Layout) {
        // A bad pointer is refused and ignored (the layout adds nothing Bump needs).
        let _ = self.state.lock().free(ptr.as_ptr().addr());
    }

    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        self.block_of(ptr.as_ptr()).map_or(layout.size(), |b| b.usable)
    }

    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        let (_, _, _, usable) = self.state.lock().lookup(ptr.addr()).ok()?;
        Some(BlockInfo { start: ptr.addr(), usable, align: 1 << ptr.addr().trailing_zeros() })
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        self.state.lock().free(ptr.as_ptr().addr())
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        let mut st = self.state.lock();
        // SAFETY: the caller gives up every block; `src` is the state's source.
        unsafe { BumpState::free_chain(src, st.chunk) };
        *st = BumpState::EMPTY;
    }

    fn stats(&self) -> StrategyStats {
        let st = self.state.lock();
        StrategyStats {
            live_bytes: st.live_bytes,
            live_objects: st.live_objects,
            peak_live_bytes: st.peak_live_bytes,
            committed_bytes: st.committed_bytes,
            reserved_bytes: st.committed_bytes,
        }
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        let st = self.state.lock();
        st.check()
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        let mut st = self.state.lock();
        if st.live_objects != 0 || st.chunk.is_null() {
            return 0;
        }
        // SAFETY: `chunk` is the live newest chunk (invariant), so its header is readable.
        let old = unsafe { ptr::replace(&raw mut (*st.chunk).prev, ptr::null_mut()) };
        // SAFETY: nothing is live, so no block of the older chunks is used again; they are
        // unlinked from the chain.
        let given_back = unsafe { BumpState::free_chain(src, old) };
        st.committed_bytes -= given_back;
        given_back
    }

    fn fork_prepare(&self) {
        // One lock guards all the state.
        self.state.lock_held();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: `fork_prepare` took the lock on this thread (caller), without a guard.
        unsafe { self.state.force_unlock() };
    }

    unsafe fn fork_child(&self) {
        // SAFETY: this thread took the lock in `fork_prepare`, and it is the child's only thread.
        unsafe { self.state.force_unlock() };
    }
}
// ANCHOR_END: strategy

impl BumpState {
    // ANCHOR: check
    /// Checks the invariants of the module docs by walking the chain of chunks and their
    /// start maps.
    fn check(&self) -> Result<(), CheckError> {
        let fail = |what, addr, detail| Err(CheckError { what, addr, detail });
        if self.live_bytes > self.peak_live_bytes {
            return fail("live bytes above the peak", self.chunk.addr(), self.live_bytes);
        }
        let (mut sum, mut starts, mut usable) = (0, 0, 0);
        let mut at = self.chunk;
        while !at.is_null() {
            // SAFETY: every chunk in the chain is Ready memory holding a header (invariant).
            let h = unsafe { &*at };
            let (lo, hi) = (at.addr() + data_offset(h.bytes), at.addr() + h.bytes);
            if at == self.chunk && !(lo <= self.cursor && self.cursor <= self.end && self.end == hi) {
                return fail("cursor outside the current chunk", at.addr(), self.cursor);
            }
            for w in 0..map_bytes(h.bytes) / 8 {
                // SAFETY: the map's words lie after the header, inside the chunk.
                let mut bits = unsafe { at.cast::<u8>().add(HEADER_BYTES + w * 8).cast::<u64>().read() };
                while bits != 0 {
                    let start = at.addr() + (w * 64 + bits.trailing_zeros() as usize) * GRANULE;
                    bits &= bits - 1;
                    if start < lo + GRANULE || start >= hi {
                        return fail("start bit outside the chunk's data", start, w);
                    }
                    starts += 1;
                    // SAFETY: a live block starts here, so its size word is the granule below.
                    usable += unsafe { at.cast::<u8>().with_addr(start - GRANULE).cast::<usize>().read() };
                }
            }
            sum += h.bytes;
            at = h.prev;
        }
        if self.chunk.is_null() == (self.cursor != 0) || sum != self.committed_bytes {
            return fail("committed bytes differ from the chunks", self.chunk.addr(), sum);
        }
        if (starts, usable) != (self.live_objects, self.live_bytes) {
            return fail("start bits differ from live objects / bytes", self.chunk.addr(), starts);
        }
        Ok(())
    }
    // ANCHOR_END: check
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratalloc::{Heap, Mmap, Tracked};

    /// Blocks are found from their address; bad frees are refused with their kind and change
    /// nothing; release_all gives every page back.
    #[test]
    fn address_contract() {
        let heap: Heap<Bump, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
        let a = heap.alloc_layout(Layout::from_size_align(24, 8).unwrap()).unwrap();
        let b = heap.alloc_layout(Layout::from_size_align(100, 64).unwrap()).unwrap();
        let big = heap.alloc_layout(Layout::from_size_align(200_000, 16).unwrap()).unwrap();
        let info = heap.block_of(b.as_ptr()).unwrap();
        assert_eq!((info.start, info.usable), (b.as_ptr().addr(), 104));
        assert!(info.align >= 64);
        assert!(heap.block_of(b.as_ptr().wrapping_add(8)).is_none());
        assert!(heap.block_of(ptr::null()).is_none());
        let local = 0u64;
        assert!(heap.block_of((&raw const local).cast()).is_none());
        // SAFETY: each call either refuses a non-block or frees a live block given up here.
        unsafe {
            // Bump cannot tell an interior granule from a freed block's start: either answer.
            let r = heap.free(NonNull::new(b.as_ptr().wrapping_add(8)).unwrap());
            assert!(matches!(r, Err(BadFree::Interior | BadFree::NotLive)), "{r:?}");
            assert_eq!(heap.free(NonNull::new(b.as_ptr().wrapping_add(3)).unwrap()), Err(BadFree::Interior));
            assert_eq!(heap.free(NonNull::from(&local).cast()), Err(BadFree::Foreign));
            assert_eq!(heap.free(a), Ok(24));
            assert_eq!(heap.free(a), Err(BadFree::NotLive));
            heap.check().unwrap();
        }
        assert_eq!(heap.stats().live_bytes, 104 + 200_000);
        assert!(heap.block_of(big.as_ptr()).is_some());
        // SAFETY: no block is used again; single-threaded.
        unsafe { heap.release_all() };
        let c = heap.source().counts();
        assert_eq!((c.reserved, c.prepared, c.ready, c.illegal), (0, 0, 0, 0), "{c:?}");
        assert!(heap.block_of(b.as_ptr()).is_none());
        let again = heap.alloc_layout(Layout::from_size_align(10, 1).unwrap()).unwrap();
        assert_eq!(heap.block_of(again.as_ptr()).unwrap().usable, 16);
    }
}
