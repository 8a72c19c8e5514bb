//! Issue 22 and issue 16 item 6: a released `Tiered` heap (a dropped `Heap`) is never
//! reached again through the thread-local cache slots of threads that used it and live on.
//! The heaps here live over `Fixed` regions mapped with `mmap` and unmapped as soon as the
//! heap is dropped: a thread that touched one afterwards (through a stale slot, at its next
//! allocation from another heap, at an eviction or at its exit) would fault.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Arc, Barrier};
use std::thread;

use stratalloc::{Fixed, Heap, Tiered};

/// An anonymous mapping, unmapped on drop.
struct Mapping {
    base: *mut u8,
    bytes: usize,
}

impl Mapping {
    fn new(bytes: usize) -> Mapping {
        // SAFETY: an anonymous private mapping; the arguments are valid.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {bytes} bytes");
        Mapping { base: p.cast(), bytes }
    }

    fn source(&self) -> Fixed {
        // SAFETY: the mapping outlives the heap built over it (each test drops the heap
        // first) and nothing else uses it meanwhile.
        unsafe { Fixed::new(self.base, self.bytes) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this size; the heap over it is gone.
        assert_eq!(unsafe { libc::munmap(self.base.cast(), self.bytes) }, 0);
    }
}

/// Allocates and frees a few blocks of `heap` on the calling thread (binding it a cache).
fn use_heap<H: GlobalAlloc>(heap: &H) {
    for size in [8usize, 100, 5000, 40 << 10] {
        let l = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: non-zero size; freed once below.
        let p = unsafe { heap.alloc(l) };
        if !p.is_null() {
            // SAFETY: allocated above with `l`.
            unsafe { p.write_bytes(0xa5, size) };
            // SAFETY: allocated above with `l`.
            unsafe { heap.dealloc(p, l) };
        }
    }
}

/// Threads that used a heap over a region stay alive while the heap is dropped (with blocks
/// still live) and its region unmapped; then they use five more heaps each (their slots
/// shift and the stale one is evicted) and exit (the exit guard walks every slot).
#[test]
fn threads_that_used_a_dropped_heap_never_touch_its_region() {
    const THREADS: usize = 4;
    for round in 0..3 {
        let map = Mapping::new(256 << 20);
        let heap: Arc<Heap<Tiered, Fixed>> = Arc::new(Heap::with_source(map.source()));
        let used = Arc::new(Barrier::new(THREADS + 1));
        let dropped = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (heap, used, dropped) = (heap.clone(), used.clone(), dropped.clone());
                thread::spawn(move || {
                    use_heap(&*heap);
                    // Leave blocks live on this thread's spans.
                    let l = Layout::from_size_align(64 + t, 8).unwrap();
                    for _ in 0..100 {
                        // SAFETY: non-zero size; never freed: the heap's drop takes it.
                        assert!(!unsafe { heap.alloc(l) }.is_null());
                    }
                    drop(heap);
                    used.wait();
                    dropped.wait();
                    for _ in 0..5 {
                        let other: Heap<Tiered> = Heap::new();
                        use_heap(&other);
                    }
                })
            })
            .collect();
        used.wait();
        let heap = Arc::into_inner(heap).expect("every worker let go of the heap");
        drop(heap);
        drop(map);
        dropped.wait();
        for w in workers {
            w.join().unwrap_or_else(|_| panic!("round {round}: a worker failed"));
        }
    }
}

/// Issue 16, item 6, with the thread alive: a heap whose every allocation failed (a region
/// too small for an arena) is dropped and its region unmapped while the thread that tried
/// lives on and uses other heaps.
#[test]
fn a_heap_that_never_served_leaves_no_reachable_slot() {
    thread::spawn(|| {
        for _ in 0..3 {
            let map = Mapping::new(40 << 20);
            let heap: Heap<Tiered, Fixed> = Heap::with_source(map.source());
            use_heap(&heap);
            drop(heap);
            drop(map);
        }
        for _ in 0..5 {
            let other: Heap<Tiered> = Heap::new();
            use_heap(&other);
        }
    })
    .join()
    .unwrap();
}
