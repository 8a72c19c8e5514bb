//! A few workloads through `Heap` values in one process: every strategy chosen at run time
//! (`Heap<AnyStrategy>`, as a `GlobalAlloc` and as an allocator-api2 `Allocator`) and the
//! system allocator, in a table. The workloads' code is the workloads crate's (the churn,
//! stamped blocks, the generator).
//!
//! ```text
//! cargo run --release --example workload_table            # all workloads
//! cargo run --release --example workload_table -- churn   # only the named ones
//! ```
//!
//! Strategies come from [`StrategyKind::ALL`] through [`AnyStrategy`], so a strategy appears
//! here as soon as it joins the runtime enum; one not built yet is listed as such. Every
//! workload checks what it reads back (stamps or tags per block), so a broken allocator reports
//! FAILED instead of a time. Times are wall-clock of one run on a shared machine: compare
//! ratios within one run, not across runs.

use std::sync::Mutex;
use std::time::Instant;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use stratalloc::{AnyStrategy, Heap, Mmap, StrategyKind};
use workloads::rng::{CHURN_LIVE, churn_size};
use workloads::{Alloc, Block, Rng};

/// The churn (10,000 live blocks of the churn mix), 200,000 random replacements, one thread.
fn churn<A: Alloc>(a: A, probe: Probe) -> Result<(), String> {
    let mut rng = Rng::seeded(1);
    let sizes: Vec<usize> = (0..CHURN_LIVE).map(|_| churn_size(&mut rng)).collect();
    let mut live = workloads::churn::Live::fill(a, &sizes)?;
    for _ in 0..200_000 {
        live.replace(rng.below(CHURN_LIVE) as u32, churn_size(&mut rng))?;
    }
    probe();
    live.free_all()
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

/// 4 threads each replace 2,000 live stamped blocks 50,000 times, handing every 8th block to
/// a shared pool that the others free (frees from another thread).
fn threads<A: Alloc + Send + Sync>(a: A, probe: Probe) -> Result<(), String> {
    let pool: Mutex<Vec<Block<A>>> = Mutex::new(Vec::new());
    workloads::check::on_threads(4, |t| {
        let mut rng = Rng::new(10, t as u64);
        let mut live = Vec::with_capacity(2000);
        for i in 0..2000 {
            live.push(Block::new_in(a, churn_size(&mut rng), 16, i)?);
        }
        for i in 0..50_000u64 {
            let k = rng.below(live.len());
            let old = std::mem::replace(&mut live[k], Block::new_in(a, churn_size(&mut rng), 16, i)?);
            if i % 8 == 0 {
                let theirs = {
                    let mut p = pool.lock().map_err(|_| "pool poisoned")?;
                    p.push(old);
                    if p.len() > 64 { Some(p.swap_remove(0)) } else { None }
                };
                theirs.map_or(Ok(()), Block::free)?;
            } else {
                old.free()?;
            }
        }
        if t == 0 {
            probe();
        }
        workloads::check::free_all(live)
    })?;
    workloads::check::free_all(pool.into_inner().map_err(|_| "pool poisoned")?)
}

/// Called by a workload at its steady state (all its data live), to sample statistics.
type Probe<'a> = &'a (dyn Fn() + Sync);
type AnyHeap = Heap<AnyStrategy, Mmap>;
type Workload = fn(&AnyHeap, Probe) -> Result<(), String>;
type SystemWorkload = fn(Probe) -> Result<(), String>;

const WORKLOADS: [(&str, Workload, SystemWorkload); 3] = [
    ("churn", |h, p| churn(h, p), |p| churn(workloads::Global, p)),
    ("vec-growth", |h, p| vec_growth(h, p), |p| vec_growth(&allocator_api2::alloc::Global, p)),
    ("threads", |h, p| threads(h, p), |p| threads(workloads::Global, p)),
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
        let r = on_system(&|| {});
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
