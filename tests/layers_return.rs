//! Issue 19: memory that thread-cache compositions give back without `trim`, counted by the
//! `Tracked` page source (bytes Ready), so the checks depend on the operations done, not on
//! time or on the scheduler. The plain free lists give a chunk back when it becomes wholly
//! free; under `ThreadCache` a few blocks freed last stay cached, each keeping its chunk
//! (up to `MERGE_MAX_BYTES` when growth extends a chunk) from becoming wholly free.
//!
//! Scale: 64 MiB of small blocks here (debug builds); the 512 MiB scenario as resident
//! memory of a C program is `comparisons/preload/tests/memory_return.c` (figures in
//! `comparisons/preload/README.md`).

use std::alloc::{GlobalAlloc, Layout};

use stratalloc::{Arenas, BestFit, Heap, Mmap, Strategy, ThreadCache, Tracked};

/// A xorshift generator: the same sizes and order on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A small size, 16 ..= 1024 bytes.
    fn small(&mut self) -> Layout {
        Layout::from_size_align(16 + (self.next() % 1009) as usize, 16).unwrap()
    }
}

/// `total` bytes of small blocks of random sizes, each written whole.
fn alloc_small<S: Strategy>(
    heap: &Heap<S, Tracked<Mmap>>,
    rng: &mut Rng,
    total: usize,
) -> Vec<(usize, Layout)> {
    let (mut v, mut bytes) = (Vec::new(), 0);
    while bytes < total {
        let l = rng.small();
        let p = heap.alloc_layout(l).expect("small block").as_ptr();
        // SAFETY: the block is ours, `l.size()` bytes.
        unsafe { p.write_bytes(v.len() as u8, l.size()) };
        v.push((p as usize, l));
        bytes += l.size();
    }
    v
}

/// Frees every block of `v`, in a shuffled order.
fn free_shuffled<S: Strategy>(heap: &Heap<S, Tracked<Mmap>>, rng: &mut Rng, mut v: Vec<(usize, Layout)>) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.next() as usize % (i + 1));
    }
    for (p, l) in v {
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.dealloc(p as *mut u8, l) };
    }
}

/// `n` small allocations, each freed after the next 63 (a ring of 64 live blocks).
fn ring_work<S: Strategy>(heap: &Heap<S, Tracked<Mmap>>, rng: &mut Rng, n: usize) {
    let mut ring: [(usize, Layout); 64] = [(0, Layout::new::<u8>()); 64];
    for i in 0..n {
        let l = rng.small();
        let p = heap.alloc_layout(l).expect("small block").as_ptr();
        let (q, ql) = std::mem::replace(&mut ring[i % 64], (p as usize, l));
        if q != 0 {
            // SAFETY: a live block of this heap, freed once.
            unsafe { heap.dealloc(q as *mut u8, ql) };
        }
    }
    for (q, ql) in ring {
        if q != 0 {
            // SAFETY: a live block of this heap, freed once.
            unsafe { heap.dealloc(q as *mut u8, ql) };
        }
    }
}

/// 64 MiB of small blocks (about 130,000) freed, by the allocating thread or by another
/// one, then 200,000 small allocations (a ring of 64 live blocks), with no `trim`; returns
/// the bytes Ready after the frees and at the end.
fn scenario<S: Strategy>(heap: &Heap<S, Tracked<Mmap>>, remote: bool) -> (usize, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v = alloc_small(heap, &mut rng, 64 << 20);
    assert!(heap.source().counts().ready >= 64 << 20);
    if remote {
        let mut rng2 = Rng(0x1234_5678_9abc_def1);
        std::thread::scope(|t| {
            t.spawn(|| free_shuffled(heap, &mut rng2, v));
        });
    } else {
        free_shuffled(heap, &mut rng, v);
    }
    let after_frees = heap.source().counts().ready;
    ring_work(heap, &mut rng, 200_000);
    let after = heap.source().counts().ready;
    println!(
        "{}: Ready after the frees {} KiB, after 200,000 more {} KiB",
        heap.strategy().name(),
        after_frees >> 10,
        after >> 10
    );
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: the other thread, if any, has exited.
    unsafe { heap.check() }.unwrap();
    (after_frees, after)
}

/// What may stay Ready: the free lists keep up to `RETAIN_FREE_BYTES` (1 MiB) of wholly free
/// chunks, plus the chunk the ring works in and the cache's records.
const LIMIT: usize = 8 << 20;

/// Without the flush and bypass after `FLUSH_AFTER_OVERFLOWS` frees past full bins, the
/// blocks freed last stayed cached (up to a bin's worth per bin), each keeping its chunk
/// (grown up to 64 MiB by extension) from becoming wholly free: about 67 MiB of the 64 MiB
/// freed stayed Ready here, through the ring's work too; now about 1 MiB.
#[test]
fn tcache_best_fit_gives_a_freed_working_set_back_without_trim() {
    let h: Heap<ThreadCache<BestFit>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let (after_frees, after) = scenario(&h, false);
    assert!(after_frees <= LIMIT, "{} MiB Ready after the frees", after_frees >> 20);
    assert!(after <= LIMIT, "{} MiB Ready at the end", after >> 20);
}

/// The same through `Arenas` (the preload's `tcache(arenas(best-fit))`).
#[test]
fn tcache_arenas_best_fit_gives_a_freed_working_set_back_without_trim() {
    let h: Heap<ThreadCache<Arenas<BestFit>>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let (after_frees, after) = scenario(&h, false);
    assert!(after_frees <= LIMIT, "{} MiB Ready after the frees", after_frees >> 20);
    assert!(after <= LIMIT, "{} MiB Ready at the end", after >> 20);
}

/// Freed by another thread, which then exits: its record is flushed when the burst passes
/// `FLUSH_AFTER_OVERFLOWS`, so the idle record it leaves holds nothing. What stays (about
/// 9 MiB here) is the chunk that the allocating thread's own cached blocks keep: its refills
/// took batches (a producer) and cached the extra blocks, which its ring work then reuses.
#[test]
fn tcache_best_fit_gives_a_remotely_freed_working_set_back_without_trim() {
    let h: Heap<ThreadCache<BestFit>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let (_, after) = scenario(&h, true);
    assert!(after <= 2 * LIMIT, "{} MiB Ready at the end", after >> 20);
}

/// The same through `Arenas`: the freeing thread's home is another arena, so its frees go
/// onto the allocating thread's arena as remote frees. Fails today (about 66 MiB stay Ready;
/// benches/README.md, "Issue 19: branch lay10"): about 400 blocks stay cached in the
/// allocating thread's bins, first the extra blocks of its batched refills (which keep
/// every chunk from becoming wholly free while the other thread frees), then the ring's own
/// blocks, which best fit placed in the freed chunks. Ignored until that is fixed; run it
/// with `--ignored`.
#[test]
#[ignore = "known: tcache(arenas(best-fit)) keeps the chunks of a remotely freed working set"]
fn tcache_arenas_best_fit_gives_a_remotely_freed_working_set_back_without_trim() {
    let h: Heap<ThreadCache<Arenas<BestFit>>, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let (after_frees, after) = scenario(&h, true);
    let arenas = h.strategy().inner();
    for i in 0..stratalloc::strategies::layers::DEFAULT_ARENAS {
        println!("arena {i}: {:?}", arenas.arena(i).stats());
    }
    println!("after frees {} KiB, arenas {:?}, stats {:?}", after_frees >> 10, arenas.stats(), h.stats());
    assert!(after <= 2 * LIMIT, "{} MiB Ready at the end", after >> 20);
}
