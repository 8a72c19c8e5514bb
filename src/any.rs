//! Choosing a strategy at run time: names, and the enum over all strategies.
//!
//! A program that reads its strategy from configuration parses one of
//! [`StrategyKind::NAMES`], or a composition of layers around them in the grammar of
//! [`compose`](crate::compose) (`tcache(arenas(best-fit))`), and builds an [`AnyStrategy`]
//! from it: one type, one `static`, the choice made when the program starts. (The comparison harness and the preload library do
//! not go through it: they parse the same names, then use a heap of the chosen concrete
//! type, so that no allocation pays for the `match`.)

use core::fmt;
use core::str::FromStr;

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::compose::{INNER_POOL, POOL, PoolFull, Spec, SpecNode};
use crate::source::PageSource;
use crate::strategies::Tiered;
use crate::strategies::freelist::{BestFit, FirstFit, NextFit, SegregatedFit};
use crate::strategies::layers::{Arenas, DEFAULT_ARENAS, Routed, ThreadCache};
// `enum_dispatch` pastes the trait's method signatures here, so their types must be in scope.
use crate::strategy::{BadFree, BlockInfo, CachedFree, CheckError, Found, Strategy, StrategyStats};

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

/// An unknown or malformed strategy name.
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
        f.write_str(
            ", or layers around them: tcache(S), arenas(S), segregate(LIMIT, S, S) \
             (e.g. tcache(arenas(best-fit)))",
        )
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
    /// `tcache(S)`: a [`ThreadCache`] in front of a strategy of the node pool.
    ThreadCache(ThreadCache<&'static AnyStrategy>),
    /// `arenas(S)`: [`DEFAULT_ARENAS`] instances of a strategy, each in the node pool.
    Arenas(Arenas<&'static AnyInner>),
    /// `segregate(LIMIT, S, S)`: size routing between two strategies of the node pool.
    Segregate(Routed<usize, &'static AnyStrategy, &'static AnyStrategy>),
}
// ANCHOR_END: any_strategy

/// A strategy inside `arenas(...)`: every variant of [`AnyStrategy`] but `Arenas`.
///
/// Each arena's strategy draws from an `ArenaSource` over the heap's source, so a strategy
/// type reached from inside `Arenas` is instantiated for that source. Were `Arenas` reachable
/// again from there, the source types would nest without end (`ArenaSource<ArenaSource<..>>`)
/// and the program could not be compiled: the grammar refuses `arenas` inside `arenas`, and
/// this enum, closed under the other layers, is what an arena holds.
#[allow(clippy::large_enum_variant)]
#[enum_dispatch::enum_dispatch(Strategy)]
pub enum AnyInner {
    /// [`FirstFit`].
    FirstFit(FirstFit),
    /// [`NextFit`].
    NextFit(NextFit),
    /// [`BestFit`].
    BestFit(BestFit),
    /// [`SegregatedFit`].
    SegregatedFit(SegregatedFit),
    /// [`Tiered`].
    Tiered(Tiered),
    /// `tcache(S)`.
    ThreadCache(ThreadCache<&'static AnyInner>),
    /// `segregate(LIMIT, S, S)`.
    Segregate(Routed<usize, &'static AnyInner, &'static AnyInner>),
}

impl AnyInner {
    /// The design at the bottom (see [`AnyStrategy::kind`]).
    pub fn kind(&self) -> StrategyKind {
        match self {
            AnyInner::FirstFit(_) => StrategyKind::FirstFit,
            AnyInner::NextFit(_) => StrategyKind::NextFit,
            AnyInner::BestFit(_) => StrategyKind::BestFit,
            AnyInner::SegregatedFit(_) => StrategyKind::SegregatedFit,
            AnyInner::Tiered(_) => StrategyKind::Tiered,
            AnyInner::ThreadCache(t) => t.inner().kind(),
            AnyInner::Segregate(r) => r.small().kind(),
        }
    }

    fn build(spec: &Spec, i: u8) -> Result<Self, PoolFull> {
        Ok(match spec.node(i) {
            SpecNode::Base(k) => match AnyStrategy::new(k) {
                AnyStrategy::FirstFit(s) => AnyInner::FirstFit(s),
                AnyStrategy::NextFit(s) => AnyInner::NextFit(s),
                AnyStrategy::BestFit(s) => AnyInner::BestFit(s),
                AnyStrategy::SegregatedFit(s) => AnyInner::SegregatedFit(s),
                _ => AnyInner::Tiered(<Tiered as crate::ConstInit>::INIT),
            },
            SpecNode::ThreadCache(c) => {
                AnyInner::ThreadCache(ThreadCache::new(INNER_POOL.place(Self::build(spec, c)?)?))
            }
            // The parser refuses `arenas` inside `arenas`; should a spec built otherwise hold
            // one, its arenas are left out (the inner strategy serves alone).
            SpecNode::Arenas(c) => Self::build(spec, c)?,
            SpecNode::Segregate { limit, small, large } => {
                let small = INNER_POOL.place(Self::build(spec, small)?)?;
                let large = INNER_POOL.place(Self::build(spec, large)?)?;
                AnyInner::Segregate(Routed::with_limit(limit, small, large))
            }
        })
    }
}

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

    /// Which design this is; for a composition, the design at its bottom (the small side
    /// of a `segregate`).
    pub fn kind(&self) -> StrategyKind {
        match self {
            AnyStrategy::FirstFit(_) => StrategyKind::FirstFit,
            AnyStrategy::NextFit(_) => StrategyKind::NextFit,
            AnyStrategy::BestFit(_) => StrategyKind::BestFit,
            AnyStrategy::SegregatedFit(_) => StrategyKind::SegregatedFit,
            AnyStrategy::Tiered(_) => StrategyKind::Tiered,
            AnyStrategy::ThreadCache(t) => t.inner().kind(),
            AnyStrategy::Arenas(a) => a.arena(0).kind(),
            AnyStrategy::Segregate(r) => r.small().kind(),
        }
    }

    /// The strategy a name of the grammar in [`compose`](crate::compose) asks for: a base
    /// strategy, or a composition whose inner strategies go to the static node pool.
    ///
    /// ```
    /// use stratalloc::{AnyStrategy, Heap, Mmap};
    /// let s = AnyStrategy::from_name("tcache(arenas(best-fit))").unwrap();
    /// let heap = Heap::from_parts(s, Mmap);
    /// let v = heap.alloc_layout(core::alloc::Layout::new::<u64>()).unwrap();
    /// assert_eq!(heap.block_of(v.as_ptr()).map(|b| b.start), Some(v.as_ptr() as usize));
    /// let e = AnyStrategy::from_name("arenas(worst-fit)").err().unwrap();
    /// assert!(e.to_string().contains("tcache(S)"));
    /// ```
    pub fn from_name(name: &str) -> Result<Self, ComposeError> {
        let spec: Spec = name.parse().map_err(ComposeError::Name)?;
        Self::compose(&spec).map_err(ComposeError::Pool)
    }

    /// The strategy of a parsed name (see [`from_name`](Self::from_name)).
    pub fn compose(spec: &Spec) -> Result<Self, PoolFull> {
        Self::build(spec, spec.len() - 1)
    }

    fn build(spec: &Spec, i: u8) -> Result<Self, PoolFull> {
        Ok(match spec.node(i) {
            SpecNode::Base(k) => Self::new(k),
            SpecNode::ThreadCache(c) => {
                AnyStrategy::ThreadCache(ThreadCache::new(POOL.place(Self::build(spec, c)?)?))
            }
            SpecNode::Arenas(c) => {
                let first = INNER_POOL.place(AnyInner::build(spec, c)?)?;
                let mut each = [first; DEFAULT_ARENAS];
                for slot in &mut each[1..] {
                    *slot = INNER_POOL.place(AnyInner::build(spec, c)?)?;
                }
                AnyStrategy::Arenas(Arenas::from_fn(|k| each[k]))
            }
            SpecNode::Segregate { limit, small, large } => {
                let small = POOL.place(Self::build(spec, small)?)?;
                let large = POOL.place(Self::build(spec, large)?)?;
                AnyStrategy::Segregate(Routed::with_limit(limit, small, large))
            }
        })
    }
}

/// Why [`AnyStrategy::from_name`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComposeError {
    /// The name is not in the grammar.
    Name(UnknownStrategy),
    /// The node pool is full.
    Pool(PoolFull),
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposeError::Name(e) => e.fmt(f),
            ComposeError::Pool(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ComposeError {}
