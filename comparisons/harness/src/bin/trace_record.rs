//! Records the allocation trace of the program workloads (see `comparisons::trace`).

#[global_allocator]
static RECORDER: comparisons::trace::Recorder = comparisons::trace::Recorder;

fn main() {
    comparisons::trace::record_main()
}
