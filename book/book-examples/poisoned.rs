//! `Poisoned<P>`: a page source wrapper that fills memory with a poison byte whenever it
//! becomes Ready, the worked example of the book's chapter "Writing your own page source"
//! (`book/src/own-source.md`, which includes this file by anchor).
//!
//! A strategy that hands out memory it believes to be zero without having cleared it (for
//! `alloc_zeroed`), or that reads a block before writing it, shows up at once under this
//! wrapper: the bytes read `POISON_BYTE` instead of the zero `Mmap` happens to give. It says
//! so honestly: `FRESH_ZEROED` is `false`, whatever the inner source promises.
//!
//! Every call is forwarded to the inner source; only `used` adds the fill, after the inner
//! `used` succeeded, so the range is Ready and may be written.

use core::ptr::NonNull;

use stratalloc::{ConstInit, PageSource, SourceError};

/// The byte written over memory that becomes Ready.
pub const POISON_BYTE: u8 = 0xDE;

// ANCHOR: poisoned
/// Wraps a source and poisons memory as it becomes Ready.
pub struct Poisoned<P>(pub P);

impl<P: ConstInit> ConstInit for Poisoned<P> {
    const INIT: Self = Poisoned(P::INIT);
}

// SAFETY: every call is the inner source's own call with the same arguments, so its
// guarantees (1), (2) and (4) carry over: the fill writes only inside a range that the inner
// `used` just made Ready, before the caller is told it is Ready, and neither panics nor
// allocates. (3) holds trivially because FRESH_ZEROED is false.
unsafe impl<P: PageSource> PageSource for Poisoned<P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = false;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        self.0.reserve(bytes, align)
    }

    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.map(base, bytes) }
    }

    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.used(base, bytes) }?;
        // SAFETY: the inner `used` succeeded, so `base..base + bytes` is Ready (writable), and
        // the caller guarantees nothing else uses it yet.
        unsafe { base.as_ptr().write_bytes(POISON_BYTE, bytes) };
        Ok(())
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
// ANCHOR_END: poisoned
