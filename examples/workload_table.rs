//! The interim main job: runs a few workloads with every strategy that exists (through a
//! `Heap`, as an allocator-api2 `Allocator`) and with the system allocator, and prints a table.
//!
//! ```text
//! cargo run --release --example workload_table            # all workloads
//! cargo run --release --example workload_table -- churn   # only the named ones
//! ```
//!
//! Strategies come from [`StrategyKind::ALL`] through [`AnyStrategy`], so a strategy appears
//! here as soon as it joins the runtime enum; one not built yet is listed as such. Every
//! workload checks what it reads back (a pattern per block), so a broken allocator reports
//! FAILED instead of a time. Times are wall-clock of one run on a shared machine: compare
//! ratios within one run, not across runs.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::Mutex;
use std::time::Instant;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::vec::Vec as AVec;
use stratalloc::{AnyStrategy, Heap, Mmap, StrategyKind};

/// xorshift64*, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// The churn size mix of WORKLOADS.md: 70% 8-128 B, 25% 128-1024 B, 4% 1-8 KiB, 1% 8-64 KiB.
    fn mixed_size(&mut self) -> usize {
        match self.below(100) {
            0..=69 => 8 + self.below(121),
            70..=94 => 128 + self.below(897),
            95..=98 => 1024 + self.below(7 << 10),
            _ => (8 << 10) + self.below(56 << 10),
        }
    }
}

/// A live block: address, layout, and the byte written at both ends.
struct Slot {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
}

// SAFETY: a slot is an address handed between threads with the allocator that owns it.
unsafe impl Send for Slot {}

fn take<A: Allocator>(a: &A, layout: Layout, tag: u8) -> Result<Slot, String> {
    let ptr = a.allocate(layout).map_err(|_| format!("allocation of {layout:?} failed"))?.cast::<u8>();
    // SAFETY: a fresh block of `layout.size() >= 1` bytes.
    unsafe {
        *ptr.as_ptr() = tag;
        *ptr.as_ptr().add(layout.size() - 1) = tag;
    }
    Ok(Slot { ptr, layout, tag })
}

fn give<A: Allocator>(a: &A, s: Slot) -> Result<(), String> {
    // SAFETY: the slot is a live block of `a` with its layout.
    unsafe {
        let (first, last) = (*s.ptr.as_ptr(), *s.ptr.as_ptr().add(s.layout.size() - 1));
        if first != s.tag || last != s.tag {
            return Err(format!("block {:p} ({:?}) corrupted", s.ptr, s.layout));
        }
        a.deallocate(s.ptr, s.layout);
    }
    Ok(())
}

/// 10,000 live blocks of mixed sizes, 200,000 random replacements, one thread.
fn churn<A: Allocator + Sync>(a: &A, probe: Probe) -> Result<(), String> {
    let mut rng = Rng::new(1);
    let mut live = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        live.push(take(a, Layout::from_size_align(rng.mixed_size(), 8).unwrap(), i as u8)?);
    }
    for i in 0..200_000usize {
        let k = rng.below(live.len());
        let fresh = take(a, Layout::from_size_align(rng.mixed_size(), 8).unwrap(), i as u8)?;
        give(a, std::mem::replace(&mut live[k], fresh))?;
    }
    probe();
    live.into_iter().try_for_each(|s| give(a, s))
}

/// 64 vectors grown by push, interleaved, to 200,000 elements each (realloc-heavy); summed.
fn vec_growth<A: Allocator + Sync>(a: &A, probe: Probe) -> Result<(), String> {
    let mut vs: Vec<AVec<u64, &A>> = (0..64).map(|_| AVec::new_in(a)).collect();
    for i in 0..200_000u64 {
        for (j, v) in vs.iter_mut().enumerate() {
            v.push(i ^ j as u64);
        }
    }
    probe();
    for (j, v) in vs.iter().enumerate() {
        let want: u64 = (0..200_000u64).map(|i| i ^ j as u64).sum();
        if v.iter().sum::<u64>() != want {
            return Err(format!("vector {j} corrupted"));
        }
    }
    Ok(())
}

/// 4 threads each replace 2,000 live blocks 50,000 times, handing every 8th block to a shared
/// pool that the others free (frees from another thread).
fn threads<A: Allocator + Sync>(a: &A, probe: Probe) -> Result<(), String> {
    let pool: Mutex<Vec<Slot>> = Mutex::new(Vec::new());
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || -> Result<(), String> {
                    let mut rng = Rng::new(t + 10);
                    let mut live = Vec::with_capacity(2000);
                    for i in 0..2000 {
                        live.push(take(a, Layout::from_size_align(rng.mixed_size(), 16).unwrap(), i as u8)?);
                    }
                    for i in 0..50_000usize {
                        let k = rng.below(live.len());
                        let fresh = take(a, Layout::from_size_align(rng.mixed_size(), 16).unwrap(), i as u8)?;
                        let old = std::mem::replace(&mut live[k], fresh);
                        if i % 8 == 0 {
                            let theirs = {
                                let mut p = pool.lock().unwrap();
                                p.push(old);
                                if p.len() > 64 { Some(p.swap_remove(0)) } else { None }
                            };
                            if let Some(s) = theirs {
                                give(a, s)?;
                            }
                        } else {
                            give(a, old)?;
                        }
                    }
                    if t == 0 {
                        probe();
                    }
                    live.into_iter().try_for_each(|s| give(a, s))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))).collect()
    });
    results.into_iter().collect::<Result<(), String>>()?;
    pool.into_inner().unwrap().into_iter().try_for_each(|s| give(a, s))
}

/// Called by a workload at its steady state (all its data live), to sample statistics.
type Probe<'a> = &'a (dyn Fn() + Sync);
type Workload = fn(&Heap<AnyStrategy, Mmap>, Probe) -> Result<(), String>;
type SystemWorkload = fn(&Global, Probe) -> Result<(), String>;

const WORKLOADS: [(&str, Workload, SystemWorkload); 3] = [
    ("churn", churn::<Heap<AnyStrategy, Mmap>>, churn::<Global>),
    ("vec-growth", vec_growth::<Heap<AnyStrategy, Mmap>>, vec_growth::<Global>),
    ("threads", threads::<Heap<AnyStrategy, Mmap>>, threads::<Global>),
];

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    println!("stratalloc workload table (one run each; compare ratios within this run)\n");
    println!(
        "{:<11} {:<15} {:>10} {:>9} {:>14} {:>14} {:>13}",
        "workload", "allocator", "time ms", "x system", "peak live MiB", "committed MiB", "source calls"
    );
    let mut failed = 0;
    for (name, on_heap, on_system) in WORKLOADS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let t = Instant::now();
        let r = on_system(&Global, &|| {});
        let system_ms = t.elapsed().as_secs_f64() * 1e3;
        let shown = if r.is_ok() { format!("{system_ms:.1}") } else { "FAILED".into() };
        println!("{name:<11} {:<15} {shown:>10} {:>9} {:>14} {:>14} {:>13}", "system", "1.00", "-", "-", "-");
        failed += usize::from(r.is_err());
        for kind in StrategyKind::ALL {
            let strategy = AnyStrategy::new(kind);
            let heap = Heap::from_parts(strategy, Mmap);
            let steady = Mutex::new(None);
            let t = Instant::now();
            let r = on_heap(&heap, &|| *steady.lock().unwrap() = Some(heap.stats()));
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let end = heap.stats();
            let s = steady.into_inner().unwrap().unwrap_or(end);
            heap.trim();
            match r {
                Ok(()) => println!(
                    "{name:<11} {:<15} {ms:>10.1} {:>9.2} {:>14} {:>14} {:>13}",
                    kind.name(),
                    ms / system_ms,
                    mib(end.peak_live_bytes),
                    mib(s.committed_bytes),
                    end.source.total()
                ),
                Err(e) => {
                    failed += 1;
                    println!("{name:<11} {:<15} {:>10}  {e}", kind.name(), "FAILED");
                }
            }
        }
    }
    println!(
        "\npeak live = most bytes requested and live at once; committed = bytes the strategy held \
         Ready at the workload's steady state (all its data live); source calls = page-source calls."
    );
    if failed > 0 {
        eprintln!("{failed} run(s) FAILED");
        std::process::exit(1);
    }
}
