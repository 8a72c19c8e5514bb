//! Free-list churn benchmark (issue 3): 10,000 live objects of mixed sizes replaced at
//! random, one thread, through each allocator's `GlobalAlloc`.
//!
//! Allocators: every row of the allocator table (`workloads::for_each_allocator!`): the
//! strategies, the variants (first, next and best fit with the `Linear` reference walk and
//! with the trees) and the anchors, except linked_list_allocator (its O(n) walk).
//! One iteration = one replacement (free + alloc + a one-byte tag written, checked at the free).
//!
//! ```text
//! cargo bench --bench freelist -- --warm-up-time 1 --measurement-time 3
//! ```
//! Compare ratios within one run only: the machines are noisy.

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use workloads::Alloc;
use workloads::churn::{Churn, Live};

/// Replacement steps in the trace (cycled through by the iterations).
const TRACE_STEPS: usize = 1 << 18;

fn churn_one<A: Alloc>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, alloc: A, trace: &Churn) {
    let mut live = Live::fill(alloc, &trace.initial).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut pos = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (slot, size) = trace.steps[pos];
                if let Err(e) = live.replace(slot, size) {
                    panic!("{name}: {e}");
                }
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
    workloads::each_allocator!(|name, _kind, a| {
        if name != "linked-list" {
            churn_one(&mut group, name, a, &trace);
        }
    });
    group.finish();
}

criterion_group!(benches, churn);
criterion_main!(benches);
