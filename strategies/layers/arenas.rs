//! `Arenas<S, N>`: `N` independent instances of `S`, each behind its own lock, a thread
//! keeping its arena and moving on when it finds it busy (glibc's `arena_get2`). See
//! `layers/mod.rs` for the overview.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::owners::{GRANULE_BYTES, OwnerMap};
use super::remote::{self, Parked, Pushed, Remote};
use crate::source::{PageSource, SourceError};
use crate::strategy::{BadFree, BlockInfo, CheckError, ConstInit, Found, Strategy, StrategyStats};
use crate::sync::SpinLock;

/// The default arena count: 8, glibc's `arena_max` per core on 64-bit systems taken for one
/// core of the small machines this project measures on, and enough that up to 8 running
/// threads each keep an arena to themselves. Arenas cost nothing until a thread first lands
/// on one (every strategy is lazy); a machine with more cores wants a larger `N`
/// (`Arenas<S, 32>`). A const parameter rather than a run-time count: the arenas live inline
/// in the value, so that a `Heap` stays a const-initialised `static` that never allocates.
pub const DEFAULT_ARENAS: usize = 8;

/// The largest block (usable bytes) a thread that does not have the arena as its home puts
/// on the arena's remote stack; larger ones are freed under the arena's lock. Bounds the
/// memory a remote stack can hold back (with [`DRAIN_EVERY`]).
pub const REMOTE_MAX_BYTES: usize = 16 << 10;

/// Every this many pending blocks, the thread that pushed the last one drains the stack
/// itself if the arena's lock is free, so that an arena nobody allocates from any more (its
/// threads exited) holds back fewer than this many blocks.
pub const DRAIN_EVERY: usize = 64;

/// One arena: an instance of the inner strategy, the lock that makes it a thread's own, and
/// the stack of blocks other threads freed into it.
/// Invariants: every call into `strategy` that may change it runs with `busy` held; lookups
/// (`block_of`) and `stats` do not need it (the strategy is thread-safe on its own). Every
/// block on `remote` is a live block of `strategy` that carries the pending mark, is free to
/// the user, and is in no other structure; `remote` is emptied only under `busy`. `parked`
/// (drained remote frees kept whole for the arena's next allocations) is touched only under
/// `busy`; its blocks are, like pending ones, live blocks of `strategy` with the pending
/// mark, free to the user, in no other structure.
struct Arena<S> {
    busy: SpinLock<()>,
    strategy: S,
    remote: Remote,
    parked: Parked,
}

/// `N` instances of `S`, each behind its own lock; see the [module docs](super).
///
/// ```
/// use stratalloc::{Arenas, BestFit, Heap};
/// static HEAP: Heap<Arenas<BestFit>> = Heap::new();
/// let v: Vec<u64> = std::thread::scope(|s| {
///     (0..4).map(|i| s.spawn(move || HEAP.alloc_layout(core::alloc::Layout::new::<u64>()).map(|_| i)))
///         .collect::<Vec<_>>().into_iter().map(|h| h.join().unwrap().unwrap()).collect()
/// });
/// assert_eq!(v.len(), 4);
/// assert_eq!(HEAP.stats().live_objects, 4);
/// ```
pub struct Arenas<S, const N: usize = DEFAULT_ARENAS> {
    arenas: [Arena<S>; N],
    /// Granule -> arena that made it Ready: the owner of a block, in O(1), from any thread.
    owners: OwnerMap,
    /// Round robin for threads choosing their first arena.
    next: AtomicUsize,
}

impl<S: ConstInit, const N: usize> ConstInit for Arenas<S, N> {
    const INIT: Self = {
        assert!(N >= 1 && N <= 255, "Arenas: N must be 1..=255 (the owner map stores arena + 1 in a byte)");
        Arenas {
            arenas: [const {
                Arena {
                    busy: SpinLock::new(()),
                    strategy: S::INIT,
                    remote: Remote::new(),
                    parked: Parked::new(),
                }
            }; N],
            owners: OwnerMap::new(),
            next: AtomicUsize::new(0),
        }
    };
}

impl<S, const N: usize> Arenas<S, N> {
    /// Arenas built by `make` (for strategies chosen at run time, which have no constant).
    pub fn from_fn(mut make: impl FnMut(usize) -> S) -> Self {
        Arenas {
            arenas: core::array::from_fn(|i| Arena {
                busy: SpinLock::new(()),
                strategy: make(i),
                remote: Remote::new(),
                parked: Parked::new(),
            }),
            owners: OwnerMap::new(),
            next: AtomicUsize::new(0),
        }
    }

    /// The inner strategy of arena `i`.
    pub fn arena(&self, i: usize) -> &S {
        &self.arenas[i].strategy
    }

    /// The arena whose memory holds `ptr`, from the owner map (O(1), lock-free), for any
    /// pointer.
    pub fn owner_of(&self, ptr: *const u8) -> Option<usize> {
        self.owners.owner_guarded(ptr.addr()).filter(|&i| i < N)
    }

    /// `owner_of` for a live block of this heap (no reader guard: its leaf stays linked).
    #[inline]
    fn owner_of_block(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.owners.owner(ptr.addr().get()).filter(|&i| i < N)
    }
}

/// The page source each arena's strategy sees: the heap's source, recording in the owner map
/// which arena made each range Ready. Built afresh for every call, always from the same
/// parts, so each arena's strategy keeps "one and the same source" for its whole life.
pub struct ArenaSource<'a, P> {
    src: &'a P,
    owners: &'a OwnerMap,
    arena: u8,
}

// SAFETY: every call is forwarded unchanged to the heap's source, whose guarantees carry over;
// `used` also records the range in the owner map (no change to the range), and when that
// fails it puts the range back to Prepared and reports the failure, as a refused `used`.
unsafe impl<P: PageSource> PageSource for ArenaSource<'_, P> {
    const PAGE_BYTES: usize = P::PAGE_BYTES;
    const FRESH_ZEROED: bool = P::FRESH_ZEROED;
    const RELEASES_MEMORY: bool = P::RELEASES_MEMORY;

    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        self.src.reserve(bytes, align)
    }
    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.map(base, bytes) }
    }
    // ANCHOR: arena_source_used
    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.used(base, bytes) }?;
        if let Err(e) = self.owners.record(self.src, base.addr().get(), bytes, self.arena) {
            // SAFETY: the range was Prepared before this call and the caller has not seen
            // it Ready: back to Prepared.
            let _ = unsafe { self.src.unused(base, bytes) };
            return Err(e);
        }
        Ok(())
    }
    // ANCHOR_END: arena_source_used
    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.unused(base, bytes) }
    }
    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.hint_dense(base, bytes) }
    }
    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.fault(base, bytes) }
    }
    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // Forget the owners first: no block lives in the range any more (caller).
        self.owners.clear(base.addr().get(), bytes);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.src.free(base, bytes) }
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    /// The calling thread's arena hint (any value; taken modulo the arena count), or
    /// `usize::MAX` before its first allocation. Const-initialised, no destructor: using it
    /// never allocates.
    static HOME: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
    /// The home index the calling thread claimed in [`CLAIMED`] (`usize::MAX`: none), given
    /// back by [`ClaimGuard`] at thread exit. Const-initialised, no destructor.
    static CLAIM: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
    /// Gives the claim back at thread exit. Registered (its destructor) only after `HOME` is
    /// set, since registering may allocate, re-entering the heap.
    static CLAIM_GUARD: ClaimGuard = const { ClaimGuard };
}

/// Home indexes that a live thread holds, process-wide (every `Arenas` heap takes a thread's
/// index modulo its arena count). A thread's first allocation claims the lowest free index
/// and its exit gives it back, so that a thread started after another exited takes over the
/// exited thread's arena (glibc's `free_list` of arenas whose threads exited, which
/// `arena_get2` takes before making a new arena) instead of a fresh one: with threads
/// recreated in rounds, the heap stays in the arenas the live threads use, and the arena's
/// free memory, already faulted in, serves the new thread. Live threads hold distinct
/// indexes, so up to `N` of them each have an arena to themselves (until one moves on
/// contention). When every index is held, a thread takes the heap's round robin instead.
#[cfg(feature = "std")]
static CLAIMED: [core::sync::atomic::AtomicBool; CLAIM_SLOTS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; CLAIM_SLOTS];

/// Indexes in [`CLAIMED`]: more than any arena count (`N <= 255`).
#[cfg(feature = "std")]
const CLAIM_SLOTS: usize = 256;

/// The destructor that gives the exiting thread's home index back.
#[cfg(feature = "std")]
struct ClaimGuard;

#[cfg(feature = "std")]
impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let _ = CLAIM.try_with(|c| {
            let h = c.replace(usize::MAX);
            if h < CLAIM_SLOTS {
                // The thread keeps `HOME`: an allocation it makes later in its exit (another
                // destructor) shares the arena with whichever thread claims it next, under
                // the arena's lock.
                CLAIMED[h].store(false, core::sync::atomic::Ordering::Release);
            }
        });
    }
}

/// In the child of a `fork`: only the forking thread lives on, so every claim but its own
/// belongs to a thread the child does not have. Clears them, so that the child's new threads
/// take over those arenas instead of finding the table full of the parent's threads.
#[cfg(feature = "std")]
fn claims_after_fork() {
    let mine = CLAIM.try_with(|c| c.get()).unwrap_or(usize::MAX);
    for (h, slot) in CLAIMED.iter().enumerate() {
        slot.store(h == mine, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Claims the lowest free home index for the calling thread, or `None` when all are held.
#[cfg(feature = "std")]
fn claim_home() -> Option<usize> {
    use core::sync::atomic::Ordering::{Acquire, Relaxed};
    (0..CLAIM_SLOTS).find(|&h| {
        !CLAIMED[h].load(Relaxed) && CLAIMED[h].compare_exchange(false, true, Acquire, Relaxed).is_ok()
    })
}

impl<S: Strategy, const N: usize> Arenas<S, N> {
    /// The source arena `i`'s strategy uses.
    #[inline(always)]
    fn source<'a, P: PageSource>(&'a self, src: &'a P, i: usize) -> ArenaSource<'a, P> {
        const { assert!(P::PAGE_BYTES.is_multiple_of(GRANULE_BYTES), "Arenas needs pages of 4 KiB multiples") };
        ArenaSource { src, owners: &self.owners, arena: i as u8 }
    }

    /// The calling thread's arena: its hint (`std`), or a hash of its stack address.
    #[inline(always)]
    fn home(&self) -> usize {
        #[cfg(feature = "std")]
        {
            let h = HOME.with(|h| h.get());
            if h != usize::MAX {
                return h % N;
            }
            self.first_home()
        }
        #[cfg(not(feature = "std"))]
        {
            // Threads have disjoint stacks: the stack page is a per-thread value that needs
            // no thread-local storage. Multiplicative hashing spreads neighbouring stacks.
            let here = 0u8;
            ((&raw const here).addr() >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) % N
        }
    }

    /// The calling thread's first allocation: a claimed home index (the lowest one no live
    /// thread holds, see [`CLAIMED`]), else the heap's round robin.
    #[cfg(feature = "std")]
    #[cold]
    fn first_home(&self) -> usize {
        let claimed = claim_home();
        let h = claimed.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        if HOME.try_with(|c| c.set(h)).is_err() {
            // The thread-locals are gone (the thread is exiting): no claim to keep.
            if let Some(c) = claimed {
                CLAIMED[c].store(false, Ordering::Release);
            }
            return h % N;
        }
        if let Some(c) = claimed {
            let _ = CLAIM.try_with(|cell| cell.set(c));
            // Registers the guard's destructor, which may allocate: that allocation finds
            // `HOME` set and does not come back here. If the guard cannot be registered (the
            // thread is exiting), the claim is given back at once.
            if CLAIM_GUARD.try_with(|_| {}).is_err() {
                let _ = CLAIM.try_with(|cell| cell.set(usize::MAX));
                CLAIMED[c].store(false, Ordering::Release);
            }
        }
        h % N
    }

    /// Whether arena `i` is the calling thread's home (never, before its first allocation).
    #[inline(always)]
    fn is_home(&self, i: usize) -> bool {
        #[cfg(feature = "std")]
        {
            let h = HOME.with(|h| h.get());
            h != usize::MAX && h % N == i
        }
        #[cfg(not(feature = "std"))]
        {
            self.home() == i
        }
    }

    /// Takes arena `i`'s pending remote frees: parks the small ones while the bound allows
    /// ([`Parked`]), hands the others to its strategy; returns how many the strategy refused
    /// (blocks freed twice, the second time after the first had been drained).
    ///
    /// # Safety
    /// The caller holds arena `i`'s lock; `src` is the heap's source.
    #[inline(always)]
    unsafe fn drain<P: PageSource>(&self, src: &P, i: usize) -> usize {
        let a = &self.arenas[i];
        if a.remote.is_empty() {
            return 0;
        }
        // SAFETY: forwarded (caller).
        unsafe { self.drain_slow(src, i) }
    }

    /// The work of [`drain`](Self::drain), out of line (not cold: a producer whose blocks
    /// another thread frees drains on most allocations).
    ///
    /// # Safety
    /// As for [`drain`](Self::drain).
    #[inline(never)]
    unsafe fn drain_slow<P: PageSource>(&self, src: &P, i: usize) -> usize {
        const BATCH: usize = 32;
        let a = &self.arenas[i];
        let s = self.source(src, i);
        let mut buf = [NonNull::<u8>::dangling(); BATCH];
        // Blocks freed into the strategy or parked.
        let (mut len, mut freed) = (0, 0);
        // SAFETY: the caller holds the lock; every block was pushed by `dealloc` (a live
        // block of this arena that its caller gave up).
        let n = unsafe {
            a.remote.take(|b, usable| {
                // SAFETY: the lock is held; a live block of the arena, just taken off the
                // stack, in no other structure.
                if a.parked.park(b, usable) {
                    freed += 1;
                    return;
                }
                buf[len] = b;
                len += 1;
                if len == BATCH {
                    // SAFETY: live blocks of arena `i`, given up (pushed), each once (a
                    // block pushed twice while pending is refused by its mark), under its
                    // lock, with its own source.
                    freed += a.strategy.free_batch(&s, &buf);
                    len = 0;
                }
            })
        };
        // SAFETY: as above.
        freed += unsafe { a.strategy.free_batch(&s, &buf[..len]) };
        n - freed
    }

    /// `alloc_batch` in one arena, under its lock after its drain: parked blocks first, then
    /// the strategy's batch; with `usable`, each block's usable size too (`usable.len() >=
    /// out.len()`). A batch of none counts as a failure, so that the other arenas are tried.
    ///
    /// # Safety
    /// As for [`Strategy::alloc`]; `usable`, if given, is at least as long as `out`.
    #[inline(always)]
    unsafe fn batch<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
        out: &mut [NonNull<u8>],
        mut usable: Option<&mut [usize]>,
    ) -> usize {
        // SAFETY: the arena's lock is held in `f`; forwarded with the caller's guarantees;
        // the arena's own source.
        unsafe {
            self.with_drained_arena(src, |i| {
                let a = &self.arenas[i];
                let mut n = 0;
                if !a.parked.is_empty() && layout.align() <= remote::PARK_STEP {
                    // The lock is held (`with_drained_arena`); `usable` is as long as `out`.
                    n = a.parked.pop_many(layout.size(), out, usable.as_deref_mut());
                }
                let s = self.source(src, i);
                let mut got =
                    if n < out.len() { a.strategy.alloc_batch(&s, layout, &mut out[n..]) } else { 0 };
                if n + got == 0 {
                    // The strategy could not serve: with the parked blocks back, once more.
                    if a.parked.is_empty() {
                        return None;
                    }
                    self.unpark(src, i);
                    got = a.strategy.alloc_batch(&s, layout, out);
                }
                if let Some(u) = usable.as_deref_mut() {
                    for k in n..n + got {
                        // A live block of arena `i`'s strategy, just allocated for `layout`.
                        u[k] = a.strategy.usable_size(out[k], layout);
                    }
                }
                Some(n + got).filter(|&n| n > 0)
            })
        }
        .unwrap_or(0)
    }

    /// Hands arena `i`'s parked blocks to its strategy (`trim`, or an allocation the strategy
    /// could not serve otherwise); returns how many.
    ///
    /// # Safety
    /// The caller holds arena `i`'s lock; `src` is the heap's source.
    #[cold]
    unsafe fn unpark<P: PageSource>(&self, src: &P, i: usize) -> usize {
        let a = &self.arenas[i];
        let s = self.source(src, i);
        let mut n = 0;
        // SAFETY: the lock is held (caller); parked blocks are live blocks of the arena, in
        // no other structure, each taken once, given to their own arena with its source.
        unsafe { a.parked.take_all(|blocks| n += a.strategy.free_batch(&s, blocks)) };
        n
    }

    /// A request in arena `i`: a parked block if one fits (`align <= 16`), else the
    /// strategy; if the strategy cannot serve it, the parked blocks go back to it and it is
    /// asked once more.
    ///
    /// # Safety
    /// The caller holds arena `i`'s lock; `src` is the heap's source; as for
    /// [`Strategy::alloc`].
    #[inline(always)]
    unsafe fn alloc_in<P: PageSource>(
        &self,
        src: &P,
        i: usize,
        layout: Layout,
        zeroed: bool,
    ) -> Option<NonNull<u8>> {
        let a = &self.arenas[i];
        // SAFETY: the lock is held (caller).
        if let Some(p) = unsafe { self.alloc_in_parked(i, layout) } {
            if zeroed {
                // SAFETY: a block of at least `layout.size()` usable bytes, now the caller's.
                unsafe { p.as_ptr().write_bytes(0, layout.size()) };
            }
            return Some(p);
        }
        let s = self.source(src, i);
        // SAFETY: forwarded with the caller's guarantees; the arena's own source, its lock.
        let r = unsafe {
            if zeroed { a.strategy.alloc_zeroed(&s, layout) } else { a.strategy.alloc(&s, layout) }
        };
        if r.is_some() || a.parked.is_empty() {
            return r;
        }
        // SAFETY: as above.
        unsafe {
            self.unpark(src, i);
            if zeroed { a.strategy.alloc_zeroed(&s, layout) } else { a.strategy.alloc(&s, layout) }
        }
    }

    /// Whether the live-to-the-strategy block `ptr` of arena `i` is parked (a free of it is
    /// a double free), read off the block's mark. Callers ask only when the arena has parked
    /// blocks (`parked.is_empty()` first, before they look up `usable`).
    ///
    /// # Safety
    /// The caller holds arena `i`'s lock; `ptr` is a live block of its strategy of `usable`
    /// usable bytes.
    #[inline(always)]
    unsafe fn is_parked(&self, i: usize, ptr: NonNull<u8>, usable: usize) -> bool {
        debug_assert!(!self.arenas[i].parked.is_empty(), "is_parked with nothing parked");
        remote::fits(ptr.addr().get(), usable)
            // SAFETY: a live inner block with room for the mark (caller; `fits`).
            && unsafe { remote::is_pending(ptr, usable) }
    }

    /// After a push made the count a multiple of [`DRAIN_EVERY`]: drain arena `i` if its
    /// lock is free.
    ///
    /// # Safety
    /// `src` is the heap's source.
    #[cold]
    unsafe fn drain_if_free<P: PageSource>(&self, src: &P, i: usize) {
        if let Some(g) = self.arenas[i].busy.try_lock() {
            // SAFETY: the lock is held; forwarded (caller).
            let refused = unsafe { self.drain(src, i) };
            drop(g);
            debug_assert_eq!(refused, 0, "Arenas: a block freed twice (refused when drained)");
        }
    }

    /// Makes arena `i` the calling thread's (after it found its own busy).
    #[inline]
    fn move_home(&self, i: usize) {
        #[cfg(feature = "std")]
        let _ = HOME.try_with(|c| c.set(i));
        #[cfg(not(feature = "std"))]
        let _ = i;
    }

    /// A parked block for `layout` in arena `i` (`align <= 16`), if one fits.
    ///
    /// # Safety
    /// The caller holds arena `i`'s lock.
    #[inline(always)]
    unsafe fn alloc_in_parked(&self, i: usize, layout: Layout) -> Option<NonNull<u8>> {
        let a = &self.arenas[i];
        if a.parked.is_empty() || layout.align() > remote::PARK_STEP {
            return None;
        }
        // SAFETY: the lock is held (caller).
        unsafe { a.parked.pop(layout.size()) }.map(|(p, _)| p)
    }

    /// `with_arena` for the allocation calls: in the arena it holds, first takes the pending
    /// remote frees (`drain`), then runs `f` with the arena's index. A block the drain
    /// refuses was freed twice (debug builds report it).
    ///
    /// # Safety
    /// `src` is the heap's source; `f` may rely on holding the arena's lock.
    #[inline(always)]
    unsafe fn with_drained_arena<P: PageSource, T>(
        &self,
        src: &P,
        mut f: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let mut refused = 0;
        let r = self.with_arena(|_, i| {
            // SAFETY: `with_arena` holds arena `i`'s lock; the heap's source (caller).
            refused += unsafe { self.drain(src, i) };
            f(i)
        });
        debug_assert_eq!(refused, 0, "Arenas: a block freed twice (refused when drained)");
        r
    }

    // ANCHOR: arenas_with_arena
    /// Runs `f` on an arena the calling thread holds: its own if free, else the first free
    /// one after it (which becomes its own), else its own after waiting. If `f` fails
    /// (the arena could not grow) every other arena is tried in turn, waiting for each.
    #[inline]
    fn with_arena<T>(&self, mut f: impl FnMut(&S, usize) -> Option<T>) -> Option<T> {
        let home = self.home();
        let first = match self.arenas[home].busy.try_lock() {
            Some(g) => {
                let r = f(&self.arenas[home].strategy, home);
                drop(g);
                r
            }
            None => self.contended(home, &mut f),
        };
        match first {
            Some(r) => Some(r),
            None => self.retry(home, &mut f),
        }
    }

    /// The home arena was busy: take the first free one (glibc's `reused_arena`), or wait.
    #[cold]
    fn contended<T>(&self, home: usize, f: &mut impl FnMut(&S, usize) -> Option<T>) -> Option<T> {
        for k in 1..N {
            let i = (home + k) % N;
            if let Some(g) = self.arenas[i].busy.try_lock() {
                self.move_home(i);
                let r = f(&self.arenas[i].strategy, i);
                drop(g);
                return r;
            }
        }
        let _g = self.arenas[home].busy.lock();
        f(&self.arenas[home].strategy, home)
    }
    // ANCHOR_END: arenas_with_arena

    /// The arena could not serve (its source refused): the others may hold free memory
    /// (glibc's `arena_get_retry`).
    #[cold]
    fn retry<T>(&self, failed: usize, f: &mut impl FnMut(&S, usize) -> Option<T>) -> Option<T> {
        (1..N).map(|k| (failed + k) % N).find_map(|i| {
            let _g = self.arenas[i].busy.lock();
            f(&self.arenas[i].strategy, i)
        })
    }

    /// The free of a live block of arena `i`: onto its remote stack from another thread when
    /// the block suits it, else under the arena's lock (after its drain and the parked
    /// check) into its strategy. `usable` is the block's usable size when the caller knows
    /// it (`locate`), looked up here only where needed otherwise.
    ///
    /// # Safety
    /// `ptr` is a live block of arena `i` for `layout`, which the caller gives up, of
    /// `usable` usable bytes if `Some` (its strategy's `usable_size`); `src` is the heap's
    /// source.
    #[inline(always)]
    unsafe fn dealloc_in<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        i: usize,
        usable: Option<usize>,
    ) {
        let a = &self.arenas[i];
        let usable_of = |u: Option<usize>| {
            u.unwrap_or_else(|| {
                // SAFETY: a live block of arena `i` for `layout` (caller).
                unsafe { a.strategy.usable_size(ptr, layout) }
            })
        };
        if !self.is_home(i)
            && layout.size() <= REMOTE_MAX_BYTES
            // SAFETY: the remote path; `ptr` is a live block of arena `i` (caller) of the
            // usable size given or looked up.
            && unsafe { self.dealloc_remote(src, ptr, usable_of(usable), i) }
        {
            return;
        }
        let g = a.busy.lock();
        // SAFETY: the lock is held; this heap's source.
        let refused = unsafe { self.drain(src, i) };
        if !a.parked.is_empty()
            // SAFETY: the lock is held; `ptr` is a live block of arena `i` (caller) of the
            // usable size given or looked up (for `layout`, caller).
            && unsafe { self.is_parked(i, ptr, usable_of(usable)) }
        {
            // Parked already (freed before, drained since): freeing it into the strategy would
            // leave it parked and free at once, so it is ignored.
            drop(g);
            debug_assert!(false, "Arenas::dealloc: double free of {ptr:p} (parked)");
            return;
        }
        // SAFETY: `ptr` is a live block of arena `i` (caller), its own source, its lock.
        unsafe { a.strategy.dealloc(&self.source(src, i), ptr, layout) };
        drop(g);
        debug_assert_eq!(refused, 0, "Arenas: a block freed twice (refused when drained)");
    }

    /// A free from a thread whose home is not arena `i`: onto the arena's remote stack,
    /// without its lock. `false`, with nothing changed, when the block does not suit the
    /// stack (too small or too large, or the stack is full): then the caller frees it under
    /// the lock.
    ///
    /// # Safety
    /// `ptr` is a live block of arena `i` of `usable` usable bytes (its strategy's
    /// `usable_size`), which the caller gives up; `src` is the heap's source.
    #[inline]
    unsafe fn dealloc_remote<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        usable: usize,
        i: usize,
    ) -> bool {
        let a = &self.arenas[i];
        if usable > REMOTE_MAX_BYTES || !remote::fits(ptr.addr().get(), usable) {
            return false;
        }
        // SAFETY: a live block of arena `i`, fitting the stack, given up (caller).
        match unsafe { a.remote.push(ptr, usable) } {
            Pushed::Yes(n) => {
                if n.is_multiple_of(DRAIN_EVERY) {
                    // SAFETY: the heap's source (caller).
                    unsafe { self.drain_if_free(src, i) };
                }
                true
            }
            Pushed::Twice => {
                // Pending already: pushing it again would make the stack a cycle.
                debug_assert!(false, "Arenas::dealloc: double free of {ptr:p} (pending)");
                true
            }
            Pushed::Full => false,
        }
    }

    /// The free by address of `ptr` in arena `i` (the arena the owner map names for it):
    /// under the arena's lock, after its drain, refused unless it is a live block there
    /// that is not parked.
    ///
    /// # Safety
    /// As for [`Strategy::free`]; `i < N`.
    #[inline]
    unsafe fn free_in<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, i: usize) -> Result<usize, BadFree> {
        let _g = self.arenas[i].busy.lock();
        // Pending blocks first: a pending `ptr` is then free in the strategy, which refuses
        // it as a double free.
        // SAFETY: the lock is held; this heap's source.
        unsafe { self.drain(src, i) };
        if !self.arenas[i].parked.is_empty()
            && let Some(info) = self.arenas[i].strategy.block_of(ptr.as_ptr())
            // SAFETY: the lock is held; `ptr` is the start of a live block of the arena's
            // strategy of `info.usable` usable bytes (just looked up).
            && unsafe { self.is_parked(i, ptr, info.usable) }
        {
            return Err(BadFree::NotLive); // parked: free to the user already
        }
        // SAFETY: forwarded with the caller's guarantees to the arena the owner map names
        // for `ptr` (caller); a live block there is that arena's, anything else it refuses
        // unchanged.
        unsafe { self.arenas[i].strategy.free(&self.source(src, i), ptr) }
    }

    /// The arena that owns the live block `ptr`: the owner map's answer (a live block lies in
    /// a range its arena made Ready, and the granule was recorded before the block was
    /// handed out); for a pointer the map does not know, the arena whose lookup knows it.
    #[inline]
    fn owner_of_live(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.owner_of_block(ptr).or_else(|| self.search(ptr.as_ptr()))
    }

    /// Asks every arena (the path of pointers the map does not know: never a live block).
    #[cold]
    fn search(&self, ptr: *const u8) -> Option<usize> {
        (0..N).find(|&i| self.arenas[i].strategy.block_of(ptr).is_some())
    }
}

// SAFETY: each arena is a strategy used with its own `ArenaSource` over the heap's source
// (always the same parts), and every block goes back to the arena that made it (the owner
// map names the arena that made its granule Ready, and arenas' ranges are disjoint), so each
// inner strategy sees a valid sequence of its own calls: its guarantees (1)-(5) carry over.
// Failures are `None` (4); the locks and the atomic owner map make it thread-safe (5).
unsafe impl<S: Strategy, const N: usize> Strategy for Arenas<S, N> {
    fn name(&self) -> &'static str {
        "arenas"
    }

    // ANCHOR: arenas_alloc
    #[inline]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: the arena's lock is held in `f`; forwarded with the caller's guarantees;
        // the arena's own source.
        unsafe { self.with_drained_arena(src, |i| self.alloc_in(src, i, layout, false)) }
    }

    /// One arena lock (and one drain) for the whole batch.
    unsafe fn alloc_batch<P: PageSource>(&self, src: &P, layout: Layout, out: &mut [NonNull<u8>]) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.batch(src, layout, out, None) }
    }

    #[inline]
    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: the arena's lock is held in `f`; forwarded with the caller's guarantees;
        // the arena's own source.
        unsafe { self.with_drained_arena(src, |i| self.alloc_in(src, i, layout, true)) }
    }

    #[inline]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        let Some(i) = self.owner_of_live(ptr) else {
            debug_assert!(false, "Arenas::dealloc: {ptr:p} is in no arena");
            return;
        };
        // SAFETY: `ptr` is a live block of arena `i` (caller; `owner_of_live`) for `layout`.
        unsafe { self.dealloc_in(src, ptr, layout, i, None) }
    }
    // ANCHOR_END: arenas_alloc

    /// `alloc_batch` with the sizes from where the blocks came: a parked block's mark, the
    /// arena strategy's `usable_size` (no owner lookup: the batch is one arena's).
    unsafe fn alloc_batch_usable<P: PageSource>(
        &self,
        src: &P,
        layout: Layout,
        out: &mut [NonNull<u8>],
        usable: &mut [usize],
    ) -> usize {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.batch(src, layout, out, Some(usable)) }
    }

    /// The owner map's arena and the arena strategy's usable size.
    #[inline]
    unsafe fn locate(&self, ptr: NonNull<u8>, layout: Layout) -> Found {
        match self.owner_of_live(ptr) {
            Some(i) => {
                // SAFETY: `ptr` is a live block of arena `i` (caller; `owner_of_live`).
                let usable = unsafe { self.arenas[i].strategy.usable_size(ptr, layout) };
                Found { info: BlockInfo { start: ptr.addr().get(), usable, align: layout.align() }, part: i }
            }
            None => Found {
                info: BlockInfo { start: ptr.addr().get(), usable: layout.size(), align: layout.align() },
                part: usize::MAX,
            },
        }
    }

    /// `dealloc` with the arena and the usable size from `locate`: no owner lookup, no second
    /// usable-size lookup; the arena strategy's own `dealloc` (its live check) as ever.
    #[inline]
    unsafe fn dealloc_located<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        found: Option<Found>,
    ) {
        let (i, usable) = match found {
            Some(f) if f.part < N => (f.part, Some(f.info.usable)),
            // Not looked up, or `locate` found no arena: the owner map as `dealloc` asks it.
            _ => match self.owner_of_live(ptr) {
                Some(i) => (i, None),
                None => {
                    debug_assert!(false, "Arenas::dealloc: {ptr:p} is in no arena");
                    return;
                }
            },
        };
        // SAFETY: `ptr` is a live block of arena `i` for `layout` (caller; `owner_of_live`),
        // of `usable` usable bytes when given (caller: `locate`'s answer for it).
        unsafe { self.dealloc_in(src, ptr, layout, i, usable) }
    }

    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let i = self.owner_of_live(ptr)?;
        let _g = self.arenas[i].busy.lock();
        // SAFETY: the lock is held; this heap's source.
        unsafe { self.drain(src, i) };
        // SAFETY: `ptr` is a live block of arena `i` (caller; `owner_of_live`), its own
        // source; the block stays in its arena, moved or not.
        unsafe { self.arenas[i].strategy.realloc(&self.source(src, i), ptr, layout, new_size) }
    }

    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        match self.owner_of_live(ptr) {
            // SAFETY: `ptr` is a live block of arena `i` (caller; `owner_of_live`).
            Some(i) => unsafe { self.arenas[i].strategy.usable_size(ptr, layout) },
            None => layout.size(),
        }
    }

    fn stats(&self) -> StrategyStats {
        let mut t = StrategyStats::default();
        let mut peaks = 0;
        for a in &self.arenas {
            let s = a.strategy.stats();
            // Pending blocks are live to the strategy, free to the user.
            let (n, bytes) = a.remote.pending();
            let (pn, pbytes) = a.parked.totals();
            t.live_bytes += s.live_bytes.saturating_sub(bytes + pbytes);
            t.live_objects += s.live_objects.saturating_sub(n + pn);
            peaks += s.peak_live_bytes;
            t.committed_bytes += s.committed_bytes;
            t.reserved_bytes += s.reserved_bytes;
        }
        // The arenas' peaks fall at different moments: their sum bounds the true peak from
        // above, the live bytes from below.
        t.peak_live_bytes = peaks.max(t.live_bytes);
        t.committed_bytes += self.owners.node_bytes();
        t.reserved_bytes += self.owners.node_bytes();
        t
    }

    #[inline]
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        self.find(ptr).map(|f| f.info)
    }

    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        let i = self.owner_of(ptr.as_ptr()).ok_or(BadFree::Foreign)?;
        // SAFETY: forwarded with the caller's guarantees; `i` is the arena the map names.
        unsafe { self.free_in(src, ptr, i) }
    }

    /// The owner map's arena (one guarded lookup) and that arena's `block_of`; a pending
    /// block is free to the user.
    #[inline]
    fn find(&self, ptr: *const u8) -> Option<Found> {
        // A live block's granule names its arena; any other pointer gets `None` from the
        // arena named (or from none).
        let i = self.owner_of(ptr)?;
        let info = self.arenas[i].strategy.block_of(ptr)?;
        // SAFETY: the start of a live inner block that fits the stack (just checked).
        let pending = remote::fits(info.start, info.usable)
            && unsafe { remote::is_pending(NonNull::new_unchecked(ptr.cast_mut()), info.usable) };
        (!pending).then_some(Found { info, part: i })
    }

    /// `free` in the arena `find` named: no second owner lookup. The arena's own lookup
    /// (under its lock, after its drain) is kept: `find` ran without the lock, and a drain
    /// since may have freed the block into the strategy (a double free whose first free was
    /// still pending), which only a lookup under the lock sees.
    #[inline]
    unsafe fn free_found<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        part: usize,
    ) -> Result<usize, BadFree> {
        if part >= N {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { self.free(src, ptr) };
        }
        // SAFETY: forwarded with the caller's guarantees; `part` is an arena (just checked).
        unsafe { self.free_in(src, ptr, part) }
    }
    /// One lock acquisition per run of consecutive blocks of the same arena.
    unsafe fn free_batch<P: PageSource>(&self, src: &P, blocks: &[NonNull<u8>]) -> usize {
        let mut n = 0;
        let mut rest = blocks;
        while let Some((&first, _)) = rest.split_first() {
            // Unguarded lookups: every block is live (caller), so its leaf stays linked.
            let Some(i) = self.owner_of_block(first) else {
                // SAFETY: forwarded: a pointer in no arena is refused, changing nothing.
                n += usize::from(unsafe { self.free(src, first) }.is_ok());
                rest = &rest[1..];
                continue;
            };
            let run = 1 + rest[1..].iter().take_while(|&&p| self.owner_of_block(p) == Some(i)).count();
            let _g = self.arenas[i].busy.lock();
            // SAFETY: the lock is held; this heap's source.
            unsafe { self.drain(src, i) };
            // SAFETY: forwarded with the caller's guarantees to the arena whose range holds
            // each block of the run (as `free`), under its lock.
            n += unsafe { self.arenas[i].strategy.free_batch(&self.source(src, i), &rest[..run]) };
            rest = &rest[run..];
        }
        n
    }

    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        for (i, a) in self.arenas.iter().enumerate() {
            // SAFETY: forwarded with the caller's guarantees (no other thread uses the
            // strategy); arena `i`'s own source.
            unsafe { a.strategy.release_all(&self.source(src, i)) };
            // Pending and parked blocks were live inner blocks: released with the rest.
            a.remote.clear();
            // SAFETY: no other thread uses the strategy (caller).
            unsafe { a.parked.clear() };
        }
        // SAFETY: no other thread uses the strategy (caller); the nodes came from `src`.
        unsafe { self.owners.release(src) };
        self.next.store(0, Ordering::Relaxed);
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        for (i, a) in self.arenas.iter().enumerate() {
            // SAFETY: forwarded with the caller's guarantees; arena `i`'s own source.
            unsafe { a.strategy.check(&self.source(src, i)) }?;
            // Pending and parked blocks alike: live blocks of this arena's strategy, of the
            // usable size recorded with them; `bad` names the first that is not.
            let bad = core::cell::Cell::new(0);
            let held_here = |b: NonNull<u8>, usable: usize| {
                let ok = self.owner_of(b.as_ptr()) == Some(i)
                    && a.strategy.block_of(b.as_ptr()).is_some_and(|info| info.usable == usable);
                if !ok {
                    bad.set(b.addr().get());
                }
                ok
            };
            // SAFETY: no other thread uses the strategy (caller); blocks were pushed by
            // `dealloc`.
            unsafe { a.remote.walk(held_here) }.map_err(|what| CheckError {
                what,
                addr: bad.get(),
                detail: i,
            })?;
            // SAFETY: no other thread uses the strategy (caller).
            unsafe { a.parked.walk(held_here) }.map_err(|what| CheckError {
                what,
                addr: bad.get(),
                detail: i,
            })?;
            if a.busy.try_lock().is_none() {
                return Err(CheckError {
                    what: "arena lock free when no call is in flight",
                    addr: 0,
                    detail: i,
                });
            }
        }
        // SAFETY: no other thread uses the strategy (caller).
        unsafe { self.owners.check::<P>(N) }
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        let mut n = 0;
        for (i, a) in self.arenas.iter().enumerate() {
            let _g = a.busy.lock();
            // SAFETY: the lock is held; forwarded with the caller's guarantees; arena `i`'s
            // own source.
            n += unsafe {
                self.drain(src, i);
                self.unpark(src, i);
                a.strategy.trim(&self.source(src, i))
            };
        }
        n + self.owners.release_spares(src)
    }

    /// Every arena's lock in index order, then each inner strategy's locks in index order.
    fn fork_prepare(&self) {
        for a in &self.arenas {
            a.busy.lock_held();
        }
        for a in &self.arenas {
            a.strategy.fork_prepare();
        }
    }

    unsafe fn fork_parent(&self) {
        // SAFETY: this thread took every lock in `fork_prepare` (caller), without guards.
        unsafe {
            for a in &self.arenas {
                a.strategy.fork_parent();
                a.busy.force_unlock();
            }
        }
    }

    unsafe fn fork_child(&self) {
        // SAFETY: the child's only thread took every lock in `fork_prepare` (caller).
        unsafe {
            for a in &self.arenas {
                a.strategy.fork_child();
                // A push in flight when the parent forked may have linked its block and not
                // yet counted its bytes: count them again (this is the only thread now).
                a.remote.recount();
                a.busy.force_unlock();
            }
        }
        #[cfg(feature = "std")]
        claims_after_fork();
    }
}
