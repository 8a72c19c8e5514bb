//! Quick comparison: the workloads of examples/bench/workloads.rs with mimalloc as the global
//! allocator. `cargo run --release --example bench_mimalloc [workload...]`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
include!("bench/workloads.rs");
fn main() {
    run("mimalloc");
}
