//! The cost of the free-list search as the number of free blocks grows, for the book's
//! chapter "Free-list allocation".
//!
//! Run: `cargo run --release -p book-examples --example freelist_walk > book/src/measured/freelist_walk.txt`
//!
//! For each `n`, a heap gets `n` free 64 B holes that cannot merge (every other block of
//! `2n` stays live), all below the free space at the top of the heap. Then a 256 B block,
//! which fits no hole, is allocated and freed `PAIRS` times; the figure is the median over
//! `REPS` batches of the time per pair. A search that walks the holes grows with `n`; an
//! index that skips them does not.

use std::time::Instant;

use core::alloc::Layout;
use stratalloc::{
    AddrTree, BestFit, ConstInit, FirstFit, Heap, Linear, Mmap, NextFit, Op, SegregatedFit, SizeTree,
    Strategy,
};

const REPS: usize = 11;
const PAIRS: usize = 200;
/// Numbers of holes. `2n` blocks of 80 B (64 B and a header, rounded) must fit in one chunk
/// (`CHUNK_BYTES`, 256 KiB), so that every hole lies below the chunk's free top in address
/// order: with several chunks, the newest (at whatever address the OS picked) would hold
/// the free space, and the walk would no longer cross the holes.
const HOLES: [usize; 5] = [10, 100, 400, 800, 1_500];

/// Median nanoseconds per alloc+free pair of a 256 B block with `n` small holes below.
fn ns_per_pair<S: Strategy + ConstInit>(n: usize) -> f64 {
    let heap: Heap<S, Mmap> = Heap::new();
    let small = Layout::from_size_align(64, 8).expect("layout");
    let probe = Layout::from_size_align(256, 8).expect("layout");
    let blocks: Vec<_> = (0..2 * n).map(|_| heap.alloc_layout(small).expect("alloc")).collect();
    assert_eq!(heap.stats().source.calls_of(Op::Reserve), 1, "the holes must lie in one chunk");
    for p in blocks.iter().step_by(2) {
        // SAFETY: each block is live, allocated with `small`, and freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), small) };
    }
    let mut times = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        for _ in 0..PAIRS {
            let p = heap.alloc_layout(probe).expect("alloc");
            // SAFETY: `p` was just allocated with `probe`.
            unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), probe) };
        }
        times.push(t.elapsed().as_nanos() as f64 / PAIRS as f64);
    }
    for p in blocks.iter().skip(1).step_by(2) {
        // SAFETY: the odd blocks are still live, allocated with `small`.
        unsafe { core::alloc::GlobalAlloc::dealloc(&heap, p.as_ptr(), small) };
    }
    times.sort_by(f64::total_cmp);
    times[REPS / 2]
}

fn row<S: Strategy + ConstInit>(name: &str) {
    print!("{name:<22}");
    for n in HOLES {
        print!(" {:>12.0}", ns_per_pair::<S>(n));
    }
    println!();
}

fn main() {
    println!("# Free-list search cost: median ns per alloc+free pair of a 256 B block that fits none");
    println!("# of n free 64 B holes below it (median of {REPS} batches of {PAIRS} pairs)");
    println!("# command: cargo run --release -p book-examples --example freelist_walk");
    println!("# machine: {}", machine());
    println!();
    print!("{:<22}", "strategy \\ n holes");
    for n in HOLES {
        print!(" {n:>12}");
    }
    println!();
    row::<FirstFit<Linear>>("FirstFit<Linear>");
    row::<NextFit<Linear>>("NextFit<Linear>");
    row::<BestFit<Linear>>("BestFit<Linear>");
    row::<FirstFit>("FirstFit (AddrRegions)");
    row::<NextFit>("NextFit (AddrRegions)");
    row::<FirstFit<AddrTree>>("FirstFit<AddrTree>");
    row::<NextFit<AddrTree>>("NextFit<AddrTree>");
    row::<BestFit>("BestFit (SizeBins)");
    row::<BestFit<SizeTree>>("BestFit<SizeTree>");
    row::<SegregatedFit>("SegregatedFit");
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}
