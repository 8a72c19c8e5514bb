//! `Heap<S, P>`: the front end users write, `static GLOBAL: Heap<Tiered> = Heap::new();`.
//!
//! It pairs a [`Strategy`] with its [`PageSource`], answers zero-size requests itself, counts
//! the page-source calls, and implements [`GlobalAlloc`] and allocator-api2's [`Allocator`].
//! It is lazy (building one does no work) and never allocates through the global allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::source::{Op, PageSource, SourceError};
use crate::strategy::{BadFree, BlockInfo, CheckError, ConstInit, Strategy};

#[cfg(unix)]
use crate::source::Mmap;

/// Calls made to a page source and bytes passed, per [`Op`] (indexed by [`Op::index`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceCalls {
    /// Successful calls of each kind.
    pub calls: [u64; 6],
    /// Bytes passed to the successful calls of each kind.
    pub bytes: [u64; 6],
    /// Calls of any kind that failed.
    pub failed: u64,
}

impl SourceCalls {
    /// Successful calls of one kind.
    pub fn calls_of(&self, op: Op) -> u64 {
        self.calls[op.index()]
    }

    /// Bytes passed to successful calls of one kind.
    pub fn bytes_of(&self, op: Op) -> u64 {
        self.bytes[op.index()]
    }

    /// All successful calls.
    pub fn total(&self) -> u64 {
        self.calls.iter().sum()
    }
}

/// A snapshot of a heap's statistics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes requested by live blocks.
    pub live_bytes: usize,
    /// Live blocks.
    pub live_objects: usize,
    /// The highest `live_bytes` seen (see [`StrategyStats`](crate::StrategyStats)).
    pub peak_live_bytes: usize,
    /// Bytes the strategy holds Ready (live, free-for-reuse and metadata).
    pub committed_bytes: usize,
    /// Address space held.
    pub reserved_bytes: usize,
    /// Page-source calls made since the heap was created.
    pub source: SourceCalls,
}

// ANCHOR: counted
/// A page source wrapper that counts calls; the only layer between a strategy and its source.
pub(crate) struct Counted<P> {
    inner: P,
    calls: [AtomicU64; 6],
    bytes: [AtomicU64; 6],
    failed: AtomicU64,
}
// ANCHOR_END: counted

impl<P> Counted<P> {
    const fn new(inner: P) -> Self {
        Counted {
            inner,
            calls: [const { AtomicU64::new(0) }; 6],
            bytes: [const { AtomicU64::new(0) }; 6],
            failed: AtomicU64::new(0),
        }
    }

    #[inline]
    fn count<T>(&self, op: Op, bytes: usize, r: Result<T, SourceError>) -> Result<T, SourceError> {
        if r.is_ok() {
            self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
            self.bytes[op.index()].fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn snapshot(&self) -> SourceCalls {
        SourceCalls {
            calls: core::array::from_fn(|i| self.calls[i].load(Ordering::Relaxed)),
            bytes: core::array::from_fn(|i| self.bytes[i].load(Ordering::Relaxed)),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

// SAFETY: every call is forwarded unchanged to the inner source, whose guarantees carry over;
// counting touches only the counters.
unsafe impl<P: PageSource> PageSource for Counted<P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = P::FRESH_ZEROED;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        self.count(Op::Reserve, bytes, self.inner.reserve(bytes, align))
    }
    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.count(Op::Map, bytes, unsafe { self.inner.map(base, bytes) })
    }
    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.count(Op::Used, bytes, unsafe { self.inner.used(base, bytes) })
    }
    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.hint_dense(base, bytes) }
    }
    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.count(Op::Unused, bytes, unsafe { self.inner.unused(base, bytes) })
    }
    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.count(Op::Fault, bytes, unsafe { self.inner.fault(base, bytes) })
    }
    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        self.count(Op::Free, bytes, unsafe { self.inner.free(base, bytes) })
    }
}

// ANCHOR: heap_struct
/// An allocator: strategy `S` drawing memory from page source `P`.
///
/// ```
/// use stratalloc::{Heap, FirstFit};
/// static HEAP: Heap<FirstFit> = Heap::new();
/// let mut v = allocator_api2::vec::Vec::new_in(&HEAP);
/// v.extend([1u32, 2, 3]);
/// assert_eq!(v.iter().sum::<u32>(), 6);
/// assert_eq!(HEAP.stats().live_objects, 1);
/// ```
///
/// Zero-size requests get a dangling pointer aligned as asked (no memory is used). Failure
/// is a null pointer ([`GlobalAlloc`]) or [`AllocError`] ([`Allocator`]), never a panic.
///
/// Dropping a heap gives everything it took from its source back
/// ([`Strategy::release_all`]), live blocks included, like mimalloc's `mi_heap_destroy`: a
/// block must not be used after its heap is dropped. (A heap in a `static` is never dropped.)
#[cfg(unix)]
pub struct Heap<S: Strategy, P: PageSource = Mmap> {
    strategy: S,
    source: Counted<P>,
}
// ANCHOR_END: heap_struct

/// An allocator: strategy `S` drawing memory from page source `P`.
#[cfg(not(unix))]
pub struct Heap<S: Strategy, P: PageSource> {
    strategy: S,
    source: Counted<P>,
}

impl<S: Strategy + ConstInit, P: PageSource + ConstInit> Heap<S, P> {
    // ANCHOR: heap_new
    /// A heap with the strategy's and the source's initial values; does no work.
    pub const fn new() -> Self {
        Heap { strategy: S::INIT, source: Counted::new(P::INIT) }
    }
    // ANCHOR_END: heap_new
}

impl<S: Strategy + ConstInit, P: PageSource + ConstInit> Default for Heap<S, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Strategy + ConstInit, P: PageSource> Heap<S, P> {
    /// A heap over a given source (for [`Fixed`](crate::Fixed) or a configured wrapper).
    pub const fn with_source(source: P) -> Self {
        Heap { strategy: S::INIT, source: Counted::new(source) }
    }
}

impl<S: Strategy, P: PageSource> Heap<S, P> {
    /// A heap from a strategy value and a source (for a strategy chosen at run time).
    pub const fn from_parts(strategy: S, source: P) -> Self {
        Heap { strategy, source: Counted::new(source) }
    }

    /// The strategy.
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// The page source (without the heap's counting layer).
    pub fn source(&self) -> &P {
        &self.source.inner
    }
}

// ANCHOR: dangling
/// A dangling pointer aligned to `align`, for zero-size blocks.
#[inline]
fn dangling(align: usize) -> NonNull<u8> {
    // `align` is a non-zero power of two, so this is never null.
    NonNull::new(ptr::without_provenance_mut(align)).unwrap_or(NonNull::dangling())
}
// ANCHOR_END: dangling

impl<S: Strategy, P: PageSource> Heap<S, P> {
    /// Current statistics.
    pub fn stats(&self) -> Stats {
        let s = self.strategy.stats();
        Stats {
            live_bytes: s.live_bytes,
            live_objects: s.live_objects,
            peak_live_bytes: s.peak_live_bytes,
            committed_bytes: s.committed_bytes,
            reserved_bytes: s.reserved_bytes,
            source: self.source.snapshot(),
        }
    }

    /// Walks the strategy's structures and checks its invariants (see [`Strategy::check`]).
    ///
    /// # Safety
    /// No other thread may use the heap during the call.
    pub unsafe fn check(&self) -> Result<(), CheckError> {
        // SAFETY: this heap's source is the one the strategy has always used; the caller
        // guarantees exclusivity.
        unsafe { self.strategy.check(&self.source) }
    }

    // ANCHOR: heap_by_address
    /// The live block of this heap that starts at `ptr`, found from the address alone; `None`
    /// for any other pointer (interior, freed, foreign, null), without undefined behaviour.
    /// See [`Strategy::block_of`].
    #[inline]
    pub fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.strategy.block_of(ptr)
    }

    /// Frees the block that starts at `ptr` without its layout (C's `free`); returns its
    /// usable size. A pointer that is not a live block of this heap (a double free, an
    /// interior, stack or foreign pointer) is refused with the reason and changes nothing.
    /// See [`Strategy::free`]. (Zero-size blocks own no memory and are not blocks: their
    /// dangling pointers are refused as [`BadFree::Foreign`].)
    ///
    /// # Safety
    /// If `ptr` is a live block of this heap, it is not used after the call and no other
    /// thread frees or resizes it concurrently.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: this heap's source is the one the strategy has always used; the caller
        // gives the block up.
        unsafe { self.strategy.free(&self.source, ptr) }
    }

    /// [`Strategy::alloc_cached`]: an allocation from the calling thread's cache alone, or
    /// `None` with nothing changed (then use [`alloc`](GlobalAlloc::alloc)).
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    #[inline]
    pub unsafe fn alloc_cached(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: non-zero size (the caller); the strategy's only source is this heap's.
        unsafe { self.strategy.alloc_cached(layout) }
    }

    /// [`Strategy::free_cached`]: frees `ptr` into the calling thread's cache if it is a live
    /// block that can go there; `false`, with nothing changed, otherwise (then use
    /// [`free`](Self::free)).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[inline]
    pub unsafe fn free_cached(&self, ptr: NonNull<u8>) -> bool {
        // SAFETY: the caller's guarantee is `free`'s.
        unsafe { self.strategy.free_cached(ptr) }
    }

    /// [`Strategy::free_cached_fast`]: `free_cached`'s call-free first step; on `Missed`
    /// use [`free_cached`](Self::free_cached) or [`free`](Self::free), on `Refused`
    /// [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    #[inline]
    pub unsafe fn free_cached_fast(&self, ptr: NonNull<u8>) -> crate::CachedFree {
        // SAFETY: the caller's guarantee is `free`'s.
        unsafe { self.strategy.free_cached_fast(ptr) }
    }

    /// Gives everything back to the page source, live blocks included, and leaves the heap
    /// as new (what dropping it does; see [`Strategy::release_all`]).
    ///
    /// # Safety
    /// No block of this heap is used after the call, and no other thread uses the heap during
    /// it.
    pub unsafe fn release_all(&self) {
        // SAFETY: this heap's source is the strategy's; the caller's guarantees are the rest.
        unsafe { self.strategy.release_all(&self.source) }
    }
    // ANCHOR_END: heap_by_address

    /// Gives free memory back to the page source where the strategy can; returns the bytes.
    pub fn trim(&self) -> usize {
        // SAFETY: this heap's source is the one the strategy has always used.
        unsafe { self.strategy.trim(&self.source) }
    }

    /// The `fork` protocol, prepare step: takes every lock of the strategy (see
    /// [`Strategy::fork_prepare`]). Call it from a `pthread_atfork` prepare handler (or just
    /// before `fork`), then [`fork_parent`](Self::fork_parent) in the parent and
    /// [`fork_child`](Self::fork_child) in the child. The page source's own locks (`Fixed`,
    /// `Tracked`; `Mmap` has none) need no step for the strategies of this crate, whose every
    /// source call runs under one of their locks.
    pub fn fork_prepare(&self) {
        self.strategy.fork_prepare();
    }

    /// The `fork` protocol in the parent: releases what [`fork_prepare`](Self::fork_prepare)
    /// took.
    ///
    /// # Safety
    /// The calling thread called `fork_prepare` on this heap and has not released it since.
    pub unsafe fn fork_parent(&self) {
        // SAFETY: the caller's guarantee is the strategy's.
        unsafe { self.strategy.fork_parent() }
    }

    /// The `fork` protocol in the child: releases what [`fork_prepare`](Self::fork_prepare)
    /// took.
    ///
    /// # Safety
    /// Called in the child of a `fork` made after the calling thread's `fork_prepare` on
    /// this heap, before any other use of the heap in the child.
    pub unsafe fn fork_child(&self) {
        // SAFETY: the caller's guarantee is the strategy's.
        unsafe { self.strategy.fork_child() }
    }

    // ANCHOR: alloc_layout
    /// Allocates; `None` when the source is exhausted. Zero-size layouts get a dangling
    /// pointer.
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return Some(dangling(layout.align()));
        }
        // SAFETY: the size is non-zero and the source is the strategy's own.
        unsafe { self.strategy.alloc(&self.source, layout) }
    }
    // ANCHOR_END: alloc_layout

    /// Frees a block from [`alloc_layout`](Self::alloc_layout) (or any other allocation of
    /// this heap); zero-size blocks are ignored, as their pointer owns no memory.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated for `layout` (or resized to it), and is
    /// not used afterwards.
    #[inline]
    pub unsafe fn dealloc_layout(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a live block of this heap with its layout.
        unsafe { self.free_layout(ptr, layout) }
    }

    /// How many bytes the block can really hold.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated for `layout`.
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        if layout.size() == 0 {
            return 0;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.strategy.usable_size(ptr, layout) }
    }

    /// Frees a block by its layout (nothing to do for a zero-size layout).
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated for `layout`, not used after the call.
    #[inline]
    unsafe fn free_layout(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller passes a live non-empty block of this heap.
            unsafe { self.strategy.dealloc(&self.source, ptr, layout) }
        }
    }

    /// Resizes keeping contents; `None` leaves the old block live.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated for `old`; after `Some` it is not used again.
    unsafe fn resize(&self, ptr: NonNull<u8>, old: Layout, new_size: usize) -> Option<NonNull<u8>> {
        if old.size() == 0 {
            let layout = Layout::from_size_align(new_size, old.align()).ok()?;
            return self.alloc_layout(layout);
        }
        if new_size == 0 {
            // SAFETY: `ptr` is a live non-empty block of this heap.
            unsafe { self.free_layout(ptr, old) };
            return Some(dangling(old.align()));
        }
        // Reject sizes the layout rules forbid before the strategy sees them: rounded up to
        // the alignment (a power of two already, `old` being a `Layout`), the size must not
        // pass `isize::MAX`. The bound alone, not `Layout::from_size_align`, which would test
        // the alignment again on every reallocation.
        if new_size > isize::MAX as usize - (old.align() - 1) {
            return None;
        }
        // SAFETY: `ptr` is live for `old`, `new_size` is non-zero and valid for the alignment.
        unsafe { self.strategy.realloc(&self.source, ptr, old, new_size) }
    }
}

// ANCHOR: heap_drop
impl<S: Strategy, P: PageSource> Drop for Heap<S, P> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no other thread uses the heap, and no `Allocator`
        // borrow of it is alive; blocks handed out through raw pointers (`GlobalAlloc`) must
        // not outlive their heap, as its documentation says. The source is the strategy's.
        unsafe { self.strategy.release_all(&self.source) }
    }
}
// ANCHOR_END: heap_drop

// ANCHOR: global_alloc
// SAFETY: every method forwards to a `Strategy`, whose contract gives exactly GlobalAlloc's
// guarantees (valid, aligned, disjoint blocks; contents kept by realloc; null on failure).
unsafe impl<S: Strategy, P: PageSource> GlobalAlloc for Heap<S, P> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.alloc_layout(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() == 0 {
            return dangling(layout.align()).as_ptr();
        }
        // SAFETY: non-zero size; the strategy's own source.
        unsafe { self.strategy.alloc_zeroed(&self.source, layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's caller passes a block of this allocator with its layout.
            unsafe { self.free_layout(p, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(ptr) else { return ptr::null_mut() };
        // SAFETY: GlobalAlloc's caller passes a live block of this allocator with its layout.
        unsafe { self.resize(p, layout, new_size) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}
// ANCHOR_END: global_alloc

// SAFETY: blocks are valid, aligned and disjoint until deallocated (Strategy contract), and
// stay valid when the `&Heap` used to allocate them is moved or copied, since all state
// lives in the heap itself.
unsafe impl<S: Strategy, P: PageSource> Allocator for Heap<S, P> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.alloc_layout(layout).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: `GlobalAlloc::alloc_zeroed` handles every layout, zero-size included.
        let p = NonNull::new(unsafe { GlobalAlloc::alloc_zeroed(self, layout) }).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a block of this allocator with its layout.
        unsafe { self.free_layout(ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller passes a live block of this allocator with its layout.
        unsafe { self.move_to(ptr, old, new) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller passes a live block of this allocator with its layout.
        let p = unsafe { self.move_to(ptr, old, new) }?;
        // SAFETY: the new block is valid for `new.size()` bytes and `old.size() <= new.size()`.
        unsafe { ptr::write_bytes(p.cast::<u8>().as_ptr().add(old.size()), 0, new.size() - old.size()) };
        Ok(p)
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller passes a live block of this allocator with its layout.
        unsafe { self.move_to(ptr, old, new) }
    }
}

impl<S: Strategy, P: PageSource> Heap<S, P> {
    /// grow / shrink: resize in place or move, handling a change of alignment by moving.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated for `old`; after `Ok` it is not used again.
    unsafe fn move_to(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let p = if new.align() == old.align() {
            // SAFETY: the caller passes a live block of this heap for `old`.
            unsafe { self.resize(ptr, old, new.size()) }.ok_or(AllocError)?
        } else {
            let p = self.alloc_layout(new).ok_or(AllocError)?;
            // SAFETY: both blocks are live and disjoint; the old one is freed after the copy.
            unsafe {
                ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old.size().min(new.size()));
                self.free_layout(ptr, old);
            }
            p
        };
        Ok(NonNull::slice_from_raw_parts(p, new.size()))
    }
}
