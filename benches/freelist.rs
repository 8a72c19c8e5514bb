//! Free-list churn benchmark (issue 3): 10,000 live objects of mixed sizes replaced at
//! random, one thread, through each allocator's `GlobalAlloc`.
//!
//! Allocators: first, next and best fit with the `Linear` reference walk and with the fast
//! default index, segregated fit, mimalloc, and talc (`TalcLock` over an mmap'd arena).
//! One iteration = one replacement (free + alloc + a one-byte write).
//!
//! ```text
//! cargo bench --bench freelist -- --warm-up-time 1 --measurement-time 3
//! ```
//! Compare ratios within one run only: the machines are noisy.

use core::alloc::GlobalAlloc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use stratalloc::{
    AddrRegions, AddrTree, BestFit, FirstFit, Heap, Linear, NextFit, SegregatedFit, SizeBins, SizeTree,
};

#[path = "common/workload.rs"]
mod workload;
use workload::{Churn, Live};

/// Replacement steps in the trace (cycled through by the iterations).
const TRACE_STEPS: usize = 1 << 18;

fn churn_one<A: GlobalAlloc>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, alloc: &A, trace: &Churn) {
    let mut live = Live::fill(alloc, trace);
    let mut pos = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (slot, size) = trace.steps[pos];
                live.replace(slot, size);
                pos = (pos + 1) % trace.steps.len();
            }
            start.elapsed()
        })
    });
}

fn churn(c: &mut Criterion) {
    let trace = Churn::new(0x5eed, TRACE_STEPS);
    let mut group = c.benchmark_group("churn");
    group.throughput(Throughput::Elements(1));
    // The Linear walks are slow: keep their sample count modest.
    group.sample_size(20).warm_up_time(Duration::from_secs(1));

    macro_rules! heap {
        ($name:literal, $s:ty) => {{
            let heap: Heap<$s> = Heap::new();
            churn_one(&mut group, $name, &heap, &trace);
        }};
    }
    heap!("first-fit/linear", FirstFit<Linear>);
    heap!("first-fit/regions", FirstFit<AddrRegions>);
    heap!("first-fit/tree", FirstFit<AddrTree>);
    heap!("next-fit/linear", NextFit<Linear>);
    heap!("next-fit/regions", NextFit<AddrRegions>);
    heap!("next-fit/tree", NextFit<AddrTree>);
    heap!("best-fit/linear", BestFit<Linear>);
    heap!("best-fit/bins", BestFit<SizeBins>);
    heap!("best-fit/tree", BestFit<SizeTree>);
    heap!("segregated-fit", SegregatedFit);
    churn_one(&mut group, "mimalloc", &mimalloc::MiMalloc, &trace);
    let talc = workload::talc_over_mmap(1 << 30);
    churn_one(&mut group, "talc", &talc, &trace);
    churn_one(&mut group, "system", &std::alloc::System, &trace);
    group.finish();
}

criterion_group!(benches, churn);
criterion_main!(benches);
