//! `Strategy for &'static S`: a strategy used through a shared reference, so that a layer
//! chosen at run time can wrap a strategy that lives elsewhere (the node pool of
//! [`AnyStrategy`](crate::AnyStrategy) compositions).

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::source::PageSource;
use crate::strategy::{BadFree, BlockInfo, CheckError, Found, Strategy, StrategyStats};

// SAFETY: every call is forwarded unchanged to `S`, whose guarantees are this impl's.
unsafe impl<S: Strategy> Strategy for &'static S {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    #[inline(always)]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).alloc(src, layout) }
    }
    #[inline(always)]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).dealloc(src, ptr, layout) }
    }
    #[inline(always)]
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).alloc_zeroed(src, layout) }
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
        unsafe { (**self).realloc(src, ptr, layout, new_size) }
    }
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).usable_size(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn locate(&self, ptr: NonNull<u8>, layout: Layout) -> Found {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).locate(ptr, layout) }
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
        unsafe { (**self).dealloc_located(src, ptr, layout, found) }
    }
    fn stats(&self) -> StrategyStats {
        (**self).stats()
    }
    #[inline(always)]
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        (**self).block_of(ptr)
    }
    #[inline(always)]
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).free(src, ptr) }
    }
    #[inline(always)]
    fn find(&self, ptr: *const u8) -> Option<Found> {
        (**self).find(ptr)
    }
    #[inline(always)]
    unsafe fn free_found<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        part: usize,
    ) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees (`part` is the inner `find`'s).
        unsafe { (**self).free_found(src, ptr, part) }
    }
    #[inline(always)]
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).free_batch(src, blocks) }
    }
    #[inline(always)]
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).alloc_batch(src, layout, out) }
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
        unsafe { (**self).alloc_batch_usable(src, layout, out, usable) }
    }
    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).release_all(src) }
    }
    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).check(src) }
    }
    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).trim(src) }
    }
    fn fork_prepare(&self) {
        (**self).fork_prepare();
    }
    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).fork_parent() }
    }
    unsafe fn fork_child(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).fork_child() }
    }
}
