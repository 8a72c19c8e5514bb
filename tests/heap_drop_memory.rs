//! Heaps made, filled and dropped in a loop do not make the process grow, under every
//! strategy. One test in its own binary, so that no other test maps or frees memory while it
//! reads the process's size.

use std::alloc::Layout;

use stratalloc::{BestFit, ConstInit, FirstFit, Heap, Mmap, NextFit, SegregatedFit, Strategy, Tiered};
use workloads::Rng;

#[path = "common/mixed_size.rs"]
mod mixed_size;
use mixed_size::size;

/// Allocates `n` mixed blocks (writing each) and frees about two thirds of them by address;
/// returns the live ones.
fn fill<S: Strategy>(heap: &Heap<S, Mmap>, rng: &mut Rng, n: usize) -> Vec<(*mut u8, Layout)> {
    let mut live = Vec::with_capacity(n);
    for _ in 0..n {
        let layout = Layout::from_size_align(size(rng), 1 << [0, 3, 4, 4, 6][rng.below(5)]).unwrap();
        let p = heap
            .alloc_layout(layout)
            .unwrap_or_else(|| panic!("{} refused {layout:?}", heap.strategy().name()));
        // SAFETY: the block is valid for `size` bytes.
        unsafe { p.as_ptr().write_bytes(0xA5, layout.size()) };
        live.push((p.as_ptr(), layout));
        if rng.below(3) != 0 {
            let (q, _) = live.swap_remove(rng.below(live.len()));
            // SAFETY: a live block of this heap, given up.
            let r = unsafe { heap.free(std::ptr::NonNull::new(q).unwrap()) };
            assert!(r.is_ok(), "{}: free by address of a live block {q:p}: {r:?}", heap.strategy().name());
        }
    }
    live
}

/// Reads a field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 300 heaps, each made, filled with 2,000 mixed blocks and dropped (every third with its
/// live blocks left in it): the process's address space and resident memory do not grow by
/// more than a few heaps' worth (the bound: 64 MiB and 16 MiB).
fn dropped_heaps_leave_nothing<S: Strategy + ConstInit>() {
    let mut rng = Rng::seeded(300);
    let run = |k: usize, rng: &mut Rng| {
        let heap: Heap<S, Mmap> = Heap::new();
        let live = fill(&heap, rng, 2000);
        if !k.is_multiple_of(3) {
            for (p, l) in live {
                // SAFETY: a live block of this heap with its layout.
                unsafe { heap.dealloc_layout(std::ptr::NonNull::new(p).unwrap(), l) };
            }
        }
        drop(heap);
    };
    // A few rounds first, so that what the process maps once (the test harness, the first
    // thread-local slots) is not counted.
    for k in 0..5 {
        run(k, &mut rng);
    }
    let (vm, rss) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    for k in 0..300 {
        run(k, &mut rng);
    }
    let (vm2, rss2) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    let name = S::INIT.name();
    eprintln!(
        "{name}: 300 heaps made, filled and dropped: address space {:+} KiB, resident {:+} KiB",
        vm2 as isize - vm as isize,
        rss2 as isize - rss as isize
    );
    assert!(vm2 < vm + (64 << 10), "{name}: 300 dropped heaps grew the address space {vm} -> {vm2} KiB");
    assert!(rss2 < rss + (16 << 10), "{name}: 300 dropped heaps grew the resident set {rss} -> {rss2} KiB");
}

#[test]
fn dropped_heaps_leave_nothing_under_every_strategy() {
    dropped_heaps_leave_nothing::<FirstFit>();
    dropped_heaps_leave_nothing::<NextFit>();
    dropped_heaps_leave_nothing::<BestFit>();
    dropped_heaps_leave_nothing::<SegregatedFit>();
    dropped_heaps_leave_nothing::<Tiered>();
}
