//! Every strategy over a caller's region (`Fixed`) and over `Tracked<Fixed>`: a deterministic
//! model sequence (alloc, alloc_zeroed, free, realloc, grow, shrink, patterns checked on every
//! block) and threads that free each other's blocks.
//!
//! These tests need no system call but the test's own region, so they are the ones Miri runs
//! (`.ci/sanitizers.sh`, with `-Zmiri-strict-provenance`): under Miri the sequences are shorter
//! and the invariant walker runs every few steps instead of after each one. Under the normal
//! test run they are one more model test of each strategy over `Fixed`, `Tiered` included.

#[macro_use]
mod harness;

use harness::{Api, Backing, Draw, Opts, OwnedRegion, Rng, Runner, ThreadShape};
use stratalloc::{
    BestFit, ConstInit, FirstFit, Fixed, Heap, Linear, NextFit, PageSource, SegregatedFit, Strategy, Tiered,
    Tracked,
};

/// Operations per model sequence, and how often the walker runs.
const STEPS: usize = if cfg!(miri) { 400 } else { 6000 };
const CHECK_EVERY: usize = if cfg!(miri) { 250 } else { 1 };
/// Threads and steps per thread in the cross-thread test.
const THREADS: usize = if cfg!(miri) { 3 } else { 6 };
const THREAD_STEPS: usize = if cfg!(miri) { 300 } else { 3000 };
/// Live blocks at most (the sequence frees when it has this many).
const LIVE_MAX: usize = if cfg!(miri) { 96 } else { 600 };
/// Largest request: sizes reach the tiered design's large objects (over 32 KiB).
const MAX_SIZE: usize = if cfg!(miri) { 40 << 10 } else { 160 << 10 };

/// The region each heap gets. The tiered design reserves 64 MiB arenas aligned to their
/// size, so it needs more than the free lists.
fn region_bytes<S: Strategy + ConstInit>() -> usize {
    if S::INIT.name() == "tiered" { 256 << 20 } else { 32 << 20 }
}

/// A deterministic random sequence on `heap`, every block's pattern checked, the walker run
/// every `CHECK_EVERY` steps; then everything freed and the heap trimmed.
fn sequence<S: Strategy, P: PageSource>(
    heap: &Heap<S, P>,
    region: usize,
    seed: u64,
    check: impl Fn(&Heap<S, P>),
) {
    let opts = Opts::DEFAULT;
    let mut r = Runner::new(heap, Backing::Region(region));
    let mut rng = Rng::seeded(seed);
    for step in 0..STEPS {
        let n = r.model.blocks.len();
        // Allocation outweighs freeing; past LIVE_MAX blocks, free instead.
        let roll = match rng.below(16) {
            0..=6 if n >= LIVE_MAX => 7,
            roll => roll,
        };
        let res = match roll {
            0..=6 => {
                let zeroed = rng.below(4) == 0;
                let api = if rng.below(2) == 0 { Api::Global } else { Api::Allocator };
                r.alloc(rng.size(MAX_SIZE), rng.align(1 << 13), zeroed, api).map(|_| ())
            }
            7..=11 if n > 0 => r.dealloc(rng.below(n), if roll < 10 { Api::Global } else { Api::Address }),
            12..=13 if n > 0 => r.realloc(rng.below(n), rng.size(MAX_SIZE)),
            14 if n > 0 => {
                let (i, size, align) = (rng.below(n), rng.size(MAX_SIZE), rng.align(1 << 10));
                r.resize(i, size, align, rng.below(2) == 0)
            }
            // Now and then a request no region (and no machine) can back: it must be refused.
            15 if rng.below(8) == 0 => {
                let huge = (1usize << (40 + rng.below(7))) + rng.below(1 << 30);
                r.alloc(huge, rng.align(1 << 13), rng.below(2) == 0, Api::Global).map(|_| ())
            }
            _ => r.model.verify_all(),
        };
        res.unwrap_or_else(|e| panic!("{} step {step}: {e}", heap.strategy().name()));
        if step.is_multiple_of(CHECK_EVERY) {
            r.check(&opts).unwrap_or_else(|e| panic!("{} step {step}: {e}", heap.strategy().name()));
            check(heap);
        }
    }
    assert!(r.model.live_objects > 0 || r.refused == 0, "nothing was ever live");
    assert!(
        r.refused * 10 < STEPS,
        "{}: {} of {STEPS} requests refused by a region that should hold them",
        heap.strategy().name(),
        r.refused
    );
    r.model.verify_all().unwrap();
    r.free_all().unwrap();
    r.check(&opts).unwrap();
    heap.trim();
    r.check(&opts).unwrap();
    check(heap);
}

fn fixed_ok<S: Strategy>(heap: &Heap<S, Fixed>) {
    harness::fixed_consistent(heap.source()).unwrap();
}

fn tracked_ok<S: Strategy>(heap: &Heap<S, Tracked<Fixed>>) {
    let c = heap.source().counts();
    assert_eq!(c.illegal, 0, "{}: illegal page-source transitions: {c:?}", heap.strategy().name());
    harness::fixed_consistent(heap.source().inner()).unwrap();
}

fn model_fixed<S: Strategy + ConstInit>() {
    let region = OwnedRegion::new(region_bytes::<S>());
    let heap: Heap<S, Fixed> = Heap::with_source(region.source());
    sequence(&heap, region_bytes::<S>(), 1, fixed_ok);
    drop(heap);
}

fn model_tracked<S: Strategy + ConstInit>() {
    let region = OwnedRegion::new(region_bytes::<S>());
    let heap: Heap<S, Tracked<Fixed>> = Heap::with_source(Tracked::new(region.source()));
    sequence(&heap, region_bytes::<S>(), 2, tracked_ok);
    drop(heap);
}

fn threads_fixed<S: Strategy + ConstInit>() {
    let region = OwnedRegion::new(region_bytes::<S>());
    let heap: Heap<S, Fixed> = Heap::with_source(region.source());
    let shape = ThreadShape { threads: THREADS, steps: THREAD_STEPS, max_size: MAX_SIZE, max_align: 4096 };
    let backing = Backing::Region(region_bytes::<S>());
    harness::threads_on(&heap, shape, backing, &Opts::DEFAULT, |h, _| harness::fixed_consistent(h.source()));
    drop(heap);
}

macro_rules! model_tests {
    ($($name:ident: $s:ty),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn model_fixed() {
                super::model_fixed::<$s>();
            }
            #[test]
            fn model_tracked() {
                super::model_tracked::<$s>();
            }
            #[test]
            fn threads_fixed() {
                super::threads_fixed::<$s>();
            }
        }
    )*};
}

model_tests! {
    first_fit: FirstFit,
    first_fit_linear: FirstFit<Linear>,
    next_fit: NextFit,
    best_fit: BestFit,
    segregated_fit: SegregatedFit,
    tiered: Tiered,
}
