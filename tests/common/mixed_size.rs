//! The mixed request sizes of the heap-drop tests (heap_drop.rs, heap_drop_memory.rs).

use workloads::Rng;

/// A mixed size: mostly small, some up to 64 KiB, a few large.
pub fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=29 => 1 + rng.below(15),
        30..=89 => 16 + rng.below(1000),
        90..=98 => 1000 + rng.below(63_000),
        _ => 65_536 + rng.below(400_000),
    }
}
