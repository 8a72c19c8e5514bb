//! `Tracked<P>`: a page source wrapper that knows the state of every page it has handed out,
//! counts bytes in each state and calls of each kind, and refuses illegal transitions.
//!
//! Tests wrap a strategy's source in it to prove that the strategy follows the state machine
//! of the [module docs](super) and gives back what it frees.

use core::mem::size_of;
use core::ptr::{self, NonNull};

use super::{Op, PageSource, SourceError, State};
use crate::ConstInit;
use crate::sync::SpinLock;

/// A run of pages in one state. Stored sorted by `start`, disjoint, never `State::None`, and
/// two neighbours that touch never share a state (they would be merged).
#[derive(Copy, Clone, Debug)]
struct Extent {
    start: usize,
    end: usize,
    state: State,
}

/// Counters of a [`Tracked`] source.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackedCounts {
    /// Successful calls of each kind, indexed by [`Op::index`].
    pub calls: [u64; 6],
    /// Bytes passed to successful calls of each kind.
    pub bytes: [u64; 6],
    /// Calls refused as illegal transitions.
    pub illegal: u64,
    /// Bytes now Reserved.
    pub reserved: usize,
    /// Bytes now Prepared.
    pub prepared: usize,
    /// Bytes now Ready.
    pub ready: usize,
}

impl TrackedCounts {
    /// Bytes in any state but None.
    pub fn owned(&self) -> usize {
        self.reserved + self.prepared + self.ready
    }

    /// Successful calls of one kind.
    pub fn calls_of(&self, op: Op) -> u64 {
        self.calls[op.index()]
    }
}

/// The extent table, in memory from the inner source. Invariant: `len <= cap`, `ptr` valid
/// for `cap` extents when `cap > 0`, the first `len` initialised and sorted (see [`Extent`]).
struct Table {
    ptr: *mut Extent,
    len: usize,
    cap: usize,
    /// Bytes of table memory taken from the inner source.
    table_bytes: usize,
    counts: TrackedCounts,
}

// SAFETY: `ptr` names table memory that this table alone owns (taken from the inner source
// for it, reached through no other pointer) and that holds plain `Extent`s; nothing in it is
// tied to a thread, so moving the table moves that ownership with it.
unsafe impl Send for Table {}

/// Wraps a source `P`, checking and counting every transition.
///
/// A call whose range is not wholly in the state the transition starts from is refused with
/// [`SourceError::IllegalTransition`] before it reaches `P`. The table of states takes its
/// memory from `P` itself (never from the global allocator); if `P` cannot give it, the call
/// fails with `P`'s error.
pub struct Tracked<P: PageSource> {
    inner: P,
    table: SpinLock<Table>,
}

impl<P: PageSource + ConstInit> ConstInit for Tracked<P> {
    const INIT: Self = Tracked::new(P::INIT);
}

impl<P: PageSource> Tracked<P> {
    /// Wraps `inner`; does no work until the first call.
    pub const fn new(inner: P) -> Self {
        Tracked {
            inner,
            table: SpinLock::new(Table {
                ptr: ptr::null_mut(),
                len: 0,
                cap: 0,
                table_bytes: 0,
                counts: TrackedCounts {
                    calls: [0; 6],
                    bytes: [0; 6],
                    illegal: 0,
                    reserved: 0,
                    prepared: 0,
                    ready: 0,
                },
            }),
        }
    }

    /// The counters now.
    pub fn counts(&self) -> TrackedCounts {
        self.table.lock().counts
    }

    /// The wrapped source.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The state of the page holding `addr` (`State::None` if this source never handed it
    /// out or freed it).
    pub fn state_of(&self, addr: usize) -> State {
        let t = self.table.lock();
        let ext = t.extents();
        let i = ext.partition_point(|e| e.end <= addr);
        match ext.get(i) {
            Some(e) if e.start <= addr => e.state,
            _ => State::None,
        }
    }

    /// Makes room for two more extents (a transition adds at most two).
    fn reserve_room(&self, t: &mut Table) -> Result<(), SourceError> {
        if t.len + 2 <= t.cap {
            return Ok(());
        }
        let page = P::PAGE_BYTES;
        let want = (t.cap * 2).max(page / size_of::<Extent>()).max(t.len + 2);
        let bytes = (want * size_of::<Extent>()).div_ceil(page) * page;
        let new = self.inner.alloc_ready(bytes, page)?.cast::<Extent>();
        if t.cap > 0 {
            // SAFETY: the old table holds `len` initialised extents; the new one has room for
            // `bytes / size_of::<Extent>() >= len` and is disjoint from it.
            unsafe { ptr::copy_nonoverlapping(t.ptr, new.as_ptr(), t.len) };
            // SAFETY: the old table's pages came from `alloc_ready` on this source, are Ready,
            // and nothing points into them any more.
            let _ = unsafe { self.inner.free(NonNull::new_unchecked(t.ptr.cast()), t.table_bytes) };
        }
        t.ptr = new.as_ptr();
        t.cap = bytes / size_of::<Extent>();
        t.table_bytes = bytes;
        Ok(())
    }

    fn illegal(t: &mut Table, op: Op, addr: usize, bytes: usize, found: State) -> SourceError {
        t.counts.illegal += 1;
        SourceError::IllegalTransition { op, addr, bytes, found }
    }

    // ANCHOR: transition
    /// Checks that `op` is legal on the range, calls `inner` to perform it, and records the
    /// new state.
    fn transition(
        &self,
        op: Op,
        base: NonNull<u8>,
        bytes: usize,
        inner: impl FnOnce() -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        super::check_range(op, base, bytes, P::PAGE_BYTES)?;
        let start = base.addr().get();
        let end = start + bytes;
        let mut t = self.table.lock();
        if let Some(found) = t.first_mismatch(start, end, op.from_state()) {
            return Err(Self::illegal(&mut t, op, start, bytes, found));
        }
        self.reserve_room(&mut t)?;
        inner()?;
        t.set(start, end, op.to_state());
        t.counts.calls[op.index()] += 1;
        t.counts.bytes[op.index()] += bytes as u64;
        Ok(())
    }
    // ANCHOR_END: transition
}

impl<P: PageSource> Drop for Tracked<P> {
    fn drop(&mut self) {
        let t = self.table.get_mut();
        if t.cap > 0 {
            // SAFETY: the table's pages came from `alloc_ready` on the inner source, and the
            // table dies with this wrapper.
            let _ = unsafe { self.inner.free(NonNull::new_unchecked(t.ptr.cast()), t.table_bytes) };
            t.cap = 0;
        }
    }
}

impl Table {
    fn extents(&self) -> &[Extent] {
        if self.cap == 0 {
            return &[];
        }
        // SAFETY: `ptr` is valid for `cap >= len` extents and the first `len` are initialised.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The first state in `start..end` that differs from `want` (`None` = any owned state).
    /// A gap in the table is `State::None`.
    fn first_mismatch(&self, start: usize, end: usize, want: Option<State>) -> Option<State> {
        let ext = self.extents();
        let mut at = start;
        let mut i = ext.partition_point(|e| e.end <= start);
        while at < end {
            let Some(e) = ext.get(i).filter(|e| e.start <= at) else {
                // A gap: these pages are not owned.
                if want != Some(State::None) {
                    return Some(State::None);
                }
                // Looking for unowned pages: skip the gap, and check the extents after it
                // (an earlier version stopped at the first gap and missed them).
                match ext.get(i) {
                    Some(e) if e.start < end => {
                        at = e.start;
                        continue;
                    }
                    _ => return None,
                }
            };
            if want.is_some_and(|w| w != e.state) {
                return Some(e.state);
            }
            at = e.end;
            i += 1;
        }
        None
    }

    fn account(&mut self, state: State, bytes: usize, add: bool) {
        let slot = match state {
            State::None => return,
            State::Reserved => &mut self.counts.reserved,
            State::Prepared => &mut self.counts.prepared,
            State::Ready => &mut self.counts.ready,
        };
        if add { *slot += bytes } else { *slot -= bytes }
    }

    /// Sets `start..end` to `state`. Needs room for two more extents.
    fn set(&mut self, start: usize, end: usize, state: State) {
        let mut buf = [Extent { start: 0, end: 0, state: State::None }; 3];
        let mut n = 0;
        let (lo, hi) = {
            let ext = self.extents();
            let lo = ext.partition_point(|e| e.end <= start);
            let hi = ext.partition_point(|e| e.start < end);
            (lo, hi.max(lo))
        };
        // Remove the old states' bytes and keep the parts of the edge extents outside the range.
        for i in lo..hi {
            let e = self.extents()[i];
            let cut_lo = e.start.max(start);
            let cut_hi = e.end.min(end);
            self.account(e.state, cut_hi - cut_lo, false);
            if i == lo && e.start < start {
                buf[n] = Extent { start: e.start, end: start, state: e.state };
                n += 1;
            }
        }
        if state != State::None {
            buf[n] = Extent { start, end, state };
            n += 1;
            self.account(state, end - start, true);
        }
        if hi > lo {
            let e = self.extents()[hi - 1];
            if e.end > end {
                buf[n] = Extent { start: end, end: e.end, state: e.state };
                n += 1;
            }
        }
        self.splice(lo, hi, &buf[..n]);
        // Merge touching neighbours of equal state around the changed place.
        let from = lo.saturating_sub(1);
        let to = (lo + n + 1).min(self.len);
        let mut i = from;
        let mut end_i = to;
        while i + 1 < end_i {
            let (a, b) = (self.extents()[i], self.extents()[i + 1]);
            if a.end == b.start && a.state == b.state {
                let merged = [Extent { start: a.start, end: b.end, state: a.state }];
                self.splice(i, i + 2, &merged);
                end_i -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Replaces extents `lo..hi` with `with`. Needs `len - (hi - lo) + with.len() <= cap`.
    fn splice(&mut self, lo: usize, hi: usize, with: &[Extent]) {
        let tail = self.len - hi;
        let new_len = lo + with.len() + tail;
        debug_assert!(new_len <= self.cap, "tracked table overflow: {new_len} > {}", self.cap);
        // SAFETY: all indices are below `cap` (checked above by the caller's room
        // reservation); `ptr::copy` handles the overlap of the moved tail.
        unsafe {
            ptr::copy(self.ptr.add(hi), self.ptr.add(lo + with.len()), tail);
            ptr::copy_nonoverlapping(with.as_ptr(), self.ptr.add(lo), with.len());
        }
        self.len = new_len;
    }
}

// SAFETY: every successful call is the inner source's own call on the same range, made only
// after the range was checked to be in the state the transition needs; the table lives in
// pages of the inner source that are never handed out.
unsafe impl<P: PageSource> PageSource for Tracked<P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = P::FRESH_ZEROED;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        let mut t = self.table.lock();
        self.reserve_room(&mut t)?;
        let base = self.inner.reserve(bytes, align)?;
        let start = base.addr().get();
        if let Some(found) = t.first_mismatch(start, start + bytes, Some(State::None)) {
            // The inner source handed out something it had already handed out.
            return Err(Self::illegal(&mut t, Op::Reserve, start, bytes, found));
        }
        t.set(start, start + bytes, State::Reserved);
        t.counts.calls[Op::Reserve.index()] += 1;
        t.counts.bytes[Op::Reserve.index()] += bytes as u64;
        Ok(base)
    }

    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: the range was checked to be Reserved here; forwarded with the caller's
        // guarantees.
        self.transition(Op::Map, base, bytes, || unsafe { self.inner.map(base, bytes) })
    }

    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: checked Prepared; forwarded with the caller's guarantees.
        self.transition(Op::Used, base, bytes, || unsafe { self.inner.used(base, bytes) })
    }

    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.hint_dense(base, bytes) }
    }

    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: checked Ready; forwarded with the caller's guarantees.
        self.transition(Op::Unused, base, bytes, || unsafe { self.inner.unused(base, bytes) })
    }

    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: checked owned; forwarded with the caller's guarantees.
        self.transition(Op::Fault, base, bytes, || unsafe { self.inner.fault(base, bytes) })
    }

    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: checked owned; forwarded with the caller's guarantees.
        self.transition(Op::Free, base, bytes, || unsafe { self.inner.free(base, bytes) })
    }
}
