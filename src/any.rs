//! Choosing a strategy at run time: names, and the enum over all strategies.
//!
//! The harness, the preload library and anyone who reads a strategy from configuration parse
//! one of [`StrategyKind::NAMES`].

use core::fmt;
use core::str::FromStr;

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
