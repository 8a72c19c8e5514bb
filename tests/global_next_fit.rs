//! `Heap<NextFit>` as the `#[global_allocator]` of this test process, running the std-heavy
//! workloads of `tests/common/std_workload.rs` (every test below, and the test runner itself,
//! allocates through it).

#[path = "common/std_workload.rs"]
#[macro_use]
mod std_workload;

use stratalloc::{Heap, NextFit};

#[global_allocator]
static GLOBAL: Heap<NextFit> = Heap::new();

global_allocator_tests!(GLOBAL);
