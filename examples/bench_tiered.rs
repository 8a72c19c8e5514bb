//! Quick comparison: the workloads of examples/bench/workloads.rs with `Heap<Tiered>` as the
//! global allocator. `cargo run --release --example bench_tiered [workload...]`.
#[global_allocator]
static GLOBAL: stratalloc::Heap<stratalloc::Tiered> = stratalloc::Heap::new();
include!("bench/workloads.rs");
fn main() {
    run("tiered");
}
