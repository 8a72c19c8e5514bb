//! The remote-free stack of one arena: blocks that threads which do not have the arena as
//! their home gave back, waiting for the next holder of the arena's lock to hand them to the
//! inner strategy. See `layers/mod.rs` ("Arenas", "Remote frees") for the overview.
//!
//! A pending block is still live in the inner strategy, and free to the user. Its first word
//! is the link to the next pending block (null at the bottom), its second word the *pending
//! mark* `pending_mark(addr, usable)`. The head word holds the top block's address in its
//! low 48 bits and the number of pending blocks in its high 16 bits.
//!
//! Pushes are a compare-and-swap on the head; the only way off the stack is
//! [`Remote::take`], which swaps the whole stack out at once. With no single-block pop there
//! is no ABA problem: a push whose expected head has been taken and pushed again links its
//! block below exactly the head it sees.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::owners::ADDR_BITS;

/// Bits of the head word below the count: the top block's address.
const ADDR_MASK: usize = (1 << ADDR_BITS) - 1;

/// The largest count the head can hold; a push that would pass it is refused.
pub const MAX_PENDING: usize = (1 << (usize::BITS - ADDR_BITS)) - 1;

/// The key of the pending mark: a constant, so that the mark survives a heap value moving.
const PENDING_KEY: usize = 0xA5C3_96E1_7B2D_4F08;

/// The pending mark of the block at `addr` of `usable` bytes: what its second word holds while
/// it is on a remote stack.
#[inline(always)]
pub fn pending_mark(addr: usize, usable: usize) -> usize {
    addr.rotate_left(23) ^ PENDING_KEY ^ usable
}

/// Whether a block at `addr` of `usable` bytes can go on a remote stack: room for the link
/// and the mark, words aligned, an address that fits the head word.
#[inline(always)]
pub fn fits(addr: usize, usable: usize) -> bool {
    usable >= 2 * size_of::<usize>() && addr.is_multiple_of(align_of::<usize>()) && addr <= ADDR_MASK
}

/// The mark word of a block (its second word), read and written atomically: a lookup by
/// address (`block_of`) may race with the block's owner, and a racy plain access would be
/// undefined behaviour.
///
/// # Safety
/// `p` is a live block of the inner strategy for which [`fits`] holds.
#[inline(always)]
pub unsafe fn mark_of<'a>(p: NonNull<u8>) -> &'a AtomicUsize {
    // SAFETY: the second word is inside the block and word-aligned (caller: `fits`); the
    // block stays allocated in the inner strategy while it is live or pending.
    unsafe { AtomicUsize::from_ptr(p.add(size_of::<usize>()).cast::<usize>().as_ptr()) }
}

/// Whether the live inner block `p` of `usable` bytes carries the pending mark.
///
/// # Safety
/// As for [`mark_of`].
#[inline(always)]
pub unsafe fn is_pending(p: NonNull<u8>, usable: usize) -> bool {
    // SAFETY: forwarded (caller).
    unsafe { mark_of(p) }.load(Ordering::Relaxed) == pending_mark(p.addr().get(), usable)
}

/// One arena's stack of blocks freed by other threads. Its own cache line, apart from the
/// arena's lock and its strategy, so that pushes do not take those lines from the holder.
#[repr(align(64))]
pub struct Remote {
    /// Top block (low 48 bits) and count (high 16 bits); null when empty.
    head: AtomicPtr<u8>,
    /// Sum of the usable sizes of the pending blocks (for the statistics). Updated after the
    /// push that adds a block and after the take that removes it: exact whenever no push or
    /// take is in flight.
    bytes: AtomicUsize,
}

/// The outcome of [`Remote::push`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// On the stack; the count is now this.
    Yes(usize),
    /// The block carries the pending mark already: a double free, nothing changed.
    Twice,
    /// The stack is full ([`MAX_PENDING`]): nothing changed, free it under the lock.
    Full,
}

impl Remote {
    /// An empty stack.
    pub const fn new() -> Self {
        Remote { head: AtomicPtr::new(ptr::null_mut()), bytes: AtomicUsize::new(0) }
    }

    /// Whether blocks are pending (one relaxed load: the holder's test before a [`take`]).
    ///
    /// [`take`]: Self::take
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// The number of pending blocks and their usable bytes (exact when no push or take is in
    /// flight).
    pub fn pending(&self) -> (usize, usize) {
        let h = self.head.load(Ordering::Acquire);
        (h.addr() >> ADDR_BITS, self.bytes.load(Ordering::Relaxed))
    }

    /// Puts the block `p` of `usable` bytes on the stack.
    ///
    /// # Safety
    /// `p` is a live block of this arena's inner strategy for which [`fits`] holds, of
    /// `usable` usable bytes, that the caller gives up (no other thread frees it
    /// concurrently, nobody uses it after the call).
    #[inline]
    pub unsafe fn push(&self, p: NonNull<u8>, usable: usize) -> Pushed {
        let addr = p.addr().get();
        let mark = pending_mark(addr, usable);
        // SAFETY: a live block with room for the mark (caller).
        let m = unsafe { mark_of(p) };
        if m.load(Ordering::Relaxed) == mark {
            return Pushed::Twice;
        }
        m.store(mark, Ordering::Relaxed);
        let link = p.cast::<*mut u8>();
        let mut old = self.head.load(Ordering::Relaxed);
        loop {
            let count = old.addr() >> ADDR_BITS;
            if count >= MAX_PENDING {
                m.store(0, Ordering::Relaxed);
                return Pushed::Full;
            }
            // SAFETY: the first word of a block the caller gave up, word-aligned (`fits`);
            // nobody else reads it until the compare-and-swap below publishes the block.
            unsafe { link.write(old.map_addr(|a| a & ADDR_MASK)) };
            let new = p.as_ptr().map_addr(|a| a | (count + 1) << ADDR_BITS);
            match self.head.compare_exchange_weak(old, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    self.bytes.fetch_add(usable, Ordering::Relaxed);
                    return Pushed::Yes(count + 1);
                }
                Err(h) => old = h,
            }
        }
    }

    /// Takes every pending block off the stack and calls `each(block, usable)` for each, top
    /// first, with its mark cleared; returns how many.
    ///
    /// # Safety
    /// The caller holds the arena's lock (`each` hands the blocks to the inner strategy,
    /// whose changes need it). Every block was pushed under [`push`]'s contract.
    ///
    /// [`push`]: Self::push
    #[inline]
    pub unsafe fn take(&self, mut each: impl FnMut(NonNull<u8>, usize)) -> usize {
        let top = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        let mut p = NonNull::new(top.map_addr(|a| a & ADDR_MASK));
        let (mut n, mut bytes) = (0, 0);
        while let Some(b) = p {
            // SAFETY: a pending block (pushed under `push`'s contract and published by the
            // Release of its push, which the Acquire swap saw): its words hold the link and
            // the mark; it is ours alone now.
            let usable = unsafe {
                p = NonNull::new(b.cast::<*mut u8>().read());
                let m = mark_of(b);
                let usable = m.load(Ordering::Relaxed) ^ pending_mark(b.addr().get(), 0);
                m.store(0, Ordering::Relaxed);
                usable
            };
            n += 1;
            bytes += usable;
            each(b, usable);
        }
        if n > 0 {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        n
    }

    /// Walks the stack without changing it: calls `each(block, usable)` for every pending
    /// block and checks the count and the bytes. `Err(what)` names the broken invariant.
    ///
    /// # Safety
    /// No other thread uses the arena during the call; every block was pushed under
    /// [`push`]'s contract.
    ///
    /// [`push`]: Self::push
    pub unsafe fn walk(&self, mut each: impl FnMut(NonNull<u8>, usize) -> bool) -> Result<(), &'static str> {
        let (count, bytes) = self.pending();
        let mut p = NonNull::new(self.head.load(Ordering::Acquire).map_addr(|a| a & ADDR_MASK));
        let (mut n, mut sum) = (0, 0usize);
        while let Some(b) = p {
            if n == count {
                return Err("remote stack longer than its count (a cycle: a block pushed twice?)");
            }
            // SAFETY: a pending block (caller), its words the link and the mark.
            let usable = unsafe {
                p = NonNull::new(b.cast::<*mut u8>().read());
                mark_of(b).load(Ordering::Relaxed) ^ pending_mark(b.addr().get(), 0)
            };
            if !each(b, usable) {
                return Err("pending block is a live inner block of its arena with its usable size");
            }
            n += 1;
            sum += usable;
        }
        if n != count {
            return Err("remote stack's count == its length");
        }
        if sum != bytes {
            return Err("remote stack's bytes == sum of its blocks' usable sizes");
        }
        Ok(())
    }

    /// Sets the bytes to the sum over the stack (the `fork` child, whose only thread is the
    /// caller: a push in flight in the parent may have linked its block and not counted it).
    ///
    /// # Safety
    /// No other thread uses the arena; every block was pushed under [`push`]'s contract.
    ///
    /// [`push`]: Self::push
    pub unsafe fn recount(&self) {
        let mut p = NonNull::new(self.head.load(Ordering::Acquire).map_addr(|a| a & ADDR_MASK));
        let mut sum = 0usize;
        while let Some(b) = p {
            // SAFETY: a pending block (caller), its words the link and the mark.
            unsafe {
                p = NonNull::new(b.cast::<*mut u8>().read());
                sum += mark_of(b).load(Ordering::Relaxed) ^ pending_mark(b.addr().get(), 0);
            }
        }
        self.bytes.store(sum, Ordering::Relaxed);
    }

    /// Forgets every pending block (their memory went back with the inner strategy's).
    pub fn clear(&self) {
        self.head.store(ptr::null_mut(), Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }
}

/// Size step of the parked classes, and the alignment of every parked block.
pub const PARK_STEP: usize = 16;
/// Parked classes: class `c` (1..=PARK_CLASSES) holds blocks of usable size
/// `c * 16 ..= c * 16 + 15`.
pub const PARK_CLASSES: usize = 64;
/// The most usable bytes one arena keeps parked; a drained block that would pass it is freed
/// into the strategy (and coalesces) instead.
pub const PARK_MAX_BYTES: usize = 64 << 10;
/// A request of `size` bytes takes a parked block at most this many classes above the
/// smallest class whose every block fits it (`ceil(size / 16)`): at most 63 bytes more
/// than that class's blocks.
const PARK_REACH: usize = 3;

/// Drained remote frees of one arena that were not handed to its strategy: small blocks kept
/// as they are, in LIFO stacks by usable size, for the arena's next allocations (glibc's
/// fastbins: a small free chunk is not coalesced, the next request of its size takes it
/// whole). Without them a drained block coalesces with its free neighbours in the strategy
/// and the next allocation splits it off again, which cost a producer/consumer pair most of
/// its time in best fit's bins (benches/README.md, "Layers").
///
/// A parked block is, like a pending one, live in the strategy and free to the user: its
/// first word links its stack, its second holds the pending mark (`pending_mark(addr,
/// usable)`), so `block_of` refuses it and `stats` does not count it. Touched only by the
/// holder of the arena's lock, except the two totals, which `stats` reads from any thread.
///
/// Invariants: `heads[c]` is the top of a stack of blocks of usable size in class `c`
/// (16-aligned starts, each a live block of the arena's strategy, carrying the pending mark,
/// in no other structure); `heads[0]` is null; bit `c - 1` of `nonempty` is set iff
/// `heads[c]` is not null; `count`
/// and `bytes` are the number and the usable bytes of the parked blocks, `bytes <=
/// PARK_MAX_BYTES`.
pub struct Parked {
    heads: core::cell::UnsafeCell<[*mut u8; PARK_CLASSES + 1]>,
    /// Bit `c - 1`: class `c` holds a block (one word for the 64 classes: a shift of a
    /// `u128` by a variable costs several instructions on every park and pop).
    nonempty: core::cell::Cell<u64>,
    count: AtomicUsize,
    bytes: AtomicUsize,
}

// SAFETY: the stacks and the mask are touched only under the arena's lock (the caller's
// contract on every method that touches them); the totals are atomic; the blocks are heap
// memory tied to no thread.
unsafe impl Sync for Parked {}
// SAFETY: as above.
unsafe impl Send for Parked {}

impl Parked {
    /// No parked block.
    pub const fn new() -> Self {
        Parked {
            heads: core::cell::UnsafeCell::new([ptr::null_mut(); PARK_CLASSES + 1]),
            nonempty: core::cell::Cell::new(0),
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    /// The number of parked blocks and their usable bytes.
    pub fn totals(&self) -> (usize, usize) {
        (self.count.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// Whether no block is parked (any thread; exact under the arena's lock).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// The class of a block of `usable` bytes at `addr`, if it can be parked.
    #[inline(always)]
    fn class_of(addr: usize, usable: usize) -> Option<usize> {
        Self::class_of_fitting(addr, usable).filter(|_| fits(addr, usable))
    }

    /// [`class_of`](Self::class_of) of a block for which [`fits`] holds (one that was on
    /// a remote stack).
    #[inline(always)]
    fn class_of_fitting(addr: usize, usable: usize) -> Option<usize> {
        let c = usable / PARK_STEP;
        (addr.is_multiple_of(PARK_STEP) && (1..=PARK_CLASSES).contains(&c)).then_some(c)
    }

    /// The bit of class `c` (`1..=PARK_CLASSES`) in `nonempty`.
    #[inline(always)]
    fn bit(c: usize) -> u64 {
        1 << (c - 1)
    }

    /// Parks the block `p` of `usable` bytes if it fits a class and the bound; `false` with
    /// nothing changed otherwise.
    ///
    /// # Safety
    /// The caller holds the arena's lock; `p` is a live block of the arena's strategy of
    /// `usable` usable bytes that no one uses and that is in no other structure (a block
    /// just taken off the remote stack, so [`fits`] holds for it).
    #[inline]
    pub unsafe fn park(&self, p: NonNull<u8>, usable: usize) -> bool {
        let addr = p.addr().get();
        let Some(c) = Self::class_of_fitting(addr, usable) else { return false };
        let bytes = self.bytes.load(Ordering::Relaxed);
        if bytes + usable > PARK_MAX_BYTES {
            return false;
        }
        // SAFETY: the lock is held (caller): the stacks are ours; the block's first two
        // words are inside it (`fits`) and nobody else reads them.
        unsafe {
            let heads = &mut *self.heads.get();
            p.cast::<*mut u8>().write(heads[c]);
            mark_of(p).store(pending_mark(addr, usable), Ordering::Relaxed);
            heads[c] = p.as_ptr();
        }
        self.nonempty.set(self.nonempty.get() | Self::bit(c));
        self.count.store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.bytes.store(bytes + usable, Ordering::Relaxed);
        true
    }

    /// A parked block for a request of `size` bytes at alignment at most 16, with its mark
    /// cleared, and its usable size: the top of class `size / 16` if its usable size
    /// suffices, else the top of the first non-empty class from `ceil(size / 16)` up to
    /// [`PARK_REACH`] classes above it.
    ///
    /// # Safety
    /// The caller holds the arena's lock.
    #[inline]
    pub unsafe fn pop(&self, size: usize) -> Option<(NonNull<u8>, usize)> {
        // SAFETY: the lock is held (caller).
        let r = unsafe { self.take(size) };
        if let Some((_, usable)) = r {
            self.uncount(1, usable);
        }
        r
    }

    /// Up to `out.len()` parked blocks for requests of `size` bytes, as [`pop`](Self::pop)
    /// one after another would give them, into `out`, and their usable sizes into `sizes`
    /// if given (at least as long as `out`); returns how many. The totals are
    /// updated once for the run.
    ///
    /// # Safety
    /// The caller holds the arena's lock.
    #[inline]
    pub unsafe fn pop_many(
        &self,
        size: usize,
        out: &mut [NonNull<u8>],
        mut sizes: Option<&mut [usize]>,
    ) -> usize {
        let (mut n, mut bytes) = (0, 0);
        while n < out.len()
            // SAFETY: the lock is held (caller).
            && let Some((p, usable)) = unsafe { self.take(size) }
        {
            out[n] = p;
            if let Some(s) = sizes.as_deref_mut() {
                s[n] = usable;
            }
            n += 1;
            bytes += usable;
        }
        if n > 0 {
            self.uncount(n, bytes);
        }
        n
    }

    /// Takes `n` blocks of `bytes` usable bytes off the totals (the owner's load + store:
    /// only the lock holder writes them).
    #[inline(always)]
    fn uncount(&self, n: usize, bytes: usize) {
        self.count.store(self.count.load(Ordering::Relaxed) - n, Ordering::Relaxed);
        self.bytes.store(self.bytes.load(Ordering::Relaxed) - bytes, Ordering::Relaxed);
    }

    /// [`pop`](Self::pop) without updating the totals (the caller does).
    ///
    /// # Safety
    /// The caller holds the arena's lock.
    #[inline(always)]
    unsafe fn take(&self, size: usize) -> Option<(NonNull<u8>, usize)> {
        let lo = size / PARK_STEP;
        if lo > PARK_CLASSES {
            return None;
        }
        let mask = self.nonempty.get();
        let hi = size.div_ceil(PARK_STEP).max(1);
        // SAFETY: the lock is held (caller); the tops of the stacks are parked blocks
        // (invariant), their words the link and the mark.
        unsafe {
            if lo != hi && lo >= 1 && mask & Self::bit(lo) != 0 {
                let top = NonNull::new_unchecked((*self.heads.get())[lo]);
                if Self::usable_of(top) >= size {
                    return Some(self.pop_class(lo));
                }
            }
            if hi > PARK_CLASSES {
                return None;
            }
            // Classes `hi..=hi + PARK_REACH` (`1 <= hi <= PARK_CLASSES`: a shift below 64).
            let window = (mask >> (hi - 1)) & ((1 << (PARK_REACH + 1)) - 1);
            if window == 0 {
                return None;
            }
            Some(self.pop_class(hi + window.trailing_zeros() as usize))
        }
    }

    /// The usable size a parked block's mark records.
    ///
    /// # Safety
    /// `p` is a parked block.
    #[inline(always)]
    unsafe fn usable_of(p: NonNull<u8>) -> usize {
        // SAFETY: a parked block carries the mark in its second word (caller).
        unsafe { mark_of(p) }.load(Ordering::Relaxed) ^ pending_mark(p.addr().get(), 0)
    }

    /// Takes the top of the non-empty class `c`, mark cleared; the totals are the caller's
    /// to update.
    ///
    /// # Safety
    /// The caller holds the arena's lock; class `c` is not empty.
    #[inline(always)]
    unsafe fn pop_class(&self, c: usize) -> (NonNull<u8>, usize) {
        // SAFETY: the lock is held; the top of a non-empty stack is a parked block
        // (invariant); after this it is the caller's.
        unsafe {
            let heads = &mut *self.heads.get();
            let p = NonNull::new_unchecked(heads[c]);
            let usable = Self::usable_of(p);
            heads[c] = p.cast::<*mut u8>().read();
            if heads[c].is_null() {
                self.nonempty.set(self.nonempty.get() & !Self::bit(c));
            }
            mark_of(p).store(0, Ordering::Relaxed);
            (p, usable)
        }
    }

    /// Takes every parked block (marks cleared) and calls `each` with it, in batches of up to
    /// 32: for handing them to the strategy (`trim`, a failed allocation).
    ///
    /// # Safety
    /// The caller holds the arena's lock.
    pub unsafe fn take_all(&self, mut each: impl FnMut(&[NonNull<u8>])) {
        const BATCH: usize = 32;
        let mut buf = [NonNull::<u8>::dangling(); BATCH];
        let mut len = 0;
        while self.nonempty.get() != 0 {
            let c = self.nonempty.get().trailing_zeros() as usize + 1;
            // SAFETY: the lock is held (caller); class `c` is not empty.
            let (p, usable) = unsafe { self.pop_class(c) };
            self.uncount(1, usable);
            buf[len] = p;
            len += 1;
            if len == BATCH {
                each(&buf);
                len = 0;
            }
        }
        each(&buf[..len]);
    }

    /// Walks every parked block without changing anything: `each(block, usable)` must hold
    /// for each; checks the classes, the mask and the totals. `Err(what)` names the broken
    /// invariant.
    ///
    /// # Safety
    /// No other thread uses the arena during the call.
    pub unsafe fn walk(&self, mut each: impl FnMut(NonNull<u8>, usize) -> bool) -> Result<(), &'static str> {
        let (mut n, mut sum) = (0usize, 0usize);
        let (count, bytes) = self.totals();
        // SAFETY: no other thread uses the arena (caller): the stacks are stable.
        let heads = unsafe { &*self.heads.get() };
        for (c, &top) in heads.iter().enumerate() {
            let holds = !top.is_null();
            if (c >= 1 && self.nonempty.get() & Self::bit(c) != 0) != holds {
                return Err("parked class's bit set iff its stack is not empty (class 0 empty)");
            }
            let mut p = NonNull::new(top);
            while let Some(b) = p {
                if n == count {
                    return Err("parked stacks longer than their count (a cycle?)");
                }
                // SAFETY: a parked block (invariant), its words the link and the mark.
                let usable = unsafe {
                    p = NonNull::new(b.cast::<*mut u8>().read());
                    Self::usable_of(b)
                };
                if Self::class_of(b.addr().get(), usable) != Some(c) {
                    return Err("parked block in the class of its usable size, 16-aligned");
                }
                if !each(b, usable) {
                    return Err("parked block is a live inner block of its arena with its usable size");
                }
                n += 1;
                sum += usable;
            }
        }
        if n != count || sum != bytes || bytes > PARK_MAX_BYTES {
            return Err("parked count and bytes == their stacks', bytes <= PARK_MAX_BYTES");
        }
        Ok(())
    }

    /// Forgets every parked block (their memory went back with the inner strategy's).
    ///
    /// # Safety
    /// No other thread uses the arena.
    pub unsafe fn clear(&self) {
        // SAFETY: no other thread uses the arena (caller).
        unsafe { *self.heads.get() = [ptr::null_mut(); PARK_CLASSES + 1] };
        self.nonempty.set(0);
        self.count.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }
}
