//! One `static` heap per strategy built into the library, and the choice among them.
//!
//! Every strategy gets its own `Heap<S, Bounded<Mmap>>` (const-initialised, so it costs
//! nothing until used); [`selected`] picks one on the first call from `STRATALLOC_STRATEGY`
//! and never changes it. Code that works on "the heap" is written once, generically, as a
//! [`Visit`] implementation, and [`visit`] calls it with the selected heap's concrete type.
//!
//! [`Bounded`] wraps the page source and records the lowest and highest address it ever
//! reserved, so `free` can tell a block of ours from a foreign pointer before handing it to a
//! strategy.
//!
//! To add a strategy: one line in the `strategies!` invocation below.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use core::{ffi::CStr, fmt::Write};

use stratalloc::{Heap, Mmap, PageSource, SourceError, Strategy, StrategyKind};

use crate::env;
use crate::report::Line;

/// The page source of every heap here.
pub type Src = Bounded<Mmap>;

/// Something to do with the selected heap, whatever its strategy type.
pub trait Visit {
    /// What it returns.
    type Out;
    /// Does it with `heap`.
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> Self::Out;
}

macro_rules! strategies {
    (default: $default:ident; $($variant:ident => $ty:ty, $heap:ident;)+) => {
        $(
            static $heap: Heap<$ty, Src> = Heap::with_source(Bounded(Mmap));
        )+

        /// The strategies built into this library, in [`StrategyKind::ALL`] order.
        pub const AVAILABLE: &[StrategyKind] = &[$(StrategyKind::$variant),+];

        /// The strategy used when `STRATALLOC_STRATEGY` is unset, unknown or not built in.
        pub const DEFAULT: StrategyKind = StrategyKind::$default;

        /// Runs `v` on the heap of `kind` (the default's heap if `kind` is not built in).
        #[inline]
        pub fn visit<V: Visit>(kind: StrategyKind, v: V) -> V::Out {
            #[allow(unreachable_patterns)]
            match kind {
                $(StrategyKind::$variant => v.visit(&$heap),)+
                _ => visit(DEFAULT, v),
            }
        }
    };
}

strategies! {
    default: Tiered;
    FirstFit => stratalloc::FirstFit, FIRST_FIT;
    NextFit => stratalloc::NextFit, NEXT_FIT;
    BestFit => stratalloc::BestFit, BEST_FIT;
    SegregatedFit => stratalloc::SegregatedFit, SEGREGATED_FIT;
    Tiered => stratalloc::Tiered, TIERED;
}

/// `STRATALLOC_STRATEGY`'s value as a C string, for [`strategy_name`].
const C_NAMES: [&CStr; 5] = [c"first-fit", c"next-fit", c"best-fit", c"segregated-fit", c"tiered"];

/// Index of the selected strategy in `StrategyKind::ALL`, or `UNSET`.
static SELECTED: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;
/// Whether some thread has started choosing.
static CHOOSING: AtomicBool = AtomicBool::new(false);
/// Whether `STRATALLOC_STATS` asked for statistics at exit.
pub static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);

/// The selected strategy; chooses it on the first call.
#[inline]
pub fn selected() -> StrategyKind {
    match SELECTED.load(Ordering::Acquire) {
        UNSET => choose(),
        i => kind_at(i),
    }
}

fn kind_at(i: u8) -> StrategyKind {
    StrategyKind::ALL.get(usize::from(i)).copied().unwrap_or(DEFAULT)
}

/// The selected strategy's name as a C string (for `stratalloc_strategy_name`).
pub fn strategy_name() -> &'static CStr {
    C_NAMES[selected() as usize]
}

#[cold]
fn choose() -> StrategyKind {
    if CHOOSING.swap(true, Ordering::AcqRel) {
        // Another thread is reading the environment (it does not allocate): wait for it.
        loop {
            let i = SELECTED.load(Ordering::Acquire);
            if i != UNSET {
                return kind_at(i);
            }
            std::thread::yield_now();
        }
    }
    let settings = env::read();
    STATS_AT_EXIT.store(settings.stats, Ordering::Relaxed);
    let kind = settings.strategy.map_or(DEFAULT, |name| from_name(name.as_bytes()));
    SELECTED.store(kind as u8, Ordering::Release);
    kind
}

/// The strategy `name` asks for, or the default with one line on stderr saying why.
fn from_name(name: &[u8]) -> StrategyKind {
    let parsed = core::str::from_utf8(name).ok().and_then(|s| s.parse::<StrategyKind>().ok());
    let mut line = Line::<320>::new();
    let _ = match parsed {
        Some(kind) if AVAILABLE.contains(&kind) => return kind,
        Some(kind) => write!(
            line,
            "stratalloc: STRATALLOC_STRATEGY={kind} is not built into this library; using {DEFAULT}"
        ),
        None => {
            let shown = core::str::from_utf8(name).unwrap_or("(not UTF-8)");
            let valid = StrategyKind::NAMES;
            write!(
                line,
                "stratalloc: unknown STRATALLOC_STRATEGY=\"{shown}\" (valid: {}, {}, {}, {}, {}); \
                 using {DEFAULT}",
                valid[0], valid[1], valid[2], valid[3], valid[4]
            )
        }
    };
    line.emit();
    DEFAULT
}

/// Lowest address any heap here ever reserved.
static RESERVED_LO: AtomicUsize = AtomicUsize::new(usize::MAX);
/// One past the highest address any heap here ever reserved.
static RESERVED_HI: AtomicUsize = AtomicUsize::new(0);

/// Whether `base..base + bytes` lies inside the span of address space the heaps reserved.
#[inline]
pub fn contains(base: NonNull<u8>, bytes: usize) -> bool {
    let start = base.as_ptr() as usize;
    start >= RESERVED_LO.load(Ordering::Relaxed)
        && start.checked_add(bytes).is_some_and(|end| end <= RESERVED_HI.load(Ordering::Relaxed))
}

/// A page source that records the span of address space it reserved (into `RESERVED_LO` and
/// `RESERVED_HI`; only one heap is used per process, so one span suffices).
pub struct Bounded<P>(P);

// SAFETY: every call is forwarded unchanged to the inner source, whose guarantees carry over;
// `reserve` only records the range it returns.
unsafe impl<P: PageSource> PageSource for Bounded<P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = P::FRESH_ZEROED;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        let base = self.0.reserve(bytes, align)?;
        let start = base.as_ptr() as usize;
        RESERVED_LO.fetch_min(start, Ordering::Relaxed);
        RESERVED_HI.fetch_max(start.saturating_add(bytes), Ordering::Relaxed);
        Ok(base)
    }
    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.map(base, bytes) }
    }
    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.used(base, bytes) }
    }
    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.unused(base, bytes) }
    }
    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.fault(base, bytes) }
    }
    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.free(base, bytes) }
    }
}
