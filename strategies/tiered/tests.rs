//! Unit tests of the tiered strategy's internals (the model-based harness and the
//! multi-thread tests live in tests/).

extern crate std;

use core::alloc::Layout;
use core::ptr::NonNull;
use std::vec::Vec;

use crate::{Heap, Mmap, Tracked};

use super::Tiered;

fn fill(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        // SAFETY: test blocks are valid for `n` bytes.
        unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
    }
}

fn verify(p: *const u8, n: usize, seed: u8) {
    for i in 0..n {
        // SAFETY: test blocks are valid for `n` bytes.
        assert_eq!(unsafe { p.add(i).read() }, seed.wrapping_add(i as u8), "byte {i} of {p:?}");
    }
}

/// Frees each of `ptrs`.
///
/// # Safety
/// `ptrs` are distinct live blocks of `heap`, allocated with layout `l`.
unsafe fn free_each<P: crate::PageSource>(heap: &Heap<Tiered, P>, ptrs: &[*mut u8], l: Layout) {
    for &p in ptrs {
        // SAFETY: the caller's guarantee.
        unsafe { core::alloc::GlobalAlloc::dealloc(heap, p, l) };
    }
}

/// Blocks handed to another thread in a test (raw pointers are neither `Send` nor `Sync`).
struct Blocks(Vec<*mut u8>);
// SAFETY: the blocks are plain memory of a heap that every thread may use; the tests hand
// each block to one thread at a time.
unsafe impl Sync for Blocks {}
// SAFETY: the blocks are plain heap memory, tied to no thread: moving the list moves no
// thread-bound data.
unsafe impl Send for Blocks {}

#[test]
fn every_class_and_large_round_trip() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let mut live = Vec::new();
    let sizes = [1usize, 3, 8, 15, 16, 17, 24, 100, 1000, 1024, 4000, 8192, 32768, 32769, 100_000, 1 << 20];
    for (k, &size) in sizes.iter().enumerate() {
        for align in [1usize, 8, 16, 64, 4096, 8192, 16384, 1 << 20] {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = heap.alloc_layout(l).unwrap().as_ptr();
            assert_eq!(p.addr() % align, 0, "size {size} align {align}");
            fill(p, size, k as u8);
            live.push((p, l, k as u8));
        }
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, live.len());
    for &(p, l, seed) in &live {
        verify(p, l.size(), seed);
        // SAFETY: live blocks of this heap.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    let st = heap.stats();
    assert_eq!((st.live_bytes, st.live_objects), (0, 0));
}

/// Requests under 16 B take whole objects of the 8 B and 16 B classes (there is no tiny
/// allocator: see "Small requests" in the module docs), and alignment 16 (C's `malloc`)
/// takes the 16 B class for any size up to 16.
#[test]
fn requests_under_16_bytes_take_whole_small_objects() {
    let heap: Heap<Tiered> = Heap::new();
    for (size, align, usable) in [(1usize, 1usize, 8usize), (4, 4, 8), (8, 8, 8), (9, 1, 16), (15, 8, 16)] {
        let l = Layout::from_size_align(size, align).unwrap();
        let a = heap.alloc_layout(l).unwrap().as_ptr();
        let b = heap.alloc_layout(l).unwrap().as_ptr();
        assert!(a.addr().abs_diff(b.addr()) >= usable, "{size} B: {a:p} and {b:p} overlap");
        assert_eq!(heap.block_of(a).unwrap().usable, usable, "{size} B align {align}");
        // SAFETY: live blocks of this heap, freed once.
        unsafe { free_each(&heap, &[a, b], l) };
    }
    for size in [1usize, 7, 8, 15, 16] {
        let l = Layout::from_size_align(size, 16).unwrap();
        let p = heap.alloc_layout(l).unwrap().as_ptr();
        assert_eq!(p.addr() % 16, 0, "malloc({size}) misaligned");
        assert_eq!(heap.block_of(p).unwrap().usable, 16, "malloc({size})");
        // SAFETY: a live block of this heap, freed once.
        unsafe { free_each(&heap, &[p], l) };
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

#[test]
fn realloc_keeps_contents_across_classes() {
    let heap: Heap<Tiered> = Heap::new();
    let mut l = Layout::from_size_align(5, 1).unwrap();
    let mut p = heap.alloc_layout(l).unwrap().as_ptr();
    fill(p, 5, 9);
    for new in [12usize, 40, 1000, 40_000, 3_000_000, 700, 3] {
        // SAFETY: `p` is live for `l`.
        p = unsafe { core::alloc::GlobalAlloc::realloc(&heap, p, l, new) };
        assert!(!p.is_null());
        verify(p, l.size().min(new).min(5), 9);
        l = Layout::from_size_align(new, 1).unwrap();
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
    }
    // SAFETY: live block.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
}

/// `realloc` with an alignment up to 8 and small sizes reads the block's class off the
/// layout: the block stays exactly when the new size has the old size's class, and moves
/// otherwise. For blocks allocated with every size and alignment, and then named by every
/// layout the contract allows (a size from the requested one up to the usable size, an
/// alignment up to `BlockInfo::align`, 8 at most here), every new size gets a block that
/// holds it (`block_of`), with the contents kept, and the heap stays consistent.
#[test]
fn realloc_reads_the_class_off_the_layout() {
    use super::sizeclass::{MAX_SMALL_BYTES, class_of};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let sizes = [1usize, 8, 9, 24, 33, 100, 112, 1000, 8192, 9000, 24_576, 30_000, 32_768, 40_000];
    let news = [1usize, 7, 16, 25, 50, 113, 600, 4096, 8193, 16_384, 32_768, 32_769, 70_000];
    let mut seed = 0u8;
    for &size in &sizes {
        for align in [1usize, 8, 16, 64, 16_384, 65_536] {
            for &new in &news {
                seed = seed.wrapping_add(1);
                let l = Layout::from_size_align(size, align).unwrap();
                let p = heap.alloc_layout(l).unwrap().as_ptr();
                fill(p, size, seed);
                let info = heap.block_of(p).unwrap();
                // SAFETY: `p` is live for `l`.
                unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
                // The layouts the caller may name: the requested size or the usable one,
                // with alignment 8 if the block has it, else its own; each on a fresh block.
                for named in [size, info.usable] {
                    let a = if info.align >= 8 { 8 } else { align };
                    let p = heap.alloc_layout(l).unwrap().as_ptr();
                    fill(p, size, seed);
                    let named_l = Layout::from_size_align(named, a).unwrap();
                    // SAFETY: `p` is live, and `named_l` a layout the contract allows for it.
                    let q = unsafe { core::alloc::GlobalAlloc::realloc(&heap, p, named_l, new) };
                    assert!(!q.is_null());
                    verify(q, size.min(new), seed);
                    let got = heap.block_of(q).unwrap();
                    assert!(got.usable >= new, "{size}/{align} named {named}: {new} into {}", got.usable);
                    if a <= 8 && named <= MAX_SMALL_BYTES && new <= MAX_SMALL_BYTES {
                        let stays = class_of(new) == class_of(named);
                        assert_eq!(q == p, stays, "{size}/{align} named {named} -> {new}");
                    }
                    // SAFETY: `q` is live for a layout of `new` bytes and alignment `a`.
                    unsafe {
                        core::alloc::GlobalAlloc::dealloc(&heap, q, Layout::from_size_align(new, a).unwrap())
                    };
                }
                // SAFETY: no other thread uses the heap.
                unsafe { heap.check() }.unwrap();
            }
        }
    }
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    let st = heap.stats();
    assert_eq!((st.live_bytes, st.live_objects), (0, 0));
}

/// The shared cache (used under its lock during TLS registration, after a thread's cache is
/// gone, and without `std`): objects from it are freed by a thread with its own cache, and
/// the other way round.
#[test]
fn shared_cache_path_mixes_with_thread_caches() {
    let heap: Heap<Tiered> = Heap::new();
    let l = Layout::from_size_align(48, 8).unwrap();
    let five = Layout::from_size_align(5, 1).unwrap();
    // Make the root exist, through the thread's own cache.
    let own: Vec<*mut u8> = (0..500).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let root = heap.strategy().existing_root().unwrap();
    let src = heap.source();
    let shared: Vec<(core::ptr::NonNull<u8>, Layout)> = (0..500)
        .flat_map(|i| {
            let a =
                root.with_shared_cache(src, 48, |c| c.alloc_small(root, src, super::span_class(5))).unwrap();
            let b =
                root.with_shared_cache(src, 8, |c| c.alloc_small(root, src, super::span_class(1))).unwrap();
            fill(a.as_ptr(), 48, i as u8);
            [(a, l), (b, five)]
        })
        .collect();
    // SAFETY: live blocks of this heap.
    unsafe { free_each(&heap, &own, l) };
    for (i, &(p, lay)) in shared.iter().enumerate() {
        if lay.size() == 48 {
            verify(p.as_ptr(), 48, (i / 2) as u8);
        }
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), lay) };
    }
    heap.trim();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// Over a caller's region: a small region serves from a partial arena when it happens to
/// hold an arena-aligned address with room after it (where the linker put it decides), and
/// otherwise fails cleanly, every time; a region large enough works, and runs out cleanly.
#[test]
fn fixed_regions_fail_cleanly_or_work() {
    use crate::{Fixed, Region};
    static SMALL: Region<{ 8 << 20 }> = Region::new();
    static BIG: Region<{ 192 << 20 }> = Region::new();
    let small: Heap<Tiered, Fixed> = Heap::with_source(Fixed::from_region(&SMALL));
    let l64 = Layout::from_size_align(64, 8).unwrap();
    let first = small.alloc_layout(l64);
    for i in 0..3u8 {
        match small.alloc_layout(l64) {
            Some(p) => {
                assert!(first.is_some(), "a small region failed, then served");
                fill(p.as_ptr(), 64, i);
                verify(p.as_ptr(), 64, i);
                // SAFETY: just allocated with this layout, freed once.
                unsafe { core::alloc::GlobalAlloc::dealloc(&small, p.as_ptr(), l64) };
            }
            None => assert!(first.is_none(), "a small region served, then failed"),
        }
    }
    if let Some(p) = first {
        // SAFETY: allocated above with this layout, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&small, p.as_ptr(), l64) };
    }
    // SAFETY: no other thread uses the heap.
    unsafe { small.check() }.unwrap();
    let big: Heap<Tiered, Fixed> = Heap::with_source(Fixed::from_region(&BIG));
    let l = Layout::from_size_align(1 << 20, 8).unwrap();
    let mut got = Vec::new();
    while let Some(p) = big.alloc_layout(l) {
        fill(p.as_ptr(), 64, got.len() as u8);
        got.push(p);
        assert!(got.len() < 200, "a 192 MiB region gave more than it holds");
    }
    assert!(got.len() >= 32, "only {} MiB from a 192 MiB region", got.len());
    let small_obj = Layout::from_size_align(100, 8).unwrap();
    let _ = big.alloc_layout(small_obj).map(|p| {
        // SAFETY: just allocated.
        unsafe { core::alloc::GlobalAlloc::dealloc(&big, p.as_ptr(), small_obj) }
    });
    for (i, p) in got.into_iter().enumerate() {
        verify(p.as_ptr(), 64, i as u8);
        // SAFETY: live block.
        unsafe { core::alloc::GlobalAlloc::dealloc(&big, p.as_ptr(), l) };
    }
    big.strategy().release_thread_cache();
    // SAFETY: single thread.
    unsafe { big.check() }.unwrap();
}

/// The background scavenger's candidates skip dense huge-page regions (more than a quarter
/// of their pages in use) and come from sparse and empty ones; `trim` takes the rest.
#[test]
fn scavenger_skips_dense_huge_page_regions() {
    use super::scavenger::{REGION_DENSE_PAGES, REGION_PAGES, SCAVENGE_RUN_PAGES};
    use super::sizeclass::PAGE_BYTES;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let pages = |n: usize| Layout::from_size_align(n * PAGE_BYTES, 8).unwrap();
    // Region 0: a live half (dense) and a freed half; region 1: freed whole; region 2: a
    // live span of 8 pages (sparse) and the rest freed.
    let (half, sparse) = (REGION_PAGES / 2, 8);
    assert!(half > REGION_DENSE_PAGES && sparse <= REGION_DENSE_PAGES);
    let layouts =
        [pages(half), pages(half), pages(REGION_PAGES), pages(sparse), pages(REGION_PAGES - sparse)];
    let ps: Vec<*mut u8> = layouts.iter().map(|&l| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let base = ps[0].addr();
    assert_eq!(base % (REGION_PAGES * PAGE_BYTES), 0, "a fresh arena's first run starts a region");
    let offsets: Vec<usize> = ps.iter().map(|p| (p.addr() - base) / PAGE_BYTES).collect();
    assert_eq!(offsets, [0, half, REGION_PAGES, 2 * REGION_PAGES, 2 * REGION_PAGES + sparse]);
    for i in [1, 2, 4] {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, ps[i], layouts[i]) };
    }
    let root = heap.strategy().existing_root().unwrap();
    let src = heap.source();
    let mut below = usize::MAX;
    loop {
        let Some(r) = root.heap.lock.lock().take_scavenge_run(below, SCAVENGE_RUN_PAGES, true) else { break };
        let first = (r.addr() - base) / PAGE_BYTES;
        assert!(first >= REGION_PAGES, "a run of the dense region offered: pages {first}..+{}", r.npages);
        // SAFETY: the in-flight run is free, Ready and mapped, and nothing else touches it.
        let ok = unsafe { crate::source::PageSource::unused(src, r.base, r.npages * PAGE_BYTES) }.is_ok();
        root.heap.lock.lock().finish_scavenge_run(r, ok);
        assert!(ok);
        below = r.addr();
    }
    // What stays Ready is the dense region's freed half, and nothing else.
    assert_eq!(root.heap.lock.lock().free_ready_pages, half);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert!(heap.trim() >= half * PAGE_BYTES);
    assert_eq!(root.heap.lock.lock().free_ready_pages, 0);
    for i in [0, 3] {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, ps[i], layouts[i]) };
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// The scavenger's in-flight run (taken out of the page allocator while `unused` runs with
/// the heap lock released) is never handed out, and the checker accepts the heap meanwhile.
#[test]
fn scavenger_in_flight_run_is_not_allocated() {
    use super::scavenger::SCAVENGE_RUN_PAGES;
    use super::sizeclass::PAGE_BYTES;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let big = Layout::from_size_align(SCAVENGE_RUN_PAGES * PAGE_BYTES, 8).unwrap();
    let p = heap.alloc_layout(big).unwrap().as_ptr();
    // SAFETY: a live block of this heap, freed once.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, big) };
    let root = heap.strategy().existing_root().unwrap();
    let run = root.heap.lock.lock().take_scavenge_run(usize::MAX, SCAVENGE_RUN_PAGES, true).unwrap();
    assert!(run.npages > 0 && run.npages <= SCAVENGE_RUN_PAGES);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    // Allocations avoid the run while it is in flight.
    let mut live = Vec::new();
    for _ in 0..4 {
        let q = heap.alloc_layout(big).unwrap().as_ptr();
        let a = q.addr();
        assert!(
            a + big.size() <= run.addr() || a >= run.addr() + run.npages * PAGE_BYTES,
            "{q:p} in {run:?}"
        );
        live.push(q);
    }
    root.heap.lock.lock().finish_scavenge_run(run, false);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for q in live {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, q, big) };
    }
    assert!(heap.trim() >= big.size());
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// Pages held by the calling thread's cache for `heap` (current and owned spans), and the
/// most pages of wholly empty owned spans in one class.
fn cache_holdings(heap: &Heap<Tiered, Tracked<Mmap>>) -> (usize, usize) {
    use super::mcache::EMPTY_SPAN;
    use super::sizeclass::SPAN_CLASS_COUNT;
    use super::tls;
    let root = heap.strategy().existing_root().unwrap();
    // SAFETY: this thread's cache, used by no other thread.
    let cache = unsafe { &*tls::lookup(root.key) };
    let (mut pages, mut most_empty) = (0, 0);
    for spc in 0..SPAN_CLASS_COUNT {
        let cur = cache.alloc[spc].get();
        if !core::ptr::eq(cur, &EMPTY_SPAN) {
            // SAFETY: a current span is live.
            pages += unsafe { &*cur }.npages.get();
        }
        let mut empty = 0;
        for s in cache.owned[spc].iter() {
            pages += s.npages.get();
            if s.alloc_count.get() == 0 {
                empty += s.npages.get();
            }
        }
        most_empty = most_empty.max(empty);
    }
    (pages, most_empty)
}

/// A thread that frees everything it allocated (owner frees, no trim, no exit) keeps, per
/// class it used, its current span, at most `EMPTY_OWNED_PAGES` (or one span) of wholly
/// empty owned spans, and the spans that the objects on its free stack keep from
/// emptying (one each at most); the other emptied spans go back to mcentral and the heap.
/// Before, it kept up to `OWNED_PAGES` of empty owned spans per class.
#[test]
fn owner_frees_keep_a_bounded_number_of_empty_owned_spans() {
    use super::mcache::EMPTY_OWNED_PAGES;
    use super::sizeclass::{class_for, class_pages};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let sizes = [16usize, 48, 128, 512, 1024, 4096];
    let mut live = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let l = Layout::from_size_align(size, 8).unwrap();
        for _ in 0..(4 << 20) / size {
            let p = heap.alloc_layout(l).unwrap().as_ptr();
            fill(p, 8, k as u8);
            live.push((p, l, k as u8));
        }
    }
    let (held_before, _) = cache_holdings(&heap);
    for (p, l, k) in live {
        verify(p, 8, k);
        // SAFETY: a live block of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
    let (held, most_empty) = cache_holdings(&heap);
    let empty_bound = |size| class_pages(class_for(size, 8).unwrap()).max(EMPTY_OWNED_PAGES);
    let root = heap.strategy().existing_root().unwrap();
    // SAFETY: this thread's cache, used by no other thread.
    let cache = unsafe { &*super::tls::lookup(root.key) };
    let stacked = |size| {
        let class = class_for(size, 8).unwrap();
        cache.free[class].len() * class_pages(class)
    };
    let bound: usize =
        sizes.iter().map(|&s| class_pages(class_for(s, 8).unwrap()) + empty_bound(s) + stacked(s)).sum();
    assert!(most_empty <= empty_bound(4096), "{most_empty} pages of empty owned spans in one class");
    assert!(
        held <= bound,
        "the cache holds {held} pages after freeing everything (bound {bound}, before {held_before})"
    );
    assert_eq!(heap.stats().live_objects, 0);
    heap.strategy().release_thread_cache();
}

/// The decay step (`MCache::decay_empty`): after an owner freed everything, each class
/// keeps at most `DECAY_KEEP_SPANS` wholly empty owned spans once a bounded step has run,
/// whether the step is called directly or paid for by the next `OP_STEP_ALLOCS`
/// fast-path allocations; the spans it lets go reach the page heap (or their mcentral's
/// spare), and the heap checks out.
#[test]
fn decay_step_leaves_one_empty_owned_span_per_class() {
    use super::mcache::DECAY_KEEP_SPANS;
    use super::scavenger::OP_STEP_ALLOCS;
    use super::sizeclass::{class_for, class_pages};
    for direct in [true, false] {
        let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
        let sizes = [16usize, 128, 1024, 4096];
        let mut live = Vec::new();
        for &size in &sizes {
            let l = Layout::from_size_align(size, 8).unwrap();
            for _ in 0..(2 << 20) / size {
                live.push((heap.alloc_layout(l).unwrap().as_ptr(), l));
            }
        }
        for (p, l) in live {
            // SAFETY: a live block of this heap, freed once.
            unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
        }
        let (_, most_before) = cache_holdings(&heap);
        let root = heap.strategy().existing_root().unwrap();
        if direct {
            // SAFETY: this thread's cache, used by no other thread.
            let cache = unsafe { &*super::tls::lookup(root.key) };
            cache.decay_empty(root);
        } else {
            let l = Layout::from_size_align(16, 8).unwrap();
            for _ in 0..OP_STEP_ALLOCS {
                let p = heap.alloc_layout(l).unwrap().as_ptr();
                // SAFETY: a live block of this heap, freed once.
                unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
            }
        }
        let (_, most_empty) = cache_holdings(&heap);
        let bound =
            sizes.iter().map(|&s| class_pages(class_for(s, 8).unwrap())).max().unwrap() * DECAY_KEEP_SPANS;
        assert!(most_before > bound, "the test frees too little to decay ({most_before} pages)");
        assert!(most_empty <= bound, "{most_empty} pages of empty owned spans in one class after a step");
        // SAFETY: single thread.
        unsafe { heap.check() }.unwrap();
        heap.strategy().release_thread_cache();
    }
}

/// The scavenger's hold: pages freed below the peak stay Ready through steps in which the
/// heap grows, and go back after `HOLD_STEPS` steps in which it does not.
#[test]
fn scavenger_holds_freed_pages_for_hold_steps() {
    use super::scavenger::{
        FREE_STEP_BYTES, Goal, HOLD_STEPS, RETAIN_EXTRA_PERCENT, RETAIN_MIN_PAGES, SCAVENGE_STEP_PAGES,
    };
    use super::sizeclass::PAGE_BYTES;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(2 << 20, 8).unwrap();
    let mut live: Vec<_> = (0..32).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    // 56 of the 64 MiB freed: large frees run one step per `FREE_STEP_BYTES` (4 MiB) freed,
    // 14 steps here, in which the heap did not grow.
    for p in live.drain(4..) {
        // SAFETY: a live block of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    let root = heap.strategy().existing_root().unwrap();
    let src = heap.source();
    let ready = |root: &super::Root| root.heap.lock.lock().free_ready_pages * PAGE_BYTES;
    assert!(ready(root) >= 32 << 20, "freed pages released during the hold: {}", ready(root));
    let left = root.heap.lock.lock().hold_steps_left;
    assert_eq!(left, HOLD_STEPS - (56 << 20) / FREE_STEP_BYTES);
    // A step after the heap grew (the one a large allocation runs) does not age the hold.
    let q = heap.alloc_layout(l).unwrap().as_ptr();
    assert_eq!(root.heap.lock.lock().hold_steps_left, left);
    // SAFETY: a live block of this heap, freed once (2 MiB: no step of its own).
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, q, l) };
    assert_eq!(root.heap.lock.lock().hold_steps_left, left);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for _ in 0..left {
        assert!(ready(root) >= 32 << 20);
        root.heap.scavenge(src, SCAVENGE_STEP_PAGES, Goal::Target, false);
    }
    // The hold has ended, and its last step began to give pages back (at most 8 MiB a
    // step); a few more bring retained memory down to the target (`RETAIN_EXTRA_PERCENT` of
    // the 8 MiB in use, at least 4 MiB).
    assert_eq!(root.heap.lock.lock().hold_steps_left, 0);
    assert!(ready(root) < 56 << 20);
    for _ in 0..8 {
        root.heap.scavenge(src, SCAVENGE_STEP_PAGES, Goal::Target, false);
    }
    let target = ((8 << 20) * RETAIN_EXTRA_PERCENT / 100).max(RETAIN_MIN_PAGES * PAGE_BYTES);
    assert!(target < 32 << 20);
    assert!(ready(root) <= target, "still {} bytes Ready", ready(root));
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for p in live {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
}

/// The free stacks (freestack.rs): the last objects a thread freed of a class
/// are the next it hands out of that class, newest first, up to the stack's room; past it
/// frees go to the spans, and nothing is lost or handed out twice.
#[test]
fn free_stacks_hand_back_the_last_freed_objects_first() {
    use super::freestack::stack_room;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(48, 8).unwrap();
    let room = stack_room(super::sizeclass::class_of(48));
    let mut live: Vec<*mut u8> = (0..room + 140).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    for (k, &p) in live.iter().enumerate() {
        fill(p, 48, k as u8);
    }
    // Free `room + 40` (more than the stack holds), newest last.
    let freed: Vec<*mut u8> = live.drain(100..140 + room).collect();
    // SAFETY: live blocks of this heap.
    unsafe { free_each(&heap, &freed, l) };
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    // The stack holds the first `room` freed (the later ones found it full): handed back
    // newest first.
    for k in (0..room).rev() {
        let p = heap.alloc_layout(l).unwrap().as_ptr();
        assert_eq!(p, freed[k], "allocation {} after the frees", room - 1 - k);
        live.push(p);
    }
    // Then from the spans: never an object that is still live.
    for _ in 0..100 {
        let p = heap.alloc_layout(l).unwrap().as_ptr();
        assert!(!live.contains(&p), "{p:p} handed out twice");
        live.push(p);
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for (k, &p) in live.iter().take(100).enumerate() {
        verify(p, 48, k as u8);
    }
    assert_eq!(heap.stats().live_objects, live.len());
    // SAFETY: live blocks of this heap.
    unsafe { free_each(&heap, &live, l) };
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// Objects of spans another thread owns do not go onto the freeing thread's stack (a stack
/// holds objects of its cache's own spans only, so that its pops may set their live bits):
/// they take the remote path, and once the owner gives its spans back a trim gives every
/// page back.
#[test]
fn free_stacks_of_an_exiting_thread_reach_their_spans() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(1000, 8).unwrap();
    let ptrs = Blocks((0..64).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect());
    let ptrs = &ptrs;
    let reused = std::thread::scope(|s| {
        s.spawn(|| {
            // A first allocation gives the thread its cache (a thread without one frees
            // through the spans).
            let small = Layout::from_size_align(24, 8).unwrap();
            let first = heap.alloc_layout(small).unwrap().as_ptr();
            // SAFETY: a live block of this heap.
            unsafe { core::alloc::GlobalAlloc::dealloc(&heap, first, small) };
            // SAFETY: live blocks of this heap, no longer used by the main thread.
            unsafe { free_each(&heap, &ptrs.0, l) };
            let q = heap.alloc_layout(l).unwrap().as_ptr();
            // SAFETY: a live block of this heap, freed once.
            unsafe { core::alloc::GlobalAlloc::dealloc(&heap, q, l) };
            q.addr()
        })
        .join()
        .unwrap()
    });
    assert!(ptrs.0.iter().all(|p| p.addr() != reused), "an object of another thread's span was stacked");
    heap.strategy().release_thread_cache();
    heap.trim();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
    let ready = heap.source().counts().ready;
    assert!(ready < 1 << 20, "{ready} bytes still Ready after every object was freed and the heap trimmed");
}

/// Frees into spans that no cache owns go on pending stacks and set the root's hint; the
/// next background step (here: a large allocation's) drains every pending stack and clears
/// the hint.
#[test]
fn background_drains_pending_frees_when_the_hint_says_so() {
    use core::sync::atomic::Ordering::Relaxed;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(1000, 8).unwrap();
    let ptrs: Vec<*mut u8> = (0..64).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    // The spans go back to the central lists without an owner.
    heap.strategy().release_thread_cache();
    let root = heap.strategy().existing_root().unwrap();
    assert!(!root.pending_hint.load(Relaxed), "hint set before any free went on a pending stack");
    assert!(root.central.iter().all(|c| c.pending.is_empty()));
    // SAFETY: live blocks of this heap, freed once.
    unsafe { free_each(&heap, &ptrs, l) };
    assert!(root.pending_hint.load(Relaxed), "frees into unowned spans did not set the hint");
    assert!(root.central.iter().any(|c| !c.pending.is_empty()), "no free went on a pending stack");
    let big = Layout::from_size_align(1 << 20, 8).unwrap();
    let p = heap.alloc_layout(big).unwrap().as_ptr();
    assert!(!root.pending_hint.load(Relaxed), "the background step left the hint set");
    assert!(root.central.iter().all(|c| c.pending.is_empty()), "the background step left pending frees");
    // SAFETY: a live block of this heap.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, big) };
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// A large object reallocated to a small size moves (a large object must never be freed
/// with a small layout, which would put it on a free stack).
#[test]
fn realloc_of_a_large_object_to_a_small_size_moves_it() {
    let heap: Heap<Tiered> = Heap::new();
    let big = Layout::from_size_align(40 << 10, 8).unwrap();
    let p = heap.alloc_layout(big).unwrap().as_ptr();
    fill(p, 30 << 10, 9);
    // SAFETY: a live block of this heap with layout `big`.
    let q = unsafe { core::alloc::GlobalAlloc::realloc(&heap, p, big, 30 << 10) };
    assert_ne!(q, p, "kept in place although it became small");
    verify(q, 30 << 10, 9);
    // SAFETY: the new block and its layout.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, q, Layout::from_size_align(30 << 10, 8).unwrap()) };
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// What the free stacks of one thread can hold at most, all classes full (the figure the
/// mcache docs quote), and the room each class has: at most `FREE_STACK_SLOTS` objects and
/// `FREE_STACK_BYTES` (but at least one object), none for large objects; the slots of a
/// fresh cache's stacks laid end to end, each stack empty.
#[test]
fn free_stacks_hold_at_most_three_quarters_of_a_mebibyte_per_thread() {
    use super::freestack::{
        FREE_SLOTS, FREE_STACK_BYTES, FREE_STACK_SLOTS, FREE_STACK_SMALL_OBJECT, FREE_STACK_SMALL_SLOTS,
        stack_room,
    };
    use super::sizeclass::{CLASS_BYTES, CLASS_COUNT};
    let mut total = 0usize;
    for (class, &size) in CLASS_BYTES.iter().enumerate() {
        let (room, size) = (stack_room(class), size as usize);
        if size == 0 {
            assert_eq!(room, 0, "class {class} (large objects) never stacks");
        } else if size <= FREE_STACK_SMALL_OBJECT {
            assert_eq!(room, FREE_STACK_SMALL_SLOTS, "class {class}");
        } else {
            assert!((1..=FREE_STACK_SLOTS).contains(&room), "class {class} has room {room}");
            assert!(room == 1 || room * size <= FREE_STACK_BYTES, "class {class}: {room} objects");
        }
        total += room * size;
    }
    std::println!("free stacks hold at most {total} bytes per thread");
    assert!(total <= 768 << 10, "{total}");
    let stacks = super::freestack::free_stacks_init();
    assert_eq!(stacks.len(), CLASS_COUNT);
    let mut next = 0;
    for (class, st) in stacks.iter().enumerate() {
        assert_eq!(
            (usize::from(st.base), st.len(), st.room()),
            (next, 0, stack_room(class)),
            "class {class}"
        );
        next += st.room();
    }
    assert_eq!(next, FREE_SLOTS);
}

/// A heap over a `Fixed` region from the global allocator: what Miri can run (it has no
/// `mmap` for `Mmap`'s reservations). Tiered reserves its 32 MiB arena index and then a
/// 64 MiB arena aligned to 64 MiB; in a region aligned to 64 MiB the root and the index take
/// the first half, the arena the second, and metadata the rest of the first half, so 128 MiB
/// holds a heap of one arena; each further 64 MiB holds one more.
struct RegionHeap {
    /// Dropped by hand in `drop`, before the region it lives over is freed (`Fixed::new`'s
    /// contract: the memory outlives the source and everything built on it).
    heap: core::mem::ManuallyDrop<Heap<Tiered, crate::Fixed>>,
    region: *mut u8,
    layout: Layout,
}

impl RegionHeap {
    /// A heap of one arena.
    fn new() -> RegionHeap {
        Self::with_arenas(1)
    }

    /// A heap of up to `arenas` arenas.
    fn with_arenas(arenas: usize) -> RegionHeap {
        let layout = Layout::from_size_align((arenas + 1) << 26, 64 << 20).unwrap();
        // SAFETY: a non-zero size.
        let region = unsafe { std::alloc::alloc(layout) };
        assert!(!region.is_null());
        // SAFETY: the region is valid for reads and writes until `drop`, and used by the
        // source alone.
        let src = unsafe { crate::Fixed::new(region, layout.size()) };
        RegionHeap { heap: core::mem::ManuallyDrop::new(Heap::with_source(src)), region, layout }
    }
}

impl Drop for RegionHeap {
    fn drop(&mut self) {
        // The calling thread's cache names the root, inside the region: give it back first.
        // Tests join every other thread that used the heap before this.
        self.heap.strategy().release_thread_cache();
        // SAFETY: `heap` is dropped once, here, and not used after.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.heap) };
        // SAFETY: allocated in `new` with this layout; the heap over it is gone and no thread
        // uses it any more.
        unsafe { std::alloc::dealloc(self.region, self.layout) };
    }
}

/// A free reads the span map through `&Arena` with no lock while the heap lock holder
/// changes the same arena's page bitmaps (here: a large allocation, in the same thread to
/// make the interleaving certain). The reader's reference must stay valid: the page heap may
/// make no `&mut Arena`. Run it under Miri (`cargo +nightly miri test --lib miri_`): when
/// `arena_of_mut` made a `&mut Arena` for the page bitmaps, that unique reborrow invalidated
/// the reader's `&Arena` (Stacked Borrows), and Miri reported its next use. Later, the large
/// object's free gives its span record back (`free_span`) while `dealloc_slow` holds a
/// `&Span` argument to it: Stacked Borrows reported that write as a protector violation
/// while the span's identity fields were plain (see "Reuse of span records" in span.rs).
#[test]
fn miri_span_map_reader_keeps_its_arena_across_page_heap_changes() {
    use super::arena::{index_entry, index_of, page_in_arena};
    use core::sync::atomic::Ordering::Relaxed;
    let rh = RegionHeap::new();
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let l = Layout::from_size_align(64, 8).unwrap();
    let p = heap.alloc_layout(l).unwrap();
    let root = heap.strategy().existing_root().unwrap();
    let addr = p.as_ptr().addr();
    // The free path's view of the arena (`span_of_live`), held across the change below.
    // SAFETY: `p` is a live block, so its arena is registered in the index (the root's).
    let arena = unsafe { &*index_entry(root.index, index_of(addr)).unwrap().load(Relaxed) };
    let span = arena.span_at(page_in_arena(addr));
    assert!(!span.is_null());
    let big = Layout::from_size_align(64 << 10, 8).unwrap();
    let q = heap.alloc_layout(big).unwrap();
    assert_eq!(index_of(q.as_ptr().addr()), index_of(addr), "the large object is in the same arena");
    assert_eq!(arena.span_at(page_in_arena(addr)), span);
    assert_ne!(arena.span_at(page_in_arena(q.as_ptr().addr())), span);
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        core::alloc::GlobalAlloc::dealloc(heap, q.as_ptr(), big);
        core::alloc::GlobalAlloc::dealloc(heap, p.as_ptr(), l);
    }
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// A thread frees an object of a span that the main thread owns and keeps using (it frees
/// another object of the same bitmap word meanwhile, with no synchronisation between the
/// two). The other thread's free must read none of the owner's `Cell`s: since issue 22 it
/// reads the span's atomics (live and remote bits, `Init` fields) and takes the remote path.
/// Run it under Miri (`cargo +nightly miri test --lib miri_`): when a debug check of the free
/// read the alloc bits, Miri's data race detector reported the read against the owner's
/// write (ThreadSanitizer reports the same pair).
#[test]
fn miri_free_of_another_threads_object_reads_no_owner_state() {
    let rh = RegionHeap::new();
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let l = Layout::from_size_align(64, 8).unwrap();
    // Objects of the main thread's current span, all in bitmap word 0.
    let x = heap.alloc_layout(l).unwrap().as_ptr();
    let y = heap.alloc_layout(l).unwrap().as_ptr();
    let room = super::freestack::stack_room(super::sizeclass::class_of(64));
    let fillers: Vec<*mut u8> = (0..room).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    // Fill this thread's free stack of the class, so that its free of `y` below clears
    // `y`'s bit in the span.
    // SAFETY: live blocks of this heap, freed once.
    unsafe { free_each(heap, &fillers, l) };
    fill(x, 64, 1);
    let x = Blocks(std::vec![x]);
    let x = &x;
    std::thread::scope(|s| {
        let t = s.spawn(move || {
            // A first allocation gives the thread its own cache (its free still takes the
            // remote path: the span is the main thread's).
            let small = Layout::from_size_align(24, 8).unwrap();
            let first = heap.alloc_layout(small).unwrap().as_ptr();
            verify(x.0[0], 64, 1);
            // SAFETY: live blocks of this heap, handed to this thread, freed once.
            unsafe {
                core::alloc::GlobalAlloc::dealloc(heap, x.0[0], l);
                core::alloc::GlobalAlloc::dealloc(heap, first, small);
            }
        });
        // Meanwhile the owner frees `y`: a bit clear in the same word, no lock, no atomic.
        // SAFETY: a live block of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(heap, y, l) };
        t.join().unwrap();
    });
    heap.strategy().release_thread_cache();
    // SAFETY: every other thread has exited.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// Every path of an object under Miri's strict provenance and Stacked Borrows
/// (`-Zmiri-strict-provenance`):
/// small (from 3 B) and large objects, free stacks, the owner's frees, remote frees from another
/// thread, pending frees into unowned spans, `realloc`, trim and the checker.
#[test]
fn miri_every_path_keeps_provenance() {
    let rh = RegionHeap::new();
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let layouts = [(3usize, 1usize), (8, 8), (13, 4), (48, 8), (1000, 8), (40 << 10, 8), (100, 4096)];
    let mut blocks = Vec::new();
    for round in 0..40u8 {
        for &(size, align) in &layouts {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = heap.alloc_layout(l).unwrap().as_ptr();
            fill(p, size.min(32), round);
            blocks.push((p, l, round));
        }
    }
    // Every other block freed by another thread (remote and free-stack frees), the rest by
    // this one after it gave its spans back (pending frees into unowned spans).
    let (theirs, mine): (Vec<_>, Vec<_>) = blocks.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let their_blocks = Blocks(theirs.iter().map(|(_, (p, _, _))| *p).collect());
    let their_layouts: Vec<(Layout, u8)> = theirs.iter().map(|(_, (_, l, round))| (*l, *round)).collect();
    let (theirs, their_layouts) = (&their_blocks, &their_layouts);
    std::thread::scope(|s| {
        s.spawn(move || {
            let first = Layout::from_size_align(24, 8).unwrap();
            let f = heap.alloc_layout(first).unwrap().as_ptr();
            for (&p, &(l, round)) in theirs.0.iter().zip(their_layouts) {
                verify(p, l.size().min(32), round);
                // SAFETY: live blocks of this heap, handed to this thread, freed once.
                unsafe { core::alloc::GlobalAlloc::dealloc(heap, p, l) };
            }
            // SAFETY: `f` was allocated above on this thread for `first`, freed once.
            unsafe { core::alloc::GlobalAlloc::dealloc(heap, f, first) };
        })
        .join()
        .unwrap();
    });
    heap.strategy().release_thread_cache();
    for (_, (p, l, round)) in mine {
        verify(p, l.size().min(32), round);
        // SAFETY: live blocks of this heap, freed once.
        let q = unsafe { core::alloc::GlobalAlloc::realloc(heap, p, l, l.size() + 100) };
        assert!(!q.is_null());
        verify(q, l.size().min(32), round);
        let nl = Layout::from_size_align(l.size() + 100, l.align()).unwrap();
        // SAFETY: the block `realloc` returned, with its new layout.
        unsafe { core::alloc::GlobalAlloc::dealloc(heap, q, nl) };
    }
    heap.strategy().release_thread_cache();
    heap.trim();
    // SAFETY: every other thread has exited.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// A large object that needs more pages than one arena holds is served from one reservation
/// of the page source, never across the boundary of two reservations that happen to be
/// adjacent (see "Reservations" in pagealloc.rs). `Fixed` hands out reservations in order:
/// in a region of 4 arenas the first arena (a reservation of its own, for the first small
/// object) is followed at once by the two-arena reservation that the large object makes the
/// heap grow; the old `find` joined the first arena's free pages to the second
/// reservation's and derived the object from the first arena's base. The object is touched
/// at both ends, across the arena boundary inside its own reservation. (Not among the
/// `miri_` tests: with three arenas' pages to walk, Miri did not finish it in reasonable
/// time; the pointer it checks is the same with or without Miri, an address.)
#[test]
fn large_run_stays_in_one_reservation() {
    use super::arena::{ARENA_BYTES, ARENA_PAGES};
    use super::sizeclass::PAGE_BYTES;
    let rh = RegionHeap::with_arenas(3);
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let region = rh.region.addr();
    let l = Layout::from_size_align(64, 8).unwrap();
    let small = heap.alloc_layout(l).unwrap().as_ptr();
    let first_arena = small.addr() & !(ARENA_BYTES - 1);
    assert_eq!(first_arena, region + ARENA_BYTES, "root and index take the first 64 MiB");
    // Eight pages more than an arena: the first arena is nearly all free, so only the
    // reservation boundary keeps a run from starting there.
    let big = Layout::from_size_align((ARENA_PAGES + 8) * PAGE_BYTES, 8).unwrap();
    let p = heap.alloc_layout(big).unwrap().as_ptr();
    assert_eq!(
        p.addr(),
        first_arena + ARENA_BYTES,
        "the large object starts the new reservation, not inside the first arena"
    );
    fill(p, 64, 7);
    // SAFETY: inside the object, on the far side of its arena boundary.
    let tail = unsafe { p.add(big.size() - 64) };
    fill(tail, 64, 9);
    verify(p, 64, 7);
    verify(tail, 64, 9);
    // SAFETY: no other thread uses the heap (the checker also finds no span crossing from
    // one reservation into another).
    unsafe { heap.check() }.unwrap();
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        core::alloc::GlobalAlloc::dealloc(heap, p, big);
        core::alloc::GlobalAlloc::dealloc(heap, small, l);
    }
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap now.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

// ---------------------------------------------------------------------------------------------
// Issue 22: blocks known from their address (block_of, free by address), bad frees refused.

/// A layout of `size` bytes, alignment 8.
fn l8(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// `block_of` answers for the exact start of a live block only: not for an interior pointer,
/// `+1`, a freed block (on the free stack or in its span), the stack, null, another heap.
/// `free` by address refuses each of those with the reason and changes nothing.
#[test]
fn block_of_and_free_by_address_know_live_starts_only() {
    use crate::BadFree;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let other: Heap<Tiered> = Heap::new();
    let foreign = other.alloc_layout(l8(64)).unwrap();
    let on_stack = 0u64;
    for size in [1usize, 8, 16, 48, 4096, 20_000, 32 << 10, 40 << 10, 1 << 20] {
        let p = heap.alloc_layout(l8(size)).unwrap();
        let b = heap.block_of(p.as_ptr()).unwrap_or_else(|| panic!("{size} B: live block unknown"));
        assert_eq!(b.start, p.as_ptr().addr());
        assert!(b.usable >= size, "{size} B: usable {}", b.usable);
        assert!(b.align >= 8 && b.start.is_multiple_of(b.align), "{size} B: {b:?}");
        // SAFETY: `p` is live with this layout.
        assert_eq!(unsafe { heap.usable_size(p, l8(size)) }, b.usable);
        for off in [1, b.usable / 2, b.usable - 1] {
            if off == 0 {
                continue;
            }
            let q = p.as_ptr().wrapping_add(off);
            assert_eq!(heap.block_of(q), None, "{size} B: interior +{off}");
            // SAFETY: not a live block: refused, nothing changes.
            let r = unsafe { heap.free(NonNull::new(q).unwrap()) };
            assert!(matches!(r, Err(BadFree::Interior | BadFree::NotLive)), "{size} B: +{off} gave {r:?}");
        }
        assert_eq!(heap.block_of(core::ptr::from_ref(&on_stack).cast()), None);
        assert_eq!(heap.block_of(core::ptr::null()), None);
        assert_eq!(heap.block_of(foreign.as_ptr()), None);
        // SAFETY: not blocks of `heap`: refused.
        unsafe {
            assert_eq!(heap.free(NonNull::from(&on_stack).cast()), Err(BadFree::Foreign));
            assert_eq!(heap.free(foreign), Err(BadFree::Foreign));
        }
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
        assert_eq!(heap.stats().live_bytes, b.usable);
        // SAFETY: live, freed once by address.
        assert_eq!(unsafe { heap.free(p) }, Ok(b.usable));
        assert_eq!(heap.block_of(p.as_ptr()), None, "{size} B: freed block still known");
        // SAFETY: a double free: refused.
        let again = unsafe { heap.free(p) };
        assert!(
            matches!(again, Err(BadFree::NotLive | BadFree::Foreign)),
            "{size} B: double free gave {again:?}"
        );
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
        assert_eq!(heap.stats().live_bytes, 0);
        assert_eq!(heap.stats().live_objects, 0);
    }
    // SAFETY: a live block of `other`, freed once.
    unsafe { other.free(foreign) }.unwrap();
}

/// Objects a thread's free stack holds are not live: `block_of` says so and a second free
/// (by address or with its layout) is refused; the pop that hands one out makes it live.
#[test]
fn objects_on_a_free_stack_are_not_live() {
    let heap: Heap<Tiered> = Heap::new();
    let l = l8(64);
    let ps: Vec<*mut u8> = (0..8).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    // SAFETY: live blocks, freed once (onto the stack: room for 16).
    unsafe { free_each(&heap, &ps, l) };
    let root = heap.strategy().existing_root().unwrap();
    // SAFETY: this thread's cache.
    let cache = unsafe { &*super::tls::lookup(root.key) };
    assert_eq!(cache.free[super::sizeclass::class_of(64)].len(), 8, "the frees did not stack");
    for &p in &ps {
        assert_eq!(heap.block_of(p), None, "{p:p} on the free stack looks live");
        // SAFETY: a double free, refused.
        assert_eq!(unsafe { heap.free(NonNull::new(p).unwrap()) }, Err(crate::BadFree::NotLive));
        // SAFETY: a double free with the layout: ignored.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    assert_eq!(cache.free[super::sizeclass::class_of(64)].len(), 8, "a double free reached the stack");
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    let again: Vec<*mut u8> = (0..8).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    for &p in &again {
        assert!(ps.contains(&p), "{p:p} not from the stack");
        assert!(heap.block_of(p).is_some(), "{p:p} popped but not live");
    }
    // SAFETY: live blocks, freed once.
    unsafe { free_each(&heap, &again, l) };
    assert_eq!(heap.stats().live_objects, 0);
}

/// Double frees of 8 B, 4 KiB, 20,000 B, 32 KiB and 1 MiB, by address and with the layout
/// (which used to pass silently, hand one address out many times, or crash), are refused;
/// the heap stays consistent and its next 20,000 allocations are pairwise distinct.
#[test]
fn double_frees_are_refused_and_nothing_is_handed_out_twice() {
    for size in [8usize, 4096, 20_000, 32 << 10, 1 << 20] {
        let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
        let l = l8(size);
        let keep: Vec<*mut u8> = (0..20).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
        let p = heap.alloc_layout(l).unwrap().as_ptr();
        // SAFETY: deliberately wrong frees: the first is real, the rest are refused.
        unsafe {
            core::alloc::GlobalAlloc::dealloc(&heap, p, l);
            core::alloc::GlobalAlloc::dealloc(&heap, p, l);
            assert!(heap.free(NonNull::new(p).unwrap()).is_err(), "{size} B: double free accepted");
            core::alloc::GlobalAlloc::dealloc(&heap, p, l);
        }
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap_or_else(|e| panic!("{size} B: {e}"));
        assert_eq!(heap.stats().live_objects, keep.len());
        let n = if size >= 1 << 20 { 200 } else { 20_000 };
        let mut got = std::collections::HashSet::new();
        let mut all = Vec::new();
        for _ in 0..n {
            let q = heap.alloc_layout(l).unwrap().as_ptr();
            assert!(!keep.contains(&q), "{size} B: {q:p} is still live");
            assert!(got.insert(q.addr()), "{size} B: {q:p} handed out twice");
            all.push(q);
        }
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap_or_else(|e| panic!("{size} B: {e}"));
        // SAFETY: live blocks, freed once.
        unsafe {
            free_each(&heap, &all, l);
            free_each(&heap, &keep, l);
        }
        assert_eq!(heap.stats().live_objects, 0);
        assert_eq!(heap.stats().live_bytes, 0);
    }
}

/// Thread A frees a block, thread B frees it again (by address, then with its layout): B is
/// refused, for a block of A's span (B's free would be remote) and for one of B's own span
/// (A's free was remote, and waits on the span's remote stack).
#[test]
fn cross_thread_double_free_is_refused() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let heap = &heap;
    let l = l8(256);
    for owner_frees_first in [true, false] {
        let blocks = Blocks((0..64).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect());
        let blocks = &blocks;
        let first = |ps: &Blocks| {
            for &p in &ps.0 {
                // SAFETY: live blocks, freed once here.
                assert!(unsafe { heap.free(NonNull::new(p).unwrap()) }.is_ok());
            }
        };
        let second = |ps: &Blocks| {
            for &p in &ps.0 {
                // SAFETY: double frees: refused.
                unsafe {
                    assert_eq!(heap.free(NonNull::new(p).unwrap()), Err(crate::BadFree::NotLive), "{p:p}");
                    core::alloc::GlobalAlloc::dealloc(heap, p, l);
                }
            }
        };
        if owner_frees_first {
            first(blocks);
            std::thread::scope(|s| s.spawn(|| second(blocks)).join().unwrap());
        } else {
            std::thread::scope(|s| s.spawn(|| first(blocks)).join().unwrap());
            second(blocks);
        }
        // SAFETY: the other thread has exited.
        unsafe { heap.check() }.unwrap();
        assert_eq!(heap.stats().live_objects, 0);
        let again: Vec<*mut u8> = (0..2000).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
        let distinct: std::collections::HashSet<usize> = again.iter().map(|p| p.addr()).collect();
        assert_eq!(distinct.len(), again.len(), "a block handed out twice");
        // SAFETY: live blocks, freed once.
        unsafe { free_each(heap, &again, l) };
    }
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// Random operations mixing frees with the layout and by address, with `block_of` checked
/// on every live block, on interior pointers, and on freed addresses not handed out again;
/// the checker and exact statistics (usable sizes) after every 64 steps.
#[test]
fn random_ops_mix_both_free_styles() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(*mut u8, Layout, usize)> = Vec::new();
    let mut freed: Vec<*mut u8> = Vec::new();
    for step in 0..20_000 {
        let r = next();
        if r % 3 == 0 && !live.is_empty() {
            let (p, l, usable) = live.swap_remove((r >> 8) as usize % live.len());
            verify(p, l.size().min(16), l.size() as u8);
            if r & 16 == 0 {
                // SAFETY: a live block, freed once.
                unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
            } else {
                // SAFETY: a live block, freed once.
                assert_eq!(unsafe { heap.free(NonNull::new(p).unwrap()) }, Ok(usable));
            }
            freed.push(p);
        } else {
            let size = match r % 16 {
                0 => 1 + (r >> 8) as usize % (256 << 10),
                1..=3 => 1 + (r >> 8) as usize % (32 << 10),
                _ => 1 + (r >> 8) as usize % 512,
            };
            let align = 1usize << ((r >> 40) % 6);
            let l = Layout::from_size_align(size, align).unwrap();
            let p = heap.alloc_layout(l).unwrap().as_ptr();
            assert!(p.addr().is_multiple_of(align));
            fill(p, size.min(16), size as u8);
            let b = heap.block_of(p).unwrap();
            assert!(b.usable >= size && b.align >= align, "{b:?} for {l:?}");
            live.push((p, l, b.usable));
            freed.retain(|&q| q != p);
        }
        if step % 64 == 0 {
            for &(p, _, usable) in &live {
                assert_eq!(heap.block_of(p).map(|b| b.usable), Some(usable), "{p:p}");
                if usable > 1 {
                    assert_eq!(heap.block_of(p.wrapping_add(1)), None);
                }
            }
            for &q in &freed {
                assert_eq!(heap.block_of(q), None, "freed {q:p} still known");
            }
            // SAFETY: no other thread uses the heap.
            unsafe { heap.check() }.unwrap_or_else(|e| panic!("step {step}: {e}"));
            let s = heap.stats();
            assert_eq!(s.live_objects, live.len(), "step {step}");
            assert_eq!(s.live_bytes, live.iter().map(|b| b.2).sum::<usize>(), "step {step}");
        }
    }
    for (p, _, _) in live {
        // SAFETY: live blocks, freed once.
        unsafe { heap.free(NonNull::new(p).unwrap()) }.unwrap();
    }
    assert_eq!(heap.stats().live_bytes, 0);
}

/// `release_all` gives every page back to the source (Tracked: nothing left in any state
/// but None), live blocks included, and the heap starts afresh when used again.
#[test]
fn release_all_gives_every_page_back_and_the_heap_works_again() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    for round in 0..3 {
        let mut live = Vec::new();
        for k in 0..2000usize {
            let size = [8, 24, 100, 1000, 5000, 20_000, 40 << 10, 300 << 10][k % 8];
            let l = l8(size);
            let p = heap.alloc_layout(l).unwrap().as_ptr();
            fill(p, size.min(64), k as u8);
            if k % 3 == 0 {
                // SAFETY: a live block, freed once.
                unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
            } else {
                live.push(p);
            }
        }
        // A second thread uses the heap and stays alive past the release (its slot must
        // not reach the released heap).
        std::thread::scope(|s| {
            s.spawn(|| {
                let p = heap.alloc_layout(l8(64)).unwrap();
                // SAFETY: live, freed once.
                unsafe { heap.free(p) }.unwrap();
            });
        });
        // SAFETY: no block is used after this, no other thread uses the heap.
        unsafe { heap.release_all() };
        let c = heap.source().counts();
        assert_eq!((c.reserved, c.prepared, c.ready), (0, 0, 0), "round {round}: pages left");
        assert_eq!(heap.stats().live_objects, 0);
        assert_eq!(heap.block_of(live[0]), None, "a released block is still known");
    }
}

/// The address-based paths under Miri (over `Fixed`): `block_of` on live, stacked, interior
/// and foreign pointers, frees by address, double frees refused on the owner's and on
/// another thread's path (the remote bit), then `release_all` with a block still live, and
/// the heap used again.
#[test]
fn miri_free_by_address_double_free_and_release_all() {
    let rh = RegionHeap::new();
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let l = l8(48);
    let ps: Vec<*mut u8> = (0..6).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let big = heap.alloc_layout(l8(40 << 10)).unwrap();
    for &p in &ps {
        fill(p, 48, 3);
        assert_eq!(heap.block_of(p).map(|b| b.usable), Some(48));
        assert_eq!(heap.block_of(p.wrapping_add(8)), None);
    }
    // SAFETY: live blocks, freed once; then double frees, refused.
    unsafe {
        assert_eq!(heap.free(NonNull::new(ps[0]).unwrap()), Ok(48));
        assert_eq!(heap.free(NonNull::new(ps[0]).unwrap()), Err(crate::BadFree::NotLive));
        core::alloc::GlobalAlloc::dealloc(heap, ps[0], l);
        assert_eq!(heap.free(big), Ok(40 << 10));
        assert!(heap.free(big).is_err());
    }
    assert_eq!(heap.block_of(ps[0]), None);
    let theirs = Blocks(ps[1..3].to_vec());
    let theirs = &theirs;
    std::thread::scope(|s| {
        s.spawn(move || {
            for &p in &theirs.0 {
                verify(p, 48, 3);
                // SAFETY: live blocks handed to this thread, freed once; then refused.
                unsafe {
                    assert_eq!(heap.free(NonNull::new(p).unwrap()), Ok(48));
                    assert_eq!(heap.free(NonNull::new(p).unwrap()), Err(crate::BadFree::NotLive));
                }
            }
        })
        .join()
        .unwrap();
    });
    for &p in &ps[1..3] {
        assert_eq!(heap.block_of(p), None, "a remote-freed block looks live");
        // SAFETY: double frees of remote-freed blocks: refused.
        assert!(unsafe { heap.free(NonNull::new(p).unwrap()) }.is_err());
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    // SAFETY: `ps[3..]` are never used again; no other thread uses the heap.
    unsafe { heap.release_all() };
    assert_eq!(heap.block_of(ps[3]), None);
    let p = heap.alloc_layout(l).unwrap();
    // SAFETY: live, freed once.
    assert_eq!(unsafe { heap.free(p) }, Ok(48));
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// The arena record of the arena holding `addr`, as the index names it now (null if none).
fn arena_record(heap: &Heap<Tiered, Tracked<Mmap>>, addr: usize) -> *mut super::arena::Arena {
    use super::arena::{index_entry, index_of};
    let root = heap.strategy().existing_root().unwrap();
    // SAFETY: the root's index (L1 table, Ready while the heap lives).
    unsafe { index_entry(root.index, index_of(addr)) }
        .map_or(core::ptr::null_mut(), |e| e.load(core::sync::atomic::Ordering::Acquire))
}

/// An arena given back to the source by the free's background step (a dedicated arena of
/// an over-aligned block) keeps its metadata record mapped (Tracked: still Ready) for a
/// reader that loaded the index entry before, retired so that it answers nothing for the
/// old arena; `block_of` and `free` of pointers into the released arena answer None / Err;
/// the next arena reuses the record, still answering nothing for the stale pointers. Before
/// the fix the record was freed with the arena (State::None), and such a reader faulted.
#[test]
fn stale_pointer_into_a_released_arena_reads_a_kept_record() {
    use crate::{BadFree, State};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let small = Layout::from_size_align(64, 8).unwrap();
    let keep = heap.alloc_layout(small).unwrap();
    let l = Layout::from_size_align(1 << 20, 128 << 20).unwrap();
    let p = heap.alloc_layout(l).unwrap().as_ptr();
    let rec = arena_record(&heap, p.addr());
    assert!(!rec.is_null());
    // Ready bytes the heap does not count as committed (the root, ...): unchanged below.
    let outside = |h: &Heap<Tiered, Tracked<Mmap>>| h.source().counts().ready - h.stats().committed_bytes;
    let before = outside(&heap);
    // SAFETY: a live block of this heap, freed once.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    assert_eq!(heap.source().state_of(p.addr()), State::None, "the dedicated arena was not released");
    assert!(arena_record(&heap, p.addr()).is_null(), "the released arena is still in the index");
    assert_eq!(heap.source().state_of(rec.addr()), State::Ready, "the arena record was freed");
    // A reader that loaded the index entry before the release reads the kept record.
    // SAFETY: records live as long as the heap (the point of this test).
    let r = unsafe { &*rec };
    assert!(!r.holds(p.addr()) && !r.holds(p.addr() + 4096));
    assert!(r.span_at(0).is_null());
    for q in [p, p.wrapping_add(8), p.wrapping_add(1 << 19)] {
        assert!(heap.block_of(q).is_none());
        // SAFETY: not a live block of this heap: refused, nothing changes.
        let e = unsafe { heap.free(NonNull::new(q).unwrap()) };
        assert!(matches!(e, Err(BadFree::Foreign)), "{e:?}");
    }
    // The record stays counted as committed metadata, as it stays Ready.
    assert_eq!(outside(&heap), before, "committed bytes and Ready pages disagree");
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
    // The next arena takes the retired record.
    let q = heap.alloc_layout(l).unwrap().as_ptr();
    assert_eq!(arena_record(&heap, q.addr()), rec, "the retired record was not reused");
    if q.addr() >> super::arena::ARENA_SHIFT != p.addr() >> super::arena::ARENA_SHIFT {
        assert!(!r.holds(p.addr()));
        assert!(heap.block_of(p).is_none());
    }
    assert_eq!(heap.block_of(q).map(|b| b.start), Some(q.addr()));
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        core::alloc::GlobalAlloc::dealloc(&heap, q, l);
        heap.dealloc_layout(keep, small);
        heap.check().unwrap();
    }
}

/// One thread makes dedicated arenas and gives them back again and again (an over-aligned
/// block, freed at once); another asks `block_of` and frees interior pointers of the blocks
/// it hears of, stale most of the time. No crash; `block_of` answers None or the live block
/// that starts there; every free is refused. No timing: any interleaving is a valid run.
#[test]
fn block_of_races_with_arena_release() {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let small = Layout::from_size_align(64, 8).unwrap();
    let keep = heap.alloc_layout(small).unwrap();
    let l = Layout::from_size_align(64 << 10, 128 << 20).unwrap();
    let last = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..1000 {
                let p = heap.alloc_layout(l).unwrap().as_ptr();
                last.store(p.addr(), Relaxed);
                // SAFETY: a live block of this heap, freed once (the other thread only
                // frees interior pointers, which are refused).
                unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
            }
            done.store(true, Relaxed);
        });
        s.spawn(|| {
            let mut asked = 0u64;
            while !done.load(Relaxed) || asked < 1000 {
                let a = last.load(Relaxed);
                if a == 0 {
                    std::thread::yield_now();
                    continue;
                }
                // A record loaded from the index now and read after the calls below (a
                // wide window for the arena to go back meanwhile): still mapped, retired or
                // naming an arena.
                let rec = arena_record(&heap, a);
                for off in [0usize, 4096, 32 << 10] {
                    let q = a.wrapping_add(off) as *const u8;
                    if let Some(b) = heap.block_of(q) {
                        assert!(off == 0 && b.start == a && b.usable >= l.size(), "{b:?} for {off}");
                    }
                }
                let q = NonNull::new(a.wrapping_add(8) as *mut u8).unwrap();
                // SAFETY: an interior pointer is never a live block: refused, nothing changes.
                assert!(unsafe { heap.free(q) }.is_err());
                // SAFETY: arena records live as long as the heap (the point of this test).
                if let Some(r) = unsafe { rec.as_ref() } {
                    let base = r.base_addr();
                    // Its arena, or none (retired), or another one (reused since).
                    assert!(base == 0 || base % super::arena::ARENA_BYTES == 0, "{base:#x}");
                    let _ = r.holds(a);
                    let _ = r.span_at(super::arena::page_in_arena(a));
                }
                asked += 1;
            }
        });
    });
    // SAFETY: a live block of this heap, freed once; the threads are done.
    unsafe {
        heap.dealloc_layout(keep, small);
        heap.check().unwrap();
    }
}

/// Large runs take the best-fitting run of Ready pages (issue 17, `find_ready_best`): of two
/// freed Ready holes, a request takes the one it fits best, though the other is lower (where
/// the first fit would go); and a request no Ready hole fits still succeeds (first fit).
#[test]
fn large_runs_take_the_best_fitting_ready_run() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let mib = |n: usize| Layout::from_size_align(n << 20, 8).unwrap();
    let guard = Layout::from_size_align(64 << 10, 8).unwrap();
    // Lowest first: a 2 MiB block, a guard, a 1 MiB block, a guard (the guards keep the
    // holes apart, and from the never-used, scavenged rest of the arena).
    let wide = heap.alloc_layout(mib(2)).unwrap().as_ptr();
    let g1 = heap.alloc_layout(guard).unwrap().as_ptr();
    let narrow = heap.alloc_layout(mib(1)).unwrap().as_ptr();
    let g2 = heap.alloc_layout(guard).unwrap().as_ptr();
    assert!(wide < narrow, "the page allocator took the lowest runs first");
    for (p, l) in [(wide, mib(2)), (narrow, mib(1))] {
        fill(p, l.size(), 7);
        // SAFETY: a live block of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    // 3 MiB Ready and free: under the scavenger's 4 MiB minimum, so both holes stay Ready.
    let p = heap.alloc_layout(mib(1)).unwrap().as_ptr();
    assert_eq!(p, narrow, "a 1 MiB request took the 2 MiB hole");
    let q = heap.alloc_layout(mib(2)).unwrap().as_ptr();
    assert_eq!(q, wide);
    // No Ready hole fits 3 MiB: the first fit (fresh pages) serves it.
    let r = heap.alloc_layout(mib(3)).unwrap().as_ptr();
    fill(r, 3 << 20, 9);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for (p, l) in [(p, mib(1)), (q, mib(2)), (r, mib(3)), (g1, guard), (g2, guard)] {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    // SAFETY: as above.
    unsafe { heap.check() }.unwrap();
}

/// Aligned requests (issue 17, item 2): every alignment up to 32 KiB of every small size is
/// served by a size class (its objects' usable size is the class's, not whole pages), the
/// blocks are aligned, and the 16 KiB and 32 KiB classes' spans are aligned to their size
/// (checked by the walker too); 64 KiB goes to the page heap, aligned.
#[test]
fn aligned_requests_of_every_class_are_served_aligned() {
    use super::sizeclass::{CLASS_ALIGN, CLASS_BYTES, class_for};
    use crate::Strategy;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let mut live = Vec::new();
    for (c, &size) in CLASS_BYTES.iter().enumerate().skip(1) {
        let size = size as usize;
        for shift in 3..=16 {
            let align = 1usize << shift;
            for n in [size - size / 4, size] {
                let l = Layout::from_size_align(n.max(1), align).unwrap();
                // Twice, so that the second of a one-object class comes from a new span.
                for k in 0..2 {
                    let p = heap.alloc_layout(l).unwrap().as_ptr();
                    assert_eq!(p.addr() % align, 0, "size {n} align {align}");
                    fill(p, l.size(), (c + k) as u8);
                    let b = heap.strategy().block_of(p).unwrap();
                    match class_for(l.size(), align) {
                        Some(cl) => {
                            assert!(CLASS_ALIGN[cl] as usize >= align);
                            assert_eq!(b.usable, CLASS_BYTES[cl] as usize, "size {n} align {align}");
                        }
                        None => assert!(align > 32 << 10 || l.size() > 32 << 10),
                    }
                    assert!(b.align >= align);
                    live.push((p, l));
                }
            }
        }
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for (p, l) in live {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p, l) };
    }
    // SAFETY: as above.
    unsafe { heap.check() }.unwrap();
}

/// The cached paths (`Strategy::alloc_cached`, `free_cached`, the preload's fast paths): a
/// free is taken only for the start of a live small block of a span this thread's cache
/// owns, and anything else is refused with nothing changed (a double free, an interior, stack
/// or foreign pointer, a large block, another thread's block, a block of a heap the thread
/// did not use last), for `free` to decide; an allocation comes from this thread's cache
/// only, and the statistics stay exact.
#[test]
fn cached_paths_take_only_what_the_thread_cache_can() {
    use crate::BadFree;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(16, 16).unwrap();
    // SAFETY: non-zero sizes; every pointer freed is either a live block given up or a
    // pointer the strategy must refuse.
    unsafe {
        assert_eq!(heap.alloc_cached(l), None, "served before the heap or a cache existed");
        let p = heap.alloc_layout(l).unwrap();
        assert!(heap.free_cached(p), "a live block of this thread's span refused");
        assert_eq!(heap.block_of(p.as_ptr()), None);
        assert!(!heap.free_cached(p), "double free taken");
        assert_eq!(heap.free(p), Err(BadFree::NotLive));
        let q = heap.alloc_cached(l).expect("the free stack's object");
        assert_eq!(q, p, "not the last freed object");
        assert_eq!(heap.block_of(q.as_ptr()).map(|b| b.usable), Some(16));
        assert_eq!((heap.stats().live_bytes, heap.stats().live_objects), (16, 1));

        let on_stack = 0u64;
        let other: Heap<Tiered> = Heap::new();
        let foreign = other.alloc_layout(l).unwrap();
        let large = heap.alloc_layout(l8(100_000)).unwrap();
        let theirs = {
            let h = &heap;
            std::thread::scope(|s| {
                s.spawn(move || h.alloc_layout(l).unwrap().as_ptr().addr()).join().unwrap()
            })
        };
        let theirs = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(theirs)).unwrap();
        for (what, r) in [
            ("interior", q.as_ptr().wrapping_add(8)),
            ("stack", core::ptr::from_ref(&on_stack).cast_mut().cast()),
            ("foreign", foreign.as_ptr()),
            ("large", large.as_ptr()),
            ("another thread's", theirs.as_ptr()),
        ] {
            assert!(!heap.free_cached(NonNull::new(r).unwrap()), "{what} pointer taken");
            heap.check().unwrap_or_else(|e| panic!("after the {what} pointer: {e}"));
        }
        assert_eq!(heap.stats().live_objects, 3);
        assert!(heap.free(large).is_ok() && heap.free(theirs).is_ok());
        other.free(foreign).unwrap();
        // This thread's cache of `heap` is not the one it used last (`other`'s is): refused.
        assert!(!heap.free_cached(q), "taken through a cache that is not the thread's latest");
        let r = heap.alloc_layout(l).unwrap();
        assert!(heap.free_cached(r) && heap.free_cached(q));
        heap.check().unwrap();
        assert_eq!((heap.stats().live_bytes, heap.stats().live_objects), (0, 0));
    }
}

/// `owned_usable`, realloc's owner lookup, agrees with `block_of` on every live object the
/// thread's cache owns, and answers `None` for a freed object, an interior pointer, a large
/// object and another thread's object; realloc keeps the contents either way.
#[test]
fn owned_usable_agrees_with_block_of() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    // SAFETY: non-zero sizes; every block is freed once, and only live blocks are resized.
    unsafe {
        let mut live = Vec::new();
        for (k, size) in
            [8usize, 24, 40, 100, 640, 1500, 5000, 20_000, 32_768].into_iter().cycle().take(90).enumerate()
        {
            let p = heap.alloc_layout(l8(size)).unwrap();
            p.as_ptr().write_bytes(k as u8, size);
            live.push((p, size, k as u8));
        }
        // The owner's lookup starts from the arena hint, which the first slow lookup sets.
        assert!(heap.free_cached(heap.alloc_layout(l8(24)).unwrap()));
        for &(p, _, _) in &live {
            let b = heap.block_of(p.as_ptr()).unwrap();
            assert_eq!(heap.strategy().owned_usable(p), Some(b.usable), "{p:p}");
            let inside = NonNull::new(p.as_ptr().wrapping_add(1)).unwrap();
            assert_eq!(heap.strategy().owned_usable(inside), None, "interior pointer {inside:p}");
        }
        let large = heap.alloc_layout(l8(100_000)).unwrap();
        assert_eq!(heap.strategy().owned_usable(large), None, "large object");
        let theirs = {
            let h = &heap;
            std::thread::scope(|s| {
                s.spawn(move || h.alloc_layout(l8(24)).unwrap().as_ptr().addr()).join().unwrap()
            })
        };
        let theirs = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(theirs)).unwrap();
        assert_eq!(heap.strategy().owned_usable(theirs), None, "another thread's object");
        // Half of the objects freed: no longer live to the owner's lookup.
        for (p, size, _) in live.drain(..45) {
            core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), l8(size));
            assert_eq!(heap.strategy().owned_usable(p), None, "freed object {p:p}");
        }
        // The rest grown and shrunk through realloc: contents kept.
        for (p, size, k) in live {
            let q = core::alloc::GlobalAlloc::realloc(&heap, p.as_ptr(), l8(size), size * 2 + 1);
            assert!((0..size).all(|i| *q.add(i) == k), "grown block lost its contents");
            let r = core::alloc::GlobalAlloc::realloc(&heap, q, l8(size * 2 + 1), size / 2 + 1);
            assert!((0..size / 2 + 1).all(|i| *r.add(i) == k), "shrunk block lost its contents");
            core::alloc::GlobalAlloc::dealloc(&heap, r, l8(size / 2 + 1));
        }
        core::alloc::GlobalAlloc::dealloc(&heap, large.as_ptr(), l8(100_000));
        heap.free(theirs).unwrap();
        heap.check().unwrap();
    }
}

/// `free_cached_fast`, the preload's call-free first step: `Taken` only for the start of a
/// live block of a span this thread's cache owns, found through the cache's arena hint;
/// `Refused` (nothing changed) for such a block that is not live (a double free, an object
/// never handed out) or with a full free stack; `Missed` (nothing changed) for anything its
/// lookup cannot place (interior, stack, foreign, large, another thread's block, an offset
/// past the span's last object, before the hint exists). What it leaves, `free` still
/// refuses or frees exactly once.
#[test]
fn cached_fast_free_takes_refuses_or_misses() {
    use crate::{BadFree, CachedFree};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l24 = l8(24);
    // SAFETY: non-zero sizes; every pointer freed is a live block given up or a pointer the
    // strategy must refuse.
    unsafe {
        // The first object of the heap's first 24 B span: the span's base (page-aligned).
        let p = heap.alloc_layout(l24).unwrap();
        assert_eq!(p.as_ptr().addr() % super::sizeclass::PAGE_BYTES, 0, "not a span's first object");
        let q = heap.alloc_layout(l24).unwrap();
        // No lookup through the index yet, so no arena hint: missed, nothing changed.
        assert_eq!(heap.free_cached_fast(p), CachedFree::Missed, "found before the hint existed");
        assert!(heap.block_of(p.as_ptr()).is_some());
        // `free_cached` looks further (and sets the hint); now the fast lookup finds blocks.
        assert!(heap.free_cached(p));
        assert_eq!(heap.free_cached_fast(p), CachedFree::Refused, "double free not refused");
        assert_eq!(heap.free(p), Err(BadFree::NotLive));
        assert_eq!(heap.free_cached_fast(q), CachedFree::Taken);
        assert_eq!(heap.free_cached_fast(q), CachedFree::Refused, "double free not refused");
        let (p, q) = (heap.alloc_layout(l24).unwrap(), heap.alloc_layout(l24).unwrap());

        // The span holds 341 objects of 24 B (8184 of its 8192 bytes): object 340 starts
        // but was never handed out; "object 341" would start in the tail.
        let base = p.as_ptr().min(q.as_ptr());
        let never = NonNull::new(base.wrapping_add(340 * 24)).unwrap();
        assert_eq!(heap.free_cached_fast(never), CachedFree::Refused, "an object never handed out");
        let tail = NonNull::new(base.wrapping_add(341 * 24)).unwrap();
        assert_eq!(heap.free_cached_fast(tail), CachedFree::Missed, "the span's tail");
        assert_eq!(heap.free(tail), Err(BadFree::Interior));

        let on_stack = 0u64;
        let other: Heap<Tiered> = Heap::new();
        let foreign = other.alloc_layout(l24).unwrap();
        let large = heap.alloc_layout(l8(100_000)).unwrap();
        let theirs = {
            let h = &heap;
            std::thread::scope(|s| {
                s.spawn(move || h.alloc_layout(l24).unwrap().as_ptr().addr()).join().unwrap()
            })
        };
        let theirs = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(theirs)).unwrap();
        // `other` was this thread's latest heap: the lookups below run with `heap`'s cache
        // again once it allocates.
        let r = heap.alloc_layout(l24).unwrap();
        for (what, x) in [
            ("interior", p.as_ptr().wrapping_add(8)),
            ("one byte in", q.as_ptr().wrapping_add(1)),
            ("stack", core::ptr::from_ref(&on_stack).cast_mut().cast()),
            ("foreign", foreign.as_ptr()),
            ("large", large.as_ptr()),
            ("another thread's", theirs.as_ptr()),
        ] {
            assert_eq!(heap.free_cached_fast(NonNull::new(x).unwrap()), CachedFree::Missed, "{what}");
            heap.check().unwrap_or_else(|e| panic!("after the {what} pointer: {e}"));
        }
        assert_eq!(heap.stats().live_objects, 5);
        for x in [p, q, r] {
            assert_eq!(heap.free_cached_fast(x), CachedFree::Taken);
        }
        assert!(heap.free(large).is_ok() && heap.free(theirs).is_ok());
        other.free(foreign).unwrap();
        // Every block handed out again is distinct.
        let again: Vec<_> = (0..400).map(|_| heap.alloc_layout(l24).unwrap().as_ptr().addr()).collect();
        let mut sorted = again.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), again.len(), "a block handed out twice");
        heap.check().unwrap();
        assert_eq!(heap.stats().live_objects, 400);
    }
}

/// `alloc_cached` stops (`None`, nothing changed) where `alloc` would refill or run its
/// bounded background step, and serves again once `alloc` did; every block it gives is
/// distinct and live; frees through `free_cached` until its stack is full, then `free`.
#[test]
fn cached_allocations_stop_where_alloc_refills_or_steps() {
    use std::collections::HashSet;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(48, 16).unwrap();
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    // SAFETY: non-zero sizes; each block freed once.
    unsafe {
        all.push(heap.alloc_layout(l).unwrap());
        for round in 0..3 {
            let mut served = 0usize;
            while let Some(p) = heap.alloc_cached(l) {
                assert!(heap.block_of(p.as_ptr()).is_some(), "round {round}: {p:?} not live");
                all.push(p);
                served += 1;
                assert!(served < super::scavenger::OP_STEP_ALLOCS as usize, "round {round}: never stopped");
            }
            heap.check().unwrap();
            // `alloc` does what the cached path left (refill, step); then it serves again.
            all.push(heap.alloc_layout(l).unwrap());
            all.push(heap.alloc_cached(l).expect("nothing served after alloc"));
        }
        for p in &all {
            assert!(seen.insert(p.as_ptr().addr()), "{p:?} handed out twice");
        }
        assert_eq!(heap.stats().live_objects, all.len());
        assert_eq!(heap.stats().live_bytes, all.len() * 48);
        let (mut cached, mut general) = (0, 0);
        for &p in &all {
            if heap.free_cached(p) {
                cached += 1;
            } else {
                assert_eq!(heap.free(p), Ok(48));
                general += 1;
            }
        }
        assert!(cached > 0 && general > 0, "cached {cached}, general {general}");
        heap.check().unwrap();
        assert_eq!((heap.stats().live_bytes, heap.stats().live_objects), (0, 0));
    }
}

/// The remote frees another thread's cache holds back (`RemoteChain` in mcache.rs): each
/// object is refused a second free while held and after it is pushed, the checker accepts
/// the chain mid-way (the holding thread runs it while the owner waits), a free into
/// another span and a full chain push it, thread exit pushes the rest, and the owner then
/// gets every object back exactly once. Under Miri too (`miri_`: strict provenance, the
/// chain's links are written through the objects' own pointers).
#[test]
fn miri_remote_frees_held_back_reach_the_owner_once() {
    use super::mcache::REMOTE_CHAIN_MAX;
    let rh = RegionHeap::new();
    let heap: &Heap<Tiered, crate::Fixed> = &rh.heap;
    let (l, other) = (l8(64), l8(128));
    let n = 2 * REMOTE_CHAIN_MAX as usize + 3;
    let ps: Vec<*mut u8> = (0..n).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let q = heap.alloc_layout(other).unwrap().as_ptr();
    for &p in &ps {
        fill(p, 64, 9);
    }
    let key = heap.strategy().existing_root().unwrap().key;
    let (theirs, q) = (Blocks(ps.clone()), Blocks(std::vec![q]));
    let (theirs, q) = (&theirs, &q);
    std::thread::scope(|s| {
        s.spawn(move || {
            let held = || {
                // SAFETY: this thread's cache (made by its first free), used by it alone.
                let c = unsafe { &*super::tls::lookup(key) };
                c.remote_chain.len.get()
            };
            let free = |p: *mut u8| {
                // SAFETY: blocks of this heap, handed to this thread; the callers free each
                // live block once, and the rest are double frees, which must be refused.
                unsafe { heap.free(NonNull::new(p).unwrap()) }
            };
            for &p in &theirs.0[..5] {
                verify(p, 64, 9);
                assert_eq!(free(p), Ok(64));
            }
            assert_eq!(held(), 5, "remote frees of one span are held back");
            assert_eq!(free(theirs.0[0]), Err(crate::BadFree::NotLive), "a held object freed twice");
            assert_eq!(heap.block_of(theirs.0[1]), None, "a held object looks live");
            // SAFETY: the owner waits for this thread (join); nobody else uses the heap.
            unsafe { heap.check() }.unwrap();
            // Another span: the five are pushed, the chain holds `q` alone.
            assert_eq!(free(q.0[0]), Ok(128));
            assert_eq!(held(), 1);
            assert_eq!(free(theirs.0[2]), Err(crate::BadFree::NotLive), "a pushed object freed twice");
            for &p in &theirs.0[5..] {
                assert_eq!(free(p), Ok(64));
                assert!(held() < REMOTE_CHAIN_MAX, "a full chain is pushed at once");
            }
            // SAFETY: as above.
            unsafe { heap.check() }.unwrap();
            // Exit gives the cache back, and with it the chain.
        })
        .join()
        .unwrap();
    });
    for &p in &ps {
        assert_eq!(heap.block_of(p), None);
        // SAFETY: double frees, refused.
        assert_eq!(unsafe { heap.free(NonNull::new(p).unwrap()) }, Err(crate::BadFree::NotLive));
    }
    // SAFETY: the other thread has exited.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
    // The owner collects the frees as it refills: each address at most once among the live.
    let again: Vec<*mut u8> = (0..2 * n).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let distinct: std::collections::HashSet<usize> = again.iter().map(|p| p.addr()).collect();
    assert_eq!(distinct.len(), again.len(), "a block handed out twice");
    assert!(ps.iter().any(|p| distinct.contains(&p.addr())), "no remote-freed object came back");
    // SAFETY: live blocks, freed once.
    unsafe { free_each(heap, &again, l) };
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// A thread of scope `s` that allocates `n` blocks of `l` from `heap`, hands them over and
/// stays (owning their span) until told to go: the blocks, the sender that tells it, the
/// thread.
fn spawn_owner<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    heap: &'env Heap<Tiered, Tracked<Mmap>>,
    n: usize,
    l: Layout,
) -> (Blocks, std::sync::mpsc::Sender<()>, std::thread::ScopedJoinHandle<'scope, ()>) {
    let (tx, rx) = std::sync::mpsc::channel::<Blocks>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = s.spawn(move || {
        let ps: Vec<*mut u8> = (0..n).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
        for &p in &ps {
            fill(p, l.size(), 5);
        }
        tx.send(Blocks(ps)).unwrap();
        go_rx.recv().unwrap();
    });
    (rx.recv().unwrap(), go_tx, t)
}

/// A chain held for a span whose owner exits before the chain is pushed: the span has no
/// owner then, so the push (here: a free into a span of a live owner) goes to its
/// mcentral's pending stack, which the next drain frees into the span; nothing is lost or
/// handed out twice, and double frees stay refused.
#[test]
fn remote_chain_of_a_span_whose_owner_left_goes_to_pending() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let heap = &heap;
    let (l, l2) = (l8(48), l8(2048));
    let free = |p: *mut u8| {
        // SAFETY: blocks of this heap handed to this thread; each live one is freed once,
        // and the tests' second frees must be refused.
        unsafe { heap.free(NonNull::new(p).unwrap()) }
    };
    let held = || {
        let key = heap.strategy().existing_root().unwrap().key;
        // SAFETY: this thread's cache, used by it alone.
        unsafe { &*super::tls::lookup(key) }.remote_chain.len.get()
    };
    let first = std::thread::scope(|s| {
        let (ps, go, t) = spawn_owner(s, heap, 16, l);
        for &p in &ps.0[..8] {
            verify(p, 48, 5);
            assert_eq!(free(p), Ok(48));
        }
        assert_eq!(held(), 8);
        go.send(()).unwrap();
        t.join().unwrap();
        ps
    });
    // Its owner has exited: the span is unowned. Frees of the rest take the pending stack
    // at once, and leave the chain alone.
    for &p in &first.0[8..] {
        assert_eq!(free(p), Ok(48));
    }
    assert_eq!(held(), 8);
    let root = heap.strategy().existing_root().unwrap();
    let spc = super::sizeclass::span_class(super::sizeclass::class_of(48));
    std::thread::scope(|s| {
        let (ps, go, t) = spawn_owner(s, heap, 1, l2);
        // A free into a live owner's span: the chain of the unowned span is pushed onto
        // its mcentral's pending stack, and the chain starts again.
        assert_eq!(free(ps.0[0]), Ok(2048));
        assert_eq!(held(), 1);
        assert!(!root.central[spc].pending.is_empty(), "the chain did not reach the pending stack");
        assert_eq!(free(first.0[3]), Err(crate::BadFree::NotLive), "a pending object freed twice");
        go.send(()).unwrap();
        t.join().unwrap();
    });
    // SAFETY: the other threads have exited.
    unsafe { heap.check() }.unwrap();
    // Trim gives this thread's cache back (pushing the chain) and drains every pending stack.
    heap.trim();
    assert!(root.central.iter().all(|c| c.pending.is_empty()), "trim left pending frees");
    for &p in &first.0 {
        assert_eq!(heap.block_of(p), None);
        assert!(free(p).is_err(), "a double free accepted");
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
    let again: Vec<*mut u8> = (0..4000).map(|_| heap.alloc_layout(l).unwrap().as_ptr()).collect();
    let distinct: std::collections::HashSet<usize> = again.iter().map(|p| p.addr()).collect();
    assert_eq!(distinct.len(), again.len(), "a block handed out twice");
    // SAFETY: live blocks, freed once.
    unsafe { free_each(heap, &again, l) };
    heap.strategy().release_thread_cache();
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 0);
}

/// The page cache (see "Page cache" in mheap.rs): small-object spans of 1 to 16 pages come
/// from one 64-page block and their pages go back to it, the checker passing after every
/// step (the cache's pages marked in use and counted in use); spans that do not
/// fit it take the page allocator's first fit; `trim` gives the cache's pages back too.
#[test]
fn page_cache_serves_small_spans() {
    use super::mheap::PCACHE_MAX_PAGES;
    use super::sizeclass::{class_for, span_class};
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let one = Layout::from_size_align(16, 8).unwrap();
    let p = heap.alloc_layout(one).unwrap();
    let root = heap.strategy().existing_root().unwrap();
    let src = heap.source();
    // 1 KiB objects: at most 128 in a span of 16 pages.
    let spc = span_class(class_for(1024, 8).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut spans = Vec::new();
    let mut in_cache = 0;
    for round in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if spans.len() < 24 && (!x.is_multiple_of(3) || spans.is_empty()) {
            let npages = 1 + (x >> 8) as usize % PCACHE_MAX_PAGES;
            let mut h = root.heap.lock.lock();
            let s = h.alloc_span(src, npages, 1, spc).expect("a span");
            let c = h.pcache;
            if !c.arena.is_null() {
                // SAFETY: the cache's arena is registered.
                let a = unsafe { &*c.arena };
                // SAFETY: a live span.
                let first = (unsafe { s.as_ref() }.base_addr() - a.base_addr()) / super::PAGE_BYTES;
                in_cache += usize::from(first / 64 == c.word);
            }
            spans.push(s);
        } else {
            let s = spans.swap_remove((x >> 16) as usize % spans.len());
            // SAFETY: an empty span of this heap, on no list, owned by nobody.
            unsafe { root.heap.lock.lock().free_span(s) };
        }
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    assert!(in_cache > 50, "only {in_cache} spans from the page cache");
    for s in spans {
        // SAFETY: as above.
        unsafe { root.heap.lock.lock().free_span(s) };
    }
    // SAFETY: a live block of this heap, freed once.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), one) };
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    heap.trim();
    let h = root.heap.lock.lock();
    assert!(h.pcache.arena.is_null(), "trim left the page cache filled");
    assert_eq!(h.free_ready_pages, 0, "trim left Ready free pages");
    drop(h);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// One-page spans take their first page's head slot (see "head slots" in arena.rs), which
/// `head_slot` finds from the address alone; once no cache holds the spans, every slot reads
/// a null owner, so the owner's free trusts none of them.
#[test]
fn small_spans_take_head_slots_and_released_ones_have_no_owner() {
    use super::arena::{index_entry, index_of, page_in_arena};
    use super::sizeclass::PAGE_BYTES;
    use core::ptr;
    use core::sync::atomic::Ordering::Relaxed;
    let heap: Heap<Tiered, Mmap> = Heap::new();
    // 1 KiB objects: one-page spans of 8 objects, 16 spans.
    let l = Layout::from_size_align(1024, 8).unwrap();
    let ptrs: Vec<_> = (0..128).map(|_| heap.alloc_layout(l).unwrap()).collect();
    let root = heap.strategy().existing_root().unwrap();
    let addr = ptrs[0].as_ptr().addr();
    // SAFETY: `addr` is a live block, so its arena is registered in the root's index.
    let arena = unsafe { &*index_entry(root.index, index_of(addr)).unwrap().load(Relaxed) };
    // A free through `find_small` gives the cache its arena hint, which `find_mine` needs.
    let extra = heap.alloc_layout(l).unwrap();
    // SAFETY: a live block of this heap, freed once.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, extra.as_ptr(), l) };
    let cache = heap.strategy().cached_cache().expect("the thread's cache");
    let mut held = 0;
    for p in &ptrs {
        let page = page_in_arena(p.as_ptr().addr());
        let s = arena.span_at(page);
        assert!(arena.is_head_slot(s), "a one-page span's record is not its head slot");
        let slot = arena.head_slot(page).expect("a Ready head slot");
        assert!(ptr::eq(slot, s));
        assert_eq!(slot.base_addr(), p.as_ptr().addr() & !(PAGE_BYTES - 1));
        // The owner's lookup finds an object of a span the cache holds through the slot
        // (and, for any other, nothing: `find_small` serves those).
        let found = super::malloc::find_mine_for_tests(cache, p.as_ptr().addr());
        if ptr::eq(slot.owner.load(Relaxed), cache) {
            assert!(found.is_some_and(|o| ptr::eq(o, s)), "the cache's span not found by find_mine");
            held += 1;
        } else {
            assert!(found.is_none(), "find_mine answered for a span the cache does not hold");
        }
    }
    assert!(held > 0, "the thread's cache holds none of the spans");
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    for p in &ptrs {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), l) };
    }
    heap.strategy().release_thread_cache();
    heap.trim();
    for p in &ptrs {
        let slot = arena.head_slot(page_in_arena(p.as_ptr().addr())).expect("slots stay Ready");
        assert!(slot.owner.load(Relaxed).is_null(), "a slot no cache holds has an owner");
    }
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}
