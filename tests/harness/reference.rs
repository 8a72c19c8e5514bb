//! `PagePerBlock`: the simplest correct strategy, a reference for testing the harness itself.
//!
//! Every block is its own page-source reservation (`alloc_ready`, aligned as asked): the
//! block's pages, with a record in the last bytes after the block. The record holds the
//! block's start and size and links the reservation into a list, which `block_of` and `free` walk (O(n): a reference,
//! not a design). It keeps no free memory, so with `Tracked` the Ready bytes equal its
//! committed bytes at every moment. `Corrupting` wraps a strategy and breaks one promise on
//! purpose, to show the harness catches it; `Refusing` refuses everything.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use stratalloc::sync::SpinLock;
use stratalloc::{BadFree, BlockInfo, CheckError, ConstInit, PageSource, Strategy, StrategyStats};

/// The last bytes of every reservation.
struct Record {
    /// The next reservation of the list, or null.
    next: *mut Record,
    /// The block: the address handed out.
    start: usize,
    /// The bytes of the block (its usable size).
    size: usize,
    /// The whole reservation, record included.
    bytes: usize,
}

/// The list of reservations (newest first). Invariant: every record ends a live Ready
/// reservation of `bytes` bytes from the strategy's source, whose block starts at
/// `start`; `Σ bytes == committed_bytes`.
struct List(*mut Record);

// SAFETY: the records are memory this strategy alone owns; the list moves with it.
unsafe impl Send for List {}

/// One reservation per block.
pub struct PagePerBlock {
    list: SpinLock<List>,
    live_bytes: AtomicUsize,
    live_objects: AtomicUsize,
    peak_live_bytes: AtomicUsize,
    /// Invariant: `committed_bytes == Σ reservation bytes` over live blocks.
    committed_bytes: AtomicUsize,
}

impl ConstInit for PagePerBlock {
    const INIT: Self = PagePerBlock {
        list: SpinLock::new(List(ptr::null_mut())),
        live_bytes: AtomicUsize::new(0),
        live_objects: AtomicUsize::new(0),
        peak_live_bytes: AtomicUsize::new(0),
        committed_bytes: AtomicUsize::new(0),
    };
}

fn page_bytes<P: PageSource>(size: usize) -> usize {
    size.div_ceil(P::PAGE_BYTES) * P::PAGE_BYTES
}

impl PagePerBlock {
    fn account(&self, size: usize, pages: usize, add: bool) {
        if add {
            let live = self.live_bytes.fetch_add(size, Ordering::Relaxed) + size;
            self.peak_live_bytes.fetch_max(live, Ordering::Relaxed);
            self.live_objects.fetch_add(1, Ordering::Relaxed);
            self.committed_bytes.fetch_add(pages, Ordering::Relaxed);
        } else {
            self.live_bytes.fetch_sub(size, Ordering::Relaxed);
            self.live_objects.fetch_sub(1, Ordering::Relaxed);
            self.committed_bytes.fetch_sub(pages, Ordering::Relaxed);
        }
    }

    /// Unlinks the record of the block that starts at `addr`; returns it, or `None`.
    fn unlink(&self, addr: usize) -> Option<Record> {
        let mut list = self.list.lock();
        let mut link: *mut *mut Record = &raw mut list.0;
        // SAFETY: `link` is the list head or the `next` field of a live record (invariant),
        // and the lock is held, so no other thread changes the list.
        unsafe {
            while let Some(r) = NonNull::new(*link) {
                let r = r.as_ptr();
                if (*r).start == addr {
                    *link = (*r).next;
                    return Some(r.read());
                }
                link = &raw mut (*r).next;
            }
        }
        None
    }
}

// SAFETY: (1) each block is in a fresh Ready reservation of at least `size` bytes after its
// record page, aligned as asked, disjoint from every other; (2) nothing writes into a live
// block; (3) the default `alloc_zeroed` clears; (4) failures are `None`; (5) the list is
// behind a lock and the counters are atomic.
unsafe impl Strategy for PagePerBlock {
    fn name(&self) -> &'static str {
        "page-per-block"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let bytes = page_bytes::<P>(layout.size().checked_add(size_of::<Record>())?);
        let block = src.alloc_ready(bytes, layout.align().max(P::PAGE_BYTES)).ok()?;
        let record =
            Record { next: ptr::null_mut(), start: block.as_ptr().addr(), size: layout.size(), bytes };
        // SAFETY: `bytes - size_of::<Record>() >= size`, inside the reservation and after the
        // block; a multiple of 8, as `bytes` is a page multiple.
        let r = unsafe { block.add(bytes - size_of::<Record>()) }.cast::<Record>().as_ptr();
        let mut list = self.list.lock();
        // SAFETY: the record's bytes are fresh Ready memory of this strategy, aligned.
        unsafe { r.write(Record { next: list.0, ..record }) };
        list.0 = r;
        drop(list);
        self.account(layout.size(), bytes, true);
        Some(block)
    }

    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees (a live block of this strategy).
        let done = unsafe { self.free(src, ptr) };
        debug_assert!(done.is_ok(), "dealloc of a block that is not live: {done:?}");
    }

    /// What `block_of` says (the size the block was first requested with): a layer that
    /// hands a block out again for a smaller request (a thread cache) must see the block's
    /// own size, not the new layout's.
    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        self.block_of(ptr.as_ptr()).map_or(layout.size(), |i| i.usable)
    }

    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        let list = self.list.lock();
        let mut r = list.0;
        // SAFETY: every record of the list is live and readable (invariant); the lock is held.
        unsafe {
            while !r.is_null() {
                if (*r).start == ptr.addr() {
                    let align = 1usize << (*r).start.trailing_zeros();
                    return Some(BlockInfo { start: (*r).start, usable: (*r).size, align });
                }
                r = (*r).next;
            }
        }
        None
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        let r = self.unlink(ptr.as_ptr().addr()).ok_or(BadFree::Foreign)?;
        self.account(r.size, r.bytes, false);
        // SAFETY: the block is the start of its reservation of `bytes`, which is live and out
        // of the list; the caller gives the block up.
        let _ = unsafe { src.free(ptr, r.bytes) };
        Ok(r.size)
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        loop {
            let first = self.list.lock().0;
            if first.is_null() {
                break;
            }
            // SAFETY: a live record of the list; the caller gives up every block.
            let start = unsafe { (*first).start };
            let block = first.cast::<u8>().with_addr(start);
            // SAFETY: `block` is the live block of that record (its provenance is the
            // record's reservation); the caller gives every block up.
            let _ = unsafe { self.free(src, NonNull::new_unchecked(block)) };
        }
    }

    fn stats(&self) -> StrategyStats {
        let committed = self.committed_bytes.load(Ordering::Relaxed);
        StrategyStats {
            live_bytes: self.live_bytes.load(Ordering::Relaxed),
            live_objects: self.live_objects.load(Ordering::Relaxed),
            peak_live_bytes: self.peak_live_bytes.load(Ordering::Relaxed),
            committed_bytes: committed,
            reserved_bytes: committed,
        }
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        let s = self.stats();
        if s.live_bytes > s.committed_bytes {
            return Err(CheckError { what: "live_bytes <= committed_bytes", addr: 0, detail: s.live_bytes });
        }
        let list = self.list.lock();
        let (mut r, mut bytes, mut n) = (list.0, 0, 0);
        // SAFETY: every record of the list is live and readable (invariant); the lock is held.
        unsafe {
            while !r.is_null() {
                bytes += (*r).bytes;
                n += 1;
                r = (*r).next;
            }
        }
        if bytes != s.committed_bytes || n != s.live_objects {
            return Err(CheckError {
                what: "Σ reservation bytes == committed_bytes",
                addr: 0,
                detail: bytes,
            });
        }
        Ok(())
    }

    /// The list lock; counters are atomics.
    fn fork_prepare(&self) {
        self.list.lock_held();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: this thread took the lock in `fork_prepare` (caller), without a guard.
        unsafe { self.list.force_unlock() };
    }

    unsafe fn fork_child(&self) {
        // SAFETY: this thread took the lock in `fork_prepare` and is the child's only thread.
        unsafe { self.list.force_unlock() };
    }
}

/// Wraps a strategy and, on every `REALLOC_EVERY`th realloc, flips one byte of the moved block:
/// a broken allocator for the harness's self-test.
pub struct Corrupting<S> {
    inner: S,
    reallocs: AtomicUsize,
}

impl<S: ConstInit> ConstInit for Corrupting<S> {
    const INIT: Self = Corrupting { inner: S::INIT, reallocs: AtomicUsize::new(0) };
}

// SAFETY: deliberately broken (point 2: it changes the contents of live blocks); used only to
// show that the harness detects a broken strategy. Every other point is `inner`'s.
unsafe impl<S: Strategy> Strategy for Corrupting<S> {
    fn name(&self) -> &'static str {
        "corrupting"
    }

    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(src, layout) }
    }

    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(src, ptr, layout) }
    }

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.realloc(src, ptr, layout, new_size) }?;
        if self.reallocs.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            // SAFETY: the block is live and at least one byte long (new_size > 0).
            unsafe { *p.as_ptr() ^= 0x40 };
        }
        Some(p)
    }

    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.inner.block_of(ptr)
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.free(src, ptr) }
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.release_all(src) }
    }

    fn stats(&self) -> StrategyStats {
        self.inner.stats()
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.check(src) }
    }

    fn fork_prepare(&self) {
        self.inner.fork_prepare();
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_parent() }
    }

    unsafe fn fork_child(&self) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.fork_child() }
    }
}

/// A strategy that refuses every request: correct by `Strategy`'s letter (null is always a
/// legal answer there), useless in fact. The harness must report it, over every source.
pub struct Refusing;

impl ConstInit for Refusing {
    const INIT: Self = Refusing;
}

// SAFETY: it never hands out a block, so (1)-(3) hold vacuously; (4) it fails with `None`
// and takes nothing from the source; (5) it has no state.
unsafe impl Strategy for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }

    unsafe fn alloc<P: PageSource>(&self, _src: &P, _layout: Layout) -> Option<NonNull<u8>> {
        None
    }

    unsafe fn dealloc<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>, _layout: Layout) {}

    unsafe fn realloc<P: PageSource>(
        &self,
        _src: &P,
        _ptr: NonNull<u8>,
        _layout: Layout,
        _new_size: usize,
    ) -> Option<NonNull<u8>> {
        None
    }

    fn block_of(&self, _ptr: *const u8) -> Option<BlockInfo> {
        None
    }

    unsafe fn free<P: PageSource>(&self, _src: &P, _ptr: NonNull<u8>) -> Result<usize, BadFree> {
        Err(BadFree::Foreign)
    }

    unsafe fn release_all<P: PageSource>(&self, _src: &P) {}

    fn stats(&self) -> StrategyStats {
        StrategyStats::default()
    }

    unsafe fn check<P: PageSource>(&self, _src: &P) -> Result<(), CheckError> {
        Ok(())
    }

    /// No state, so no lock.
    fn fork_prepare(&self) {}

    unsafe fn fork_parent(&self) {}

    unsafe fn fork_child(&self) {}
}
