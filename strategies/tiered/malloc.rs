//! The malloc and free paths: `Tiered`'s fast paths and the cold calls they make, the
//! thread's cache or the shared one, large objects, frees that leave the owner's bit clear.
//! Go original: `mallocgc` in `runtime/malloc.go` (`largeAlloc`); Go has no free.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::mcache::MCache;
use super::sizeclass::{MAX_SMALL_BYTES, PAGE_BYTES, class_for, class_of, span_class};
use super::span::Span;
use super::{Root, Tiered, scavenger, tiny, tls};
use crate::source::PageSource;
use crate::sync::SpinGuard;

impl Root {
    /// The bounded step a cache's frees and fast-path allocations pay for (see
    /// `MCache::note_free`, `MCache::count_op`): statistics flushed, then `background`.
    #[cold]
    #[inline(never)]
    fn free_step<P: PageSource>(&self, src: &P, c: &MCache) {
        c.flush_stats(self);
        self.background(src);
    }

    // ANCHOR: with_cache
    /// Runs `f` with the calling thread's cache, or the shared cache under its lock. `f` is
    /// inlined into both branches, so the fast path builds no closure.
    #[inline(always)]
    fn with_cache<P: PageSource>(
        &self,
        src: &P,
        size: usize,
        f: impl FnOnce(&MCache) -> Option<NonNull<u8>>,
    ) -> Option<NonNull<u8>> {
        let c = tls::get(self, src);
        if !c.is_null() {
            // SAFETY: the thread's own cache, live while the thread is.
            let c = unsafe { &*c };
            let Some(p) = f(c) else {
                self.failed_with_cache(c);
                return None;
            };
            c.account(size as isize, 1);
            return Some(p);
        }
        let g = self.shared_cache(src)?;
        // SAFETY: the shared cache is used only under its lock, held by `g`.
        let c = unsafe { &**g };
        let p = f(c)?;
        c.account(size as isize, 1);
        Some(p)
    }
    // ANCHOR_END: with_cache

    /// A request failed through the thread's cache `c`: if the cache holds nothing (the
    /// heap never served this thread, or got everything back), it is given back and the
    /// thread's slot cleared, so that a heap whose every allocation failed leaves no slot
    /// pointing into its memory (issue 16, item 6).
    #[cold]
    #[inline(never)]
    fn failed_with_cache(&self, c: &MCache) {
        if c.holds_nothing() {
            tls::forget(self);
        }
    }

    /// The shared cache, locked (made at first use); `None` if it cannot be made.
    #[cold]
    #[inline(never)]
    fn shared_cache<P: PageSource>(&self, src: &P) -> Option<SpinGuard<'_, *mut MCache>> {
        let mut g = self.shared.lock();
        if g.is_null() {
            *g = self.new_cache(src);
            if g.is_null() {
                return None;
            }
        }
        Some(g)
    }

    /// `with_cache` that always takes the shared cache (tests).
    #[cfg(test)]
    pub(super) fn with_shared_cache<P: PageSource>(
        &self,
        src: &P,
        size: usize,
        f: impl FnOnce(&MCache) -> Option<NonNull<u8>>,
    ) -> Option<NonNull<u8>> {
        let g = self.shared_cache(src)?;
        // SAFETY: the shared cache is used only under its lock, held by `g`.
        let c = unsafe { &**g };
        let p = f(c)?;
        c.account(size as isize, 1);
        Some(p)
    }

    // ANCHOR: alloc_large
    /// A large object: a page run of its own (Go's `largeAlloc`).
    pub(super) fn alloc_large<P: PageSource>(&self, src: &P, layout: Layout) -> Option<&Span> {
        let npages = layout.size().div_ceil(PAGE_BYTES);
        let align_pages = (layout.align() / PAGE_BYTES).max(1);
        let s = self.heap.lock.lock().alloc_span(src, npages, align_pages, 0)?;
        self.add_live(layout.size() as isize, 1);
        self.background(src);
        // SAFETY: a live span, until freed.
        Some(unsafe { s.as_ref() })
    }
    // ANCHOR_END: alloc_large

    // ANCHOR: free_large
    fn free_large<P: PageSource>(&self, src: &P, s: &Span, size: usize) {
        // SAFETY: the span holds one live object, being freed, and is on no list and in no
        // cache; neither this function nor `dealloc_slow` reads it after this (their `&Span`
        // stays live, which the record's reuse allows: "Reuse of span records" in span.rs).
        unsafe { self.heap.lock.lock().free_span(NonNull::from(s)) };
        self.add_live(-(size as isize), -1);
        self.background(src);
    }
    // ANCHOR_END: free_large
}

/// `alloc_fast` found the alloc cache of span class `spc` empty: refill (mcache.rs).
#[cold]
#[inline(never)]
fn refill_small<P: PageSource>(
    root: &Root,
    src: &P,
    c: &MCache,
    spc: usize,
    size: usize,
) -> Option<NonNull<u8>> {
    let p = c.alloc_small(root, src, spc)?;
    c.account(size as isize, 1);
    Some(p)
}

/// `alloc_fast` counted its `OP_STEP_ALLOCS`th allocation: a bounded step of background
/// work (scavenger.rs), then the object `p` it took.
#[cold]
#[inline(never)]
fn op_step<P: PageSource>(root: &Root, src: &P, c: &MCache, p: NonNull<u8>) -> Option<NonNull<u8>> {
    c.ops_left.set(scavenger::OP_STEP_ALLOCS);
    root.free_step(src, c);
    Some(p)
}

/// `alloc_fast` found no room in the tiny block: a new block (tiny.rs).
#[cold]
#[inline(never)]
fn refill_tiny<P: PageSource>(root: &Root, src: &P, c: &MCache, size: usize) -> Option<NonNull<u8>> {
    let p = c.alloc_tiny_block(root, src, size, c.tiny_offset.get())?;
    c.account(size as isize, 1);
    Some(p)
}

// ANCHOR: free_small
/// Frees object `p` of small span `s` (not tiny) as the cache `my` (may be null): see
/// "Free path" in the module docs of mod.rs.
#[inline]
pub(crate) fn free_small(root: &Root, my: *mut MCache, s: &Span, p: NonNull<u8>) {
    let owner = s.owner.load(Ordering::Relaxed);
    let i = s.object_index(p.as_ptr().addr());
    if owner == my && !my.is_null() {
        // SAFETY: `my` is the calling thread's cache (non-null, checked above).
        unsafe { (*my).free_owned(s, i) };
        return;
    }
    if owner.is_null() {
        root.central[s.span_class.get() as usize].free_unowned(p);
        root.pending_hint.store(true, Ordering::Release);
    } else {
        s.push_remote(p);
    }
}
// ANCHOR_END: free_small

// ANCHOR: free_tiny
/// Frees tiny object `p` (an address) of tiny span `s` (see "tiny counter" in tiny.rs).
#[inline]
fn free_tiny(root: &Root, my: *mut MCache, s: &Span, p: usize) {
    // SAFETY: `my` is null or the calling thread's cache.
    if !my.is_null() && unsafe { (*my).free_tiny_local(s, p) } {
        return;
    }
    let i = s.object_index(p);
    if s.tiny_count(i).free_one() {
        // The block as a pointer from the span's base, not from the caller's pointer: that
        // one need only cover its own few bytes of the block, and the block's first word
        // takes a stack link.
        // SAFETY: `p` lies in the span (a live object of it), so `i < nelems`.
        let blk = unsafe { s.object(i) };
        free_small(root, my, s, blk);
    }
}
// ANCHOR_END: free_tiny

impl Tiered {
    // ANCHOR: alloc_fast
    /// The allocation fast path, with no call but tail calls (so no registers to save), no
    /// lock and no atomic read-modify-write: the thread's cache (most recent heap only),
    /// then a bump in the tiny block or `next_free_fast` in the class's current span; an
    /// empty tiny block or alloc cache goes to `refill_small` / `refill_tiny`, and every
    /// `OP_STEP_ALLOCS`th allocation to `op_step` (the countdown `MCache::count_op`). `Err` sends
    /// the request to `alloc_slow`: no heap or cache yet, large or over-aligned request.
    #[inline(always)]
    pub(super) fn alloc_fast<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
    ) -> Result<Option<NonNull<u8>>, ()> {
        let root = self.existing_root().ok_or(())?;
        // SAFETY: null or the calling thread's own cache, live while the thread is.
        let c = unsafe { tls::peek(root).as_ref() }.ok_or(())?;
        let (size, align) = (layout.size(), layout.align());
        let p = if size < tiny::TINY_BLOCK_BYTES && align <= 8 {
            match c.alloc_tiny_fast(size, align) {
                Some(p) => p,
                None => return Ok(refill_tiny(root, src, c, size)),
            }
        } else if size <= MAX_SMALL_BYTES && align <= 8 {
            let class = class_of(size);
            match c.pop_free(class) {
                Some(p) => p,
                None => {
                    let spc = span_class(class);
                    match c.alloc_small_fast(spc) {
                        Some(p) => p,
                        None => return Ok(refill_small(root, src, c, spc, size)),
                    }
                }
            }
        } else {
            return Err(());
        };
        c.account(size as isize, 1);
        if c.count_op() {
            return Ok(op_step(root, src, c, p));
        }
        Ok(Some(p))
    }
    // ANCHOR_END: alloc_fast

    /// Everything `alloc_fast` leaves: makes the heap and the thread's cache if needed,
    /// refills, large objects.
    #[cold]
    #[inline(never)]
    pub(super) fn alloc_slow<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let root = self.root(src)?;
        self.alloc_in(root, src, layout)
    }

    /// Every free `dealloc`'s fast path leaves: large and tiny objects, objects of spans
    /// another cache (or none) owns, threads without a cache.
    #[cold]
    #[inline(never)]
    pub(super) fn dealloc_slow<P: PageSource>(&self, src: &P, s: &Span, p: NonNull<u8>, size: usize) {
        let Some(root) = self.existing_root() else { return };
        // Small spans have odd span classes; large (0) and tiny spans even ones.
        if s.span_class.get() & 1 == 0 && s.class.get() == 0 {
            root.free_large(src, s, size);
            return;
        }
        let my = tls::lookup(root);
        if s.span_class.get() & 1 == 1 {
            free_small(root, my, s, p);
        } else {
            free_tiny(root, my, s, p.as_ptr().addr());
        }
        if my.is_null() {
            root.add_live(-(size as isize), -1);
        } else {
            // SAFETY: the thread's own cache.
            let c = unsafe { &*my };
            c.account(-(size as isize), -1);
            // Only the frees that leave the owner's fast path count: they are the ones that
            // bring spans, and so pages, back to the heap (see scavenger.rs).
            if c.note_free(size) {
                root.free_step(src, c);
            }
        }
    }

    // ANCHOR: alloc_in
    #[inline(always)]
    pub(super) fn alloc_in<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        let (size, align) = (layout.size(), layout.align());
        if size < tiny::TINY_BLOCK_BYTES && align <= 8 {
            return root.with_cache(src, size, |c| c.alloc_tiny(root, src, size, align));
        }
        match class_for(size, align) {
            Some(class) => root.with_cache(src, size, |c| c.alloc_small(root, src, span_class(class))),
            None => root.alloc_large(src, layout).map(|s| s.base.get()),
        }
    }
    // ANCHOR_END: alloc_in
}
