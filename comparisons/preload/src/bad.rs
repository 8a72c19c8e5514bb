//! Bad calls: a `free` or `realloc` of a pointer that is not the start of a live block of
//! ours (a double free, an interior pointer, a stack pointer, another mapping's address).
//!
//! Such a pointer is recognised by its address alone (see `classify` in exports.rs), and it
//! never reaches a strategy's state: the strategy's `free` refuses it without changing
//! anything, so no block is ever handed out twice because of it. What happens next is
//! `STRATALLOC_BAD_FREE` (read once, at start-up, with the other settings):
//! - `report` (the default): one line on stderr naming the call, the pointer and why, e.g.
//!   `stratalloc: free(0x7f3a2c000010): block not live (double free); ignored`; the call
//!   does nothing (`realloc` returns NULL with `ENOMEM`). The first `REPORTED_LINES` bad
//!   calls are reported; later ones are only counted. The program goes on.
//! - `abort`: the same line (ending `; aborting`), then `abort()`, as glibc does.
//! - `ignore`: nothing on stderr; the call does nothing.
//!
//! Every bad call is counted (statistics line: `foreign_frees`, `interior_frees`,
//! `double_frees`, `bad_reallocs`). Messages are formatted on the stack ([`Line`]) and written with
//! `write(2)`: no allocation.
//!
//! A double free is caught as long as the block has not been handed out again: once a later
//! `malloc` returned the same address, a second `free` of it frees the new block, as under
//! every allocator.

use core::fmt::Write;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use stratalloc::BadFree;

use crate::report::Line;

/// What a bad call does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// One line on stderr (for the first `REPORTED_LINES` bad calls), then go on.
    Report = 0,
    /// One line on stderr, then `abort()`.
    Abort = 1,
    /// Go on silently.
    Ignore = 2,
}

/// The mode in force (a `Mode` as `u8`).
static MODE: AtomicU8 = AtomicU8::new(Mode::Report as u8);

/// How many bad calls get a line on stderr in `report` mode.
const REPORTED_LINES: usize = 10;

/// Bad calls with a pointer that is not in memory of ours (the stack, another mapping).
pub static FOREIGN: AtomicUsize = AtomicUsize::new(0);
/// Bad calls with a pointer inside one of our blocks, not at its start.
pub static INTERIOR: AtomicUsize = AtomicUsize::new(0);
/// Bad calls with the start of a block that is not live (double frees).
pub static DOUBLE: AtomicUsize = AtomicUsize::new(0);
/// `realloc` calls with a pointer that is not the start of a live block.
pub static REALLOC: AtomicUsize = AtomicUsize::new(0);
/// Bad calls so far, all kinds (decides which ones are reported).
static ALL: AtomicUsize = AtomicUsize::new(0);

/// Sets the mode from the value of `STRATALLOC_BAD_FREE` (case-insensitive, spaces
/// trimmed); an unknown value gives one line on stderr and the default.
pub fn configure(value: &[u8]) {
    let value = value.trim_ascii();
    let mode = if value.eq_ignore_ascii_case(b"report") {
        Mode::Report
    } else if value.eq_ignore_ascii_case(b"abort") {
        Mode::Abort
    } else if value.eq_ignore_ascii_case(b"ignore") {
        Mode::Ignore
    } else {
        let mut line = Line::<160>::new();
        let shown = core::str::from_utf8(value).unwrap_or("(not UTF-8)");
        let _ = write!(
            line,
            "stratalloc: unknown STRATALLOC_BAD_FREE=\"{shown}\" (valid: report, abort, ignore); using report"
        );
        line.emit();
        Mode::Report
    };
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The mode in force.
fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Abort,
        2 => Mode::Ignore,
        _ => Mode::Report,
    }
}

/// Handles a bad `free(p)`: counts it by its reason, reports it as the mode says, and
/// returns unless the mode is `abort`.
#[cold]
#[inline(never)]
pub fn bad_free(p: *const u8, why: BadFree) {
    match why {
        BadFree::Foreign => &FOREIGN,
        BadFree::Interior => &INTERIOR,
        BadFree::NotLive => &DOUBLE,
    }
    .fetch_add(1, Ordering::Relaxed);
    let what = match why {
        BadFree::Foreign => "not a block of this allocator",
        BadFree::Interior => "inside a block, not its start",
        BadFree::NotLive => "block not live (double free)",
    };
    report("free", p, what);
}

/// Handles a bad `realloc(p, n)` (the block lookup says only that `p` is not the start of
/// a live block): counts it, reports it as the mode says, and returns unless the mode is
/// `abort`.
#[cold]
#[inline(never)]
pub fn bad_realloc(p: *const u8) {
    REALLOC.fetch_add(1, Ordering::Relaxed);
    report("realloc", p, "not a live block of this allocator");
}

/// The line for a bad call of `call` on `p`, and the abort, as the mode says.
fn report(call: &str, p: *const u8, what: &str) {
    let nth = ALL.fetch_add(1, Ordering::Relaxed);
    let mode = mode();
    if mode == Mode::Ignore || (mode == Mode::Report && nth >= REPORTED_LINES) {
        return;
    }
    let mut line = Line::<200>::new();
    let _ = write!(line, "stratalloc: {call}({p:p}): {what}");
    let _ = match mode {
        Mode::Abort => write!(line, "; aborting"),
        _ if nth + 1 == REPORTED_LINES => {
            write!(line, "; ignored (further bad calls are counted, not reported)")
        }
        _ => write!(line, "; ignored"),
    };
    line.emit();
    if mode == Mode::Abort {
        // SAFETY: `abort` has no preconditions; it raises SIGABRT and does not allocate.
        unsafe { libc::abort() }
    }
}
