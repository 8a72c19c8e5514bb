//! Choosing a strategy at run time: names, and the enum over all strategies.
//!
//! A program that reads its strategy from configuration parses one of
//! [`StrategyKind::NAMES`] and builds an [`AnyStrategy`] from it: one type, one `static`, the
//! choice made when the program starts. (The comparison harness and the preload library do
//! not go through it: they parse the same names, then use a heap of the chosen concrete
//! type, so that no allocation pays for the `match`.)

use core::fmt;
use core::str::FromStr;

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::source::PageSource;
use crate::strategies::Tiered;
use crate::strategies::freelist::{BestFit, FirstFit, NextFit, SegregatedFit};
// `enum_dispatch` pastes the trait's method signatures here, so their types must be in scope.
use crate::strategy::{BadFree, BlockInfo, CheckError, Strategy, StrategyStats};

/// The strategies by name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    /// `first-fit`: the lowest-address free block that fits.
    FirstFit,
    /// `next-fit`: the first fit after where the previous search ended.
    NextFit,
    /// `best-fit`: the smallest free block that fits, lowest address on ties.
    BestFit,
    /// `segregated-fit`: free lists per size class.
    SegregatedFit,
    /// `tiered`: the Go runtime's design (thread cache, central lists, page heap).
    Tiered,
}

impl StrategyKind {
    /// Every strategy, in the order tables list them.
    pub const ALL: [StrategyKind; 5] = [
        StrategyKind::FirstFit,
        StrategyKind::NextFit,
        StrategyKind::BestFit,
        StrategyKind::SegregatedFit,
        StrategyKind::Tiered,
    ];

    // ANCHOR: strategy_kind_names
    /// The accepted names, in the order of [`ALL`](Self::ALL).
    pub const NAMES: [&'static str; 5] = ["first-fit", "next-fit", "best-fit", "segregated-fit", "tiered"];
    // ANCHOR_END: strategy_kind_names

    /// The name of this strategy.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown strategy name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStrategy;

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown strategy; valid names: ")?;
        for (i, n) in StrategyKind::NAMES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

impl core::error::Error for UnknownStrategy {}

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s)).ok_or(UnknownStrategy)
    }
}

// ANCHOR: any_strategy
/// Every strategy in one type, chosen at run time; calls are forwarded by `enum_dispatch`
/// (a `match`, no virtual call).
///
/// Every [`StrategyKind`] has its variant: [`AnyStrategy::new`] builds any of them.
///
/// ```
/// use core::alloc::Layout;
/// use stratalloc::{AnyStrategy, Heap, Mmap, StrategyKind};
/// let kind: StrategyKind = "best-fit".parse().unwrap();
/// let heap = Heap::from_parts(AnyStrategy::new(kind), Mmap);
/// let p = heap.alloc_layout(Layout::new::<[u64; 4]>()).unwrap();
/// assert_eq!(heap.stats().live_objects, 1);
/// # // SAFETY: `p` is a live block of this heap, allocated with this layout.
/// # unsafe { heap.dealloc_layout(p, Layout::new::<[u64; 4]>()) };
/// ```
// The variants differ in size (segregated fit keeps 128 list heads inline), but boxing is
// not an option for an allocator, and the value usually lives once, in a `static`.
#[allow(clippy::large_enum_variant)]
#[enum_dispatch::enum_dispatch(Strategy)]
pub enum AnyStrategy {
    /// [`FirstFit`] with its default index.
    FirstFit(FirstFit),
    /// [`NextFit`] with its default index.
    NextFit(NextFit),
    /// [`BestFit`] with its default index.
    BestFit(BestFit),
    /// [`SegregatedFit`] with its default classes.
    SegregatedFit(SegregatedFit),
    /// [`Tiered`], the Go runtime's design.
    Tiered(Tiered),
}
// ANCHOR_END: any_strategy

impl AnyStrategy {
    /// First fit (no work until the first allocation).
    pub const fn first_fit() -> Self {
        AnyStrategy::FirstFit(FirstFit::new())
    }

    /// Next fit (no work until the first allocation).
    pub const fn next_fit() -> Self {
        AnyStrategy::NextFit(NextFit::new())
    }

    /// Best fit (no work until the first allocation).
    pub const fn best_fit() -> Self {
        AnyStrategy::BestFit(BestFit::new())
    }

    /// Segregated fit (no work until the first allocation).
    pub const fn segregated_fit() -> Self {
        AnyStrategy::SegregatedFit(SegregatedFit::new())
    }

    /// The tiered Go design (no work until the first allocation).
    pub const fn tiered() -> Self {
        AnyStrategy::Tiered(<Tiered as crate::ConstInit>::INIT)
    }

    /// The strategy of `kind` (no work until the first allocation).
    pub const fn new(kind: StrategyKind) -> Self {
        match kind {
            StrategyKind::FirstFit => Self::first_fit(),
            StrategyKind::NextFit => Self::next_fit(),
            StrategyKind::BestFit => Self::best_fit(),
            StrategyKind::SegregatedFit => Self::segregated_fit(),
            StrategyKind::Tiered => Self::tiered(),
        }
    }

    /// Which strategy this is.
    pub const fn kind(&self) -> StrategyKind {
        match self {
            AnyStrategy::FirstFit(_) => StrategyKind::FirstFit,
            AnyStrategy::NextFit(_) => StrategyKind::NextFit,
            AnyStrategy::BestFit(_) => StrategyKind::BestFit,
            AnyStrategy::SegregatedFit(_) => StrategyKind::SegregatedFit,
            AnyStrategy::Tiered(_) => StrategyKind::Tiered,
        }
    }
}
