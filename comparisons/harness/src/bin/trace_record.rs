//! Records the allocation trace of the program workloads (see `comparisons::trace`).

#[global_allocator]
static RECORDER: workloads::trace::Recorder = workloads::trace::Recorder;

fn main() {
    workloads::trace::record_main()
}
