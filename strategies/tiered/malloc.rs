//! The malloc and free paths: `Tiered`'s fast paths and the cold calls they make, the
//! thread's cache or the shared one, large objects, frees that leave the owner's bit clear.
//! Go original: `mallocgc` in `runtime/malloc.go` (`largeAlloc`); Go has no free.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use super::mcache::MCache;
use super::sizeclass::{
    CLASS_ALIGN, CLASS_BYTES, CLASS_COUNT, MAX_SMALL_BYTES, PAGE_BYTES, PAGE_SHIFT, class_for, class_of,
    class_of_16, span_class,
};
use super::span::Span;
use super::{Root, Tiered, arena, scavenger, tls};
use crate::source::PageSource;
use crate::strategy::{BadFree, CachedFree, Strategy};
use crate::sync::SpinGuard;

impl Root {
    /// The bounded step a cache's frees and fast-path allocations pay for (see
    /// `MCache::note_free`, `MCache::count_op`): statistics flushed, the cache's empty
    /// spans decayed (`MCache::decay_empty`), then `background`.
    #[cold]
    #[inline(never)]
    fn free_step<P: PageSource>(&self, src: &P, c: &MCache) {
        c.flush_remote(self);
        c.flush_stats(self);
        c.decay_empty(self);
        self.background(src);
    }

    // ANCHOR: with_cache
    /// Runs `f` with the calling thread's cache, or the shared cache under its lock, and
    /// counts an object of `size` usable bytes. `f` is inlined into both branches, so the
    /// fast path builds no closure.
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
        // SAFETY: a live span, until freed.
        let s = unsafe { s.as_ref() };
        // The allocating thread holds a large span until it hands the object out.
        s.set_live(0);
        self.add_live((npages * PAGE_BYTES) as isize, 1);
        // A step for every large allocation: a program that has freed a large heap and then
        // only allocates large objects gives its memory back as it goes (the return
        // guarantee of issue 16: `tests/tiered_return.rs`).
        self.background(src);
        Some(s)
    }
    // ANCHOR_END: alloc_large

    // ANCHOR: free_large
    /// Frees the large object at `p` (an address in a span of class 0 when the caller
    /// looked): checked again under the heap lock, which every change of a large span's
    /// liveness holds, so two frees of one object never both succeed.
    #[cold]
    #[inline(never)]
    pub(super) fn free_large<P: PageSource>(&self, src: &P, p: usize) -> Result<usize, BadFree> {
        let mut h = self.heap.lock.lock();
        // SAFETY: the root's index; `span_of` checks the range and the entries.
        let s = unsafe { arena::span_of(self.index, p) };
        // SAFETY: non-null entries of the span map name live spans (heap lock held).
        let Some(s) = (unsafe { s.as_ref() }) else { return Err(BadFree::Foreign) };
        if s.class.get() != 0 {
            return Err(BadFree::Interior);
        }
        if s.base_addr() != p {
            return Err(BadFree::Interior);
        }
        if !s.is_live(0) {
            return Err(BadFree::NotLive);
        }
        s.clear_live(0);
        let bytes = s.npages.get() * PAGE_BYTES;
        // SAFETY: the span holds one live object, being freed, and is on no list and in no
        // cache; nothing reads it after this (the `&Span` stays live, which the record's
        // reuse allows: "Reuse of span records" in span.rs).
        let dedicated = unsafe { h.free_span(NonNull::from(s)) };
        drop(h);
        self.add_live(-(bytes as isize), -1);
        // An arena dedicated to an over-aligned object goes back at its free (issue 16, item 5).
        self.large_step(src, bytes, dedicated);
        Ok(bytes)
    }
    // ANCHOR_END: free_large

    /// Counts `bytes` of large objects freed: a bounded step of background work
    /// per [`scavenger::FREE_STEP_BYTES`] of them (a racing call may reset the budget too: one
    /// more step, never fewer than one per `FREE_STEP_BYTES`), or at once if `now`. Paced
    /// by bytes, as frees through a thread's cache are, so that dropping many mid-sized
    /// large objects is not many steps, each of which would age the scavenger's hold
    /// (scavenger.rs).
    fn large_step<P: PageSource>(&self, src: &P, bytes: usize, now: bool) {
        let b = &self.large_budget;
        if b.fetch_sub(bytes as isize, Ordering::Relaxed) - (bytes as isize) <= 0 || now {
            b.store(scavenger::FREE_STEP_BYTES as isize, Ordering::Relaxed);
            self.background(src);
        }
    }
}

/// `alloc_fast` found the alloc cache of span class `spc` empty: refill (mcache.rs).
#[cold]
#[inline(never)]
fn refill_small<P: PageSource>(src: &P, c: &MCache, class: usize) -> Option<NonNull<u8>> {
    // SAFETY: a cache's root outlives it.
    let root = unsafe { &*c.root };
    let p = c.alloc_small(root, src, span_class(class))?;
    c.account_class(class, 1);
    Some(p)
}

/// `alloc_fast` counted its `OP_STEP_ALLOCS`th allocation: a bounded step of background
/// work (scavenger.rs), then the object `p` it took.
#[cold]
#[inline(never)]
fn op_step<P: PageSource>(src: &P, c: &MCache, p: NonNull<u8>) -> Option<NonNull<u8>> {
    // SAFETY: a cache's root outlives it.
    let root = unsafe { &*c.root };
    c.ops_left.set(scavenger::OP_STEP_ALLOCS);
    root.free_step(src, c);
    Some(p)
}

// ANCHOR: free_small
/// Frees object `i` at `p` of small span `s`, whose objects are `bytes` long, as the cache
/// `my` (null: the thread has none for this heap), checking first that it is live: see
/// "Free path" in the module docs of mod.rs. Returns the object's usable size; `Err`, with
/// nothing changed, for an object that is not live (a double free).
#[inline(always)]
pub(crate) fn free_small(
    root: &Root,
    my: *mut MCache,
    s: &Span,
    i: usize,
    bytes: usize,
    p: NonNull<u8>,
) -> Result<usize, BadFree> {
    let owner = s.owner.load(Ordering::Relaxed);
    if owner == my && !my.is_null() {
        let (class, bytes) = s.small_class();
        // SAFETY: `my` is the calling thread's cache (non-null, checked above).
        unsafe { &*my }.free_mine(s, class, i, p)?;
        return Ok(bytes);
    }
    free_not_owned(root, my, owner, s, i, bytes, p)
}

impl MCache {
    /// The owner's free of object `i` at `p` of span `s` of size class `class` (this cache
    /// owns `s`, so the live bit is this thread's to read and write): refused if not live,
    /// else onto the free stack, or its bit cleared in the span when the stack is full.
    /// Counts nothing.
    #[inline(always)]
    pub(crate) fn free_mine(&self, s: &Span, class: usize, i: usize, p: NonNull<u8>) -> Result<(), BadFree> {
        if !s.take_live(i) {
            return Err(BadFree::NotLive);
        }
        self.stash_taken(s, class, i, p);
        Ok(())
    }

    /// `free_mine` after its live test (the caller took object `i`'s live bit): onto the
    /// free stack, or its bit cleared in the span when the stack is full. The last thing a
    /// fast free does, so that the cold call it may make (`on_refillable`) is a tail call.
    #[inline(always)]
    fn stash_taken(&self, s: &Span, class: usize, i: usize, p: NonNull<u8>) {
        if !self.push_free(s, class, i, p) {
            self.free_owned(s, i);
        }
    }
}
// ANCHOR_END: free_small

/// `free_small` for a thread that does not own the span: the remote bit claims the object
/// (refusing a double free), then the span's remote stack (held back in the thread's cache
/// `my` first, if it has one: `MCache::hold_remote`), or its mcentral's pending stack if
/// nobody owns it.
// Inlined into its one caller, `free_slow` (itself inlined into `free_addr_slow`, cold): a
// remote free then makes one call below `dealloc_slow`, not three with their register saves
// and a seven-argument call.
#[inline(always)]
fn free_not_owned(
    root: &Root,
    my: *mut MCache,
    owner: *mut MCache,
    s: &Span,
    i: usize,
    bytes: usize,
    p: NonNull<u8>,
) -> Result<usize, BadFree> {
    if !s.claim_remote(i) {
        return Err(BadFree::NotLive);
    }
    if owner.is_null() {
        root.central[s.span_class.get() as usize].free_unowned(p);
        root.pending_hint.store(true, Ordering::Release);
    } else if let Some(c) =
        // SAFETY: null or the calling thread's own cache (`free_slow`).
        unsafe { my.as_ref() }
    {
        c.hold_remote(root, s, p);
    } else {
        s.push_remote(p);
    }
    Ok(bytes)
}

// ANCHOR: fast_class
/// The size class of a request on the allocation fast paths: the class
/// of the size rounded up to the alignment, if that is small and the class's objects have the
/// alignment (`CLASS_ALIGN`: every class of a multiple of 16 B for C's 16); `None` otherwise
/// (a large request, or an alignment the class lacks: 8 B and 24 B for 16, ...). An
/// alignment of 8 or less (most Rust requests) needs neither the rounding nor the check:
/// every class's objects are 8-aligned (asserted below); one of 16 (C's `malloc`) has its
/// own table, `class_of_16`, which gives the same class the rounding and the check give.
#[inline(always)]
fn fast_class(layout: Layout) -> Option<usize> {
    let (size, align) = (layout.size(), layout.align());
    let class = if align <= 8 {
        if size > MAX_SMALL_BYTES {
            return None;
        }
        class_of(size)
    } else if align == 16 {
        if size > MAX_SMALL_BYTES {
            return None;
        }
        class_of_16(size)
    } else {
        // No overflow: `size <= isize::MAX - (align - 1)` (a `Layout`'s rule).
        let rounded = (size + align - 1) & !(align - 1);
        if rounded > MAX_SMALL_BYTES {
            return None;
        }
        let class = class_of(rounded);
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class_of` of a size in `1..=MAX_SMALL_BYTES` is a class below
        // `CLASS_COUNT` (its tables hold classes only).
        if align > unsafe { *CLASS_ALIGN.get_unchecked(class) } as usize {
            return None;
        }
        class
    };
    debug_assert!(class < CLASS_COUNT);
    Some(class)
}

// `fast_class` serves alignments up to 8 from any class.
const _: () = {
    let mut c = 1;
    while c < CLASS_COUNT {
        assert!(CLASS_ALIGN[c] >= 8, "a size class whose objects are not 8-aligned");
        c += 1;
    }
};
// ANCHOR_END: fast_class

// ANCHOR: find_small
/// What `find_small` found at an address: object `index` of the small span `span`, of size
/// class `class` and object size `bytes`; `mine` if the calling thread's cache (the one
/// passed) owns the span, and so its class and live bits.
pub(super) struct SmallObject<'a> {
    pub span: &'a Span,
    pub class: usize,
    pub bytes: usize,
    pub index: usize,
    pub mine: bool,
}

/// Why `find_small` found no small object at an address.
pub(super) enum Miss {
    /// No span of this heap holds the address.
    Foreign,
    /// A large span's page (its object may start there: `free_large` decides).
    Large,
    /// A small span's, but not the start of one of its objects.
    Interior,
}

/// The lookup of every free `find_mine` does not serve (`free_addr_slow`, `free_cached`):
/// spanOf, the small-span
/// test, the object's index with its exact-start check, and the owner test against `my`, the
/// calling thread's cache for this heap if it has one. spanOf tries the arena record of
/// `my`'s hint first (`MCache::arena_hint`: one load instead of the index's two, checked with
/// `Arena::holds` like an index entry, so a retired or reused record answers nothing); on a
/// miss it reads the index of the root `root` gives (called only then, so that the fast free
/// with a hit reads no root) and keeps the record found as the hint.
///
/// Any address may be asked. The span returned is a span record that held the address's
/// page when it was read; it may be being freed or reused by another thread if the address
/// is not a live block of the caller's, so the caller checks liveness (the live bit, or the
/// remote bit for a span it does not own) before it changes anything.
#[inline(always)]
fn find_small<'a>(
    root: impl FnOnce() -> Option<&'a Root>,
    my: Option<&MCache>,
    p: usize,
) -> Result<SmallObject<'a>, Miss> {
    // SAFETY: the hint is null or an arena record of this heap, mapped while the heap lives,
    // all of whose fields are atomics or cells (see `arena_of`).
    let hinted = my.and_then(|c| unsafe { c.arena_hint.get().as_ref::<'a>() });
    let arena = match hinted {
        Some(a) if a.holds(p) => a,
        _ => {
            let index = root().ok_or(Miss::Foreign)?.index;
            // SAFETY: the root's index (L1 table, Ready; non-null entries name L2 tables that
            // live as long as the heap); `arena_of` checks the range and every entry.
            let a = unsafe { arena::arena_of::<'a>(index, p) }.ok_or(Miss::Foreign)?;
            if let Some(c) = my {
                c.arena_hint.set(a);
            }
            a
        }
    };
    // SAFETY: a non-null entry of an arena's span map names a span record, which stays
    // mapped while the heap lives; a pointer that is not a live block may find a span being
    // freed or reused meanwhile, whose fields read here are cells fixed while the span
    // lives or atomics (see "Bad input"), and the caller checks liveness.
    let s = unsafe { arena.span_at(arena::page_in_arena(p)).as_ref::<'a>() }.ok_or(Miss::Foreign)?;
    // Small spans have odd span classes; large spans class 0.
    if s.span_class.get() & 1 == 0 {
        return Err(Miss::Large);
    }
    let off = p.checked_sub(s.base_addr()).ok_or(Miss::Interior)?;
    let (class, bytes) = s.small_class();
    let index = s.small_object_in(off, bytes).ok_or(Miss::Interior)?;
    let mine = my.is_some_and(|c| ptr::eq(s.owner.load(Ordering::Relaxed), c));
    Ok(SmallObject { span: s, class, bytes, index, mine })
}
// ANCHOR_END: find_small

// ANCHOR: find_mine
/// The lookup of the owner's fast free (`dealloc_fast`, `free_addr`, `free_cached`,
/// `free_cached_fast`): object `index` at `p` of a small span that `c`, the calling
/// thread's cache, owns, found through `c`'s memo of its last page (`MCache::last_addr`),
/// else the head slot of `p`'s page in `c`'s arena hint (the record of a span that begins
/// on that page: every one-page span's, see "head slots" in arena.rs), else the hint's
/// span map; `None` for anything else (a span of another cache or of none, a large
/// span, an interior pointer, a foreign one, an address outside the hinted arena), which
/// the caller sends to `find_small`.
///
/// Only a span `c` owns is trusted, and only after checking the address against it, so the
/// hint needs no `Arena::holds` test: the head slot and the span map entry at `p`'s page
/// offset (`page_in_arena`, always inside both) of any record of this heap, live or
/// retired, are a span record (a slot: valid, its `owner` null unless it is a live span's)
/// or null, mapped while the heap lives. The head slot costs no load of the span map: the
/// address of the record is computed from `p` and the hint, so a free that misses the
/// cache misses it once, on the record's line 0, not first on the map. The owner test comes before the
/// span's other fields: a record whose `owner` is `c` is a small span this thread holds
/// (only mcentral sets `owner`, to the cache it refills, and only this thread refills `c`;
/// large spans never have one), so it needs no small-span test, and its fields, read after
/// the test, stay as read while the thread frees. Whatever led to it (an address in another
/// arena, a stale entry of a freed page run whose record now holds another span of `c`),
/// the index check then refuses `p` unless it starts an object of that span, which is then
/// the answer spanOf would give. That check is one multiply of the offset (`p - base`,
/// wrapped if `p` is below the base) by the class's `ceil(2^64 / size)`, whose high half is
/// the index (below `nelems`) and whose low half tells an object's start (below the
/// multiplier): `Span::small_object_start`, exact for any offset (`sizeclass::exact_index`).
#[inline(always)]
fn find_mine<'a>(c: &'a MCache, p: usize) -> Option<SmallObject<'a>> {
    // The page of the last span found (`MCache::last_addr`): its span without the arena
    // hint, the head slot or the span map. The span is then checked exactly as a span map's
    // answer is (`mine_at`), so a stale one is refused like a stale entry.
    if (p ^ c.last_addr.get()) >> PAGE_SHIFT == 0 {
        // SAFETY: `last_span` is `EMPTY_SPAN` or a span record of this heap (set below from
        // a head slot or the span map), mapped while the heap lives, whose `owner` is an
        // atomic.
        let s = unsafe { &*c.last_span.get() };
        if let Some(o) = mine_at(c, s, p) {
            return Some(o);
        }
    }
    // SAFETY: the hint is null or an arena record of this heap, mapped while the heap lives
    // (live or retired), all of whose fields are atomics or cells (see `arena_of`).
    let arena = unsafe { c.arena_hint.get().as_ref::<'a>() }?;
    let page = arena::page_in_arena(p);
    // The head slot of `p`'s page, if `c` owns it: a live span of `c`'s that begins on that
    // page (a slot's `owner` is null unless its span lives, see "head slots" in arena.rs),
    // so `p`'s span when `p` lies in the hinted arena, found with no load of the span map;
    // its owner is tested here once, not again by `mine_at`.
    if let Some(s) = arena.head_slot(page)
        && ptr::eq(s.owner.load(Ordering::Relaxed), c)
    {
        // Kept before the check (the memo is never trusted), so that the address needs no
        // register of its own across it.
        c.last_addr.set(p);
        c.last_span.set(s);
        return owned_at(s, p);
    }
    // Else (a later page of a multi-page span, a span with a `FixAlloc` record, another
    // cache's span, ...) the span map's entry.
    // SAFETY: as in `find_small`: a non-null entry of an arena record's span map names a
    // span record, mapped while the heap lives, whose `owner` is an atomic.
    let s = unsafe { arena.span_at(page).as_ref::<'a>() }?;
    // As above: the memo kept before the check.
    c.last_addr.set(p);
    c.last_span.set(s);
    mine_at(c, s, p)
}

/// `find_mine`'s check of span record `s`, however found: `p` starts an object of `s`, which
/// `c` owns (see `find_mine`).
#[inline(always)]
fn mine_at<'a>(c: &MCache, s: &'a Span, p: usize) -> Option<SmallObject<'a>> {
    if !ptr::eq(s.owner.load(Ordering::Relaxed), c) {
        return None;
    }
    owned_at(s, p)
}

/// `mine_at` after its owner test: `p` starts an object of `s`, a small span the calling
/// thread's cache owns (tested by the caller).
#[inline(always)]
fn owned_at(s: &Span, p: usize) -> Option<SmallObject<'_>> {
    // No `p >= base` test: `small_object_start` refuses a wrapped difference too.
    let class = s.class.get();
    let index = s.small_object_start(p.wrapping_sub(s.base_addr()), class)?;
    let class = usize::from(class);
    // Read only where the caller uses it (`free_addr`'s answer).
    let bytes = CLASS_BYTES[class % CLASS_COUNT] as usize;
    Some(SmallObject { span: s, class, bytes, index, mine: true })
}
// ANCHOR_END: find_mine

/// `free_cached`'s free of object `o` at `ptr`, of a span the thread's cache `c` owns (so
/// its class is as read and its live bits are this thread's): onto the class's free stack if
/// it has room and the object is live; false, with nothing changed, otherwise.
#[inline(always)]
fn stack_mine(c: &MCache, o: &SmallObject<'_>, ptr: NonNull<u8>) -> bool {
    let st = c.free_stack(o.class);
    if !st.has_room() || !o.span.take_live(o.index) {
        return false;
    }
    // SAFETY: this cache's stack, with room (tested above; `take_live` pushes nothing).
    unsafe { c.push_unchecked(st, o.span, o.index, ptr) };
    c.account_class(o.class, -1);
    true
}

impl Tiered {
    // ANCHOR: alloc_fast
    /// The allocation fast path, with no call but tail calls (so no registers to save), no
    /// lock and no atomic read-modify-write: the thread's cache (most recent heap only, found
    /// from the heap's key without the root: `cached_cache`),
    /// then the top of the class's free stack or `next_free_fast` in the class's current
    /// span; an empty alloc cache goes to `refill_small`, and every `OP_STEP_ALLOCS`th
    /// allocation to `op_step` (the countdown `MCache::count_op`). The class is that of the
    /// size rounded up to the alignment; it serves the request if its objects have that
    /// alignment (`CLASS_ALIGN`: every class of a multiple of 16 B for C's 16). `Err` sends
    /// the request to `alloc_slow`: no heap or cache yet, large request, or an alignment the
    /// class lacks (8 B and 24 B for 16, ...).
    #[inline(always)]
    pub(super) fn alloc_fast<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
    ) -> Result<Option<NonNull<u8>>, ()> {
        let c = self.cached_cache().ok_or(())?;
        let class = fast_class(layout).ok_or(())?;
        let p = match c.pop_free(class) {
            Some(p) => p,
            None => match c.alloc_small_fast(span_class(class)) {
                Some(p) => p,
                None => return Ok(refill_small(src, c, class)),
            },
        };
        c.account_class(class, 1);
        if c.count_op() {
            return Ok(op_step(src, c, p));
        }
        Ok(Some(p))
    }
    // ANCHOR_END: alloc_fast

    /// The calling thread's cache of this heap for the call-free paths (`alloc_cached`,
    /// `free_cached`), found from the heap's key alone (`Tiered::key`), without the root: a
    /// thread slot holds a key only with a cache of that heap, keys are never reused ("Heap
    /// keys" in tls.rs), and `release_all` sets the key to `NO_KEY` before anything goes, so
    /// a match is this live heap's cache. `None` with no heap, no cache, or a cache that is
    /// not the thread's latest heap's.
    #[inline(always)]
    pub(super) fn cached_cache(&self) -> Option<&MCache> {
        // SAFETY: `Tiered::key` is never 0 (`peek_key`'s condition); its answer is the
        // calling thread's own cache of the heap with this key (so of this heap, which lives
        // while `self` is borrowed), live while the thread is.
        unsafe { tls::peek_key(self.key.load(Ordering::Relaxed)).map(|c| c.as_ref()) }
    }

    // ANCHOR: alloc_cached
    /// `Strategy::alloc_cached`: `alloc_fast` without its calls: the object comes from the
    /// free stack or the current span of the thread's cache, or `None`, with nothing changed,
    /// when `alloc_fast` would refill, or would run its bounded step of background work on
    /// this allocation (the caller's `alloc` then does both).
    #[inline(always)]
    pub(super) fn alloc_cached(&self, layout: Layout) -> Option<NonNull<u8>> {
        let c = self.cached_cache()?;
        let class = fast_class(layout)?;
        // `count_op` would reach 0 on this allocation: leave it to `alloc_fast`.
        let left = c.ops_left.get();
        if left <= 1 {
            return None;
        }
        // Counted before the object is taken (and put back if none is), so that the count
        // holds no register across the pop.
        c.ops_left.set(left - 1);
        let p = match c.pop_free(class) {
            Some(p) => p,
            None => match c.alloc_small_fast(span_class(class)) {
                Some(p) => p,
                None => {
                    c.ops_left.set(left);
                    return None;
                }
            },
        };
        c.account_class(class, 1);
        Some(p)
    }
    // ANCHOR_END: alloc_cached

    /// Everything `alloc_fast` leaves: makes the heap and the thread's cache if needed,
    /// refills, large objects.
    #[cold]
    #[inline(never)]
    pub(super) fn alloc_slow<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let root = self.root(src)?;
        self.alloc_in(root, src, layout)
    }

    // ANCHOR: free_addr
    /// The free path of `free` (and, without its answer, `dealloc_fast`): the owner's free
    /// through `find_mine`, else `free_addr_slow`, which finds the span from the address
    /// alone (spanOf, `find_small`); either checks that `ptr` starts a live object of this
    /// heap and frees it. `Err`, with nothing changed, for anything else: see "Bad input" in
    /// the module docs.
    #[inline(always)]
    pub(super) fn free_addr<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        if let Some(c) = self.cached_cache()
            && let Some(o) = find_mine(c, ptr.as_ptr().addr())
        {
            c.free_mine(o.span, o.class, o.index, ptr)?;
            c.account_class(o.class, -1);
            return Ok(o.bytes);
        }
        self.free_addr_slow(src, ptr)
    }
    // ANCHOR_END: free_addr

    // ANCHOR: dealloc_fast
    /// `Strategy::dealloc`: `free_addr` with nothing to return, so that every call it may
    /// make is a tail call and the fast path saves no register: the owner's free found by
    /// `find_mine`, its statistics counted before the object goes onto the free stack or
    /// into its span (`stash_taken`, whose cold call is the last thing done); anything else
    /// to `free_addr_slow`. A free `free` would refuse changes nothing here either.
    #[inline(always)]
    pub(super) fn dealloc_fast<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) {
        if let Some(c) = self.cached_cache()
            && let Some(o) = find_mine(c, ptr.as_ptr().addr())
        {
            if o.span.take_live(o.index) {
                c.account_class(o.class, -1);
                c.stash_taken(o.span, o.class, o.index, ptr);
            }
            return;
        }
        self.dealloc_slow(src, ptr);
    }

    /// `dealloc_fast`'s way out: `free_addr_slow`, its answer dropped.
    #[cold]
    #[inline(never)]
    fn dealloc_slow<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) {
        let _ = self.free_addr_slow(src, ptr);
    }
    // ANCHOR_END: dealloc_fast

    /// Every free `find_mine` leaves (no cache, a hint miss, a span this thread's cache does
    /// not own, a large object, a bad pointer): finds the span from the address alone
    /// (spanOf, `find_small`), checks that `ptr` starts a live object of this heap, and frees
    /// it. `Err`, with nothing changed, for anything else: see "Bad input" in the module docs.
    #[cold]
    #[inline(never)]
    fn free_addr_slow<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        let root = self.existing_root().ok_or(BadFree::Foreign)?;
        let p = ptr.as_ptr().addr();
        // SAFETY: null or the calling thread's own cache, live while the thread is.
        let my = unsafe { tls::peek(root.key).as_ref() };
        let o = match find_small(|| Some(root), my, p) {
            Ok(o) => o,
            Err(Miss::Foreign) => return Err(BadFree::Foreign),
            Err(Miss::Interior) => return Err(BadFree::Interior),
            Err(Miss::Large) => return root.free_large(src, p),
        };
        if let (true, Some(c)) = (o.mine, my) {
            // The fast path: a span this thread's cache owns (so its class is as read).
            c.free_mine(o.span, o.class, o.index, ptr)?;
            c.account(-(o.bytes as isize), -1);
            return Ok(o.bytes);
        }
        self.free_slow(src, root, my, o, ptr)
    }

    // ANCHOR: free_cached
    /// `Strategy::free_cached`: `free_addr`'s fast path alone, without a call: `ptr` starts a
    /// live object of a small span this thread's cache owns, and its class's free stack has
    /// room. `false`, with nothing changed, for anything else (a bad pointer, a large
    /// object, another owner's span, a full stack): the caller's `free` then decides.
    #[inline(always)]
    pub(super) fn free_cached(&self, ptr: NonNull<u8>) -> bool {
        let Some(c) = self.cached_cache() else { return false };
        let p = ptr.as_ptr().addr();
        let o = match find_mine(c, p) {
            Some(o) => o,
            None => match find_small(|| self.existing_root(), Some(c), p) {
                Ok(o) if o.mine => o,
                _ => return false,
            },
        };
        stack_mine(c, &o, ptr)
    }

    /// `Strategy::free_cached_fast`: `free_cached` with `find_mine` alone, so no lookup
    /// through the index (whose code takes registers the preload's `free` would then save on
    /// every call): `Missed` when `find_mine` finds nothing (no fast free of this cache's
    /// span at that address: an address outside the hinted arena, another owner's span, a
    /// large object, a bad pointer), `Refused` when the cache has no room or the object is
    /// not live (or the thread has no cache to look with), `Taken` when it went onto the
    /// free stack.
    #[inline(always)]
    pub(super) fn free_cached_fast(&self, ptr: NonNull<u8>) -> CachedFree {
        let Some(c) = self.cached_cache() else { return CachedFree::Refused };
        match find_mine(c, ptr.as_ptr().addr()) {
            Some(o) if stack_mine(c, &o, ptr) => CachedFree::Taken,
            Some(_) => CachedFree::Refused,
            None => CachedFree::Missed,
        }
    }
    // ANCHOR_END: free_cached

    /// Every free `free_addr`'s fast path leaves: objects of spans another cache (or none)
    /// owns, threads without a cache or whose cache is not the most recent. `my` is the
    /// cache `free_addr_slow` found in the thread's first slot, if any.
    ///
    /// A thread with no cache for this heap gets one here (`tls::get`), as its first
    /// allocation would: a thread that only frees (the consumer of a producer/consumer
    /// pair) then counts its frees in its own cache, with plain stores, instead of three
    /// atomic read-modify-writes on the root's shared counters per free, and paces its
    /// share of background work like any other thread (`note_free`). Only when no cache
    /// can be had (the thread is registering or exiting, or no memory) do the root's
    /// counters take the free.
    #[inline(always)]
    fn free_slow<P: PageSource>(
        &self,
        src: &P,
        root: &Root,
        my: Option<&MCache>,
        o: SmallObject<'_>,
        p: NonNull<u8>,
    ) -> Result<usize, BadFree> {
        let my = match my {
            Some(c) => ptr::from_ref(c).cast_mut(),
            None => tls::get(root, src),
        };
        let bytes = free_small(root, my, o.span, o.index, o.bytes, p)?;
        if my.is_null() {
            root.add_live(-(bytes as isize), -1);
        } else {
            // SAFETY: the thread's own cache.
            let c = unsafe { &*my };
            c.account(-(bytes as isize), -1);
            // Only the frees that leave the owner's fast path count: they are the ones that
            // bring spans, and so pages, back to the heap (see scavenger.rs).
            if c.note_free(bytes) {
                root.free_step(src, c);
            }
        }
        Ok(bytes)
    }

    // ANCHOR: alloc_in
    #[inline(always)]
    pub(super) fn alloc_in<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        match class_for(layout.size(), layout.align()) {
            Some(class) => {
                let bytes = CLASS_BYTES[class] as usize;
                root.with_cache(src, bytes, |c| c.alloc_small(root, src, span_class(class)))
            }
            None => root.alloc_large(src, layout).map(|s| s.base.get()),
        }
    }
    // ANCHOR_END: alloc_in
}

impl Tiered {
    // ANCHOR: owned_usable
    /// `realloc`'s usable size of `ptr` when it is a live object of a small span the calling
    /// thread's cache owns: its class's size, found as the owner's free finds it
    /// (`find_mine`: the arena hint, the span map, the owner test and the exact-start check),
    /// with no lookup through the heap's index. `None` for anything else (no cache, another
    /// owner's span, a large object, a pointer that starts no live object): the caller then
    /// asks `block_of`. Owner only, like the live bit it reads.
    #[inline]
    pub(super) fn owned_usable(&self, ptr: NonNull<u8>) -> Option<usize> {
        let c = self.cached_cache()?;
        let o = find_mine(c, ptr.as_ptr().addr())?;
        o.span.is_live(o.index).then_some(o.bytes)
    }
    // ANCHOR_END: owned_usable

    // ANCHOR: realloc_looked_up
    /// `Strategy::realloc` when the block's class cannot be read off its layout (an
    /// alignment over 8, or an old or new size over `MAX_SMALL_BYTES`): the block's usable
    /// size from the owner's lookup (`owned_usable`), else `block_of`; the block stays if
    /// the new size fits and is more than half of it, on the same side of the small/large
    /// line, and moves otherwise.
    ///
    /// Why `realloc` needs no lookup for the other blocks: a small block allocated with an
    /// alignment up to 8 has the class of its requested size (`class_of`), and `realloc`
    /// keeps it in place only when the new size has that same class. So, by induction, the
    /// class of the size of every layout the caller may name for it (any size from the last
    /// requested one up to the usable size, which is that class's) is the block's own, and
    /// `class_of(new) == class_of(old)` says the new size fits, with more than half of the
    /// block in use (consecutive classes differ by a factor of 2 at most). For any block
    /// named by such a layout, whatever its history, the test is still safe: the smallest
    /// class that holds the old size is at most the block's usable size, a class holding
    /// that size or, for a large block, a multiple of the page up to which every multiple of
    /// the page is a class (asserted in sizeclass.rs); then only an in-place decision could
    /// differ, never a block too small for the new size.
    ///
    /// # Safety
    /// As for `Strategy::realloc`.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn realloc_looked_up<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // The owner's lookup first (`owned_usable`): `block_of` goes through the heap's
        // index.
        let usable = match self.owned_usable(ptr) {
            Some(n) => n,
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { Strategy::usable_size(self, ptr, layout) },
        };
        // In place only if the block stays on its side of the small/large line, so that a
        // large block's usable size stays whole pages and a small one's its class.
        let small = |n: usize| n <= MAX_SMALL_BYTES;
        if new_size <= usable && new_size > usable / 2 && small(new_size) == small(layout.size()) {
            // The block stays as it is: its usable size, which the statistics count, too.
            return Some(ptr);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { crate::strategy::realloc_by_moving(self, src, ptr, layout, new_size) }
    }
    // ANCHOR_END: realloc_looked_up
}

/// `find_mine`'s span for object `p` of the thread's cache `c`, for the tests.
#[cfg(test)]
pub(super) fn find_mine_for_tests(c: &MCache, p: usize) -> Option<&Span> {
    find_mine(c, p).map(|o| o.span)
}
