//! The scavenger: allocate 1 GiB in small and large objects, free it all, and the memory the
//! heap holds Ready (as `Tracked` counts it) falls below 64 MiB within a bounded amount of
//! further work: `trim()` once, or a bounded number of slow-path operations. And the same
//! when the only further work is fast-path small allocations and frees that the thread's
//! cache serves without a refill (the gap the scavenger had when it ran on slow paths only).

use std::alloc::{GlobalAlloc, Layout};

use stratalloc::{Heap, Mmap, Tiered, Tracked};

const GIB: usize = 1 << 30;
const LIMIT: usize = 64 << 20;

fn fill_gib(heap: &Heap<Tiered, Tracked<Mmap>>) -> Vec<(usize, Layout)> {
    let mut v = Vec::new();
    let mut total = 0;
    let small = [24usize, 256, 1000, 4096, 20_000, 32_768];
    let large = [40_000usize, 1 << 20, 5 << 20, 100 << 20];
    let mut i = 0;
    while total < GIB {
        // Half the bytes small, half large.
        let size = if total < GIB / 2 { small[i % small.len()] } else { large[i % large.len()] };
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { heap.alloc(l) };
        assert!(!p.is_null());
        // Touch one byte per OS page so that the memory is really resident.
        for off in (0..size).step_by(4096) {
            // SAFETY: inside the block.
            unsafe { p.add(off).write(1) };
        }
        v.push((p as usize, l));
        total += size;
        i += 1;
    }
    v
}

/// `n` fresh blocks of layout `l`.
fn alloc_each(heap: &Heap<Tiered, Tracked<Mmap>>, l: Layout, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            // SAFETY: `l` has a non-zero size.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            p as usize
        })
        .collect()
}

/// Alloc/free pairs of layout `l` (the thread cache's fast path) until `heap` holds less
/// than `limit` bytes Ready, at most 1,000,000 of them; returns how many it took.
fn pairs_until_ready_below(heap: &Heap<Tiered, Tracked<Mmap>>, l: Layout, limit: usize) -> usize {
    let mut pairs = 0;
    while heap.source().counts().ready >= limit {
        assert!(
            pairs < 1_000_000,
            "Ready still {} MiB after {pairs} alloc/free pairs",
            heap.source().counts().ready >> 20
        );
        // SAFETY: non-zero size; freed at once.
        unsafe {
            let p = heap.alloc(l);
            assert!(!p.is_null());
            heap.dealloc(p, l);
        }
        pairs += 1;
    }
    pairs
}

fn free_all(heap: &Heap<Tiered, Tracked<Mmap>>, v: Vec<(usize, Layout)>) {
    for (p, l) in v {
        // SAFETY: live blocks of this heap.
        unsafe { heap.dealloc(p as *mut u8, l) };
    }
}

#[test]
fn trim_returns_a_freed_gib() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let v = fill_gib(&heap);
    assert!(heap.source().counts().ready >= GIB);
    free_all(&heap, v);
    let released = heap.trim();
    let ready = heap.source().counts().ready;
    assert!(ready < LIMIT, "Ready after trim: {} MiB (released {} MiB)", ready >> 20, released >> 20);
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
    // The released pages are reused.
    let again = fill_gib(&heap);
    free_all(&heap, again);
    heap.strategy().release_thread_cache();
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

#[test]
fn slow_paths_return_a_freed_gib_in_bounded_steps() {
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let v = fill_gib(&heap);
    free_all(&heap, v);
    // Each large allocation and free does a bounded step of scavenger work (at most
    // SCAVENGE_STEP_PAGES = 8 MiB); 1 GiB needs at most 128 steps.
    let l = Layout::from_size_align(64 << 10, 8).unwrap();
    let mut steps = 0;
    while heap.source().counts().ready >= LIMIT {
        assert!(steps < 200, "Ready still {} MiB after {steps} steps", heap.source().counts().ready >> 20);
        // SAFETY: non-zero size; freed at once.
        unsafe {
            let p = heap.alloc(l);
            assert!(!p.is_null());
            heap.dealloc(p, l);
        }
        steps += 1;
    }
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

/// Small objects only: 256 MiB of 128 B objects, freed by the thread that allocated them
/// (into spans that went back to the central lists as they filled), then nothing but
/// alloc/free pairs of one class, which the thread's cache serves from the span it holds.
/// Before the free-paced steps, Ready stayed at about 266 MiB through any number of such
/// pairs; now it must fall under the retained-memory target (10 % above the heap in use, at
/// least 4 MiB, plus the metadata) within a bounded number of operations.
#[test]
fn fast_path_work_after_a_big_small_free_returns_memory() {
    const SMALL_LIMIT: usize = 24 << 20;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::new();
    let l = Layout::from_size_align(128, 8).unwrap();
    let v = alloc_each(&heap, l, (256 << 20) / 128);
    assert!(heap.source().counts().ready >= 256 << 20);
    let unused_before_free = heap.source().counts().calls_of(stratalloc::Op::Unused);
    for p in v {
        // SAFETY: live blocks of this heap, freed once.
        unsafe { heap.dealloc(p as *mut u8, l) };
    }
    // Fast-path work only, at most 1,000,000 pairs: the steps it runs are the ones the
    // free above paid for (frees into spans past the 128 MiB the thread keeps went on
    // pending stacks; the spans its own frees emptied owe theirs to the next allocation)
    // and its own allocation countdown.
    pairs_until_ready_below(&heap, l, SMALL_LIMIT);
    assert!(heap.source().counts().calls_of(stratalloc::Op::Unused) > unused_before_free);
    let st = heap.stats();
    assert_eq!(st.live_objects, 0);
    // Tracked's Ready bytes are what the heap says it holds committed.
    assert_eq!(heap.source().counts().ready, st.committed_bytes);
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

/// The same after a big free by another thread that then exits: its cache and its spans go
/// back to the central lists, and this thread, doing only fast-path pairs, brings Ready down.
#[test]
fn fast_path_work_after_another_threads_big_free_returns_memory() {
    const SMALL_LIMIT: usize = 24 << 20;
    static HEAP: Heap<Tiered, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let l = Layout::from_size_align(1000, 8).unwrap();
    // This thread's cache exists before the other thread's work.
    // SAFETY: non-zero size; freed at once.
    unsafe { HEAP.dealloc(HEAP.alloc(l), l) };
    std::thread::spawn(move || {
        let v = alloc_each(&HEAP, l, (128 << 20) / 1000);
        for p in v {
            // SAFETY: live blocks of this heap, freed once.
            unsafe { HEAP.dealloc(p as *mut u8, l) };
        }
    })
    .join()
    .unwrap();
    pairs_until_ready_below(&HEAP, l, SMALL_LIMIT);
    // SAFETY: the other thread has exited.
    unsafe { HEAP.check() }.unwrap();
}

/// The scavenger gives runs back with the heap lock released: two threads allocate, fill,
/// check and free small and large blocks (their frees run free-paced steps, their large
/// requests large-path steps) while a third trims over and over. Every byte must survive,
/// and the heap must check out afterwards.
#[test]
fn scavenging_races_allocation_without_losing_bytes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static HEAP: Heap<Tiered, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u8).map(|t| s.spawn(move || churn_and_check(&HEAP, t))).collect();
        let trimmer = s.spawn(|| {
            let mut trims = 0usize;
            while !stop.load(Ordering::Relaxed) {
                HEAP.trim();
                trims += 1;
            }
            trims
        });
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(trimmer.join().unwrap() > 0);
    });
    assert!(HEAP.source().counts().calls_of(stratalloc::Op::Unused) > 0);
    // SAFETY: the other threads have exited.
    unsafe { HEAP.check() }.unwrap();
}

fn churn_and_check(heap: &Heap<Tiered, Tracked<Mmap>>, t: u8) {
    let sizes = [100usize, 3000, 40_000, 300_000, 2 << 20];
    for round in 0..40usize {
        let v: Vec<(usize, Layout, u8)> = (0..50)
            .map(|i| {
                let l = Layout::from_size_align(sizes[(i + round) % sizes.len()], 8).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe { heap.alloc(l) };
                assert!(!p.is_null());
                let tag = (i as u8).wrapping_mul(7).wrapping_add(t);
                // SAFETY: the block is ours, `l.size()` bytes.
                unsafe { std::ptr::write_bytes(p, tag, l.size()) };
                (p as usize, l, tag)
            })
            .collect();
        for (p, l, tag) in v {
            // SAFETY: the block is live and was filled above.
            let b = unsafe { std::slice::from_raw_parts(p as *const u8, l.size()) };
            assert!(b.iter().all(|&x| x == tag), "block {p:#x} of {} bytes changed", l.size());
            // SAFETY: live block of this heap, freed once.
            unsafe { heap.dealloc(p as *mut u8, l) };
        }
    }
}

/// `Tiered::scavenger_view` reads the page heap: nothing before the first allocation; a
/// large object's pages in use while it lives; after its free, the pages retained and within
/// the target (the hold: the heap may grow back to its peak), so the bounded step of that
/// free gave nothing back; after `trim`, nothing retained.
#[test]
fn scavenger_view_reads_the_page_heap() {
    const MIB: usize = 1 << 20;
    let heap: Heap<Tiered, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    assert_eq!(heap.strategy().scavenger_view(), None);
    let l = Layout::from_size_align(8 * MIB, 8).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { heap.alloc(l) };
    assert!(!p.is_null());
    let live = heap.strategy().scavenger_view().expect("the heap exists");
    assert!(live.inuse_bytes >= 8 * MIB, "{live:?}");
    assert!(live.target_bytes >= 4 * MIB, "at least RETAIN_MIN_PAGES: {live:?}");
    let ready = heap.source().counts().ready;
    // SAFETY: live block of `heap` allocated with `l`, freed once.
    unsafe { heap.dealloc(p, l) };
    let freed = heap.strategy().scavenger_view().expect("the heap exists");
    assert_eq!(freed.inuse_bytes + 8 * MIB, live.inuse_bytes, "{freed:?}");
    assert_eq!(freed.retained_bytes, live.retained_bytes + 8 * MIB, "{freed:?}");
    assert!(freed.retained_bytes <= freed.target_bytes, "held within the target: {freed:?}");
    assert_eq!(heap.source().counts().ready, ready, "the step gave nothing back");
    heap.trim();
    let trimmed = heap.strategy().scavenger_view().expect("the heap exists");
    assert_eq!(trimmed.retained_bytes, 0, "{trimmed:?}");
    assert!(heap.source().counts().ready <= ready - 8 * MIB, "trim gave the pages back");
}
