//! `Bump`: the smallest complete strategy, the worked example of the book's chapter "Writing
//! your own strategy" (`book/src/own-strategy.md`, which includes this file by anchor).
//!
//! # Design
//! Glossary:
//! - *chunk*: a run of pages taken from the page source with `alloc_ready`; its first bytes
//!   hold a [`ChunkHeader`] linking it to the chunk before it.
//! - *cursor*: the address of the first free byte of the current (newest) chunk.
//!
//! Allocation path:
//! 1. lock the state;
//! 2. round the cursor up to the alignment; if the block then ends before the chunk does,
//!    move the cursor past it and return it (the fast path);
//! 3. otherwise take a new chunk big enough for the block from the source and bump there.
//!
//! Free path: only counts. When the last live block is freed, the cursor goes back to the
//! start of the current chunk, and [`trim`](Strategy::trim) may give the older chunks back.
//!
//! Invariants (checked by [`Strategy::check`]):
//! - `chunk == null` or `chunk + HEADER_BYTES <= cursor <= end == chunk + chunk.bytes`;
//! - `committed_bytes == sum of chunk.bytes over the chain`;
//! - `live_objects == 0 => live_bytes == 0`, and `live_bytes <= peak_live_bytes`.

use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use stratalloc::source::align_up;
use stratalloc::sync::SpinLock;
use stratalloc::{BadFree, BlockInfo, CheckError, ConstInit, PageSource, Strategy, StrategyStats};

/// Smallest chunk asked from the source.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The start of every chunk.
struct ChunkHeader {
    /// The chunk taken before this one, or null.
    prev: *mut ChunkHeader,
    /// Length of this chunk, header included.
    bytes: usize,
}

/// Bytes at the start of a chunk taken by its header.
const HEADER_BYTES: usize = size_of::<ChunkHeader>();

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

impl ConstInit for Bump {
    const INIT: Self = Bump {
        state: SpinLock::new(BumpState {
            chunk: ptr::null_mut(),
            cursor: 0,
            end: 0,
            live_bytes: 0,
            live_objects: 0,
            peak_live_bytes: 0,
            committed_bytes: 0,
        }),
    };
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
        let start = align_up(self.cursor, layout.align())?;
        let end = start.checked_add(layout.size())?;
        if end > self.end {
            return None;
        }
        self.cursor = end;
        NonNull::new(start as *mut u8)
    }
    // ANCHOR_END: bump

    // ANCHOR: grow
    /// The slow path: a new chunk from the source, big enough for `layout` at any alignment.
    #[cold]
    fn grow<P: PageSource>(&mut self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let need = HEADER_BYTES.checked_add(layout.align())?.checked_add(layout.size())?;
        let bytes = align_up(need.max(CHUNK_BYTES), P::PAGE_BYTES)?;
        let base = src.alloc_ready(bytes, P::PAGE_BYTES).ok()?;
        let chunk = base.cast::<ChunkHeader>().as_ptr();
        // SAFETY: `base` is fresh Ready memory of `bytes >= HEADER_BYTES` bytes, aligned to a
        // page, which is more than `ChunkHeader` needs; nothing else points into it.
        unsafe { chunk.write(ChunkHeader { prev: self.chunk, bytes }) };
        self.chunk = chunk;
        self.cursor = base.as_ptr() as usize + HEADER_BYTES;
        self.end = base.as_ptr() as usize + bytes;
        self.committed_bytes += bytes;
        self.bump(layout)
    }
    // ANCHOR_END: grow

    fn count_alloc(&mut self, layout: Layout) {
        self.live_objects += 1;
        self.live_bytes += layout.size();
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
    }
}

// ANCHOR: strategy
// SAFETY: (1) blocks are cut from Ready chunks at increasing addresses, aligned by
// `align_up`, and a byte is handed out again only after every block was freed; (2) the
// strategy never writes to a block; (3) `alloc_zeroed` is the trait's default, which
// clears; (4) failure is `None`, nothing panics or allocates; (5) all state is behind a lock.
unsafe impl Strategy for Bump {
    fn name(&self) -> &'static str {
        "bump"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let mut st = self.state.lock();
        let block = match st.bump(layout) {
            Some(block) => block,
            None => st.grow(src, layout)?,
        };
        st.count_alloc(layout);
        Some(block)
    }

    unsafe fn dealloc<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>, layout: Layout) {
        let mut st = self.state.lock();
        st.live_objects -= 1;
        st.live_bytes -= layout.size();
        if st.live_objects == 0 {
            // Nothing is live: the whole current chunk is free again.
            st.cursor = st.chunk as usize + HEADER_BYTES;
        }
    }

    // PLACEHOLDER (#22, being built).
    fn block_of(&self, _ptr: *const u8) -> Option<BlockInfo> {
        None
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>) -> Result<usize, BadFree> {
        Err(BadFree::Foreign)
    }

    unsafe fn release_all<P: PageSource>(&self, _src: &P) {}

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
        let mut old = unsafe { ptr::replace(&raw mut (*st.chunk).prev, ptr::null_mut()) };
        let mut given_back = 0;
        while let Some(chunk) = NonNull::new(old) {
            // SAFETY: every chunk in the chain is Ready memory from `src` holding a header;
            // nothing is live, so no block points into it, and it is unlinked before freeing.
            unsafe {
                let ChunkHeader { prev, bytes } = chunk.as_ptr().read();
                old = prev;
                if src.free(chunk.cast(), bytes).is_ok() {
                    given_back += bytes;
                }
            }
        }
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
    /// Checks the invariants of the module docs by walking the chain of chunks.
    fn check(&self) -> Result<(), CheckError> {
        let fail = |what, addr, detail| Err(CheckError { what, addr, detail });
        if self.live_objects == 0 && self.live_bytes != 0 {
            return fail("no live object but live bytes", self.chunk as usize, self.live_bytes);
        }
        if self.live_bytes > self.peak_live_bytes {
            return fail("live bytes above the peak", self.chunk as usize, self.live_bytes);
        }
        let mut sum = 0;
        let mut at = self.chunk;
        while !at.is_null() {
            // SAFETY: every chunk in the chain is Ready memory holding a header (invariant).
            let h = unsafe { &*at };
            let (lo, hi) = (at as usize + HEADER_BYTES, at as usize + h.bytes);
            if at == self.chunk && !(lo <= self.cursor && self.cursor <= self.end && self.end == hi) {
                return fail("cursor outside the current chunk", at as usize, self.cursor);
            }
            sum += h.bytes;
            at = h.prev;
        }
        if self.chunk.is_null() == (self.cursor != 0) || sum != self.committed_bytes {
            return fail("committed bytes differ from the chunks", self.chunk as usize, sum);
        }
        Ok(())
    }
    // ANCHOR_END: check
}
