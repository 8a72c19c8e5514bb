//! `Heap<Tiered>` as the `#[global_allocator]` of this test process, running the shared
//! std-heavy workloads of `tests/common/std_workload.rs` (every test below, and the test
//! runner itself, allocates through it). tests/global_tiered.rs adds 8 threads with
//! cross-thread frees and the heap's checker.

#[path = "common/std_workload.rs"]
#[macro_use]
mod std_workload;

use stratalloc::{Heap, Tiered};

#[global_allocator]
static GLOBAL: Heap<Tiered> = Heap::new();

global_allocator_tests!(GLOBAL);
