//! Quick comparison: the workloads of examples/bench/workloads.rs with the system allocator
//! (glibc). `cargo run --release --example bench_system [workload...]`.
include!("bench/workloads.rs");
fn main() {
    run("system");
}
