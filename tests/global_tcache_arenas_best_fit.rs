//! `Heap<ThreadCache<Arenas<BestFit>>>` (glibc's shape) as the `#[global_allocator]` of this
//! test process, running the std-heavy workloads of `tests/common/std_workload.rs` (every
//! test below, and the test runner itself, allocates through it).

#[path = "common/std_workload.rs"]
#[macro_use]
mod std_workload;

use stratalloc::{Arenas, BestFit, Heap, ThreadCache};

#[global_allocator]
static GLOBAL: Heap<ThreadCache<Arenas<BestFit>>> = Heap::new();

global_allocator_tests!(GLOBAL);
