//! The scavenger: allocate 1 GiB in small and large objects, free it all, and the memory the
//! heap holds Ready (as `Tracked` counts it) falls below 64 MiB within a bounded amount of
//! further work: `trim()` once, or a bounded number of slow-path operations.

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
