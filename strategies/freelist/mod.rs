//! The free-list strategies: first fit, next fit, best fit and segregated fit, over one block
//! format and one split/coalesce core.
//!
//! # Design
//!
//! ## Glossary
//! - *chunk*: a run of pages from the [`PageSource`] (at least `CHUNK_BYTES`, 256 KiB), laid out as
//!   a BEGIN sentinel, blocks, and an END sentinel, and linked in the heap's chunk list.
//! - *block*: a header word (size | flags) and a payload. Sizes are multiples of 16 bytes,
//!   payloads 16-aligned. A *free* block also holds an index *node* after its header and a
//!   *footer* (its size again) in its last word: the boundary tags that let a freed block
//!   find its lower neighbour. A used block carries no footer; instead, the PREV_FREE flag in
//!   the header above tells whether the word below a header is a footer.
//! - *index*: the set of free blocks in the order a policy searches (the `FreeIndex` trait): the
//!   seed's address-ordered list [`Linear`] (O(n)); the defaults, which make the same
//!   decisions fast: [`AddrRegions`] (first and next fit: 4 KiB regions of the address
//!   space, each a short sorted list, under a flat 16-way tree of their largest sizes kept in
//!   the heap, with the treap [`AddrTree`] for blocks outside its 32 MiB window) and
//!   [`SizeBins`] (best fit: exact-size bins below 2 KiB, each a sorted list or, past 32
//!   blocks, a treap by address, and the treap [`SizeTree`] above); or segregated fit's class
//!   lists (`SegLists`). `AddrTree` alone also serves first and next fit, in O(log n). A free
//!   block holds the node of whichever index is used, so the minimum block,
//!   [`MIN_BLOCK_BYTES`] = 48, is header + [`NODE_BYTES`] (4 words, the treap's: three
//!   links and one word of subtree bounds and priority; the size is the header's) + footer,
//!   for every policy: one block format.
//! - *policy* ([`Placement`]): which free block a request takes. A policy is a few lines;
//!   the core (`engine/`) does every split, coalesce, growth and hand-back, one concern a
//!   file: `index.rs` (the traits between core and policies, `fit_start`), `carve.rs`
//!   (allocation, split), `free.rs` (free, coalescing), `chunk.rs` (growth, hand-back),
//!   `fresh.rs` (the fresh tail), `realloc.rs`, `check.rs` (the checker).
//!
//! ## Allocation path
//! 1. `need = max(round16(size + 8), MIN_BLOCK_BYTES)`; alignments above 16 also need a
//!    start whose gap below is empty or can stay a free block (`fit_start`).
//! 2. The policy searches its index for a free block that fits.
//! 3. None: grow, taking `max(CHUNK_BYTES, need + overhead)` from the source
//!    (`alloc_ready`: reserve, map, used; Go's sysReserve/sysMap/sysUsed), falling back to
//!    the exact size when the big one is refused. If the new range touches a chunk (above
//!    or below; `Fixed` hands out ranges in order, the kernel often places mappings next to
//!    each other), it joins that chunk as a free block, coalesced with its neighbour, so
//!    chunk boundaries do not cut the heap up (up to `MERGE_MAX_BYTES`, 64 MiB, per chunk for
//!    sources that give memory back). Otherwise it becomes a new chunk.
//! 4. Carve: an alignment gap below stays a free block at the same address; a remainder of
//!    at least `MIN_BLOCK_BYTES` above becomes a free block that takes the old block's
//!    place in the index; a smaller remainder stays in the used block. The used block's
//!    payload gets its bit in the live-start map, and `live_bytes` counts its usable size.
//!
//! ## Free path
//! 0. Test and clear the payload's bit in the live-start map (below): a pointer whose bit is
//!    clear is refused before anything it names is read.
//! 1. Read the neighbours' tags: the header above (FREE) and this header's PREV_FREE, and
//!    merge with whichever is free (immediate coalescing), telling the index. The block's
//!    own header is prefetched before the lock is taken, so its cache miss overlaps the
//!    lock's atomic instruction.
//! 2. If the merged block spans its whole chunk and the heap holds more than
//!    `RETAIN_FREE_BYTES` (1 MiB) free, the chunk goes back to the source (`free`, Go's sysFree);
//!    [`Strategy::trim`] gives back every wholly free chunk.
//!
//! ## Realloc
//! Shrinking: the block goes where the policy places a fresh allocation of the new size,
//! if a free block fits (copy, then the whole old block is freed and coalesces); otherwise
//! it shrinks in place (a tail that can stand as a block, or that can join a free block
//! above, is freed). Leaving shrunk blocks where they were kept free space cut into pieces
//! too small for later big requests: moving them raised heap efficiency (talc's method) for
//! first and best fit (the figures are in `benches/README.md`).
//! Growing: in place when the block above is free and big enough. Otherwise, when the
//! block below is free and the two (with the block above, if free) are big enough, the
//! contents move down into them (alignments up to 16 bytes). Otherwise allocate, copy, free.
//!
//! ## Zeroed allocation
//! Memory from a `FRESH_ZEROED` source is zero except for what the heap wrote itself. The
//! heap tracks the never-handed-out tail of its newest chunk; a block cut from the free
//! block lying wholly in that tail needs only its old node and footer words cleared.
//! Everything else is cleared in full.
//!
//! ## Invariants (checked by [`Strategy::check`] after every operation in tests)
//! Equations are written next to the data: the block format in `block.rs`, the totals on
//! `Core`, each index's ordering on its type, the map's in `engine/live.rs`. The checker
//! (`engine/check.rs`) walks every chunk and block, checks tags, coalescing and tiling, that
//! every used block has its live bit and as many bits are set as there are used blocks, that
//! `live_bytes` is the sum of the used blocks' usable sizes, marks each free block, then
//! walks the index and checks that it holds every free block exactly once and nothing else.
//!
//! ## Finding a block from its address (the live-start map)
//! Every used block's payload has its bit set in the *live-start map* (`engine/live.rs`): one
//! bit per 16-byte granule of address space, in 1 MiB leaves found through a three-level
//! radix index keyed by address (Go's arena index behind `spanOf`). Allocation sets the bit,
//! a free tests and clears it (one bit operation each, under the one lock, through a
//! one-leaf cache); realloc in place keeps it, `grow_backward` moves it. The map's tables and
//! leaves are cut from *pools* taken from the page source (the first before the first chunk,
//! so that later chunks from a source that hands out neighbouring ranges still join it);
//! every chunk, and every range that extends one, is covered before it is used, and a
//! growth whose map memory is refused fails (null). So `block_of`, a free by address and
//! the layout-taking `dealloc`/`realloc` check a pointer by the map alone, before reading
//! any memory it names: O(1), in every build, safe for any pointer. The map's memory is
//! counted in `committed_bytes`; it goes back with the last chunk (`trim`) or `release_all`.
//!
//! ## Bad input
//! - A request no block and no growth can serve (a size past what the page source can
//!   reserve, an exhausted `Fixed` region, a failing source) returns null: no panic, no
//!   abort. Sizes are checked before any sum can overflow (`block_need`).
//! - A pointer that is not the payload of a used block (a **double free**, an **interior**,
//!   **stack** or **foreign** pointer) has its bit clear: `dealloc` ignores it and `realloc`
//!   returns null, leaving the heap as it was, in every build; debug builds then panic, after
//!   releasing the lock, with a message naming the policy, the call and the pointer.
//!   [`Strategy::free`] returns the reason ([`BadFree`](crate::BadFree)), found by a walk of
//!   the pointer's chunk on this error path only: outside every chunk, `Foreign`; the payload
//!   of a free block, or the old payload of a block merged into one (whose header word the
//!   merge leaves marked FREE), `NotLive`; anywhere else in a chunk, `Interior`.
//! - A double free of a block handed out again since frees the new owner's block: no
//!   allocator without per-block generations can tell.
//!
//! ## Locking
//! One [`SpinLock`] around the whole state; every `Strategy` method takes it once (realloc
//! that moves takes it twice, copying outside it).

mod bins;
mod block;
mod engine;
mod linear;
mod policy;
mod regions;
mod segregated;
mod tree;

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::source::PageSource;
use crate::strategy::{CheckError, ConstInit, Strategy, StrategyStats};
use crate::sync::SpinLock;

// The public API: the heaps, their policies and indexes (types to name, with no methods of
// their own), the class tables of segregated fit, and the constants of the block format.
// Everything that touches block memory (`Block`, `FreeIndex`, `Treap`, `fit_start`, the
// core) is private: the modules are, and items they declare `pub` only appear, unnameable,
// in the signatures of the sealed trait `Policy` behind `Placement`.
pub use self::bins::{BIN_COUNT, BIN_LIST_MAX, BIN_MAX_BYTES, SizeBins};
pub use self::block::{BLOCK_ALIGN, HEADER_BYTES, MIN_BLOCK_BYTES, NODE_BYTES};
pub use self::engine::Placement;
pub use self::linear::Linear;
pub use self::policy::{Best, First, Next};
pub use self::regions::{AddrRegions, REGION_BYTES, REGION_COUNT};
pub use self::segregated::{Classes, DefaultClasses, MAX_CLASSES, Segregated};
pub use self::tree::{AddrTree, SizeTree};

use self::engine::Core;

/// A free-list heap with placement policy `X`: the shared block format and core behind one
/// lock. Use it through the aliases [`FirstFit`], [`NextFit`], [`BestFit`],
/// [`SegregatedFit`].
pub struct FreeList<X> {
    core: SpinLock<Core<X>>,
}

/// The message of a debug build's panic at a detected double free or foreign pointer.
struct BadPointer {
    policy: &'static str,
    call: &'static str,
    ptr: NonNull<u8>,
}

impl core::fmt::Display for BadPointer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "stratalloc {}: {} of {:p}, a block that is free already or not from this heap \
             (double or foreign free); ignored, the heap is unchanged",
            self.policy, self.call, self.ptr
        )
    }
}

// ANCHOR: freelist_aliases
/// First fit: the lowest-address free block that fits. The default index, [`AddrRegions`],
/// finds it with a few vector comparisons over a compact tree of region maxima and a short
/// list walk; `FirstFit<AddrTree>` with a treap descent, O(log n); `FirstFit<Linear>` walks
/// the seed's address-ordered list, O(n). All three choose the same block.
///
/// `AddrRegions` keeps about 150 KiB inside the heap (a `static` heap holds it); on a
/// small target, or with a small `Fixed` arena, `FirstFit<AddrTree>` keeps its whole index
/// in the free blocks and a few words.
pub type FirstFit<I = AddrRegions> = FreeList<First<I>>;
/// Next fit: the first fitting block at or above the end of the last block handed out,
/// wrapping around. Default index [`AddrRegions`]; `NextFit<AddrTree>` is the treap (no
/// 150 KiB index in the heap), `NextFit<Linear>` the reference walk.
pub type NextFit<I = AddrRegions> = FreeList<Next<I>>;
/// Best fit: the smallest fitting block, the lowest address among equals. Default index
/// [`SizeBins`] (exact-size bins, a tree above 2 KiB); `BestFit<SizeTree>` keeps every block
/// in one tree; `BestFit<Linear>` is the reference walk.
pub type BestFit<I = SizeBins> = FreeList<Best<I>>;
/// Segregated fit: one free list per size class and a bitmap of non-empty classes; the
/// classes are a type parameter ([`DefaultClasses`]).
pub type SegregatedFit<C = DefaultClasses> = FreeList<Segregated<C>>;
// ANCHOR_END: freelist_aliases

impl<X: Placement> ConstInit for FreeList<X> {
    const INIT: Self = FreeList { core: SpinLock::new(Core::EMPTY) };
}

impl<X: Placement> FreeList<X> {
    /// An empty heap (no work).
    pub const fn new() -> Self {
        Self::INIT
    }
}

/// Free blocks of a [`FreeList`] heap: how the free memory is cut up.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeSummary {
    /// Number of free blocks (`== index length`).
    pub blocks: usize,
    /// Bytes in free blocks, headers included.
    pub bytes: usize,
}

impl<X: Placement> FreeList<X> {
    /// Free blocks and bytes now.
    pub fn free_summary(&self) -> FreeSummary {
        let (blocks, bytes) = self.core.lock().free_totals();
        FreeSummary { blocks, bytes }
    }
}

/// One block as [`FreeList::walk`] reports it: a heap map for diagnostics (loss breakdowns,
/// fragmentation pictures).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Address of the block's header (its payload starts `HEADER_BYTES` above).
    pub addr: usize,
    /// Bytes of the block, header included.
    pub bytes: usize,
    /// Whether the block is free.
    pub free: bool,
    /// Base address of the block's chunk.
    pub chunk: usize,
    /// Bytes of the block's chunk (`CHUNK_OVERHEAD_BYTES + Σ` its block sizes).
    pub chunk_bytes: usize,
}

impl<X: Placement> FreeList<X> {
    /// Calls `visit` for every block of every chunk, in address order within a chunk, under
    /// the heap's lock: `visit` must not use this heap (it would wait for the lock forever).
    pub fn walk(&self, mut visit: impl FnMut(BlockInfo)) {
        self.core.lock().walk(&mut visit);
    }
}

impl<X: Placement> Default for FreeList<X> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: (1) blocks are carved from chunks owned by this heap and are disjoint (the checker
// proves the tiling); payloads are aligned by `fit_start`; (2) the core writes only headers,
// footers and nodes of free blocks, never a used payload (realloc copies before freeing);
// (3) `alloc_zeroed` clears all but what it proves zero; (4) every failure is `None`, and
// memory comes only from the page source; (5) all state is behind one `SpinLock`.
unsafe impl<X: Placement> Strategy for FreeList<X> {
    fn name(&self) -> &'static str {
        X::NAME
    }

    #[inline]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.core.lock().alloc_plain(src, layout) }
    }

    #[inline]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, _layout: Layout) {
        Core::<X>::prefetch_free(ptr);
        // SAFETY: `src` is this heap's source (caller); a pointer that is not a live payload
        // is refused by its live bit before anything it names is read.
        let done = unsafe { self.core.lock().dealloc(src, ptr) }.is_some();
        // After the lock is released: the panic hook may allocate. Release builds ignore it.
        debug_assert!(done, "{}", BadPointer { policy: X::NAME, call: "dealloc", ptr });
    }

    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        let (p, zero) = unsafe { self.core.lock().alloc(src, layout) }?;
        if !zero {
            // SAFETY: the block is valid for `layout.size()` bytes and ours alone.
            unsafe { ptr::write_bytes(p.as_ptr(), 0, layout.size()) };
        }
        Some(p)
    }

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let new = 'new: {
            let mut core = self.core.lock();
            if !core.is_live(ptr.as_ptr()) {
                drop(core);
                if cfg!(debug_assertions) {
                    panic!("{}", BadPointer { policy: X::NAME, call: "realloc", ptr });
                }
                return None;
            }
            if new_size < layout.size()
                // SAFETY: `ptr` is live for `layout` (caller), which is bigger than `new_size`.
                && let Some(q) = unsafe { core.shrink_by_moving(ptr, new_size, layout.align()) }
            {
                break 'new q;
            }
            // SAFETY: `ptr` is live for `layout` (caller).
            if unsafe { core.resize_in_place(ptr, new_size) } {
                return Some(ptr);
            }
            if layout.align() <= BLOCK_ALIGN
                // SAFETY: `ptr` is live for `layout` (caller); the payload moves to another
                // 16-aligned payload, which keeps alignments up to `BLOCK_ALIGN`.
                && let Some(p) = unsafe { core.grow_backward(ptr, layout.size(), new_size) }
            {
                return Some(p);
            }
            let new_layout = Layout::from_size_align(new_size, layout.align()).ok()?;
            // SAFETY: non-zero size; this heap's source.
            unsafe { core.alloc(src, new_layout) }?.0
        };
        // SAFETY: both blocks are live and disjoint; the old one is freed after the copy.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size));
            let done = self.core.lock().dealloc(src, ptr).is_some();
            debug_assert!(done, "the old block of a realloc was checked live");
        }
        Some(new)
    }

    unsafe fn usable_size(&self, ptr: NonNull<u8>, _layout: Layout) -> usize {
        // SAFETY: `ptr` is a live payload of this heap (caller).
        unsafe { Core::<X>::usable(ptr) }
    }

    fn stats(&self) -> StrategyStats {
        self.core.lock().stats()
    }

    fn block_of(&self, ptr: *const u8) -> Option<crate::BlockInfo> {
        let mut core = self.core.lock();
        if !core.is_live(ptr) {
            return None;
        }
        let start = ptr.addr();
        // SAFETY: the live bit says `ptr` is the payload of a used block of this heap, which
        // stays live while the lock is held.
        let usable = unsafe { Core::<X>::usable(NonNull::new_unchecked(ptr.cast_mut())) };
        Some(crate::BlockInfo { start, usable, align: block_align(start) })
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, crate::BadFree> {
        Core::<X>::prefetch_free(ptr);
        let mut core = self.core.lock();
        // SAFETY: `src` is this heap's source (caller); the live bit is checked before `ptr`'s
        // memory is read, and a live block is given up by the caller.
        match unsafe { core.dealloc(src, ptr) } {
            Some(usable) => Ok(usable),
            None => Err(core.classify(ptr.as_ptr())),
        }
    }

    /// One lock acquisition for the whole batch.
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        let mut core = self.core.lock();
        // SAFETY: `src` is this heap's source (caller); each live bit is checked before the
        // block's memory is read, and live blocks are given up by the caller.
        blocks.iter().filter(|&&p| unsafe { core.dealloc(src, p) }.is_some()).count()
    }

    /// One lock acquisition for the whole batch.
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        let mut core = self.core.lock();
        for (k, slot) in out.iter_mut().enumerate() {
            // SAFETY: forwarded with the caller's guarantees (non-zero size; this heap's source).
            match unsafe { core.alloc_plain(src, layout) } {
                Some(p) => *slot = p,
                None => return k,
            }
        }
        out.len()
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: `src` is this heap's source, and no block is used after the call (caller).
        unsafe { self.core.lock().release_all(src) }
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        // SAFETY: no other thread uses the heap during the call (caller).
        unsafe { self.core.lock().check::<P>() }
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        // SAFETY: `src` is this heap's source (caller).
        unsafe { self.core.lock().trim(src) }
    }

    /// The one lock: the core's.
    fn fork_prepare(&self) {
        self.core.lock_held();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: this thread took the core lock in `fork_prepare` (caller), without a guard.
        unsafe { self.core.force_unlock() };
    }

    unsafe fn fork_child(&self) {
        // SAFETY: this thread took the core lock in `fork_prepare` (caller), and in the child it
        // is the only thread, so no holder is lost when the lock is released here.
        // All free-list state is behind this lock, so nothing else belongs to a lost thread.
        unsafe { self.core.force_unlock() };
    }
}

/// The alignment a layout for the live block at `start` may name (see
/// [`crate::BlockInfo::align`]): the largest power of two dividing `start`. The free lists
/// never read a layout's alignment on the free and resize paths, so any alignment the address
/// has is one the block honours.
fn block_align(start: usize) -> usize {
    1usize << start.trailing_zeros().min(usize::BITS - 1)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_address;
