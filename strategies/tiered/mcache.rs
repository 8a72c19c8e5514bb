//! The thread cache: one per thread (Go: one per P), one current span per span class, the
//! tiny allocator; no lock and no atomic read-modify-write on its fast paths.
//!
//! Go original: `mcache` in `runtime/mcache.go` (`refill`, `releaseAll`), the tiny allocator
//! in `mallocgc` (malloc.go).
//!
//! # Glossary
//! - `alloc[spc]`: the current span of span class `spc`, owned by this cache
//!   (`span.owner == self`); initially [`EMPTY_SPAN`], so the first allocation refills.
//! - *tiny block*: a 16 B object of [`TINY_SPAN_CLASS`] that the tiny allocator bumps into
//!   for requests under 16 B with alignment at most 8 (Go: pointer-free ones only; Rust
//!   objects are never scanned). `tiny` is the current block, `tiny_offset` the bump offset.
//! - *tiny counter*: one `AtomicI8` per tiny block (in its span's counter array). Go cannot
//!   free a tiny object alone, and its block dies with the last of them; with explicit free
//!   we count. While a block is current, `tiny_given` (plain, owner only) counts its objects
//!   handed out minus those freed by the owner; other threads' frees add 1 to the counter.
//!   When the block stops being current, the owner subtracts `tiny_given` from the counter
//!   ("retire"). The operation that brings a retired counter to 0 frees the block: the
//!   retire itself (`fetch_sub` returned `tiny_given`) or a later free (`fetch_add` returned
//!   -1). A current block whose objects are all freed (`tiny_given == counter`) is reused
//!   from offset 0.
//!
//! # Alloc path
//! 1. Small: `alloc[spc].next_free_fast()` (span.rs). Tiny: bump `tiny_offset` after Go's
//!    alignment (8 for sizes that are multiples of 8, else 4, else 2, else 1), or take a new
//!    block; as in Go the new block becomes current only if it leaves more room than the old.
//! 2. Empty cache word: `refill` (cold): continue the span's scan; at its end collect the
//!    span's remote frees and rewind if anything is free; else retain it or give it back
//!    (uncacheSpan) and take a retained span with room, or cacheSpan another from mcentral
//!    (one lock hold for both). Every 8th mcentral refill (or past 1 MiB unflushed) flushes
//!    this cache's statistics to the root.
//!
//! # Retained spans (a departure from Go, after mimalloc's per-thread pages)
//! When the current span of a class has no free object left, the cache keeps owning it in
//! one of [`RETAIN_SLOTS`] slots (at most 64 KiB of spans per class) instead of handing it
//! to mcentral at once. Frees into it by this thread stay lock-free and atomic-free bit
//! clears, and a refill first looks for a retained span with a free object (after
//! collecting its remote frees) before it asks mcentral. Go needs no such thing: its frees
//! are the GC's sweeps, not one call per object. The retained spans go to mcentral when the
//! slots are full, at `release_all` (thread exit, `trim` of the calling thread).
//!
//! # Free path (see `free_small` in mod.rs)
//! Owner: clear the bit (no atomics). Non-owner: the span's remote stack, or the mcentral lock
//! for a span nobody owns. Tiny objects: counter as above. Every free through a cache but
//! the owner's bit clear also counts its bytes (`note_free`, a plain add): each
//! `FREE_STEP_BYTES` so freed run a bounded step of background work (drain, sweep,
//! scavenge; see scavenger.rs).
//!
//! # Threads
//! The `std` feature binds a cache to each thread and heap with a destructor-free,
//! const-initialised `thread_local!` (no allocation, no registration), and registers a
//! separate exit guard once per thread; while that registration runs (glibc's
//! `__cxa_thread_atexit_impl` may call `calloc`, i.e. us) and after the guard has run, the
//! thread uses the root's *shared cache* under its lock. The guard gives every cache of the
//! thread back (`release_all`: uncacheSpan for each class, retire the tiny block, flush
//! statistics) and the record goes on the heap's free-cache list for the next thread. Frees
//! never need a cache: without one they take the non-owner path. Threads created by C code
//! are handled the same way, since the guard is std's TLS destructor.
//!
//! # Invariants (checked by `Tiered::check`)
//! - `alloc[spc]` is [`EMPTY_SPAN`] or a span of class `spc` with `owner == self`; so is every
//!   non-null `retained[spc][i]`, and no span is in two places;
//! - `tiny != 0` ⇒ it is an object of `tiny_span` (a span of `TINY_SPAN_CLASS`) and
//!   `tiny_offset <= 16`.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use super::Root;
use super::scavenger::FREE_STEP_BYTES;
use super::sizeclass::{SPAN_CLASS_COUNT, TINY_SPAN_CLASS};
use super::span::Span;
use crate::source::PageSource;

/// Size of a tiny block (Go's `maxTinySize`).
pub const TINY_BLOCK_BYTES: usize = 16;

/// Retained spans per span class at most.
pub const RETAIN_SLOTS: usize = 8;
/// Runtime pages of retained spans per span class at most (64 KiB), at least one span.
const RETAIN_PAGES: usize = 8;

/// mcentral refills between two flushes of a cache's statistics to the root.
const FLUSH_EVERY_REFILLS: u32 = 8;
/// A cache flushes its statistics sooner when its unflushed live bytes exceed this.
const FLUSH_BYTES: usize = 1 << 20;

/// Refills between two calls of the scavenger's bounded work.
const BACKGROUND_EVERY_REFILLS: u32 = 16;

/// The span every class of a fresh cache points at (Go's `emptymspan`).
pub static EMPTY_SPAN: Span = Span::empty();

// ANCHOR: mcache_struct
/// A thread cache (Go's `mcache`). Lives in heap metadata.
#[repr(C)]
pub struct MCache {
    /// Current span per span class.
    pub alloc: [Cell<*const Span>; SPAN_CLASS_COUNT],
    /// Spans this cache keeps owning after they stopped being current (see "Retained
    /// spans"); null slots are free.
    pub retained: [[Cell<*const Span>; RETAIN_SLOTS]; SPAN_CLASS_COUNT],
    /// Current tiny block (0 = none).
    pub tiny: Cell<usize>,
    /// Bump offset in the tiny block.
    pub tiny_offset: Cell<usize>,
    /// Objects of the current tiny block handed out, minus those the owner freed.
    pub tiny_given: Cell<i8>,
    /// Span of the current tiny block.
    pub tiny_span: Cell<*const Span>,
    /// Live bytes allocated minus freed through this cache, not yet flushed to the root.
    /// Written only by the owning thread (load + store, no read-modify-write).
    pub live_bytes: AtomicIsize,
    /// Same for objects.
    pub live_objects: AtomicIsize,
    /// The root this cache belongs to.
    pub root: *const Root,
    /// Next of every cache of the heap (heap lock).
    pub next_all: *mut MCache,
    /// Next on the heap's free-cache list (heap lock).
    pub next_free: *mut MCache,
    /// Whether a thread (or the shared path) uses this cache.
    pub in_use: AtomicBool,
    /// Refills from mcentral so far (paces the background scavenger work).
    pub refills: Cell<u32>,
    /// Bytes this cache may still free before it runs a bounded step of background work
    /// (scavenger.rs, `FREE_STEP_BYTES`).
    pub free_budget: Cell<isize>,
}
// ANCHOR_END: mcache_struct

// SAFETY: a cache is used by one thread at a time (its owner, or the holder of the shared
// cache lock); other threads only read its atomics (statistics) and compare its address.
unsafe impl Sync for MCache {}

impl MCache {
    /// A fresh cache for `root`.
    pub fn new(root: *const Root, next_all: *mut MCache) -> MCache {
        MCache {
            alloc: [const { Cell::new(&EMPTY_SPAN as *const Span) }; SPAN_CLASS_COUNT],
            retained: [const { [const { Cell::new(ptr::null()) }; RETAIN_SLOTS] }; SPAN_CLASS_COUNT],
            tiny: Cell::new(0),
            tiny_offset: Cell::new(0),
            tiny_given: Cell::new(0),
            tiny_span: Cell::new(ptr::null()),
            live_bytes: AtomicIsize::new(0),
            live_objects: AtomicIsize::new(0),
            root,
            next_all,
            next_free: ptr::null_mut(),
            in_use: AtomicBool::new(true),
            refills: Cell::new(0),
            free_budget: Cell::new(FREE_STEP_BYTES as isize),
        }
    }

    #[inline]
    fn as_mut_ptr(&self) -> *mut MCache {
        (self as *const MCache).cast_mut()
    }

    /// Counts an allocation (+) or a free (-) in this cache's statistics. Owner only.
    #[inline]
    pub fn account(&self, bytes: isize, objects: isize) {
        let b = &self.live_bytes;
        b.store(b.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
        let o = &self.live_objects;
        o.store(o.load(Ordering::Relaxed) + objects, Ordering::Relaxed);
    }

    /// Counts `bytes` freed through this cache; true (and the budget renewed) when a
    /// bounded step of background work is due. Owner only.
    #[inline]
    pub fn note_free(&self, bytes: usize) -> bool {
        let left = self.free_budget.get() - bytes as isize;
        self.free_budget.set(if left < 0 { FREE_STEP_BYTES as isize } else { left });
        left < 0
    }

    /// Moves this cache's statistics into the root's and updates the peak.
    pub fn flush_stats(&self, root: &Root) {
        let b = self.live_bytes.swap(0, Ordering::Relaxed);
        let o = self.live_objects.swap(0, Ordering::Relaxed);
        root.add_live(b, o);
    }

    // ANCHOR: alloc_small
    /// An object of span class `spc`: the fast path, no lock, no atomics.
    #[inline(always)]
    pub fn alloc_small<P: PageSource>(&self, root: &Root, src: &P, spc: usize) -> Option<usize> {
        // SAFETY: `alloc[spc]` always points at a live span owned by this cache (or at the
        // static empty span).
        let s = unsafe { &*self.alloc[spc].get() };
        match s.next_free_fast() {
            Some(p) => Some(p),
            None => self.refill(root, src, spc),
        }
    }
    // ANCHOR_END: alloc_small

    // ANCHOR: refill
    /// Go's `mcache.refill`: finish the current span's scan, sweep it (collect remote frees
    /// and rewind), or swap it for another from mcentral.
    #[cold]
    #[inline(never)]
    fn refill<P: PageSource>(&self, root: &Root, src: &P, spc: usize) -> Option<usize> {
        let cur = self.alloc[spc].get();
        if !ptr::eq(cur, &EMPTY_SPAN) {
            // SAFETY: a current span is live and owned by this cache.
            let s = unsafe { &*cur };
            // A full span has nothing ahead of the scan: skip straight to its remote frees.
            if !s.is_full()
                && let Some(p) = s.next_free()
            {
                return Some(p);
            }
            s.collect_remote();
            if !s.is_full() {
                s.rewind();
                if let Some(p) = s.next_free() {
                    return Some(p);
                }
            }
            self.alloc[spc].set(&EMPTY_SPAN);
            let old = (!self.retain(spc, s)).then_some(s);
            if let Some(t) = self.take_retained(spc) {
                if let Some(old) = old {
                    root.central[spc].uncache_span(&root.heap, old);
                }
                self.alloc[spc].set(t);
                return t.next_free();
            }
            return self.refill_central(root, src, spc, old);
        }
        self.refill_central(root, src, spc, None)
    }

    /// The part of refill that goes to mcentral (giving `old` back in the same lock hold).
    fn refill_central<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        spc: usize,
        old: Option<&Span>,
    ) -> Option<usize> {
        let n = self.refills.get().wrapping_add(1);
        self.refills.set(n);
        if n.is_multiple_of(FLUSH_EVERY_REFILLS)
            || self.live_bytes.load(Ordering::Relaxed).unsigned_abs() > FLUSH_BYTES
        {
            self.flush_stats(root);
        }
        let s = root.central[spc].cache_span(&root.heap, src, spc, self.as_mut_ptr(), old, root.index)?;
        self.alloc[spc].set(s);
        if n.is_multiple_of(BACKGROUND_EVERY_REFILLS) {
            root.background(src);
        }
        s.next_free()
    }
    // ANCHOR_END: refill

    /// Keeps owning the full span `s` in a free retained slot, if the class's budget allows.
    fn retain(&self, spc: usize, s: &Span) -> bool {
        let max = (RETAIN_PAGES / s.npages).clamp(1, RETAIN_SLOTS);
        match self.retained[spc][..max].iter().find(|c| c.get().is_null()) {
            Some(slot) => {
                slot.set(s);
                true
            }
            None => false,
        }
    }

    /// A retained span with a free object (after collecting its remote frees), rewound and
    /// out of its slot.
    fn take_retained(&self, spc: usize) -> Option<&Span> {
        // First a span with objects this thread freed (no shared cache line is read), then
        // one whose remote frees make room.
        for pass in 0..2 {
            for slot in &self.retained[spc] {
                // SAFETY: retained spans are live and owned by this cache.
                let Some(s) = (unsafe { slot.get().as_ref() }) else { continue };
                if pass == 1 {
                    s.collect_remote();
                }
                if !s.is_full() {
                    slot.set(ptr::null());
                    s.collect_remote();
                    s.rewind();
                    return Some(s);
                }
            }
        }
        None
    }

    // ANCHOR: alloc_tiny
    /// The tiny allocator (Go's `mallocgcTiny`): `size < 16`, `align <= 8`.
    #[inline]
    pub fn alloc_tiny<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        size: usize,
        align: usize,
    ) -> Option<usize> {
        let old_off = self.tiny_offset.get();
        let go_align = if size & 7 == 0 {
            8
        } else if size & 3 == 0 {
            4
        } else if size & 1 == 0 {
            2
        } else {
            1
        };
        let off = old_off.next_multiple_of(go_align.max(align));
        let t = self.tiny.get();
        if t != 0 && off + size <= TINY_BLOCK_BYTES {
            self.tiny_offset.set(off + size);
            self.tiny_given.set(self.tiny_given.get() + 1);
            return Some(t + off);
        }
        self.alloc_tiny_block(root, src, size, old_off)
    }
    // ANCHOR_END: alloc_tiny

    // ANCHOR: alloc_tiny_block
    #[cold]
    fn alloc_tiny_block<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        size: usize,
        old_off: usize,
    ) -> Option<usize> {
        let blk = self.alloc_small(root, src, TINY_SPAN_CLASS)?;
        let span = self.alloc[TINY_SPAN_CLASS].get();
        if self.tiny.get() == 0 || size < old_off {
            self.retire_tiny(root);
            self.tiny.set(blk);
            self.tiny_span.set(span);
            self.tiny_offset.set(size);
            self.tiny_given.set(1);
        } else {
            // The old block keeps more room: this block is retired at once with one object
            // (nobody else knows it yet, so a plain store does).
            // SAFETY: `span` is the live tiny span `blk` came from.
            let s = unsafe { &*span };
            s.tiny_count(s.object_index(blk)).set_retired_one();
        }
        Some(blk)
    }
    // ANCHOR_END: alloc_tiny_block

    // ANCHOR: retire_tiny
    /// Stops using the current tiny block (see "tiny counter" in the module docs).
    pub fn retire_tiny(&self, root: &Root) {
        let t = self.tiny.get();
        if t == 0 {
            return;
        }
        // SAFETY: the current tiny block's span is live while the block has objects or is
        // current.
        let s = unsafe { &*self.tiny_span.get() };
        let g = self.tiny_given.get();
        self.tiny.set(0);
        self.tiny_offset.set(0);
        self.tiny_given.set(0);
        self.tiny_span.set(ptr::null());
        if s.tiny_count(s.object_index(t)).retire(g) {
            // Every object was already freed: the block itself is free now.
            super::free_small(root, self.as_mut_ptr(), s, t);
        }
    }
    // ANCHOR_END: retire_tiny

    // ANCHOR: free_tiny_local
    /// A free by the owner of an object in its current tiny block; `false` if `p` is not in
    /// it.
    #[inline]
    pub fn free_tiny_local(&self, s: &Span, p: usize) -> bool {
        let t = self.tiny.get();
        if t == 0 || p & !(TINY_BLOCK_BYTES - 1) != t {
            return false;
        }
        let g = self.tiny_given.get() - 1;
        self.tiny_given.set(g);
        if s.tiny_count(s.object_index(t)).reset_if_all_freed(g) {
            // Every object of the block is freed (none can be freed again): reuse it from 0.
            self.tiny_given.set(0);
            self.tiny_offset.set(0);
        }
        true
    }
    // ANCHOR_END: free_tiny_local

    // ANCHOR: release_all
    /// Go's `releaseAll`: gives every current span back to mcentral, retires the tiny block,
    /// flushes the statistics. Needs no page source, so it can run at thread exit.
    pub fn release_all(&self, root: &Root) {
        self.retire_tiny(root);
        for spc in 0..SPAN_CLASS_COUNT {
            let cur = self.alloc[spc].get();
            if ptr::eq(cur, &EMPTY_SPAN) {
                continue;
            }
            self.alloc[spc].set(&EMPTY_SPAN);
            // SAFETY: a current span is live and owned by this cache.
            root.central[spc].uncache_span(&root.heap, unsafe { &*cur });
        }
        for spc in 0..SPAN_CLASS_COUNT {
            for slot in &self.retained[spc] {
                let s = slot.replace(ptr::null());
                if !s.is_null() {
                    // SAFETY: retained spans are live and owned by this cache.
                    root.central[spc].uncache_span(&root.heap, unsafe { &*s });
                }
            }
        }
        self.flush_stats(root);
    }
    // ANCHOR_END: release_all
}

/// Binding of caches to threads (`std`), see "Threads" in the module docs.
#[cfg(feature = "std")]
pub mod tls {
    use core::cell::Cell;
    use core::ptr;

    use super::MCache;
    use crate::source::PageSource;
    use crate::strategies::tiered::Root;

    /// Heaps one thread keeps a cache for at once; more evicts the least recently used.
    const SLOTS: usize = 4;
    const UNREGISTERED: u8 = 0;
    const REGISTERING: u8 = 1;
    const ACTIVE: u8 = 2;
    const DEAD: u8 = 3;

    struct ThreadCaches {
        state: Cell<u8>,
        roots: [Cell<*const Root>; SLOTS],
        caches: [Cell<*mut MCache>; SLOTS],
    }

    std::thread_local! {
        // Const-initialised and without a destructor: using it never allocates or registers.
        static TC: ThreadCaches = const {
            ThreadCaches {
                state: Cell::new(UNREGISTERED),
                roots: [const { Cell::new(ptr::null()) }; SLOTS],
                caches: [const { Cell::new(ptr::null_mut()) }; SLOTS],
            }
        };
        static GUARD: ExitGuard = const { ExitGuard };
    }

    struct ExitGuard;

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            TC.with(|t| {
                t.state.set(DEAD);
                for i in 0..SLOTS {
                    let r = t.roots[i].replace(ptr::null());
                    let c = t.caches[i].replace(ptr::null_mut());
                    if !r.is_null() {
                        // SAFETY: a root outlives the threads that used it (Tiered's docs);
                        // the cache is this thread's.
                        unsafe { (*r).release_cache(c) };
                    }
                }
            });
        }
    }

    /// Gives back the calling thread's cache for `root`, if any.
    pub fn forget(root: &Root) {
        let c = TC.with(|t| {
            for i in 0..SLOTS {
                if ptr::eq(t.roots[i].get(), root) {
                    t.roots[i].set(ptr::null());
                    return t.caches[i].replace(ptr::null_mut());
                }
            }
            ptr::null_mut()
        });
        if !c.is_null() {
            // SAFETY: the cache was this thread's, and the slot no longer names it.
            unsafe { root.release_cache(c) };
        }
    }

    /// The calling thread's cache for `root`, if it has one (the free path; never creates).
    #[inline]
    pub fn lookup(root: *const Root) -> *mut MCache {
        TC.with(|t| {
            if t.roots[0].get() == root {
                return t.caches[0].get();
            }
            for i in 1..SLOTS {
                if t.roots[i].get() == root {
                    return t.caches[i].get();
                }
            }
            ptr::null_mut()
        })
    }

    /// The calling thread's cache for `root`, made if needed; null when the thread must use
    /// the shared path (registration in progress, thread exiting, no memory).
    #[inline]
    pub fn get<P: PageSource>(root: &Root, src: &P) -> *mut MCache {
        TC.with(|t| {
            if ptr::eq(t.roots[0].get(), root) {
                return t.caches[0].get();
            }
            get_slow(t, root, src)
        })
    }

    #[cold]
    fn get_slow<P: PageSource>(t: &ThreadCaches, root: &Root, src: &P) -> *mut MCache {
        for i in 1..SLOTS {
            if ptr::eq(t.roots[i].get(), root) {
                // Move the hit to slot 0 (most recently used).
                let c = t.caches[i].get();
                t.roots[i].set(t.roots[0].get());
                t.caches[i].set(t.caches[0].get());
                t.roots[0].set(root);
                t.caches[0].set(c);
                return c;
            }
        }
        match t.state.get() {
            UNREGISTERED => {
                t.state.set(REGISTERING);
                // Registers the exit guard's destructor; may allocate (re-entering us, which
                // then sees REGISTERING and takes the shared path).
                GUARD.with(|_| {});
                t.state.set(ACTIVE);
            }
            ACTIVE => {}
            _ => return ptr::null_mut(),
        }
        let c = root.new_cache(src);
        if c.is_null() {
            return c;
        }
        // Evict the least recently used slot, then shift everything down one.
        let last_root = t.roots[SLOTS - 1].get();
        if !last_root.is_null() {
            // SAFETY: a root outlives the threads that used it; the cache is this thread's.
            unsafe { (*last_root).release_cache(t.caches[SLOTS - 1].get()) };
        }
        for i in (1..SLOTS).rev() {
            t.roots[i].set(t.roots[i - 1].get());
            t.caches[i].set(t.caches[i - 1].get());
        }
        t.roots[0].set(root);
        t.caches[0].set(c);
        c
    }
}

/// Without `std` there are no thread caches: every thread uses the shared cache.
#[cfg(not(feature = "std"))]
pub mod tls {
    use core::ptr;

    use super::MCache;
    use crate::source::PageSource;
    use crate::strategies::tiered::Root;

    /// Always none.
    #[inline]
    pub fn lookup(_root: *const Root) -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none: use the shared cache.
    #[inline]
    pub fn get<P: PageSource>(_root: &Root, _src: &P) -> *mut MCache {
        ptr::null_mut()
    }
}
