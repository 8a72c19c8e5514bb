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
//! - *arena index*: one level, as Go has on linux/amd64 (L1 bits 0, L2 bits 22): a table of
//!   2^22 arena pointers covering a 48-bit address space, indexed by `addr >> 26`. The table
//!   (32 MiB) is only *reserved*; the 4 KiB OS page that holds an entry is mapped and made
//!   Ready when the first arena it covers is registered, so the table costs one OS page per
//!   32 GiB of address space actually used (512 entries of 64 MiB).
//! - *span map* (`Arena::spans`, Go's `heapArena.spans`): page -> span. Every page of an
//!   in-use span points to it; free pages point to nothing.
//!
//! # Sharing
//! An `Arena` is reached by any thread as `&Arena` (the free path's spanOf, with no lock), so
//! everything a `&Arena` covers is either immutable after [`Arena::init`] (`base`,
//! `joins_prev`) or atomic
//! (the span map). The page allocator's bitmaps and summaries (`pages`) are written under the
//! heap lock; they sit in an `UnsafeCell`, so a shared `&Arena` asserts nothing about them,
//! and they are reached only through [`Arena::pages`] / [`Arena::pages_mut`] with the heap
//! lock held. No `&mut Arena` is ever made once the arena is registered.
//!
//! # spanOf (the free path)
//! 1. `arena = index[addr >> 26]` (a Relaxed atomic load: a plain load);
//! 2. `span = arena.spans[(addr >> 13) % 8192]`.
//!
//! # Invariants (checked by `Tiered::check`)
//! - `index[a.base >> 26] == a` for every registered arena `a`;
//! - `a.joins_prev` ⇒ the arena before `a` in the sorted list ends where `a` begins, and
//!   both came from one `reserve` call; a span that covers `a`'s first page and began in
//!   an earlier arena exists only then (see "Reservations" in pagealloc.rs);
//! - `spans[p] == s` ⇔ page `p` lies in `s.base .. s.base + s.npages * PAGE_BYTES` of an
//!   in-use span `s`; and then page `p` is marked in use in `pagealloc`'s bitmap.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

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
/// Entries of the one-level index.
pub const INDEX_ENTRIES: usize = 1 << (ADDR_BITS - ARENA_SHIFT);
/// Bytes of the index table (reserved, mapped lazily).
pub const INDEX_BYTES: usize = INDEX_ENTRIES * core::mem::size_of::<usize>();
// ANCHOR_END: arena_consts

// ANCHOR: arena_struct
/// Metadata of one arena, in memory from the page source.
#[repr(C)]
pub struct Arena {
    /// First byte of the arena (aligned to [`ARENA_BYTES`]), with the provenance of the
    /// reservation it came from: every page and span pointer of the arena derives from it.
    pub base: NonNull<u8>,
    /// Whether this arena continues the one just below it (`base - ARENA_BYTES`) in the
    /// same reservation of the page source, so that a page run may cross from that arena
    /// into this one (see "Reservations" in pagealloc.rs). Set at `init`, never changed.
    pub joins_prev: bool,
    /// Page -> span (Go's `heapArena.spans`), read by any thread with no lock.
    pub spans: [AtomicPtr<Span>; ARENA_PAGES],
    /// The page allocator's bitmaps and summaries for this arena: under the heap lock, and
    /// only through [`Arena::pages`] / [`Arena::pages_mut`] (see "Sharing").
    pages: UnsafeCell<ArenaPages>,
}
// ANCHOR_END: arena_struct

impl Arena {
    /// Initialises arena metadata in place at `at` for the arena starting at `base`: all pages
    /// free and scavenged (Prepared), no spans; `joins_prev` as the field says.
    ///
    /// # Safety
    /// `at` is valid for writes of one `Arena`, suitably aligned, and not yet shared.
    pub unsafe fn init(at: *mut Arena, base: NonNull<u8>, joins_prev: bool) {
        // SAFETY: the caller gives room for one Arena that nobody else sees yet. The span map
        // and the bitmaps are atomics and integers, for which all-zero bytes are valid (null
        // pointers, zero words); `base` (not valid as zeros) is written before any read, by
        // raw place projections, and the pages through the `UnsafeCell` of a record no one
        // else can reach.
        unsafe {
            ptr::write_bytes(at.cast::<u8>(), 0, core::mem::size_of::<Arena>());
            ptr::addr_of_mut!((*at).base).write(base);
            ptr::addr_of_mut!((*at).joins_prev).write(joins_prev);
            let pages = &mut *UnsafeCell::raw_get(ptr::addr_of!((*at).pages));
            pages.scav = [!0u64; ARENA_PAGES / 64];
            pages.sum = Summary::ALL_FREE_ARENA;
            pages.chunk_sum = [Summary::ALL_FREE_CHUNK; super::pagealloc::CHUNKS_PER_ARENA];
        }
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
        self.base.as_ptr().addr()
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

/// Index of the arena holding `addr` in the one-level table.
#[inline]
pub fn index_of(addr: usize) -> usize {
    addr >> ARENA_SHIFT
}

/// Page number of `addr` inside its arena.
#[inline]
pub fn page_in_arena(addr: usize) -> usize {
    (addr >> PAGE_SHIFT) & (ARENA_PAGES - 1)
}

/// spanOf for a pointer this heap handed out: no range or null checks (the free path).
///
/// # Safety
/// `addr` is a live block of the heap whose index table is `index`.
#[inline(always)]
pub unsafe fn span_of_live(index: *const AtomicPtr<Arena>, addr: usize) -> *mut Span {
    // SAFETY: a live block lies in a registered arena, whose index entry is Ready and set,
    // and whose metadata lives as long as the heap.
    unsafe {
        let arena = (*index.add(index_of(addr))).load(Ordering::Relaxed);
        (*arena).span_at(page_in_arena(addr))
    }
}

// ANCHOR: span_of
/// spanOf: the span that holds `addr`, or null. Two dependent loads after the index.
///
/// # Safety
/// `index` is the root's index table, and the entry for `addr` is in a Ready page of it when
/// `addr` belongs to a registered arena (true for every pointer this heap handed out).
#[inline]
pub unsafe fn span_of(index: *const AtomicPtr<Arena>, addr: usize) -> *mut Span {
    let i = index_of(addr);
    if i >= INDEX_ENTRIES {
        return ptr::null_mut();
    }
    // SAFETY: `i` is in bounds of the table; the caller guarantees its page is Ready.
    let arena = unsafe { (*index.add(i)).load(Ordering::Acquire) };
    if arena.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: registered arenas' metadata lives as long as the heap.
    unsafe { (*arena).span_at(page_in_arena(addr)) }
}
// ANCHOR_END: span_of
