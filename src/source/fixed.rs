//! `Fixed`: a page source over a region the caller provides (a `static` array, any pointer
//! range). Works without `std`; deterministic, so tests can exhaust it on purpose.

use core::cell::UnsafeCell;
use core::ptr::NonNull;

use super::{Op, PageSource, SourceError, align_up, check_range};
use crate::sync::SpinLock;

/// Page size of [`Fixed`]: 4 KiB, like the OS page of [`Mmap`](super::Mmap).
const FIXED_PAGE_BYTES: usize = 4096;
/// How many freed ranges below the bump pointer `Fixed` remembers for reuse.
const HOLE_SLOTS: usize = 32;

// ANCHOR: region
/// A region of memory to give to [`Fixed`], aligned to its page size; put it in a `static`.
///
/// ```
/// use stratalloc::{Fixed, Region};
/// static ARENA: Region<{ 1 << 20 }> = Region::new();
/// let source = Fixed::from_region(&ARENA);
/// ```
#[repr(C, align(4096))]
pub struct Region<const BYTES: usize>(UnsafeCell<[u8; BYTES]>);
// ANCHOR_END: region

// SAFETY: a `Region` is only ever accessed through the `Fixed` source built over it, which
// hands out disjoint ranges; it is never read through a shared reference.
unsafe impl<const BYTES: usize> Sync for Region<BYTES> {}

impl<const BYTES: usize> Region<BYTES> {
    /// A zeroed region (placed in `.bss` when `static`).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Region(UnsafeCell::new([0; BYTES]))
    }
}

/// Bookkeeping of a [`Fixed`] source, under its lock.
///
/// Invariant: `next` is page-aligned, `next <= len`; every hole lies below `next`, holes are
/// disjoint and none ends at `next` (such a hole is merged into the bump region).
struct FixedState {
    /// Offset of the first never-reserved byte (the bump pointer), relative to `start`.
    next: usize,
    /// Freed ranges below `next`: `(offset, bytes)`, `bytes == 0` for an empty slot.
    holes: [(usize, usize); HOLE_SLOTS],
}

/// A page source over a caller's memory region. Const-constructible; `no_std`.
///
/// Reservations are cut from the region by a bump pointer; a freed range is reused by a
/// later reservation it fits (up to 32 remembered ranges; a range that does not fit the table
/// stays unusable until its neighbours are freed). `map`, `used`, `unused` and `fault` only
/// check their arguments: the memory is always there, so `unused` gives nothing back and
/// fresh memory is not guaranteed to be zero. Wrap it in [`Tracked`](super::Tracked) to
/// check transitions.
pub struct Fixed {
    start: *mut u8,
    len: usize,
    state: SpinLock<FixedState>,
}

// SAFETY: `start..start + len` is memory the creator handed over for the source's exclusive
// use (see `Fixed::new`); all mutable bookkeeping is behind the lock.
unsafe impl Send for Fixed {}
// SAFETY: as above; `&Fixed` only gives access through locked bookkeeping.
unsafe impl Sync for Fixed {}

impl Fixed {
    /// A source over `start..start + len`. The usable part is that range shrunk to whole
    /// 4 KiB pages.
    ///
    /// # Safety
    /// The memory must be valid for reads and writes for the lifetime of the source and of
    /// every block allocated from it, and nothing else may access it meanwhile.
    pub const unsafe fn new(start: *mut u8, len: usize) -> Self {
        Fixed { start, len, state: SpinLock::new(FixedState { next: 0, holes: [(0, 0); HOLE_SLOTS] }) }
    }

    /// A source over a `static` [`Region`].
    pub const fn from_region<const BYTES: usize>(region: &'static Region<BYTES>) -> Self {
        // SAFETY: the region is 'static and, being only reachable through this source once
        // handed over (a `Region` exposes no accessors), used by nothing else.
        unsafe { Fixed::new(region.0.get().cast::<u8>(), BYTES) }
    }

    /// The page-aligned usable range, as addresses.
    fn bounds(&self) -> (usize, usize) {
        let lo = self.start as usize;
        let Some(first) = align_up(lo, FIXED_PAGE_BYTES) else { return (lo, lo) };
        let end = lo.saturating_add(self.len) & !(FIXED_PAGE_BYTES - 1);
        (first, end.max(first))
    }

    /// Bytes the region can hold in whole pages.
    pub fn capacity(&self) -> usize {
        let (lo, hi) = self.bounds();
        hi - lo
    }

    fn in_bounds(&self, op: Op, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        check_range(op, base, bytes, FIXED_PAGE_BYTES)?;
        let (lo, hi) = self.bounds();
        let a = base.as_ptr() as usize;
        if a < lo || a + bytes > hi {
            return Err(SourceError::Invalid { op, addr: a, bytes });
        }
        Ok(())
    }
}

impl FixedState {
    /// Takes an aligned piece of a remembered hole, returning the remainders to the table.
    fn take_hole(&mut self, lo: usize, bytes: usize, align: usize) -> Option<usize> {
        for i in 0..HOLE_SLOTS {
            let (off, len) = self.holes[i];
            if len == 0 {
                continue;
            }
            let aligned = align_up(lo + off, align)? - lo;
            if aligned + bytes > off + len {
                continue;
            }
            self.holes[i] = (0, 0);
            self.add_hole(off, aligned - off);
            self.add_hole(aligned + bytes, off + len - aligned - bytes);
            return Some(aligned);
        }
        None
    }

    /// Remembers a free range, merging it with neighbours and with the bump region.
    fn add_hole(&mut self, mut off: usize, mut len: usize) {
        if len == 0 {
            return;
        }
        for slot in self.holes.iter_mut() {
            let (o, l) = *slot;
            if l != 0 && (o + l == off || off + len == o) {
                *slot = (0, 0);
                let end = (off + len).max(o + l);
                off = off.min(o);
                len = end - off;
            }
        }
        // A second pass catches a hole that became adjacent through the first merge.
        for slot in self.holes.iter_mut() {
            let (o, l) = *slot;
            if l != 0 && (o + l == off || off + len == o) {
                *slot = (0, 0);
                let end = (off + len).max(o + l);
                off = off.min(o);
                len = end - off;
            }
        }
        if off + len == self.next {
            self.next = off;
            return;
        }
        if let Some(slot) = self.holes.iter_mut().find(|s| s.1 == 0) {
            *slot = (off, len);
        }
        // Otherwise the table is full: the range stays unusable until a neighbour is freed.
    }
}

// SAFETY: (1) reservations are carved from disjoint parts of the caller's region under the
// lock; (2) the region is always readable and writable and this source never touches it;
// (3) FRESH_ZEROED is false, so nothing is promised; (4) nothing panics or allocates.
unsafe impl PageSource for Fixed {
    const PAGE_BYTES: usize = FIXED_PAGE_BYTES;
    const FRESH_ZEROED: bool = false;
    const RELEASES_MEMORY: bool = false;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        let align = align.max(FIXED_PAGE_BYTES);
        if bytes == 0 || !bytes.is_multiple_of(FIXED_PAGE_BYTES) || !align.is_power_of_two() {
            return Err(SourceError::Invalid { op: Op::Reserve, addr: 0, bytes });
        }
        let (lo, hi) = self.bounds();
        let mut st = self.state.lock();
        let off = match st.take_hole(lo, bytes, align) {
            Some(off) => off,
            None => {
                let next = st.next;
                let aligned = align_up(lo + next, align).map(|a| a - lo);
                match aligned {
                    Some(a) if a.checked_add(bytes).is_some_and(|e| e <= hi - lo) => {
                        st.add_hole(next, a - next);
                        st.next = a + bytes;
                        a
                    }
                    _ => return Err(SourceError::Exhausted { op: Op::Reserve, bytes }),
                }
            }
        };
        NonNull::new((lo + off) as *mut u8).ok_or(SourceError::Exhausted { op: Op::Reserve, bytes })
    }

    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.in_bounds(Op::Map, base, bytes)
    }

    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.in_bounds(Op::Used, base, bytes)
    }

    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.in_bounds(Op::Unused, base, bytes)
    }

    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.in_bounds(Op::Fault, base, bytes)
    }

    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.in_bounds(Op::Free, base, bytes)?;
        let (lo, _) = self.bounds();
        self.state.lock().add_hole(base.as_ptr() as usize - lo, bytes);
        Ok(())
    }
}
