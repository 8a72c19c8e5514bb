//! A heap gives everything back: `Heap::release_all` and `Drop for Heap` return every page to
//! the source (state None), live blocks included, under every strategy; a heap used again
//! after `release_all` starts afresh; threads that used a dropped heap live on and use other
//! heaps safely. (heap_drop_memory.rs measures the process after many dropped heaps.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Arc, Barrier};
use std::thread;

use stratalloc::{
    BestFit, ConstInit, FirstFit, Fixed, Heap, Mmap, NextFit, SegregatedFit, Strategy, Tiered, Tracked,
};
use workloads::Rng;

#[path = "common/mixed_size.rs"]
mod mixed_size;
use mixed_size::size;

fn align(rng: &mut Rng) -> usize {
    1 << [0, 3, 3, 4, 4, 4, 6, 12][rng.below(8)]
}

/// Allocates `n` mixed blocks (writing each), frees about two thirds of them (half by layout,
/// half by address); returns the live ones.
fn fill<S: Strategy, P: stratalloc::PageSource>(
    heap: &Heap<S, P>,
    rng: &mut Rng,
    n: usize,
) -> Vec<(*mut u8, Layout)> {
    let mut live = Vec::with_capacity(n);
    for _ in 0..n {
        let layout = Layout::from_size_align(size(rng), align(rng)).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { heap.alloc(layout) };
        assert!(!p.is_null(), "{} refused {layout:?}", heap.strategy().name());
        // SAFETY: the block is valid for `size` bytes.
        unsafe { p.write_bytes(0xA5, layout.size()) };
        live.push((p, layout));
        if rng.below(3) != 0 {
            let (q, l) = live.swap_remove(rng.below(live.len()));
            if rng.below(2) == 0 {
                // SAFETY: a live block of this heap with its layout.
                unsafe { heap.dealloc(q, l) };
            } else {
                // SAFETY: a live block of this heap, given up.
                let r = unsafe { heap.free(std::ptr::NonNull::new(q).unwrap()) };
                assert!(
                    r.is_ok(),
                    "{}: free by address of a live block {q:p}: {r:?}",
                    heap.strategy().name()
                );
            }
        }
    }
    live
}

/// `release_all` with blocks live: the source ends with every page None, no illegal
/// transition; the heap then works again, and a second `release_all` empties it again.
fn release_all_returns_every_page<S: Strategy + ConstInit>() {
    let heap: Heap<S, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let mut rng = Rng::seeded(7);
    for round in 0..2 {
        let live = fill(&heap, &mut rng, 2000);
        assert!(!live.is_empty());
        // SAFETY: single-threaded; the blocks in `live` are not used again.
        unsafe { heap.check() }.unwrap();
        // SAFETY: no block of this heap is used after this, and no other thread uses it.
        unsafe { heap.release_all() };
        let c = heap.source().counts();
        assert_eq!(
            (c.reserved, c.prepared, c.ready, c.illegal),
            (0, 0, 0, 0),
            "{} round {round}: after release_all the source still holds pages: {c:?}",
            heap.strategy().name()
        );
        let s = heap.stats();
        assert_eq!(
            (s.live_bytes, s.live_objects, s.committed_bytes, s.reserved_bytes),
            (0, 0, 0, 0),
            "{} round {round}: stats after release_all: {s:?}",
            heap.strategy().name()
        );
        for (p, _) in &live {
            assert!(heap.block_of(*p).is_none(), "{}: block_of of a released block", heap.strategy().name());
        }
    }
}

/// Threads use a heap over a `Fixed` region, stay alive while it is dropped and its region
/// poisoned and freed, then use other heaps of the same strategy (a fresh region each) and
/// exit: no thread reaches the freed region through what it kept of the first heap. Regions
/// are 72 MiB aligned to 64 MiB, so that `Tiered` finds a whole arena in each.
fn threads_outlive_a_dropped_heap<S: Strategy + ConstInit + 'static>() {
    const REGION: usize = 72 << 20;
    const THREADS: usize = 3;
    let region_layout = Layout::from_size_align(REGION, 64 << 20).unwrap();
    for round in 0..3 {
        // SAFETY: non-zero size.
        let base = unsafe { System.alloc(region_layout) };
        assert!(!base.is_null());
        // SAFETY: the region is ours, valid for REGION bytes, and outlives the heap (freed
        // only after the heap is dropped below).
        let heap: Arc<Heap<S, Fixed>> = Arc::new(Heap::with_source(unsafe { Fixed::new(base, REGION) }));
        let used = Arc::new(Barrier::new(THREADS + 1));
        let dropped = Arc::new(Barrier::new(THREADS + 1));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (heap, used, dropped) = (Arc::clone(&heap), Arc::clone(&used), Arc::clone(&dropped));
                thread::spawn(move || {
                    let mut rng = Rng::seeded((round * 10 + t) as u64);
                    // A failed check must not leave the other threads at a barrier: each
                    // phase's panic is caught and reported after the barriers.
                    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        for (p, l) in fill(&*heap, &mut rng, 300) {
                            // SAFETY: a live block of this heap with its layout.
                            unsafe { heap.dealloc(p, l) };
                        }
                    }));
                    drop(heap);
                    used.wait();
                    dropped.wait();
                    first?;
                    // The first heap and its region are gone; use new heaps on this thread.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        for k in 0..4 {
                            // SAFETY: non-zero size.
                            let base = unsafe { System.alloc(region_layout) };
                            assert!(!base.is_null());
                            // SAFETY: as above; freed after the heap is dropped.
                            let h: Heap<S, Fixed> = Heap::with_source(unsafe { Fixed::new(base, REGION) });
                            drop(fill(&h, &mut rng, 100 + k));
                            drop(h);
                            // SAFETY: allocated above with this layout; its heap is dropped.
                            unsafe { System.dealloc(base, region_layout) };
                        }
                    }))
                })
            })
            .collect();
        used.wait();
        let heap = Arc::into_inner(heap).expect("every thread dropped its handle before the barrier");
        drop(heap);
        // Poison the region, then free it: a stale pointer into it now reads garbage or faults.
        // SAFETY: the region is ours, its heap dropped.
        unsafe {
            base.write_bytes(0x5A, REGION);
            System.dealloc(base, region_layout);
        }
        dropped.wait();
        for (t, h) in handles.into_iter().enumerate() {
            if let Err(e) = h.join().unwrap() {
                std::panic::resume_unwind(Box::new(format!(
                    "thread {t}: {}",
                    e.downcast_ref::<String>().map(String::as_str).unwrap_or("panicked")
                )));
            }
        }
    }
}

macro_rules! suite {
    ($($m:ident: $s:ty),*) => {$(
        mod $m {
            use super::*;
            #[test]
            fn release_all() {
                release_all_returns_every_page::<$s>();
            }
            #[test]
            fn threads_outlive_heap() {
                threads_outlive_a_dropped_heap::<$s>();
            }
        }
    )*};
}

suite!(first_fit: FirstFit, next_fit: NextFit, best_fit: BestFit, segregated_fit: SegregatedFit, tiered: Tiered);
