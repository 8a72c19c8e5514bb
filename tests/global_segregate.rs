//! `Heap<Segregate<1024, ThreadCache<SegregatedFit>, Arenas<FirstFit>>>` as the
//! `#[global_allocator]` of this test process, running the std-heavy workloads of
//! `tests/common/std_workload.rs`: every layer at once under a real program.

#[path = "common/std_workload.rs"]
#[macro_use]
mod std_workload;

use stratalloc::{Arenas, FirstFit, Heap, Segregate, SegregatedFit, ThreadCache};

#[global_allocator]
static GLOBAL: Heap<Segregate<1024, ThreadCache<SegregatedFit>, Arenas<FirstFit>>> = Heap::new();

global_allocator_tests!(GLOBAL);
