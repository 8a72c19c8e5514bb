//! The worked example of the chapter "Layers": `Counting<S>`, a layer that counts the
//! allocations and frees that reach its inner strategy, and forwards everything.
//!
//! Placed under a thread cache, `ThreadCache<Counting<BestFit>>`, it shows how many calls the
//! cache absorbs (the tests below).

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use stratalloc::{BadFree, BlockInfo, CheckError, ConstInit, PageSource, Strategy, StrategyStats};

// ANCHOR: counting
/// Counts the allocations and frees that reach `S`; forwards every call unchanged.
pub struct Counting<S> {
    inner: S,
    allocs: AtomicUsize,
    frees: AtomicUsize,
}

impl<S: ConstInit> ConstInit for Counting<S> {
    const INIT: Self = Counting { inner: S::INIT, allocs: AtomicUsize::new(0), frees: AtomicUsize::new(0) };
}

impl<S> Counting<S> {
    /// Allocations (`alloc`, `alloc_zeroed`) that reached the inner strategy.
    pub fn allocs(&self) -> usize {
        self.allocs.load(Ordering::Relaxed)
    }
    /// Frees (`dealloc`, `free`) that reached the inner strategy.
    pub fn frees(&self) -> usize {
        self.frees.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded unchanged to `S`, so `S`'s guarantees (1)-(5) are this
// layer's; the counters are atomics and change no block.
unsafe impl<S: Strategy> Strategy for Counting<S> {
    fn name(&self) -> &'static str {
        "counting"
    }
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(src, layout) }
    }
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        self.frees.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(src, ptr, layout) }
    }
    // ANCHOR_END: counting
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_zeroed(src, layout) }
    }
    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.realloc(src, ptr, layout, new_size) }
    }
    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.usable_size(ptr, layout) }
    }
    fn stats(&self) -> StrategyStats {
        self.inner.stats()
    }
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.inner.block_of(ptr)
    }
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        self.frees.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.free(src, ptr) }
    }
    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.release_all(src) }
    }
    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.check(src) }
    }
    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.trim(src) }
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

#[cfg(test)]
mod tests {
    use super::Counting;
    use core::alloc::Layout;
    use stratalloc::{BestFit, Heap, ThreadCache};

    // ANCHOR: counting_test
    #[test]
    fn a_thread_cache_absorbs_repeated_pairs() {
        let heap: Heap<ThreadCache<Counting<BestFit>>> = Heap::new();
        let layout = Layout::from_size_align(64, 8).unwrap();
        for _ in 0..1000 {
            let p = heap.alloc_layout(layout).unwrap();
            // SAFETY: `p` is a live block of `heap`, allocated with `layout`.
            unsafe { heap.dealloc_layout(p, layout) };
        }
        let counted = heap.strategy().inner();
        // The first allocation reaches best fit; its free parks the block in the calling
        // thread's bin, and the 999 pairs after it never leave the cache.
        assert_eq!((counted.allocs(), counted.frees()), (1, 0));
        assert_eq!(heap.stats().live_objects, 0, "a cached block is not live");
        heap.trim(); // flushes this thread's bins into best fit
        assert_eq!(counted.frees(), 1);
    }
    // ANCHOR_END: counting_test

    #[test]
    fn under_no_cache_every_call_arrives() {
        let heap: Heap<Counting<BestFit>> = Heap::new();
        let layout = Layout::from_size_align(64, 8).unwrap();
        for _ in 0..10 {
            let p = heap.alloc_layout(layout).unwrap();
            // SAFETY: `p` is a live block of `heap`, allocated with `layout`.
            unsafe { heap.dealloc_layout(p, layout) };
        }
        assert_eq!((heap.strategy().allocs(), heap.strategy().frees()), (10, 10));
    }
}
