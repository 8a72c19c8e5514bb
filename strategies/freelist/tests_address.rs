//! Unit tests of the address-based contract of the free lists (#22): `block_of`, free by
//! address, the release-build refusal of bad pointers by `dealloc`/`realloc`, and
//! `release_all`, for every policy and index, over `Mmap`, `Fixed` and `Tracked`.

extern crate std;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::heap::Heap;
use crate::source::{Fixed, Mmap, State, Tracked};
use crate::strategy::BadFree;
use workloads::Rng;

/// A heap-allocated backing region for a `Fixed` source (tests may use the global allocator;
/// the allocator under test never does). Declared before the heap, so dropped after it.
struct Region {
    _buf: Vec<u8>,
}

fn fixed(bytes: usize) -> (Region, Fixed) {
    let mut buf = std::vec![0u8; bytes + 4096];
    // SAFETY: the buffer outlives the source in every test (returned alongside it and
    // dropped after the heap), and nothing else touches it.
    let src = unsafe { Fixed::new(buf.as_mut_ptr(), buf.len()) };
    (Region { _buf: buf }, src)
}

fn check<S: Strategy, P: PageSource>(h: &Heap<S, P>) {
    // SAFETY: single-threaded test.
    if let Err(e) = unsafe { h.check() } {
        panic!("{} check failed: {e}", h.strategy().name());
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// Runs `f` and says whether it panicked (debug builds panic at a refused `dealloc`).
fn panics(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

/// A pointer at `addr` that is never dereferenced (no provenance needed).
fn at(addr: usize) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut(addr)).unwrap()
}

/// The first chunk's base and bytes (any chunk of the heap).
fn some_chunk<X: Placement>(s: &FreeList<X>) -> (usize, usize) {
    let mut c = None;
    s.walk(|b| c = c.or(Some((b.chunk, b.chunk_bytes))));
    c.expect("the heap has a chunk")
}

/// Asserts that `blocks` (start, usable) are pairwise disjoint.
fn assert_disjoint(name: &str, blocks: &[(usize, usize)]) {
    let mut v = blocks.to_vec();
    v.sort_unstable();
    for w in v.windows(2) {
        assert!(
            w[0].0 + w[0].1 <= w[1].0,
            "{name}: blocks {:#x}+{} and {:#x} overlap",
            w[0].0,
            w[0].1,
            w[1].0
        );
    }
}

/// What every kind of pointer gets from `block_of` and `free`, on a heap over `P`.
fn bad_pointers<X: Placement, P: PageSource>(h: &Heap<FreeList<X>, P>) {
    let name = h.strategy().name();
    let l = layout(200, 8);
    let [p, q, r, guard] = [(); 4].map(|()| h.alloc_layout(l).unwrap());
    let aligned = h.alloc_layout(layout(3000, 256)).unwrap();
    // Live blocks: found, with their usable size and an alignment they honour.
    for (b, lay) in [(p, l), (q, l), (aligned, layout(3000, 256))] {
        let info = h.block_of(b.as_ptr()).unwrap_or_else(|| panic!("{name}: live {b:p} not found"));
        // SAFETY: live block with its layout.
        let usable = unsafe { h.usable_size(b, lay) };
        assert_eq!((info.start, info.usable), (b.addr().get(), usable), "{name}");
        assert!(info.align >= lay.align() && info.start.is_multiple_of(info.align), "{name}: {info:?}");
    }
    // SAFETY: live blocks with their layout; `r` merges into `q`'s free block below it.
    unsafe {
        h.dealloc(q.as_ptr(), l);
        h.dealloc(r.as_ptr(), l);
    }
    check(h);
    let (chunk, chunk_bytes) = some_chunk(h.strategy());
    // Another heap over its own region (Miri runs this test and cannot map memory).
    let (_other_region, other_src) = fixed(1 << 20);
    let other: Heap<FreeList<X>, Fixed> = Heap::with_source(other_src);
    let theirs = other.alloc_layout(l).unwrap();
    let boxed = Box::new([7u8; 64]);
    let local = 5u64;
    let stack = NonNull::from(&local).cast::<u8>();
    let cases: [(&str, NonNull<u8>, BadFree); 16] = [
        ("freed", q, BadFree::NotLive),
        ("freed, merged below", r, BadFree::NotLive),
        ("interior +1", p.map_addr(|a| a.saturating_add(1)), BadFree::Interior),
        ("interior +16", p.map_addr(|a| a.saturating_add(16)), BadFree::Interior),
        ("header", at(p.addr().get() - 8), BadFree::Interior),
        ("header -16", at(p.addr().get() - 16), BadFree::Interior),
        ("chunk base", at(chunk), BadFree::Interior),
        ("chunk +16", at(chunk + 16), BadFree::Interior),
        ("END sentinel", at(chunk + chunk_bytes - 8), BadFree::Interior),
        ("END sentinel +8 (aligned)", at(chunk + chunk_bytes - 16), BadFree::Interior),
        ("other heap", theirs, BadFree::Foreign),
        ("system Box", NonNull::from(&boxed[0]), BadFree::Foreign),
        ("stack", stack, BadFree::Foreign),
        ("dangling 16", NonNull::<u128>::dangling().cast(), BadFree::Foreign),
        ("far away", at(1 << 50), BadFree::Foreign),
        ("top of the address space", at(usize::MAX & !15), BadFree::Foreign),
    ];
    let before = h.stats();
    for (what, bad, kind) in cases {
        assert_eq!(h.block_of(bad.as_ptr()), None, "{name}: block_of({what} {bad:p})");
        // SAFETY: deliberately bad input: the free by address refuses it without reading it.
        let got = unsafe { h.free(bad) };
        // The END sentinel's last free block may make "-16" the payload of a free block.
        let ok = got == Err(kind) || (what.starts_with("END") && got == Err(BadFree::NotLive));
        assert!(ok, "{name}: free({what} {bad:p}) = {got:?}, expected {kind:?}");
        assert_eq!(h.stats(), before, "{name}: refused free of {what} changed the heap");
        check(h);
    }
    assert_eq!(h.block_of(ptr::null()), None, "{name}: null");
    // The layout-taking calls refuse the same pointers (debug builds panic after refusing).
    for (what, bad) in [("freed", q), ("interior", p.map_addr(|a| a.saturating_add(16))), ("foreign", theirs)]
    {
        // SAFETY: deliberately bad input, refused by the live bit before anything is read.
        let panicked = panics(|| unsafe { h.dealloc(bad.as_ptr(), l) });
        assert_eq!(panicked, cfg!(debug_assertions), "{name}: dealloc of {what}");
        // SAFETY: as above: refused, so the realloc returns null.
        let panicked = panics(|| assert!(unsafe { h.realloc(bad.as_ptr(), l, 400) }.is_null()));
        assert_eq!(panicked, cfg!(debug_assertions), "{name}: realloc of {what}");
        assert_eq!(h.stats(), before, "{name}: refused dealloc of {what} changed the heap");
        check(h);
    }
    // A good free by address returns the usable size and counts it.
    // SAFETY: live block with its layout.
    let usable = unsafe { h.usable_size(p, l) };
    // SAFETY: `p` is live; given up here.
    assert_eq!(unsafe { h.free(p) }, Ok(usable), "{name}");
    assert_eq!(h.stats().live_bytes, before.live_bytes - usable, "{name}: live_bytes after free");
    // SAFETY: `p` is freed already: a double free, refused.
    assert_eq!(unsafe { h.free(p) }, Err(BadFree::NotLive), "{name}: double free");
    check(h);
    // Nothing is handed out twice: many allocations after the double frees are disjoint.
    let mut got: Vec<NonNull<u8>> =
        (0..300).map(|i| h.alloc_layout(layout(1 + (i * 37) % 600, 8)).unwrap()).collect();
    got.extend([guard, aligned]);
    let spans: Vec<(usize, usize)> =
        got.iter().map(|b| (b.addr().get(), h.block_of(b.as_ptr()).unwrap().usable)).collect();
    assert_disjoint(name, &spans);
    check(h);
    for b in got {
        // SAFETY: live blocks of this heap, each freed once.
        unsafe { h.free(b) }.unwrap();
    }
    // SAFETY: live block of `other`.
    unsafe { other.free(theirs) }.unwrap();
    check(h);
    assert_eq!((h.stats().live_bytes, h.stats().live_objects), (0, 0), "{name}");
}

/// Random alloc / dealloc with layout / free by address / realloc against a model, with
/// `block_of` checked for every live block and every freed address after every step.
fn random_by_address<S: Strategy, P: PageSource>(h: &Heap<S, P>, seed: u64, ops: usize) {
    let name = h.strategy().name();
    let mut rng = Rng::seeded(seed);
    // start -> (layout, fill byte)
    let mut live: BTreeMap<usize, (NonNull<u8>, Layout, u8)> = BTreeMap::new();
    let mut freed: Vec<NonNull<u8>> = Vec::new();
    for i in 0..ops {
        let pick =
            |rng: &mut Rng, live: &BTreeMap<usize, _>| *live.keys().nth(rng.below(live.len())).unwrap();
        match rng.below(10) {
            0..=4 => {
                let size = if rng.below(8) == 0 { 1 + rng.below(20_000) } else { 1 + rng.below(300) };
                let align = if rng.below(10) == 0 { 1 << (4 + rng.below(8)) } else { 8 };
                let l = layout(size, align);
                let Some(p) = h.alloc_layout(l) else { continue };
                let fill = (i as u8) | 1;
                // SAFETY: fresh block of `size` bytes.
                unsafe { ptr::write_bytes(p.as_ptr(), fill, size) };
                assert!(
                    live.insert(p.addr().get(), (p, l, fill)).is_none(),
                    "{name}: {p:p} handed out twice"
                );
            }
            5..=6 if !live.is_empty() => {
                let (p, l, fill) = live.remove(&pick(&mut rng, &live)).unwrap();
                // SAFETY: live block of `l.size()` bytes.
                let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), l.size()) };
                assert!(bytes.iter().all(|&b| b == fill), "{name}: op {i}: {p:p} lost its contents");
                if rng.below(2) == 0 {
                    // SAFETY: live block with its layout.
                    let usable = unsafe { h.usable_size(p, l) };
                    // SAFETY: live block, given up here.
                    assert_eq!(unsafe { h.free(p) }, Ok(usable), "{name}: op {i}");
                } else {
                    // SAFETY: live block with its layout.
                    unsafe { h.dealloc(p.as_ptr(), l) };
                }
                freed.push(p);
            }
            7 if !freed.is_empty() => {
                // A double free of a block freed earlier: refused unless it is live again.
                let p = freed[rng.below(freed.len())];
                if !live.contains_key(&p.addr().get()) {
                    // SAFETY: not live: refused, nothing read.
                    let got = unsafe { h.free(p) };
                    assert!(got.is_err(), "{name}: op {i}: double free of {p:p} accepted");
                }
            }
            8..=9 if !live.is_empty() => {
                let (p, l, fill) = live.remove(&pick(&mut rng, &live)).unwrap();
                let max = if rng.below(4) == 0 { 20_000 } else { 600 };
                let new_size = 1 + rng.below(max);
                // SAFETY: live block with its layout; non-zero size.
                let q = unsafe { h.realloc(p.as_ptr(), l, new_size) };
                match NonNull::new(q) {
                    Some(q) => {
                        let keep = l.size().min(new_size);
                        // SAFETY: the realloc kept `keep` bytes.
                        let s = unsafe { core::slice::from_raw_parts(q.as_ptr(), keep) };
                        assert!(s.iter().all(|&b| b == fill), "{name}: realloc lost contents");
                        // SAFETY: live block of `new_size` bytes.
                        unsafe { ptr::write_bytes(q.as_ptr(), fill, new_size) };
                        if q != p {
                            freed.push(p);
                        }
                        live.insert(q.addr().get(), (q, layout(new_size, l.align()), fill));
                    }
                    None => {
                        live.insert(p.addr().get(), (p, l, fill));
                    }
                }
            }
            _ => {}
        }
        check(h);
        let mut usable_sum = 0;
        for (&a, &(p, l, _)) in &live {
            let info =
                h.block_of(p.as_ptr()).unwrap_or_else(|| panic!("{name}: op {i}: live {a:#x} not found"));
            // SAFETY: live block with its layout.
            let usable = unsafe { h.usable_size(p, l) };
            assert_eq!((info.start, info.usable), (a, usable), "{name}: op {i}");
            assert!(info.align >= l.align().min(4096), "{name}: op {i}: {info:?} for {l:?}");
            assert_eq!(h.block_of(p.as_ptr().wrapping_add(16)), None, "{name}: interior");
            usable_sum += usable;
        }
        for p in &freed {
            let is_live = live.contains_key(&p.addr().get());
            assert_eq!(h.block_of(p.as_ptr()).is_some(), is_live, "{name}: op {i}: freed {p:p}");
        }
        freed.retain(|p| !live.contains_key(&p.addr().get()));
        freed.truncate(200);
        let st = h.stats();
        assert_eq!((st.live_bytes, st.live_objects), (usable_sum, live.len()), "{name}: op {i}");
    }
    for (_, (p, _, _)) in live {
        // SAFETY: live block, freed once.
        unsafe { h.free(p) }.unwrap();
    }
    check(h);
    assert_eq!(h.stats().live_objects, 0);
}

/// `release_all` over `Tracked<Mmap>`: every page back to None, every count 0, and the heap
/// works again afterwards (twice).
fn release_all_tracked<S: Strategy + ConstInit>() {
    let h: Heap<S, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let name = h.strategy().name();
    for round in 0..3 {
        let mut rng = Rng::seeded(round);
        let mut held = Vec::new();
        for i in 0..2000 {
            let l = layout(1 + rng.below(if i % 50 == 0 { 300_000 } else { 2000 }), 1 << rng.below(7));
            let p = h.alloc_layout(l).unwrap();
            if rng.below(3) == 0 {
                // SAFETY: live block with its layout.
                unsafe { h.dealloc(p.as_ptr(), l) };
            } else {
                held.push(p);
            }
        }
        check(&h);
        assert!(h.source().counts().ready > 0);
        // SAFETY: no block is used after the call; single thread.
        unsafe { h.release_all() };
        let c = h.source().counts();
        assert_eq!((c.ready, c.owned(), c.illegal), (0, 0, 0), "{name}: round {round}: {c:?}");
        for p in &held {
            assert_eq!(h.source().state_of(p.addr().get()), State::None, "{name}: {p:p} still owned");
            assert_eq!(h.block_of(p.as_ptr()), None, "{name}: released block still found");
        }
        let s = h.stats();
        assert_eq!(
            (s.live_bytes, s.live_objects, s.committed_bytes, s.reserved_bytes),
            (0, 0, 0, 0),
            "{name}"
        );
        check(&h);
    }
}

/// `release_all` over `Fixed`: the whole region is free again and the heap refills it.
fn release_all_fixed<S: Strategy + ConstInit>() {
    let (_r, src) = fixed(4 << 20);
    let cap = src.capacity();
    let h: Heap<S, Fixed> = Heap::with_source(src);
    let name = h.strategy().name();
    for round in 0..3 {
        let l = layout(1000 + round * 100, 16);
        let mut n = 0;
        while h.alloc_layout(l).is_some() {
            n += 1;
        }
        assert!(n * 1000 > cap / 2, "{name}: round {round}: only {n} blocks");
        check(&h);
        // SAFETY: no block is used after the call; single thread.
        unsafe { h.release_all() };
        assert_eq!(h.source().available(), cap, "{name}: round {round}: region not all free");
        assert!(h.source().check().is_ok(), "{name}: {:?}", h.source().check());
        check(&h);
    }
}

macro_rules! address_tests {
    ($($m:ident: $s:ty;)*) => {$(
        mod $m {
            use super::*;
            #[test]
            fn bad_pointers_mmap() {
                bad_pointers(&Heap::<$s, Mmap>::new());
            }
            #[test]
            fn bad_pointers_fixed() {
                let (_r, src) = fixed(2 << 20);
                bad_pointers(&Heap::<$s, Fixed>::with_source(src));
            }
            #[test]
            fn random_by_address_mmap() {
                random_by_address(&Heap::<$s, Mmap>::new(), 1, 1500);
            }
            #[test]
            fn random_by_address_fixed() {
                let (_r, src) = fixed(4 << 20);
                random_by_address(&Heap::<$s, Fixed>::with_source(src), 2, 1500);
            }
            #[test]
            fn release_all_tracked_mmap() {
                release_all_tracked::<$s>();
            }
            #[test]
            fn release_all_fixed_reuses_the_region() {
                release_all_fixed::<$s>();
            }
        }
    )*};
}

address_tests! {
    first_regions: FirstFit;
    first_tree: FirstFit<AddrTree>;
    first_linear: FirstFit<Linear>;
    next_regions: NextFit;
    next_tree: NextFit<AddrTree>;
    best_bins: BestFit;
    best_tree: BestFit<SizeTree>;
    best_linear: BestFit<Linear>;
    segregated: SegregatedFit;
}

/// Small enough for Miri: the bad pointers and a short random run over `Fixed`.
#[test]
fn miri_address_contract_fixed() {
    let (_r, src) = fixed(1 << 20);
    bad_pointers(&Heap::<FirstFit<AddrTree>, Fixed>::with_source(src));
    let (_r, src) = fixed(1 << 20);
    random_by_address(&Heap::<SegregatedFit, Fixed>::with_source(src), 3, 60);
    let (_r, src) = fixed(1 << 20);
    random_by_address(&Heap::<BestFit<SizeTree>, Fixed>::with_source(src), 4, 60);
}

/// A growth whose map memory the source refuses fails cleanly: null, nothing held that the
/// heap does not account for, and the heap works once the source heals.
#[test]
fn refused_map_memory_fails_the_allocation() {
    use crate::source::Failing;
    for n in 0..6 {
        let h: Heap<FirstFit, Tracked<Failing<Mmap>>> = Heap::with_source(Tracked::new(Failing::new(Mmap)));
        // Two chunks far apart in the address space are likely; the map must cover both.
        let mut held = Vec::new();
        h.source().inner().fail_after_calls(n);
        for _ in 0..40 {
            match h.alloc_layout(layout(300_000, 8)) {
                Some(p) => held.push(p),
                None => break,
            }
        }
        check(&h);
        let c = h.source().counts();
        assert_eq!(c.ready, h.stats().committed_bytes, "fail after {n}: the heap accounts for all it holds");
        h.source().inner().heal();
        held.push(h.alloc_layout(layout(300_000, 8)).unwrap());
        check(&h);
        for p in held {
            assert!(h.block_of(p.as_ptr()).is_some());
        }
    }
}
