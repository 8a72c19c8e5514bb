//! Per-operation cost of the hot allocation/free pair of `Heap<Tiered>` (issue 22): one
//! thread allocates and at once frees a block of one size, at alignment 8 and 16, through
//! `GlobalAlloc` (layout-taking free) and, where the strategy has it, `Heap::free` (free by
//! address). Prints one line per case: `case ns_per_pair`.
//!
//! Run: `cargo run --release --example tiered_hot_pair [SIZE ALIGN PAIRS]` (with arguments,
//! one case and one timing, e.g. for `valgrind --tool=callgrind` instruction counts).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

use stratalloc::{Heap, Tiered};

static HEAP: Heap<Tiered> = Heap::new();

const PAIRS: usize = 20_000_000;

fn pair(size: usize, align: usize, pairs: usize) -> f64 {
    let l = Layout::from_size_align(size, align).unwrap();
    // Warm up: the heap, the thread's cache, the class's span.
    for _ in 0..1000 {
        // SAFETY: a non-zero layout; the block is freed with it at once.
        unsafe { HEAP.dealloc(black_box(HEAP.alloc(l)), l) };
    }
    let t = Instant::now();
    for _ in 0..pairs {
        // SAFETY: as above.
        unsafe {
            let p = HEAP.alloc(black_box(l));
            p.cast::<u64>().write_volatile(1);
            HEAP.dealloc(black_box(p), l);
        }
    }
    t.elapsed().as_nanos() as f64 / pairs as f64
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    if let [size, align, pairs] = args[..] {
        println!("dealloc size={size} align={align} {:.2}", pair(size, align, pairs));
        return;
    }
    for &(size, align) in &[(16, 8), (16, 16), (8, 16), (64, 8), (64, 16), (100, 16), (1024, 16)] {
        // Best of 5, to keep the figure stable.
        let best = (0..5).map(|_| pair(size, align, PAIRS)).fold(f64::MAX, f64::min);
        println!("dealloc size={size} align={align} {best:.2}");
    }
}
