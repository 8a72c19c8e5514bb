//! Every runner bin (`alloc_NN` in Cargo.toml): the allocator in row NN of the table as the
//! global allocator, chosen at compile time by the bin's name; a spare slot (no such row)
//! runs nothing.

use workloads::allocators::{kind_of, slot_name};

const NAME: &str = slot_name(env!("CARGO_BIN_NAME"));

workloads::table_static! {
    #[global_allocator]
    static GLOBAL = NAME;
}

/// `GLOBAL` seen as a stratalloc heap, if it is one: `HeapProbe` applies to a `Probe` of a
/// `Heap`, `NoProbe` to a reference to any `Probe`, and method lookup tries the first
/// before adding a reference (so the choice is made at compile time, for the one type).
struct Probe<T: 'static>(&'static T);

// Each bin uses one of the two traits (which one depends on its allocator).
#[allow(dead_code)]
trait HeapProbe {
    fn probe(&self) -> Option<[u64; 2]>;
}

impl<S: stratalloc::Strategy, P: stratalloc::PageSource> HeapProbe for Probe<stratalloc::Heap<S, P>> {
    fn probe(&self) -> Option<[u64; 2]> {
        let s = self.0.stats();
        Some([s.committed_bytes as u64, s.source.total()])
    }
}

#[allow(dead_code)]
trait NoProbe {
    fn probe(&self) -> Option<[u64; 2]> {
        None
    }
}

impl<T> NoProbe for &Probe<T> {}

/// The heap's committed bytes and page-source calls so far (`None` for the anchors).
// The borrow is what picks `NoProbe` when `GLOBAL` is no heap (needless only in heap bins).
#[allow(clippy::needless_borrow)]
fn probe() -> Option<[u64; 2]> {
    (&Probe(&GLOBAL)).probe()
}

fn main() {
    let name = if NAME.is_empty() { env!("CARGO_BIN_NAME") } else { NAME };
    comparisons::runner::main_with_probe(name, kind_of(NAME), probe)
}
