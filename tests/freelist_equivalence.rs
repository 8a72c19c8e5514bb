//! Proof that each fast index makes exactly the placement decisions of the `Linear` walk.
//!
//! The same random sequence of alloc / alloc_zeroed / realloc / dealloc runs through
//! `X<Linear>` and `X<fast>` side by side, each over its own `Fixed` region of the same size
//! and page alignment, so that addresses compare directly as offsets into the regions. At
//! every step both must answer the same offset (or both fail), and both heaps must pass their
//! invariant walkers. The sequences free blocks next to each other (coalescing), realloc in
//! and out of place, ask for alignments up to 1 MiB and run a 3 MiB region out of memory.
//!
//! `distinct_policies_are_told_apart` shows the comparison is not trivially true: the same
//! sequences through first fit and best fit soon differ.
//!
//! Cases: `PROPTEST_CASES` (default 64).

use core::alloc::{GlobalAlloc, Layout};
use std::alloc::System;

use proptest::prelude::*;
use stratalloc::strategies::freelist::{AddrRegions, AddrTree, BLOCK_ALIGN, SizeBins, SizeTree};
use stratalloc::{BestFit, ConstInit, FirstFit, Fixed, Heap, Linear, NextFit, Strategy as Allocator};

const REGION_BYTES: usize = 3 << 20;
/// The region of the sequences that reach past `AddrRegions`' window (32 MiB centred on the
/// first free block, which lies at the start of the region), into its spill tree.
const BIG_REGION_BYTES: usize = 40 << 20;
/// Alignment of each region: above the largest alignment asked for, so that both regions
/// sit at the same address modulo every alignment and offsets compare; and 1 GiB, the span
/// of one of the live-start map's lowest tables, so that both heaps cross the map's table
/// boundaries at the same offsets and take their map memory from the source at the same
/// moments (a region straddling a 1 GiB boundary needs one table more, which moves every
/// later chunk of that heap).
const REGION_ALIGN: usize = 1 << 30;

/// One operation; indexes pick a live block modulo the number of live blocks.
#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align: usize,
        zeroed: bool,
    },
    Free {
        which: usize,
    },
    /// Frees a live block of `size` bytes (the `which`-th of them), if there is one: frees
    /// of one size among live blocks of others leave many free blocks of that size.
    FreeSized {
        size: usize,
        which: usize,
    },
    Realloc {
        which: usize,
        size: usize,
    },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..=256,
        4 => 257usize..=4096,
        2 => 4097usize..=32 * 1024,
        1 => 32 * 1024usize..=256 * 1024,
        1 => 256 * 1024usize..=1024 * 1024,
    ]
}

fn align() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => (0u32..=4).prop_map(|s| 1usize << s),
        2 => (5u32..=16).prop_map(|s| 1usize << s),
        1 => (17u32..=20).prop_map(|s| 1usize << s),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), align(), proptest::bool::weighted(0.2))
            .prop_map(|(size, align, zeroed)| Op::Alloc { size, align, zeroed }),
        4 => any::<usize>().prop_map(|which| Op::Free { which }),
        2 => (any::<usize>(), size()).prop_map(|(which, size)| Op::Realloc { which, size }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..400)
}

/// Sequences that fill more than half of `BIG_REGION_BYTES`: blocks of up to 4 MiB, fewer
/// frees.
fn big_ops() -> impl Strategy<Value = Vec<Op>> {
    let big = prop_oneof![6 => size(), 1 => (1usize << 20)..=(4 << 20)];
    let op = prop_oneof![
        6 => (big, align()).prop_map(|(size, align)| Op::Alloc { size, align, zeroed: false }),
        2 => any::<usize>().prop_map(|which| Op::Free { which }),
        2 => (any::<usize>(), size()).prop_map(|(which, size)| Op::Realloc { which, size }),
    ];
    proptest::collection::vec(op, 50..300)
}

/// Sequences that leave many free blocks of one size (more than a best-fit bin keeps as a
/// list, so that bins turn into treaps) and ask for blocks of that size at alignments
/// 8..=4096, mostly 32 and 64: the over-aligned search of a bin (`fit_residues`, the
/// treap's residue masks). A build-up of 72-byte blocks (80-byte blocks, one bin), each
/// followed by a block of another size so that they do not touch; then a mix that frees
/// mostly 72-byte blocks and asks mostly for 64 bytes over-aligned (80-byte blocks too:
/// the `alignas(64)` objects of the preload's C++ program).
fn aligned_small_ops() -> impl Strategy<Value = Vec<Op>> {
    let align = || {
        prop_oneof![
            3 => Just(64usize),
            1 => Just(32usize),
            1 => Just(BLOCK_ALIGN),
            2 => (3u32..=12).prop_map(|s| 1usize << s),
        ]
    };
    let other = || prop_oneof![Just(56usize), Just(120usize), 1usize..=512];
    let pair = (other(), align()).prop_map(|(size, align)| {
        [Op::Alloc { size: 72, align: BLOCK_ALIGN, zeroed: false }, Op::Alloc { size, align, zeroed: false }]
    });
    let freed = prop_oneof![6 => Just(72usize), 1 => Just(64usize), 1 => Just(56usize), 1 => Just(120usize)];
    let op = prop_oneof![
        4 => align().prop_map(|align| Op::Alloc { size: 64, align, zeroed: false }),
        2 => (other(), align()).prop_map(|(size, align)| Op::Alloc { size, align, zeroed: false }),
        2 => any::<usize>().prop_map(|which| Op::Free { which }),
        5 => (freed, any::<usize>()).prop_map(|(size, which)| Op::FreeSized { size, which }),
    ];
    (proptest::collection::vec(pair, 100..250), proptest::collection::vec(op, 300..900))
        .prop_map(|(a, b)| a.into_iter().flatten().chain(b).collect())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A region of `.1` bytes from the system allocator, `REGION_ALIGN`-aligned, freed on drop
/// (after the heap).
struct Region(*mut u8, usize);

impl Region {
    fn new(bytes: usize) -> Self {
        // SAFETY: non-zero size.
        let p = unsafe { System.alloc(Layout::from_size_align(bytes, REGION_ALIGN).unwrap()) };
        assert!(!p.is_null());
        Region(p, bytes)
    }
    fn source(&self) -> Fixed {
        // SAFETY: the region outlives the heap (drop order in `Side`) and is used by it alone.
        unsafe { Fixed::new(self.0, self.1) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { System.dealloc(self.0, Layout::from_size_align(self.1, REGION_ALIGN).unwrap()) }
    }
}

/// One heap of the comparison, with its live blocks (pointer, layout).
struct Side<S: Allocator> {
    heap: Heap<S, Fixed>,
    region: Region,
    live: Vec<(*mut u8, Layout)>,
}

impl<S: Allocator + ConstInit> Side<S> {
    fn new(bytes: usize) -> Self {
        let region = Region::new(bytes);
        Side { heap: Heap::with_source(region.source()), region, live: Vec::new() }
    }

    /// Offset into the region, or `None` for a failed request.
    fn offset(&self, p: *mut u8) -> Option<usize> {
        (!p.is_null()).then(|| p as usize - self.region.0 as usize)
    }

    /// Applies `op`; returns the offset it produced (`Some(None)` = failed request, `None` =
    /// no-op).
    fn apply(&mut self, op: &Op) -> Option<Option<usize>> {
        // SAFETY: live blocks are freed / reallocated once, with their layouts; sizes > 0.
        unsafe {
            match *op {
                Op::Alloc { size, align, zeroed } => {
                    let l = Layout::from_size_align(size, align).unwrap();
                    let p = if zeroed { self.heap.alloc_zeroed(l) } else { self.heap.alloc(l) };
                    if !p.is_null() {
                        p.write_bytes(0x5a, size);
                        self.live.push((p, l));
                    }
                    Some(self.offset(p))
                }
                Op::Free { which } if !self.live.is_empty() => {
                    let (p, l) = self.live.swap_remove(which % self.live.len());
                    self.heap.dealloc(p, l);
                    Some(self.offset(p))
                }
                Op::FreeSized { size, which } => {
                    let of_size: Vec<usize> =
                        (0..self.live.len()).filter(|&k| self.live[k].1.size() == size).collect();
                    let &k = of_size.get(which % of_size.len().max(1))?;
                    let (p, l) = self.live.swap_remove(k);
                    self.heap.dealloc(p, l);
                    Some(self.offset(p))
                }
                Op::Realloc { which, size } if !self.live.is_empty() => {
                    let k = which % self.live.len();
                    let (p, l) = self.live[k];
                    let q = self.heap.realloc(p, l, size);
                    if !q.is_null() {
                        self.live[k] = (q, Layout::from_size_align(size, l.align()).unwrap());
                    }
                    Some(self.offset(q))
                }
                _ => None,
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        // SAFETY: single-threaded.
        unsafe { self.heap.check() }.map_err(|e| format!("{}: {e}", self.heap.strategy().name()))
    }
}

// ANCHOR: equivalence_compare
/// Runs `ops` through both heaps; the first step where they disagree is an error.
fn compare<A: Allocator + ConstInit, B: Allocator + ConstInit>(ops: &[Op]) -> Result<(), String> {
    compare_in::<A, B>(ops, REGION_BYTES)
}

/// [`compare`] over regions of `bytes`.
fn compare_in<A: Allocator + ConstInit, B: Allocator + ConstInit>(
    ops: &[Op],
    bytes: usize,
) -> Result<(), String> {
    let (mut a, mut b) = (Side::<A>::new(bytes), Side::<B>::new(bytes));
    for (i, op) in ops.iter().enumerate() {
        let (x, y) = (a.apply(op), b.apply(op));
        if x != y {
            return Err(format!("step {i} {op:?}: reference placed at {x:?}, fast index at {y:?}"));
        }
        a.check().and_then(|()| b.check()).map_err(|e| format!("step {i} {op:?}: {e}"))?;
    }
    Ok(())
}
// ANCHOR_END: equivalence_compare

// ANCHOR: equivalence_props
proptest! {
    #![proptest_config(config())]

    #[test]
    fn first_fit_tree_places_as_the_walk(ops in ops()) {
        compare::<FirstFit<Linear>, FirstFit<AddrTree>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn next_fit_tree_places_as_the_walk(ops in ops()) {
        compare::<NextFit<Linear>, NextFit<AddrTree>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn first_fit_regions_place_as_the_walk(ops in ops()) {
        compare::<FirstFit<Linear>, FirstFit<AddrRegions>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn next_fit_regions_place_as_the_walk(ops in ops()) {
        compare::<NextFit<Linear>, NextFit<AddrRegions>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn first_fit_regions_and_spill_place_as_the_walk(ops in big_ops()) {
        compare_in::<FirstFit<Linear>, FirstFit<AddrRegions>>(&ops, BIG_REGION_BYTES).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn next_fit_regions_and_spill_place_as_the_walk(ops in big_ops()) {
        compare_in::<NextFit<Linear>, NextFit<AddrRegions>>(&ops, BIG_REGION_BYTES).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn best_fit_tree_places_as_the_walk(ops in ops()) {
        compare::<BestFit<Linear>, BestFit<SizeTree>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn best_fit_bins_place_as_the_walk(ops in ops()) {
        compare::<BestFit<Linear>, BestFit<SizeBins>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn best_fit_bins_place_over_aligned_as_the_walk(ops in aligned_small_ops()) {
        compare::<BestFit<Linear>, BestFit<SizeBins>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn best_fit_tree_places_over_aligned_as_the_walk(ops in aligned_small_ops()) {
        compare::<BestFit<Linear>, BestFit<SizeTree>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn first_fit_regions_place_over_aligned_as_the_walk(ops in aligned_small_ops()) {
        compare::<FirstFit<Linear>, FirstFit<AddrRegions>>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn next_fit_regions_place_over_aligned_as_the_walk(ops in aligned_small_ops()) {
        compare::<NextFit<Linear>, NextFit<AddrRegions>>(&ops).map_err(TestCaseError::fail)?;
    }
}
// ANCHOR_END: equivalence_props

/// The comparison can fail: first fit and best fit (and next fit) disagree on most sequences.
#[test]
fn distinct_policies_are_told_apart() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut first_vs_best, mut first_vs_next) = (0, 0);
    for _ in 0..16 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        first_vs_best += compare::<FirstFit<Linear>, BestFit<SizeTree>>(&ops).is_err() as usize;
        first_vs_next += compare::<FirstFit<Linear>, NextFit<AddrTree>>(&ops).is_err() as usize;
    }
    assert!(first_vs_best >= 4, "first fit and best fit agreed on {} of 16 sequences", 16 - first_vs_best);
    assert!(first_vs_next >= 4, "first fit and next fit agreed on {} of 16 sequences", 16 - first_vs_next);
}

/// The sequences exercise what the indexes must get right: many free blocks to choose from,
/// frees that coalesce with a neighbour, failures of a full region.
#[test]
fn sequences_coalesce_and_exhaust() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut coalesced, mut failed, mut most_free_blocks) = (0, 0, 0);
    for _ in 0..16 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        let mut s = Side::<FirstFit<Linear>>::new(REGION_BYTES);
        for op in &ops {
            let before = s.heap.strategy().free_summary().blocks;
            let r = s.apply(op);
            let after = s.heap.strategy().free_summary().blocks;
            // A free that merges with no neighbour adds a free block; one that merges adds none.
            coalesced += (matches!(op, Op::Free { .. }) && r.is_some() && after <= before) as usize;
            failed += matches!(r, Some(None)) as usize;
            most_free_blocks = most_free_blocks.max(after);
        }
    }
    assert!(coalesced > 100, "only {coalesced} coalescing frees");
    assert!(failed > 0, "no sequence ran the region out of memory");
    assert!(most_free_blocks > 10, "at most {most_free_blocks} free blocks to choose from");
}

/// The over-aligned sequences do what they are for: some size has more free blocks than a
/// bin keeps as a list (`BIN_LIST_MAX`), while over-aligned requests are served; and under
/// first fit, 64-aligned requests meet many free 80-byte blocks (what a 64-byte request at
/// 64-byte alignment needs) whose payload is not 64-aligned, which the regions' aligned
/// bounds are for.
#[test]
fn aligned_sequences_fill_bins_past_lists() {
    use proptest::strategy::ValueTree;
    use stratalloc::strategies::freelist::BIN_LIST_MAX;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut crowded, mut aligned_served, mut most_misaligned) = (0, 0, 0);
    for _ in 0..8 {
        let ops = aligned_small_ops().new_tree(&mut runner).unwrap().current();
        let mut s = Side::<BestFit<SizeBins>>::new(REGION_BYTES);
        let mut f = Side::<FirstFit<AddrRegions>>::new(REGION_BYTES);
        let mut most = 0;
        for op in &ops {
            if let Op::Alloc { align: 64, .. } = op {
                let mut misaligned = 0;
                f.heap.strategy().walk(|b| {
                    // A block's payload starts one header word above its address.
                    misaligned += (b.free && b.bytes == 80 && (b.addr + 8) % 64 != 0) as usize;
                });
                most_misaligned = most_misaligned.max(misaligned);
            }
            f.apply(op);
            let r = s.apply(op);
            if let (Op::Alloc { align, .. }, Some(Some(_))) = (op, r) {
                aligned_served += (*align > BLOCK_ALIGN) as usize;
            }
            let mut per_size = std::collections::HashMap::<usize, usize>::new();
            s.heap.strategy().walk(|b| {
                if b.free {
                    *per_size.entry(b.bytes).or_default() += 1;
                }
            });
            most = most.max(per_size.values().copied().max().unwrap_or(0));
        }
        crowded += (most > BIN_LIST_MAX) as usize;
    }
    assert!(
        crowded >= 3,
        "only {crowded} of 8 sequences put more than {BIN_LIST_MAX} free blocks in one bin"
    );
    assert!(aligned_served > 500, "only {aligned_served} over-aligned requests served");
    assert!(
        most_misaligned > BIN_LIST_MAX,
        "first fit met at most {most_misaligned} free misaligned 80-byte blocks at a 64-aligned request"
    );
}

/// The big sequences place blocks past `AddrRegions`' window (16 MiB above the first free
/// block), where its spill tree holds them, and keep many blocks inside it.
#[test]
fn big_sequences_reach_the_spill() {
    use proptest::strategy::ValueTree;
    use stratalloc::strategies::freelist::{REGION_BYTES as R, REGION_COUNT};
    let half_window = R * REGION_COUNT / 2;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut past, mut inside) = (0, 0);
    for _ in 0..8 {
        let ops = big_ops().new_tree(&mut runner).unwrap().current();
        let mut s = Side::<FirstFit<Linear>>::new(BIG_REGION_BYTES);
        for op in &ops {
            if let Some(Some(off)) = s.apply(op) {
                past += (off > half_window + (1 << 20)) as usize;
                inside += (off < half_window - (1 << 20)) as usize;
            }
        }
    }
    assert!(past > 20, "only {past} placements past the window");
    assert!(inside > 200, "only {inside} placements inside it");
}
