//! The page heap: page runs for spans and large objects, arenas, and all metadata.
//!
//! Go original: `mheap` in `runtime/mheap.go` (`allocSpan`, `freeSpan`, `grow`,
//! `sysAlloc`), with one global lock as in Go.
//!
//! # Glossary
//! - *heap lock*: the [`SpinLock`] around [`HeapInner`]; every page-level change happens
//!   under it. Lock order: an mcentral lock is never taken while the heap lock is held.
//! - *arena list*: the arenas sorted by address (for the page allocator's lowest-address
//!   first walk).
//! - *large object*: a request over 32 KiB or aligned above 32 KiB: a span of class 0 with one
//!   object, straight from here (Go's `largeAlloc`).
//!
//! # Alloc path (`alloc_span`)
//! 1. `pagealloc::find` the lowest run of `npages` (plus `align_pages - 1` to align); a large
//!    run of at least [`READY_FIT_MIN_PAGES`] first looks for the best-fitting run of Ready
//!    pages (`pagealloc::find_ready_best`), so that it reuses resident memory (issue 17).
//! 2. None: `grow` reserves one or more arenas (64 MiB each, aligned to 64 MiB or to the
//!    run's alignment if larger) in one reservation, as many as the run needs, maps them
//!    (Reserved → Prepared), registers them in the index and the arena list with every
//!    page free and scavenged, and takes the run at the reservation's start. If the source
//!    refuses a whole arena (an address-space limit), a run that fits one arena gets a
//!    *partial arena* instead (see arena.rs). A reservation for an alignment above the
//!    arena size is *dedicated* (`Arena::dedicated`). Arenas that hold nothing go back to
//!    the source (`MHeap::release_empty_arenas`): from the scavenger's bounded step once
//!    their pages are scavenged (a dedicated one at once), and on `trim`; their metadata
//!    records stay, retired, for the next arenas (see "Reuse of arena records" in arena.rs).
//! 3. Make the run's scavenged pages Ready (`used`), mark it in use, take a span record (a
//!    small span's: its first page's head slot where the arena has them, see arena.rs; else
//!    the span `FixAlloc`'s: `take_record`), point the span map at it.
//!
//! # Page cache (`PageCache`)
//! A small-object span (of at most [`PCACHE_MAX_PAGES`] pages) comes from the heap's page
//! cache when it can
//! (Go's per-P `pageCache`, one per heap here): the free pages of one 64-page block (one word
//! of an arena's alloc bitmap), taken out of the page allocator at once and made Ready. Taking
//! a run from the cache is a few bit operations on one word, without `find` and without the
//! summaries `mark` updates; a span freed inside the block gives its pages back to the cache
//! the same way. A request the cache has no run for takes the page allocator's first fit;
//! the cache is refilled once it is used up. Its block goes back to the page allocator
//! (`flush_pcache`) when it is refilled, when it is wholly free and the rest of its arena is
//! too (so that an empty arena is seen and given back), when `release_empty_arenas` finds it
//! wholly free, and before a scavenge of everything (`trim`). At most 64 pages (512 KiB) are held so.
//!
//! # Free path (`free_span`)
//! Clear the span map; pages inside the page cache's block go back to the cache, others are
//! marked free (they stay Ready: a later request reuses them without a system call; the
//! scavenger releases them when too many are retained); give the span record back (a head
//! slot stays, its `owner` null: `give_record`). Needs no page source, so it can run when a thread exits; the
//! scavenger's bounded steps (scavenger.rs) run where the source is known and no lock is
//! held, so the heap lock is never held across a system call of the scavenger.
//!
//! # Sharing and provenance
//! Arena metadata is reached as `&Arena` only (see "Sharing" in arena.rs): the span map by
//! atomics, the page bitmaps through `Arena::pages` / `Arena::pages_mut` under this heap's
//! lock. Page and span pointers are derived from the arena's `base` (the pointer the source's
//! `reserve` returned), never from an address. A run that continues from one arena into the
//! next (`pagealloc::find` joins them) is derived from the first arena's base, which is sound
//! because `find` joins two arenas only when they came from one `reserve` call (the later
//! one's `joins_prev`, set by `grow`; see "Reservations" in pagealloc.rs): every object
//! pointer then stays inside the reservation its provenance comes from.
//!
//! # Invariants (checked by `Tiered::check`)
//! - `inuse_pages` = pages of all live spans + the page cache's free pages = pages marked
//!   in use - `scav_inflight.npages`;
//! - `free_ready_pages` = free pages not scavenged;
//! - `arenas[..narenas]` sorted by base, each registered in the index;
//! - an arena with no page in use implies `empty_arena_hint`; the arenas of one
//!   reservation are all dedicated or none;
//! - the page cache: its free pages lie in one word of a registered arena, inside its
//!   usable pages, are marked in use in the bitmap, have no span and are Ready; they are
//!   counted in `inuse_pages`, not in `free_ready_pages` (`dirty` is a subset of `free`
//!   or, for pages handed out since, stale bits nobody reads); an empty cache has no arena;
//! - the records on `free_arena_recs` are retired (no base, no pages, no span) and
//!   registered nowhere; with the registered ones, at most [`MAX_ARENAS`] records.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::arena::{
    ADDR_BITS, ARENA_BYTES, ARENA_PAGES, ARENA_SHIFT, Arena, HEAD_GROUP_BYTES, HEAD_GROUP_SLOTS, HEADS_BYTES,
    INDEX_L1_BYTES, INDEX_L2_BYTES, Index, IndexL2, L2_BITS, L2_ENTRIES, index_entry, index_of,
    page_in_arena,
};
use super::fixalloc::{FixAlloc, Persistent};
use super::mcache::MCache;
use super::pagealloc::ArenaPages;
use super::pagealloc::{self, set_bits};
use super::scavenger::ScavRun;
use super::sizeclass::PAGE_BYTES;
use super::span::Span;
use crate::source::PageSource;
use crate::sync::SpinLock;

/// Most arenas one heap can hold (64 GiB of heap).
pub const MAX_ARENAS: usize = 1024;

/// Large runs of at least this many pages (512 KiB) look for the best-fitting run of Ready
/// pages before the first fit (`pagealloc::find_ready_best`): a scan of the bitmaps costs
/// less than the page faults of such a run; shorter runs take the first fit at once.
pub const READY_FIT_MIN_PAGES: usize = 64;

/// Largest span (pages) the page cache serves (Go: a quarter of its cache's 64 pages); it
/// serves small-object spans only, so that large objects keep the page allocator's
/// placement (first fit, Ready best fit).
pub const PCACHE_MAX_PAGES: usize = 16;

/// The page cache (see "Page cache"): free pages of one 64-page block, marked in use in
/// the page allocator and counted in `inuse_pages` (Ready; not in `free_ready_pages`,
/// which the scavenger's target weighs against what it can give back: not these).
#[derive(Clone, Copy)]
pub struct PageCache {
    /// The block's arena, or null when the cache is empty.
    pub arena: *const Arena,
    /// The block: word `word` of the arena's alloc bitmap, pages `64 word .. 64 word + 64`.
    pub word: usize,
    /// 1 = free page of the cache.
    pub free: u64,
    /// 1 = the free page may hold old data (it was Ready, or a span's, before).
    pub dirty: u64,
}

impl PageCache {
    /// No block.
    pub const EMPTY: PageCache = PageCache { arena: ptr::null(), word: 0, free: 0, dirty: 0 };
}

/// The first run of `n` (1 ..= 64) set bits in `free`, as a mask.
#[inline]
fn run_of_ones(free: u64, n: usize) -> Option<u64> {
    // Bit `i` of `y` stays set while bits `i ..= i + k` are all set.
    let (mut y, mut k) = (free, 1);
    while k < n && y != 0 {
        let s = (n - k).min(k);
        y &= y >> s;
        k += s;
    }
    (y != 0).then(|| {
        let at = y.trailing_zeros();
        (u64::MAX >> (64 - n)) << at
    })
}

/// The page heap (Go's `mheap`).
pub struct MHeap {
    /// Everything, under the heap lock.
    pub lock: SpinLock<HeapInner>,
    /// Held by the one scavenger at work (see scavenger.rs); taken before the heap lock,
    /// never while holding it.
    pub scav_lock: SpinLock<()>,
}

/// The heap's state (under the lock).
pub struct HeapInner {
    /// Arenas sorted by base.
    pub arenas: [*mut Arena; MAX_ARENAS],
    /// Number of arenas.
    pub narenas: usize,
    /// The arena index, its L1 table (read lock-free by spanOf; entries and L2 tables
    /// written here).
    pub index: Index,
    /// Retired arena records, for reuse by the next arena registered (linked through
    /// `Arena::next_free`; see "Reuse of arena records" in arena.rs). Each is
    /// `rec_bytes` of metadata pages, counted in `meta.committed_bytes`, freed only by
    /// `release_all`.
    pub free_arena_recs: *mut Arena,
    /// Metadata bump allocator.
    pub meta: Persistent,
    /// Span records.
    pub spans: FixAlloc,
    /// mcache records.
    pub caches: FixAlloc,
    /// Every mcache ever made (linked through `MCache::next_all`).
    pub all_caches: *mut MCache,
    /// mcaches of exited threads, for reuse (linked through `MCache::next_free`).
    pub free_caches: *mut MCache,
    /// Pages of live spans, and the page cache's free pages.
    pub inuse_pages: usize,
    /// Free pages that are Ready (retained, not yet scavenged).
    pub free_ready_pages: usize,
    /// Address space reserved (arenas and index).
    pub reserved_bytes: usize,
    /// Bytes of head slots reserved and not Ready (see arena.rs): address space only; a
    /// group made Ready moves to `meta.committed_bytes`.
    pub heads_prepared_bytes: usize,
    /// Pages released by the scavenger so far.
    pub scavenged_pages_total: usize,
    /// The run the scavenger is giving back with the heap lock released (see scavenger.rs),
    /// or `ScavRun::NONE`.
    pub scav_inflight: ScavRun,
    /// The in-use level the retained-memory target is measured from while a hold lasts
    /// (scavenger.rs, "hold"): raised to `inuse_pages` whenever in-use reaches it.
    pub hold_peak_pages: usize,
    /// Steps, in which in-use did not grow, left before the hold ends ([`HOLD_STEPS`] when
    /// armed).
    ///
    /// [`HOLD_STEPS`]: super::scavenger::HOLD_STEPS
    pub hold_steps_left: usize,
    /// `inuse_pages` at the previous scavenger step (to tell whether the heap grew since).
    pub step_inuse_pages: usize,
    /// Free pages of one 64-page block held back from the page allocator for small spans
    /// (see "Page cache").
    pub pcache: PageCache,
    /// Set when a freed span leaves its arena without a span; cleared by
    /// `MHeap::release_empty_arenas` when no such arena is left. The scavenger's bounded
    /// step looks for arenas to give back only while it is set.
    pub empty_arena_hint: bool,
}

// SAFETY: `HeapInner` is `!Send` only for its raw pointers (arena list, index, cache lists)
// and `FixAlloc`s; they point into metadata and arenas that this heap owns, not into anything
// tied to a thread. The state lives inside the heap's `SpinLock` and is only reached through
// it, so moving it to another thread (which is what `SpinLock<HeapInner>: Sync` lets a lock
// holder on another thread do) leaves nothing that the previous holder still touches.
unsafe impl Send for HeapInner {}

impl MHeap {
    /// An empty heap; `index` is set by the root when it is created.
    pub const fn new() -> MHeap {
        MHeap {
            lock: SpinLock::new(HeapInner {
                arenas: [ptr::null_mut(); MAX_ARENAS],
                narenas: 0,
                index: ptr::null(),
                free_arena_recs: ptr::null_mut(),
                meta: Persistent::INIT,
                spans: FixAlloc::new(core::mem::size_of::<Span>()),
                caches: FixAlloc::new(core::mem::size_of::<MCache>()),
                all_caches: ptr::null_mut(),
                free_caches: ptr::null_mut(),
                inuse_pages: 0,
                free_ready_pages: 0,
                reserved_bytes: 0,
                heads_prepared_bytes: 0,
                scavenged_pages_total: 0,
                scav_inflight: ScavRun::NONE,
                hold_peak_pages: 0,
                hold_steps_left: 0,
                step_inuse_pages: 0,
                empty_arena_hint: false,
                pcache: PageCache::EMPTY,
            }),
            scav_lock: SpinLock::new(()),
        }
    }
}

// Every `FixAlloc` record comes from a metadata chunk, never from pages of its own, so that
// `Persistent::release` (the chunk list) gives back all of them.
const _: () = assert!(core::mem::size_of::<MCache>() <= super::fixalloc::META_CHUNK_BYTES / 4);
const _: () = assert!(core::mem::size_of::<Span>() <= super::fixalloc::META_CHUNK_BYTES / 4);

impl MHeap {
    /// Gives everything the page heap took from `src` back to it: every arena (the pages of
    /// live spans included), every arena record (registered or on the free list of
    /// records), every L2 table of the index, every
    /// metadata chunk (span and cache records). The L1 table and the root are the caller's.
    /// Afterwards the heap must not be used: the caller frees the memory it lives in.
    ///
    /// # Safety
    /// `src` is the heap's source; no other thread uses the heap during the call, and no
    /// pointer into what it held (blocks, spans, caches, arenas) is used after it.
    pub unsafe fn release_all<P: PageSource>(&self, src: &P) {
        let _one = self.scav_lock.lock();
        let mut h = self.lock.lock();
        let h = &mut *h;
        let page = P::PAGE_BYTES;
        let rec_bytes = crate::source::align_up(core::mem::size_of::<Arena>(), page).unwrap_or(0);
        let free_heads = |rec: NonNull<Arena>| {
            // SAFETY: an initialised record of this heap; its slots, if any, are
            // `HEADS_BYTES` reserved from `src` (`make_heads`) that nothing uses any more
            // (the caller's contract).
            unsafe {
                if let Some(heads) = NonNull::new(rec.as_ref().heads()) {
                    let _ = src.free(heads.cast(), HEADS_BYTES);
                }
            }
        };
        h.heads_prepared_bytes = 0;
        for i in 0..h.narenas {
            let rec = h.arenas[i];
            // SAFETY: the list holds initialised arenas of this heap (heap lock held).
            let (base, bytes) = unsafe { ((*rec).base(), (*rec).usable_pages() * PAGE_BYTES) };
            // SAFETY: `base .. + bytes` is an arena reserved from `src` (a whole reservation
            // or an arena-sized piece of one, as `release_empty_arenas` frees them) and `rec`
            // its record (`rec_bytes` of pages from `src`); nothing uses them any more (the
            // caller's contract).
            unsafe {
                let _ = src.free(base, bytes);
                if let Some(rec) = NonNull::new(rec) {
                    free_heads(rec);
                    let _ = src.free(rec.cast(), rec_bytes);
                }
            }
        }
        h.narenas = 0;
        while let Some(rec) = NonNull::new(h.free_arena_recs) {
            // SAFETY: the free list holds retired records of this heap (heap lock held).
            h.free_arena_recs = unsafe { rec.as_ref() }.next_free.load(Ordering::Relaxed);
            free_heads(rec);
            // SAFETY: `rec` is `rec_bytes` of metadata pages from `src` (`add_arena`), on no
            // other list and in no index entry; nothing uses it any more (the caller's
            // contract).
            let _ = unsafe { src.free(rec.cast(), rec_bytes) };
        }
        let l2_bytes = crate::source::align_up(INDEX_L2_BYTES, page).unwrap_or(0);
        for j in 0..super::arena::L1_ENTRIES {
            // SAFETY: `j < L1_ENTRIES`: inside the L1 table, Ready while the heap lives.
            let e = unsafe { &*h.index.add(j) };
            if let Some(t) = NonNull::new(e.swap(ptr::null_mut(), Ordering::Relaxed)) {
                // SAFETY: a non-null L1 entry is an L2 table made by `ready_index_entry`
                // from `l2_bytes` of pages of `src`; nothing reads it any more.
                let _ = unsafe { src.free(t.cast(), l2_bytes) };
            }
        }
        // SAFETY: the chunks came from `src`; no record of them is used any more.
        unsafe { h.meta.release(src) };
    }

    // ANCHOR: release_empty_arenas
    /// Gives back to `src` the arenas that hold nothing (their address space; their
    /// metadata records are retired and kept for reuse, see "Reuse of arena records" in
    /// arena.rs), and returns the address space given back. An arena holds nothing when no page of it is
    /// in use, and either every page is scavenged (the scavenger's target let its memory go:
    /// giving the address space back costs no page fault the scavenger did not already
    /// decide on) or it is *dedicated* (reserved for an over-aligned request, see
    /// `Arena::dedicated`: its Ready pages go back with it). Called by `trim` after its
    /// scavenge, and by the background step (`Root::background`) when a freed span left an
    /// arena empty (`empty_arena_hint`), so that the arenas a large or over-aligned request
    /// grew the heap by do not stay reserved after it is freed (issue #16, item 5); Go never
    /// frees an arena.
    ///
    /// An arena goes only when no registered arena joins it (`joins_prev`, see
    /// "Reservations" in pagealloc.rs): the arenas of one reservation go from its top
    /// down, so no arena ever joins one that is gone. The arenas are taken out of the index
    /// and the arena list under the heap lock, their records retired onto the heap's free
    /// list of records, and the arenas freed after the lock is released (no system call
    /// under the heap lock); the scavenger's lock is held throughout, so no run of theirs is
    /// in flight. A thread of `span_of` (`block_of`, a free of a stale or foreign pointer)
    /// may still read a record it loaded from the index before: the record stays mapped,
    /// and a retired or reused one answers nothing for the old arena's addresses. Nothing
    /// reads the arena's memory: the free path reads it only for a live block, and an empty
    /// arena has none.
    pub fn release_empty_arenas<P: PageSource>(&self, src: &P) -> usize {
        let _one = self.scav_lock.lock();
        self.release_empty_arenas_held(src)
    }

    /// `release_empty_arenas`, the scavenger's lock held by the caller.
    pub(super) fn release_empty_arenas_held<P: PageSource>(&self, src: &P) -> usize {
        let mut released = 0;
        loop {
            let mut batch = [(NonNull::<u8>::dangling(), 0); 16];
            let n = {
                let mut h = self.lock.lock();
                // The cache's block keeps its arena from looking empty (see "Page cache"):
                // it goes back when it is wholly free. A block with a span in it leaves its
                // arena non-empty whatever happens, so the cache is kept then.
                if h.pcache.free == !0 {
                    h.flush_pcache();
                }
                let (n, waiting) = h.unregister_empty_arenas(&mut batch);
                h.empty_arena_hint = waiting || n == batch.len();
                n
            };
            for &(base, bytes) in &batch[..n] {
                released += bytes;
                // SAFETY: `base .. + bytes` is an arena reserved from `src`, taken out of
                // every structure of the heap under its lock; nothing refers to its memory
                // (see above: its record, which `span_of` may still read, is kept).
                let _ = unsafe { src.free(base, bytes) };
            }
            if n < batch.len() {
                return released;
            }
        }
    }
    // ANCHOR_END: release_empty_arenas
}

impl HeapInner {
    /// Takes empty arenas out of the index and the arena list, from the highest address
    /// down (see `MHeap::release_empty_arenas`), at most `out.len()`; retires each one's
    /// metadata record onto the free list of records, writes its base and reserved bytes
    /// to `out` for the caller to free, and returns how many, and whether an arena without a span stays (its pages not all
    /// scavenged yet, or joined by one that stays).
    fn unregister_empty_arenas(&mut self, out: &mut [(NonNull<u8>, usize)]) -> (usize, bool) {
        let (mut n, mut waiting) = (0, false);
        let mut i = self.narenas;
        while i > 0 && n < out.len() {
            i -= 1;
            // SAFETY: the list holds initialised arenas of this heap, whose lock `&mut self`
            // proves held; only shared references are made (see "Sharing" in arena.rs).
            let a = unsafe { &*self.arenas[i] };
            // SAFETY: `&mut self` proves the heap lock held, which `pages` requires.
            let pages = unsafe { a.pages() };
            // A partial arena's tail is marked in use, so its free run from page 0 ends there.
            if (pages.sum.start as usize) < a.usable_pages() {
                continue;
            }
            // Free pages not scavenged (a partial arena's tail has its scav bits set): counted
            // only for an arena that goes; the test stops at the first word with one.
            let empty = a.dedicated() || pages.scav.iter().all(|&w| w == !0);
            let joined = i + 1 < self.narenas && {
                // SAFETY: `i + 1 < narenas`: an initialised arena of this heap, only shared.
                let b = unsafe { &*self.arenas[i + 1] };
                b.joins_prev() && b.base_addr() == a.end()
            };
            let Some(rec) = NonNull::new(self.arenas[i]) else { continue };
            if !empty || joined {
                waiting = true;
                continue;
            }
            // SAFETY: `self.index` is the heap's L1 table; the arena is registered, so its
            // entry exists.
            if let Some(e) = unsafe { index_entry(self.index, index_of(a.base_addr())) } {
                e.store(ptr::null_mut(), Ordering::Release);
            }
            let ready: usize = pages.scav.iter().map(|w| w.count_zeros() as usize).sum();
            let bytes = a.usable_pages() * PAGE_BYTES;
            out[n] = (a.base(), bytes);
            self.arenas.copy_within(i + 1..self.narenas, i);
            self.narenas -= 1;
            self.reserved_bytes -= bytes;
            self.free_ready_pages -= ready;
            // Out of the index and the list: retire the record (no base, so `span_of` finds
            // nothing in it) and keep it for the next arena. Its pages stay committed.
            a.retire();
            a.next_free.store(self.free_arena_recs, Ordering::Relaxed);
            self.free_arena_recs = rec.as_ptr();
            n += 1;
        }
        (n, waiting)
    }

    /// The arena holding address `addr`, which lies in an arena of this heap.
    pub fn arena_of(&self, addr: usize) -> &Arena {
        // SAFETY: `self.index` is the heap's L1 table. `addr` lies in a registered arena of
        // this heap (every caller passes part of a run of the page allocator), so its L2
        // table and entry are set and name an initialised record that lives as long as the
        // heap (records are retired and reused, never freed, see "Reuse of arena records"
        // in arena.rs; this one is registered, and only the heap lock holder changes that).
        // Only a shared reference is made: other threads read the record meanwhile.
        unsafe {
            let i = index_of(addr);
            let l2 = (*self.index.add(i >> L2_BITS)).load(Ordering::Relaxed);
            &*(*l2).entries[i & (L2_ENTRIES - 1)].load(Ordering::Relaxed)
        }
    }

    /// Calls `f(arena, pages, first_page, n)` for each arena-sized piece of the page run of
    /// `npages` pages at address `addr` (in this heap's arenas), with the piece's arena and
    /// that arena's page-allocator state.
    pub fn for_each_piece(
        &mut self,
        addr: usize,
        npages: usize,
        mut f: impl FnMut(&Arena, &mut ArenaPages, usize, usize),
    ) {
        let (mut a, mut left) = (addr, npages);
        while left > 0 {
            let first = page_in_arena(a);
            let n = left.min(ARENA_PAGES - first);
            let arena = self.arena_of(a);
            // SAFETY: `&mut self` proves the heap lock held, for the whole call; the pages
            // of this arena are referenced nowhere else meanwhile (`f` gets the arena as
            // `&Arena`, whose pages sit in an `UnsafeCell` it does not open).
            f(arena, unsafe { arena.pages_mut() }, first, n);
            a += n * PAGE_BYTES;
            left -= n;
        }
    }

    // ANCHOR: alloc_span
    /// Allocates a span of `npages` pages aligned to `align_pages` pages for span class
    /// `spc` (0 = large). `None` when the source cannot give more.
    pub fn alloc_span<P: PageSource>(
        &mut self,
        src: &P,
        npages: usize,
        align_pages: usize,
        spc: usize,
    ) -> Option<NonNull<Span>> {
        if spc != 0
            && npages <= PCACHE_MAX_PAGES
            && align_pages == 1
            && let Some(s) = self.alloc_span_cached(src, npages, spc)
        {
            return Some(s);
        }
        let want = npages.checked_add(align_pages - 1)?;
        let arenas = &self.arenas[..self.narenas];
        // Large runs: the best-fitting run of Ready pages first (see `find_ready_best`), so
        // that a freed large object's pages are reused resident, without a page fault.
        let ready = if spc == 0 && want >= READY_FIT_MIN_PAGES && self.free_ready_pages >= want {
            // SAFETY: `&mut self` proves the heap lock held; the list holds this heap's arenas.
            unsafe { pagealloc::find_ready_best(arenas, want) }
        } else {
            None
        };
        // SAFETY: as above.
        let run = match ready.or_else(|| unsafe { pagealloc::find(arenas, want) }) {
            Some(r) => r,
            // The new reservation starts with `npages` free pages aligned as asked.
            None => self.grow(src, npages, align_pages)?,
        };
        // SAFETY: `run.arena` indexes an initialised arena of the list.
        let arena = unsafe { &*self.arenas[run.arena] };
        let run_addr = arena.base_addr() + run.page * PAGE_BYTES;
        let offset = run_addr.next_multiple_of(align_pages * PAGE_BYTES) - arena.base_addr();
        // The run's first page as a pointer from the arena's base (see "Sharing and
        // provenance"); `wrapping_add` because a run may continue into the next arena.
        let base = NonNull::new(arena.base().as_ptr().wrapping_add(offset))?;
        let needzero = self.make_ready(src, base.as_ptr().addr(), npages)? || !P::FRESH_ZEROED;
        let Some((rec, reused)) = self.take_record(src, arena, offset, spc) else {
            self.unmake_ready(base.as_ptr().addr(), npages);
            return None;
        };
        let span = rec.cast::<Span>();
        if !reused {
            // SAFETY: fresh metadata sized and aligned for a Span, which no span map has ever
            // named, so no thread can read it: written whole.
            unsafe { span.as_ptr().write(Span::empty()) };
        }
        // SAFETY: an initialised record (written above, or a freed span's), held under the
        // heap lock; `init` rewrites it field by field through cells and atomics (see
        // "Reuse of span records" in span.rs).
        unsafe { span.as_ref() }.init(base, npages, spc, needzero);
        self.for_each_piece(base.as_ptr().addr(), npages, |a, _, first, n| {
            a.set_spans(first, n, span.as_ptr())
        });
        self.inuse_pages += npages;
        self.note_inuse_rise();
        Some(span)
    }
    // ANCHOR_END: alloc_span

    // ANCHOR: alloc_span_cached
    /// `alloc_span` from the page cache (see "Page cache"), refilled first if empty; `None`
    /// when it has no run of `npages` (the caller then takes the page allocator's first fit).
    fn alloc_span_cached<P: PageSource>(
        &mut self,
        src: &P,
        npages: usize,
        spc: usize,
    ) -> Option<NonNull<Span>> {
        if self.pcache.free == 0 {
            self.fill_pcache(src)?;
        }
        let mask = run_of_ones(self.pcache.free, npages)?;
        let c = self.pcache;
        let needzero = c.dirty & mask != 0 || !P::FRESH_ZEROED;
        // SAFETY: the cache's arena is registered (the cache's invariant), an initialised
        // record that lives as long as the heap; only a shared reference is made.
        let arena = unsafe { &*c.arena };
        let first = c.word * 64 + mask.trailing_zeros() as usize;
        let (rec, reused) = self.take_record(src, arena, first * PAGE_BYTES, spc)?;
        self.pcache.free &= !mask;
        let span = rec.cast::<Span>();
        if !reused {
            // SAFETY: fresh metadata sized and aligned for a Span, which no span map has ever
            // named, so no thread can read it: written whole.
            unsafe { span.as_ptr().write(Span::empty()) };
        }
        let a = arena;
        // SAFETY: `first < ARENA_PAGES`: the block lies inside the arena's reservation; the
        // pointer derives from the arena's base (see "Sharing and provenance").
        let base = unsafe { a.base().add(first * PAGE_BYTES) };
        // SAFETY: an initialised record (written above, or a freed span's), held under the
        // heap lock (see "Reuse of span records" in span.rs).
        unsafe { span.as_ref() }.init(base, npages, spc, needzero);
        a.set_spans(first, npages, span.as_ptr());
        Some(span)
    }
    // ANCHOR_END: alloc_span_cached

    /// Refills the empty page cache with the free pages of the 64-page block that holds the
    /// lowest free page, made Ready and marked in use. `None` (the cache stays empty) when
    /// there is no free page or the source refuses to make one Ready.
    fn fill_pcache<P: PageSource>(&mut self, src: &P) -> Option<()> {
        debug_assert!(self.pcache.free == 0);
        self.flush_pcache();
        // SAFETY: `&mut self` proves the heap lock held; the list holds this heap's arenas.
        let run = unsafe { pagealloc::find(&self.arenas[..self.narenas], 1) }?;
        let arena = self.arenas[run.arena];
        // SAFETY: an initialised arena of the list, shared reference only.
        let a = unsafe { &*arena };
        // SAFETY: `&mut self` proves the heap lock held; no other reference to this
        // arena's pages is made while `pages` lives.
        let pages = unsafe { a.pages_mut() };
        let word = run.page / 64;
        let free = !pages.alloc[word];
        let scav = pages.scav[word] & free;
        // Make the scavenged ones Ready, run by run (as `make_ready` does).
        let mut left = scav;
        while left != 0 {
            let lo = left.trailing_zeros() as usize;
            let len = (!(left >> lo)).trailing_zeros() as usize;
            // SAFETY: `word * 64 + lo < ARENA_PAGES`: inside the arena's reservation.
            let at = unsafe { a.base().add((word * 64 + lo) * PAGE_BYTES) };
            // SAFETY: the pages are free, mapped and Prepared (scav bit set), in an arena
            // reserved from `src`; `at` carries the reservation's provenance.
            if unsafe { src.used(at, len * PAGE_BYTES) }.is_err() {
                // The ones made Ready so far are free Ready pages now.
                let done = scav & !left;
                pages.scav[word] &= !done;
                self.free_ready_pages += done.count_ones() as usize;
                return None;
            }
            left &= !((u64::MAX >> (64 - len)) << lo);
        }
        pages.scav[word] &= !scav;
        // The cache's free pages count as in use (see `PageCache`).
        self.free_ready_pages -= (free & !scav).count_ones() as usize;
        self.inuse_pages += free.count_ones() as usize;
        self.note_inuse_rise();
        pages.alloc[word] = !0;
        pages.update_summaries(word * 64, 64);
        self.pcache = PageCache { arena, word, free, dirty: free & !scav };
        Some(())
    }

    /// Gives the page cache's free pages back to the page allocator (free, Ready) and
    /// empties it.
    pub(super) fn flush_pcache(&mut self) {
        let c = core::mem::replace(&mut self.pcache, PageCache::EMPTY);
        if c.free == 0 {
            // Nothing to give back (every page of the block is a span's, marked in use).
            return;
        }
        // SAFETY: the cache's arena is registered (the cache's invariant), an initialised
        // record; only a shared reference is made.
        let a = unsafe { &*c.arena };
        // SAFETY: `&mut self` proves the heap lock held, and no other reference to the
        // arena's pages is made while `pages` lives.
        let pages = unsafe { a.pages_mut() };
        pages.alloc[c.word] &= !c.free;
        pages.update_summaries(c.word * 64, 64);
        self.inuse_pages -= c.free.count_ones() as usize;
        self.free_ready_pages += c.free.count_ones() as usize;
        if pages.sum.start as usize >= a.usable_pages() {
            self.empty_arena_hint = true;
        }
    }

    // ANCHOR: make_ready
    /// Marks `base .. + npages` in use after making its scavenged pages Ready; returns
    /// whether any page may hold old data. On failure nothing is changed.
    fn make_ready<P: PageSource>(&mut self, src: &P, base: usize, npages: usize) -> Option<bool> {
        let mut failed = false;
        let mut dirty = 0usize;
        let mut readied = 0usize;
        self.for_each_piece(base, npages, |a, pages, first, n| {
            if failed {
                return;
            }
            let mut p = first;
            while p < first + n {
                if !pages.is_scav(p) {
                    dirty += 1;
                    p += 1;
                    continue;
                }
                let q = (p..first + n).find(|&q| !pages.is_scav(q)).unwrap_or(first + n);
                // SAFETY: `p < ARENA_PAGES`: the page lies inside the arena's reservation.
                let at = unsafe { a.base().add(p * PAGE_BYTES) };
                // SAFETY: pages `p .. q` are free, mapped and Prepared (scav bit set), in an
                // arena reserved from `src`; `at` carries the reservation's provenance.
                let r = unsafe { src.used(at, (q - p) * PAGE_BYTES) };
                if r.is_err() {
                    failed = true;
                    return;
                }
                set_bits(&mut pages.scav, p, q - p, false);
                readied += q - p;
                p = q;
            }
        });
        // Pages made Ready (even on failure) are now free Ready pages.
        self.free_ready_pages += readied;
        if failed {
            return None;
        }
        self.for_each_piece(base, npages, |_, pages, first, n| pages.mark(first, n, true));
        self.free_ready_pages -= npages;
        Some(dirty > 0)
    }
    // ANCHOR_END: make_ready

    /// Undoes `make_ready` (the pages stay Ready, free).
    fn unmake_ready(&mut self, base: usize, npages: usize) {
        self.for_each_piece(base, npages, |_, pages, first, n| pages.mark(first, n, false));
        self.free_ready_pages += npages;
    }

    // ANCHOR: free_span
    /// Gives a span's pages back to the page cache if they lie in its block, else to the
    /// page allocator (they stay Ready), and its record to the span free list. Returns
    /// whether an arena dedicated to an over-aligned request was left without a span (the
    /// next background step gives it back at once, see `release_empty_arenas`).
    ///
    /// # Safety
    /// `span` came from `alloc_span` of this heap, has no live objects, no list or mcache
    /// refers to it any more, and no thread reads its fields after this call. `&Span`s to it
    /// may still be live in callers' frames: the record is rewritten when it is reused, which
    /// they allow because no byte of a `Span` is outside a cell (see "Reuse of span records"
    /// in span.rs).
    pub unsafe fn free_span(&mut self, span: NonNull<Span>) -> bool {
        // SAFETY: the caller guarantees the span is ours and unreferenced.
        let (base, npages) = unsafe {
            let s = span.as_ref();
            (s.base_addr(), s.npages.get())
        };
        // The record as the span map holds it, with the provenance `take_record` handed out
        // (the free list keeps it and hands it out again), rather than `span`, which callers
        // derive from a `&Span` of theirs.
        let rec = self.arena_of(base).span_at(page_in_arena(base));
        debug_assert!(ptr::eq(rec, span.as_ptr()), "span map does not name the span freed");
        let rec = NonNull::new(rec).unwrap_or(span);
        if let Some(dedicated) = self.free_span_cached(base, npages) {
            // SAFETY: as below.
            unsafe { self.give_record(base, rec) };
            return dedicated;
        }
        let (mut emptied, mut dedicated) = (false, false);
        self.for_each_piece(base, npages, |a, pages, first, n| {
            a.set_spans(first, n, ptr::null_mut());
            pages.mark(first, n, false);
            if pages.sum.start as usize >= a.usable_pages() {
                emptied = true;
                dedicated |= a.dedicated();
            }
        });
        if emptied {
            self.empty_arena_hint = true;
        }
        self.inuse_pages -= npages;
        self.free_ready_pages += npages;
        // SAFETY: the record came from `take_record` for the span at `base`, and no thread
        // reads it any more (the caller's contract); references to it that are still live
        // cover only cells.
        unsafe { self.give_record(base, rec) };
        dedicated
    }
    // ANCHOR_END: free_span

    /// The record for a new span of span class `spc` whose first page is `offset` bytes
    /// from `arena`'s base (past its end for a run that continues from the arena before,
    /// which never happens for a first page), and whether it was used before (it must then
    /// be rewritten through its cells, see "Reuse of span records" in span.rs): the
    /// first page's head slot for a small span in an arena with slots (see "head slots" in
    /// arena.rs; always "used before": other threads may read any slot at any time), else
    /// a record of the span `FixAlloc`.
    fn take_record<P: PageSource>(
        &mut self,
        src: &P,
        arena: &Arena,
        offset: usize,
        spc: usize,
    ) -> Option<(NonNull<Span>, bool)> {
        let page = offset / PAGE_BYTES;
        let g = page / HEAD_GROUP_SLOTS;
        if spc != 0
            && page < ARENA_PAGES
            && (arena.heads_ready() >> g & 1 == 1 || self.ready_head_group(src, arena, g))
        {
            // SAFETY: `page < ARENA_PAGES`: inside the slots' array, whose pointer carries
            // its reservation's provenance; its group is Ready. The slot holds no live span:
            // the run's first page was free, and a slot is the record of a span only while
            // that span, which begins at its page, lives (arena.rs's invariant).
            let slot = unsafe { NonNull::new_unchecked(arena.heads().add(page)) };
            return Some((slot, true));
        }
        self.spans.alloc_reused(&mut self.meta, src).map(|(r, reused)| (r.cast(), reused))
    }

    /// Gives back the record of the span that began at address `base`, which
    /// `take_record` handed out: a head slot keeps its place with a null `owner` (so that
    /// `find_mine`, which may read it at any time, trusts it no more: arena.rs's invariant),
    /// anything else goes back to the span `FixAlloc`.
    ///
    /// # Safety
    /// `rec` is that record, its span freed, and no thread reads it as a live span's any
    /// more; references to it that are still live cover only cells.
    unsafe fn give_record(&mut self, base: usize, rec: NonNull<Span>) {
        if self.arena_of(base).is_head_slot(rec.as_ptr()) {
            // SAFETY: a head slot is an initialised span record (the caller's contract);
            // only a shared reference is made.
            unsafe { rec.as_ref() }.owner.store(ptr::null_mut(), Ordering::Relaxed);
            return;
        }
        // SAFETY: not a head slot, so a record of `self.spans` (the caller's contract).
        unsafe { self.spans.free(rec.cast()) };
    }

    /// `free_span`'s pages back into the page cache when they lie in its block (see "Page
    /// cache"); returns what `free_span` returns, or `None` when they do not.
    fn free_span_cached(&mut self, base: usize, npages: usize) -> Option<bool> {
        let c = self.pcache;
        if c.arena.is_null() || npages > 64 {
            return None;
        }
        // SAFETY: the cache's arena is registered (the cache's invariant), shared only.
        let a = unsafe { &*c.arena };
        let first = base.wrapping_sub(a.base_addr()) / PAGE_BYTES;
        if base < a.base_addr() || first / 64 != c.word || (first + npages - 1) / 64 != c.word {
            return None;
        }
        let mask = (u64::MAX >> (64 - npages)) << (first % 64);
        a.set_spans(first, npages, ptr::null_mut());
        self.pcache.free |= mask;
        self.pcache.dirty |= mask;
        if self.pcache.free == !0 {
            // The whole block is free: if the rest of the arena is too, the block goes
            // back, so that the arena is seen empty (and given back, see
            // `release_empty_arenas`).
            // SAFETY: `&mut self` proves the heap lock held; no other reference to this
            // arena's pages is made while `pages` lives.
            let sum = unsafe { a.pages() }.sum;
            let rest = a.usable_pages().saturating_sub(64);
            if sum.start as usize + sum.end as usize >= rest {
                self.flush_pcache();
                self.empty_arena_hint = true;
                return Some(a.dedicated());
            }
        }
        Some(false)
    }

    // ANCHOR: heap_grow
    /// Reserves and registers enough new arenas for a run of `npages` aligned to
    /// `align_pages` pages (Go's `mheap.grow`), and returns that run: the first page of the
    /// new reservation.
    ///
    /// The reservation is as large as the run needs, in whole arenas, and the page source
    /// aligns it (to the arena size, or to the run's alignment when that is larger): an
    /// over-aligned request costs the arenas it covers, not twice its alignment (issue #16,
    /// item 5), and the source decides how to find an aligned range (`Mmap` tries hinted
    /// reservations of the exact size before it over-reserves; see `Mmap::reserve`).
    #[cold]
    fn grow<P: PageSource>(&mut self, src: &P, npages: usize, align_pages: usize) -> Option<pagealloc::Run> {
        let count = npages.div_ceil(ARENA_PAGES).max(1);
        if self.narenas + count > MAX_ARENAS {
            return None;
        }
        let bytes = count.checked_mul(ARENA_BYTES)?;
        let align = align_pages.checked_mul(PAGE_BYTES)?.max(ARENA_BYTES);
        let (base, bytes, usable) = match src.reserve(bytes, align) {
            Ok(base) => (base, bytes, ARENA_PAGES),
            // Degrade: a partial arena (see arena.rs), when one is enough for the run.
            Err(_) if count == 1 => {
                let (base, bytes) = Self::reserve_partial(src, npages, align)?;
                (base, bytes, bytes / PAGE_BYTES)
            }
            Err(_) => return None,
        };
        let fits = base.as_ptr().addr().checked_add(bytes).is_some_and(|e| e <= 1 << ADDR_BITS);
        // SAFETY: `base .. + bytes` was just reserved from `src`, is Reserved and unused.
        if !fits || unsafe { src.map(base, bytes) }.is_err() {
            // SAFETY: `base .. + bytes` was just reserved from `src` and nothing refers to it
            // (the map failed or was not tried).
            let _ = unsafe { src.free(base, bytes) };
            return None;
        }
        // Arenas are filled densely, lowest pages first, and are 64 MiB-aligned: let the OS
        // back them with huge pages (issue 17: a short process's page faults).
        // SAFETY: `base .. + bytes` was reserved from `src` and is now Prepared.
        unsafe { src.hint_dense(base, bytes) };
        self.reserved_bytes += bytes;
        // The new arenas hold no span until the run is taken (and keep none if that fails).
        self.empty_arena_hint = true;
        for i in 0..count {
            // SAFETY: `i * ARENA_BYTES < bytes`: inside the reservation.
            let arena = unsafe { base.add(i * ARENA_BYTES) };
            // Every arena but the reservation's first continues the one before it. If an
            // arena's metadata cannot be made, it and the ones after it (never registered,
            // so no registered arena joins a missing one) go back to the source.
            if self.add_arena(src, arena, i > 0, align > ARENA_BYTES, usable).is_none() {
                let rest = bytes - i * ARENA_BYTES;
                // SAFETY: `arena .. + rest` is the tail of the reservation just made, mapped
                // and never registered: nothing refers to it.
                let _ = unsafe { src.free(arena, rest) };
                self.reserved_bytes -= rest;
                return None;
            }
        }
        let addr = base.as_ptr().addr();
        let at = self.arenas[..self.narenas].partition_point(|&a| {
            // SAFETY: the arena list holds initialised arenas; only `base` is read.
            unsafe { (*a).base_addr() < addr }
        });
        Some(pagealloc::Run { arena: at, page: 0 })
    }
    // ANCHOR_END: heap_grow

    /// The reservation of a partial arena for a run of `npages` (at most an arena), when a
    /// whole arena was refused: half an arena, then a quarter, ..., and last the run's own
    /// size in whole chunks, each aligned to `align`. Returns the base and the bytes.
    #[cold]
    fn reserve_partial<P: PageSource>(src: &P, npages: usize, align: usize) -> Option<(NonNull<u8>, usize)> {
        let need = npages.next_multiple_of(pagealloc::CHUNK_PAGES).min(ARENA_PAGES) * PAGE_BYTES;
        let mut bytes = ARENA_BYTES / 2;
        while bytes > need {
            if let Ok(base) = src.reserve(bytes, align) {
                return Some((base, bytes));
            }
            bytes /= 2;
        }
        (need < ARENA_BYTES).then(|| src.reserve(need, align).ok().map(|b| (b, need))).flatten()
    }

    /// Registers the arena at `base`; `joins_prev`: it continues the arena just below it in
    /// the same reservation, already registered; `dedicated`: see `Arena::dedicated`.
    fn add_arena<P: PageSource>(
        &mut self,
        src: &P,
        base: NonNull<u8>,
        joins_prev: bool,
        dedicated: bool,
        usable_pages: usize,
    ) -> Option<()> {
        let addr = base.as_ptr().addr();
        // `grow` checked that the arena ends below `1 << ADDR_BITS`, so it has an entry.
        let entry: *const AtomicPtr<Arena> = self.ready_index_entry(src, addr)?;
        let rec = if let Some(rec) = NonNull::new(self.free_arena_recs) {
            // A retired record first (see "Reuse of arena records" in arena.rs).
            // SAFETY: the free list holds retired, initialised records of this heap, which
            // live as long as it; only a shared reference is made (other threads may still
            // read the record through an index entry they loaded before it was retired).
            let r = unsafe { rec.as_ref() };
            self.free_arena_recs = r.next_free.load(Ordering::Relaxed);
            // SAFETY: `&mut self` proves the heap lock held; the record is retired (off the
            // free list now, in no index entry or list) and nobody references its pages.
            unsafe { r.reuse(base, joins_prev, dedicated, usable_pages) };
            rec
        } else {
            let rec = self.meta.alloc_pages(src, core::mem::size_of::<Arena>())?.cast::<Arena>();
            // SAFETY: fresh pages sized for one Arena, page-aligned, not yet shared; Ready
            // for the first time since they were mapped (`alloc_pages` takes them from
            // `alloc_ready`), so they read as zero when the source is `FRESH_ZEROED`.
            unsafe { Arena::init(rec.as_ptr(), base, joins_prev, dedicated, usable_pages, P::FRESH_ZEROED) };
            rec
        };
        // SAFETY: `entry` is in an L2 table, which lives as long as the heap.
        unsafe { (*entry).store(rec.as_ptr(), Ordering::Release) };
        let at = self.arenas[..self.narenas].partition_point(|&a| {
            // SAFETY: the arena list holds initialised arenas; only `base` is read.
            unsafe { (*a).base_addr() < addr }
        });
        self.arenas.copy_within(at..self.narenas, at + 1);
        self.arenas[at] = rec.as_ptr();
        self.narenas += 1;
        Some(())
    }

    /// Gives arena record `r` head slots (see arena.rs): [`HEADS_BYTES`] reserved and
    /// mapped (Prepared: no group Ready yet), or leaves it without when the source refuses
    /// them or its pages do not divide a group.
    fn make_heads<P: PageSource>(&mut self, src: &P, r: &Arena) {
        if !HEAD_GROUP_BYTES.is_multiple_of(P::PAGE_BYTES) {
            return;
        }
        let Ok(heads) = src.reserve(HEADS_BYTES, P::PAGE_BYTES) else { return };
        // SAFETY: just reserved from `src`, Reserved, seen by nobody.
        if unsafe { src.map(heads, HEADS_BYTES) }.is_err() {
            // SAFETY: as above; nothing refers to it.
            let _ = unsafe { src.free(heads, HEADS_BYTES) };
            return;
        }
        self.heads_prepared_bytes += HEADS_BYTES;
        // SAFETY: the heap lock is held (`&mut self`), `r` has no slots, and `heads` is
        // `HEADS_BYTES` reserved from `src`, freed only by `release_all`.
        unsafe { r.set_heads(heads.cast()) };
    }

    /// Makes group `g` of arena record `r`'s head slots Ready (and gives `r` slots first
    /// if it has none and should): zero bytes (valid span
    /// records, each with a null `owner`), then its bit. False, with nothing changed, when
    /// the source refuses.
    fn ready_head_group<P: PageSource>(&mut self, src: &P, r: &Arena, g: usize) -> bool {
        // A whole, shared arena's record gets head slots when its first small span is made
        // (arenas that hold only large objects never need them), if the source gives the
        // address space. Without them its spans take `FixAlloc` records, as a partial
        // arena's do (under an address-space limit, where 4.5 MiB may be worth more as
        // heap) and a dedicated one's (it serves over-aligned large objects).
        if r.heads().is_null() && r.usable_pages() == ARENA_PAGES && !r.dedicated() {
            self.make_heads(src, r);
        }
        let Some(heads) = NonNull::new(r.heads()) else { return false };
        // SAFETY: `g < 64`: the group lies inside the slots' reservation.
        let group = unsafe { heads.cast::<u8>().add(g * HEAD_GROUP_BYTES) };
        // SAFETY: the group is Prepared (its bit is clear: it was never made Ready) in a
        // range of `src`, whole pages of it (`make_heads` checked the page size).
        if unsafe { src.used(group, HEAD_GROUP_BYTES) }.is_err() {
            return false;
        }
        if !P::FRESH_ZEROED {
            // SAFETY: Ready now, and read by nobody: its bit is clear, so `head_slot` hands
            // out none of its slots.
            unsafe { ptr::write_bytes(group.as_ptr(), 0, HEAD_GROUP_BYTES) };
        }
        self.heads_prepared_bytes -= HEAD_GROUP_BYTES;
        self.meta.committed_bytes += HEAD_GROUP_BYTES;
        // SAFETY: the heap lock is held; the group is Ready, all zero (from a `FRESH_ZEROED`
        // source, Ready for the first time since `map`, it reads as zero).
        unsafe { r.set_head_group_ready(g) };
        true
    }

    /// The index entry of the arena at `base`, making its L2 table (from metadata pages)
    /// if it has none yet; `None` if that fails.
    fn ready_index_entry<P: PageSource>(&mut self, src: &P, base: usize) -> Option<&AtomicPtr<Arena>> {
        let i = index_of(base);
        // SAFETY: `self.index` is the heap's L1 table, Ready since the heap's creation; its
        // non-null entries are L2 tables made below, which are never freed.
        if let Some(e) = unsafe { index_entry(self.index, i) } {
            return Some(e);
        }
        if i >= 1 << (ADDR_BITS - ARENA_SHIFT) {
            return None;
        }
        let t = self.meta.alloc_pages(src, INDEX_L2_BYTES)?.cast::<IndexL2>();
        if !P::FRESH_ZEROED {
            // SAFETY: fresh Ready pages sized for one `IndexL2` (page-aligned), seen by
            // nobody yet; all-zero bytes are null atomic pointers. (From a `FRESH_ZEROED`
            // source they read as zero already, Ready for the first time since `map`
            // inside `alloc_ready`: not written, so only the entries used are faulted in.)
            unsafe { ptr::write_bytes(t.as_ptr().cast::<u8>(), 0, INDEX_L2_BYTES) };
        }
        // SAFETY: `i >> L2_BITS` is inside the L1 table (`i` is in range); the table is
        // published with Release, after it was zeroed, for `index_entry`'s Acquire.
        unsafe { (*self.index.add(i >> L2_BITS)).store(t.as_ptr(), Ordering::Release) };
        // SAFETY: the L2 table now exists.
        unsafe { index_entry(self.index, i) }
    }

    /// Bytes held Ready: live spans, retained free pages, metadata.
    pub fn committed_bytes(&self) -> usize {
        (self.inuse_pages + self.free_ready_pages) * PAGE_BYTES + self.meta.committed_bytes + INDEX_L1_BYTES
    }
}
