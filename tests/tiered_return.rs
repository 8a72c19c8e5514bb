//! Issue 16, items 4 and 5: memory and address space that `Tiered` gives back without
//! `trim`, counted by the `Tracked` page source (bytes in each state, calls), so the checks
//! depend on the operations done, not on time or on the scheduler.
//!
//! Scale: the scenario frees 512 MiB of small blocks; here 128 MiB, so that the test
//! runs in seconds in debug builds. The 512 MiB scenario itself, as resident memory of a C
//! program under the preload library in release builds, is
//! `comparisons/preload/tests/memory_return.c` (run by `real_programs.sh`; figures in
//! `comparisons/preload/README.md`).

use std::alloc::{GlobalAlloc, Layout};

use stratalloc::{Heap, Mmap, Op, Tiered, Tracked};

type TieredHeap = Heap<Tiered, Tracked<Mmap>>;

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
fn alloc_small(heap: &TieredHeap, rng: &mut Rng, total: usize) -> Vec<(usize, Layout)> {
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
fn free_shuffled(heap: &TieredHeap, rng: &mut Rng, mut v: Vec<(usize, Layout)>) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.next() as usize % (i + 1));
    }
    for (p, l) in v {
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.dealloc(p as *mut u8, l) };
    }
}

/// `n` small allocations, each freed after the next 63 (a ring of 64 live blocks).
fn ring_work(heap: &TieredHeap, rng: &mut Rng, n: usize) {
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

/// 128 MiB of small blocks (16 B .. 1 KiB, about 250,000 of them) freed by their own thread,
/// then 500,000 small allocations (the allocation countdown runs a bounded step every 4096,
/// and the scavenger's hold ends after 96 of them): the memory the heap holds Ready falls
/// to at most `LIMIT`, through `unused` calls, with no `trim`. What stays: the span records
/// of the heap at its peak (metadata, which is not given back while the heap lives; about
/// 9 MiB here), the scavenger's retained minimum (4 MiB), and per class used the current
/// span and one empty span: about 18 MiB. Without the decay step, every class kept up to
/// 512 KiB of empty owned spans (about 30 MiB Ready at the end here), and before the cap on
/// them, the whole 128 MiB stayed Ready with no `unused` call at all (issue 16, item 4).
#[test]
fn small_blocks_freed_by_their_owner_go_back_without_trim() {
    const LIMIT: usize = 22 << 20;
    let heap: TieredHeap = Heap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v = alloc_small(&heap, &mut rng, 128 << 20);
    assert!(heap.source().counts().ready >= 128 << 20);
    free_shuffled(&heap, &mut rng, v);
    let unused_before = heap.source().counts().calls_of(Op::Unused);
    ring_work(&heap, &mut rng, 500_000);
    let c = heap.source().counts();
    println!("Ready after the frees and 500,000 allocations: {} KiB", c.ready >> 10);
    assert!(c.calls_of(Op::Unused) > unused_before, "no memory given back");
    assert!(c.ready <= LIMIT, "{} MiB still Ready (limit {} MiB)", c.ready >> 20, LIMIT >> 20);
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

/// The same when another thread frees the blocks while their owner lives on: the frees wait
/// on the remote stacks of spans the owner's cache keeps, which the owner's refills would
/// collect only from spans they look at; the decay step's periodic collection of every owned
/// span's remote frees lets the emptied spans go (about 15 MiB stay). Without it, 148 MiB
/// stayed Ready here.
#[test]
fn small_blocks_freed_by_another_thread_go_back_while_their_owner_lives() {
    const LIMIT: usize = 22 << 20;
    let heap: TieredHeap = Heap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v = alloc_small(&heap, &mut rng, 128 << 20);
    let mut rng2 = Rng(0x1234_5678_9abc_def1);
    std::thread::scope(|t| {
        t.spawn(|| free_shuffled(&heap, &mut rng2, v));
    });
    assert!(heap.source().counts().ready >= 128 << 20);
    ring_work(&heap, &mut rng, 500_000);
    let c = heap.source().counts();
    println!("Ready after remote frees and 500,000 allocations: {} KiB", c.ready >> 10);
    assert!(c.ready <= LIMIT, "{} MiB still Ready (limit {} MiB)", c.ready >> 20, LIMIT >> 20);
    assert_eq!(heap.stats().live_objects, 0);
    // SAFETY: the other thread has exited.
    unsafe { heap.check() }.unwrap();
}

/// The hysteresis that keeps the decay from thrashing: a class whose spans empty and fill
/// again (three spans' worth of 1 KiB objects allocated and freed, 300 times, with the
/// background steps this work runs in between) keeps reusing the same pages: after the
/// first round, no page-source call at all, and every block lies in the pages of the first
/// round.
#[test]
fn emptying_and_refilling_a_class_does_not_thrash() {
    let heap: TieredHeap = Heap::new();
    let l = Layout::from_size_align(1024, 16).unwrap();
    // Three 8 KiB spans of 1 KiB objects.
    let n = 3 * 8;
    let round = |heap: &TieredHeap| -> Vec<usize> {
        let v: Vec<usize> = (0..n).map(|_| heap.alloc_layout(l).unwrap().as_ptr() as usize).collect();
        for &p in &v {
            // SAFETY: a live block of this heap, freed once.
            unsafe { heap.dealloc(p as *mut u8, l) };
        }
        v
    };
    // Warm up until the heap has the pages it needs, then note what it holds.
    for _ in 0..3 {
        round(&heap);
    }
    let pages = |v: &[usize]| {
        let mut p: Vec<usize> = v.iter().map(|a| a >> 13).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let mut seen = pages(&round(&heap));
    let calls = heap.source().counts().calls;
    for _ in 0..300 {
        let now = pages(&round(&heap));
        seen.extend(now);
        seen.sort_unstable();
        seen.dedup();
    }
    // 300 rounds of 24 allocations run a background step (every 4096th allocation).
    assert_eq!(heap.source().counts().calls, calls, "page-source calls during the rounds");
    assert!(seen.len() <= 4, "blocks spread over {} pages", seen.len());
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

/// Blocks with alignments up to 1 GiB (one of them over several arenas), each freed at
/// once: the address space the heap holds (`Tracked`'s reserved + prepared + ready bytes)
/// comes back to its level before them without `trim`, since each was served from arenas
/// dedicated to it, which the free's background step gives back (issue 16, item 5), all
/// but the arenas' metadata records, which the heap keeps for reuse.
/// Before, each stayed reserved (2 GiB after alignments up to 1 GiB in the test).
#[test]
fn over_aligned_blocks_give_their_address_space_back_when_freed() {
    let heap: TieredHeap = Heap::new();
    let small = Layout::from_size_align(64, 8).unwrap();
    let keep = heap.alloc_layout(small).unwrap();
    let baseline = heap.source().counts().owned();
    let layouts = [
        Layout::from_size_align(1 << 20, 128 << 20).unwrap(),
        Layout::from_size_align(1 << 20, 256 << 20).unwrap(),
        Layout::from_size_align(1 << 20, 1 << 30).unwrap(),
        Layout::from_size_align(300 << 20, 256 << 20).unwrap(),
        Layout::from_size_align(1 << 30, 1 << 30).unwrap(),
    ];
    // Arena records stay with the heap, for reuse, when their arenas go back (see "Reuse of
    // arena records" in strategies/tiered/arena.rs): as many as arenas were registered at
    // once, each under 72 KiB (the span map, 64 KiB, and the page bitmaps).
    let mut records = 0;
    for l in layouts {
        records = records.max(l.size().div_ceil(64 << 20));
        let p = heap.alloc_layout(l).expect("over-aligned block");
        assert_eq!(p.as_ptr().addr() % l.align(), 0);
        // SAFETY: the block is ours: its first and last bytes.
        unsafe {
            p.as_ptr().write(1);
            p.as_ptr().add(l.size() - 1).write(1);
        }
        assert!(heap.source().counts().owned() >= baseline + l.size());
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.dealloc(p.as_ptr(), l) };
        let after = heap.source().counts().owned();
        assert!(
            after <= baseline + (1 << 20) + records * (72 << 10),
            "after freeing a block of {} MiB aligned to {} MiB: {} MiB held, {} MiB before",
            l.size() >> 20,
            l.align() >> 20,
            after >> 20,
            baseline >> 20
        );
        // SAFETY: single thread.
        unsafe { heap.check() }.unwrap();
    }
    // The heap still serves and keeps its live block.
    let again = heap.alloc_layout(Layout::from_size_align(1 << 20, 1 << 30).unwrap()).unwrap();
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        heap.dealloc(again.as_ptr(), Layout::from_size_align(1 << 20, 1 << 30).unwrap());
        heap.dealloc(keep.as_ptr(), small);
    }
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}

/// 768 MiB of large blocks (64 KiB .. 4 MiB), freed, then a little more work (100 large
/// allocations and frees, each a bounded step): less than 64 MiB stays Ready, and the
/// arenas they grew the heap by go back to the source once the scavenger has released
/// their pages: the address space held falls back to at most one arena (64 MiB) over its
/// level before them. Before, all of it (about 830 MiB) stayed reserved until `trim`.
#[test]
fn freed_large_blocks_give_memory_and_address_space_back() {
    const LIMIT: usize = 64 << 20;
    let heap: TieredHeap = Heap::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let keep = heap.alloc_layout(Layout::from_size_align(64, 8).unwrap()).unwrap();
    let baseline = heap.source().counts().owned();
    let (mut v, mut bytes) = (Vec::new(), 0);
    while bytes < 768 << 20 {
        let l = Layout::from_size_align((64 << 10) + (rng.next() % (4 << 20)) as usize, 8).unwrap();
        let p = heap.alloc_layout(l).expect("large block").as_ptr();
        // SAFETY: the block is ours.
        unsafe { p.write_bytes(3, 4096.min(l.size())) };
        v.push((p as usize, l));
        bytes += l.size();
    }
    assert!(heap.source().counts().ready >= 768 << 20);
    for (p, l) in v {
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.dealloc(p as *mut u8, l) };
    }
    let l = Layout::from_size_align(100 << 10, 8).unwrap();
    for _ in 0..100 {
        let p = heap.alloc_layout(l).unwrap();
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.dealloc(p.as_ptr(), l) };
    }
    let c = heap.source().counts();
    println!("Ready {} MiB, held {} MiB (baseline {} MiB)", c.ready >> 20, c.owned() >> 20, baseline >> 20);
    assert!(c.ready < LIMIT, "{} MiB still Ready", c.ready >> 20);
    // At most one arena more: the one that keeps the scavenger's retained minimum and
    // the work's block (and its metadata record).
    assert!(
        c.owned() <= baseline + (65 << 20),
        "{} MiB held, {} MiB before",
        c.owned() >> 20,
        baseline >> 20
    );
    // SAFETY: a live block of this heap, freed once.
    unsafe { heap.dealloc(keep.as_ptr(), Layout::from_size_align(64, 8).unwrap()) };
    // SAFETY: single thread.
    unsafe { heap.check() }.unwrap();
}
