//! Issue 22's drop target for `Tiered`: 300 heaps, each made, filled with 2,000 mixed blocks
//! and dropped (a third of them with their blocks still live), leave less than 64 MiB of
//! address space and 16 MiB resident. Alone in its file, so that no other test of the
//! process moves the figures (`/proc/self/status`, Linux only).

use std::alloc::{GlobalAlloc, Layout};

use stratalloc::{Heap, Tiered};

/// `VmSize` and `VmRSS` of this process, in bytes.
fn vm() -> (usize, usize) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = s.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
    };
    (field("VmSize:"), field("VmRSS:"))
}

#[test]
fn three_hundred_dropped_heaps_give_their_memory_back() {
    let mut ptrs = Vec::with_capacity(2000);
    let mut run = |k: usize| {
        let heap: Heap<Tiered> = Heap::new();
        for i in 0..2000usize {
            let size = [16, 40, 100, 700, 3000, 12_000, 40 << 10, 200 << 10][(i * 7 + k) % 8];
            let l = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            // SAFETY: a fresh block of `size` bytes.
            unsafe { p.write_bytes(1, size.min(4096)) };
            ptrs.push((p, l));
        }
        if !k.is_multiple_of(3) {
            for (p, l) in ptrs.drain(..) {
                // SAFETY: live blocks, freed once.
                unsafe { heap.dealloc(p, l) };
            }
        }
        ptrs.clear();
        drop(heap);
    };
    // A few rounds first, so that the figures start from a warm process (thread-local
    // storage, the test harness's own allocations).
    for k in 0..5 {
        run(k);
    }
    let (size0, rss0) = vm();
    for k in 0..300 {
        run(k);
    }
    let (size1, rss1) = vm();
    let grown = size1.saturating_sub(size0);
    let resident = rss1.saturating_sub(rss0);
    eprintln!("300 heaps: address space +{} KiB, resident +{} KiB", grown >> 10, resident >> 10);
    assert!(grown < 64 << 20, "address space grew by {grown} bytes");
    assert!(resident < 16 << 20, "resident memory grew by {resident} bytes");
}
