//! `Fixed`: a page source over a region the caller provides (a `static` array, any pointer
//! range). Works without `std`; deterministic, so tests can exhaust it on purpose.
//!
//! # Design
//! - *Bump region*: `next..capacity`, never handed out yet.
//! - *Hole*: a freed range below `next`. Holes form a singly linked list sorted by address,
//!   stored in the holes themselves (each is at least one page, so a [`HoleHeader`] fits at
//!   its start): no table to overflow, and nothing is ever lost.
//!
//! Reserve: the first hole (lowest address) that holds an aligned piece of the size is split
//! (front and back remainders go back to the list); otherwise the bump pointer moves (the
//! alignment gap becomes a hole). Free: the range is checked to be handed out (below `next`,
//! overlapping no hole), inserted in order and merged with touching holes; a hole that ends at
//! `next` is given back to the bump region.
//!
//! Invariants (checked by `debug_check` in tests): `next` is page-aligned and `<= capacity`;
//! holes are page-aligned, non-empty, sorted, disjoint, never touching (they would have been
//! merged) and all end strictly below `next`.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{Op, PageSource, SourceError, align_up, check_range};
use crate::sync::SpinLock;

/// Page size of [`Fixed`]: 4 KiB, like the OS page of [`Mmap`](super::Mmap).
const FIXED_PAGE_BYTES: usize = 4096;
/// "No hole" in the list links.
const NO_HOLE: usize = usize::MAX;

// ANCHOR: region
/// A region of memory to give to [`Fixed`], aligned to its page size; put it in a `static`.
///
/// A region serves one source for the life of the program: the first [`Fixed`] built over
/// it with [`Fixed::from_region`] that reserves memory claims it, and any other source over
/// the same region answers every `reserve` with [`SourceError::Exhausted`] (its heap
/// returns null), so two heaps never share its bytes.
///
/// ```
/// use stratalloc::{Fixed, Region};
/// static ARENA: Region<{ 1 << 20 }> = Region::new();
/// let source = Fixed::from_region(&ARENA);
/// ```
#[repr(C, align(4096))]
pub struct Region<const BYTES: usize> {
    bytes: UnsafeCell<[u8; BYTES]>,
    /// Set, never cleared, by the first source over the region that reserves from it.
    claimed: AtomicBool,
}
// ANCHOR_END: region

// SAFETY: the bytes are reached only through a pointer taken by `Fixed::from_region`, and
// only the one source that claims the region (`claimed`, an atomic) hands any of them out,
// in disjoint ranges; `Region` has no accessor that reads or writes them through `&self`.
// `claimed` is an atomic, shared safely.
unsafe impl<const BYTES: usize> Sync for Region<BYTES> {}

impl<const BYTES: usize> Region<BYTES> {
    /// A zeroed region (placed in `.bss` when `static`).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Region { bytes: UnsafeCell::new([0; BYTES]), claimed: AtomicBool::new(false) }
    }
}

/// Bookkeeping of a [`Fixed`] source, under its lock (invariants in the module docs).
struct FixedState {
    /// Offset of the first never-reserved byte (the bump pointer), relative to the first page.
    next: usize,
    /// Offset of the lowest hole, or `NO_HOLE`.
    head: usize,
    /// Whether this source may hand out the region: always for `Fixed::new`; for
    /// `Fixed::from_region`, once it has claimed the region at its first `reserve`.
    owner: bool,
}

/// Written at the start of every hole.
#[derive(Copy, Clone)]
struct HoleHeader {
    /// Length of the hole (a multiple of the page size).
    bytes: usize,
    /// Offset of the next hole (higher address), or `NO_HOLE`.
    next: usize,
}

/// A page source over a caller's memory region. Const-constructible; `no_std`.
///
/// Reservations are cut from the region by a bump pointer; freed ranges are kept in an
/// address-ordered list stored inside them and reused first-fit, merged with their
/// neighbours. `free` refuses a range that was never handed out or is already free
/// ([`SourceError::Invalid`]). `map`, `used`, `unused` and `fault` only check their arguments:
/// the memory is always there, so `unused` gives nothing back and fresh memory is not
/// guaranteed to be zero (freed ranges hold the list's headers). Wrap it in
/// [`Tracked`](super::Tracked) to check transitions.
pub struct Fixed {
    start: *mut u8,
    len: usize,
    /// The claim flag of the [`Region`] this source was built over (`from_region`), `None`
    /// for `new`, whose caller promises exclusive use.
    claim: Option<&'static AtomicBool>,
    state: SpinLock<FixedState>,
}

// SAFETY: `start..start + len` is memory handed over for the source's exclusive use (the
// caller's promise in `Fixed::new`, or a `'static` `Region` that only the one source that
// claims it hands out), not tied to a thread; the bookkeeping moves with the source.
unsafe impl Send for Fixed {}
// SAFETY: through `&Fixed`, the fields `start`, `len` and `claim` (an atomic) are only read;
// the bookkeeping and the hole headers inside the memory are read and written only under the
// lock (`state`), and the ranges handed out are disjoint.
unsafe impl Sync for Fixed {}

impl Fixed {
    /// A source over `start..start + len`. The usable part is that range shrunk to whole
    /// 4 KiB pages.
    ///
    /// # Safety
    /// The memory must be valid for reads and writes for the lifetime of the source and of
    /// every block allocated from it, and nothing else may access it meanwhile.
    pub const unsafe fn new(start: *mut u8, len: usize) -> Self {
        Fixed {
            start,
            len,
            claim: None,
            state: SpinLock::new(FixedState { next: 0, head: NO_HOLE, owner: true }),
        }
    }

    /// A source over a `static` [`Region`].
    ///
    /// The source claims the region at its first `reserve`. A region serves one source: if
    /// another source over it has claimed it already, this one has nothing to give, and every
    /// `reserve` fails with [`SourceError::Exhausted`] (and [`available`](Self::available)
    /// is 0).
    pub const fn from_region<const BYTES: usize>(region: &'static Region<BYTES>) -> Self {
        Fixed {
            start: region.bytes.get().cast::<u8>(),
            len: BYTES,
            claim: Some(&region.claimed),
            state: SpinLock::new(FixedState { next: 0, head: NO_HOLE, owner: false }),
        }
    }

    /// Whether this source owns its memory, claiming its region first if it has not yet
    /// (called under the lock). `false`: another source over the same region claimed it.
    fn owns(&self, st: &mut FixedState) -> bool {
        if !st.owner {
            // The flag is only ever set, so one source in the whole program wins it.
            st.owner = self.claim.is_some_and(|c| {
                c.compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            });
        }
        st.owner
    }

    /// The page-aligned usable range, as addresses.
    fn bounds(&self) -> (usize, usize) {
        let lo = self.start.addr();
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
        let a = base.addr().get();
        if a < lo || a + bytes > hi {
            return Err(SourceError::Invalid { op, addr: a, bytes });
        }
        Ok(())
    }
}

impl Fixed {
    /// A pointer to offset `off` of the usable range, with the region's provenance.
    fn at(&self, off: usize) -> *mut u8 {
        let (lo, _) = self.bounds();
        self.start.wrapping_add(lo - self.start.addr() + off)
    }

    fn header(&self, off: usize) -> HoleHeader {
        // SAFETY: `off` is the start of a hole: page-aligned memory of the region that the
        // source owns (nobody else uses a freed range) and where a header was written.
        unsafe { self.at(off).cast::<HoleHeader>().read() }
    }

    fn set_header(&self, off: usize, h: HoleHeader) {
        // SAFETY: `off` starts a freed, page-aligned range of the region of at least one page,
        // which only this source uses now.
        unsafe { self.at(off).cast::<HoleHeader>().write(h) }
    }

    /// Points the link before a hole (the head if `prev` is `NO_HOLE`) at `to`.
    fn link(&self, st: &mut FixedState, prev: usize, to: usize) {
        if prev == NO_HOLE {
            st.head = to;
        } else {
            let h = self.header(prev);
            self.set_header(prev, HoleHeader { next: to, ..h });
        }
    }

    /// Takes an aligned `bytes`-long piece of the lowest hole that has one.
    fn take_hole(&self, st: &mut FixedState, bytes: usize, align: usize) -> Option<usize> {
        let (lo, _) = self.bounds();
        let (mut prev, mut cur) = (NO_HOLE, st.head);
        while cur != NO_HOLE {
            let h = self.header(cur);
            let fits = align_up(lo + cur, align)
                .map(|a| a - lo)
                .filter(|&a| a.checked_add(bytes).is_some_and(|e| e <= cur + h.bytes));
            if let Some(a) = fits {
                self.link(st, prev, h.next);
                // The remainders are inside a hole, so they cannot fail to insert.
                let _ = self.insert_hole(st, cur, a - cur);
                let _ = self.insert_hole(st, a + bytes, cur + h.bytes - (a + bytes));
                return Some(a);
            }
            (prev, cur) = (cur, h.next);
        }
        None
    }

    /// Adds `off..off + bytes` to the holes, merging with touching holes and with the bump
    /// region. `Err(())` if the range is not wholly handed out (beyond `next`, or overlapping a
    /// hole): a double or wild free.
    fn insert_hole(&self, st: &mut FixedState, off: usize, bytes: usize) -> Result<(), ()> {
        if bytes == 0 {
            return Ok(());
        }
        let end = off + bytes;
        if end > st.next {
            return Err(());
        }
        // Find the holes just below and just above the range.
        let (mut prev, mut cur) = (NO_HOLE, st.head);
        while cur != NO_HOLE && cur < off {
            (prev, cur) = (cur, self.header(cur).next);
        }
        let prev_end = if prev == NO_HOLE { 0 } else { prev + self.header(prev).bytes };
        if (prev != NO_HOLE && prev_end > off) || (cur != NO_HOLE && cur < end) {
            return Err(());
        }
        // Merge with the hole above, then with the hole below.
        let (mut start, mut stop, mut after) = (off, end, cur);
        if cur != NO_HOLE && cur == end {
            let h = self.header(cur);
            stop = cur + h.bytes;
            after = h.next;
        }
        if prev != NO_HOLE && prev_end == off {
            start = prev;
            prev = self.prev_of(st, prev);
        }
        if stop == st.next {
            // The hole touches the bump region: give it back (it is the last hole).
            st.next = start;
            self.link(st, prev, NO_HOLE);
            return Ok(());
        }
        self.set_header(start, HoleHeader { bytes: stop - start, next: after });
        self.link(st, prev, start);
        Ok(())
    }

    /// The hole before hole `off` (or `NO_HOLE`).
    fn prev_of(&self, st: &FixedState, off: usize) -> usize {
        let (mut prev, mut cur) = (NO_HOLE, st.head);
        while cur != NO_HOLE && cur != off {
            (prev, cur) = (cur, self.header(cur).next);
        }
        prev
    }

    /// Bytes that a `reserve` could still draw from: the bump region plus all holes.
    pub fn available(&self) -> usize {
        let st = self.state.lock();
        if !st.owner && self.claim.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return 0;
        }
        let mut free = self.capacity() - st.next;
        let mut cur = st.head;
        while cur != NO_HOLE {
            let h = self.header(cur);
            free += h.bytes;
            cur = h.next;
        }
        free
    }

    /// Walks the holes and checks the invariants of the module docs; returns the number of
    /// holes, or a description of the first broken invariant.
    pub fn check(&self) -> Result<usize, &'static str> {
        let st = self.state.lock();
        if !st.next.is_multiple_of(FIXED_PAGE_BYTES) || st.next > self.capacity() {
            return Err("next is page-aligned and <= capacity");
        }
        let (mut n, mut last_end, mut cur) = (0, None::<usize>, st.head);
        while cur != NO_HOLE {
            let h = self.header(cur);
            if h.bytes == 0
                || !h.bytes.is_multiple_of(FIXED_PAGE_BYTES)
                || !cur.is_multiple_of(FIXED_PAGE_BYTES)
            {
                return Err("holes are page-aligned and non-empty");
            }
            if last_end.is_some_and(|e| e >= cur) {
                return Err("holes are sorted, disjoint and never touch");
            }
            if cur + h.bytes >= st.next {
                return Err("holes end strictly below next");
            }
            last_end = Some(cur + h.bytes);
            cur = h.next;
            n += 1;
        }
        Ok(n)
    }
}

// SAFETY: (1) reservations are carved from disjoint parts of the caller's region under the
// lock (a hole is handed out only once: it leaves the list first; a range can only become a
// hole if it was handed out), and a source over a `Region` hands out nothing until it has
// claimed the region, which only one source can do (the flag is set once, by
// compare-exchange, and never cleared); (2) the region is always readable and writable, and
// this source writes only into holes, which nobody else uses; (3) FRESH_ZEROED is false, so
// nothing is promised; (4) nothing panics or allocates.
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
        if !self.owns(&mut st) {
            return Err(SourceError::Exhausted { op: Op::Reserve, bytes });
        }
        if let Some(off) = self.take_hole(&mut st, bytes, align) {
            return NonNull::new(self.at(off)).ok_or(SourceError::Exhausted { op: Op::Reserve, bytes });
        }
        let next = st.next;
        let aligned = align_up(lo + next, align).map(|a| a - lo);
        let Some(a) = aligned.filter(|a| a.checked_add(bytes).is_some_and(|e| e <= hi - lo)) else {
            return Err(SourceError::Exhausted { op: Op::Reserve, bytes });
        };
        st.next = a + bytes;
        // The alignment gap, below the new `next`, becomes a hole.
        let _ = self.insert_hole(&mut st, next, a - next);
        NonNull::new(self.at(a)).ok_or(SourceError::Exhausted { op: Op::Reserve, bytes })
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
        let addr = base.addr().get();
        let mut st = self.state.lock();
        self.insert_hole(&mut st, addr - lo, bytes).map_err(|()| SourceError::Invalid {
            op: Op::Free,
            addr,
            bytes,
        })
    }
}
