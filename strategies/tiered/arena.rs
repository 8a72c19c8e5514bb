//! Heap arenas and the arena index: how a free finds its span in O(1) without a header.
//!
//! Go original: `heapArena` and `mheap.arenas` in `runtime/mheap.go` (with `spanOf`).
//!
//! # Glossary
//! - *arena*: [`ARENA_BYTES`] = 64 MiB of address space, [`ARENA_PAGES`] = 8192 runtime pages,
//!   aligned to its size, reserved from the page source and then mapped in one call (with
//!   `Mmap`, a read-write mapping the kernel charges to its commit account but backs with
//!   memory only where touched; pages become Ready only when the page allocator hands them
//!   out, see `pagealloc.rs`).
//! - *arena index*: two levels covering a 48-bit address space (Go's `heapAddrBits`),
//!   indexed by the arena number `addr >> 26`. Its top [`L2_BITS`] bits pick an entry of
//!   the L1 table ([`L1_ENTRIES`] pointers, [`INDEX_L1_BYTES`], made Ready when the heap is
//!   created); that entry points to an L2 table ([`IndexL2`], [`L2_ENTRIES`] arena
//!   pointers, one per arena of a 256 GiB slice of the address space), made from metadata
//!   pages when the first arena of its slice is registered and never freed. Go on
//!   linux/amd64 has one level of 2^22 entries, a 32 MiB table mapped at once; under an
//!   address-space limit (`RLIMIT_AS`) those 32 MiB count in full even though the kernel
//!   backs only the pages touched, and alone they can take a quarter of a small limit. Two
//!   levels cost address space in proportion to use (one L2 table per slice in use), for one
//!   more dependent load on the free path (L1 entry, L2 entry, arena, span).
//! - *partial arena*: an arena whose reservation covers only its first `usable_pages`
//!   pages (a multiple of the 512-page chunk), still aligned to [`ARENA_BYTES`] so that the
//!   index and the page arithmetic are those of a full arena. `mheap::grow` makes one only
//!   when the page source refuses a whole arena (an address-space limit): it degrades to
//!   half, a quarter, ... of an arena, down to what the request needs. The pages past
//!   `usable_pages` are not reserved; they are marked in use in the page bitmap (and left
//!   "scavenged") from `init` on, so the page allocator and the scavenger never touch
//!   them, and no span covers them. A partial arena is alone in its reservation: it joins
//!   no arena and none joins it.
//! - *span map* (`Arena::spans`, Go's `heapArena.spans`): page -> span. Every page of an
//!   in-use span points to it; free pages point to nothing.
//! - *head slots* (`Arena::heads`): an array of [`ARENA_PAGES`] span records, one per page,
//!   in a reservation of their own ([`HEADS_BYTES`], 4.5 MiB of address space), made for
//!   every whole arena's record (a partial arena's record has none, as has one whose
//!   reservation the source refused). The slots are made Ready in groups of
//!   [`HEAD_GROUP_SLOTS`] (72 KiB), each when a span first begins on one of its pages
//!   (`Arena::heads_ready`), and kept Ready while the heap lives (metadata, like span
//!   records). The record of a small-object span whose first page is page `p` of such an
//!   arena is slot `p` (`MHeap::take_record`), so the owner's free finds it from the
//!   address and its cache's arena hint alone (`find_mine`), without the span map: one
//!   dependent load fewer. Large spans, and small ones in an arena without slots (or whose
//!   group the source would not make Ready), take their records from the span `FixAlloc`.
//!
//! # Sharing
//! An `Arena` is reached by any thread as `&Arena` (the free path's spanOf, `block_of`, with
//! no lock), so every byte a `&Arena` covers is atomic or in a cell: `base`, `joins_prev`,
//! `usable_pages`, `dedicated` are atomics written under the heap lock (at registration and
//! retirement only), the span map is atomic. The page allocator's bitmaps and summaries
//! (`pages`) are written under the heap lock; they sit in an `UnsafeCell`, so a shared
//! `&Arena` asserts nothing about them, and they are reached only through [`Arena::pages`] /
//! [`Arena::pages_mut`] with the heap lock held. No `&mut Arena` is ever made once the
//! record is initialised.
//!
//! # Reuse of arena records
//! When an arena goes back to the source (`MHeap::release_empty_arenas`), its index entry is
//! cleared, but a thread of `span_of` may have loaded it just before and still read the
//! record. So the record is not freed: it is *retired* (`Arena::retire`: no base, no usable
//! pages; its span map is all null since the arena held no span) and goes on the heap's free
//! list of records (`HeapInner::free_arena_recs`, under the heap lock), and the next arena
//! registered takes it (`Arena::reuse`) before mapping a new one. Records go back to the
//! source only with the heap (`MHeap::release_all`). `span_of` answers from a record only
//! for an address inside the arena it describes at that moment (`Arena::holds`), and the
//! callers check the span found against the address and its live bit, so a stale address
//! gets null / `None` / `Err`, or the right answer for a new arena at the same place.
//!
//! # spanOf (the free path)
//! 1. `l2 = l1[addr >> 38]`, then `arena = l2[(addr >> 26) % 4096]` (Relaxed atomic loads:
//!    plain loads);
//! 2. `span = arena.spans[(addr >> 13) % 8192]`.
//!
//! # Invariants (checked by `Tiered::check`)
//! - `index[a.base >> 26] == a` for every registered arena `a` (through both levels);
//! - `a.joins_prev` ⇒ the arena before `a` in the sorted list ends where `a` begins, and
//!   both came from one `reserve` call; a span that covers `a`'s first page and began in
//!   an earlier arena exists only then (see "Reservations" in pagealloc.rs);
//! - `spans[p] == s` ⇔ page `p` lies in `s.base .. s.base + s.npages * PAGE_BYTES` of an
//!   in-use span `s`; and then page `p` is marked in use in `pagealloc`'s bitmap;
//! - a record on the heap's free list is in no index entry and not in the arena list, has
//!   no base, no usable pages and an all-null span map;
//! - head slots: a Ready group's slot `p` is the record of a live span iff `spans[p]`
//!   names it, and then that span is small and begins at page `p`; every other slot of a
//!   Ready group (never used, or its span freed) has a null `owner` (`MHeap::give_record`
//!   clears it), which is what lets `find_mine` read any slot of a Ready group: only a span
//!   a cache owns is trusted. A retired record's slots all have a null `owner`.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::pagealloc::{ArenaPages, Summary};
use super::sizeclass::{PAGE_BYTES, PAGE_SHIFT};
use super::span::Span;

// ANCHOR: arena_consts
/// Bytes of one heap arena (Go's `heapArenaBytes`).
pub const ARENA_BYTES: usize = 64 << 20;
/// log2 of [`ARENA_BYTES`].
pub const ARENA_SHIFT: usize = 26;
/// Runtime pages per arena.
pub const ARENA_PAGES: usize = ARENA_BYTES / PAGE_BYTES;
/// Bits of address the index covers (Go's `heapAddrBits`, 48 on amd64).
pub const ADDR_BITS: usize = 48;
/// Arena numbers the index covers (`1 << (ADDR_BITS - ARENA_SHIFT)`).
pub const INDEX_ENTRIES: usize = 1 << (ADDR_BITS - ARENA_SHIFT);
/// Bits of the arena number that index an L2 table.
pub const L2_BITS: usize = 12;
/// Arena pointers per L2 table.
pub const L2_ENTRIES: usize = 1 << L2_BITS;
/// Entries of the L1 table (pointers to L2 tables).
pub const L1_ENTRIES: usize = INDEX_ENTRIES >> L2_BITS;
/// Bytes of the L1 table (Ready from the heap's creation).
pub const INDEX_L1_BYTES: usize = L1_ENTRIES * core::mem::size_of::<usize>();
/// Bytes of one L2 table (metadata pages, made when first needed).
pub const INDEX_L2_BYTES: usize = core::mem::size_of::<IndexL2>();
// ANCHOR_END: arena_consts

// ANCHOR: arena_struct
/// Metadata of one arena, in memory from the page source.
///
/// A record lives as long as the heap: when its arena goes back to the source, the record
/// goes on the heap's list of free records (`HeapInner::free_arena_recs`) and the next
/// arena registered takes it again (see "Reuse of arena records"). Every field is therefore
/// atomic or in a cell: a thread of the free path may hold a `&Arena` while the record is
/// released or reused.
#[repr(C)]
pub struct Arena {
    /// First byte of the arena (aligned to [`ARENA_BYTES`]), with the provenance of the
    /// reservation it came from: every page and span pointer of the arena derives from it.
    /// Null while the record is on the free list. Written under the heap lock only.
    base: AtomicPtr<u8>,
    /// Whether this arena continues the one just below it (`base - ARENA_BYTES`) in the
    /// same reservation of the page source, so that a page run may cross from that arena
    /// into this one (see "Reservations" in pagealloc.rs). Set at `init` / `reuse`.
    joins_prev: AtomicBool,
    /// Pages of the arena that are reserved and can be handed out: [`ARENA_PAGES`], or fewer
    /// for a *partial arena* (see "Partial arenas"); 0 while the record is on the free list.
    /// Set at `init` / `reuse` (and cleared at `retire`).
    usable_pages: AtomicUsize,
    /// Whether the arena belongs to a reservation `grow` made for an over-aligned request
    /// (alignment above [`ARENA_BYTES`]): it goes back to the source as soon as it holds no
    /// span, its Ready pages with it (`MHeap::release_empty_arenas`), rather than when the
    /// scavenger has released all its pages. Set at `init` / `reuse`.
    dedicated: AtomicBool,
    /// Next record on the heap's free list of records (under the heap lock).
    pub(super) next_free: AtomicPtr<Arena>,
    /// Bit `g`: the head slots of group `g` (pages `HEAD_GROUP_SLOTS * g ..` of the
    /// arena) are Ready and initialised (zero bytes are a valid `Span`: atomics and cells of
    /// integers and pointers, `SpanList::None`), so any thread may read them. Only ever
    /// set (Release, after the group was made Ready and, for a source whose fresh memory
    /// is not zero, zeroed; for `head_slot`'s Acquire), under the heap lock; 0 while the
    /// record has no slots. In line 0 with `base`, as `heads`, so that the free path reads
    /// no other line of the record.
    heads_ready: AtomicU64,
    /// The head slots (see the glossary): [`ARENA_PAGES`] span records, [`HEADS_BYTES`]
    /// reserved and mapped from the page source, or null when this record has none. Set
    /// once, under the heap lock, before any bit of `heads_ready`; kept while the heap lives
    /// (retired records keep theirs); given back to the source with the heap
    /// (`MHeap::release_all`).
    heads: AtomicPtr<Span>,
    /// Page -> span (Go's `heapArena.spans`), read by any thread with no lock.
    pub spans: [AtomicPtr<Span>; ARENA_PAGES],
    /// The page allocator's bitmaps and summaries for this arena: under the heap lock, and
    /// only through [`Arena::pages`] / [`Arena::pages_mut`] (see "Sharing").
    pages: UnsafeCell<ArenaPages>,
}
// ANCHOR_END: arena_struct

// A record is a little over the span map (64 KiB); tests/tiered_return.rs counts on 72 KiB.
const _: () = assert!(core::mem::size_of::<Arena>() <= 72 << 10);

/// Bytes of one arena's head slots (see the glossary): address space, Ready only in the
/// groups where spans began.
pub const HEADS_BYTES: usize = ARENA_PAGES * core::mem::size_of::<Span>();
/// Head slots made Ready at once (one bit of `Arena::heads_ready`).
pub const HEAD_GROUP_SLOTS: usize = ARENA_PAGES / 64;
/// Bytes of one group of head slots (72 KiB: whole pages of any source whose page is at
/// most 8 KiB).
pub const HEAD_GROUP_BYTES: usize = HEAD_GROUP_SLOTS * core::mem::size_of::<Span>();

impl Arena {
    /// Initialises arena metadata in place at `at` for the arena starting at `base`: its
    /// first `usable_pages` pages free and scavenged (Prepared), the rest (none for a full
    /// arena) marked in use for good, no spans; `joins_prev` and `dedicated` as the fields
    /// say. `zeroed`: the memory at `at` already reads as zero (fresh pages of a
    /// `FRESH_ZEROED` source), so it is not written over: the span map (64 KiB) is then
    /// touched only where spans are made, not faulted in whole when the arena is made
    /// (issue 17: a short process's page faults).
    ///
    /// # Safety
    /// `at` is valid for writes of one `Arena`, suitably aligned, and not yet shared; with
    /// `zeroed`, every byte of it reads as zero.
    pub unsafe fn init(
        at: *mut Arena,
        base: NonNull<u8>,
        joins_prev: bool,
        dedicated: bool,
        usable_pages: usize,
        zeroed: bool,
    ) {
        // SAFETY: the caller gives room for one Arena that nobody else sees yet, all zero if
        // `zeroed`. Every field is an atomic, a cell of integers or the page bitmaps, for
        // which all-zero bytes are valid (null pointers, false, zero words): after the
        // zeroing (or with `zeroed`, as it is) the record is a valid, retired `Arena`, and
        // `reuse` sets it up through a shared reference.
        unsafe {
            if !zeroed {
                ptr::write_bytes(at.cast::<u8>(), 0, core::mem::size_of::<Arena>());
            }
            (*at).reuse(base, joins_prev, dedicated, usable_pages);
        }
    }

    /// Sets up a retired record (fresh from `init`'s zeroing, or from the heap's free list
    /// of records, see `retire`) for the arena starting at `base`, as `init` says. Its span
    /// map is all null (a retired record's arena held no span), and stays so.
    ///
    /// # Safety
    /// The caller holds the heap lock, the record is retired (not registered: no arena list
    /// or index entry names it), and no reference to its pages is live.
    pub unsafe fn reuse(&self, base: NonNull<u8>, joins_prev: bool, dedicated: bool, usable_pages: usize) {
        // SAFETY: the heap lock is held and the record is not registered, so nobody else
        // reaches its pages (readers without the lock touch only `base`, `usable_pages` and
        // the span map); all-zero bytes are valid bitmaps and summaries.
        let pages = unsafe {
            let pages = self.pages.get();
            ptr::write_bytes(pages.cast::<u8>(), 0, core::mem::size_of::<ArenaPages>());
            &mut *pages
        };
        pages.scav = [!0u64; ARENA_PAGES / 64];
        pages.sum = Summary::ALL_FREE_ARENA;
        pages.chunk_sum = [Summary::ALL_FREE_CHUNK; super::pagealloc::CHUNKS_PER_ARENA];
        if usable_pages < ARENA_PAGES {
            pages.mark(usable_pages, ARENA_PAGES - usable_pages, true);
        }
        self.joins_prev.store(joins_prev, Ordering::Relaxed);
        self.dedicated.store(dedicated, Ordering::Relaxed);
        self.next_free.store(ptr::null_mut(), Ordering::Relaxed);
        // `usable_pages` before `base`: a reader that sees the new base (Acquire) sees the
        // new size too.
        self.usable_pages.store(usable_pages, Ordering::Relaxed);
        self.base.store(base.as_ptr(), Ordering::Release);
    }

    /// Marks the record retired, once its arena is out of the index and the arena list and
    /// before it goes on the heap's free list: no base, no pages, so that `span_of` finds
    /// nothing in it for any address. Its span map is all null already (the arena held no
    /// span). Under the heap lock.
    pub fn retire(&self) {
        debug_assert!(self.spans.iter().all(|e| e.load(Ordering::Relaxed).is_null()));
        self.usable_pages.store(0, Ordering::Relaxed);
        self.base.store(ptr::null_mut(), Ordering::Release);
    }

    /// First byte of the arena, with the reservation's provenance (see the field). Only for
    /// a registered record (a retired one has none): under the heap lock, or by the
    /// thread that registered it.
    #[inline]
    pub fn base(&self) -> NonNull<u8> {
        NonNull::new(self.base.load(Ordering::Relaxed)).unwrap_or(NonNull::dangling())
    }

    /// See the field.
    #[inline]
    pub fn joins_prev(&self) -> bool {
        self.joins_prev.load(Ordering::Relaxed)
    }

    /// See the field.
    #[inline]
    pub fn usable_pages(&self) -> usize {
        self.usable_pages.load(Ordering::Relaxed)
    }

    /// See the field.
    #[inline]
    pub fn dedicated(&self) -> bool {
        self.dedicated.load(Ordering::Relaxed)
    }

    /// Whether `addr` lies in the usable part of the arena this record describes now (none
    /// for a retired record). Any thread, with no lock: the Acquire load of `base` pairs
    /// with `reuse`'s Release store, so the size read after it belongs to that base or a
    /// later one (a later `retire` only shrinks it to 0).
    #[inline]
    pub fn holds(&self, addr: usize) -> bool {
        let base = self.base.load(Ordering::Acquire).addr();
        base != 0 && addr.wrapping_sub(base) < self.usable_pages.load(Ordering::Relaxed) * PAGE_BYTES
    }

    /// The page allocator's state of this arena, to read.
    ///
    /// # Safety
    /// The caller holds the heap lock of the heap this arena belongs to (writers hold it
    /// too, so no `&mut` from [`Arena::pages_mut`] is live meanwhile), for as long as it
    /// uses the result.
    #[inline]
    pub unsafe fn pages(&self) -> &ArenaPages {
        // SAFETY: the caller holds the heap lock, under which alone the pages are written.
        unsafe { &*self.pages.get() }
    }

    /// The page allocator's state of this arena, to change.
    ///
    /// # Safety
    /// The caller holds the heap lock of the heap this arena belongs to for as long as it
    /// uses the result, and makes no other reference to this arena's pages meanwhile.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn pages_mut(&self) -> &mut ArenaPages {
        // SAFETY: the heap lock serialises every access to the pages, and the caller makes
        // no other reference to them while this one lives. The `&mut` covers the pages only:
        // the span map and `base`, which other threads read through `&Arena`, are outside
        // the cell.
        unsafe { &mut *self.pages.get() }
    }

    /// First byte, as an address.
    #[inline]
    pub fn base_addr(&self) -> usize {
        self.base.load(Ordering::Relaxed).addr()
    }

    /// The head slot of page `page` (taken modulo [`ARENA_PAGES`]), or `None` when its
    /// group is not Ready (or the record has no slots). Any thread, with no lock: the slot
    /// is a valid span record (see `heads_ready`), which may be a live span's, a freed
    /// one's (`owner` null) or never used (all zero); the caller trusts it only as
    /// `find_mine` does (its `owner` first).
    #[inline(always)]
    pub fn head_slot(&self, page: usize) -> Option<&Span> {
        let page = page % ARENA_PAGES;
        if self.heads_ready.load(Ordering::Acquire) >> (page / HEAD_GROUP_SLOTS) & 1 == 0 {
            return None;
        }
        let heads = self.heads.load(Ordering::Relaxed);
        // SAFETY: a group's bit is set only after `heads` was (see the field), never to
        // null; said to the compiler so that it tests nothing more.
        unsafe { core::hint::assert_unchecked(!heads.is_null()) };
        // SAFETY: a group's bit is set (Release, which this Acquire load pairs with) only
        // after `heads` was set and the group's slots were made Ready and initialised; they
        // stay so while the heap lives. `page < ARENA_PAGES`: inside the array. Only a
        // shared reference is made, and every byte of a `Span` is in a cell or an atomic.
        Some(unsafe { &*heads.add(page) })
    }

    /// The head slots' array (null when none), with the provenance of their reservation.
    #[inline]
    pub fn heads(&self) -> *mut Span {
        self.heads.load(Ordering::Relaxed)
    }

    /// Which groups of head slots are Ready (see the field).
    #[inline]
    pub fn heads_ready(&self) -> u64 {
        self.heads_ready.load(Ordering::Relaxed)
    }

    /// Gives the record head slots (see `heads`), none of them Ready yet.
    ///
    /// # Safety
    /// The caller holds the heap lock, the record has no slots yet, and `heads` is
    /// [`HEADS_BYTES`] reserved from the heap's source, which the heap keeps until
    /// `release_all`.
    pub unsafe fn set_heads(&self, heads: NonNull<Span>) {
        debug_assert!(self.heads.load(Ordering::Relaxed).is_null());
        debug_assert!(self.heads_ready.load(Ordering::Relaxed) == 0);
        self.heads.store(heads.as_ptr(), Ordering::Relaxed);
    }

    /// Marks group `g` of the head slots Ready (see `heads_ready`).
    ///
    /// # Safety
    /// The caller holds the heap lock, and the group's [`HEAD_GROUP_BYTES`] are Ready and
    /// initialised span records, each with a null `owner` or a live span's.
    pub unsafe fn set_head_group_ready(&self, g: usize) {
        let bits = self.heads_ready.load(Ordering::Relaxed) | 1 << g;
        self.heads_ready.store(bits, Ordering::Release);
    }

    /// Whether `rec` is one of this record's head slots (the start of one), in a Ready
    /// group.
    #[inline]
    pub fn is_head_slot(&self, rec: *const Span) -> bool {
        let heads = self.heads.load(Ordering::Relaxed).addr();
        let off = rec.addr().wrapping_sub(heads);
        let slot = off / core::mem::size_of::<Span>();
        heads != 0
            && off < HEADS_BYTES
            && off.is_multiple_of(core::mem::size_of::<Span>())
            && self.heads_ready() >> (slot / HEAD_GROUP_SLOTS) & 1 == 1
    }

    /// The span holding page `page` of this arena (null for a free page).
    #[inline]
    pub fn span_at(&self, page: usize) -> *mut Span {
        self.spans[page].load(Ordering::Relaxed)
    }

    /// Points pages `first .. first + n` at `span` (null to clear).
    pub fn set_spans(&self, first: usize, n: usize, span: *mut Span) {
        for e in &self.spans[first..first + n] {
            e.store(span, Ordering::Relaxed);
        }
    }

    /// One past the last byte.
    #[inline]
    pub fn end(&self) -> usize {
        self.base_addr() + ARENA_BYTES
    }
}

/// One L2 table of the arena index: the arenas of one slice of [`L2_ENTRIES`] arenas.
#[repr(C)]
pub struct IndexL2 {
    /// Arena pointers, null where no arena is registered.
    pub entries: [AtomicPtr<Arena>; L2_ENTRIES],
}

/// The arena index as the heap and the free path hold it: the L1 table, whose entries
/// point to L2 tables (null where none was made).
pub type Index = *const AtomicPtr<IndexL2>;

/// Arena number of `addr` (its entry of the index, L1 and L2 bits together).
#[inline]
pub fn index_of(addr: usize) -> usize {
    addr >> ARENA_SHIFT
}

/// The index entry of arena number `i`, or `None` if `i` is out of range or its L2 table
/// does not exist yet.
///
/// # Safety
/// `index` is a heap's L1 table, Ready, whose non-null entries name initialised L2 tables
/// that live as long as the heap.
#[inline]
pub unsafe fn index_entry<'a>(index: Index, i: usize) -> Option<&'a AtomicPtr<Arena>> {
    if i >= INDEX_ENTRIES {
        return None;
    }
    // SAFETY: `i >> L2_BITS < L1_ENTRIES`: inside the L1 table (the caller's contract).
    let l2 = unsafe { (*index.add(i >> L2_BITS)).load(Ordering::Acquire) };
    // SAFETY: a non-null L1 entry names an initialised L2 table (Acquire pairs with the
    // Release store that published it), which lives as long as the heap.
    unsafe { l2.as_ref() }.map(|t| &t.entries[i & (L2_ENTRIES - 1)])
}

/// Page number of `addr` inside its arena.
#[inline]
pub fn page_in_arena(addr: usize) -> usize {
    (addr >> PAGE_SHIFT) & (ARENA_PAGES - 1)
}

// ANCHOR: span_of
/// spanOf: the span whose page holds `addr`, or null. Three dependent loads after the index,
/// and the check that the arena record names the arena of `addr` now.
///
/// Any address may be asked, a stale one included. An arena record stays mapped for the
/// heap's lifetime (released arenas' records go on the heap's free list and are reused, see
/// "Reuse of arena records"), so the record read from the index entry is valid memory even
/// if the arena went back to the source meanwhile. If the record was retired since, it has
/// no base and the answer is null; if it was reused for another arena, `addr` is outside
/// that arena (unless the new arena lies at the same address, where the answer is the new
/// arena's span, correct for `addr`). The span returned is a span record (mapped while the
/// heap lives) that held `addr`'s page when it was read; the caller checks that it holds
/// `addr` and that the object is live, as for any span that may be freed meanwhile.
///
/// # Safety
/// `index` is the root's index (L1 table, Ready; its non-null entries name L2 tables).
#[inline]
pub unsafe fn span_of(index: Index, addr: usize) -> *mut Span {
    // SAFETY: the caller's contract is `arena_of`'s.
    match unsafe { arena_of(index, addr) } {
        Some(arena) => arena.span_at(page_in_arena(addr)),
        None => ptr::null_mut(),
    }
}

/// The first half of [`span_of`]: the record of the arena that holds `addr` now, or `None`.
/// The record stays valid memory while the heap lives, whatever happens to its arena (see
/// `span_of`); a caller that keeps it (a thread cache's hint) checks `holds` again before
/// each use.
///
/// # Safety
/// As for [`span_of`].
#[inline]
pub unsafe fn arena_of<'a>(index: Index, addr: usize) -> Option<&'a Arena> {
    // SAFETY: the caller's contract is `index_entry`'s.
    let e = unsafe { index_entry(index, index_of(addr)) }?;
    let arena = e.load(Ordering::Acquire);
    // SAFETY: a non-null index entry names an arena record, initialised before it was
    // published (Release / Acquire); records are never freed while the heap lives (retired
    // ones are kept for reuse), and every field of one is atomic or in a cell, so a shared
    // reference stays valid while another thread retires or reuses the record.
    let arena = unsafe { arena.as_ref() }?;
    arena.holds(addr).then_some(arena)
}
// ANCHOR_END: span_of
