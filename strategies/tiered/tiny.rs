//! The tiny allocator: requests under 16 B (alignment up to 8) bumped into 16 B blocks,
//! with a per-block counter for explicit free.
//! Go original: `mallocgcTiny` in `runtime/malloc.go` (`maxTinySize`, `mcache.tiny`).
//!
//! # Glossary
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

use core::ptr::{self, NonNull};

use super::Root;
use super::mcache::MCache;
use super::sizeclass::TINY_SPAN_CLASS;
use super::span::Span;
use crate::source::PageSource;

/// Size of a tiny block (Go's `maxTinySize`).
pub const TINY_BLOCK_BYTES: usize = 16;

impl MCache {
    // ANCHOR: alloc_tiny
    /// The tiny allocator (Go's `mallocgcTiny`): `size < 16`, `align <= 8`.
    #[inline]
    pub fn alloc_tiny<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        match self.alloc_tiny_fast(size, align) {
            Some(p) => Some(p),
            None => self.alloc_tiny_block(root, src, size, self.tiny_offset.get()),
        }
    }
    // ANCHOR_END: alloc_tiny

    // ANCHOR: alloc_tiny_fast
    /// The bump in the current tiny block; `None` if there is none or the request does not
    /// fit.
    #[inline(always)]
    pub fn alloc_tiny_fast(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
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
        // Both are powers of two: round up with a mask, not a division.
        let a = go_align.max(align);
        let off = (old_off + a - 1) & !(a - 1);
        if let Some(t) = self.tiny.get()
            && off + size <= TINY_BLOCK_BYTES
        {
            self.tiny_offset.set(off + size);
            self.tiny_given.set(self.tiny_given.get() + 1);
            // SAFETY: `off < TINY_BLOCK_BYTES`: inside the current block, a 16 B object.
            return Some(unsafe { t.add(off) });
        }
        None
    }
    // ANCHOR_END: alloc_tiny_fast

    // ANCHOR: alloc_tiny_block
    /// A new tiny block for a request that does not fit in the current one (`old_off` is
    /// its bump offset).
    #[cold]
    pub fn alloc_tiny_block<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        size: usize,
        old_off: usize,
    ) -> Option<NonNull<u8>> {
        let blk = self.alloc_small(root, src, TINY_SPAN_CLASS)?;
        let span = self.alloc[TINY_SPAN_CLASS].get();
        if self.tiny.get().is_none() || size < old_off {
            self.retire_tiny(root);
            self.tiny.set(Some(blk));
            self.tiny_span.set(span);
            self.tiny_offset.set(size);
            self.tiny_given.set(1);
        } else {
            // The old block keeps more room: this block is retired at once with one object
            // (nobody else knows it yet, so a plain store does).
            // SAFETY: `span` is the live tiny span `blk` came from.
            let s = unsafe { &*span };
            s.tiny_count(s.object_index(blk.as_ptr().addr())).set_retired_one();
        }
        Some(blk)
    }
    // ANCHOR_END: alloc_tiny_block

    // ANCHOR: retire_tiny
    /// Stops using the current tiny block (see "tiny counter" in the module docs).
    pub fn retire_tiny(&self, root: &Root) {
        let Some(t) = self.tiny.get() else { return };
        // SAFETY: the current tiny block's span is live while the block has objects or is
        // current.
        let s = unsafe { &*self.tiny_span.get() };
        let g = self.tiny_given.get();
        self.tiny.set(None);
        self.tiny_offset.set(0);
        self.tiny_given.set(0);
        self.tiny_span.set(ptr::null());
        if s.tiny_count(s.object_index(t.as_ptr().addr())).retire(g) {
            // Every object was already freed: the block itself is free now.
            super::malloc::free_small(root, self.as_mut_ptr(), s, t);
        }
    }
    // ANCHOR_END: retire_tiny

    // ANCHOR: free_tiny_local
    /// A free by the owner of an object in its current tiny block; `false` if `p` is not in
    /// it.
    #[inline]
    pub fn free_tiny_local(&self, s: &Span, p: usize) -> bool {
        let Some(t) = self.tiny.get() else { return false };
        let t = t.as_ptr().addr();
        if p & !(TINY_BLOCK_BYTES - 1) != t {
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
}
