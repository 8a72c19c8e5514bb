//! `Segregate<LIMIT, Small, Large>`: requests up to `LIMIT` bytes to `Small`, the rest to
//! `Large` (Heap Layers' `SegHeap`). See `layers/mod.rs` for the overview.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::source::PageSource;
use crate::strategy::{BadFree, BlockInfo, CheckError, ConstInit, Strategy, StrategyStats};

/// Where the limit of a [`Routed`] layer comes from: a constant of the type
/// ([`ConstLimit`], for [`Segregate`]) or a value chosen at run time (`usize`, for the
/// runtime compositions of [`AnyStrategy`](crate::AnyStrategy)).
pub trait Limit: Send + Sync {
    /// Requests of at most this many bytes go to the small side.
    fn limit(&self) -> usize;
}

/// A limit fixed in the type.
#[derive(Copy, Clone, Debug, Default)]
pub struct ConstLimit<const LIMIT: usize>;

impl<const LIMIT: usize> Limit for ConstLimit<LIMIT> {
    #[inline(always)]
    fn limit(&self) -> usize {
        LIMIT
    }
}

impl Limit for usize {
    #[inline(always)]
    fn limit(&self) -> usize {
        *self
    }
}

/// Size routing: requests of at most `lim.limit()` bytes go to `small`, larger ones to
/// `large`; a block stays on the side that allocated it until it is freed or moved by
/// `realloc` across the limit. Use it as [`Segregate`] (the limit in the type).
///
/// Invariant: every live block handed out belongs to exactly one side, the one whose
/// `block_of` knows it (the sides are distinct strategies, so their memory is disjoint).
pub struct Routed<L, Small, Large> {
    lim: L,
    small: Small,
    large: Large,
}

/// Requests up to `LIMIT` bytes to `Small`, the rest to `Large`, e.g.
/// `Segregate<1024, SegregatedFit, BestFit>`. `LIMIT` must be at least 1 (checked at
/// compile time).
pub type Segregate<const LIMIT: usize, Small, Large> = Routed<ConstLimit<LIMIT>, Small, Large>;

impl<const LIMIT: usize, Small: ConstInit, Large: ConstInit> ConstInit
    for Routed<ConstLimit<LIMIT>, Small, Large>
{
    const INIT: Self = {
        assert!(LIMIT >= 1, "Segregate: LIMIT must be at least 1 byte");
        Routed { lim: ConstLimit, small: Small::INIT, large: Large::INIT }
    };
}

impl<Small, Large> Routed<usize, Small, Large> {
    /// A router with its limit chosen at run time (at least 1).
    pub const fn with_limit(limit: usize, small: Small, large: Large) -> Self {
        Routed { lim: if limit == 0 { 1 } else { limit }, small, large }
    }
}

impl<L: Limit, Small: Strategy, Large: Strategy> Routed<L, Small, Large> {
    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.lim.limit()
    }

    /// The small side.
    pub fn small(&self) -> &Small {
        &self.small
    }

    /// The large side.
    pub fn large(&self) -> &Large {
        &self.large
    }

    /// Whether the live block `ptr`, described by a layout of `size` bytes, is the small
    /// side's. A size within the limit is (a block is allocated with a size no larger than
    /// the one the caller passes back, so a small layout means a small request); a larger
    /// size may still name a small block whose usable size passes the limit, which the
    /// small side's lookup tells.
    // ANCHOR: segregate_is_small
    #[inline]
    fn is_small(&self, ptr: NonNull<u8>, size: usize) -> bool {
        size <= self.lim.limit() || self.small_owns(ptr)
    }

    #[cold]
    fn small_owns(&self, ptr: NonNull<u8>) -> bool {
        self.small.block_of(ptr.as_ptr()).is_some()
    }
    // ANCHOR_END: segregate_is_small

    /// Moves a block across the limit: allocates on the other side, copies, frees the old.
    ///
    /// # Safety
    /// As for [`Strategy::realloc`]; `from_small` tells the side `ptr` is on.
    #[cold]
    unsafe fn move_across<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
        from_small: bool,
    ) -> Option<NonNull<u8>> {
        // SAFETY: the caller guarantees `new_size` is a valid size for the alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size > 0`; the source is the one both sides always use. The new block
        // goes to the side the new size names (the other one), the old is freed on its own.
        unsafe {
            let new = if from_small {
                self.large.alloc(src, new_layout)
            } else {
                self.small.alloc(src, new_layout)
            }?;
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size));
            if from_small {
                self.small.dealloc(src, ptr, layout);
            } else {
                self.large.dealloc(src, ptr, layout);
            }
            Some(new)
        }
    }
}

// SAFETY: every block comes from one side and goes back to the side that owns it (routed by
// size, or by the small side's lookup when the size passes the limit), so each side sees a
// valid sequence of its own calls and its guarantees (1)-(5) carry over; a move across the
// limit allocates, copies `min(old, new)` bytes and frees, keeping contents (2).
unsafe impl<L: Limit, Small: Strategy, Large: Strategy> Strategy for Routed<L, Small, Large> {
    fn name(&self) -> &'static str {
        "segregate"
    }

    // ANCHOR: segregate_alloc
    #[inline]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees to the side that serves the size.
        unsafe {
            if layout.size() <= self.lim.limit() {
                self.small.alloc(src, layout)
            } else {
                self.large.alloc(src, layout)
            }
        }
    }
    // ANCHOR_END: segregate_alloc

    #[inline]
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees to the side that serves the size.
        unsafe {
            if layout.size() <= self.lim.limit() {
                self.small.alloc_zeroed(src, layout)
            } else {
                self.large.alloc_zeroed(src, layout)
            }
        }
    }

    // ANCHOR: segregate_dealloc
    #[inline]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` is a live block (caller) and `is_small` names its side.
        unsafe {
            if self.is_small(ptr, layout.size()) {
                self.small.dealloc(src, ptr, layout)
            } else {
                self.large.dealloc(src, ptr, layout)
            }
        }
    }
    // ANCHOR_END: segregate_dealloc

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let from_small = self.is_small(ptr, layout.size());
        let to_small = new_size <= self.lim.limit();
        // SAFETY: `ptr` is a live block of the side `from_small` names (caller, `is_small`);
        // a resize within one side is that side's own realloc.
        unsafe {
            match (from_small, to_small) {
                (true, true) => self.small.realloc(src, ptr, layout, new_size),
                (false, false) => self.large.realloc(src, ptr, layout, new_size),
                _ => self.move_across(src, ptr, layout, new_size, from_small),
            }
        }
    }

    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        // SAFETY: `ptr` is a live block (caller) and `is_small` names its side.
        unsafe {
            if self.is_small(ptr, layout.size()) {
                self.small.usable_size(ptr, layout)
            } else {
                self.large.usable_size(ptr, layout)
            }
        }
    }

    fn stats(&self) -> StrategyStats {
        let (a, b) = (self.small.stats(), self.large.stats());
        StrategyStats {
            live_bytes: a.live_bytes + b.live_bytes,
            live_objects: a.live_objects + b.live_objects,
            // The peaks of the sides may fall at different moments: their sum bounds the
            // true peak from above, and `live_bytes` bounds it from below.
            peak_live_bytes: (a.peak_live_bytes + b.peak_live_bytes).max(a.live_bytes + b.live_bytes),
            committed_bytes: a.committed_bytes + b.committed_bytes,
            reserved_bytes: a.reserved_bytes + b.reserved_bytes,
        }
    }

    #[inline]
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.small.block_of(ptr).or_else(|| self.large.block_of(ptr))
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees. The small side refuses a pointer
        // outside its memory as `Foreign` without changing anything; only then is the pointer
        // the large side's to judge (the sides' memory is disjoint, so a pointer the small
        // side calls interior or not live is no block of the large side either).
        match unsafe { self.small.free(src, ptr) } {
            // SAFETY: forwarded with the caller's guarantees; the small side changed nothing.
            Err(BadFree::Foreign) => unsafe { self.large.free(src, ptr) },
            r => r,
        }
    }

    /// Each run of consecutive blocks of one side goes to that side's own batch free (the
    /// side is the one whose `block_of` knows the block: every block is live, caller).
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        let mut freed = 0;
        let mut rest = blocks;
        while let Some(first) = rest.first() {
            let small = self.small_owns(*first);
            let run = rest.iter().position(|&p| self.small_owns(p) != small).unwrap_or(rest.len());
            let (now, later) = rest.split_at(run);
            // SAFETY: every block of `now` is a live block of the side `small` names (caller's
            // guarantees, and that side's `block_of` knows it), none twice.
            freed += unsafe {
                if small { self.small.free_batch(src, now) } else { self.large.free_batch(src, now) }
            };
            rest = later;
        }
        freed
    }

    #[inline]
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees to the side that serves the size.
        unsafe {
            if layout.size() <= self.lim.limit() {
                self.small.alloc_batch(src, layout, out)
            } else {
                self.large.alloc_batch(src, layout, out)
            }
        }
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees to both sides.
        unsafe {
            self.small.release_all(src);
            self.large.release_all(src);
        }
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees to both sides.
        unsafe {
            self.small.check(src)?;
            self.large.check(src)
        }
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        // SAFETY: forwarded with the caller's guarantees to both sides.
        unsafe { self.small.trim(src) + self.large.trim(src) }
    }

    /// The small side's locks, then the large side's.
    fn fork_prepare(&self) {
        self.small.fork_prepare();
        self.large.fork_prepare();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: this thread took both sides' locks in `fork_prepare` (caller).
        unsafe {
            self.large.fork_parent();
            self.small.fork_parent();
        }
    }

    unsafe fn fork_child(&self) {
        // SAFETY: the child of a fork after this thread's `fork_prepare` (caller).
        unsafe {
            self.large.fork_child();
            self.small.fork_child();
        }
    }
}
