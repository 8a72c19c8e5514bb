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
//! The heaps are those of the allocator table (`workloads::for_each_allocator!`): a strategy
//! added there is served here too, under its table name.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use core::{ffi::CStr, fmt::Write};

use stratalloc::{Heap, Mmap, PageSource, SourceError, Strategy};

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

/// A strategy of the table, by its row among the table's strategies (`NAMES`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Choice(u8);

impl core::fmt::Display for Choice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(NAMES[usize::from(self.0)])
    }
}

/// The row of `name` in `NAMES` (a compile error if absent).
const fn row(name: &str) -> u8 {
    let mut i = 0;
    while i < NAMES.len() {
        if NAMES[i].len() == name.len() && eq_ignore_case(NAMES[i].as_bytes(), name.as_bytes()) {
            return i as u8;
        }
        i += 1;
    }
    panic!("not a strategy of the allocator table")
}

const fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `name` with a NUL appended, as a C string.
const fn c_name(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("a strategy name holds a NUL"),
    }
}

/// One heap per strategy of the allocator table (`workloads::for_each_allocator!`, its
/// `strategies` group: designs and variants); the anchors are not ours to serve.
macro_rules! heaps {
    (; strategies { $($name:literal, $kind:ident, $sty:ty, $src:ty;)* } anchors { $($anchors:tt)* }) => {
        /// The strategies built into this library, in table order.
        pub const NAMES: &[&str] = &[$($name),*];

        /// `STRATALLOC_STRATEGY`'s values as C strings, for [`strategy_name`].
        const C_NAMES: &[&CStr] = &[$(c_name(concat!($name, "\0"))),*];

        /// Runs `v` on the heap of row `R` (a constant, so only that row's code is kept).
        #[inline(always)]
        fn visit_row<const R: u8, V: Visit>(v: V) -> V::Out {
            $(
                if R == const { row($name) } {
                    static HEAP: Heap<$sty, Src> = Heap::with_source(Bounded(Mmap));
                    return v.visit(&HEAP);
                }
            )*
            unreachable!("a Choice is a row of NAMES")
        }

        /// Runs `v` on the heap of `choice`.
        #[inline]
        pub fn visit<V: Visit>(choice: Choice, v: V) -> V::Out {
            $(
                if choice.0 == const { row($name) } {
                    return visit_row::<{ row($name) }, V>(v);
                }
            )*
            unreachable!("a Choice is a row of NAMES")
        }
    };
}

workloads::for_each_allocator!(heaps);

/// The strategy used when `STRATALLOC_STRATEGY` is unset or unknown.
pub const DEFAULT: Choice = Choice(DEFAULT_ROW);
const DEFAULT_ROW: u8 = row("tiered");

/// Runs `v` on the default strategy's heap; for the fast paths, inside a `FastEntry` (which
/// the gate lets in only when the default strategy is selected).
#[inline(always)]
pub fn visit_fast<V: Visit>(v: V) -> V::Out {
    visit_row::<DEFAULT_ROW, V>(v)
}

/// Switches the fast paths off for good (tracing starts: every call must be recorded, which
/// only the general paths do).
pub fn fast_off() {
    crate::entry::fast_paths_off();
}

/// Row of the selected strategy in `NAMES`, or `UNSET`.
static SELECTED: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;
/// Whether some thread has started choosing.
static CHOOSING: AtomicBool = AtomicBool::new(false);
/// Whether `STRATALLOC_STATS` asked for statistics at exit.
pub static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);

/// The selected strategy; chooses it on the first call.
#[inline]
pub fn selected() -> Choice {
    match SELECTED.load(Ordering::Acquire) {
        UNSET => choose(),
        i => Choice(i),
    }
}

/// The selected strategy's name as a C string (for `stratalloc_strategy_name`).
pub fn strategy_name() -> &'static CStr {
    C_NAMES[usize::from(selected().0)]
}

#[cold]
fn choose() -> Choice {
    if CHOOSING.swap(true, Ordering::AcqRel) {
        // Another thread is reading the environment (it does not allocate): wait for it.
        loop {
            let i = SELECTED.load(Ordering::Acquire);
            if i != UNSET {
                return Choice(i);
            }
            std::thread::yield_now();
        }
    }
    let settings = env::read();
    STATS_AT_EXIT.store(settings.stats, Ordering::Relaxed);
    if let Some(value) = settings.bad_free {
        crate::bad::configure(value.as_bytes());
    }
    let choice = settings.strategy.map_or(DEFAULT, |name| from_name(name.as_bytes()));
    SELECTED.store(choice.0, Ordering::Release);
    // The fast paths serve the default strategy only; they stay off (the gate's `GATE_OFF`)
    // for any other. Turned on with a SeqCst read-modify-write, re-read below by tracing's
    // test (each side re-reads the other's flag after its store, so tracing never runs with
    // the fast paths on).
    if choice.0 == DEFAULT_ROW {
        crate::entry::fast_paths_on();
    }
    if crate::trace::on_seq_cst() {
        fast_off();
    }
    choice
}

/// Whether `given` is `name` ignoring ASCII case and whitespace (so that a composition may
/// be written `segregate(1024, segregated-fit, best-fit)`).
fn same_name(name: &[u8], given: &[u8]) -> bool {
    let mut g = given.iter().filter(|b| !b.is_ascii_whitespace());
    name.iter().all(|n| g.next().is_some_and(|b| b.eq_ignore_ascii_case(n))) && g.next().is_none()
}

/// The strategy `name` asks for (case-insensitive, whitespace ignored; compositions of the
/// table such as `tcache(arenas(best-fit))` included), or the default with one line on
/// stderr saying why.
fn from_name(name: &[u8]) -> Choice {
    if let Some(i) = NAMES.iter().position(|n| same_name(n.as_bytes(), name)) {
        return Choice(i as u8);
    }
    let mut line = Line::<640>::new();
    let shown = core::str::from_utf8(name).unwrap_or("(not UTF-8)");
    let _ = write!(line, "stratalloc: unknown STRATALLOC_STRATEGY=\"{shown}\" (valid: ");
    for (i, n) in NAMES.iter().enumerate() {
        let _ = write!(line, "{}{n}", if i > 0 { ", " } else { "" });
    }
    let _ = write!(line, "); using {DEFAULT}");
    line.emit();
    DEFAULT
}

/// Lowest address any heap here ever reserved.
static RESERVED_LO: AtomicUsize = AtomicUsize::new(usize::MAX);
/// One past the highest address any heap here ever reserved.
static RESERVED_HI: AtomicUsize = AtomicUsize::new(0);

/// Whether `p` lies inside the span of address space the heaps ever reserved: a cheap first
/// test before asking the strategy (a pointer outside it is no heap block). A block handed to
/// another thread was reserved before it was handed out, so that thread sees the span that
/// holds it.
#[inline]
pub fn contains(p: *const u8) -> bool {
    let addr = p.addr();
    addr >= RESERVED_LO.load(Ordering::Relaxed) && addr < RESERVED_HI.load(Ordering::Relaxed)
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
    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.hint_dense(base, bytes) }
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
