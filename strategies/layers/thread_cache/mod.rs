//! `ThreadCache<S>`: per-thread bounded stacks of recently freed small blocks in front of
//! any `S` (glibc's tcache). See `layers/mod.rs` for the overview.

// Without `std` nothing binds records to threads: the record code is unused there.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
mod record;
#[cfg(feature = "std")]
mod tls;

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

pub use record::{BIN_BYTES, BIN_CAP, BIN_COUNT, FLUSH_AFTER_OVERFLOWS, MAX_CACHED_BYTES, STREAK_FOR_BATCH};
use record::{Record, Root, bin_for_block, is_marked};

use crate::source::PageSource;
use crate::strategy::{BadFree, BlockInfo, CheckError, ConstInit, Found, Strategy, StrategyStats};
use crate::sync::SpinLock;

/// A thread cache in front of `S`; see the [module docs](super).
///
/// ```
/// use stratalloc::{Arenas, BestFit, Heap, ThreadCache};
/// static G: Heap<ThreadCache<Arenas<BestFit>>> = Heap::new();
/// let l = core::alloc::Layout::new::<[u8; 100]>();
/// let p = G.alloc_layout(l).unwrap();
/// // SAFETY: `p` is a live block of `G` allocated for `l`.
/// unsafe { G.dealloc_layout(p, l) };
/// assert_eq!(G.alloc_layout(l), Some(p)); // served from this thread's cache
/// ```
pub struct ThreadCache<S> {
    inner: S,
    /// The cache root (page-source memory), or null before the first cached free and after
    /// `release_all`. Written under `init`; published with Release.
    root: AtomicPtr<Root>,
    /// The root's generation, 0 when there is none: a thread's slot serves this heap only
    /// while its generation equals this, so slots of a released heap are never used.
    generation: AtomicU64,
    /// Serialises making the root.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    init: SpinLock<()>,
}

impl<S: ConstInit> ConstInit for ThreadCache<S> {
    const INIT: Self = Self::new(S::INIT);
}

impl<S> ThreadCache<S> {
    /// A thread cache in front of `inner` (for strategies chosen at run time).
    pub const fn new(inner: S) -> Self {
        ThreadCache {
            inner,
            root: AtomicPtr::new(ptr::null_mut()),
            generation: AtomicU64::new(0),
            init: SpinLock::new(()),
        }
    }

    /// The inner strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    #[inline(always)]
    fn root(&self) -> Option<&Root> {
        // SAFETY: a published root stays valid until `release_all`, which runs with no
        // other call on the strategy.
        NonNull::new(self.root.load(Ordering::Acquire)).map(|r| unsafe { &*r.as_ptr() })
    }
}

impl<S: Strategy> ThreadCache<S> {
    /// The calling thread's record and the root, if it has one for this heap (fast path).
    #[inline(always)]
    fn current(&self) -> Option<(&Record, &Root)> {
        #[cfg(feature = "std")]
        {
            let (rec, root) = tls::current(self.generation.load(Ordering::Relaxed))?;
            // SAFETY: the slot's generation is the heap's, so its root is this heap's live
            // root and the record the calling thread's own.
            Some(unsafe { (&*rec.as_ptr(), &*root.as_ptr()) })
        }
        #[cfg(not(feature = "std"))]
        None
    }

    /// The calling thread's record, made (with the root) if needed; `None` without one.
    #[inline]
    fn record<P: PageSource>(&self, src: &P) -> Option<(&Record, &Root)> {
        match self.current() {
            Some(r) => Some(r),
            None => self.record_slow(src),
        }
    }

    #[cold]
    fn record_slow<P: PageSource>(&self, src: &P) -> Option<(&Record, &Root)> {
        #[cfg(feature = "std")]
        {
            let root = match NonNull::new(self.root.load(Ordering::Acquire)) {
                Some(r) => r,
                None => self.make_root(src)?,
            };
            // SAFETY: a published root (see `root`).
            let generation = unsafe { root.as_ref() }.generation;
            let rec = tls::bind(generation, root, src)?;
            // SAFETY: the record is the calling thread's own, of this live root.
            Some(unsafe { (&*rec.as_ptr(), &*root.as_ptr()) })
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = src;
            None
        }
    }

    #[cfg(feature = "std")]
    #[cold]
    fn make_root<P: PageSource>(&self, src: &P) -> Option<NonNull<Root>> {
        let _g = self.init.lock();
        if let Some(r) = NonNull::new(self.root.load(Ordering::Acquire)) {
            return Some(r);
        }
        let generation = tls::next_generation();
        let root = Root::make(src, generation, mark_key(generation, ptr::from_ref(self).addr()))?;
        tls::register(root);
        self.root.store(root.as_ptr(), Ordering::Release);
        self.generation.store(generation, Ordering::Release);
        Some(root)
    }

    /// Gives the calling thread's cached blocks and every idle record's back to the inner
    /// strategy; returns how many.
    fn flush<P: PageSource>(&self, src: &P) -> usize {
        let Some(root) = self.root() else { return 0 };
        // SAFETY: the calling thread owns its record; the inner strategy's source.
        let mine = self.current().map_or(0, |(rec, _)| unsafe { rec.flush(&self.inner, src, root.key) });
        mine + root.flush_idle(&self.inner, src)
    }

    /// The thread has freed [`FLUSH_AFTER_OVERFLOWS`] blocks past full bins since its last
    /// refill (a large working set going away): its cached blocks and the idle records' go
    /// back to the inner strategy, and its record is bypassed until its next refill, so that
    /// no block of the working set stays cached, keeping an inner chunk from becoming wholly
    /// free and going back to the source (issue 19; `Record::bypass`).
    #[cold]
    #[inline(never)]
    fn flush_and_bypass<P: PageSource>(&self, src: &P, rec: &Record, root: &Root) {
        // SAFETY: the calling thread's record, of this root; flushed just before `bypass`.
        unsafe {
            rec.flush(&self.inner, src, root.key);
            rec.bypass();
        }
        root.flush_idle(&self.inner, src);
    }

    /// The allocation failed: flush the caches into the inner strategy and try once more.
    ///
    /// # Safety
    /// As for [`Strategy::alloc`].
    #[cold]
    unsafe fn alloc_after_flush<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
        zeroed: bool,
    ) -> Option<NonNull<u8>> {
        if self.flush(src) == 0 {
            return None;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { if zeroed { self.inner.alloc_zeroed(src, layout) } else { self.inner.alloc(src, layout) } }
    }

    /// The calling thread's bins are empty for `layout`: takes [`REFILL_BLOCKS`] blocks for
    /// it, with their usable sizes, from the inner strategy in one
    /// [`Strategy::alloc_batch_usable`] (one lock, where the
    /// inner strategy takes one per call), or [`REFILL_BATCH`] when the thread has refilled
    /// more than [`STREAK_FOR_BATCH`] times since it last cached a block it freed (a
    /// producer whose blocks other threads free: glibc's tcache is refilled with up to a
    /// bin's worth from the fastbin that the consumers' frees fill); returns the first and
    /// caches the others, and, the first time for this request size, learns the bin the
    /// inner strategy's blocks for it land in. `None` with nothing changed when the inner
    /// strategy gives none (or no record can be made).
    ///
    /// # Safety
    /// As for [`Strategy::alloc`]; `layout` is [`cacheable`].
    #[inline(never)]
    unsafe fn refill<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let (rec, root) = self.record(src)?;
        let mut buf = [NonNull::<u8>::dangling(); REFILL_BATCH];
        let mut sizes = [0; REFILL_BATCH];
        // SAFETY: the calling thread's record.
        let want = if unsafe { rec.note_refill() } { REFILL_BATCH } else { REFILL_BLOCKS };
        // SAFETY: the calling thread's record; `layout` is cacheable.
        let learn = !unsafe { rec.knows_fit(layout.size()) };
        // Sizes only where they are needed: a single block handed out needs none.
        // SAFETY: forwarded with the caller's guarantees; `sizes` is as long as `buf`.
        let n = unsafe {
            if want > 1 || learn {
                self.inner.alloc_batch_usable(src, layout, &mut buf[..want], &mut sizes)
            } else {
                self.inner.alloc_batch(src, layout, &mut buf[..want])
            }
        };
        let (&first, rest) = buf[..n].split_first()?;
        if learn && let Some(b) = bin_for_block(first.addr().get(), sizes[0]) {
            // SAFETY: the calling thread's record; `layout` is cacheable, `b` a bin.
            unsafe { rec.learn_fit(layout.size(), b) };
        }
        for (&p, &usable) in rest.iter().zip(&sizes[1..]) {
            // `usable`: the inner strategy's usable size of the live block `p` (from
            // `alloc_batch_usable`).
            match bin_for_block(p.addr().get(), usable) {
                // SAFETY: the calling thread's record; a live block nobody uses, 16-aligned
                // with its usable size in bin `b` (`bin_for_block`).
                Some(b) if unsafe { rec.push(p, b, usable, root.key) } => {}
                // SAFETY: a live inner block for `layout`, given back unused.
                _ => unsafe { self.inner.dealloc(src, p, layout) },
            }
        }
        Some(first)
    }

    /// A cached block for `layout`, if the calling thread's bin has one (for an
    /// over-aligned layout, one whose start happens to be aligned).
    #[inline(always)]
    fn pop(&self, layout: Layout) -> Option<NonNull<u8>> {
        if !cacheable(layout) {
            if layout.size() <= MAX_CACHED_BYTES {
                return self.pop_aligned(layout);
            }
            return None;
        }
        let (rec, root) = self.current()?;
        // SAFETY: the record is the calling thread's; the size is 1..=MAX_CACHED_BYTES.
        unsafe { rec.pop_fit(layout.size(), root.key) }.map(|(p, _)| p)
    }

    /// [`pop`](Self::pop) for an over-aligned layout of at most `MAX_CACHED_BYTES`: a cached
    /// block at an aligned address that the inner strategy says honours `layout` (its
    /// `block_of`: the alignment a layout for the block may name, which may be less than the
    /// address's, and the usable size).
    #[cold]
    #[inline(never)]
    fn pop_aligned(&self, layout: Layout) -> Option<NonNull<u8>> {
        let (rec, root) = self.current()?;
        let honours = |p: NonNull<u8>| {
            self.inner
                .block_of(p.as_ptr())
                .is_some_and(|i| i.align >= layout.align() && i.usable >= layout.size())
        };
        // SAFETY: the record is the calling thread's; the size is at most MAX_CACHED_BYTES
        // (caller).
        unsafe { rec.pop_aligned(layout.size(), layout.align(), root.key, &honours) }.map(|(p, _)| p)
    }
}

/// How many blocks a refill of an empty bin takes from the inner strategy at once (one is
/// handed out, the others cached; a bin holds at most [`BIN_CAP`]). 1: a batch of 4 measured
/// no faster on the harness's threaded workloads (benches/README.md, "Layers"); the refill
/// still learns where the request's blocks land (`Record::learn_fit`).
pub const REFILL_BLOCKS: usize = 1;
/// How many blocks a refill takes once the thread has refilled more than
/// [`STREAK_FOR_BATCH`] times since it last cached a block it freed: a bin's worth and the
/// one handed out (a producer whose blocks other threads free takes one arena lock per
/// bin's worth instead of one per allocation).
pub const REFILL_BATCH: usize = BIN_CAP as usize + 1;
const _: () = assert!(REFILL_BLOCKS >= 1 && REFILL_BLOCKS <= REFILL_BATCH);

/// Whether requests of `layout` are served from the bins.
#[inline(always)]
fn cacheable(layout: Layout) -> bool {
    layout.size() <= MAX_CACHED_BYTES && layout.align() <= BIN_BYTES
}

/// The mark key of a heap: a hash of its generation, the heap's address and a stack address
/// (no entropy source: the OS is reached only through page sources). It makes a live block
/// that happens to hold the mark vanishingly unlikely, not impossible for a program that
/// reads the heap's metadata.
#[cfg(feature = "std")]
fn mark_key(generation: u64, heap: usize) -> usize {
    let here = 0u8;
    let mut x =
        generation ^ (heap as u64).rotate_left(17) ^ ((&raw const here).addr() as u64).rotate_left(41);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as usize | 1 << 63
}

// SAFETY: (1)-(3) a block handed out is either fresh from the inner strategy or a cached
// one: live in the inner strategy (the cache is its user), taken off the calling thread's
// own bin, of usable size at least the request (bin arithmetic) and 16-aligned; the cache
// writes only into blocks it holds (not live to the user), and clears its mark before
// handing one out; `alloc_zeroed` zeroes cached blocks. (4) failures are `None`; record
// memory comes from the page source. (5) bins are per thread; shared state is behind locks
// or atomic.
unsafe impl<S: Strategy> Strategy for ThreadCache<S> {
    fn name(&self) -> &'static str {
        "tcache"
    }

    // ANCHOR: tcache_alloc
    #[inline]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        if let Some(p) = self.pop(layout) {
            return Some(p);
        }
        if cacheable(layout)
            // SAFETY: forwarded with the caller's guarantees.
            && let Some(p) = unsafe { self.refill(src, layout) }
        {
            return Some(p);
        }
        // SAFETY: forwarded with the caller's guarantees.
        match unsafe { self.inner.alloc(src, layout) } {
            Some(p) => Some(p),
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { self.alloc_after_flush(src, layout, false) },
        }
    }
    // ANCHOR_END: tcache_alloc

    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        if let Some(p) = self.pop(layout) {
            // SAFETY: the block is valid for `layout.size()` bytes and now the caller's.
            unsafe { ptr::write_bytes(p.as_ptr(), 0, layout.size()) };
            return Some(p);
        }
        // SAFETY: forwarded with the caller's guarantees.
        match unsafe { self.inner.alloc_zeroed(src, layout) } {
            Some(p) => Some(p),
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { self.alloc_after_flush(src, layout, true) },
        }
    }

    // ANCHOR: tcache_dealloc
    #[inline]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() < MAX_CACHED_BYTES + BIN_BYTES
            && layout.align() <= BIN_BYTES
            && let Some((rec, root)) = self.record(src)
        {
            // SAFETY: `ptr` is a live block for `layout` (caller).
            let found = unsafe { self.inner.locate(ptr, layout) };
            if let Some(b) = bin_for_block(ptr.addr().get(), found.info.usable) {
                let info = BlockInfo { align: BIN_BYTES, ..found.info };
                // SAFETY: a live, cacheable inner block (caller; `bin_for_block`).
                if unsafe { is_marked(ptr, &info, root.key) } {
                    // Already in a cache: a double free; caching it twice would hand it out
                    // twice, so it is ignored.
                    debug_assert!(false, "ThreadCache::dealloc: double free of {ptr:p}");
                    return;
                }
                // SAFETY: the calling thread's record; the caller gives the block up.
                if unsafe { rec.push_freed(ptr, b, found.info.usable, root.key) } {
                    return;
                }
                // A full bin. After a long run of these the cache is emptied and bypassed
                // (`note_overflow`); this block goes down either way, below.
                // SAFETY: the calling thread's record.
                if unsafe { rec.note_overflow() } {
                    self.flush_and_bypass(src, rec, root);
                }
            }
            // Not cached (a full bin, a block no bin takes): to the inner strategy with what
            // the lookup found, so that it does not look again. One call site, so that the
            // inner free stays inlined here.
            // SAFETY: forwarded with the caller's guarantees; `found` is the inner
            // strategy's `locate` of this live block, made above (emptying the cache moved
            // other blocks, not this one).
            return unsafe { self.inner.dealloc_located(src, ptr, layout, Some(found)) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(src, ptr, layout) }
    }
    // ANCHOR_END: tcache_dealloc

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // A live block is not cached: the inner strategy resizes it.
        // SAFETY: forwarded with the caller's guarantees.
        if let Some(p) = unsafe { self.inner.realloc(src, ptr, layout, new_size) } {
            return Some(p);
        }
        if self.flush(src) == 0 {
            return None;
        }
        // SAFETY: forwarded with the caller's guarantees; the failed call left `ptr` live.
        unsafe { self.inner.realloc(src, ptr, layout, new_size) }
    }

    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.usable_size(ptr, layout) }
    }

    fn stats(&self) -> StrategyStats {
        let mut s = self.inner.stats();
        if let Some(root) = self.root() {
            let (bytes, objects) = root.cached();
            s.live_bytes = s.live_bytes.saturating_sub(bytes);
            s.live_objects = s.live_objects.saturating_sub(objects);
            s.committed_bytes += root.meta_bytes();
            s.reserved_bytes += root.meta_bytes();
        }
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes);
        s
    }

    #[inline]
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.find(ptr).map(|f| f.info)
    }

    /// The inner strategy's `find`, less the blocks in a cache (free to the user).
    #[inline]
    fn find(&self, ptr: *const u8) -> Option<Found> {
        let found = self.inner.find(ptr)?;
        if bin_for_block(found.info.start, found.info.usable).is_some()
            && let Some(root) = self.root()
            // SAFETY: `ptr` is the start of a live, cacheable inner block (just looked up).
            && unsafe { is_marked(NonNull::new_unchecked(ptr.cast_mut()), &found.info, root.key) }
        {
            return None; // cached: free, to the user
        }
        Some(found)
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // Validate first, with the lookup that also finds the inner part holding the block.
        // A pointer the inner strategy does not know is its to refuse (with the reason).
        let Some(found) = self.inner.find(ptr.as_ptr()) else {
            // SAFETY: forwarded; the inner strategy refuses it, changing nothing.
            return unsafe { self.inner.free(src, ptr) };
        };
        let info = found.info;
        if let Some(b) = bin_for_block(info.start, info.usable) {
            let rec = self.record(src);
            if let Some(root) = self.root() {
                // SAFETY: a live, cacheable inner block (looked up above).
                if unsafe { is_marked(ptr, &info, root.key) } {
                    return Err(BadFree::NotLive); // in a cache already: a double free
                }
            }
            if let Some((rec, root)) = rec {
                // SAFETY: the calling thread's record; a live block the caller gives up,
                // 16-aligned with its usable size in bin `b` (`bin_for_block`).
                if unsafe { rec.push_freed(ptr, b, info.usable, root.key) } {
                    return Ok(info.usable);
                }
                // A full bin: down to the part the lookup found, which checks the block
                // again only as far as another thread may have changed it since.
                // SAFETY: forwarded with the caller's guarantees; `found` is the inner
                // `find` of `ptr`, just made on this thread.
                let r = unsafe { self.inner.free_found(src, ptr, found.part) };
                // SAFETY: the calling thread's record.
                if r.is_ok() && unsafe { rec.note_overflow() } {
                    self.flush_and_bypass(src, rec, root);
                }
                return r;
            }
        }
        // SAFETY: as above.
        unsafe { self.inner.free_found(src, ptr, found.part) }
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        let root = NonNull::new(self.root.swap(ptr::null_mut(), Ordering::AcqRel));
        self.generation.store(0, Ordering::Release);
        if let Some(root) = root {
            // Off the registry first: from now on no exiting thread touches the root.
            #[cfg(feature = "std")]
            tls::unregister(root);
            // SAFETY: no other thread uses the strategy (caller) and none can reach the
            // root any more; it came from `src`.
            unsafe { Root::release(root, src) };
        }
        // SAFETY: forwarded with the caller's guarantees; cached blocks are live blocks of
        // the inner strategy, released with it.
        unsafe { self.inner.release_all(src) }
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        if let Some(root) = self.root() {
            // SAFETY: no other thread uses the strategy (caller).
            unsafe { root.check::<S, P>(&self.inner) }?;
            if root.generation != self.generation.load(Ordering::Relaxed) {
                return Err(CheckError {
                    what: "root generation == heap generation",
                    addr: 0,
                    detail: root.generation as usize,
                });
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.check(src) }
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        self.flush(src);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.trim(src) }
    }

    /// The root's lock, then the inner strategy's locks.
    fn fork_prepare(&self) {
        if let Some(root) = self.root() {
            root.fork_lock();
        }
        self.inner.fork_prepare();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: this thread took the locks in `fork_prepare` (caller).
        unsafe {
            self.inner.fork_parent();
            if let Some(root) = self.root() {
                root.fork_unlock();
            }
        }
    }

    unsafe fn fork_child(&self) {
        // SAFETY: the child's only thread took the locks in `fork_prepare` (caller); the
        // registry is not held by it (it was in no registry section when it forked).
        unsafe {
            self.inner.fork_child();
            #[cfg(feature = "std")]
            tls::registry_after_fork();
            if let Some(root) = self.root() {
                root.fork_unlock();
                let mine = self.current().map_or(ptr::null_mut(), |(r, _)| ptr::from_ref(r).cast_mut());
                root.adopt_orphans(mine);
            }
        }
    }
}
