//! Heap efficiency and fragmentation of the free-list strategies (issue 3), printed as tables.
//!
//! ```text
//! cargo run --release --example freelist_efficiency [RUNS] [ARENA_MIB] [breakdown]
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
//! **Loss breakdown** (`breakdown` alone prints only this): the same runs for each policy,
//! stopped at the first failure, with the heap walked ([`FreeList::walk`]) to say where the
//! arena is: live requested bytes, block headers, rounding to 16 B, padding to
//! `MIN_BLOCK_BYTES`, remainders kept in used blocks, free blocks (gaps below over-aligned
//! blocks, then by size), chunk heads and sentinels, and what the source still holds (the
//! parts add up to the arena, asserted). Then what failed: the block it needed, the largest
//! free block, and whether the largest free block, the failed realloc's free neighbours, or
//! the top free block with what the source holds would have served it.
//!
//! **Fragmentation** (Johnstone & Wilson): `max heap / max live - 1` over a run, heap being
//! the strategy's committed bytes (chunks held, free blocks included) over `Mmap`:
//! - churn: the benchmark's 10,000 live objects (70% 8-128 B, 25% 128-1024 B, 4% 1-8 KiB,
//!   1% 8-64 KiB) with 200,000 random replacements;
//! - ramps: five cycles of growing to 20,000 live objects and shrinking to 2,000 (random
//!   victims), sizes of the same mix.

use core::alloc::{GlobalAlloc, Layout};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use stratalloc::strategies::freelist::{
    BLOCK_ALIGN, Best, BlockInfo, DefaultClasses, First, FreeList, HEADER_BYTES, MIN_BLOCK_BYTES, Next,
    Placement, Segregated,
};
use stratalloc::{
    AddrRegions, AddrTree, BestFit, ConstInit, FirstFit, Fixed, Heap, Linear, Mmap, NextFit, PageSource,
    SegregatedFit, SizeBins, SizeTree, Strategy,
};

use workloads::Rng;
use workloads::allocators::talc_over;
use workloads::churn::Churn;
use workloads::rng::churn_size;

// ------------------------------------------------------------------------ heap efficiency

fn he_size(rng: &mut Rng) -> usize {
    let cap = rng.range(16, 9_999);
    rng.range(4, cap - 1)
}

fn he_align(rng: &mut Rng) -> usize {
    8 << ((rng.next_u64() as u16).trailing_zeros() / 2)
}

/// The request that failed first.
#[derive(Copy, Clone)]
enum Failed {
    Alloc(Layout),
    Realloc { p: *mut u8, old: Layout, new_size: usize },
}

/// The live blocks at the first failure, and the failed request.
struct Outcome {
    live: Vec<(*mut u8, Layout)>,
    failed: Failed,
}

impl Outcome {
    /// Bytes requested by the live blocks.
    fn live_bytes(&self) -> usize {
        self.live.iter().map(|(_, l)| l.size()).sum()
    }
}

/// One run of the fill-until-failure.
fn fill_until_failure<A: GlobalAlloc>(a: &A, rng: &mut Rng) -> Outcome {
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    loop {
        match rng.below(10) {
            0..=4 => {
                let l = Layout::from_size_align(he_size(rng), he_align(rng)).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe { a.alloc(l) };
                if p.is_null() {
                    return Outcome { live, failed: Failed::Alloc(l) };
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
                    return Outcome { live, failed: Failed::Realloc { p, old: l, new_size: size } };
                }
                live[k] = (q, Layout::from_size_align(size, l.align()).unwrap());
            }
            _ => {}
        }
    }
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
        used += fill_until_failure(&heap, &mut Rng::seeded(0x1234_5678 + run as u64)).live_bytes();
        total += arena.bytes;
    }
    used as f64 / total as f64 * 100.0
}

fn talc_efficiency(arena: &Arena, runs: usize) -> f64 {
    let (mut used, mut total) = (0, 0);
    for run in 0..runs {
        // SAFETY: the arena is this function's alone and the previous run's allocator is gone.
        let t = unsafe { talc_over(arena.base, arena.bytes) };
        used += fill_until_failure(&t, &mut Rng::seeded(0x1234_5678 + run as u64)).live_bytes();
        total += arena.bytes;
    }
    used as f64 / total as f64 * 100.0
}

// ------------------------------------------------------------------------ loss breakdown

/// Where the arena's bytes are at the first failure, summed over runs (each field in bytes;
/// the first eleven add up to `arena`), and what the failed requests were.
#[derive(Default)]
struct Breakdown {
    arena: usize,
    live: usize,
    header: usize,
    round: usize,
    min_pad: usize,
    absorbed: usize,
    free_gap: usize,
    free_small: usize,
    free_mid: usize,
    free_big: usize,
    chunk_overhead: usize,
    source_unused: usize,
    // failures
    failed_allocs: usize,
    failed_reallocs: usize,
    failed_need: usize,
    largest_free: usize,
    fits_largest: usize,
    fits_with_neighbours: usize,
    fits_with_source: usize,
}

/// Free blocks below this size count as "small" in the breakdown; up to `FREE_MID_BYTES` as
/// "middling"; above, "big" (but still too small or misplaced for the failed request).
const FREE_SMALL_BYTES: usize = 1024;
const FREE_MID_BYTES: usize = 16 * 1024;

fn breakdown_of<X: Placement>(arena: &Arena, runs: usize) -> Breakdown {
    let mut bd = Breakdown::default();
    for run in 0..runs {
        // SAFETY: the arena is this function's alone and the previous run's heap is gone.
        let heap: Heap<FreeList<X>, Fixed> =
            Heap::with_source(unsafe { Fixed::new(arena.base, arena.bytes) });
        let out = fill_until_failure(&heap, &mut Rng::seeded(0x1234_5678 + run as u64));
        // SAFETY: this thread alone uses the heap.
        unsafe { heap.check() }.expect("heap consistent at the first failure");
        let mut blocks = Vec::new();
        heap.strategy().walk(|b| blocks.push(b));
        let committed = heap.stats().committed_bytes;
        assert_eq!(arena.bytes - committed, heap.source().available(), "source accounting");
        add_run(&mut bd, &out, &blocks, arena.bytes - committed);
        bd.arena += arena.bytes;
        assert_eq!(bd.parts().iter().map(|p| p.1).sum::<usize>(), bd.arena, "the parts tile the arena");
    }
    bd
}

impl Breakdown {
    /// The parts of the arena, named.
    fn parts(&self) -> [(&'static str, usize); 11] {
        [
            ("live (requested bytes)", self.live),
            ("block headers (8 B each)", self.header),
            ("rounding to 16 B", self.round),
            ("padding to MIN_BLOCK_BYTES", self.min_pad),
            ("remainders kept in used blocks", self.absorbed),
            ("free: gaps below over-aligned blocks", self.free_gap),
            ("free: blocks < 1 KiB", self.free_small),
            ("free: blocks 1-16 KiB", self.free_mid),
            ("free: blocks >= 16 KiB", self.free_big),
            ("chunk heads and END sentinels", self.chunk_overhead),
            ("left in the source", self.source_unused),
        ]
    }
}

/// Adds one run's picture at the failure to the totals.
fn add_run(bd: &mut Breakdown, out: &Outcome, blocks: &[BlockInfo], source_unused: usize) {
    let layouts: HashMap<usize, Layout> =
        out.live.iter().map(|&(p, l)| (p as usize - HEADER_BYTES, l)).collect();
    let (fail_need, fail_align) = match out.failed {
        Failed::Alloc(l) => (need_of(l.size()), l.align()),
        Failed::Realloc { old, new_size, .. } => (need_of(new_size), old.align()),
    };
    let mut chunks = HashSet::new();
    let mut largest = 0;
    for (i, b) in blocks.iter().enumerate() {
        chunks.insert((b.chunk, b.chunk_bytes));
        if b.free {
            largest = largest.max(b.bytes);
            let above = blocks.get(i + 1).filter(|a| a.chunk == b.chunk && !a.free);
            let gap = above.and_then(|a| layouts.get(&a.addr)).is_some_and(|l| l.align() > BLOCK_ALIGN);
            match b.bytes {
                _ if gap => bd.free_gap += b.bytes,
                n if n < FREE_SMALL_BYTES => bd.free_small += n,
                n if n < FREE_MID_BYTES => bd.free_mid += n,
                n => bd.free_big += n,
            }
            continue;
        }
        let l = layouts[&b.addr];
        let rounded = (l.size() + HEADER_BYTES).next_multiple_of(BLOCK_ALIGN);
        bd.live += l.size();
        bd.header += HEADER_BYTES;
        bd.round += rounded - l.size() - HEADER_BYTES;
        bd.min_pad += need_of(l.size()) - rounded;
        bd.absorbed += b.bytes - need_of(l.size());
    }
    bd.chunk_overhead +=
        chunks.iter().map(|(_, bytes)| bytes).sum::<usize>() - blocks.iter().map(|b| b.bytes).sum::<usize>();
    bd.source_unused += source_unused;
    bd.failed_need += fail_need;
    bd.largest_free += largest;
    bd.fits_largest += usize::from(largest >= fail_need + fail_align.saturating_sub(BLOCK_ALIGN));
    // The free block on top of the chunk that the source would extend (the highest).
    let top = blocks.iter().max_by_key(|b| b.addr).filter(|b| b.free).map_or(0, |b| b.bytes);
    bd.fits_with_source += usize::from(top + source_unused >= fail_need + fail_align);
    match out.failed {
        Failed::Alloc(_) => bd.failed_allocs += 1,
        Failed::Realloc { p, .. } => {
            bd.failed_reallocs += 1;
            let i = blocks.iter().position(|b| b.addr == p as usize - HEADER_BYTES).expect("failed block");
            let chunk = blocks[i].chunk;
            let free_at = |j: Option<usize>| {
                j.and_then(|j| blocks.get(j)).filter(|b| b.free && b.chunk == chunk).map_or(0, |b| b.bytes)
            };
            let around = free_at(i.checked_sub(1)) + blocks[i].bytes + free_at(Some(i + 1));
            bd.fits_with_neighbours += usize::from(around >= fail_need);
        }
    }
}

/// The block size the core needs for `size` bytes (mirrors `block_need`).
fn need_of(size: usize) -> usize {
    (size + HEADER_BYTES).next_multiple_of(BLOCK_ALIGN).max(MIN_BLOCK_BYTES)
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
    let c = Churn::new(0x5eed, 200_000);
    let fill = c.initial.iter().enumerate().map(|(i, &s)| (i as u32, s));
    fill.chain(c.steps.iter().copied()).collect()
}

/// Five ramps up to 20,000 live objects and down to 2,000; size 0 = free only.
fn ramp_steps() -> (Vec<(u32, usize)>, usize) {
    const SLOTS: usize = 20_000;
    let mut rng = Rng::seeded(0xfeed);
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
        $m!("first-fit (regions)", FirstFit<AddrRegions>);
        $m!("first-fit (tree)", FirstFit<AddrTree>);
        $m!("first-fit (linear)", FirstFit<Linear>);
        $m!("next-fit (regions)", NextFit<AddrRegions>);
        $m!("next-fit (tree)", NextFit<AddrTree>);
        $m!("next-fit (linear)", NextFit<Linear>);
        $m!("best-fit (bins)", BestFit<SizeBins>);
        $m!("best-fit (size tree)", BestFit<SizeTree>);
        $m!("best-fit (linear)", BestFit<Linear>);
        $m!("segregated-fit", SegregatedFit);
    };
}

/// The loss breakdown table: one column per policy (the `Linear` indexes decide the same).
fn print_breakdowns(arena: &Arena, runs: usize) {
    let columns = [
        ("first fit", breakdown_of::<First<AddrRegions>>(arena, runs)),
        ("next fit", breakdown_of::<Next<AddrRegions>>(arena, runs)),
        ("best fit", breakdown_of::<Best<SizeBins>>(arena, runs)),
        ("segregated fit", breakdown_of::<Segregated<DefaultClasses>>(arena, runs)),
    ];
    println!("Where the arena is at the first failure (share of the arena, mean over the runs)");
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    println!("| part | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(columns.len()));
    for k in 0..columns[0].1.parts().len() {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, b)| format!("{:.3}%", b.parts()[k].1 as f64 / b.arena as f64 * 100.0))
            .collect();
        println!("| {} | {} |", columns[0].1.parts()[k].0, cells.join(" | "));
    }
    let row = |name: &str, f: &dyn Fn(&Breakdown) -> String| {
        let cells: Vec<String> = columns.iter().map(|(_, b)| f(b)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    let kib = |n: usize, b: &Breakdown| {
        format!("{:.1} KiB", n as f64 / (b.failed_allocs + b.failed_reallocs) as f64 / 1024.0)
    };
    row("failed: allocs / reallocs", &|b| format!("{} / {}", b.failed_allocs, b.failed_reallocs));
    row("failed: mean block needed", &|b| kib(b.failed_need, b));
    row("failed: mean largest free block", &|b| kib(b.largest_free, b));
    row("failed but the largest free block fits", &|b| b.fits_largest.to_string());
    row("failed realloc, fits with its free neighbours", &|b| b.fits_with_neighbours.to_string());
    row("failed, fits in top free block + source", &|b| b.fits_with_source.to_string());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let arena_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let only_breakdown = args.next().as_deref() == Some("breakdown");
    let arena = Arena::new(arena_mib << 20);
    if only_breakdown {
        print_breakdowns(&arena, runs);
        return;
    }

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
    print_breakdowns(&arena, runs);

    println!();
    println!("Fragmentation (max heap / max live - 1) over Mmap");
    println!("| allocator | churn 10k live | ramps 20k <-> 2k |");
    println!("|---|---:|---:|");
    let churn = churn_steps();
    let (ramps, ramp_slots) = ramp_steps();
    macro_rules! fr {
        ($name:literal, $s:ty) => {{
            let a = peak_ratio::<$s>(&churn, workloads::rng::CHURN_LIVE);
            let b = peak_ratio::<$s>(&ramps, ramp_slots);
            println!("| {} | {} | {} |", $name, frag(a), frag(b));
        }};
    }
    for_each_strategy!(fr);
}
