//! The split/coalesce core shared by every free-list policy: the heap state ([`Core`]), its
//! totals and the block walk; each of its jobs is a child module (listed below).
//!
//! See [`super`] for the overview. A policy ([`Policy`]) is consulted only to *choose* a
//! free block and to keep its index up to date; everything that touches block memory is here:
//! - `index.rs`: the traits between the core and the policies, and the fit rule;
//! - `carve.rs`: allocation and carving (split);
//! - `fresh.rs`: the fresh tail that `alloc_zeroed` need not clear;
//! - `chunk.rs`: chunk growth and hand-back;
//! - `free.rs`: freeing and coalescing;
//! - `realloc.rs`: realloc in place and by moving;
//! - `live.rs`: the live-start map (a bit per payload granule, through a radix index);
//! - `check.rs`: the checker.

mod carve;
mod check;
mod chunk;
mod free;
mod fresh;
mod index;
mod live;
mod realloc;

use core::ptr::{self, NonNull};

use self::fresh::Fresh;
pub(super) use self::index::fit_start;
pub use self::index::{FreeIndex, Placement, Policy};
use self::live::LiveMap;
#[cfg(test)]
pub(super) use self::live::POOL_BYTES;
use super::block::{Block, ChunkHead, HEADER_BYTES};
use crate::strategy::StrategyStats;

/// Smallest chunk the heap asks its source for (a request that needs more gets its own size).
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// Largest chunk that growth may make by extending an adjacent chunk, for sources that give
/// memory back (smaller chunks can be handed back sooner); unbounded otherwise.
pub(super) const MERGE_MAX_BYTES: usize = 64 << 20;
/// Free memory kept cached: a chunk that becomes wholly free is handed back to the source
/// (`free`, Go's sysFree) only while the heap's free bytes exceed this, at first (see
/// `Core::retain_bytes`).
pub(super) const RETAIN_FREE_BYTES: usize = 1024 * 1024;
/// The most that `Core::retain_bytes` rises to.
pub(super) const RETAIN_MAX_BYTES: usize = 32 << 20;

/// The heap state behind the lock.
///
/// Invariants (checked by [`Core::check`]):
/// - `committed_bytes == reserved_bytes == Σ chunk bytes`, `chunk_count == #chunks`;
/// - `free_bytes == Σ size(free blocks)`;
/// - `live_objects == #used blocks`; `blocks == #used blocks + #free blocks`, so
///   `blocks - live_objects == #free blocks == index.len()`;
/// - `live_bytes == Σ (size - HEADER_BYTES)` over used blocks (their usable sizes, so that a
///   free by address, which knows no requested size, keeps it exact);
///   `peak_live_bytes >= live_bytes`;
/// - `RETAIN_FREE_BYTES <= retain_bytes <= RETAIN_MAX_BYTES`;
/// - `live` has a bit set at the payload of every used block and nowhere else, and covers
///   every chunk (see `live.rs`).
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
    /// A chunk that becomes wholly free goes back to the source only while more than this
    /// is free. It starts at `RETAIN_FREE_BYTES`; when the heap must grow after handing a
    /// chunk back, the free bytes it held then did not serve the request (fragments), so it
    /// rises to them plus the new chunk (at most `RETAIN_MAX_BYTES`): the same state no
    /// longer hands the chunk back, which would map and unmap a chunk per large request
    /// (first fit in the preload's threaded C++ program, thousands of times a second).
    /// `trim` sets it back. Like glibc's trim threshold, which rises when memory given back
    /// is asked for again.
    retain_bytes: usize,
    /// Whether a chunk went back to the source (from a free) since the last growth.
    released: bool,
    fresh: Fresh,
    live: LiveMap,
}

// SAFETY: the raw pointers name chunks and live-start map pools that this core alone owns
// (taken from the page source for it; blocks handed out are the users', and the core never
// touches their payloads); nothing is tied to a thread, so moving the core moves that
// ownership with it. The policy `X` is `Send` itself.
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
        retain_bytes: RETAIN_FREE_BYTES,
        released: false,
        fresh: Fresh { lo: 0, hi: 0 },
        live: LiveMap::EMPTY,
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

    /// Statistics. Committed and reserved bytes include the live-start map's pools.
    pub fn stats(&self) -> StrategyStats {
        StrategyStats {
            live_bytes: self.live_bytes,
            live_objects: self.live_objects,
            peak_live_bytes: self.peak_live_bytes,
            committed_bytes: self.committed_bytes + self.live.bytes,
            reserved_bytes: self.committed_bytes + self.live.bytes,
        }
    }

    /// Usable bytes of a live payload.
    ///
    /// # Safety
    /// `p` is a live payload of this heap.
    pub unsafe fn usable(p: NonNull<u8>) -> usize {
        // SAFETY: forwarded.
        unsafe { Block::from_payload(p).size() - HEADER_BYTES }
    }
}
