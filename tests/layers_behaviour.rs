//! What each layer promises beyond the shared harness: arenas used by threads, cross-thread
//! frees into the owning arena, a thread's cache handed back at exit, a released heap
//! never served from a thread's cache, size routing across the limit, bad frees refused
//! through every layer.

#[macro_use]
mod harness;

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::mpsc;

use harness::reference::PagePerBlock;
use stratalloc::strategies::layers::{REFILL_BATCH, REFILL_BLOCKS, STREAK_FOR_BATCH};
use stratalloc::{
    Arenas, BadFree, BestFit, ConstInit, DRAIN_EVERY, Heap, Identity, Mmap, PageSource, Segregate,
    SegregatedFit, Strategy, ThreadCache, Tracked,
};

/// A pointer that crosses threads in a test (the blocks are plain memory of a shared heap).
#[derive(Copy, Clone)]
struct Sent(NonNull<u8>);
// SAFETY: the pointee is heap memory handed from one thread to the next, used by one at a time.
unsafe impl Send for Sent {}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Arenas for the tests that need threads alive at the same time in distinct arenas: live
/// threads hold distinct home indexes process-wide (the lowest free ones), and the tests of
/// this binary run in parallel, so a small arena count could map two of one test's threads
/// (with another test's threads holding the indexes between) to one arena. With 64, indexes
/// stay distinct arenas while fewer than 64 threads of the process hold one.
type Spread = Arenas<BestFit, 64>;

/// Runs `make` on a thread that stays alive (holding its home index, so its arena is no
/// other live thread's) while `then` runs on another thread with what `make` returned; the
/// owner thread exits only after `then` has returned. Returns `make`'s blocks.
fn while_owner_lives(
    make: impl FnOnce() -> Vec<Sent> + Send,
    then: impl FnOnce(Vec<Sent>) + Send,
) -> Vec<Sent> {
    let (tx, rx) = mpsc::channel::<Vec<Sent>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let owner = s.spawn(move || {
            tx.send(make()).unwrap();
            done_rx.recv().unwrap();
        });
        let v = rx.recv().unwrap();
        let w = v.clone();
        s.spawn(move || then(w)).join().unwrap();
        done_tx.send(()).unwrap();
        owner.join().unwrap();
        v
    })
}

/// Threads that are alive at the same time land on different arenas (live threads hold
/// distinct home indexes), and each arena's blocks are found in it by the owner map.
#[test]
fn threads_spread_over_arenas() {
    let heap: Heap<Spread> = Heap::new();
    let all_allocated = std::sync::Barrier::new(4);
    let blocks: Vec<Vec<Sent>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let v = (0..200)
                        .map(|i| Sent(heap.alloc_layout(layout(16 + i)).unwrap()))
                        .collect::<Vec<_>>();
                    // No thread exits (giving its home index back) before all have one.
                    all_allocated.wait();
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let a = heap.strategy();
    let used = (0..64).filter(|&i| a.arena(i).stats().live_objects > 0).count();
    assert_eq!(used, 4, "4 threads alive at once used {used} arena(s)");
    for (t, bs) in blocks.iter().enumerate() {
        for b in bs {
            let i = a.owner_of(b.0.as_ptr()).unwrap_or_else(|| panic!("thread {t}: {:p} in no arena", b.0));
            assert!(
                a.arena(i).block_of(b.0.as_ptr()).is_some(),
                "owner map names the wrong arena for {:p}",
                b.0
            );
        }
    }
    for (bs, t) in blocks.iter().zip(0..) {
        for (b, i) in bs.iter().zip(0..) {
            // SAFETY: live blocks of `heap` with these layouts.
            unsafe { heap.dealloc_layout(b.0, layout(16 + i)) };
        }
        let _ = t;
    }
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// Blocks allocated in one thread and freed (with and without a layout) in another go back
/// to the arena that owns them.
#[test]
fn cross_thread_frees_reach_the_owning_arena() {
    let heap: Heap<Arenas<BestFit, 4>> = Heap::new();
    let heap = &heap;
    let (tx, rx) = mpsc::channel::<Vec<Sent>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let v = (0..100).map(|i| Sent(heap.alloc_layout(layout(24 + i * 8)).unwrap())).collect();
            tx.send(v).unwrap();
        });
        let v = rx.recv().unwrap();
        let owner = heap.strategy().owner_of(v[0].0.as_ptr()).unwrap();
        assert_eq!(heap.strategy().arena(owner).stats().live_objects, 100);
        s.spawn(move || {
            // Make this thread's home another arena first.
            let mine = heap.alloc_layout(layout(64)).unwrap();
            for (i, b) in v.iter().enumerate() {
                if i % 2 == 0 {
                    // SAFETY: a live block of `heap` with this layout, given up.
                    unsafe { heap.dealloc_layout(b.0, layout(24 + i * 8)) };
                } else {
                    // SAFETY: a live block of `heap`, given up.
                    assert!(unsafe { heap.free(b.0) }.is_ok());
                }
            }
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        })
        .join()
        .unwrap();
        // Remote frees may wait pending or parked (free to the user) until `trim`.
        assert_eq!(heap.stats().live_objects, 0);
        heap.trim();
        assert_eq!(heap.strategy().arena(owner).stats().live_objects, 0);
    });
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// A thread's cached blocks leave it at thread exit: they are no longer counted live, and the
/// next trim gives every one of them back to the inner strategy.
#[test]
fn thread_exit_hands_the_cache_back() {
    let heap: Heap<ThreadCache<BestFit>> = Heap::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let v: Vec<_> = (0..20).map(|i| heap.alloc_layout(layout(16 + i * 16)).unwrap()).collect();
            for (i, p) in v.into_iter().enumerate() {
                // SAFETY: a live block of `heap` with this layout.
                unsafe { heap.dealloc_layout(p, layout(16 + i * 16)) };
            }
            assert!(heap.strategy().inner().stats().live_objects > 0, "nothing was cached");
            assert_eq!(heap.stats().live_objects, 0, "cached blocks counted as live");
        })
        .join()
        .unwrap();
    });
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    heap.trim();
    assert_eq!(
        heap.strategy().inner().stats().live_objects,
        0,
        "trim left blocks in an exited thread's cache"
    );
    // SAFETY: as above.
    unsafe { heap.check() }.unwrap();
}

/// A thread that only allocates refills one block at a time until it has refilled more
/// than `STREAK_FOR_BATCH` times since it last cached a block it freed; from then on a
/// refill takes `REFILL_BATCH` blocks (the rest cached); a freed block it caches ends the
/// run. Cached blocks are live to the inner strategy, free to the user.
#[test]
fn a_thread_that_only_allocates_refills_in_batches() {
    fn cached(heap: &Heap<ThreadCache<Arenas<BestFit, 2>>>) -> usize {
        heap.strategy().inner().stats().live_objects - heap.stats().live_objects
    }
    let heap: Heap<ThreadCache<Arenas<BestFit, 2>>> = Heap::new();
    let l = layout(64);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut live = Vec::new();
            for k in 1..=STREAK_FOR_BATCH as usize {
                live.push(heap.alloc_layout(l).unwrap());
                assert_eq!(cached(&heap), (REFILL_BLOCKS - 1) * k, "refill {k}: one block at a time");
            }
            live.push(heap.alloc_layout(l).unwrap());
            assert_eq!(cached(&heap), REFILL_BATCH - 1, "past the streak, a batch");
            for _ in 1..REFILL_BATCH {
                live.push(heap.alloc_layout(l).unwrap());
            }
            assert_eq!(cached(&heap), 0, "the batch served the next allocations");
            // A freed block cached ends the run: the next refills take one block again.
            let p = live.pop().unwrap();
            // SAFETY: a live block of `heap` for `l`, given up.
            unsafe { heap.dealloc_layout(p, l) };
            assert_eq!(heap.alloc_layout(l), Some(p), "served from the cache");
            live.push(p);
            live.push(heap.alloc_layout(l).unwrap());
            assert_eq!(cached(&heap), REFILL_BLOCKS - 1, "one block at a time again");
            // SAFETY: no other thread uses the heap.
            unsafe { heap.check() }.unwrap();
            for p in live {
                // SAFETY: live blocks of `heap` for `l`, given up.
                unsafe { heap.dealloc_layout(p, l) };
            }
        })
        .join()
        .unwrap();
    });
    heap.trim();
    assert_eq!(heap.strategy().inner().stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// An over-aligned request takes a cached block whose start happens to be aligned (the
/// block of an over-aligned object freed by address comes back for the next), and never a
/// cached block at another address, nor one too small.
#[test]
fn over_aligned_requests_take_only_aligned_cached_blocks() {
    let heap: Heap<ThreadCache<BestFit>> = Heap::new();
    let line = Layout::from_size_align(64, 64).unwrap();
    let p = heap.alloc_layout(line).unwrap();
    // SAFETY: a live block of `heap`, freed once, by address.
    unsafe { heap.free(p) }.unwrap();
    assert_eq!(heap.alloc_layout(line), Some(p), "the aligned cached block comes back");
    // SAFETY: as above.
    unsafe { heap.free(p) }.unwrap();
    // Cache blocks of the same bin at every 16-byte offset, then ask for each alignment.
    let plain: Vec<_> = (0..6).map(|_| heap.alloc_layout(layout(64)).unwrap()).collect();
    for &q in &plain {
        // SAFETY: a live block of `heap` with this layout.
        unsafe { heap.dealloc_layout(q, layout(64)) };
    }
    for align in [32, 64, 128, 4096] {
        let l = Layout::from_size_align(64, align).unwrap();
        let q = heap.alloc_layout(l).unwrap();
        assert!(q.addr().get().is_multiple_of(align), "{q:p} for {l:?}");
        // SAFETY: a live block of `heap` with this layout.
        assert!(unsafe { heap.usable_size(q, l) } >= 64);
        // SAFETY: a live block of `heap` with this layout.
        unsafe { heap.dealloc_layout(q, l) };
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
    }
    // A cached block too small for the request is not taken, aligned or not.
    let small = heap.alloc_layout(Layout::from_size_align(16, 64).unwrap()).unwrap();
    // SAFETY: a live block of `heap`, freed once, by address.
    unsafe { heap.free(small) }.unwrap();
    let big = Layout::from_size_align(200, 64).unwrap();
    let q = heap.alloc_layout(big).unwrap();
    assert_ne!(q, small);
    assert!(q.addr().get().is_multiple_of(64));
    // SAFETY: a live block of `heap` with this layout.
    unsafe { heap.dealloc_layout(q, big) };
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// A heap released (what drop does) while a thread that cached its blocks lives on is never
/// served from that cache: the thread's next allocations are fresh blocks, and its exit
/// touches nothing of the released heap.
#[test]
fn a_released_heap_is_never_served_from_a_cache() {
    let heap: Heap<ThreadCache<BestFit>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let heap = &heap;
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<Vec<usize>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let old: Vec<_> = (0..7).map(|_| heap.alloc_layout(layout(48)).unwrap()).collect();
            let addrs = old.iter().map(|p| p.addr().get()).collect::<Vec<_>>();
            for p in old {
                // SAFETY: a live block of `heap` with this layout.
                unsafe { heap.dealloc_layout(p, layout(48)) };
            }
            done.send(addrs).unwrap();
            wait.recv().unwrap();
            // The heap was released: the cached blocks are gone with it.
            let fresh: Vec<_> = (0..7).map(|_| heap.alloc_layout(layout(48)).unwrap()).collect();
            for p in &fresh {
                assert!(heap.block_of(p.as_ptr()).is_some(), "{p:p} is no live block of the heap");
                // SAFETY: a live block of 48 bytes.
                unsafe { p.as_ptr().write_bytes(0xAB, 48) };
            }
            for p in fresh {
                // SAFETY: as above.
                unsafe { heap.dealloc_layout(p, layout(48)) };
            }
        });
        let _cached = finished.recv().unwrap();
        // SAFETY: the other thread waits and uses no block of the heap any more.
        unsafe { heap.release_all() };
        let c = heap.source().counts();
        assert_eq!(c.owned(), 0, "release_all left memory with the source: {c:?}");
        go.send(()).unwrap();
    });
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// Many heaps made, used from a long-lived thread and dropped: the thread's slots of dead
/// heaps are never used, and its exit touches none of them.
#[test]
fn dropped_heaps_and_a_long_lived_thread() {
    std::thread::spawn(|| {
        for round in 0..50 {
            let heap: Box<Heap<ThreadCache<SegregatedFit>>> = Box::new(Heap::new());
            let v: Vec<_> = (0..30).map(|i| heap.alloc_layout(layout(8 + i * 8)).unwrap()).collect();
            for (i, p) in v.into_iter().enumerate() {
                if i % 3 != 0 {
                    // SAFETY: a live block of `heap` with this layout.
                    unsafe { heap.dealloc_layout(p, layout(8 + i * 8)) };
                }
            }
            // SAFETY: this thread alone uses the heap.
            unsafe { heap.check() }.unwrap_or_else(|e| panic!("round {round}: {e}"));
            drop(heap);
        }
    })
    .join()
    .unwrap();
}

/// Refused through a layer: a double free (also of a block sitting in a thread cache), an
/// interior pointer, a stack pointer, a block of another allocator; nothing changes and no
/// block is handed out twice.
fn bad_frees<S: Strategy + ConstInit>() {
    let heap: Heap<S> = Heap::new();
    let l = layout(40);
    let a = heap.alloc_layout(l).unwrap();
    let b = heap.alloc_layout(l).unwrap();
    // SAFETY: every pointer passed below is either a live block given up, or no block.
    unsafe {
        assert!(heap.free(a).is_ok());
        assert!(heap.free(a).is_err(), "{}: double free accepted", heap.strategy().name());
        assert!(heap.free(b.add(8)).is_err(), "{}: interior pointer accepted", heap.strategy().name());
        let stack = 0u64;
        assert_eq!(heap.free(NonNull::from(&stack).cast()), Err(BadFree::Foreign));
        let boxed = Box::new(0u64);
        assert_eq!(heap.free(NonNull::from(&*boxed).cast()), Err(BadFree::Foreign));
        assert!(
            heap.block_of(a.as_ptr()).is_none(),
            "{}: a freed block is still live",
            heap.strategy().name()
        );
        assert!(heap.block_of(b.as_ptr()).is_some());
    }
    let c = heap.alloc_layout(l).unwrap();
    let d = heap.alloc_layout(l).unwrap();
    assert!(c != d && c != b && d != b, "{}: a block handed out twice", heap.strategy().name());
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    assert_eq!(heap.stats().live_objects, 3);
}

#[test]
fn bad_frees_through_every_layer() {
    bad_frees::<ThreadCache<PagePerBlock>>();
    bad_frees::<Arenas<PagePerBlock, 2>>();
    bad_frees::<Segregate<32, PagePerBlock, PagePerBlock>>();
    bad_frees::<ThreadCache<Arenas<PagePerBlock>>>();
    bad_frees::<ThreadCache<BestFit>>();
    bad_frees::<ThreadCache<Arenas<BestFit>>>();
    bad_frees::<Arenas<SegregatedFit>>();
    bad_frees::<Segregate<1024, SegregatedFit, BestFit>>();
}

/// A small block freed or resized with a size past the limit (up to its usable size) is
/// still found on the small side; realloc across the limit moves the block, contents kept.
#[test]
fn segregate_routes_by_block_not_only_by_size() {
    let heap: Heap<Segregate<100, BestFit, PagePerBlock>> = Heap::new();
    let p = heap.alloc_layout(layout(100)).unwrap();
    let usable = heap.block_of(p.as_ptr()).unwrap().usable;
    assert!(usable > 100, "BestFit's usable size of a 100-byte block is {usable}");
    // SAFETY: a live block; any size up to its usable size may name it.
    unsafe { heap.dealloc_layout(p, layout(usable)) };
    assert_eq!(heap.strategy().small().stats().live_objects, 0);
    assert_eq!(heap.strategy().large().stats().live_objects, 0);

    let p = heap.alloc_layout(layout(64)).unwrap();
    // SAFETY: a live block of 64 bytes.
    unsafe { p.as_ptr().write_bytes(7, 64) };
    // SAFETY: a live block of `heap` with this layout.
    let q = unsafe { core::alloc::GlobalAlloc::realloc(&heap, p.as_ptr(), layout(64), 5000) };
    assert!(!q.is_null());
    assert_eq!(heap.strategy().large().stats().live_objects, 1);
    assert_eq!(heap.strategy().small().stats().live_objects, 0);
    // SAFETY: the first 64 bytes were kept by realloc.
    assert!(unsafe { core::slice::from_raw_parts(q, 64) }.iter().all(|&b| b == 7));
    // SAFETY: a live block of 5000 bytes.
    unsafe { core::alloc::GlobalAlloc::dealloc(&heap, q, layout(5000)) };
    assert_eq!(heap.stats().live_objects, 0);
}

/// Everything goes back to the source when a composed heap is released.
#[test]
fn release_all_gives_everything_back() {
    fn run<S: Strategy + ConstInit>() {
        let heap: Heap<S, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
        std::thread::scope(|s| {
            for t in 0..4 {
                let heap = &heap;
                s.spawn(move || {
                    let v: Vec<_> = (0..100)
                        .map(|i| heap.alloc_layout(layout(8 + (i * 37 + t) % 3000)).unwrap())
                        .collect();
                    for (i, p) in v.into_iter().enumerate() {
                        if i % 4 != 0 {
                            // SAFETY: a live block of `heap`, given up.
                            assert!(unsafe { heap.free(p) }.is_ok());
                        }
                    }
                });
            }
        });
        // SAFETY: no other thread uses the heap, no block is used again.
        unsafe { heap.release_all() };
        let c = heap.source().counts();
        assert_eq!(c.owned(), 0, "{}: {c:?}", core::any::type_name::<S>());
        assert_eq!(Tracked::<Mmap>::PAGE_BYTES, 4096);
    }
    run::<ThreadCache<Arenas<BestFit>>>();
    run::<Segregate<512, SegregatedFit, Arenas<BestFit, 2>>>();
    run::<ThreadCache<Arenas<PagePerBlock>>>();
}

/// `free_batch` over blocks of several arenas, interleaved, frees every one into its owner
/// (runs of one arena under one lock), for the arenas and for a bare free list.
#[test]
fn free_batch_frees_each_block_into_its_arena() {
    let heap: Heap<Arenas<BestFit, 4>> = Heap::new();
    let heap = &heap;
    let per_thread: Vec<Vec<Sent>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(move || {
                    (0..40).map(|i| Sent(heap.alloc_layout(layout(16 + i * 8)).unwrap())).collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Interleave the threads' blocks so that runs of one arena are short.
    let mixed: Vec<NonNull<u8>> = (0..40).flat_map(|i| per_thread.iter().map(move |v| v[i].0)).collect();
    assert_eq!(heap.stats().live_objects, 120);
    // SAFETY: live blocks of the heap's strategy, each once, given up; the heap's source.
    let n = unsafe { heap.strategy().free_batch(heap.source(), &mixed) };
    assert_eq!(n, 120);
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();

    let bare: Heap<BestFit> = Heap::new();
    let v: Vec<NonNull<u8>> = (0..50).map(|i| bare.alloc_layout(layout(8 + i * 24)).unwrap()).collect();
    // SAFETY: as above.
    assert_eq!(unsafe { bare.strategy().free_batch(bare.source(), &v) }, 50);
    assert_eq!(bare.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { bare.check() }.unwrap();
}

/// Remote frees (`dealloc` from a thread whose home is another arena) wait on the owner's
/// stack: free to the user (not counted live, unknown to `block_of`, counted by the walker),
/// still live to the arena's strategy, until a holder of the arena's lock drains them (here
/// the owner's next allocation). A pending block freed again by address is refused.
#[test]
fn remote_frees_wait_on_the_owners_stack_until_drained() {
    let heap: Heap<Spread> = Heap::new();
    let heap = &heap;
    let (tx, rx) = mpsc::channel::<Vec<Sent>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let owner_thread = s.spawn(move || {
            let v: Vec<Sent> =
                (0..10).map(|i| Sent(heap.alloc_layout(layout(32 + i * 16)).unwrap())).collect();
            tx.send(v).unwrap();
            go_rx.recv().unwrap();
            // The owner's next allocation drains its stack.
            let p = heap.alloc_layout(layout(40)).unwrap();
            // SAFETY: a live block of `heap` with this layout.
            unsafe { heap.dealloc_layout(p, layout(40)) };
            done_tx.send(()).unwrap();
        });
        let v = rx.recv().unwrap();
        let a = heap.strategy();
        let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
        let w = v.clone();
        s.spawn(move || {
            // Make this thread's home another arena first.
            let mine = heap.alloc_layout(layout(64)).unwrap();
            assert_ne!(a.owner_of(mine.as_ptr()), Some(owner));
            for (i, b) in w.iter().enumerate() {
                // SAFETY: a live block of `heap` with this layout, given up.
                unsafe { heap.dealloc_layout(b.0, layout(32 + i * 16)) };
            }
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        })
        .join()
        .unwrap();
        // Pending: live to the arena's strategy, free to the user.
        assert_eq!(a.arena(owner).stats().live_objects, 10);
        assert_eq!(heap.stats().live_objects, 0);
        assert_eq!(heap.stats().live_bytes, 0);
        for b in &v {
            assert_eq!(heap.block_of(b.0.as_ptr()), None, "pending block {:p} looks live", b.0);
        }
        // The walker accounts for the pending blocks (count, bytes, each a live inner block).
        // SAFETY: the owner thread waits on the channel: no call is in flight.
        unsafe { heap.check() }.unwrap();
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        // The drain parked the blocks (live to the strategy, free to the user) and the
        // allocation took one of them, which the owner then freed into the strategy.
        assert_eq!(a.arena(owner).stats().live_objects, 9, "the owner's allocation drained the stack");
        assert_eq!(heap.stats().live_objects, 0);
        owner_thread.join().unwrap();
        heap.trim();
        assert_eq!(a.arena(owner).stats().live_objects, 0, "trim handed the parked blocks to the strategy");
    });
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// A block freed remotely and freed again is refused: with a layout while it is pending (its
/// pending mark: a debug build reports it by a panic, a release build ignores it; either way
/// the stack holds it once), and by address (the lock holder drains first, so the arena's
/// strategy sees a double free).
#[test]
fn a_remote_free_freed_again_is_refused() {
    let heap: Heap<Spread> = Heap::new();
    let heap = &heap;
    let a = heap.strategy();
    let v = while_owner_lives(
        || (0..2).map(|_| Sent(heap.alloc_layout(layout(48)).unwrap())).collect(),
        |v| {
            let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
            let first = v[0];
            let mine = heap.alloc_layout(layout(64)).unwrap();
            assert_ne!(a.owner_of(mine.as_ptr()), Some(owner));
            // SAFETY: a live block of `heap` with this layout, given up.
            unsafe { heap.dealloc_layout(first.0, layout(48)) };
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: a double free on purpose, of a block pending on its owner's stack:
                // refused by its mark before anything is written.
                unsafe { heap.dealloc_layout(first.0, layout(48)) }
            }));
            assert_eq!(again.is_err(), cfg!(debug_assertions), "debug builds report the double free");
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        },
    );
    let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
    assert_eq!(a.arena(owner).stats().live_objects, 2, "one block live, one pending");
    assert_eq!(heap.stats().live_objects, 1);
    // SAFETY: no other thread uses the heap; the walker finds the pending block once.
    unsafe { heap.check() }.unwrap();
    // SAFETY: the call refuses the pointer (not live), changing nothing.
    assert_eq!(unsafe { heap.free(v[0].0) }, Err(BadFree::NotLive));
    // The free drained the stack first: the block is parked now (live to the strategy, free
    // to the user), and refused again.
    assert_eq!(a.arena(owner).stats().live_objects, 2);
    assert_eq!(heap.stats().live_objects, 1);
    // SAFETY: as above.
    assert_eq!(unsafe { heap.free(v[0].0) }, Err(BadFree::NotLive));
    // SAFETY: a live block of `heap`, given up.
    assert!(unsafe { heap.free(v[1].0) }.is_ok());
    assert_eq!(heap.stats().live_objects, 0);
    heap.trim();
    assert_eq!(a.arena(owner).stats().live_objects, 0, "trim handed the parked block to the strategy");
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// An arena nobody allocates from any more does not hold remote frees back: the thread whose
/// push makes the count a multiple of `DRAIN_EVERY` drains the stack itself (its lock is
/// free), and `trim` drains what is left. The blocks (2,000 bytes) are too large to be
/// parked, so the drain hands them to the strategy.
#[test]
fn remote_frees_into_an_idle_arena_are_drained_by_the_pusher_and_trim() {
    let heap: Heap<Spread> = Heap::new();
    let heap = &heap;
    let n = DRAIN_EVERY + 5;
    let a = heap.strategy();
    // The owner stays alive (so the freeing thread's home is another arena) but allocates
    // nothing more: only the pusher and `trim` drain.
    let v = while_owner_lives(
        || (0..n).map(|_| Sent(heap.alloc_layout(layout(2000)).unwrap())).collect(),
        |w| {
            let owner = a.owner_of(w[0].0.as_ptr()).unwrap();
            let mine = heap.alloc_layout(layout(64)).unwrap();
            assert_ne!(a.owner_of(mine.as_ptr()), Some(owner));
            for b in &w {
                // SAFETY: a live block of `heap` with this layout, given up.
                unsafe { heap.dealloc_layout(b.0, layout(2000)) };
            }
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        },
    );
    let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
    assert_eq!(a.arena(owner).stats().live_objects, 5, "the pusher drained the first DRAIN_EVERY");
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    heap.trim();
    assert_eq!(a.arena(owner).stats().live_objects, 0, "trim drained the rest");
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
}

/// `alloc_batch` gives distinct live blocks, counted live, as `alloc` one after another
/// would: for the arenas (one lock) and for a bare free list (one lock).
#[test]
fn alloc_batch_gives_distinct_live_blocks() {
    fn run<S: Strategy + ConstInit>() {
        let heap: Heap<S> = Heap::new();
        let l = layout(40);
        let mut buf = [NonNull::<u8>::dangling(); 6];
        // SAFETY: a non-zero size; the heap's source.
        let n = unsafe { heap.strategy().alloc_batch(heap.source(), l, &mut buf) };
        assert_eq!(n, 6);
        let mut addrs: Vec<usize> = buf.iter().map(|p| p.addr().get()).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), 6, "blocks handed out twice");
        for p in &buf {
            assert!(heap.block_of(p.as_ptr()).is_some_and(|i| i.usable >= 40));
            // SAFETY: the block is ours, valid for 40 bytes.
            unsafe { p.as_ptr().write_bytes(0xA5, 40) };
        }
        assert_eq!(heap.stats().live_objects, 6);
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
        for p in buf {
            // SAFETY: live blocks of `heap` for `l`, given up.
            unsafe { heap.dealloc_layout(p, l) };
        }
        assert_eq!(heap.stats().live_objects, 0);
        // SAFETY: no other thread uses the heap.
        unsafe { heap.check() }.unwrap();
    }
    run::<Arenas<BestFit, 4>>();
    run::<BestFit>();
    run::<ThreadCache<Arenas<BestFit, 2>>>();
}

/// The remote-free stack over `Fixed` (no OS mapping), small enough for Miri, which checks the
/// stack's pointer provenance (the head word packs a count above the address) and the
/// ordering of its pushes and take: another thread frees a block of the owner's arena, the
/// pushes are pending, the owner's next allocation drains them, and every block is reusable.
#[test]
fn miri_remote_stack_keeps_provenance_over_fixed() {
    let mut buf = vec![0u8; 1 << 20];
    // SAFETY: the buffer outlives the heap (declared first, so dropped after it) and nothing
    // else touches it.
    let src = unsafe { stratalloc::Fixed::new(buf.as_mut_ptr(), buf.len()) };
    let heap: Heap<Spread, stratalloc::Fixed> = Heap::with_source(src);
    let heap = &heap;
    let a = heap.strategy();
    let v: Vec<Sent> = (0..6).map(|i| Sent(heap.alloc_layout(layout(24 + i * 8)).unwrap())).collect();
    let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
    let remote = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let w = v.clone();
        let remote = &remote;
        s.spawn(move || {
            // This thread's home is another arena (asserted after the scope), so its frees
            // of the owner's blocks are remote.
            let mine = heap.alloc_layout(layout(64)).unwrap();
            remote.store(a.owner_of(mine.as_ptr()) != Some(owner), std::sync::atomic::Ordering::Relaxed);
            for (i, b) in w.iter().enumerate() {
                // SAFETY: a live block of `heap` with this layout, given up.
                unsafe { heap.dealloc_layout(b.0, layout(24 + i * 8)) };
            }
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        })
        .join()
        .unwrap();
    });
    assert!(remote.into_inner(), "the second thread had the owner's arena as its home");
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: no other thread uses the heap.
    unsafe { heap.check() }.unwrap();
    // The owner's next allocations drain its stack and reuse the blocks.
    let again: Vec<NonNull<u8>> = (0..6).map(|i| heap.alloc_layout(layout(24 + i * 8)).unwrap()).collect();
    assert_eq!(a.arena(owner).stats().live_objects, 6, "the stack was drained into the arena");
    for (i, p) in again.into_iter().enumerate() {
        // SAFETY: writable for its layout; then freed with it.
        unsafe {
            p.as_ptr().write_bytes(0x5a, 24 + i * 8);
            heap.dealloc_layout(p, layout(24 + i * 8));
        }
    }
    // SAFETY: as above.
    unsafe { heap.check() }.unwrap();
}

/// A strategy that forwards to `S` and counts the batch calls that reach it.
struct Batches<S> {
    inner: S,
    frees: core::sync::atomic::AtomicUsize,
    allocs: core::sync::atomic::AtomicUsize,
}

impl<S: ConstInit> ConstInit for Batches<S> {
    const INIT: Self = Batches {
        inner: S::INIT,
        frees: core::sync::atomic::AtomicUsize::new(0),
        allocs: core::sync::atomic::AtomicUsize::new(0),
    };
}

impl<S> Batches<S> {
    fn counts(&self) -> (usize, usize) {
        use core::sync::atomic::Ordering::Relaxed;
        (self.allocs.load(Relaxed), self.frees.load(Relaxed))
    }
}

// SAFETY: every call is forwarded unchanged to `S`; the batch calls are only counted first.
unsafe impl<S: Strategy> Strategy for Batches<S> {
    fn name(&self) -> &'static str {
        "batches"
    }
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(src, layout) }
    }
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(src, ptr, layout) }
    }
    fn stats(&self) -> stratalloc::StrategyStats {
        self.inner.stats()
    }
    fn block_of(&self, ptr: *const u8) -> Option<stratalloc::BlockInfo> {
        self.inner.block_of(ptr)
    }
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.free(src, ptr) }
    }
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        self.frees.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.free_batch(src, blocks) }
    }
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        self.allocs.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_batch(src, layout, out) }
    }
    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.release_all(src) }
    }
    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), stratalloc::CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.check(src) }
    }
    fn fork_prepare(&self) {
        self.inner.fork_prepare();
    }
    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_parent() }
    }
    unsafe fn fork_child(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_child() }
    }
}

/// Allocates `n` blocks of `size` bytes with one `alloc_batch` through `s`, checks them,
/// frees them with one `free_batch`, and checks the strategy again.
fn batch_round_trip<S: Strategy>(s: &S, size: usize, n: usize) {
    let mut out = vec![NonNull::dangling(); n];
    // SAFETY: a non-zero size; `Mmap` is the only source `s` is used with.
    let got = unsafe { s.alloc_batch(&Mmap, layout(size), &mut out) };
    assert_eq!(got, n);
    let mut addrs: Vec<usize> = out.iter().map(|p| p.as_ptr() as usize).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), n, "alloc_batch gave a block twice");
    assert!(out.iter().all(|p| s.block_of(p.as_ptr()).is_some_and(|b| b.usable >= size)));
    assert_eq!(s.stats().live_objects, n);
    // SAFETY: the live blocks just allocated, each once; the same source.
    assert_eq!(unsafe { s.free_batch(&Mmap, &out) }, n);
    assert_eq!(s.stats().live_objects, 0);
    // SAFETY: no other thread uses `s`; its only source.
    unsafe { s.check(&Mmap) }.unwrap();
}

/// `Identity`, `Segregate` and a strategy used by reference hand `alloc_batch` and
/// `free_batch` to the inner strategy's own batch calls (one call per batch, or one per run
/// of a side for `Segregate`), not block by block.
#[test]
fn batches_reach_the_inner_strategys_batch_calls() {
    let id: Identity<Batches<BestFit>> = ConstInit::INIT;
    batch_round_trip(&id, 48, 20);
    assert_eq!(id.0.counts(), (1, 1));
    // SAFETY: no block of it is live; never used again.
    unsafe { id.release_all(&Mmap) };

    static BY_REF: Batches<BestFit> = ConstInit::INIT;
    let r: &'static Batches<BestFit> = &BY_REF;
    batch_round_trip(&r, 40, 12);
    assert_eq!(BY_REF.counts(), (1, 1));
    // SAFETY: no block of it is live; never used again.
    unsafe { r.release_all(&Mmap) };

    let seg: Segregate<256, Batches<BestFit>, Batches<BestFit>> = ConstInit::INIT;
    batch_round_trip(&seg, 64, 10);
    batch_round_trip(&seg, 1000, 6);
    assert_eq!(seg.small().counts(), (1, 1));
    assert_eq!(seg.large().counts(), (1, 1));
    // A batch mixing the sides: one free_batch per run of one side.
    let mut small = vec![NonNull::dangling(); 4];
    let mut large = vec![NonNull::dangling(); 4];
    // SAFETY: non-zero sizes; the only source.
    unsafe {
        assert_eq!(seg.alloc_batch(&Mmap, layout(32), &mut small), 4);
        assert_eq!(seg.alloc_batch(&Mmap, layout(2000), &mut large), 4);
    }
    // Runs: small x2, large x2, small x2, large x2.
    let mixed = [small[0], small[1], large[0], large[1], small[2], small[3], large[2], large[3]];
    // SAFETY: live blocks of `seg`, each once.
    assert_eq!(unsafe { seg.free_batch(&Mmap, &mixed) }, 8);
    assert_eq!(seg.stats().live_objects, 0);
    assert_eq!(seg.small().counts(), (2, 3));
    assert_eq!(seg.large().counts(), (2, 3));
    // SAFETY: no other thread uses it; its only source.
    unsafe { seg.check(&Mmap) }.unwrap();
    // SAFETY: no block of it is live; never used again.
    unsafe { seg.release_all(&Mmap) };
}

/// Drained remote frees of up to 1 KiB are parked whole in their arena (not coalesced in its
/// strategy) and serve the arena's next allocations of their size: the same addresses come
/// back, zeroed for `alloc_zeroed`. Parked blocks are free to the user: unknown to
/// `block_of`, not counted live, refused by a free by address; `check` walks them and
/// `trim` hands them to the strategy.
#[test]
fn drained_remote_frees_are_parked_and_served_whole() {
    let heap: Heap<Spread> = Heap::new();
    let heap = &heap;
    let a = heap.strategy();
    let (tx, rx) = mpsc::channel::<Vec<Sent>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (back_tx, back_rx) = mpsc::channel::<Vec<Sent>>();
    std::thread::scope(|s| {
        let owner_thread = s.spawn(move || {
            let v: Vec<Sent> = (0..20)
                .map(|_| {
                    let p = heap.alloc_layout(layout(64)).unwrap();
                    // SAFETY: a live block of 64 bytes, ours.
                    unsafe { p.as_ptr().write_bytes(0xEE, 64) };
                    Sent(p)
                })
                .collect();
            tx.send(v).unwrap();
            go_rx.recv().unwrap();
            // The first allocation drains the stack (parking the blocks) and takes one.
            let mut again: Vec<Sent> = (0..5).map(|_| Sent(heap.alloc_layout(layout(64)).unwrap())).collect();
            let z = heap.strategy();
            // SAFETY: the heap's source; a non-zero size.
            let zp = unsafe { z.alloc_zeroed(heap.source(), layout(64)) }.unwrap();
            // SAFETY: a live block of 64 bytes, ours.
            assert!(unsafe { core::slice::from_raw_parts(zp.as_ptr(), 64) }.iter().all(|&b| b == 0));
            again.push(Sent(zp));
            back_tx.send(again).unwrap();
        });
        let v = rx.recv().unwrap();
        let owner = a.owner_of(v[0].0.as_ptr()).unwrap();
        let w = v.clone();
        s.spawn(move || {
            let mine = heap.alloc_layout(layout(64)).unwrap();
            assert_ne!(a.owner_of(mine.as_ptr()), Some(owner));
            for b in &w {
                // SAFETY: a live block of `heap` with this layout, given up.
                unsafe { heap.dealloc_layout(b.0, layout(64)) };
            }
            // SAFETY: as above.
            unsafe { heap.dealloc_layout(mine, layout(64)) };
        })
        .join()
        .unwrap();
        go_tx.send(()).unwrap();
        let again = back_rx.recv().unwrap();
        owner_thread.join().unwrap();
        let freed: Vec<usize> = v.iter().map(|b| b.0.addr().get()).collect();
        for b in &again {
            assert!(freed.contains(&b.0.addr().get()), "{:p} is not a parked block served whole", b.0);
        }
        // 14 parked: live to the strategy, free to the user.
        assert_eq!(heap.stats().live_objects, 6);
        assert_eq!(a.arena(owner).stats().live_objects, 20);
        let taken: Vec<usize> = again.iter().map(|b| b.0.addr().get()).collect();
        let parked: Vec<Sent> = v.iter().copied().filter(|b| !taken.contains(&b.0.addr().get())).collect();
        assert_eq!(parked.len(), 14);
        for b in &parked {
            assert_eq!(heap.block_of(b.0.as_ptr()), None, "parked block {:p} looks live", b.0);
        }
        // SAFETY: no call is in flight; the walker checks the parked stacks.
        unsafe { heap.check() }.unwrap();
        // SAFETY: a parked block: refused, changing nothing.
        assert_eq!(unsafe { heap.free(parked[0].0) }, Err(BadFree::NotLive));
        for b in &again {
            // SAFETY: live blocks of `heap`, given up.
            assert!(unsafe { heap.free(b.0) }.is_ok());
        }
        assert_eq!(heap.stats().live_objects, 0);
        assert_eq!(a.arena(owner).stats().live_objects, 14);
        heap.trim();
        assert_eq!(a.arena(owner).stats().live_objects, 0, "trim handed the parked blocks to the strategy");
        // SAFETY: no call is in flight.
        unsafe { heap.check() }.unwrap();
    });
}
