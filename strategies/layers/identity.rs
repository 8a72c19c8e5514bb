//! `Identity<S>`: a layer that forwards every call, to measure what composition costs
//! (benchmark-only; see benches/README.md).

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::source::PageSource;
use crate::strategy::{BadFree, BlockInfo, CheckError, ConstInit, Found, Strategy, StrategyStats};

// ANCHOR: identity
/// Forwards every call to `S` unchanged: the zero-cost claim of composition, measured.
pub struct Identity<S>(pub S);

impl<S: ConstInit> ConstInit for Identity<S> {
    const INIT: Self = Identity(S::INIT);
}

// SAFETY: every call is forwarded unchanged, so `S`'s guarantees are this layer's.
unsafe impl<S: Strategy> Strategy for Identity<S> {
    fn name(&self) -> &'static str {
        "identity"
    }
    #[inline(always)]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc(src, layout) }
    }
    #[inline(always)]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.dealloc(src, ptr, layout) }
    }
    // ANCHOR_END: identity
    #[inline(always)]
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc_zeroed(src, layout) }
    }
    #[inline(always)]
    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.realloc(src, ptr, layout, new_size) }
    }
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.usable_size(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn locate(&self, ptr: NonNull<u8>, layout: Layout) -> Found {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.locate(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn dealloc_located<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        found: Option<Found>,
    ) {
        // SAFETY: forwarded with the caller's guarantees (`found` is the inner `locate`'s).
        unsafe { self.0.dealloc_located(src, ptr, layout, found) }
    }
    fn stats(&self) -> StrategyStats {
        self.0.stats()
    }
    #[inline(always)]
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.0.block_of(ptr)
    }
    #[inline(always)]
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.free(src, ptr) }
    }
    #[inline(always)]
    fn find(&self, ptr: *const u8) -> Option<Found> {
        self.0.find(ptr)
    }
    #[inline(always)]
    unsafe fn free_found<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        part: usize,
    ) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees (`part` is the inner `find`'s).
        unsafe { self.0.free_found(src, ptr, part) }
    }
    #[inline(always)]
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.free_batch(src, blocks) }
    }
    #[inline(always)]
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc_batch(src, layout, out) }
    }
    #[inline(always)]
    unsafe fn alloc_batch_usable<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
        out: &mut [NonNull<u8>],
        usable: &mut [usize],
    ) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc_batch_usable(src, layout, out, usable) }
    }
    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.release_all(src) }
    }
    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.check(src) }
    }
    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.trim(src) }
    }
    fn fork_prepare(&self) {
        self.0.fork_prepare();
    }
    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.fork_parent() }
    }
    unsafe fn fork_child(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.fork_child() }
    }
}
