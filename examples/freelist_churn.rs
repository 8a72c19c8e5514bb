//! A fixed-length run of the free-list churn (the workload of `benches/freelist.rs`), for
//! profilers and counters rather than wall clocks (the machines are shared and noisy):
//!
//! ```text
//! cargo build --release --example freelist_churn
//! perf stat -e cycles:u,instructions:u target/release/examples/freelist_churn first-fit 2000000
//! ```
//! Strategies: first-fit and next-fit (their default index, `AddrRegions`), first-fit-tree and
//! next-fit-tree (`AddrTree`), best-fit (its default index, `SizeBins`), best-fit-tree
//! (`SizeTree`), segregated-fit, and the two anchors talc and mimalloc. The second argument is
//! the number of replacements after the fill (default 1,000,000).

use core::alloc::GlobalAlloc;

use stratalloc::{
    AddrRegions, AddrTree, BestFit, FirstFit, Heap, NextFit, SegregatedFit, SizeBins, SizeTree,
};

#[path = "../benches/common/workload.rs"]
mod workload;
use workload::{Churn, Live};

/// Steps of the trace, cycled through.
const TRACE_STEPS: usize = 1 << 18;

fn run<A: GlobalAlloc>(alloc: &A, steps: usize) {
    let trace = Churn::new(0x5eed, TRACE_STEPS);
    let mut live = Live::fill(alloc, &trace);
    for i in 0..steps {
        let (slot, size) = trace.steps[i % TRACE_STEPS];
        live.replace(slot, size);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("first-fit", String::as_str);
    let steps = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    match name {
        "first-fit" => run(&Heap::<FirstFit<AddrRegions>>::new(), steps),
        "first-fit-tree" => run(&Heap::<FirstFit<AddrTree>>::new(), steps),
        "next-fit" => run(&Heap::<NextFit<AddrRegions>>::new(), steps),
        "next-fit-tree" => run(&Heap::<NextFit<AddrTree>>::new(), steps),
        "best-fit" => run(&Heap::<BestFit<SizeBins>>::new(), steps),
        "best-fit-tree" => run(&Heap::<BestFit<SizeTree>>::new(), steps),
        "segregated-fit" => run(&Heap::<SegregatedFit>::new(), steps),
        "talc" => run(&workload::talc_over_mmap(1 << 30), steps),
        "mimalloc" => run(&mimalloc::MiMalloc, steps),
        other => eprintln!("unknown strategy {other}"),
    }
}
