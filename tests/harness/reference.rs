//! `PagePerBlock`: the simplest correct strategy, a reference for testing the harness itself.
//!
//! Every block is its own page-source reservation (`alloc_ready`, rounded up to whole pages,
//! aligned as asked) and `dealloc` frees it. It keeps no free memory, so with `Tracked` the
//! Ready bytes equal its committed bytes at every moment. `Corrupting` wraps a strategy and
//! breaks one promise on purpose, to show the harness catches it.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use stratalloc::{BadFree, BlockInfo, CheckError, ConstInit, PageSource, Strategy, StrategyStats};

/// One reservation per block.
pub struct PagePerBlock {
    live_bytes: AtomicUsize,
    live_objects: AtomicUsize,
    peak_live_bytes: AtomicUsize,
    /// Invariant: `committed_bytes == Σ page_bytes(block)` over live blocks.
    committed_bytes: AtomicUsize,
}

impl ConstInit for PagePerBlock {
    const INIT: Self = PagePerBlock {
        live_bytes: AtomicUsize::new(0),
        live_objects: AtomicUsize::new(0),
        peak_live_bytes: AtomicUsize::new(0),
        committed_bytes: AtomicUsize::new(0),
    };
}

fn page_bytes<P: PageSource>(size: usize) -> usize {
    size.div_ceil(P::PAGE_BYTES) * P::PAGE_BYTES
}

impl PagePerBlock {
    fn account(&self, size: usize, pages: usize, add: bool) {
        if add {
            let live = self.live_bytes.fetch_add(size, Ordering::Relaxed) + size;
            self.peak_live_bytes.fetch_max(live, Ordering::Relaxed);
            self.live_objects.fetch_add(1, Ordering::Relaxed);
            self.committed_bytes.fetch_add(pages, Ordering::Relaxed);
        } else {
            self.live_bytes.fetch_sub(size, Ordering::Relaxed);
            self.live_objects.fetch_sub(1, Ordering::Relaxed);
            self.committed_bytes.fetch_sub(pages, Ordering::Relaxed);
        }
    }
}

// SAFETY: (1) each block is a fresh Ready reservation of at least `size` bytes, aligned as
// asked, disjoint from every other; (2) nothing writes into a live block; (3) the default
// `alloc_zeroed` clears; (4) failures are `None`; (5) all state is atomic.
unsafe impl Strategy for PagePerBlock {
    fn name(&self) -> &'static str {
        "page-per-block"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let pages = page_bytes::<P>(layout.size());
        let p = src.alloc_ready(pages, layout.align()).ok()?;
        self.account(layout.size(), pages, true);
        Some(p)
    }

    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        let pages = page_bytes::<P>(layout.size());
        // SAFETY: the block is a whole reservation of `pages` bytes from `src` (caller's
        // guarantee that it is live and was allocated here for this size).
        let _ = unsafe { src.free(ptr, pages) };
        self.account(layout.size(), pages, false);
    }

    unsafe fn usable_size(&self, _ptr: NonNull<u8>, layout: Layout) -> usize {
        layout.size()
    }

    fn block_of(&self, _ptr: *const u8) -> Option<BlockInfo> {
        None
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>) -> Result<usize, BadFree> {
        Err(BadFree::Foreign)
    }

    unsafe fn release_all<P: PageSource>(&self, _src: &P) {}

    fn stats(&self) -> StrategyStats {
        let committed = self.committed_bytes.load(Ordering::Relaxed);
        StrategyStats {
            live_bytes: self.live_bytes.load(Ordering::Relaxed),
            live_objects: self.live_objects.load(Ordering::Relaxed),
            peak_live_bytes: self.peak_live_bytes.load(Ordering::Relaxed),
            committed_bytes: committed,
            reserved_bytes: committed,
        }
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        let s = self.stats();
        if s.live_bytes > s.committed_bytes {
            return Err(CheckError { what: "live_bytes <= committed_bytes", addr: 0, detail: s.live_bytes });
        }
        Ok(())
    }

    /// No lock: every block is its own reservation and the counters are atomics.
    fn fork_prepare(&self) {}

    unsafe fn fork_parent(&self) {}

    unsafe fn fork_child(&self) {}
}

/// Wraps a strategy and, on every `REALLOC_EVERY`th realloc, flips one byte of the moved block:
/// a broken allocator for the harness's self-test.
pub struct Corrupting<S> {
    inner: S,
    reallocs: AtomicUsize,
}

impl<S: ConstInit> ConstInit for Corrupting<S> {
    const INIT: Self = Corrupting { inner: S::INIT, reallocs: AtomicUsize::new(0) };
}

// SAFETY: deliberately broken (point 2: it changes the contents of live blocks); used only to
// show that the harness detects a broken strategy. Every other point is `inner`'s.
unsafe impl<S: Strategy> Strategy for Corrupting<S> {
    fn name(&self) -> &'static str {
        "corrupting"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(src, layout) }
    }

    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(src, ptr, layout) }
    }

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.realloc(src, ptr, layout, new_size) }?;
        if self.reallocs.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            // SAFETY: the block is live and at least one byte long (new_size > 0).
            unsafe { *p.as_ptr() ^= 0x40 };
        }
        Some(p)
    }

    fn block_of(&self, _ptr: *const u8) -> Option<BlockInfo> {
        None
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>) -> Result<usize, BadFree> {
        Err(BadFree::Foreign)
    }

    unsafe fn release_all<P: PageSource>(&self, _src: &P) {}

    fn stats(&self) -> StrategyStats {
        self.inner.stats()
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.check(src) }
    }

    fn fork_prepare(&self) {
        self.inner.fork_prepare();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_parent() }
    }

    unsafe fn fork_child(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_child() }
    }
}

/// A strategy that refuses every request: correct by `Strategy`'s letter (null is always a
/// legal answer there), useless in fact. The harness must report it, over every source.
pub struct Refusing;

impl ConstInit for Refusing {
    const INIT: Self = Refusing;
}

// SAFETY: it never hands out a block, so (1)-(3) hold vacuously; (4) it fails with `None`
// and takes nothing from the source; (5) it has no state.
unsafe impl Strategy for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }

    unsafe fn alloc<P: PageSource>(&self, _src: &P, _layout: Layout) -> Option<NonNull<u8>> {
        None
    }

    unsafe fn dealloc<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>, _layout: Layout) {}

    unsafe fn realloc<P: PageSource>(
        &self,
        _src: &P,
        _ptr: NonNull<u8>,
        _layout: Layout,
        _new_size: usize,
    ) -> Option<NonNull<u8>> {
        None
    }

    fn block_of(&self, _ptr: *const u8) -> Option<BlockInfo> {
        None
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>) -> Result<usize, BadFree> {
        Err(BadFree::Foreign)
    }

    unsafe fn release_all<P: PageSource>(&self, _src: &P) {}

    fn stats(&self) -> StrategyStats {
        StrategyStats::default()
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        Ok(())
    }

    /// No state, so no lock.
    fn fork_prepare(&self) {}

    unsafe fn fork_parent(&self) {}

    unsafe fn fork_child(&self) {}
}
