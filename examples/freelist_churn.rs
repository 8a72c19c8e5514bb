//! A fixed-length run of the free-list churn (the workload of `benches/freelist.rs`), for
//! profilers and counters rather than wall clocks (the machines are shared and noisy):
//!
//! ```text
//! cargo build --release --example freelist_churn
//! perf stat -e task-clock target/release/examples/freelist_churn first-fit 2000000
//! ```
//! The first argument is any name of the allocator table (`workloads::for_each_allocator!`:
//! first-fit, first-fit-tree, first-fit-linear, best-fit-tree, segregated-fit, talc,
//! mimalloc, ...); the second the number of replacements after the fill (default 1,000,000).

use workloads::Alloc;
use workloads::churn::{Churn, Live};

/// Steps of the trace, cycled through.
const TRACE_STEPS: usize = 1 << 18;

fn run<A: Alloc>(alloc: A, steps: usize) -> workloads::Check {
    let trace = Churn::new(0x5eed, TRACE_STEPS);
    let mut live = Live::fill(alloc, &trace.initial)?;
    for i in 0..steps {
        let (slot, size) = trace.steps[i % TRACE_STEPS];
        live.replace(slot, size)?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let wanted = args.get(1).map_or("first-fit", String::as_str);
    let steps = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut found = false;
    workloads::each_allocator!(|name, _kind, a| {
        if name == wanted {
            found = true;
            if let Err(e) = run(a, steps) {
                eprintln!("{name}: FAILED: {e}");
                std::process::exit(1);
            }
        }
    });
    if !found {
        let names: Vec<&str> = workloads::allocators::NAMES.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown allocator {wanted}; the table has: {}", names.join(", "));
        std::process::exit(64);
    }
}
