//! Unit tests of the free-list core and policies (the shared proptest harness lives in
//! `tests/harness`).

extern crate std;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::vec::Vec;

use super::engine::{CHUNK_BYTES, POOL_BYTES, RETAIN_FREE_BYTES};
use super::*;
use crate::heap::Heap;
use crate::source::{Failing, Fixed, Mmap, Op, Tracked};

/// A heap-allocated backing region for a `Fixed` source (tests may use the global allocator;
/// the allocator under test never does).
struct Arena {
    _buf: Vec<u8>,
}

fn fixed(bytes: usize) -> (Arena, Fixed) {
    let mut buf = std::vec![0u8; bytes + 4096];
    // SAFETY: the buffer outlives the source in every test (it is returned alongside and
    // dropped after the heap), and nothing else touches it.
    let src = unsafe { Fixed::new(buf.as_mut_ptr(), buf.len()) };
    (Arena { _buf: buf }, src)
}

fn check<S: Strategy, P: PageSource>(h: &Heap<S, P>) {
    // SAFETY: single-threaded test.
    if let Err(e) = unsafe { h.check() } {
        panic!("{} check failed: {e}", h.strategy().name());
    }
}

use workloads::Rng;

/// A live block in the shadow model: pointer, layout, fill byte.
struct Live {
    p: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

fn fill(l: &Live) {
    // SAFETY: `p` is live for `layout.size()` bytes.
    unsafe { core::ptr::write_bytes(l.p.as_ptr(), l.fill, l.layout.size()) }
}

fn verify(l: &Live, upto: usize) {
    // SAFETY: `p` is live for `layout.size() >= upto` bytes.
    let s = unsafe { core::slice::from_raw_parts(l.p.as_ptr(), upto) };
    assert!(s.iter().all(|&b| b == l.fill), "block {:p} ({:?}) lost its contents", l.p, l.layout);
}

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(10) {
        0..=5 => 1 + rng.below(128),
        6..=8 => 1 + rng.below(4096),
        _ => 1 + rng.below(64 * 1024),
    };
    let align = match rng.below(20) {
        0 => 1 << (5 + rng.below(16)), // 32 B ..= 1 MiB
        1..=3 => 1 << rng.below(5),
        _ => 8,
    };
    Layout::from_size_align(size, align).unwrap()
}

/// Random alloc / zeroed alloc / realloc / free against a shadow model, checking every
/// invariant after every operation. A null is a failure unless `may_refuse` (a region small
/// enough to run out).
fn churn<S: Strategy + ConstInit, P: PageSource>(h: &Heap<S, P>, seed: u64, ops: usize, may_refuse: bool) {
    let mut rng = Rng::seeded(seed);
    let mut live: Vec<Live> = Vec::new();
    let mut granted = 0usize;
    for i in 0..ops {
        match rng.below(10) {
            0..=4 => {
                let layout = random_layout(&mut rng);
                let zeroed = rng.below(4) == 0;
                // SAFETY: non-zero size.
                let p = unsafe { if zeroed { h.alloc_zeroed(layout) } else { h.alloc(layout) } };
                let Some(p) = NonNull::new(p) else {
                    assert!(may_refuse, "{}: op {i}: alloc {layout:?} refused", h.strategy().name());
                    continue;
                };
                granted += 1;
                assert_eq!(p.addr().get() % layout.align(), 0, "misaligned {p:p} for {layout:?}");
                if zeroed {
                    // SAFETY: live block of `size` bytes.
                    let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), layout.size()) };
                    assert!(s.iter().all(|&b| b == 0), "alloc_zeroed {p:p} {layout:?} not zero");
                }
                let l = Live { p, layout, fill: i as u8 | 1 };
                fill(&l);
                live.push(l);
            }
            5..=7 if !live.is_empty() => {
                let l = live.swap_remove(rng.below(live.len()));
                verify(&l, l.layout.size());
                // SAFETY: live block with its layout.
                unsafe { h.dealloc(l.p.as_ptr(), l.layout) };
            }
            8..=9 if !live.is_empty() => {
                let k = rng.below(live.len());
                let new_size = random_layout(&mut rng).size();
                let l = &mut live[k];
                // SAFETY: live block with its layout; non-zero size.
                let p = unsafe { h.realloc(l.p.as_ptr(), l.layout, new_size) };
                assert!(
                    may_refuse || !p.is_null(),
                    "{}: op {i}: realloc {:?} -> {new_size} refused",
                    h.strategy().name(),
                    l.layout
                );
                if let Some(p) = NonNull::new(p) {
                    l.p = p;
                    let keep = l.layout.size().min(new_size);
                    l.layout = Layout::from_size_align(new_size, l.layout.align()).unwrap();
                    verify(l, keep);
                    assert_eq!(p.addr().get() % l.layout.align(), 0);
                    fill(l);
                }
            }
            _ => {}
        }
        check(h);
        let st = h.stats();
        assert_eq!(st.live_objects, live.len());
        // SAFETY: live blocks with their layouts.
        let usable = live.iter().map(|l| unsafe { h.usable_size(l.p, l.layout) }).sum::<usize>();
        assert_eq!(st.live_bytes, usable, "live_bytes counts usable sizes");
    }
    // Even a region that runs out serves most requests (a heap that refused everything would
    // pass the loop above).
    assert!(granted * 4 > ops, "{}: only {granted} allocations in {ops} operations", h.strategy().name());
    for l in live.drain(..) {
        verify(&l, l.layout.size());
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(l.p.as_ptr(), l.layout) };
        check(h);
    }
    assert_eq!(h.stats().live_bytes, 0);
}

macro_rules! churn_tests {
    ($($name:ident: $s:ty;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn churn_fixed() {
                let (_a, src) = fixed(24 << 20);
                let h: Heap<$s, Fixed> = Heap::with_source(src);
                churn(&h, 0x9e37_79b9_7f4a_7c15, 1500, false);
            }
            #[test]
            fn churn_mmap() {
                let h: Heap<$s, Mmap> = Heap::new();
                churn(&h, 0x1234_5678_9abc_def1, 1500, false);
            }
            #[test]
            fn churn_small_fixed_exhausts() {
                // A region so small that requests fail often: failures must leave it whole.
                let (_a, src) = fixed(1 << 20);
                let h: Heap<$s, Fixed> = Heap::with_source(src);
                churn(&h, 77, 1500, true);
            }
        }
    )*};
}

churn_tests! {
    first_linear: FirstFit<Linear>;
    next_linear: NextFit<Linear>;
    best_linear: BestFit<Linear>;
    first_tree: FirstFit;
    next_tree: NextFit;
    best_bins: BestFit;
    best_tree: BestFit<SizeTree>;
    segregated: SegregatedFit;
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn coalescing_merges_every_neighbour() {
    let (_a, src) = fixed(4 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    let l = layout(100, 8);
    // SAFETY: non-zero sizes; each block freed once with its layout.
    unsafe {
        let p: Vec<*mut u8> = (0..5).map(|_| h.alloc(l)).collect();
        let guard = h.alloc(l);
        assert!(p.windows(2).all(|w| w[0] < w[1]), "first fit hands out ascending addresses");
        // Free 1 and 3, then 2 (merges both sides), then 0 (merges above), then 4 (below).
        for i in [1, 3, 2, 0, 4] {
            h.dealloc(p[i], l);
            check(&h);
        }
        // All five form one free block again: the same address comes back for 5x the size.
        let big = h.alloc(layout(5 * 112 - 8, 8));
        assert_eq!(big, p[0]);
        h.dealloc(big, layout(5 * 112 - 8, 8));
        h.dealloc(guard, l);
        check(&h);
        let core = h.strategy().core.lock();
        assert_eq!(core.free_blocks_for_test(), 1, "one chunk, one free block");
    }
}

#[test]
fn large_alignments_up_to_1mib() {
    let (_a, src) = fixed(32 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    let mut live = Vec::new();
    for shift in 0..=20 {
        for size in [1, 24, 5000] {
            let l = layout(size, 1 << shift);
            // SAFETY: non-zero size.
            let p = unsafe { h.alloc(l) };
            assert!(!p.is_null(), "{l:?}");
            assert_eq!(p.addr() % (1 << shift), 0, "{l:?} at {p:p}");
            // SAFETY: live block.
            unsafe { core::ptr::write_bytes(p, 0xab, size) };
            live.push((p, l));
            check(&h);
        }
    }
    for (p, l) in live {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p, l) };
        check(&h);
    }
}

/// Segregated fit serves an over-aligned request without walking a class of blocks at the
/// wrong addresses: after a few probes (most recently freed first) it takes a block of a
/// class where every block fits, even when an aligned block lies deeper in the request's
/// class. When no such class has a block, it walks the lists and finds that one.
#[test]
fn segregated_fit_takes_a_sure_block_for_an_over_aligned_request() {
    let (_a, src) = fixed(4 << 20);
    let h: Heap<SegregatedFit, Fixed> = Heap::with_source(src);
    let (small, sep, line) = (layout(72, 16), layout(56, 16), layout(64, 64));
    // SAFETY: non-zero sizes; each block freed once with its layout; single-threaded.
    unsafe {
        // 80-byte blocks, each followed by a 64-byte separator so that frees do not
        // coalesce: pairs of 144 bytes, so that the payloads take every residue modulo 64.
        let pairs: Vec<(*mut u8, *mut u8)> = (0..64).map(|_| (h.alloc(small), h.alloc(sep))).collect();
        let top = pairs.iter().map(|&(a, s)| a.max(s)).max().unwrap();
        let aligned: Vec<*mut u8> = pairs.iter().map(|p| p.0).filter(|a| a.addr() % 64 == 0).collect();
        let misaligned: Vec<*mut u8> = pairs.iter().map(|p| p.0).filter(|a| a.addr() % 64 != 0).collect();
        assert!(!aligned.is_empty() && misaligned.len() > 2 * 8);
        // The aligned block first, so that it lies deepest in its class's list.
        h.dealloc(aligned[0], small);
        for &a in &misaligned {
            h.dealloc(a, small);
        }
        check(&h);
        let p = h.alloc(line);
        assert_eq!(p.addr() % 64, 0);
        assert!(p > top, "{p:p} should come from the free tail above the pairs (top {top:p})");
        check(&h);
        h.dealloc(p, line);
        // Fill the tail, so that no class where every block fits has a block: the walk
        // finds the aligned block.
        let mut fill = Vec::new();
        loop {
            let q = h.alloc(layout(1024, 16));
            if q.is_null() {
                break;
            }
            fill.push(q);
        }
        // Whatever the fill left below 1 KiB that fits whatever its address goes too.
        let mut rest = Vec::new();
        loop {
            let q = h.alloc(layout(152, 16));
            if q.is_null() || q < top {
                if !q.is_null() {
                    h.dealloc(q, layout(152, 16));
                }
                break;
            }
            rest.push(q);
        }
        let q = h.alloc(line);
        assert_eq!(q, aligned[0], "the walk finds the one aligned 80-byte block");
        check(&h);
    }
}

#[test]
fn realloc_grows_and_shrinks_in_place() {
    let (_a, src) = fixed(4 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    // SAFETY: live blocks with their layouts; non-zero sizes.
    unsafe {
        let a = h.alloc(layout(64, 8));
        let b = h.alloc(layout(64, 8));
        let c = h.alloc(layout(64, 8));
        core::ptr::write_bytes(a, 7, 64);
        h.dealloc(b, layout(64, 8));
        // `b`'s block (and nothing more) is free above `a`: grow into it.
        let a2 = h.realloc(a, layout(64, 8), 130);
        assert_eq!(a2, a, "grew in place into the free neighbour");
        assert!(core::slice::from_raw_parts(a2, 64).iter().all(|&x| x == 7));
        check(&h);
        // Too big for the neighbour: moves, keeping contents.
        let a3 = h.realloc(a2, layout(130, 8), 10_000);
        assert_ne!(a3, a2);
        assert!(core::slice::from_raw_parts(a3, 64).iter().all(|&x| x == 7));
        check(&h);
        // Shrinking moves to where the policy puts a fresh block of the new size (first fit:
        // the hole `a2` left), and the whole old block is freed.
        let free_before = h.strategy().core.lock().free_bytes_for_test();
        let a4 = h.realloc(a3, layout(10_000, 8), 100);
        assert_eq!(a4, a, "shrunk block moved into the lowest free block that fits");
        assert!(core::slice::from_raw_parts(a4, 64).iter().all(|&x| x == 7));
        assert!(h.strategy().core.lock().free_bytes_for_test() > free_before + 9000);
        check(&h);
        h.dealloc(a4, layout(100, 8));
        h.dealloc(c, layout(64, 8));
        check(&h);
    }
}

#[test]
fn realloc_shrinks_in_place_when_no_free_block_fits() {
    // Room for the live-start map's first pool and one chunk.
    let (_a, src) = fixed(POOL_BYTES + CHUNK_BYTES);
    let h: Heap<BestFit<Linear>, Fixed> = Heap::with_source(src);
    // SAFETY: live blocks with their layouts; non-zero sizes.
    unsafe {
        let first = h.alloc(layout(64, 8));
        let whole = h.strategy().core.lock().free_bytes_for_test() - HEADER_BYTES;
        let big = h.alloc(layout(whole, 8));
        assert!(!big.is_null(), "the rest of the chunk in one block");
        assert_eq!(h.strategy().free_summary().blocks, 0);
        core::ptr::write_bytes(big, 5, 4096);
        // No free block: the block shrinks where it is, and its tail becomes free.
        let p = h.realloc(big, layout(whole, 8), 4000);
        assert_eq!(p, big);
        assert!(core::slice::from_raw_parts(p, 4000).iter().all(|&x| x == 5));
        assert_eq!(h.strategy().free_summary().blocks, 1);
        check(&h);
        // A shrink that keeps the block size changes nothing, even with a free block.
        assert_eq!(h.realloc(p, layout(4000, 8), 3995), p);
        check(&h);
        h.dealloc(p, layout(3995, 8));
        h.dealloc(first, layout(64, 8));
        check(&h);
    }
}

#[test]
fn sizes_beyond_the_source_fail_without_panic() {
    let (_a, src) = fixed(1 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    for size in [2 << 20, isize::MAX as usize - 4096, isize::MAX as usize / 2] {
        let l = layout(size, 8);
        assert!(h.alloc_layout(l).is_none(), "{size}");
    }
    let m: Heap<FirstFit<Linear>, Mmap> = Heap::new();
    assert!(m.alloc_layout(layout(isize::MAX as usize - 4096, 8)).is_none());
    assert!(m.alloc_layout(layout(1 << 60, 1 << 20)).is_none());
    check(&h);
    check(&m);
}

#[test]
fn exhausted_fixed_returns_none_and_recovers() {
    let (_a, src) = fixed(2 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    let l = layout(3000, 8);
    let mut live = Vec::new();
    while let Some(p) = h.alloc_layout(l) {
        live.push(p);
        assert!(live.len() < 10_000);
    }
    check(&h);
    let used = live.len() * 3000;
    assert!(used * 100 / (2 << 20) >= 90, "only {used} bytes fit in 2 MiB");
    // Free every other block: a smaller request fits again, the same size does too.
    for p in live.iter().step_by(2) {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), l) };
    }
    check(&h);
    assert!(h.alloc_layout(l).is_some());
    check(&h);
}

#[test]
fn injected_source_failure_gives_none_and_leaks_nothing() {
    let src = Tracked::new(Failing::new(Mmap));
    let h: Heap<FirstFit<Linear>, Tracked<Failing<Mmap>>> = Heap::with_source(src);
    h.source().inner().fail_after_calls(0);
    assert!(h.alloc_layout(layout(100, 8)).is_none());
    assert_eq!(h.source().counts().owned(), 0, "a failed growth holds nothing");
    check(&h);
    h.source().inner().heal();
    // The second call of alloc_ready (map) fails: the reservation must be undone.
    h.source().inner().fail_after_calls(1);
    assert!(h.alloc_layout(layout(100, 8)).is_none());
    assert_eq!(h.source().counts().owned(), 0);
    h.source().inner().heal();
    let p = h.alloc_layout(layout(100, 8)).unwrap();
    // SAFETY: live block with its layout.
    unsafe { h.dealloc(p.as_ptr(), layout(100, 8)) };
    check(&h);
}

#[test]
fn wholly_free_chunks_go_back_to_the_source() {
    let h: Heap<FirstFit<Linear>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    // A little free memory stays cached: one chunk, wholly free, is kept.
    let p = h.alloc_layout(layout(100, 8)).unwrap();
    // SAFETY: live block with its layout.
    unsafe { h.dealloc(p.as_ptr(), layout(100, 8)) };
    assert_eq!(h.source().counts().ready, POOL_BYTES + CHUNK_BYTES, "the first chunk is kept cached");
    assert_eq!(h.source().counts().calls_of(Op::Free), 0);
    // Much free memory does not: wholly free chunks go back while more than
    // RETAIN_FREE_BYTES are free.
    let l = layout(200 * 1024, 8);
    let live: Vec<_> = (0..40).map(|_| h.alloc_layout(l).unwrap()).collect();
    assert!(h.source().counts().ready >= 40 * 200 * 1024);
    for p in &live {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), l) };
        check(&h);
    }
    let counts = h.source().counts();
    assert!(counts.calls_of(Op::Free) > 0, "no chunk was given back");
    assert!(
        counts.ready <= RETAIN_FREE_BYTES + CHUNK_BYTES + POOL_BYTES,
        "kept {} bytes Ready",
        counts.ready
    );
    assert_eq!(h.stats().committed_bytes, counts.ready);
    let given = h.trim();
    assert_eq!(given, counts.ready, "every chunk given back, and the live-start map after them");
    assert_eq!(h.source().counts().owned(), 0, "trim gives back every wholly free chunk");
    check(&h);
    // And the heap still works after giving everything back.
    let p = h.alloc_layout(l).unwrap();
    // SAFETY: live block with its layout.
    unsafe { h.dealloc(p.as_ptr(), l) };
    check(&h);
}

/// A heap whose free memory is fragments too small for a large request grows a chunk for
/// it; when that block is freed, the chunk is wholly free while more than
/// `RETAIN_FREE_BYTES` are free. The first time the chunk goes back; the growth that
/// follows raises the retention, so from then on the chunk stays and serves the request
/// again (without it, every round mapped and unmapped a chunk). `trim` still gives it back.
#[test]
fn a_chunk_asked_for_again_after_going_back_is_kept() {
    let h: Heap<FirstFit<Linear>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let small = layout(1024, 8);
    let blocks: Vec<_> = (0..3000).map(|_| h.alloc_layout(small).unwrap()).collect();
    // Every other block freed: about 1.5 MiB free in 1 KiB holes between live blocks.
    for p in blocks.iter().step_by(2) {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), small) };
    }
    assert!(h.strategy().free_summary().bytes > RETAIN_FREE_BYTES + CHUNK_BYTES / 2);
    check(&h);
    // A page mapped just below the heap's one chunk (it extended down as it grew; its first
    // block is the lowest), so that the chunk grown next, which Linux maps below it, does
    // not touch the chunk and stays a chunk of its own instead of extending it. Pages
    // mapped in holes higher up are kept until the end. Linux maps top-down into the highest
    // free gap, so a page that lands lower than the chunk means the page just below it is
    // taken already (by a mapping of another test thread): the chunk cannot be extended
    // down then either.
    let lo = blocks.iter().map(|p| p.as_ptr().addr()).min().unwrap() & !4095;
    let mut guards = Vec::new();
    while guards.last().is_none_or(|g: &NonNull<u8>| g.as_ptr().addr() >= lo) {
        assert!(guards.len() < 4096, "no page could be mapped below the chunk");
        guards.push(Mmap.alloc_ready(4096, 4096).unwrap());
    }
    // Larger than any chunk's tail, so that it needs a chunk of its own.
    let big = layout(CHUNK_BYTES, 8);
    let round = |h: &Heap<FirstFit<Linear>, Tracked<Mmap>>| {
        let p = h.alloc_layout(big).unwrap();
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), big) };
        check(h);
    };
    let frees_before = h.source().counts().calls_of(Op::Free);
    round(&h);
    let counts = h.source().counts();
    assert_eq!(counts.calls_of(Op::Free), frees_before + 1, "the wholly free chunk went back once");
    for _ in 0..20 {
        round(&h);
    }
    let after = h.source().counts();
    assert_eq!(after.calls_of(Op::Free), counts.calls_of(Op::Free), "a chunk went back again");
    assert!(after.ready > counts.ready, "the chunk grown again is kept");
    let given = h.trim();
    assert!(given >= CHUNK_BYTES, "trim gave back {given} bytes");
    // After trim the retention starts afresh: the next round hands its chunk back again.
    let frees = h.source().counts().calls_of(Op::Free);
    round(&h);
    assert_eq!(h.source().counts().calls_of(Op::Free), frees + 1);
    for p in blocks.iter().skip(1).step_by(2) {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), small) };
    }
    check(&h);
    for g in guards {
        // SAFETY: the page was mapped above and nothing uses it.
        unsafe { Mmap.free(g, 4096) }.unwrap();
    }
}

#[test]
fn adjacent_growth_extends_the_chunk() {
    // `Fixed` hands out neighbouring ranges: the heap keeps one chunk, so a block can span
    // what were two reservations, and the whole region is usable by one large request.
    let (_a, src) = fixed(4 << 20);
    let h: Heap<FirstFit<Linear>, Fixed> = Heap::with_source(src);
    let small = h.alloc_layout(layout(64, 8)).unwrap();
    let big: Vec<_> = (0..6).map(|_| h.alloc_layout(layout(300 * 1024, 8)).unwrap()).collect();
    check(&h);
    assert_eq!(h.strategy().core.lock().chunks_for_test(), 1, "growth extended the one chunk");
    for p in big {
        // SAFETY: live block with its layout.
        unsafe { h.dealloc(p.as_ptr(), layout(300 * 1024, 8)) };
    }
    check(&h);
    assert_eq!(h.strategy().free_summary().blocks, 1, "one chunk, one free block: chunks were merged");
    // The one free block is all the chunk but the small block and the chunk's overhead.
    let all = h.strategy().free_summary().bytes - HEADER_BYTES;
    assert!(h.alloc_layout(layout(all, 8)).is_some(), "one block spans the merged chunk");
    check(&h);
    // SAFETY: live block with its layout.
    unsafe { h.dealloc(small.as_ptr(), layout(64, 8)) };
}

#[test]
fn alloc_zeroed_is_zero_after_reuse() {
    let h: Heap<FirstFit<Linear>, Mmap> = Heap::new();
    let mut rng = Rng::seeded(5);
    for round in 0..200 {
        let l = layout(1 + rng.below(3000), 1 << rng.below(7));
        // SAFETY: non-zero sizes; each block freed with its layout.
        unsafe {
            let p = h.alloc_zeroed(l);
            assert!(core::slice::from_raw_parts(p, l.size()).iter().all(|&b| b == 0), "round {round}");
            core::ptr::write_bytes(p, 0xff, l.size());
            if rng.below(3) != 0 {
                h.dealloc(p, l);
            }
        }
        check(&h);
    }
}

#[test]
fn names_and_any_strategy() {
    use crate::any::AnyStrategy;
    assert_eq!(FirstFit::<Linear>::new().name(), "first-fit");
    assert_eq!(NextFit::<Linear>::new().name(), "next-fit");
    assert_eq!(BestFit::<Linear>::new().name(), "best-fit");
    for kind in crate::any::StrategyKind::ALL {
        let s = AnyStrategy::new(kind);
        assert_eq!(s.name(), kind.name());
        assert_eq!(s.kind(), kind);
        let h = Heap::from_parts(s, Mmap);
        let p = h.alloc_layout(layout(10, 8)).unwrap();
        // SAFETY: live block with its layout.
        unsafe { h.dealloc_layout(p, layout(10, 8)) };
        check(&h);
    }
}

/// Runs `f` and says whether it panicked (debug builds panic at detected bad input).
fn panics(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

/// A double free is ignored (and reported by a panic in debug builds) by every policy: the
/// heap is unchanged, passes its checker, and hands the block out once, not twice. Both
/// cases: the block alone (its own header says FREE) and merged into the free block below
/// (its old header word says FREE inside the bigger block).
fn double_free_is_ignored<S: Strategy + ConstInit>() {
    let (_a, src) = fixed(1 << 20);
    let h: Heap<S, Fixed> = Heap::with_source(src);
    let l = layout(200, 8);
    let [p, q, r, guard] = [(); 4].map(|()| h.alloc_layout(l).unwrap().as_ptr());
    // SAFETY: live blocks with their layout.
    unsafe {
        h.dealloc(q, l);
        h.dealloc(r, l); // merges into q's free block below it
    }
    let before = h.stats();
    for bad in [q, r] {
        // SAFETY: deliberately bad input, which this heap detects: the block is free.
        let panicked = panics(|| unsafe { h.dealloc(bad, l) });
        assert_eq!(panicked, cfg!(debug_assertions), "{}: panics in debug builds only", h.strategy().name());
        assert_eq!(h.stats(), before, "{}: the double free changed the heap", h.strategy().name());
        check(&h);
        // SAFETY: deliberately bad input, which this heap detects: the block is free, so the
        // realloc fails.
        let panicked = panics(|| assert!(unsafe { h.realloc(bad, l, 400) }.is_null()));
        assert_eq!(panicked, cfg!(debug_assertions));
        check(&h);
    }
    // The space of q and r is handed out once: two allocations get two distinct blocks.
    let (x, y) = (h.alloc_layout(l).unwrap().as_ptr(), h.alloc_layout(l).unwrap().as_ptr());
    assert_ne!(x, y);
    check(&h);
    // SAFETY: live blocks with their layout.
    unsafe {
        for b in [p, x, y, guard] {
            h.dealloc(b, l);
        }
    }
    check(&h);
}

#[test]
fn double_frees_are_ignored_by_every_policy() {
    double_free_is_ignored::<FirstFit<Linear>>();
    double_free_is_ignored::<FirstFit>();
    double_free_is_ignored::<NextFit>();
    double_free_is_ignored::<BestFit>();
    double_free_is_ignored::<BestFit<SizeTree>>();
    double_free_is_ignored::<SegregatedFit>();
}

/// Debug builds see a pointer that lies in none of the heap's chunks.
#[cfg(debug_assertions)]
#[test]
fn foreign_pointers_panic_in_debug_builds() {
    let (_a, src) = fixed(1 << 20);
    let h: Heap<BestFit, Fixed> = Heap::with_source(src);
    let other: Heap<BestFit> = Heap::new();
    let l = layout(64, 8);
    let mine = h.alloc_layout(l).unwrap().as_ptr();
    let foreign = other.alloc_layout(l).unwrap().as_ptr();
    let before = h.stats();
    // SAFETY: deliberately bad input, detected in debug builds before anything is read.
    assert!(panics(|| unsafe { h.dealloc(foreign, l) }));
    assert!(panics(|| {
        // SAFETY: deliberately bad input, detected in debug builds before anything is read.
        unsafe { h.realloc(foreign, l, 128) };
    }));
    assert_eq!(h.stats(), before);
    check(&h);
    // SAFETY: live blocks with their layouts, each freed to its own heap.
    unsafe {
        h.dealloc(mine, l);
        other.dealloc(foreign, l);
    }
    check(&h);
    check(&other);
}

/// The address treap keeps `amax` only from the first search aligned for 64 or more: before
/// it every node's bound is 0, then one walk computes them all, and the updates keep them.
/// The checker tests both states (`amax == 0`, then the exact bound) after every step, and
/// every over-aligned block must be aligned, with `FirstFit<AddrTree>` (the treap alone) and
/// `NextFit<AddrTree>`.
#[test]
fn address_treap_starts_its_aligned_bounds_at_the_first_over_aligned_search() {
    fn run<S: Strategy + ConstInit>() {
        let (_a, src) = fixed(4 << 20);
        let h = Heap::<S, Fixed>::with_source(src);
        let mut rng = Rng::seeded(22);
        // Many free blocks of mixed sizes and residues while no request is over-aligned.
        let mut live: Vec<(NonNull<u8>, Layout)> = Vec::new();
        for i in 0..600 {
            let l = layout(16 + rng.below(400), 8);
            live.push((h.alloc_layout(l).unwrap(), l));
            if i % 3 == 0 {
                let (p, l) = live.swap_remove(rng.below(live.len()));
                // SAFETY: a live block with its layout.
                unsafe { h.dealloc(p.as_ptr(), l) };
            }
        }
        check(&h);
        // The first over-aligned requests, then a mix, each step checked.
        for i in 0..400 {
            let align = if i % 2 == 0 { 64 << rng.below(3) } else { 8 };
            let l = layout(16 + rng.below(300), align);
            let p = h.alloc_layout(l).unwrap();
            assert_eq!(p.addr().get() % align, 0, "{} at {i}", h.strategy().name());
            live.push((p, l));
            if rng.below(2) == 0 {
                let (p, l) = live.swap_remove(rng.below(live.len()));
                // SAFETY: a live block with its layout.
                unsafe { h.dealloc(p.as_ptr(), l) };
            }
            check(&h);
        }
        for (p, l) in live {
            // SAFETY: a live block with its layout.
            unsafe { h.dealloc(p.as_ptr(), l) };
        }
        check(&h);
    }
    run::<FirstFit<AddrTree>>();
    run::<NextFit<AddrTree>>();
}
