//! A thread started after another exited takes over the exited thread's arena (glibc's
//! `free_list`), while threads alive at the same time keep distinct arenas. In a test binary
//! of its own: home indexes are process-wide, and the only threads that claim one here are
//! the ones this test starts.

use core::alloc::Layout;
use core::ptr::NonNull;

use stratalloc::{Arenas, BestFit, Heap};

/// A pointer that crosses threads in a test (the blocks are plain memory of a shared heap).
#[derive(Copy, Clone)]
struct Sent(NonNull<u8>);
// SAFETY: the pointee is heap memory handed from one thread to the next, used by one at a time.
unsafe impl Send for Sent {}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn a_new_thread_takes_over_the_arena_of_an_exited_one() {
    let heap: Heap<Arenas<BestFit, 4>> = Heap::new();
    let heap = &heap;
    let a = heap.strategy();
    let alloc_in_thread =
        || std::thread::scope(|s| s.spawn(|| Sent(heap.alloc_layout(layout(48)).unwrap())).join().unwrap());
    // The first thread exits (joined: its exit ran) with its block still live.
    let first = alloc_in_thread();
    let first_arena = a.owner_of(first.0.as_ptr()).unwrap();
    // The next one takes over its arena rather than a fresh one (a round robin would give
    // it the next arena).
    let second = alloc_in_thread();
    assert_eq!(a.owner_of(second.0.as_ptr()), Some(first_arena), "the exited thread's arena was not reused");
    // Two threads alive at once hold distinct arenas.
    let both_allocated = std::sync::Barrier::new(2);
    let pair: Vec<Sent> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let p = Sent(heap.alloc_layout(layout(48)).unwrap());
                    both_allocated.wait();
                    p
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(
        a.owner_of(pair[0].0.as_ptr()),
        a.owner_of(pair[1].0.as_ptr()),
        "two live threads share an arena"
    );
    for b in [first, second].iter().chain(&pair) {
        // SAFETY: live blocks of `heap` allocated with this layout, each freed once.
        unsafe { heap.dealloc_layout(b.0, layout(48)) };
    }
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}
