//! The block format every free-list strategy shares: boundary tags inside chunks.
//!
//! See [`super`] for the overview. This file knows how a block and a chunk are laid out in
//! memory and nothing about which free block a policy picks.
//!
//! ```text
//! chunk (from the page source, `CHUNK_*`):
//!   base        +8          +16             +24 (first block)                  end-8  end
//!   | prev chunk | next chunk | BEGIN sentinel | block | block | ... | block    | END  |
//!                              chunk bytes|USED                                  0|USED(|PREV_FREE)
//!
//! block (header address ≡ BLOCK_ALIGN - HEADER_BYTES mod BLOCK_ALIGN; payload 16-aligned):
//!   used: | size|PREV_FREE? | payload ................................ |
//!   free: | size|FREE|PREV_FREE=0 | node (policy's links, NODE_BYTES) .. | footer = size |
//! ```
//!
//! Invariants (checked by `Core::check`):
//! - `size % BLOCK_ALIGN == 0`, `size >= MIN_BLOCK_BYTES`, blocks tile `first..end_sentinel`:
//!   `Σ size == chunk_bytes - CHUNK_OVERHEAD_BYTES`.
//! - `header(b).PREV_FREE == header(prev(b)).FREE`; the first block has `PREV_FREE == 0`
//!   (the BEGIN sentinel is never free); the END sentinel carries the last block's FREE bit.
//! - free: `footer(b) == size(b)`, and `FREE(b) ⇒ ¬FREE(next(b))` (immediate coalescing).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of a block header (one word: size and flags).
pub const HEADER_BYTES: usize = size_of::<usize>();
/// Alignment of every payload, and granularity of block sizes.
pub const BLOCK_ALIGN: usize = 16;
/// Bytes a free block keeps after its header for the index's node (4 words: the treap's
/// links and parent, then its subtree bounds and priority packed into one word; the size
/// is the header's).
pub const NODE_BYTES: usize = 4 * size_of::<usize>();
/// The smallest block: header, index node, footer; rounded to `BLOCK_ALIGN`.
pub const MIN_BLOCK_BYTES: usize = round_block(HEADER_BYTES + NODE_BYTES + HEADER_BYTES);

/// Header flag: this block is free.
pub const FREE: usize = 1;
/// Header flag: the block just below is free (so the word below this header is its footer).
pub const PREV_FREE: usize = 2;
/// Header flags used only by the checker while it walks (always clear otherwise).
pub const MARK_WALK: usize = 4;
/// See [`MARK_WALK`].
pub const MARK_INDEX: usize = 8;
/// All flag bits.
pub const FLAGS: usize = BLOCK_ALIGN - 1;

/// Offset of the first block's header from the chunk base: after two chunk links and the
/// BEGIN sentinel word, placed so that the first payload is `BLOCK_ALIGN`-aligned.
pub const FIRST_BLOCK_OFFSET: usize = 2 * BLOCK_ALIGN - HEADER_BYTES;
/// Bytes of a chunk that no block covers: the head (links + BEGIN) and the END sentinel.
/// `chunk_bytes == CHUNK_OVERHEAD_BYTES + Σ block sizes`.
pub const CHUNK_OVERHEAD_BYTES: usize = FIRST_BLOCK_OFFSET + HEADER_BYTES;

const _: () = assert!(MIN_BLOCK_BYTES.is_multiple_of(BLOCK_ALIGN));
const _: () = assert!(3 * size_of::<usize>() <= FIRST_BLOCK_OFFSET);
const _: () = assert!(CHUNK_OVERHEAD_BYTES.is_multiple_of(BLOCK_ALIGN));

/// Rounds up to `BLOCK_ALIGN` (no overflow check: for constants).
const fn round_block(n: usize) -> usize {
    (n + BLOCK_ALIGN - 1) & !(BLOCK_ALIGN - 1)
}

// ANCHOR: block_need
/// The block size that holds a payload of `bytes`: `None` if it overflows.
#[inline]
pub fn block_need(bytes: usize) -> Option<usize> {
    let need = bytes.checked_add(HEADER_BYTES + BLOCK_ALIGN - 1)? & !(BLOCK_ALIGN - 1);
    // Keep far away from the top of the address space, so later sums cannot overflow.
    if need > isize::MAX as usize / 2 {
        return None;
    }
    Some(need.max(MIN_BLOCK_BYTES))
}
// ANCHOR_END: block_need

/// [`block_need`] of a [`Layout`](core::alloc::Layout)'s size without the range check, for
/// the allocation path's search: a layout's size is at most `isize::MAX`, so the sum cannot
/// overflow. The result may exceed `block_need`'s limit; it is safe to search for (no free
/// block is that big, so nothing is found and [`block_need`] decides).
#[inline]
pub fn layout_need(layout: core::alloc::Layout) -> usize {
    ((layout.size() + HEADER_BYTES + BLOCK_ALIGN - 1) & !(BLOCK_ALIGN - 1)).max(MIN_BLOCK_BYTES)
}

/// A block, named by the address of its header. Copy; carries no ownership.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Block(NonNull<u8>);

impl Block {
    /// The block whose header is at `addr`.
    ///
    /// # Safety
    /// `addr` is non-null (it is a block header inside a chunk).
    #[inline]
    pub unsafe fn at(addr: *mut u8) -> Block {
        // SAFETY: the caller passes a header address, which is never null.
        Block(unsafe { NonNull::new_unchecked(addr) })
    }

    /// The block of a payload pointer.
    ///
    /// # Safety
    /// `p` is a payload this format handed out.
    #[inline]
    pub unsafe fn from_payload(p: NonNull<u8>) -> Block {
        // SAFETY: the header lies `HEADER_BYTES` below the payload, inside the same chunk.
        unsafe { Block::at(p.as_ptr().sub(HEADER_BYTES)) }
    }

    /// Address of the header.
    #[inline]
    pub fn addr(self) -> usize {
        self.0.addr().get()
    }

    /// Pointer to the header.
    #[inline]
    pub fn ptr(self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// The payload (`BLOCK_ALIGN`-aligned).
    #[inline]
    pub fn payload(self) -> NonNull<u8> {
        // SAFETY: the payload follows the header inside the block, so it is in bounds and
        // non-null.
        unsafe { self.0.add(HEADER_BYTES) }
    }

    /// Pointer to the index node of a free block (`NODE_BYTES` after the header).
    #[inline]
    pub fn node<T>(self) -> *mut T {
        self.payload().as_ptr().cast::<T>()
    }

    /// The raw header word, read atomically (relaxed).
    ///
    /// Atomic because one reader needs no lock: [`usable_size`](crate::Strategy::usable_size)
    /// of a live block reads its header while the lock holder may free the block before it and
    /// set this header's prev-free bit (the size bits never change while the block is live).
    /// A plain read there would be a data race; a relaxed atomic load is the same `mov` on
    /// x86-64 and sees either value of the flag, both with the same size.
    ///
    /// # Safety
    /// The block lies in a live chunk.
    #[inline]
    pub unsafe fn header(self) -> usize {
        // SAFETY: the header word is inside the chunk and word-aligned (block starts are
        // `BLOCK_ALIGN - HEADER_BYTES` modulo `BLOCK_ALIGN`); every concurrent access to it
        // is atomic (this load and `set_header`'s store).
        unsafe { AtomicUsize::from_ptr(self.0.as_ptr().cast::<usize>()) }.load(Ordering::Relaxed)
    }

    /// Writes the raw header word.
    ///
    /// # Safety
    /// As for [`header`](Self::header), and the caller owns the block's metadata.
    #[inline]
    pub unsafe fn set_header(self, word: usize) {
        // SAFETY: the header word is inside the live chunk and word-aligned (block starts are
        // `BLOCK_ALIGN - HEADER_BYTES` modulo `BLOCK_ALIGN`); the caller owns the metadata,
        // so nobody else writes it meanwhile, and the one lock-free reader (`header` from
        // `usable_size`) loads it atomically, as this store is.
        unsafe { AtomicUsize::from_ptr(self.0.as_ptr().cast::<usize>()) }.store(word, Ordering::Relaxed)
    }

    /// Size in bytes, header included.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn size(self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.header() & !FLAGS }
    }

    /// Whether the block is free.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn is_free(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.header() & FREE != 0 }
    }

    /// Whether the block below is free.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn prev_is_free(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.header() & PREV_FREE != 0 }
    }

    /// One past the last byte.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn end(self) -> usize {
        // SAFETY: forwarded.
        self.addr() + unsafe { self.size() }
    }

    /// The block (or END sentinel) just above.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn next(self) -> Block {
        // SAFETY: blocks tile the chunk up to the END sentinel, so `end` is a header.
        unsafe { Block::at(self.ptr().add(self.size())) }
    }

    // ANCHOR: block_prev
    /// The free block just below, found through its footer.
    ///
    /// # Safety
    /// As for [`header`](Self::header), and [`prev_is_free`](Self::prev_is_free) holds.
    #[inline]
    pub unsafe fn prev(self) -> Block {
        // SAFETY: a free block below writes its size in the word under this header.
        unsafe {
            let size = self.ptr().sub(HEADER_BYTES).cast::<usize>().read();
            Block::at(self.ptr().sub(size))
        }
    }
    // ANCHOR_END: block_prev

    /// The footer word of a free block.
    ///
    /// # Safety
    /// As for [`header`](Self::header).
    #[inline]
    pub unsafe fn footer(self) -> usize {
        // SAFETY: the last word of the block lies inside it.
        unsafe { self.ptr().add(self.size() - HEADER_BYTES).cast::<usize>().read() }
    }

    /// Makes this a free block of `size` bytes: header (FREE, prev not free) and footer.
    /// Does not touch the block above.
    ///
    /// # Safety
    /// The caller owns `addr..addr + size`, which lies in a chunk.
    #[inline]
    pub unsafe fn write_free(self, size: usize) {
        // SAFETY: header and footer words lie inside the owned range.
        unsafe {
            self.set_header(size | FREE);
            self.ptr().add(size - HEADER_BYTES).cast::<usize>().write(size);
        }
    }

    /// Sets or clears the PREV_FREE flag, keeping the rest.
    ///
    /// # Safety
    /// As for [`set_header`](Self::set_header).
    #[inline]
    pub unsafe fn set_prev_free(self, prev_free: bool) {
        // SAFETY: forwarded.
        unsafe {
            let h = self.header() & !PREV_FREE;
            self.set_header(if prev_free { h | PREV_FREE } else { h });
        }
    }
}

/// The head of a chunk: links to the neighbouring chunks of the heap's chunk list.
#[repr(C)]
pub struct ChunkHead {
    /// The previous chunk in the list (null for the first).
    pub prev: *mut ChunkHead,
    /// The next chunk in the list (null for the last).
    pub next: *mut ChunkHead,
    /// The BEGIN sentinel: `chunk bytes | USED` (never FREE, so nothing coalesces below the
    /// first block).
    pub begin: usize,
}

impl ChunkHead {
    /// Bytes of the chunk.
    ///
    /// # Safety
    /// `this` is a live chunk.
    #[inline]
    pub unsafe fn bytes(this: *mut ChunkHead) -> usize {
        // SAFETY: the caller passes a live chunk.
        unsafe { (*this).begin & !FLAGS }
    }

    /// The first block.
    #[inline]
    pub fn first(this: *mut ChunkHead) -> Block {
        // SAFETY: the first block lies inside the chunk, so its address is non-null.
        unsafe { Block::at(this.cast::<u8>().add(FIRST_BLOCK_OFFSET)) }
    }

    /// The END sentinel.
    ///
    /// # Safety
    /// `this` is a live chunk.
    #[inline]
    pub unsafe fn end_sentinel(this: *mut ChunkHead) -> Block {
        // SAFETY: the END sentinel is the last word of the chunk.
        unsafe { Block::at(this.cast::<u8>().add(Self::bytes(this) - HEADER_BYTES)) }
    }
}
