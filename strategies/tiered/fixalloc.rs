//! Metadata allocators: every span, mcache, arena record and tiny-counter array comes from the
//! page source, never from the global allocator.
//!
//! Go originals: `persistentalloc` (malloc.go), a bump allocator over chunks the runtime maps
//! itself, and `fixalloc` (mfixalloc.go), a free list of fixed-size records on top of it.
//!
//! # Alloc path
//! `FixAlloc::alloc`: pop the free list, else bump `Persistent`, else take a new chunk of
//! [`META_CHUNK_BYTES`] from the source with `alloc_ready`.
//!
//! # Free path
//! `FixAlloc::free`: push on the free list. Metadata memory is never given back to the
//! source (as in Go), but records are reused.
//!
//! # Invariants
//! `cur <= end`; `committed_bytes` = bytes taken from the source for metadata. Everything here
//! is used under the heap lock.

use core::ptr::{self, NonNull};

use crate::source::{PageSource, align_up};

/// Bytes of one metadata chunk taken from the page source.
pub const META_CHUNK_BYTES: usize = 256 << 10;

/// A bump allocator over chunks from the page source (Go's `persistentalloc`).
pub struct Persistent {
    cur: usize,
    end: usize,
    /// Bytes taken from the source for metadata (chunks and large records).
    pub committed_bytes: usize,
}

impl Persistent {
    /// Empty.
    pub const INIT: Persistent = Persistent { cur: 0, end: 0, committed_bytes: 0 };

    /// `bytes` of memory aligned to `align` (at most an OS page), contents unspecified.
    pub fn alloc<P: PageSource>(&mut self, src: &P, bytes: usize, align: usize) -> Option<NonNull<u8>> {
        let at = align_up(self.cur, align)?;
        if self.cur == 0 || at + bytes > self.end {
            return self.alloc_slow(src, bytes, align);
        }
        self.cur = at + bytes;
        NonNull::new(at as *mut u8)
    }

    #[cold]
    fn alloc_slow<P: PageSource>(&mut self, src: &P, bytes: usize, align: usize) -> Option<NonNull<u8>> {
        if bytes > META_CHUNK_BYTES / 4 {
            // Large records get their own pages, so the current chunk is not wasted.
            return self.alloc_pages(src, bytes);
        }
        let chunk = src.alloc_ready(META_CHUNK_BYTES, P::PAGE_BYTES).ok()?;
        self.committed_bytes += META_CHUNK_BYTES;
        self.cur = chunk.as_ptr() as usize;
        self.end = self.cur + META_CHUNK_BYTES;
        self.alloc(src, bytes, align)
    }

    /// Whole OS pages for a large record (an arena's metadata, the root).
    pub fn alloc_pages<P: PageSource>(&mut self, src: &P, bytes: usize) -> Option<NonNull<u8>> {
        let bytes = align_up(bytes, P::PAGE_BYTES)?;
        let p = src.alloc_ready(bytes, P::PAGE_BYTES).ok()?;
        self.committed_bytes += bytes;
        Some(p)
    }
}

/// A free list of records of one size (Go's `fixalloc`).
pub struct FixAlloc {
    free: *mut usize,
    size: usize,
    /// Records handed out and not freed.
    pub inuse: usize,
}

// SAFETY: the free list points into metadata memory owned by the heap, only touched under the
// heap lock.
unsafe impl Send for FixAlloc {}

impl FixAlloc {
    /// A free list of `size`-byte records (`size >= 8`; rounded up to 64 bytes).
    pub const fn new(size: usize) -> FixAlloc {
        FixAlloc { free: ptr::null_mut(), size: (size + 63) & !63, inuse: 0 }
    }

    /// A record, contents unspecified, 64-byte aligned (one cache line, so that two records
    /// never share one).
    pub fn alloc<P: PageSource>(&mut self, meta: &mut Persistent, src: &P) -> Option<NonNull<u8>> {
        let p = if self.free.is_null() {
            meta.alloc(src, self.size, 64)?
        } else {
            let p = self.free;
            // SAFETY: free records hold the link to the next one in their first word.
            self.free = unsafe { p.read() } as *mut usize;
            NonNull::new(p.cast())?
        };
        self.inuse += 1;
        Some(p)
    }

    /// Gives a record back.
    ///
    /// # Safety
    /// `p` came from this `FixAlloc` and nothing uses it any more.
    pub unsafe fn free(&mut self, p: NonNull<u8>) {
        let p = p.as_ptr().cast::<usize>();
        // SAFETY: the record is ours again and at least 8 bytes.
        unsafe { p.write(self.free as usize) };
        self.free = p;
        self.inuse -= 1;
    }
}
