//! `Failing<P>`: a page source that fails on request, for tests of exhaustion paths.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{Op, PageSource, SourceError};
use crate::ConstInit;

/// Wraps a source and makes it fail on purpose: from the Nth call on, or once more than a
/// budget of bytes has been reserved. Only `reserve`, `map` and `used` (the calls that ask
/// for memory) fail; giving memory back always reaches the inner source.
pub struct Failing<P> {
    inner: P,
    /// Calls (of reserve/map/used) made so far.
    calls: AtomicUsize,
    /// The 0-based index of the first failing call; `usize::MAX` for never.
    fail_from_call: AtomicUsize,
    /// Bytes reserved and not freed.
    reserved: AtomicUsize,
    /// Most bytes that may be reserved at once; `usize::MAX` for no limit.
    budget: AtomicUsize,
}

impl<P: ConstInit> ConstInit for Failing<P> {
    const INIT: Self = Failing::new(P::INIT);
}

impl<P> Failing<P> {
    /// A wrapper that does not fail until told to.
    pub const fn new(inner: P) -> Self {
        Failing {
            inner,
            calls: AtomicUsize::new(0),
            fail_from_call: AtomicUsize::new(usize::MAX),
            reserved: AtomicUsize::new(0),
            budget: AtomicUsize::new(usize::MAX),
        }
    }

    /// Makes every memory-granting call fail from the `n`th one on (0 = the next one),
    /// counting from now.
    pub fn fail_after_calls(&self, n: usize) {
        let now = self.calls.load(Ordering::Relaxed);
        self.fail_from_call.store(now.saturating_add(n), Ordering::Relaxed);
    }

    /// Makes `reserve` fail when it would take reserved bytes past `bytes`.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Stops failing.
    pub fn heal(&self) {
        self.fail_from_call.store(usize::MAX, Ordering::Relaxed);
        self.budget.store(usize::MAX, Ordering::Relaxed);
    }

    /// The wrapped source.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    // ANCHOR: failing_gate
    fn gate(&self, op: Op) -> Result<(), SourceError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n >= self.fail_from_call.load(Ordering::Relaxed) {
            return Err(SourceError::Injected { op });
        }
        Ok(())
    }
    // ANCHOR_END: failing_gate
}

// SAFETY: every call that succeeds is the inner source's own call with the same arguments, so
// the inner source's guarantees carry over; failures change nothing.
unsafe impl<P: PageSource> PageSource for Failing<P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = P::FRESH_ZEROED;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        self.gate(Op::Reserve)?;
        let before = self.reserved.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.budget.load(Ordering::Relaxed) {
            self.reserved.fetch_sub(bytes, Ordering::Relaxed);
            return Err(SourceError::Exhausted { op: Op::Reserve, bytes });
        }
        self.inner.reserve(bytes, align).inspect_err(|_| {
            self.reserved.fetch_sub(bytes, Ordering::Relaxed);
        })
    }

    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.gate(Op::Map)?;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.map(base, bytes) }
    }

    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        self.gate(Op::Used)?;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.used(base, bytes) }
    }

    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.unused(base, bytes) }
    }

    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.hint_dense(base, bytes) }
    }

    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fault(base, bytes) }
    }

    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        let r = unsafe { self.inner.free(base, bytes) };
        if r.is_ok() {
            self.reserved.fetch_sub(bytes.min(self.reserved.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        r
    }
}
