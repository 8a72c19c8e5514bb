//! Heap efficiency and fragmentation of the free-list strategies (issue 3), printed as tables.
//!
//! ```text
//! cargo run --release --example freelist_efficiency [RUNS] [ARENA_MIB]
//! ```
//!
//! **Heap efficiency** (talc's method): fill an arena of `ARENA_MIB` (default 64) with random
//! actions until the first failure: 50% allocate (size uniform in `4..cap`, `cap` uniform in
//! `16..10000`; alignment 8 B, doubling with probability 1/4 each step), 10% free a random
//! block, 40% reallocate a random block to a size uniform in `1..100000`. At the first failed
//! allocation or reallocation, record the bytes requested by the live blocks; report their
//! sum over `RUNS` (default 50) runs divided by the arena bytes over all runs. Our strategies
//! run over a `Fixed` source on the arena; talc claims the same arena.
//!
//! **Fragmentation** (Johnstone & Wilson): `max heap / max live - 1` over a run, heap being
//! the strategy's committed bytes (chunks held, free blocks included) over `Mmap`:
//! - churn: the benchmark's 10,000 live objects (70% 8-128 B, 25% 128-1024 B, 4% 1-8 KiB,
//!   1% 8-64 KiB) with 200,000 random replacements;
//! - ramps: five cycles of growing to 20,000 live objects and shrinking to 2,000 (random
//!   victims), sizes of the same mix.

use core::alloc::{GlobalAlloc, Layout};
use std::time::Instant;

use stratalloc::{
    AddrTree, BestFit, ConstInit, FirstFit, Fixed, Heap, Linear, Mmap, NextFit, PageSource, SegregatedFit,
    SizeTree, Strategy,
};

#[path = "../benches/common/workload.rs"]
mod workload;
use workload::{Rng, churn_size};

// ------------------------------------------------------------------------ heap efficiency

fn he_size(rng: &mut Rng) -> usize {
    let cap = rng.range(16, 9_999);
    rng.range(4, cap - 1)
}

fn he_align(rng: &mut Rng) -> usize {
    8 << ((rng.next() as u16).trailing_zeros() / 2)
}

/// One run of the fill-until-failure; returns the bytes requested by the live blocks then.
fn fill_until_failure<A: GlobalAlloc>(a: &A, rng: &mut Rng) -> usize {
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    loop {
        match rng.next() % 10 {
            0..=4 => {
                let l = Layout::from_size_align(he_size(rng), he_align(rng)).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe { a.alloc(l) };
                if p.is_null() {
                    break;
                }
                live.push((p, l));
            }
            5 if !live.is_empty() => {
                let (p, l) = live.swap_remove(rng.range(0, live.len() - 1));
                // SAFETY: live block with its layout.
                unsafe { a.dealloc(p, l) };
            }
            6..=9 if !live.is_empty() => {
                let k = rng.range(0, live.len() - 1);
                let (p, l) = live[k];
                let size = rng.range(1, 99_999);
                // SAFETY: live block with its layout; non-zero size.
                let q = unsafe { a.realloc(p, l, size) };
                if q.is_null() {
                    break;
                }
                live[k] = (q, Layout::from_size_align(size, l.align()).unwrap());
            }
            _ => {}
        }
    }
    live.iter().map(|(_, l)| l.size()).sum()
}

/// An arena from the OS for the efficiency runs (reused by every run).
struct Arena {
    base: *mut u8,
    bytes: usize,
}

impl Arena {
    fn new(bytes: usize) -> Self {
        Arena { base: Mmap.alloc_ready(bytes, 4096).expect("arena").as_ptr(), bytes }
    }
}

fn efficiency_of<S: Strategy + ConstInit>(arena: &Arena, runs: usize) -> f64 {
    let (mut used, mut total) = (0, 0);
    for run in 0..runs {
        // SAFETY: the arena is ours; each run's heap is dropped (and never used) before the
        // next one reuses the memory.
        let heap: Heap<S, Fixed> = Heap::with_source(unsafe { Fixed::new(arena.base, arena.bytes) });
        used += fill_until_failure(&heap, &mut Rng(0x1234_5678 + run as u64));
        total += arena.bytes;
    }
    used as f64 / total as f64 * 100.0
}

fn talc_efficiency(arena: &Arena, runs: usize) -> f64 {
    let (mut used, mut total) = (0, 0);
    for run in 0..runs {
        let t = workload::Talc::new(talc::source::Manual);
        // SAFETY: as above: the arena is ours and the previous user is gone.
        unsafe { t.lock().claim(arena.base, arena.bytes) }.expect("talc claims the arena");
        used += fill_until_failure(&t, &mut Rng(0x1234_5678 + run as u64));
        total += arena.bytes;
    }
    used as f64 / total as f64 * 100.0
}

// ------------------------------------------------------------------------ fragmentation

/// Runs `steps` through a heap, returning (max committed bytes, max live bytes).
fn peak_ratio<S: Strategy + ConstInit>(steps: &[(u32, usize)], slots: usize) -> (usize, usize) {
    let heap: Heap<S, Mmap> = Heap::new();
    let mut live: Vec<Option<(*mut u8, Layout)>> = vec![None; slots];
    let (mut max_heap, mut max_live) = (0, 0);
    for &(slot, size) in steps {
        if let Some((p, l)) = live[slot as usize].take() {
            // SAFETY: live block with its layout.
            unsafe { heap.dealloc(p, l) };
        }
        if size > 0 {
            let l = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            live[slot as usize] = Some((p, l));
        }
        let s = heap.stats();
        max_heap = max_heap.max(s.committed_bytes);
        max_live = max_live.max(s.live_bytes);
    }
    for (p, l) in live.into_iter().flatten() {
        // SAFETY: live block with its layout.
        unsafe { heap.dealloc(p, l) };
    }
    (max_heap, max_live)
}

/// The churn as (slot, size) steps, the first 10,000 filling the slots.
fn churn_steps() -> Vec<(u32, usize)> {
    let c = workload::Churn::new(0x5eed, 200_000);
    let fill = c.initial.iter().enumerate().map(|(i, &s)| (i as u32, s));
    fill.chain(c.steps.iter().copied()).collect()
}

/// Five ramps up to 20,000 live objects and down to 2,000; size 0 = free only.
fn ramp_steps() -> (Vec<(u32, usize)>, usize) {
    const SLOTS: usize = 20_000;
    let mut rng = Rng(0xfeed);
    let mut steps = Vec::new();
    let mut used: Vec<u32> = Vec::new();
    let mut free: Vec<u32> = (0..SLOTS as u32).rev().collect();
    for _ in 0..5 {
        while let Some(s) = free.pop() {
            steps.push((s, churn_size(&mut rng)));
            used.push(s);
        }
        while used.len() > 2_000 {
            let s = used.swap_remove(rng.range(0, used.len() - 1));
            steps.push((s, 0));
            free.push(s);
        }
    }
    (steps, SLOTS)
}

fn frag(r: (usize, usize)) -> String {
    format!("{:>8.1}%", (r.0 as f64 / r.1 as f64 - 1.0) * 100.0)
}

macro_rules! for_each_strategy {
    ($m:ident) => {
        $m!("first-fit (tree)", FirstFit<AddrTree>);
        $m!("first-fit (linear)", FirstFit<Linear>);
        $m!("next-fit (tree)", NextFit<AddrTree>);
        $m!("next-fit (linear)", NextFit<Linear>);
        $m!("best-fit (tree)", BestFit<SizeTree>);
        $m!("best-fit (linear)", BestFit<Linear>);
        $m!("segregated-fit", SegregatedFit);
    };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let arena_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let arena = Arena::new(arena_mib << 20);

    println!(
        "Heap efficiency: {runs} runs over a {arena_mib} MiB arena (share of the arena live at the first failure)"
    );
    println!("| allocator | heap efficiency | time |");
    println!("|---|---:|---:|");
    macro_rules! eff {
        ($name:literal, $s:ty) => {{
            let t = Instant::now();
            let e = efficiency_of::<$s>(&arena, runs);
            println!("| {} | {:.2}% | {:.1} s |", $name, e, t.elapsed().as_secs_f64());
        }};
    }
    for_each_strategy!(eff);
    let t = Instant::now();
    println!("| talc 5 | {:.2}% | {:.1} s |", talc_efficiency(&arena, runs), t.elapsed().as_secs_f64());

    println!();
    println!("Fragmentation (max heap / max live - 1) over Mmap");
    println!("| allocator | churn 10k live | ramps 20k <-> 2k |");
    println!("|---|---:|---:|");
    let churn = churn_steps();
    let (ramps, ramp_slots) = ramp_steps();
    macro_rules! fr {
        ($name:literal, $s:ty) => {{
            let a = peak_ratio::<$s>(&churn, workload::CHURN_LIVE);
            let b = peak_ratio::<$s>(&ramps, ramp_slots);
            println!("| {} | {} | {} |", $name, frag(a), frag(b));
        }};
    }
    for_each_strategy!(fr);
}
