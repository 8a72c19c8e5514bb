//! The strategy contract: what every allocator design (free lists, tiered) implements.
//!
//! A strategy decides *placement* inside memory that a [`PageSource`] gives it. It is shared
//! between threads (`&self` everywhere), created by a constant ([`ConstInit::INIT`]) so that a
//! [`Heap`](crate::Heap) can live in a `static`, and does no work before its first allocation.
//! The [`Heap`](crate::Heap) front end handles zero-size requests and statistics of the page
//! source; a strategy sees only requests of at least one byte.

use core::alloc::Layout;
use core::fmt;
use core::ptr::{self, NonNull};

use crate::source::PageSource;

// ANCHOR: const_init
/// Types with a constant initial value, so they can be built in a `const fn` / `static`.
pub trait ConstInit {
    /// The initial value: empty, and doing no work until first used.
    const INIT: Self;
}
// ANCHOR_END: const_init

// ANCHOR: strategy_stats
/// What a strategy reports about itself (see [`Heap::stats`](crate::Heap::stats)).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StrategyStats {
    /// Bytes the live blocks hold: the sum of their usable sizes ([`BlockInfo::usable`]),
    /// which is at least the sum of their `Layout::size()`. Counted in usable sizes so that a
    /// free by address ([`Strategy::free`]), which knows no requested size, keeps it exact.
    pub live_bytes: usize,
    /// Number of live blocks.
    pub live_objects: usize,
    /// Highest `live_bytes` seen so far (exact or, where the strategy says so in its docs,
    /// counted at the granularity of its caches).
    pub peak_live_bytes: usize,
    /// Bytes the strategy holds in the Ready state: live blocks, free blocks kept for reuse,
    /// metadata. What the OS may count as resident.
    pub committed_bytes: usize,
    /// Address space the strategy holds in any state but None.
    pub reserved_bytes: usize,
}
// ANCHOR_END: strategy_stats

// ANCHOR: block_info
/// What a strategy knows about a live block, found from its address alone
/// ([`Strategy::block_of`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's address: the pointer `alloc` returned for it.
    pub start: usize,
    /// Bytes the block can hold (what [`Strategy::usable_size`] answers; at least the size it
    /// was requested with). Any layout whose size lies between the requested size and this,
    /// with the block's alignment, may be passed to `dealloc` and `realloc` for the block.
    pub usable: usize,
    /// The largest alignment a layout for the block may name in `dealloc` and `realloc`: at
    /// least the alignment it was allocated with, and `start` is a multiple of it. (A C
    /// front end frees by address and reallocates with its own small alignment; this tells
    /// a caller with no layout how far it may go.)
    pub align: usize,
}
// ANCHOR_END: block_info

// ANCHOR: bad_free
/// Why a free by address ([`Strategy::free`]) was refused. Whatever the kind, nothing changed:
/// the heap is as it was before the call and no block can be handed out twice. The kind is the
/// strategy's best account: where it cannot tell an interior pointer from the start of a
/// freed block without a scan, it may answer either.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BadFree {
    /// Not in memory this strategy holds (another heap, the stack, another mapping).
    Foreign,
    /// Inside this strategy's memory, but not the start of a block (an interior pointer).
    Interior,
    /// The start of a block that is not live: a double free (or a free of a block the
    /// strategy never handed out).
    NotLive,
}

impl fmt::Display for BadFree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadFree::Foreign => "pointer not from this heap",
            BadFree::Interior => "pointer inside a block, not its start",
            BadFree::NotLive => "block not live (double free)",
        })
    }
}

impl core::error::Error for BadFree {}

/// What [`Strategy::free_cached_fast`] did with a pointer; in every case but `Taken`,
/// nothing changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CachedFree {
    /// Freed into the calling thread's cache.
    Taken,
    /// Found by the fast lookup and not taken (a full cache, a block that is not live, ...):
    /// the caller's [`free`](Strategy::free) decides.
    Refused,
    /// Not found by the fast lookup alone: [`free_cached`](Strategy::free_cached) (which may
    /// look further) or [`free`](Strategy::free) decides.
    Missed,
}
// ANCHOR_END: bad_free

/// What a layer found out about a live block on its way down, handed back to the same
/// layer's free so that the free does not look the block up again: by address
/// ([`Strategy::find`], then [`Strategy::free_found`]) or with the caller's layout
/// ([`Strategy::locate`], then [`Strategy::dealloc_located`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The block: [`Strategy::block_of`]'s answer from `find`; from `locate`, the pointer,
    /// [`Strategy::usable_size`]'s answer and the layout's alignment.
    pub info: BlockInfo,
    /// Which part of the strategy holds the block, in the strategy's own numbering (the
    /// arena's index for [`Arenas`](crate::Arenas)); 0 for a strategy with one part.
    pub part: usize,
}

/// A broken invariant found by a strategy's walker ([`Strategy::check`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// Which invariant, in words.
    pub what: &'static str,
    /// The address of the structure where it was found.
    pub addr: usize,
    /// A number that helps (a size, a count, an index), or 0.
    pub detail: usize,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant broken at {:#x}: {} (detail {})", self.addr, self.what, self.detail)
    }
}

impl core::error::Error for CheckError {}

// ANCHOR: strategy
/// An allocation strategy.
///
/// All methods take the page source the strategy draws from as `src`; a strategy value must
/// be used with one and the same source for its whole life (the [`Heap`](crate::Heap) front
/// end guarantees that).
///
/// # Safety
///
/// *Implementors must guarantee* that:
/// 1. a block returned by `alloc`, `alloc_zeroed` or `realloc` is valid for reads and writes
///    of `layout.size()` bytes (at least), aligned to `layout.align()`, and disjoint from
///    every other live block, until it is passed to `dealloc` or `realloc`;
/// 2. the contents of a live block are never changed by the strategy (`realloc` keeps the
///    first `min(old, new)` bytes);
/// 3. `alloc_zeroed` returns zeroed memory;
/// 4. failure is reported as `None`, never by a panic or an abort, and no method allocates
///    through the global allocator;
/// 5. all methods may be called from several threads at once.
///
/// *Callers must guarantee* the conditions written on each method.
#[enum_dispatch::enum_dispatch]
pub unsafe trait Strategy: Send + Sync {
    /// The name of the strategy as the runtime choice parses it (`"first-fit"`, ...).
    fn name(&self) -> &'static str;

    /// Allocates a block for `layout`, or returns `None` when the source cannot give more.
    ///
    /// # Safety
    /// `layout.size() > 0`; `src` is the source this strategy has always been used with.
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>>;

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` was returned by this strategy for `layout` (or for a layout of the same
    /// alignment whose size realloc moved to `layout.size()`) and is still live; `src` is the
    /// source this strategy has always been used with.
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout);

    /// Allocates a zeroed block. The default allocates and clears; strategies skip the
    /// clearing for memory they know to be fresh from a zeroing source.
    ///
    /// # Safety
    /// As for [`alloc`](Self::alloc).
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.alloc(src, layout) }?;
        // SAFETY: the block is valid for `layout.size()` bytes of writes (contract point 1).
        unsafe { ptr::write_bytes(p.as_ptr(), 0, layout.size()) };
        Some(p)
    }

    /// Resizes a block to `new_size` bytes with the same alignment, keeping its contents. On
    /// failure returns `None` and the old block is untouched and still live. The default
    /// allocates, copies and frees.
    ///
    /// # Safety
    /// As for [`dealloc`](Self::dealloc); `new_size > 0` and `new_size` rounded up to
    /// `layout.align()` does not exceed `isize::MAX`.
    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { realloc_by_moving(self, src, ptr, layout, new_size) }
    }

    /// How many bytes the block at `ptr` can really hold (at least `layout.size()`).
    ///
    /// # Safety
    /// As for [`dealloc`](Self::dealloc).
    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        let _ = ptr;
        layout.size()
    }

    /// [`usable_size`](Self::usable_size) together with whatever else the lookup found that
    /// a later [`dealloc_located`](Self::dealloc_located) of the block can use instead of
    /// looking again (a layer's part index). The default answers `usable_size` and part 0.
    ///
    /// # Safety
    /// As for [`dealloc`](Self::dealloc).
    #[inline]
    unsafe fn locate(&self, ptr: NonNull<u8>, layout: Layout) -> Found {
        // SAFETY: forwarded with the caller's guarantees.
        let usable = unsafe { self.usable_size(ptr, layout) };
        Found { info: BlockInfo { start: ptr.addr().get(), usable, align: layout.align() }, part: 0 }
    }

    /// [`dealloc`](Self::dealloc) of a block already looked up by [`locate`](Self::locate)
    /// (`found`), or of one not looked up (`None`: exactly `dealloc`). A thread cache that
    /// does not keep a block forwards its free this way, from one call site. Every check
    /// `dealloc` makes that is not a lookup (an inner strategy's live bit, under its lock)
    /// still happens. The default is `dealloc`.
    ///
    /// # Safety
    /// As for [`dealloc`](Self::dealloc); and `found`, if `Some`, is what `locate(ptr,
    /// layout)` answered on this strategy for the block since it was last allocated or
    /// resized.
    #[inline]
    unsafe fn dealloc_located<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        found: Option<Found>,
    ) {
        let _ = found;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.dealloc(src, ptr, layout) }
    }

    /// What the strategy holds and what is live.
    fn stats(&self) -> StrategyStats;

    // ANCHOR: address_contract
    /// Finds the live block that starts at `ptr`, from the address alone. Answers `None`,
    /// without undefined behaviour, for any pointer that is not the start of a live block of
    /// this strategy: an interior pointer, a freed block, the stack, another heap, another
    /// mapping, null. Costs O(1) or O(log chunks), in release builds too.
    ///
    /// A pointer whose block another thread frees during the call may get either answer.
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo>;

    /// Frees the block that starts at `ptr` without its layout (C's `free`). A pointer that is
    /// not the start of a live block of this strategy is refused with the reason, and nothing
    /// changes: a double free, an interior or a foreign pointer is never turned into a block
    /// handed out twice. On success returns the block's usable size.
    ///
    /// # Safety
    /// `src` is the source this strategy has always been used with. If `ptr` is a live block
    /// of this strategy, the caller gives it up: no reference to its memory is used after the
    /// call, and no other thread frees or resizes it concurrently.
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree>;

    /// [`block_of`](Self::block_of) together with the part that holds the block, for a later
    /// [`free_found`](Self::free_found) of it (a thread cache's free by address: the lookup
    /// that validates the pointer also tells the layer below where the block lives). The
    /// default answers `block_of` and part 0.
    #[inline]
    fn find(&self, ptr: *const u8) -> Option<Found> {
        self.block_of(ptr).map(|info| Found { info, part: 0 })
    }

    /// [`free`](Self::free) of a pointer [`find`](Self::find) answered `Some` for, given the
    /// part it found: the part is not looked up again. Everything else `free` checks is, as
    /// far as it can have changed since `find` (another thread's work on the part may have
    /// freed the block meanwhile, if this is a double free): a pointer that is not the start
    /// of a live block is refused with nothing changed, as by `free`. The default is `free`.
    ///
    /// # Safety
    /// As for [`free`](Self::free); and `part` is what `find(ptr)` answered on this strategy,
    /// on this thread, after the block (if live) was last allocated or resized.
    #[inline]
    unsafe fn free_found<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        part: usize,
    ) -> Result<usize, BadFree> {
        let _ = part;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.free(src, ptr) }
    }

    /// The allocation of [`alloc`](Self::alloc) when the strategy can serve it from the
    /// calling thread's cache alone (no lock, no call, no OS call, no background work);
    /// `None`, with nothing changed, in every other case, and then the caller uses `alloc`.
    /// For a preload's fast entry, which skips its own bookkeeping (errno) when this succeeds.
    /// The default serves nothing.
    ///
    /// # Safety
    /// As for [`alloc`](Self::alloc) (`layout` has a non-zero size); the strategy has been
    /// used through [`alloc`](Self::alloc) with the same source before, if ever.
    #[inline]
    unsafe fn alloc_cached(&self, layout: Layout) -> Option<NonNull<u8>> {
        let _ = layout;
        None
    }

    /// The free of [`free`](Self::free) when `ptr` is a live block the strategy can take back
    /// into the calling thread's cache alone (no lock, no call, no OS call); `false`, with
    /// nothing changed, in every other case (including every pointer `free` would refuse),
    /// and then the caller uses `free`. The default takes nothing.
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[inline]
    unsafe fn free_cached(&self, ptr: NonNull<u8>) -> bool {
        let _ = ptr;
        false
    }

    /// [`free_cached`](Self::free_cached) in two steps, for a caller whose fast path must
    /// make no call at all (so that it saves no register): the first step alone, with the
    /// lookup a strategy can make without a call; `Missed` when that lookup found nothing
    /// (for example an address outside the region it looks in first), and the caller then
    /// asks `free_cached` or `free`. `Taken` exactly when `free_cached` would take the
    /// pointer with that lookup. The default is `free_cached`'s answer (never `Missed`).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[inline]
    unsafe fn free_cached_fast(&self, ptr: NonNull<u8>) -> CachedFree {
        // SAFETY: the caller's guarantee is `free`'s.
        if unsafe { self.free_cached(ptr) } { CachedFree::Taken } else { CachedFree::Refused }
    }

    /// Frees every block of `blocks`, each the start of a live block of this strategy, as
    /// [`free`](Self::free) would one after another; returns how many it freed (all of them,
    /// for a caller that keeps the contract). A strategy that takes a lock per call overrides
    /// it to take the lock once for a run of blocks (the thread cache hands its spilled bins
    /// over this way).
    ///
    /// # Safety
    /// As for [`free`](Self::free), for each block; and every block is a live block of this
    /// strategy, none twice.
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees, block by block.
        blocks.iter().filter(|&&p| unsafe { self.free(src, p) }.is_ok()).count()
    }

    /// Allocates up to `out.len()` blocks for `layout` into `out`, as [`alloc`](Self::alloc)
    /// would one after another, and returns how many (the first `n` entries; fewer when the
    /// source cannot give more, 0 when not even one). A strategy that takes a lock per call
    /// overrides it to take the lock once (the thread cache refills an empty bin this way).
    ///
    /// # Safety
    /// As for [`alloc`](Self::alloc).
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        for (k, slot) in out.iter_mut().enumerate() {
            // SAFETY: forwarded with the caller's guarantees.
            match unsafe { self.alloc(src, layout) } {
                Some(p) => *slot = p,
                None => return k,
            }
        }
        out.len()
    }

    /// [`alloc_batch`](Self::alloc_batch) that also writes each block's usable size
    /// ([`usable_size`](Self::usable_size)'s answer) into `usable` at the same index, for a
    /// caller that needs it (a thread cache filing a refill into its size bins). A layer that
    /// knows the sizes on the way (a parked block's mark, the part a block came from) saves
    /// the caller a lookup per block. The default is `alloc_batch`, then `usable_size` of each.
    ///
    /// # Safety
    /// As for [`alloc`](Self::alloc); `usable.len() >= out.len()`.
    unsafe fn alloc_batch_usable<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
        out: &mut [NonNull<u8>],
        usable: &mut [usize],
    ) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        let n = unsafe { self.alloc_batch(src, layout, out) };
        for (u, &p) in usable.iter_mut().zip(&out[..n]) {
            // SAFETY: `p` is a live block just allocated for `layout`.
            *u = unsafe { self.usable_size(p, layout) };
        }
        n
    }

    /// Gives everything the strategy took from `src` back to it (every page to None), live
    /// blocks included, and returns the strategy to its initial state: it may be used again
    /// and will start afresh. What a dropped [`Heap`](crate::Heap) does.
    ///
    /// # Safety
    /// `src` is the source this strategy has always been used with. No live block is used
    /// after the call, and no other thread uses the strategy during it. Threads that used the
    /// strategy before may still be alive: the strategy must not let their per-thread state
    /// point into released memory (they may use the strategy again later, or exit).
    unsafe fn release_all<P: PageSource>(&self, src: &P);
    // ANCHOR_END: address_contract

    /// Walks every structure of the strategy and checks every invariant written next to its
    /// data. Slow; for tests. Must not run concurrently with other calls on the same value.
    ///
    /// # Safety
    /// `src` is the source this strategy has always been used with, and no other thread uses
    /// the strategy during the call.
    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError>;

    /// Gives free memory back to the source where the strategy can; returns the bytes given
    /// back. The default gives nothing back.
    ///
    /// # Safety
    /// `src` is the source this strategy has always been used with.
    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        let _ = src;
        0
    }

    /// The `fork` protocol, step 1 (a `pthread_atfork` prepare handler): takes every lock of
    /// the strategy, in the order the strategy documents, and keeps them. After it returns no
    /// other thread is inside a locked section of the strategy, so a child forked now
    /// inherits no lock held mid-operation. Must be followed, on the same thread and before
    /// any other call on this strategy from it, by [`fork_parent`](Self::fork_parent) in the
    /// parent and [`fork_child`](Self::fork_child) in the child.
    ///
    /// A strategy that calls its page source only under its own locks (every strategy of this
    /// crate does) thereby also leaves the source's locks (`Fixed`, `Tracked`) free. There is
    /// no default: a strategy with no lock says so with an empty body.
    fn fork_prepare(&self);

    /// The `fork` protocol in the parent: releases what [`fork_prepare`](Self::fork_prepare)
    /// took.
    ///
    /// # Safety
    /// The calling thread called `fork_prepare` on this strategy and has not released it since.
    unsafe fn fork_parent(&self);

    /// The `fork` protocol in the child: releases what [`fork_prepare`](Self::fork_prepare)
    /// took, and may reset state that belonged to threads that do not exist in the child.
    ///
    /// # Safety
    /// Called in the child of a `fork` made after the calling thread's `fork_prepare` on this
    /// strategy (so this thread is the child's only thread).
    unsafe fn fork_child(&self);
}
// ANCHOR_END: strategy

/// The moving path of [`Strategy::realloc`]: allocates `new_size` bytes with the old
/// alignment, copies `min(old, new)` bytes and frees the old block. `None` (the old block left
/// live and untouched) when the allocation fails. Strategies call it after their in-place
/// attempts.
///
/// # Safety
/// As for [`Strategy::realloc`].
pub unsafe fn realloc_by_moving<S: Strategy + ?Sized, P: PageSource>(
    strategy: &S,
    src: &P,
    ptr: NonNull<u8>,
    layout: Layout,
    new_size: usize,
) -> Option<NonNull<u8>> {
    // SAFETY: the caller guarantees `new_size` is a valid size for this alignment.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    // SAFETY: forwarded with the caller's guarantees.
    let new = unsafe { strategy.alloc(src, new_layout) }?;
    // SAFETY: both blocks are live, disjoint, and valid for `min` bytes.
    unsafe {
        ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size));
        strategy.dealloc(src, ptr, layout);
    }
    Some(new)
}
