//! The cache's memory: the root (per heap) and the records (per thread), taken from the page
//! source, never from the inner strategy or the global allocator. See `layers/mod.rs`.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::source::PageSource;
use crate::strategy::{BlockInfo, CheckError, Strategy};
use crate::sync::SpinLock;

/// Bin width, and the alignment every cached block has and every cached request may ask.
pub const BIN_BYTES: usize = 16;
/// Bins: bin `b` (1..=BIN_COUNT) holds blocks of usable size `b * 16 ..= b * 16 + 15`. A
/// request of `s` bytes takes the head of bin `s / 16` if that block's usable size (in its
/// mark) is at least `s` (the same-size reuse: a free list's block for 100 bytes has 104
/// usable, in bin 6), else any block of bin `ceil(s / 16)`. Bin 0 is never used.
pub const BIN_COUNT: usize = 64;
/// The largest request the cache serves (glibc's tcache stops at 1032 bytes).
pub const MAX_CACHED_BYTES: usize = BIN_COUNT * BIN_BYTES;
/// Blocks per bin (glibc's `tcache_count` default).
pub const BIN_CAP: u32 = 7;
/// Refills in a row, with no freed block cached in between, after which a thread's refills
/// take a batch (see `Record::refills`).
pub const STREAK_FOR_BATCH: u32 = 8;
/// Frees past full bins, with no refill in between, after which a thread's cache is flushed
/// and bypassed until its next refill (see `Record::bypass`): a thread that frees a large
/// working set leaves none of it cached (issue 19). Far above a bin's worth, so that
/// threads that free and allocate in turn never reach it.
pub const FLUSH_AFTER_OVERFLOWS: u32 = 4096;
/// Bytes of a chunk of records (from the page source).
const CHUNK_BYTES: usize = 16 << 10;

/// The bin a block of usable size `usable` goes to, if it is cacheable: a start aligned to
/// [`BIN_BYTES`] (so any cached request's alignment is met) and a usable size in a bin.
#[inline(always)]
pub fn bin_for_block(start: usize, usable: usize) -> Option<usize> {
    let b = usable / BIN_BYTES;
    (start.is_multiple_of(BIN_BYTES) && (1..=BIN_COUNT).contains(&b)).then_some(b)
}

/// Alignment of the starts [`Bin::lines`] counts: a cache line, what over-aligned C++ types
/// (`alignas(64)`) ask for.
pub const LINE_BYTES: usize = 64;

/// One bin: a stack of free blocks linked through their first word.
///
/// A cached block holds `[next, key ^ usable]` in its first two words: `next` links the
/// stack, the second word marks the block as cached (the heap's random `key`; a live block
/// holds it only if its owner wrote that value) and records its usable size. The mark is
/// cleared when the block is handed out again.
#[derive(Copy, Clone)]
struct Bin {
    head: *mut u8,
    /// Invariant: `count == length of the stack at head <= BIN_CAP`, except in a bypassed
    /// record (`Record::bypass`): there every bin is empty with `count == BIN_CAP`, so that
    /// `push` refuses every block with no test of its own.
    count: u32,
    /// Invariant: `true` if a block on the stack starts on a multiple of [`LINE_BYTES`] (set
    /// by `push`, cleared only by a scan that finds none, so that `pop` pays nothing for
    /// it). An over-aligned request (`align >= LINE_BYTES`) scans the bin only when it is
    /// set: the scan reads every block's words.
    lines: bool,
}

/// Whether the block at `p` starts on a line ([`Bin::lines`]).
#[inline(always)]
fn on_line(p: NonNull<u8>) -> bool {
    p.addr().get().is_multiple_of(LINE_BYTES)
}

/// A thread's cache for one heap.
///
/// Invariants: `cached_objects == Σ bin counts`, `cached_bytes == Σ usable sizes of the
/// cached blocks`; every cached block is a live block of the inner strategy (to it, the
/// cache is a user), start aligned to 16, whose usable size lies in its bin, marked as above.
/// `bins` is touched only by the record's owner: the thread whose slot names it (`ACTIVE`),
/// or the holder of the root lock (`IDLE`, on the idle list).
pub struct Record {
    bins: UnsafeCell<[Bin; BIN_COUNT + 1]>,
    /// `fits[hi]`: the bin where the inner strategy's blocks for requests of bin `hi`
    /// (`ceil(size / 16)`) land, learnt at refills (0: not known). The inner strategy may round
    /// small requests up (a free list's smallest block): without this a request of 24 bytes
    /// would look in bins 1 and 2 while its blocks sit in bin 3. A hint: any bin at or above
    /// `hi` serves the request. Owner only, as `bins`.
    fits: UnsafeCell<[u8; BIN_COUNT + 1]>,
    /// Refills since the owner last cached a block it freed (saturating): a thread that
    /// only allocates, with its blocks freed by other threads (a producer), refills every
    /// bin it uses on every allocation; past [`STREAK_FOR_BATCH`] its refills take a batch
    /// (`ThreadCache::refill`). Owner only, as `bins`.
    refills: UnsafeCell<u32>,
    /// Frees the owner handed to the inner strategy because their bin was full since its
    /// last refill (saturating). At [`FLUSH_AFTER_OVERFLOWS`] the thread is freeing a large
    /// working set: the record is flushed and bypassed. Owner only, as `bins`.
    overflows: UnsafeCell<u32>,
    /// Whether the record is bypassed: flushed, every bin marked full and empty (see
    /// `Bin::count`), so the rest of a free burst goes straight to the inner strategy and no
    /// block freed in it stays cached, keeping an inner chunk from becoming wholly free and
    /// going back to the source. The next refill ends it. Owner only, as `bins`.
    bypass: UnsafeCell<bool>,
    /// Written by the owner alone (load + store), read by `stats` from any thread.
    cached_bytes: AtomicUsize,
    /// As `cached_bytes`.
    cached_objects: AtomicUsize,
    state: AtomicU8,
    /// Next record of the idle list (under the root lock).
    idle_next: *mut Record,
}

const ACTIVE: u8 = 1;
const IDLE: u8 = 2;

/// A run of records from the page source, linked from the root.
struct Chunk {
    next: *mut Chunk,
    /// Records carved so far (they follow the header).
    carved: usize,
}

const RECORDS_PER_CHUNK: usize = (CHUNK_BYTES - size_of::<Chunk>()) / size_of::<Record>();
const _: () = assert!(RECORDS_PER_CHUNK >= 4 && align_of::<Record>() <= 16 && size_of::<Chunk>() <= 16);

/// The lists of a root.
struct Lists {
    /// Every chunk, newest first.
    chunks: *mut Chunk,
    /// Records no thread owns (their thread exited or evicted them), with their blocks.
    idle: *mut Record,
}

/// A heap's cache root: identity, key, and its records. One page from the source; its
/// address never changes while the heap lives, so exiting threads can reach it through the
/// registry even if the heap value was moved.
///
/// Invariant: `meta_bytes == root page + Σ chunk bytes`, all Ready ranges of the heap's
/// source.
pub struct Root {
    /// The heap generation this root belongs to (process-wide unique, never 0).
    pub generation: u64,
    /// The mark of cached blocks.
    pub key: usize,
    /// The next root of the registry (under the registry lock).
    pub next_root: *mut Root,
    lists: SpinLock<Lists>,
    meta_bytes: AtomicUsize,
}

// SAFETY: the raw pointers point into page-source memory tied to no thread; `lists` is behind
// a lock, `next_root` is touched under the registry lock, the rest is immutable or atomic.
unsafe impl Send for Root {}
// SAFETY: as above: nothing reachable through `&Root` is unsynchronised.
unsafe impl Sync for Root {}
// SAFETY: records move between threads only through the root lock or a thread's slot; the
// bins are touched by their one owner (invariant on `Record`).
unsafe impl Send for Lists {}

/// Bytes of the root's page.
fn root_bytes<P: PageSource>() -> usize {
    size_of::<Root>().div_ceil(P::PAGE_BYTES) * P::PAGE_BYTES
}

/// Bytes of a chunk.
fn chunk_bytes<P: PageSource>() -> usize {
    CHUNK_BYTES.div_ceil(P::PAGE_BYTES) * P::PAGE_BYTES
}

impl Root {
    /// A new root from `src`, or `None` when the source refuses.
    pub fn make<P: PageSource>(src: &P, generation: u64, key: usize) -> Option<NonNull<Root>> {
        let bytes = root_bytes::<P>();
        let r = src.alloc_ready(bytes, 16).ok()?.cast::<Root>();
        let root = Root {
            generation,
            key,
            next_root: ptr::null_mut(),
            lists: SpinLock::new(Lists { chunks: ptr::null_mut(), idle: ptr::null_mut() }),
            meta_bytes: AtomicUsize::new(bytes),
        };
        // SAFETY: a fresh Ready range of at least `size_of::<Root>()` bytes, page aligned.
        unsafe { r.as_ptr().write(root) };
        Some(r)
    }

    /// Bytes of the source the root and its chunks hold.
    pub fn meta_bytes(&self) -> usize {
        self.meta_bytes.load(Ordering::Relaxed)
    }

    /// A record for a thread: an idle one (with whatever it caches), else a new one.
    pub fn take_record<P: PageSource>(&self, src: &P) -> *mut Record {
        let mut l = self.lists.lock();
        if let Some(r) = NonNull::new(l.idle) {
            // SAFETY: idle records are initialised and ours under the lock.
            unsafe {
                l.idle = (*r.as_ptr()).idle_next;
                (*r.as_ptr()).state.store(ACTIVE, Ordering::Relaxed);
            }
            return r.as_ptr();
        }
        // SAFETY: the lock is held; chunks are ours.
        unsafe { self.carve(&mut l, src) }
    }

    /// A fresh record from the newest chunk, or from a new chunk.
    ///
    /// # Safety
    /// `l` is the list state guarded by `self.lists`, whose lock the caller holds.
    unsafe fn carve<P: PageSource>(&self, l: &mut Lists, src: &P) -> *mut Record {
        // SAFETY: chunks on the list are Ready and initialised (invariant); lock held.
        unsafe {
            if l.chunks.is_null() || (*l.chunks).carved == RECORDS_PER_CHUNK {
                let Ok(c) = src.alloc_ready(chunk_bytes::<P>(), 16) else { return ptr::null_mut() };
                let c = c.cast::<Chunk>().as_ptr();
                c.write(Chunk { next: l.chunks, carved: 0 });
                l.chunks = c;
                self.meta_bytes.fetch_add(chunk_bytes::<P>(), Ordering::Relaxed);
            }
            let c = l.chunks;
            let r = records(c).add((*c).carved);
            (*c).carved += 1;
            r.write(Record {
                bins: UnsafeCell::new([Bin { head: ptr::null_mut(), count: 0, lines: false }; BIN_COUNT + 1]),
                fits: UnsafeCell::new([0; BIN_COUNT + 1]),
                refills: UnsafeCell::new(0),
                overflows: UnsafeCell::new(0),
                bypass: UnsafeCell::new(false),
                cached_bytes: AtomicUsize::new(0),
                cached_objects: AtomicUsize::new(0),
                state: AtomicU8::new(ACTIVE),
                idle_next: ptr::null_mut(),
            });
            r
        }
    }

    /// Puts a record no thread will use again on the idle list, blocks and all.
    ///
    /// # Safety
    /// `r` is a record of this root that the caller owned and gives up.
    pub unsafe fn retire(&self, r: *mut Record) {
        let mut l = self.lists.lock();
        // SAFETY: `r` is ours (caller) and initialised; the lock is held.
        unsafe {
            (*r).state.store(IDLE, Ordering::Relaxed);
            (*r).idle_next = l.idle;
        }
        l.idle = r;
    }

    /// Flushes every idle record into `inner`; returns the blocks flushed.
    pub fn flush_idle<S: Strategy, P: PageSource>(&self, inner: &S, src: &P) -> usize {
        let l = self.lists.lock();
        let mut r = l.idle;
        let mut n = 0;
        while !r.is_null() {
            // SAFETY: idle records are ours under the lock, their blocks live in `inner`.
            unsafe {
                n += (*r).flush(inner, src, self.key);
                r = (*r).idle_next;
            }
        }
        n
    }

    /// Calls `f` on every record carved (owned, idle).
    fn each_record(&self, l: &Lists, mut f: impl FnMut(*mut Record)) {
        let mut c = l.chunks;
        while !c.is_null() {
            // SAFETY: chunks on the list are Ready and initialised; `carved` records are.
            unsafe {
                for i in 0..(*c).carved {
                    f(records(c).add(i));
                }
                c = (*c).next;
            }
        }
    }

    /// `(Σ cached_bytes, Σ cached_objects)` over every record.
    pub fn cached(&self) -> (usize, usize) {
        let l = self.lists.lock();
        let (mut bytes, mut objects) = (0, 0);
        self.each_record(&l, |r| {
            // SAFETY: a carved record; its counters are atomics.
            let r = unsafe { &*r };
            bytes += r.cached_bytes.load(Ordering::Relaxed);
            objects += r.cached_objects.load(Ordering::Relaxed);
        });
        (bytes, objects)
    }

    /// After `fork`: every active record but `mine` belonged to a thread that does not
    /// exist in the child; they go idle.
    pub fn adopt_orphans(&self, mine: *mut Record) {
        let mut l = self.lists.lock();
        let mut orphans = ptr::null_mut::<Record>();
        self.each_record(&l, |r| {
            // SAFETY: a carved record; no other thread exists to own it.
            unsafe {
                if r != mine && (*r).state.load(Ordering::Relaxed) == ACTIVE {
                    (*r).state.store(IDLE, Ordering::Relaxed);
                    (*r).idle_next = orphans;
                    orphans = r;
                }
            }
        });
        while let Some(r) = NonNull::new(orphans) {
            // SAFETY: records just unlinked above, ours.
            unsafe {
                orphans = (*r.as_ptr()).idle_next;
                (*r.as_ptr()).idle_next = l.idle;
            }
            l.idle = r.as_ptr();
        }
    }

    /// The fork protocol: takes the root lock and keeps it.
    pub fn fork_lock(&self) {
        self.lists.lock_held();
    }

    /// The fork protocol: releases the lock `fork_lock` took.
    ///
    /// # Safety
    /// This thread took it with `fork_lock` (or is the only thread of a child forked since).
    pub unsafe fn fork_unlock(&self) {
        // SAFETY: the caller's guarantee.
        unsafe { self.lists.force_unlock() }
    }

    /// Gives the chunks and the root back to `src`.
    ///
    /// # Safety
    /// No thread uses the root any more (the heap is being released) and `src` is its source.
    pub unsafe fn release<P: PageSource>(root: NonNull<Root>, src: &P) {
        // SAFETY: the root and its chunks are ours alone now (caller).
        unsafe {
            let mut c = (*root.as_ptr()).lists.lock().chunks;
            while let Some(ch) = NonNull::new(c) {
                c = (*ch.as_ptr()).next;
                let _ = src.free(ch.cast(), chunk_bytes::<P>());
            }
            let _ = src.free(root.cast(), root_bytes::<P>());
        }
    }

    /// Checks every record's invariants against `inner`, and the root's byte count.
    ///
    /// # Safety
    /// No other thread uses the heap during the call.
    pub unsafe fn check<S: Strategy, P: PageSource>(&self, inner: &S) -> Result<(), CheckError> {
        let l = self.lists.lock();
        let mut err = Ok(());
        let mut chunks = 0;
        let mut c = l.chunks;
        while !c.is_null() {
            chunks += 1;
            // SAFETY: chunks on the list are initialised.
            c = unsafe { (*c).next };
        }
        self.each_record(&l, |r| {
            if err.is_ok() {
                // SAFETY: no other thread uses the heap (caller), so the bins are quiescent.
                err = unsafe { (*r).check(inner, self.key) };
            }
        });
        err?;
        let want = root_bytes::<P>() + chunks * chunk_bytes::<P>();
        if want != self.meta_bytes() {
            return Err(CheckError {
                what: "meta_bytes == root + Σ chunks",
                addr: ptr::from_ref(self).addr(),
                detail: want,
            });
        }
        Ok(())
    }
}

/// The first record of chunk `c`.
///
/// # Safety
/// `c` is a chunk of `CHUNK_BYTES` Ready bytes.
unsafe fn records(c: *mut Chunk) -> *mut Record {
    // SAFETY: the records follow the 16-byte header inside the chunk (caller).
    unsafe { c.cast::<u8>().add(16).cast::<Record>() }
}

/// The mark word of a block (its second word), read atomically: a lookup may race with the
/// block's owner, and a racy plain read would be undefined behaviour.
///
/// # Safety
/// `p` is a live block of the inner strategy, 16-aligned, of at least 16 usable bytes.
#[inline(always)]
unsafe fn mark_of(p: NonNull<u8>) -> &'static AtomicUsize {
    // SAFETY: the second word of the block is inside it, aligned to 8 (caller); the block
    // stays allocated in the inner strategy as long as it is cached or live.
    unsafe { AtomicUsize::from_ptr(p.add(8).cast::<usize>().as_ptr()) }
}

/// Whether the live inner block `p` (cacheable, `info`) carries the cache's mark.
///
/// # Safety
/// As for [`mark_of`].
#[inline]
pub unsafe fn is_marked(p: NonNull<u8>, info: &BlockInfo, key: usize) -> bool {
    // SAFETY: forwarded (caller).
    unsafe { mark_of(p) }.load(Ordering::Relaxed) ^ key == info.usable
}

impl Record {
    /// Pops a block for a request of bin `b`, with its usable size, and clears its mark.
    ///
    /// # Safety
    /// The caller owns the record; `1 <= b <= BIN_COUNT`; `key` is the root's.
    #[inline]
    pub unsafe fn pop(&self, b: usize, key: usize) -> Option<(NonNull<u8>, usize)> {
        // SAFETY: the owner alone touches the bins (caller).
        let bin = unsafe { &mut (*self.bins.get())[b] };
        let p = NonNull::new(bin.head)?;
        // SAFETY: a cached block: live in the inner strategy, its words hold the link and the
        // mark (invariant on `Bin`).
        let usable = unsafe {
            bin.head = p.cast::<*mut u8>().read();
            mark_of(p).swap(0, Ordering::Relaxed) ^ key
        };
        bin.count -= 1;
        self.account(-(usable as isize), -1);
        Some((p, usable))
    }

    /// Pops a block of usable size at least `size` (1..=MAX_CACHED_BYTES), if there is one:
    /// the head of bin `size / 16` when its usable size suffices, else bin `ceil(size / 16)`.
    ///
    /// # Safety
    /// The caller owns the record; `key` is the root's.
    #[inline]
    pub unsafe fn pop_fit(&self, size: usize, key: usize) -> Option<(NonNull<u8>, usize)> {
        let lo = size / BIN_BYTES;
        if lo >= 1 {
            // SAFETY: the owner alone touches the bins (caller).
            let head = unsafe { (*self.bins.get())[lo].head };
            if let Some(h) = NonNull::new(head)
                // SAFETY: a cached block holds its mark (invariant on `Bin`).
                && unsafe { mark_of(h) }.load(Ordering::Relaxed) ^ key >= size
            {
                // SAFETY: the caller's guarantees; `lo` is 1..=BIN_COUNT.
                return unsafe { self.pop(lo, key) };
            }
        }
        let hi = size.div_ceil(BIN_BYTES);
        if hi != lo
            // SAFETY: the caller's guarantees; `hi` is 1..=BIN_COUNT for a size in range.
            && let Some(r) = unsafe { self.pop(hi, key) }
        {
            return Some(r);
        }
        // SAFETY: the owner alone touches the table (caller); `hi` is in range.
        let f = usize::from(unsafe { (*self.fits.get())[hi] });
        // SAFETY: as above; `f` is hi+1..=BIN_COUNT, whose blocks hold more than `size`.
        if f > hi { unsafe { self.pop(f, key) } } else { None }
    }

    /// Takes out of bin `b` the first cached block whose start is `align`-aligned, whose
    /// usable size is at least `size` and which `accept` accepts (a scan of at most
    /// [`BIN_CAP`] blocks), clearing its mark.
    ///
    /// # Safety
    /// The caller owns the record; `1 <= b <= BIN_COUNT`; `key` is the root's.
    unsafe fn take_aligned(
        &self,
        b: usize,
        size: usize,
        align: usize,
        key: usize,
        accept: &dyn Fn(NonNull<u8>) -> bool,
    ) -> Option<(NonNull<u8>, usize)> {
        // SAFETY: the owner alone touches the bins (caller).
        let bin = unsafe { &mut (*self.bins.get())[b] };
        if align >= LINE_BYTES && !bin.lines {
            return None; // no start in the bin is aligned enough (invariant on `Bin`)
        }
        let mut lines = false;
        let mut link: *mut *mut u8 = &raw mut bin.head;
        // SAFETY: `link` is the head or a cached block's first word; every block on the
        // stack is cached: live in the inner strategy, holding its link and mark.
        unsafe {
            while let Some(p) = NonNull::new(*link) {
                let next = p.cast::<*mut u8>().read();
                let usable = mark_of(p).load(Ordering::Relaxed) ^ key;
                if p.addr().get().is_multiple_of(align) && usable >= size && accept(p) {
                    *link = next;
                    mark_of(p).store(0, Ordering::Relaxed);
                    bin.count -= 1;
                    self.account(-(usable as isize), -1);
                    return Some((p, usable));
                }
                lines |= on_line(p);
                link = p.cast::<*mut u8>().as_ptr();
            }
        }
        // The whole stack was read: the hint is exact again.
        bin.lines = lines;
        None
    }

    /// [`pop_fit`](Self::pop_fit) for an over-aligned request (glibc's tcache does the same
    /// for `memalign`): a block of the bins that `pop_fit` would look in whose start happens
    /// to be `align`-aligned and which `accept` accepts (the caller asks the inner strategy
    /// whether the block honours the alignment). A block freed by an over-aligned user is
    /// aligned for the next.
    ///
    /// # Safety
    /// The caller owns the record; `size` is 1..=MAX_CACHED_BYTES; `key` is the root's.
    #[inline]
    pub unsafe fn pop_aligned(
        &self,
        size: usize,
        align: usize,
        key: usize,
        accept: &dyn Fn(NonNull<u8>) -> bool,
    ) -> Option<(NonNull<u8>, usize)> {
        let (lo, hi) = (size / BIN_BYTES, size.div_ceil(BIN_BYTES));
        // SAFETY: the owner alone touches the table (caller); `hi` is in range.
        let f = usize::from(unsafe { (*self.fits.get())[hi] });
        // Each bin once (`lo == hi` for a multiple of 16, `f` may be either).
        for b in [lo, if hi != lo { hi } else { 0 }, if f != lo && f != hi { f } else { 0 }] {
            if (1..=BIN_COUNT).contains(&b)
                // SAFETY: the caller's guarantees; `b` is a bin.
                && let Some(r) = unsafe { self.take_aligned(b, size, align, key, accept) }
            {
                return Some(r);
            }
        }
        None
    }

    /// Counts a refill; returns whether the refills since the last cached free reach
    /// [`STREAK_FOR_BATCH`] (then the refill takes a batch).
    ///
    /// # Safety
    /// The caller owns the record.
    #[inline(always)]
    pub unsafe fn note_refill(&self) -> bool {
        // SAFETY: the owner alone touches the counter (caller).
        let r = unsafe { &mut *self.refills.get() };
        *r = r.saturating_add(1);
        // SAFETY: as above.
        unsafe {
            *self.overflows.get() = 0;
            if *self.bypass.get() {
                self.end_bypass();
            }
        }
        *r > STREAK_FOR_BATCH
    }

    /// Counts a free the owner handed to the inner strategy because its bin was full;
    /// returns `true` once, when [`FLUSH_AFTER_OVERFLOWS`] are reached since the last
    /// refill: the caller then flushes the record and calls [`bypass`](Self::bypass).
    ///
    /// # Safety
    /// The caller owns the record.
    #[inline]
    pub unsafe fn note_overflow(&self) -> bool {
        // SAFETY: the owner alone touches the counter (caller).
        let o = unsafe { &mut *self.overflows.get() };
        *o = o.saturating_add(1);
        *o == FLUSH_AFTER_OVERFLOWS
    }

    /// Bypasses the record (see `Record::bypass`).
    ///
    /// # Safety
    /// The caller owns the record and has just flushed it (every bin empty).
    #[cold]
    pub unsafe fn bypass(&self) {
        // SAFETY: the owner alone touches the bins (caller).
        let bins = unsafe { &mut *self.bins.get() };
        for bin in &mut bins[1..] {
            debug_assert!(bin.head.is_null() && bin.count == 0);
            bin.count = BIN_CAP;
        }
        // SAFETY: as above.
        unsafe { *self.bypass.get() = true };
    }

    /// Ends a bypass: every bin empty again.
    ///
    /// # Safety
    /// The caller owns the bypassed record.
    #[cold]
    #[inline(never)]
    unsafe fn end_bypass(&self) {
        // SAFETY: the owner alone touches the bins (caller).
        let bins = unsafe { &mut *self.bins.get() };
        for bin in &mut bins[1..] {
            bin.count = 0;
        }
        // SAFETY: as above.
        unsafe { *self.bypass.get() = false };
    }

    /// [`push`](Self::push) for a block the owner freed: also ends a run of refills.
    ///
    /// # Safety
    /// As for `push`.
    #[inline(always)]
    pub unsafe fn push_freed(&self, p: NonNull<u8>, b: usize, usable: usize, key: usize) -> bool {
        // SAFETY: forwarded; the owner alone touches the counter (caller).
        unsafe {
            *self.refills.get() = 0;
            self.push(p, b, usable, key)
        }
    }

    /// Whether [`learn_fit`](Self::learn_fit) has been told where requests of `size` land.
    ///
    /// # Safety
    /// The caller owns the record; `size` is 1..=MAX_CACHED_BYTES.
    #[inline(always)]
    pub unsafe fn knows_fit(&self, size: usize) -> bool {
        // SAFETY: the owner alone touches the table (caller); index in range.
        unsafe { (*self.fits.get())[size.div_ceil(BIN_BYTES)] != 0 }
    }

    /// Records that the inner strategy's blocks for requests of `size` bytes land in bin `b`.
    ///
    /// # Safety
    /// The caller owns the record; `size` is 1..=MAX_CACHED_BYTES; `b` is 1..=BIN_COUNT.
    #[inline]
    pub unsafe fn learn_fit(&self, size: usize, b: usize) {
        // SAFETY: the owner alone touches the table (caller); indices in range.
        unsafe { (*self.fits.get())[size.div_ceil(BIN_BYTES)] = b as u8 };
    }

    /// Adds `bytes` / `objects` to the counters (the owner's load + store: no other writer).
    #[inline(always)]
    fn account(&self, bytes: isize, objects: isize) {
        let b = self.cached_bytes.load(Ordering::Relaxed);
        self.cached_bytes.store(b.wrapping_add_signed(bytes), Ordering::Relaxed);
        let o = self.cached_objects.load(Ordering::Relaxed);
        self.cached_objects.store(o.wrapping_add_signed(objects), Ordering::Relaxed);
    }

    /// Pushes block `p` of usable size `usable` onto bin `b`; `false` (nothing changed) when
    /// the bin is full.
    ///
    /// # Safety
    /// The caller owns the record; `p` is a live inner block it gives up, 16-aligned, of
    /// usable size `usable` in bin `b`.
    #[inline]
    pub unsafe fn push(&self, p: NonNull<u8>, b: usize, usable: usize, key: usize) -> bool {
        // SAFETY: the owner alone touches the bins (caller).
        let bin = unsafe { &mut (*self.bins.get())[b] };
        if bin.count >= BIN_CAP {
            return false;
        }
        // SAFETY: the block's first two words are inside it and ours now (caller).
        unsafe {
            p.cast::<*mut u8>().write(bin.head);
            mark_of(p).store(key ^ usable, Ordering::Relaxed);
        }
        bin.head = p.as_ptr();
        bin.count += 1;
        bin.lines |= on_line(p);
        self.account(usable as isize, 1);
        true
    }

    /// Gives every cached block back to `inner` (by address), a bin at a time in one
    /// [`Strategy::free_batch`] (one lock acquisition per arena in `Arenas`); returns how
    /// many.
    ///
    /// # Safety
    /// The caller owns the record; `src` is the inner strategy's source.
    pub unsafe fn flush<S: Strategy, P: PageSource>(&self, inner: &S, src: &P, key: usize) -> usize {
        let mut n = 0;
        let mut batch = [NonNull::<u8>::dangling(); BIN_CAP as usize];
        for b in 1..=BIN_COUNT {
            // A bin holds at most BIN_CAP blocks (invariant on `Bin`): one batch empties it.
            let mut k = 0;
            while k < batch.len()
                // SAFETY: the caller owns the record and passes the root's key.
                && let Some((p, _)) = unsafe { self.pop(b, key) }
            {
                batch[k] = p;
                k += 1;
            }
            if k > 0 {
                // SAFETY: every popped block is live in `inner` (unmarked by `pop`), distinct,
                // and the cache, its user, gives it up; `src` is the inner strategy's source.
                let freed = unsafe { inner.free_batch(src, &batch[..k]) };
                debug_assert_eq!(freed, k, "ThreadCache flush: inner refused a cached block");
                n += k;
            }
        }
        n
    }

    /// The record's invariants (see [`Record`]).
    ///
    /// # Safety
    /// No other thread touches the record.
    unsafe fn check<S: Strategy>(&self, inner: &S, key: usize) -> Result<(), CheckError> {
        let (mut bytes, mut objects) = (0usize, 0usize);
        // SAFETY: quiescent (caller).
        let bypass = unsafe { *self.bypass.get() };
        for b in 1..=BIN_COUNT {
            // SAFETY: quiescent (caller).
            let bin = unsafe { (*self.bins.get())[b] };
            if bypass {
                if !bin.head.is_null() || bin.count != BIN_CAP {
                    return Err(CheckError {
                        what: "bypassed record: bins empty, count BIN_CAP",
                        addr: 0,
                        detail: b,
                    });
                }
                continue;
            }
            let mut q = bin.head;
            let (mut n, mut lines) = (0, false);
            while let Some(p) = NonNull::new(q) {
                let fail = |what| Err(CheckError { what, addr: p.as_ptr().addr(), detail: b });
                if n >= bin.count {
                    return fail("cached bin: stack longer than its count");
                }
                let Some(info) = inner.block_of(p.as_ptr()) else {
                    return fail("cached block is not a live block of the inner strategy");
                };
                if bin_for_block(info.start, info.usable) != Some(b) {
                    return fail("cached block in the bin of its usable size, 16-aligned");
                }
                // SAFETY: a live, cacheable inner block (just checked).
                if !unsafe { is_marked(p, &info, key) } {
                    return fail("cached block carries the mark key ^ usable");
                }
                bytes += info.usable;
                objects += 1;
                n += 1;
                lines |= on_line(p);
                // SAFETY: a cached block holds its link.
                q = unsafe { p.cast::<*mut u8>().read() };
            }
            if n != bin.count {
                return Err(CheckError { what: "cached bin: count == stack length", addr: 0, detail: b });
            }
            if lines && !bin.lines {
                return Err(CheckError {
                    what: "cached bin: lines set if a block starts on a 64-byte line",
                    addr: 0,
                    detail: b,
                });
            }
        }
        if bytes != self.cached_bytes.load(Ordering::Relaxed)
            || objects != self.cached_objects.load(Ordering::Relaxed)
        {
            return Err(CheckError {
                what: "record: cached_bytes / cached_objects == Σ bins",
                addr: ptr::from_ref(self).addr(),
                detail: bytes,
            });
        }
        Ok(())
    }
}
