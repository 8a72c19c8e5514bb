//! The block format: a 16-byte header right below every pointer we hand out (see lib.rs for
//! the overview).
//!
//! ```text
//!   base                          user = base + offset
//!   │ padding (offset - 16 bytes) │ Header (16) │ user bytes ...          │
//!   └──────────────────────── layout.size() ─────────────────────────────┘
//!   offset = max(align, 16); layout.align() = max(align, 16)
//! ```
//!
//! Invariants: `user % layout.align() == 0`; `layout.size() == offset + user_bytes`;
//! `user_bytes % 16 == 0 && user_bytes >= 16`; `header.tag & MAGIC_MASK == MAGIC`.

use core::alloc::Layout;
use core::ptr::NonNull;

/// Alignment of every pointer malloc returns (glibc's MALLOC_ALIGNMENT on 64-bit targets).
pub const MIN_ALIGN_BYTES: usize = 16;
/// Size of the header below each user pointer.
pub const HEADER_BYTES: usize = 16;
/// Smallest user part of a block: `malloc(0)` gets a unique pointer with this many bytes.
const MIN_USER_BYTES: usize = 16;

/// The top five bytes of every tag: "STRAT".
const MAGIC: usize = 0x5354_5241_5400_0000;
const MAGIC_MASK: usize = 0xFFFF_FFFF_FF00_0000;

/// Who owns a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The selected strategy's heap.
    Heap = 1,
    /// The fixed re-entry pool ([`fallback`](crate::fallback)).
    Pool = 2,
    /// A mapping of its own ([`fallback`](crate::fallback)).
    Direct = 3,
}

/// The 16 bytes below a user pointer.
#[repr(C)]
struct Header {
    /// `layout.size()` of the whole block.
    bytes: usize,
    /// `MAGIC | origin << 8 | log2(layout.align())`.
    tag: usize,
}

/// Distance from the start of a block to its user pointer, for a block alignment.
#[inline]
pub const fn offset_for(align: usize) -> usize {
    if align > HEADER_BYTES { align } else { HEADER_BYTES }
}

/// The block layout for a C request of `n` bytes aligned to `align` (a power of two); `None`
/// when no block that large can exist.
#[inline]
pub fn layout_for(n: usize, align: usize) -> Option<Layout> {
    let align = align.max(MIN_ALIGN_BYTES);
    let user = n.max(MIN_USER_BYTES).checked_add(MIN_ALIGN_BYTES - 1)? & !(MIN_ALIGN_BYTES - 1);
    let total = offset_for(align).checked_add(user)?;
    Layout::from_size_align(total, align).ok()
}

/// A block found below a user pointer.
#[derive(Copy, Clone, Debug)]
pub struct Found {
    /// Its owner.
    pub origin: Origin,
    /// Start of the block.
    pub base: NonNull<u8>,
    /// The layout it was allocated with.
    pub layout: Layout,
}

impl Found {
    /// Bytes the program may use.
    #[inline]
    pub fn user_bytes(&self) -> usize {
        self.layout.size() - offset_for(self.layout.align())
    }
}

/// Writes the header of a fresh block and returns its user pointer.
///
/// # Safety
/// `base` is a live block of `layout` (from [`layout_for`] or the fallback's own layouts,
/// so `layout.size() > offset_for(layout.align())`), aligned to `layout.align()`.
#[inline]
pub unsafe fn finish(base: NonNull<u8>, layout: Layout, origin: Origin) -> *mut u8 {
    let offset = offset_for(layout.align());
    // SAFETY: `offset < layout.size()`, so `user` lies inside the block; the header occupies
    // `user - 16 .. user`, inside the block as `offset >= 16`, and 8-aligned as `user` is
    // 16-aligned.
    unsafe {
        let user = base.as_ptr().add(offset);
        let tag = MAGIC | (origin as usize) << 8 | layout.align().trailing_zeros() as usize;
        user.cast::<Header>().sub(1).write(Header { bytes: layout.size(), tag });
        user
    }
}

/// Reads the header below `user`; `None` when it is not one of ours (no magic, a malformed
/// layout).
///
/// # Safety
/// `user` is a non-null pointer the program got from a malloc-family function (ours or,
/// by mistake, another allocator's), so the 16 bytes below it are readable.
#[inline]
pub unsafe fn read(user: NonNull<u8>) -> Option<Found> {
    if !(user.as_ptr() as usize).is_multiple_of(MIN_ALIGN_BYTES) {
        return None;
    }
    // SAFETY: the caller guarantees the 16 bytes below `user` are readable; `user` is
    // 16-aligned, so the header is aligned.
    let header = unsafe { user.as_ptr().cast::<Header>().sub(1).read() };
    if header.tag & MAGIC_MASK != MAGIC {
        return None;
    }
    let origin = match (header.tag >> 8) & 0xFF {
        1 => Origin::Heap,
        2 => Origin::Pool,
        3 => Origin::Direct,
        _ => return None,
    };
    let shift = header.tag & 0xFF;
    if shift >= usize::BITS as usize {
        return None;
    }
    let layout = Layout::from_size_align(header.bytes, 1 << shift).ok()?;
    let offset = offset_for(layout.align());
    if layout.size() <= offset || !(user.as_ptr() as usize).is_multiple_of(layout.align()) {
        return None;
    }
    let base = NonNull::new(user.as_ptr().wrapping_sub(offset))?;
    Some(Found { origin, base, layout })
}
