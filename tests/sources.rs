//! Tests of the page sources: `Mmap`, `Fixed`, `Tracked` and `Failing`, and a property test
//! that drives `Tracked<Mmap>` with random legal and illegal transitions against a shadow
//! model of page states.

use core::ptr::NonNull;

use proptest::prelude::*;
use stratalloc::{Failing, Fixed, Mmap, Op, PageSource, Region, SourceError, State, Tracked};

const PAGE: usize = 4096;

fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

fn offset(p: NonNull<u8>, bytes: usize) -> NonNull<u8> {
    // SAFETY (test helper): callers stay inside ranges they reserved.
    NonNull::new(p.as_ptr().wrapping_add(bytes)).unwrap()
}

/// Writes `v` over a Ready range and reads it back.
///
/// # Safety
/// The range is Ready memory of the caller.
unsafe fn scribble(p: NonNull<u8>, bytes: usize, v: u8) {
    // SAFETY: the caller's range.
    unsafe {
        core::ptr::write_bytes(p.as_ptr(), v, bytes);
        assert!(core::slice::from_raw_parts(p.as_ptr(), bytes).iter().all(|&b| b == v));
    }
}

/// # Safety
/// The range is Ready memory of the caller.
unsafe fn all_zero(p: NonNull<u8>, bytes: usize) -> bool {
    // SAFETY: the caller's range.
    unsafe { core::slice::from_raw_parts(p.as_ptr(), bytes).iter().all(|&b| b == 0) }
}

// ------------------------------------------------------------------------------------------
// Mmap

#[test]
fn mmap_reserve_honours_alignment_up_to_64_mib() {
    let m = Mmap;
    for shift in 12..=26 {
        let align = 1usize << shift;
        let bytes = 3 * PAGE;
        let p = m.reserve(bytes, align).unwrap();
        assert!(addr(p).is_multiple_of(align), "{p:p} not aligned to {align:#x}");
        // SAFETY: reserved above, unused by anything else.
        unsafe {
            m.map(p, bytes).unwrap();
            m.used(p, bytes).unwrap();
            assert!(all_zero(p, bytes), "fresh mmap memory is zero");
            scribble(p, bytes, 0xAB);
            m.free(p, bytes).unwrap();
        }
    }
}

#[test]
fn mmap_unused_and_fault_drop_contents_and_memory_reads_zero_again() {
    let m = Mmap;
    let bytes = 8 * PAGE;
    let p = m.alloc_ready(bytes, PAGE).unwrap();
    // SAFETY: `p..p + bytes` is Ready memory of this test.
    unsafe {
        scribble(p, bytes, 0x5A);
        m.unused(offset(p, 2 * PAGE), 3 * PAGE).unwrap();
        m.used(offset(p, 2 * PAGE), 3 * PAGE).unwrap();
        assert!(all_zero(offset(p, 2 * PAGE), 3 * PAGE), "unused + used reads zero (MADV_DONTNEED)");
        assert!(core::slice::from_raw_parts(p.as_ptr(), 2 * PAGE).iter().all(|&b| b == 0x5A));
        assert!(
            core::slice::from_raw_parts(offset(p, 5 * PAGE).as_ptr(), 3 * PAGE).iter().all(|&b| b == 0x5A)
        );
        // fault: back to Reserved; mapping again gives zeroed memory.
        m.fault(p, bytes).unwrap();
        m.map(p, bytes).unwrap();
        m.used(p, bytes).unwrap();
        assert!(all_zero(p, bytes));
        m.free(p, bytes).unwrap();
    }
}

#[test]
fn mmap_rejects_malformed_arguments() {
    let m = Mmap;
    assert!(matches!(m.reserve(0, PAGE), Err(SourceError::Invalid { op: Op::Reserve, .. })));
    assert!(matches!(m.reserve(PAGE + 1, PAGE), Err(SourceError::Invalid { op: Op::Reserve, .. })));
    assert!(matches!(m.reserve(PAGE, 3 * PAGE), Err(SourceError::Invalid { op: Op::Reserve, .. })));
    let p = m.reserve(2 * PAGE, PAGE).unwrap();
    // SAFETY: reserved above; the malformed calls are refused before any syscall.
    unsafe {
        assert!(matches!(m.map(offset(p, 1), PAGE), Err(SourceError::Invalid { op: Op::Map, .. })));
        assert!(matches!(m.map(p, PAGE + 7), Err(SourceError::Invalid { op: Op::Map, .. })));
        m.free(p, 2 * PAGE).unwrap();
    }
    // An impossible size is a value, not a panic.
    assert!(m.reserve(usize::MAX & !(PAGE - 1), 1 << 30).is_err());
}

// ------------------------------------------------------------------------------------------
// Fixed

static SMALL: Region<{ 64 * PAGE }> = Region::new();

#[test]
fn fixed_is_const_constructible_and_runs_out_with_exhausted() {
    static SOURCE: Fixed = Fixed::from_region(&SMALL);
    assert_eq!(SOURCE.capacity(), 64 * PAGE);
    let a = SOURCE.reserve(60 * PAGE, PAGE).unwrap();
    let b = SOURCE.reserve(4 * PAGE, PAGE).unwrap();
    assert_eq!(addr(b), addr(a) + 60 * PAGE);
    assert_eq!(SOURCE.reserve(PAGE, PAGE), Err(SourceError::Exhausted { op: Op::Reserve, bytes: PAGE }));
    // SAFETY: `b` was reserved above and is not used.
    unsafe { SOURCE.free(b, 4 * PAGE).unwrap() };
    assert_eq!(SOURCE.reserve(4 * PAGE, PAGE).unwrap(), b, "freed memory is reused");
    assert_eq!(SOURCE.reserve(PAGE, PAGE), Err(SourceError::Exhausted { op: Op::Reserve, bytes: PAGE }));
    // SAFETY: both reserved above, not used.
    unsafe {
        SOURCE.free(a, 60 * PAGE).unwrap();
        SOURCE.free(b, 4 * PAGE).unwrap();
    }
    assert_eq!(SOURCE.available(), SOURCE.capacity());
    assert_eq!(SOURCE.check(), Ok(0));
}

/// Issue #15, item 1: `Fixed::from_region` is safe, so two sources over one `Region` must not
/// both hand out its bytes. The first source to reserve claims the region; the other has
/// nothing to give, whichever order they were built in.
#[test]
fn a_region_serves_one_fixed_source_only() {
    static SHARED: Region<{ 16 * PAGE }> = Region::new();
    let (first, second) = (Fixed::from_region(&SHARED), Fixed::from_region(&SHARED));
    let a = second.reserve(PAGE, PAGE).unwrap();
    assert_eq!(first.reserve(PAGE, PAGE), Err(SourceError::Exhausted { op: Op::Reserve, bytes: PAGE }));
    assert_eq!(first.available(), 0, "a source over a region claimed by another has nothing");
    // The claim stays after the owner gave everything back.
    // SAFETY: `a` was reserved from `second` above and is not used.
    unsafe { second.free(a, PAGE).unwrap() };
    assert_eq!(first.reserve(PAGE, PAGE), Err(SourceError::Exhausted { op: Op::Reserve, bytes: PAGE }));
    assert_eq!(second.reserve(PAGE, PAGE), Ok(a), "the owner keeps using its region");
    assert_eq!(second.available(), 15 * PAGE);
}

/// Two heaps over sources built from one `Region`: the second returns null and never a
/// block that overlaps the first heap's.
#[test]
fn two_heaps_over_one_region_never_share_memory() {
    use core::alloc::{GlobalAlloc, Layout};
    use stratalloc::{BestFit, FirstFit, Heap};
    static ARENA: Region<{ 1 << 20 }> = Region::new();
    static ONE: Heap<FirstFit, Fixed> = Heap::with_source(Fixed::from_region(&ARENA));
    let two: Heap<BestFit, Fixed> = Heap::with_source(Fixed::from_region(&ARENA));
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: non-zero size; the blocks are freed below with the same layout.
    unsafe {
        let p = ONE.alloc(layout);
        assert!(!p.is_null());
        let q = two.alloc(layout);
        assert!(q.is_null(), "the second heap over one region got {q:p} (first: {p:p})");
        ONE.dealloc(p, layout);
    }
}

/// A `Fixed` over a fresh heap buffer; the buffer outlives the source.
fn fixed(pages: usize) -> (Fixed, Vec<u8>) {
    let mut buf = vec![0u8; (pages + 1) * PAGE];
    // SAFETY: the buffer is returned with the source and outlives every use in the tests.
    let f = unsafe { Fixed::new(buf.as_mut_ptr(), buf.len()) };
    (f, buf)
}

#[test]
fn fixed_shrinks_an_unaligned_region_to_whole_pages() {
    let (f, _buf) = fixed(16);
    // The buffer is pages + 1 long but not page-aligned (most likely): at least 16 pages.
    assert!(f.capacity() >= 16 * PAGE && f.capacity() <= 17 * PAGE);
    let p = f.reserve(f.capacity(), PAGE).unwrap();
    assert!(addr(p).is_multiple_of(PAGE));
}

#[test]
fn fixed_holes_are_reused_first_fit_and_merge() {
    let (f, _buf) = fixed(64);
    let r: Vec<NonNull<u8>> = (0..8).map(|_| f.reserve(2 * PAGE, PAGE).unwrap()).collect();
    // SAFETY: every range below was reserved above and is unused.
    unsafe {
        f.free(r[1], 2 * PAGE).unwrap();
        f.free(r[3], 2 * PAGE).unwrap();
        f.free(r[5], 2 * PAGE).unwrap();
    }
    assert_eq!(f.check(), Ok(3));
    // First fit: the lowest hole.
    assert_eq!(f.reserve(PAGE, PAGE).unwrap(), r[1]);
    assert_eq!(f.reserve(PAGE, PAGE).unwrap(), offset(r[1], PAGE));
    // A request bigger than every hole comes from the bump region.
    let big = f.reserve(3 * PAGE, PAGE).unwrap();
    assert_eq!(addr(big), addr(r[7]) + 2 * PAGE);
    // Freeing the neighbours of a hole merges them into one.
    // SAFETY: reserved above, unused.
    unsafe {
        f.free(r[4], 2 * PAGE).unwrap();
        assert_eq!(f.check(), Ok(1), "r3, r4 and r5 merged");
        f.free(r[2], 2 * PAGE).unwrap();
        assert_eq!(f.check(), Ok(1));
    }
    assert_eq!(f.reserve(8 * PAGE, PAGE).unwrap(), r[2], "the merged hole holds 8 pages");
}

#[test]
fn fixed_alignment_gaps_become_holes() {
    let (f, _buf) = fixed(64);
    let a = f.reserve(PAGE, PAGE).unwrap();
    let b = f.reserve(PAGE, 16 * PAGE).unwrap();
    assert!(addr(b).is_multiple_of(16 * PAGE));
    let gap_pages = (addr(b) - addr(a)) / PAGE - 1;
    if gap_pages > 0 {
        assert_eq!(f.check(), Ok(1));
        assert_eq!(f.reserve(PAGE, PAGE).unwrap(), offset(a, PAGE), "the gap is reused");
    }
}

#[test]
fn fixed_never_loses_a_freed_range() {
    // More separate holes than any fixed-size table would remember (the first version kept 32
    // and silently dropped the rest).
    let (f, _buf) = fixed(512);
    let r: Vec<NonNull<u8>> = (0..256).map(|_| f.reserve(PAGE, PAGE).unwrap()).collect();
    for p in r.iter().step_by(2) {
        // SAFETY: reserved above, unused.
        unsafe { f.free(*p, PAGE).unwrap() };
    }
    assert_eq!(f.check(), Ok(128));
    let free_before = f.available();
    assert_eq!(free_before, f.capacity() - 128 * PAGE);
    for p in r.iter().skip(1).step_by(2) {
        // SAFETY: reserved above, unused.
        unsafe { f.free(*p, PAGE).unwrap() };
    }
    assert_eq!(f.check(), Ok(0), "everything merged back into the bump region");
    assert_eq!(f.available(), f.capacity());
    assert_eq!(f.reserve(f.capacity(), PAGE).unwrap(), r[0]);
}

#[test]
fn fixed_refuses_double_and_wild_frees() {
    let (f, _buf) = fixed(16);
    let a = f.reserve(2 * PAGE, PAGE).unwrap();
    let _b = f.reserve(2 * PAGE, PAGE).unwrap();
    // SAFETY: `a` is reserved above; the bad calls are refused without touching memory.
    unsafe {
        f.free(a, 2 * PAGE).unwrap();
        assert!(matches!(f.free(a, 2 * PAGE), Err(SourceError::Invalid { op: Op::Free, .. })), "double free");
        assert!(matches!(f.free(a, PAGE), Err(SourceError::Invalid { op: Op::Free, .. })), "inside a hole");
        let beyond = offset(a, 6 * PAGE);
        assert!(
            matches!(f.free(beyond, PAGE), Err(SourceError::Invalid { op: Op::Free, .. })),
            "never reserved"
        );
        let outside = NonNull::new((addr(a) + f.capacity() + 64 * PAGE) as *mut u8).unwrap();
        assert!(matches!(f.map(outside, PAGE), Err(SourceError::Invalid { op: Op::Map, .. })), "outside");
        assert!(matches!(f.used(offset(a, 1), PAGE), Err(SourceError::Invalid { op: Op::Used, .. })));
    }
    assert_eq!(f.check(), Ok(1));
}

// ------------------------------------------------------------------------------------------
// Tracked

fn illegal(r: Result<(), SourceError>) -> (Op, State) {
    match r {
        Err(SourceError::IllegalTransition { op, found, .. }) => (op, found),
        other => panic!("expected an illegal transition, got {other:?}"),
    }
}

#[test]
fn tracked_refuses_every_illegal_transition_and_names_it() {
    let t = Tracked::new(Mmap);
    let p = t.reserve(4 * PAGE, PAGE).unwrap();
    // SAFETY: every legal call below is on memory reserved above; illegal ones are refused
    // before reaching the OS.
    unsafe {
        assert_eq!(illegal(t.used(p, PAGE)), (Op::Used, State::Reserved), "used on Reserved memory");
        assert_eq!(illegal(t.unused(p, PAGE)), (Op::Unused, State::Reserved));
        t.map(p, 2 * PAGE).unwrap();
        assert_eq!(illegal(t.map(p, PAGE)), (Op::Map, State::Prepared), "map twice");
        assert_eq!(illegal(t.unused(p, PAGE)), (Op::Unused, State::Prepared));
        t.used(p, PAGE).unwrap();
        assert_eq!(illegal(t.used(p, 2 * PAGE)), (Op::Used, State::Ready), "used twice");
        assert_eq!(illegal(t.map(p, 4 * PAGE)), (Op::Map, State::Ready), "map over a mixed range");
        // A range running past the reservation.
        assert_eq!(illegal(t.map(offset(p, 3 * PAGE), 2 * PAGE)), (Op::Map, State::None));
        assert_eq!(illegal(t.free(offset(p, 2 * PAGE), 4 * PAGE)), (Op::Free, State::None));
        // Never reserved at all.
        let elsewhere = offset(p, 64 * PAGE);
        assert_eq!(
            illegal(t.free(elsewhere, PAGE)),
            (Op::Free, State::None),
            "free of never-reserved memory"
        );
        assert_eq!(illegal(t.fault(elsewhere, PAGE)), (Op::Fault, State::None));
        assert_eq!(illegal(t.map(elsewhere, PAGE)), (Op::Map, State::None));
        assert_eq!(t.counts().illegal, 11);
        // The message names the operation and the state.
        let msg = t.used(p, PAGE).unwrap_err().to_string();
        assert!(msg.contains("used") && msg.contains("Ready") && msg.contains("Prepared"), "{msg}");
        t.free(p, 4 * PAGE).unwrap();
        assert_eq!(illegal(t.free(p, 4 * PAGE)), (Op::Free, State::None), "double free");
    }
    assert_eq!(t.counts().owned(), 0);
}

#[test]
fn tracked_counts_bytes_per_state_exactly() {
    let t = Tracked::new(Mmap);
    let p = t.reserve(16 * PAGE, PAGE).unwrap();
    let at = |pages: usize| offset(p, pages * PAGE);
    let c = t.counts();
    assert_eq!((c.reserved, c.prepared, c.ready), (16 * PAGE, 0, 0));
    // SAFETY: all calls are legal transitions on memory reserved above.
    unsafe {
        t.map(at(4), 8 * PAGE).unwrap(); // pages 4..12 Prepared
        t.used(at(6), 4 * PAGE).unwrap(); // 6..10 Ready
        scribble(at(6), 4 * PAGE, 1);
        t.unused(at(7), PAGE).unwrap(); // 7 Prepared
        t.fault(at(9), 2 * PAGE).unwrap(); // 9..11 Reserved
        t.free(at(14), 2 * PAGE).unwrap(); // 14..16 None
        let c = t.counts();
        // Reserved: 0..4, 9..11, 12..14 = 8 pages; Prepared: 4..6, 7, 11 = 4; Ready: 6, 8 = 2.
        assert_eq!((c.reserved, c.prepared, c.ready), (8 * PAGE, 4 * PAGE, 2 * PAGE), "{c:?}");
        assert_eq!(c.calls, [1, 1, 1, 1, 1, 1]);
        assert_eq!(c.bytes.map(|b| b as usize), [16 * PAGE, 8 * PAGE, 4 * PAGE, PAGE, 2 * PAGE, 2 * PAGE]);
        let states: Vec<State> = (0..16).map(|i| t.state_of(addr(at(i)))).collect();
        use State::*;
        #[rustfmt::skip]
        let want = [Reserved, Reserved, Reserved, Reserved, Prepared, Prepared, Ready, Prepared,
                    Ready, Reserved, Reserved, Prepared, Reserved, Reserved, None, None];
        assert_eq!(states, want);
        t.free(p, 14 * PAGE).unwrap();
        assert_eq!(t.counts().owned(), 0);
    }
}

#[test]
fn tracked_over_fixed_and_alloc_ready() {
    let (f, _buf) = fixed(64);
    let t = Tracked::new(f);
    let p = t.alloc_ready(8 * PAGE, PAGE).unwrap();
    assert_eq!(t.counts().ready, 8 * PAGE);
    assert_eq!(t.counts().calls_of(Op::Reserve), 1);
    // SAFETY: Ready memory from the source.
    unsafe {
        scribble(p, 8 * PAGE, 3);
        t.unused(p, 8 * PAGE).unwrap();
        t.free(p, 8 * PAGE).unwrap();
    }
    assert_eq!(t.counts().owned(), 0);
}

/// A broken source that hands out overlapping reservations, to show `Tracked` catches it:
/// a 2-page request gets the top of an 8-page block, a 5-page request then gets a range that
/// starts 3 pages below it and covers it. Other requests (Tracked's table) are honest.
struct Overlapping {
    inner: Fixed,
    last: core::sync::atomic::AtomicUsize,
}

// SAFETY: deliberately broken (point 1: the 5-page reservation overlaps the 2-page one) to
// test `Tracked`, which must refuse it; the overlapping memory is never touched.
unsafe impl PageSource for Overlapping {
    const PAGE_BYTES: usize = PAGE;
    const FRESH_ZEROED: bool = false;
    const RELEASES_MEMORY: bool = false;
    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        use core::sync::atomic::Ordering::Relaxed;
        match bytes / PAGE {
            2 => {
                let top = offset(self.inner.reserve(8 * PAGE, align)?, 6 * PAGE);
                self.last.store(addr(top), Relaxed);
                Ok(top)
            }
            5 => Ok(NonNull::new((self.last.load(Relaxed) - 3 * PAGE) as *mut u8).unwrap()),
            _ => self.inner.reserve(bytes, align),
        }
    }
    unsafe fn map(&self, _: NonNull<u8>, _: usize) -> Result<(), SourceError> {
        Ok(())
    }
    unsafe fn used(&self, _: NonNull<u8>, _: usize) -> Result<(), SourceError> {
        Ok(())
    }
    unsafe fn unused(&self, _: NonNull<u8>, _: usize) -> Result<(), SourceError> {
        Ok(())
    }
    unsafe fn fault(&self, _: NonNull<u8>, _: usize) -> Result<(), SourceError> {
        Ok(())
    }
    unsafe fn free(&self, _: NonNull<u8>, _: usize) -> Result<(), SourceError> {
        Ok(())
    }
}

#[test]
fn tracked_catches_a_source_that_hands_out_a_range_twice() {
    let (f, _buf) = fixed(64);
    let t = Tracked::new(Overlapping { inner: f, last: 0.into() });
    let a = t.reserve(2 * PAGE, PAGE).unwrap();
    // The second reservation starts 3 pages before `a` (a gap in the table) and covers `a`:
    // the check must look past the gap (it once stopped there).
    match t.reserve(5 * PAGE, PAGE) {
        Err(SourceError::IllegalTransition { op: Op::Reserve, found: State::Reserved, addr: x, .. }) => {
            assert_eq!(x + 3 * PAGE, addr(a))
        }
        other => panic!("overlapping reservation not caught: {other:?}"),
    }
    assert_eq!(t.counts().illegal, 1);
}

// ------------------------------------------------------------------------------------------
// Failing

#[test]
fn failing_fails_from_the_nth_call_and_heals() {
    let f = Failing::new(Tracked::new(Mmap));
    f.fail_after_calls(2);
    let p = f.reserve(2 * PAGE, PAGE).unwrap(); // call 0
    // SAFETY: legal transitions on memory reserved above.
    unsafe {
        f.map(p, 2 * PAGE).unwrap(); // call 1
        assert_eq!(f.used(p, 2 * PAGE), Err(SourceError::Injected { op: Op::Used })); // call 2
        assert_eq!(f.reserve(PAGE, PAGE), Err(SourceError::Injected { op: Op::Reserve }));
        // Giving memory back never fails.
        f.free(p, 2 * PAGE).unwrap();
    }
    f.heal();
    let q = f.reserve(PAGE, PAGE).unwrap();
    // SAFETY: reserved above.
    unsafe { f.free(q, PAGE).unwrap() };
    // fail_after_calls(0): the very next call fails.
    f.fail_after_calls(0);
    assert_eq!(f.reserve(PAGE, PAGE), Err(SourceError::Injected { op: Op::Reserve }));
    assert_eq!(f.inner().counts().owned(), 0);
}

#[test]
fn failing_budget_limits_reserved_bytes() {
    let f = Failing::new(Mmap);
    f.set_budget(8 * PAGE);
    let a = f.reserve(4 * PAGE, PAGE).unwrap();
    let b = f.reserve(4 * PAGE, PAGE).unwrap();
    assert_eq!(f.reserve(PAGE, PAGE), Err(SourceError::Exhausted { op: Op::Reserve, bytes: PAGE }));
    // SAFETY: reserved above, unused.
    unsafe { f.free(a, 4 * PAGE).unwrap() };
    let c = f.reserve(4 * PAGE, PAGE).unwrap();
    // SAFETY: reserved above, unused.
    unsafe {
        f.free(b, 4 * PAGE).unwrap();
        f.free(c, 4 * PAGE).unwrap();
    }
}

#[test]
fn alloc_ready_undoes_a_partial_step_when_a_later_one_fails() {
    let f = Failing::new(Tracked::new(Mmap));
    f.fail_after_calls(1); // reserve succeeds, map fails
    assert_eq!(f.alloc_ready(4 * PAGE, PAGE), Err(SourceError::Injected { op: Op::Map }));
    let c = f.inner().counts();
    assert_eq!((c.owned(), c.calls_of(Op::Reserve), c.calls_of(Op::Free)), (0, 1, 1), "{c:?}");
    f.heal();
    f.fail_after_calls(2); // reserve and map succeed, used fails
    assert_eq!(f.alloc_ready(4 * PAGE, PAGE), Err(SourceError::Injected { op: Op::Used }));
    assert_eq!(f.inner().counts().owned(), 0);
}

// ------------------------------------------------------------------------------------------
// Property: Tracked<Mmap> against a shadow model of page states.

const ARENA_PAGES: usize = 32;

#[derive(Clone, Debug)]
enum TOp {
    /// A transition on pages `lo..hi` of the arena.
    Range { op: Op, lo: usize, len: usize },
    /// Reserve a fresh range elsewhere (1..=4 pages, aligned), check it, free it.
    Reserve { pages: usize, align_shift: u32 },
    /// Write a byte into every Ready page (and remember it).
    Write(u8),
}

fn tops() -> impl proptest::strategy::Strategy<Value = TOp> {
    prop_oneof![
        8 => (proptest::sample::select(&Op::ALL[1..]), 0..ARENA_PAGES, 1usize..8)
            .prop_map(|(op, lo, len)| TOp::Range { op, lo, len }),
        1 => (1usize..=4, 12u32..=20).prop_map(|(pages, align_shift)| TOp::Reserve { pages, align_shift }),
        2 => any::<u8>().prop_map(TOp::Write),
    ]
}

/// The model: each arena page's state, and the byte written into it while Ready (`None` when
/// its contents were dropped, so it must read zero when Ready again).
struct PageModel {
    state: [State; ARENA_PAGES],
    content: [Option<u8>; ARENA_PAGES],
}

impl PageModel {
    fn expected_mismatch(&self, op: Op, lo: usize, hi: usize) -> Option<State> {
        (lo..hi).map(|i| self.state[i]).find(|&s| match op.from_state() {
            Some(want) => s != want,
            None => s == State::None,
        })
    }
    fn bytes_in(&self, s: State) -> usize {
        self.state.iter().filter(|&&x| x == s).count() * PAGE
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn tracked_mmap_matches_a_shadow_model(ops in proptest::collection::vec(tops(), 1..80)) {
        let t = Tracked::new(Mmap);
        let base = t.reserve(ARENA_PAGES * PAGE, PAGE).unwrap();
        let page = |i: usize| offset(base, i * PAGE);
        let mut m = PageModel { state: [State::Reserved; ARENA_PAGES], content: [None; ARENA_PAGES] };
        let mut illegal = 0u64;
        for top in &ops {
            match *top {
                TOp::Range { op, lo, len } => {
                    let hi = (lo + len).min(ARENA_PAGES);
                    let want = m.expected_mismatch(op, lo, hi);
                    // SAFETY: legal calls touch only arena pages this test owns; illegal ones are
                    // refused by Tracked before they reach the OS.
                    let r = unsafe {
                        match op {
                            Op::Map => t.map(page(lo), (hi - lo) * PAGE),
                            Op::Used => t.used(page(lo), (hi - lo) * PAGE),
                            Op::Unused => t.unused(page(lo), (hi - lo) * PAGE),
                            Op::Fault => t.fault(page(lo), (hi - lo) * PAGE),
                            Op::Free => t.free(page(lo), (hi - lo) * PAGE),
                            Op::Reserve => unreachable!(),
                        }
                    };
                    match want {
                        Some(found) => {
                            illegal += 1;
                            match r {
                                Err(SourceError::IllegalTransition { op: o, found: f, addr: a, bytes: b }) => {
                                    prop_assert_eq!((o, f), (op, found));
                                    prop_assert_eq!((a, b), (addr(page(lo)), (hi - lo) * PAGE));
                                }
                                other => prop_assert!(false, "{op} on pages {lo}..{hi} should be refused (found {found:?}), got {other:?}"),
                            }
                        }
                        None => {
                            prop_assert!(r.is_ok(), "{op} on pages {lo}..{hi} is legal, got {r:?}");
                            for i in lo..hi {
                                m.state[i] = op.to_state();
                                if op != Op::Used {
                                    m.content[i] = None;
                                }
                            }
                        }
                    }
                }
                TOp::Reserve { pages, align_shift } => {
                    let before = t.counts();
                    let p = t.reserve(pages * PAGE, 1 << align_shift).unwrap();
                    prop_assert!(addr(p).is_multiple_of(1 << align_shift));
                    prop_assert_eq!(t.state_of(addr(p)), State::Reserved);
                    prop_assert_eq!(t.counts().reserved, before.reserved + pages * PAGE);
                    // SAFETY: reserved just above.
                    unsafe { t.free(p, pages * PAGE).unwrap() };
                    prop_assert_eq!(t.state_of(addr(p)), State::None);
                }
                TOp::Write(v) => {
                    for i in 0..ARENA_PAGES {
                        if m.state[i] == State::Ready {
                            // SAFETY: the page is Ready (model and Tracked agree, checked below).
                            unsafe {
                                let got = *page(i).as_ptr();
                                prop_assert_eq!(got, m.content[i].unwrap_or(0), "page {} content", i);
                                *page(i).as_ptr().add(PAGE - 1) = v;
                                *page(i).as_ptr() = v;
                            }
                            m.content[i] = Some(v);
                        }
                    }
                }
            }
            let c = t.counts();
            prop_assert_eq!(c.illegal, illegal);
            prop_assert_eq!(
                (c.reserved, c.prepared, c.ready),
                (m.bytes_in(State::Reserved), m.bytes_in(State::Prepared), m.bytes_in(State::Ready))
            );
            for i in 0..ARENA_PAGES {
                prop_assert_eq!(t.state_of(addr(page(i))), m.state[i], "page {}", i);
            }
        }
        // Give back what is still owned, one owned run at a time.
        let mut i = 0;
        while i < ARENA_PAGES {
            if m.state[i] == State::None {
                i += 1;
                continue;
            }
            let lo = i;
            while i < ARENA_PAGES && m.state[i] != State::None {
                i += 1;
            }
            // SAFETY: pages lo..i are owned by this test.
            unsafe { t.free(page(lo), (i - lo) * PAGE).unwrap() };
        }
        prop_assert_eq!(t.counts().owned(), 0);
    }
}
