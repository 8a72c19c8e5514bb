//! Page sources: where every strategy gets its memory.
//!
//! # Design
//!
//! A [`PageSource`] is the operating-system layer of stratalloc, modelled on the Go runtime's
//! `mem.go` (and on snmalloc's PAL): primitives only, no policy, no caching, no locking beyond
//! what the primitive itself needs. Caching, placement and statistics are the strategies' job.
//!
//! ## Vocabulary
//! - *OS page*: the granularity of a source, [`PageSource::PAGE_BYTES`] (4 KiB for [`Mmap`] on
//!   x86-64 Linux). Every address and length passed to a source is a multiple of it.
//! - *Runtime page*: a strategy's own unit (8 KiB in the tiered design); a multiple of OS pages.
//! - Ranges are half-open, `base..base + bytes`.
//!
//! ## The four address-space states (Go's `mem.go`)
//! ```text
//!            reserve               map                  used
//!   None ───────────────▶ Reserved ─────────▶ Prepared ─────────▶ Ready
//!    ▲                       ▲                    ▲      unused      │
//!    │         free          │       fault        └──────────────────┘
//!    └──── (from any) ───────┴──── (from any) ───────────────────────
//! ```
//! - **None**: not owned by the process. Touching it faults.
//! - **Reserved**: address space owned, no memory behind it; touching it faults.
//! - **Prepared**: mapped; may or may not be backed by memory; must not be touched before
//!   `used` (on Linux this state costs nothing; elsewhere it may).
//! - **Ready**: may be read and written.
//!
//! | method | transition | Go | [`Mmap`] on Linux |
//! |---|---|---|---|
//! | [`reserve`](PageSource::reserve) | None → Reserved | sysReserve | `mmap(PROT_NONE, MAP_NORESERVE)` |
//! | [`map`](PageSource::map) | Reserved → Prepared | sysMap | `mmap(MAP_FIXED, PROT_READ\|PROT_WRITE)`, commit-charged |
//! | [`used`](PageSource::used) | Prepared → Ready | sysUsed | nothing |
//! | [`unused`](PageSource::unused) | Ready → Prepared | sysUnused | `madvise(MADV_DONTNEED)` |
//! | [`fault`](PageSource::fault) | any → Reserved | sysFault | `mmap(MAP_FIXED, PROT_NONE)` |
//! | [`free`](PageSource::free) | any → None | sysFree | `munmap` |
//!
//! `map` is where a source refuses memory it cannot back: [`Mmap`] maps without
//! `MAP_NORESERVE`, so the kernel's commit accounting refuses a range it will not promise,
//! and it refuses a range larger than RAM + swap itself (see [`Mmap`]). `reserve` only takes
//! address space, which costs no memory.
//!
//! Failure is a value ([`SourceError`]), never a panic. [`Tracked`] checks every transition
//! against this table and refuses illegal ones, so tests can prove that a strategy follows it.
//!
//! ## Sources
//! - [`Mmap`]: the operating system. The only module of the project that makes system calls.
//! - [`Fixed`]: a region the caller gives (a `static` array, any pointer range); `no_std`.
//! - [`Tracked`]: wraps a source, counts bytes in each state and calls of each kind, refuses
//!   illegal transitions.
//! - [`Failing`]: wraps a source and fails on request (the Nth call, past a byte budget).

use core::fmt;
use core::ptr::NonNull;

mod failing;
mod fixed;
#[cfg(unix)]
mod mmap;
mod tracked;

pub use failing::Failing;
pub use fixed::{Fixed, Region};
#[cfg(unix)]
pub use mmap::Mmap;
pub use tracked::{Tracked, TrackedCounts};

// ANCHOR: state
/// A state of a range of address space; see the [module docs](self) for the state machine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not owned by the process.
    None,
    /// Address space owned, not accessible, no memory behind it.
    Reserved,
    /// Mapped, not yet to be touched (Go's "Prepared").
    Prepared,
    /// Readable and writable.
    Ready,
}
// ANCHOR_END: state

// ANCHOR: op
/// The six transitions a [`PageSource`] makes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// None → Reserved.
    Reserve,
    /// Reserved → Prepared.
    Map,
    /// Prepared → Ready.
    Used,
    /// Ready → Prepared.
    Unused,
    /// Any → Reserved.
    Fault,
    /// Any → None.
    Free,
}
// ANCHOR_END: op

impl Op {
    /// Every operation, in the order of the state machine.
    pub const ALL: [Op; 6] = [Op::Reserve, Op::Map, Op::Used, Op::Unused, Op::Fault, Op::Free];

    /// The Go runtime's name for this transition (`sysReserve`, ...).
    pub const fn go_name(self) -> &'static str {
        match self {
            Op::Reserve => "sysReserve",
            Op::Map => "sysMap",
            Op::Used => "sysUsed",
            Op::Unused => "sysUnused",
            Op::Fault => "sysFault",
            Op::Free => "sysFree",
        }
    }

    /// The state the range must be in before the call, `None` meaning "any state".
    pub const fn from_state(self) -> Option<State> {
        match self {
            Op::Reserve => Some(State::None),
            Op::Map => Some(State::Reserved),
            Op::Used => Some(State::Prepared),
            Op::Unused => Some(State::Ready),
            Op::Fault | Op::Free => None,
        }
    }

    /// The state the range is in after a successful call.
    pub const fn to_state(self) -> State {
        match self {
            Op::Reserve | Op::Fault => State::Reserved,
            Op::Map | Op::Unused => State::Prepared,
            Op::Used => State::Ready,
            Op::Free => State::None,
        }
    }

    /// Index of this operation in [`Op::ALL`] (for per-operation counters).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Op::Reserve => "reserve",
            Op::Map => "map",
            Op::Used => "used",
            Op::Unused => "unused",
            Op::Fault => "fault",
            Op::Free => "free",
        };
        f.write_str(name)
    }
}

/// Why a page-source call failed. Every failure is reported as a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The source has no more memory or address space to give (a full [`Fixed`] region, a
    /// [`Failing`] budget spent).
    Exhausted {
        /// The call that failed.
        op: Op,
        /// Bytes asked for.
        bytes: usize,
    },
    /// The operating system refused the call.
    Os {
        /// The call that failed.
        op: Op,
        /// `errno` as the OS reported it.
        errno: i32,
    },
    /// The range was not in the state the transition starts from (found by [`Tracked`]).
    IllegalTransition {
        /// The call that was refused.
        op: Op,
        /// Start of the offending range.
        addr: usize,
        /// Length of the offending range.
        bytes: usize,
        /// A state found inside the range that the transition does not start from.
        found: State,
    },
    /// The arguments are malformed: not a multiple of the page size, an alignment that is not
    /// a power of two, or a range outside the source.
    Invalid {
        /// The call that was refused.
        op: Op,
        /// Start of the offending range (0 for `reserve`).
        addr: usize,
        /// Length of the offending range.
        bytes: usize,
    },
    /// A failure injected on purpose by [`Failing`].
    Injected {
        /// The call that was made to fail.
        op: Op,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SourceError::Exhausted { op, bytes } => {
                write!(f, "page source exhausted: {op} of {bytes} bytes")
            }
            SourceError::Os { op, errno } => {
                write!(f, "{op} ({}) failed: errno {errno}", op.go_name())
            }
            SourceError::IllegalTransition { op, addr, bytes, found } => write!(
                f,
                "illegal transition: {op} on {addr:#x}..{:#x} ({bytes} bytes) found {found:?}, \
                 expected {}",
                addr + bytes,
                match op.from_state() {
                    Some(State::None) => "None",
                    Some(State::Reserved) => "Reserved",
                    Some(State::Prepared) => "Prepared",
                    Some(State::Ready) => "Ready",
                    None => "any owned state",
                }
            ),
            SourceError::Invalid { op, addr, bytes } => write!(
                f,
                "invalid arguments to {op}: {addr:#x} + {bytes} bytes (page-aligned range inside \
                 the source required)"
            ),
            SourceError::Injected { op } => write!(f, "injected failure of {op}"),
        }
    }
}

impl core::error::Error for SourceError {}

// ANCHOR: page_source
/// The operating-system layer every strategy draws memory from.
///
/// Each method makes one transition of the state machine in the [module docs](self). All
/// addresses and lengths are multiples of [`PAGE_BYTES`](Self::PAGE_BYTES); a call that
/// cannot be honoured returns an error and leaves the range as it was.
///
/// # Safety
///
/// *Implementors must guarantee* that:
/// 1. a range returned by [`reserve`](Self::reserve) is disjoint from every other range the
///    source has handed out and not yet freed, aligned as asked, and `bytes` long;
/// 2. after a successful [`used`](Self::used) the range is readable and writable and stays
///    so, with its contents intact, until the caller itself calls `unused`, `fault` or `free`
///    on it;
/// 3. when [`FRESH_ZEROED`](Self::FRESH_ZEROED) is true, a range that becomes Ready for the
///    first time after `map` (or again after `unused`) reads as zero;
/// 4. no method panics, and no method allocates through the global allocator.
///
/// *Callers must guarantee* the conditions written on each `unsafe` method: above all, that
/// the range was obtained from this same source and is not in use by anything else.
pub unsafe trait PageSource: Sync {
    /// The granularity of every address and length this source takes (its OS page).
    const PAGE_BYTES: usize;
    /// Whether memory that becomes Ready after `map` (or after `unused`) reads as zero.
    const FRESH_ZEROED: bool;
    /// Whether `unused` gives the memory back (so that a scavenger is worth running).
    const RELEASES_MEMORY: bool;

    /// None → Reserved: owns `bytes` of address space aligned to `align`, not yet accessible.
    ///
    /// `bytes` must be a non-zero multiple of `PAGE_BYTES`; `align` a power of two (any value
    /// up to `PAGE_BYTES` means page alignment).
    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError>;

    /// Reserved → Prepared: puts memory behind the range (Go's sysMap). A source refuses
    /// here, with an error, memory it cannot back (see [`Mmap`]).
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range reserved from this source and is Reserved.
    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError>;

    /// Prepared → Ready: the range may now be read and written (Go's sysUsed).
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range from this source and is Prepared.
    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError>;

    /// Ready → Prepared: the contents may be dropped and the memory given back to the OS
    /// (Go's sysUnused). The range must be made Ready with `used` before it is touched again.
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range from this source, is Ready, and holds nothing the
    /// caller still needs.
    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError>;

    /// A hint, changing no state: `base..base + bytes` will be used densely, so the OS may
    /// back it with huge pages (Linux: `madvise(MADV_HUGEPAGE)`, which transparent huge
    /// pages in their `madvise` mode wait for). Fewer, larger page faults for memory a
    /// strategy fills; the cost is memory: a touched huge page is resident whole. The
    /// default does nothing; wrappers forward it.
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range reserved from this source and is Prepared or
    /// Ready.
    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        let _ = (base, bytes);
    }

    /// Any → Reserved: makes the range inaccessible, dropping its contents (Go's sysFault, a
    /// debugging aid: a later touch faults instead of reading stale data).
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range reserved from this source and holds nothing the
    /// caller still needs.
    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError>;

    /// Any → None: gives the address space back (Go's sysFree).
    ///
    /// # Safety
    /// `base..base + bytes` lies in a range reserved from this source and nothing uses it.
    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError>;

    // ANCHOR: alloc_ready
    /// None → Ready in one step: `reserve`, `map` and `used`, undoing what was done if a later
    /// step fails. The usual way for a strategy to grow.
    fn alloc_ready(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        let base = self.reserve(bytes, align)?;
        // SAFETY: `base..base + bytes` was just reserved from this source and is Reserved;
        // on failure the whole reservation, which nothing else has seen, is freed.
        unsafe {
            if let Err(e) = self.map(base, bytes).and_then(|()| self.used(base, bytes)) {
                let _ = self.free(base, bytes);
                return Err(e);
            }
        }
        Ok(base)
    }
    // ANCHOR_END: alloc_ready
}
// ANCHOR_END: page_source

// ANCHOR: align_up
/// Rounds `n` up to a multiple of `align` (a power of two); `None` on overflow.
#[inline]
pub const fn align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}
// ANCHOR_END: align_up

/// Checks the common preconditions of a range argument: page-aligned base and length,
/// non-zero length, no wrap-around.
#[inline]
pub(crate) fn check_range(op: Op, base: NonNull<u8>, bytes: usize, page: usize) -> Result<(), SourceError> {
    let addr = base.addr().get();
    if bytes == 0
        || !addr.is_multiple_of(page)
        || !bytes.is_multiple_of(page)
        || addr.checked_add(bytes).is_none()
    {
        return Err(SourceError::Invalid { op, addr, bytes });
    }
    Ok(())
}
