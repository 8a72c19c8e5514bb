//! Metadata allocators: every span, mcache and arena record comes from the page source,
//! never from the global allocator.
//!
//! Go originals: `persistentalloc` (malloc.go), a bump allocator over chunks the runtime maps
//! itself, and `fixalloc` (mfixalloc.go), a free list of fixed-size records on top of it.
//!
//! # Alloc path
//! `FixAlloc::alloc`: pop the free list, else bump `Persistent`, else take a new chunk of
//! [`META_CHUNK_BYTES`] from the source with `alloc_ready`.
//!
//! # Free path
//! `FixAlloc::free`: push on the free list. Metadata memory is not given back to the
//! source while the heap lives (as in Go), but records are reused; `release_all` gives
//! every chunk back at once (`Persistent::release`), which the chunk list allows: each
//! chunk's first [`CHUNK_HEADER_BYTES`] hold a pointer to the chunk taken before it.
//!
//! # Invariants
//! `cur <= end`; `committed_bytes` = bytes taken from the source for metadata. Everything here
//! is used under the heap lock. Records are pointers derived from the chunk the source
//! returned (the bump pointer and the free list's links are pointers, never integers).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::source::PageSource;

/// Bytes of one metadata chunk taken from the page source.
pub const META_CHUNK_BYTES: usize = 256 << 10;

/// Bytes at the start of each chunk that hold the link to the previous chunk (a cache
/// line, so that records stay 64-byte aligned).
pub const CHUNK_HEADER_BYTES: usize = 64;

/// A bump allocator over chunks from the page source (Go's `persistentalloc`).
pub struct Persistent {
    /// The chunk taken last (null before the first), linked to the earlier ones through
    /// each chunk's first word.
    chunks: *mut u8,
    /// Next free byte of the current chunk (null before the first chunk).
    cur: *mut u8,
    /// Address one past the current chunk (for comparisons only).
    end: usize,
    /// Bytes taken from the source for metadata (chunks and large records).
    pub committed_bytes: usize,
}

impl Persistent {
    /// Empty.
    pub const INIT: Persistent =
        Persistent { chunks: ptr::null_mut(), cur: ptr::null_mut(), end: 0, committed_bytes: 0 };

    /// `bytes` of memory aligned to `align` (a power of two, at most an OS page), contents
    /// unspecified.
    pub fn alloc<P: PageSource>(&mut self, src: &P, bytes: usize, align: usize) -> Option<NonNull<u8>> {
        let cur = self.cur.addr();
        let pad = cur.wrapping_neg() & (align - 1);
        if self.cur.is_null() || pad.checked_add(bytes).is_none_or(|n| n > self.end - cur) {
            return self.alloc_slow(src, bytes, align);
        }
        // SAFETY: `pad + bytes <= end - cur`: both offsets stay inside the current chunk.
        let at = unsafe { self.cur.add(pad) };
        // SAFETY: `pad + bytes <= end - cur`: `at + bytes` is at most one past the chunk.
        self.cur = unsafe { at.add(bytes) };
        NonNull::new(at)
    }

    #[cold]
    fn alloc_slow<P: PageSource>(&mut self, src: &P, bytes: usize, align: usize) -> Option<NonNull<u8>> {
        if bytes > META_CHUNK_BYTES / 4 {
            // Large records get their own pages, so the current chunk is not wasted.
            return self.alloc_pages(src, bytes);
        }
        let chunk = src.alloc_ready(META_CHUNK_BYTES, P::PAGE_BYTES).ok()?;
        self.committed_bytes += META_CHUNK_BYTES;
        // SAFETY: a fresh Ready chunk, page-aligned: its first word takes the link.
        unsafe { chunk.cast::<*mut u8>().write(self.chunks) };
        self.chunks = chunk.as_ptr();
        // SAFETY: `CHUNK_HEADER_BYTES < META_CHUNK_BYTES`: inside the chunk.
        self.cur = unsafe { chunk.as_ptr().add(CHUNK_HEADER_BYTES) };
        self.end = chunk.as_ptr().addr() + META_CHUNK_BYTES;
        self.alloc(src, bytes, align)
    }

    /// Gives every chunk back to `src` and empties the allocator (the heap's `release_all`;
    /// large records from [`Self::alloc_pages`] are the caller's to free).
    ///
    /// # Safety
    /// `src` is the source the chunks came from, and nothing uses any record of them any
    /// more.
    pub unsafe fn release<P: PageSource>(&mut self, src: &P) {
        let mut c = self.chunks;
        while let Some(chunk) = NonNull::new(c) {
            // SAFETY: a chunk of the list holds the link to the next one in its first word,
            // written by `alloc_slow`; nothing else writes the header.
            c = unsafe { chunk.cast::<*mut u8>().read() };
            // SAFETY: the chunk came from `src` (`alloc_ready`) and is used no more (the
            // caller's contract).
            let _ = unsafe { src.free(chunk, META_CHUNK_BYTES) };
        }
        *self = Persistent::INIT;
    }

    /// Whole OS pages for a large record (an arena's metadata, the root).
    pub fn alloc_pages<P: PageSource>(&mut self, src: &P, bytes: usize) -> Option<NonNull<u8>> {
        let bytes = crate::source::align_up(bytes, P::PAGE_BYTES)?;
        let p = src.alloc_ready(bytes, P::PAGE_BYTES).ok()?;
        self.committed_bytes += bytes;
        Some(p)
    }
}

/// A free list of records of one size (Go's `fixalloc`).
pub struct FixAlloc {
    /// First free record, or null; each holds the next in its first word, as a pointer.
    free: *mut u8,
    size: usize,
    /// Records handed out and not freed.
    pub inuse: usize,
}

// SAFETY: `FixAlloc` is `!Send` only for its raw `free` pointer, which points into metadata
// chunks that the heap owns (not into anything tied to a thread); every `FixAlloc` lives in
// the heap's `HeapInner` and is only used through the heap lock, so moving it to another
// thread moves nothing that the first thread may still touch.
unsafe impl Send for FixAlloc {}

impl FixAlloc {
    /// A free list of `size`-byte records (`size >= 8`; rounded up to 64 bytes).
    pub const fn new(size: usize) -> FixAlloc {
        FixAlloc { free: ptr::null_mut(), size: (size + 63) & !63, inuse: 0 }
    }

    /// A record, contents unspecified, 64-byte aligned (one cache line, so that two records
    /// never share one).
    pub fn alloc<P: PageSource>(&mut self, meta: &mut Persistent, src: &P) -> Option<NonNull<u8>> {
        self.alloc_reused(meta, src).map(|(p, _)| p)
    }

    /// [`Self::alloc`], and whether the record was used before (it then holds what its last
    /// user left, but for the link in its first word); false for fresh memory.
    pub fn alloc_reused<P: PageSource>(
        &mut self,
        meta: &mut Persistent,
        src: &P,
    ) -> Option<(NonNull<u8>, bool)> {
        let r = match NonNull::new(self.free) {
            None => (meta.alloc(src, self.size, 64)?, false),
            Some(p) => {
                // SAFETY: a free record holds the link to the next one in its first word,
                // written by `free` as an atomic pointer; records are 64-byte aligned.
                self.free = unsafe { p.cast::<AtomicPtr<u8>>().as_ref() }.load(Ordering::Relaxed);
                (p, true)
            }
        };
        self.inuse += 1;
        Some(r)
    }

    /// Whether `p` is a record on the free list (the checker: heap lock held or no other
    /// thread using the heap).
    pub fn is_free(&self, p: *const u8) -> bool {
        let mut r = self.free;
        while !r.is_null() {
            if ptr::eq(r, p) {
                return true;
            }
            // SAFETY: a free record holds the link to the next one in its first word (`free`).
            r = unsafe { &*r.cast::<AtomicPtr<u8>>() }.load(Ordering::Relaxed);
        }
        false
    }

    /// Gives a record back.
    ///
    /// # Safety
    /// `p` came from this `FixAlloc` and nothing uses it any more.
    pub unsafe fn free(&mut self, p: NonNull<u8>) {
        // SAFETY: the record is ours again (the caller's contract), at least 64 bytes and
        // 64-byte aligned: its first word takes the link. An atomic store: a span record's
        // first word is its `base`, which a stale reader may load meanwhile (see "Reuse of
        // span records" in span.rs); every record's first word is a pointer-sized field.
        unsafe { p.cast::<AtomicPtr<u8>>().as_ref() }.store(self.free, Ordering::Relaxed);
        self.free = p.as_ptr();
        self.inuse -= 1;
    }
}
