//! After a `fork`, the child's new threads take over the arenas of the parent's threads that
//! the child does not have: `Arenas::fork_child` keeps only the forking thread's home-index
//! claim. In a test binary of its own: home indexes are process-wide, and the only thread
//! that claims one before the fork is the one this test starts.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::{Barrier, mpsc};

use stratalloc::{Arenas, BestFit, Heap};

/// A pointer that crosses threads in a test (the blocks are plain memory of a shared heap).
#[derive(Copy, Clone)]
struct Sent(NonNull<u8>);
// SAFETY: the pointee is heap memory handed from one thread to the next, used by one at a time.
unsafe impl Send for Sent {}

fn layout() -> Layout {
    Layout::from_size_align(48, 8).unwrap()
}

#[test]
fn a_thread_of_the_child_takes_over_the_arena_of_a_parent_thread() {
    let heap: Heap<Arenas<BestFit, 4>> = Heap::new();
    let heap = &heap;
    let a = heap.strategy();
    let (tx, rx) = mpsc::channel();
    let done = Barrier::new(2);
    std::thread::scope(|s| {
        // A parent thread claims the lowest home index and stays alive across the fork.
        let parent_thread = s.spawn(|| {
            tx.send(Sent(heap.alloc_layout(layout()).unwrap())).unwrap();
            done.wait();
        });
        let held = rx.recv().unwrap();
        let held_arena = a.owner_of(held.0.as_ptr()).unwrap();
        heap.fork_prepare();
        // SAFETY: the child allocates only from `heap` (whose locks it owns after
        // `fork_child`) and from the system allocator, and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the child of a fork made after this thread's `fork_prepare`.
            unsafe { heap.fork_child() };
            // The parent thread is not in the child: a new thread must get its index, so its
            // arena (without the reset it would get the next index, another arena).
            let same = std::thread::scope(|c| {
                c.spawn(|| {
                    let p = heap.alloc_layout(layout()).unwrap();
                    a.owner_of(p.as_ptr()) == Some(held_arena)
                })
                .join()
                .unwrap_or(false)
            });
            // SAFETY: ends the child at once, running no destructor or atexit handler.
            unsafe { libc::_exit(if same { 0 } else { 3 }) };
        }
        // SAFETY: this thread called `fork_prepare` just before the fork.
        unsafe { heap.fork_parent() };
        assert!(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        // The parent thread is released before any assertion, so a failure cannot leave the
        // scope waiting for it.
        done.wait();
        parent_thread.join().unwrap();
        assert_eq!(reaped, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's new thread did not take over the arena of the parent's thread (status {status:#x})"
        );
        // SAFETY: a live block of `heap` allocated with this layout, freed once.
        unsafe { heap.dealloc_layout(held.0, layout()) };
    });
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}
