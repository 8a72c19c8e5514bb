//! The owner map of [`Arenas`](super::Arenas): which arena made each 4 KiB granule of address
//! space Ready, a three-level radix tree read without locks (like Go's arena index
//! `mheap.arenas`, at page granularity). See `layers/mod.rs` for the overview.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

use crate::source::{PageSource, SourceError};
use crate::strategy::CheckError;
use crate::sync::SpinLock;

/// log2 of the granule: every range a page source hands out is a multiple of it (sources
/// with smaller pages cannot be used under `Arenas`, which `Arenas` checks at compile time).
pub const GRANULE_SHIFT: u32 = 12;
/// Bytes of one granule.
pub const GRANULE_BYTES: usize = 1 << GRANULE_SHIFT;
/// Address bits the map covers (user space of x86-64 and AArch64 with 4-level tables);
/// ranges above are refused by the arenas' source.
pub const ADDR_BITS: u32 = 48;
const LEVEL_BITS: u32 = 12;
const FANOUT: usize = 1 << LEVEL_BITS;
const _: () = assert!(GRANULE_SHIFT + 3 * LEVEL_BITS == ADDR_BITS);

/// A leaf: one byte per granule, 0 for "no arena" and `i + 1` for arena `i`.
/// Invariant: `set == number of non-zero owner bytes` (changed under the map's lock).
struct Leaf {
    owner: [AtomicU8; FANOUT],
    set: usize,
    /// Next spare leaf (under the map's lock).
    next_spare: *mut Leaf,
}

/// An interior node: the leaves of `FANOUT` consecutive runs of `FANOUT` granules.
struct Mid {
    leaf: [AtomicPtr<Leaf>; FANOUT],
}

/// The root: the interior nodes.
struct Root {
    mid: [AtomicPtr<Mid>; FANOUT],
}

/// Granule -> arena. Nodes come from the page source (zeroed `alloc_ready` ranges, which
/// read as null pointers and "no arena") and are published with Release stores. Readers
/// take no lock; writers (`record`, `clear`: page-source transitions, rare) take `lock`.
/// A leaf whose granules are all cleared is unlinked onto the spare list and reused for
/// another part of the address space: a reader holding a stale pointer to it still reads
/// valid memory, and at worst gets a wrong arena for a pointer that is no live block, which
/// that arena's lookup refuses. (A live block's leaf has its granule set, so it is never
/// unlinked under it: lookups of live blocks need no guard.) Spare leaves go back to the
/// source in [`release_spares`](Self::release_spares) (the arenas' `trim`) when no lookup
/// of an arbitrary pointer is in flight (`owner_guarded`'s striped reader count).
///
/// Invariants: every node reachable from `root` or on the spare list is a Ready range of
/// the source of its own size; `node_bytes == Σ node sizes`; every leaf byte is 0 or at
/// most the arena count.
pub struct OwnerMap {
    root: AtomicPtr<Root>,
    node_bytes: AtomicUsize,
    /// Serialises writers; holds the spare leaves.
    lock: SpinLock<Spares>,
    /// Lookups of arbitrary pointers in flight ([`owner_guarded`](Self::owner_guarded)),
    /// striped by stack address: `release_spares` frees spare leaves only when it finds
    /// every stripe at zero.
    readers: [Stripe; STRIPES],
}

/// Stripes of the reader count.
const STRIPES: usize = 16;

/// One stripe of the reader count, on its own cache line.
#[repr(align(64))]
struct Stripe(AtomicUsize);

/// The spare leaves (all bytes 0), linked through `next_spare`.
struct Spares(*mut Leaf);
// SAFETY: the leaves live in page-source memory tied to no thread.
unsafe impl Send for Spares {}

impl OwnerMap {
    /// An empty map; does no work.
    pub const fn new() -> Self {
        OwnerMap {
            root: AtomicPtr::new(ptr::null_mut()),
            node_bytes: AtomicUsize::new(0),
            lock: SpinLock::new(Spares(ptr::null_mut())),
            readers: [const { Stripe(AtomicUsize::new(0)) }; STRIPES],
        }
    }

    /// [`owner`](Self::owner) for a pointer that may be no live block (a lookup or a free by
    /// address): counted as a reader, so that `release_spares` does not free a leaf it may
    /// still be reading.
    #[inline]
    pub fn owner_guarded(&self, addr: usize) -> Option<usize> {
        let here = 0u8;
        let stripe = &self.readers[((&raw const here).addr() >> 12) % STRIPES].0;
        // SeqCst pairs with `release_spares`: either this increment comes first in the single
        // total order, and `release_spares` sees the reader and frees nothing, or the
        // unlinking store of a spare leaf comes first, and this lookup cannot reach it.
        stripe.fetch_add(1, Ordering::SeqCst);
        let r = self.owner_sc(addr);
        stripe.fetch_sub(1, Ordering::Release);
        r
    }

    /// `owner` with the leaf pointer loaded SeqCst (see `owner_guarded`).
    #[inline]
    fn owner_sc(&self, addr: usize) -> Option<usize> {
        if addr >> ADDR_BITS != 0 {
            return None;
        }
        let (r, m, l) = split(addr);
        let root = NonNull::new(self.root.load(Ordering::Acquire))?;
        // SAFETY: a published root and interior node stay valid until `release`; a leaf
        // reached here is not freed before this lookup's reader count drops
        // (`release_spares`).
        let mid = NonNull::new(unsafe { root.as_ref() }.mid[r].load(Ordering::Acquire))?;
        // SAFETY: as above.
        let leaf = NonNull::new(unsafe { mid.as_ref() }.leaf[m].load(Ordering::SeqCst))?;
        // SAFETY: as above.
        let owner = unsafe { leaf.as_ref() }.owner[l].load(Ordering::Relaxed);
        (owner as usize).checked_sub(1)
    }

    /// Gives the spare leaves back to `src` when no guarded lookup is in flight; returns
    /// the bytes given back.
    pub fn release_spares<P: PageSource>(&self, src: &P) -> usize {
        let mut spares = self.lock.lock();
        if spares.0.is_null() || self.readers.iter().any(|s| s.0.load(Ordering::SeqCst) != 0) {
            return 0;
        }
        // Every spare was unlinked (SeqCst store, under this lock) before this point, and no
        // guarded lookup that could have loaded it is in flight; unguarded lookups are of
        // live blocks, whose leaves are linked.
        let mut bytes = 0;
        while let Some(leaf) = NonNull::new(spares.0) {
            // SAFETY: spare leaves are valid, ours under the lock, and unreachable.
            unsafe {
                spares.0 = (*leaf.as_ptr()).next_spare;
                let _ = src.free(leaf.cast(), node_bytes::<P, Leaf>());
            }
            bytes += node_bytes::<P, Leaf>();
        }
        self.node_bytes.fetch_sub(bytes, Ordering::Relaxed);
        bytes
    }

    /// Bytes of the source the nodes hold (Ready, reserved).
    pub fn node_bytes(&self) -> usize {
        self.node_bytes.load(Ordering::Relaxed)
    }

    /// The arena (0-based) recorded for the granule of `addr`, if any. Lock-free.
    #[inline]
    pub fn owner(&self, addr: usize) -> Option<usize> {
        if addr >> ADDR_BITS != 0 {
            return None;
        }
        let (r, m, l) = split(addr);
        // Acquire pairs with the Release of `install`, so the node's zeroed contents (or
        // the values written since) are visible.
        let root = NonNull::new(self.root.load(Ordering::Acquire))?;
        // SAFETY: a published node stays valid until `release`, which the strategy contract
        // runs with no other call in flight (invariant on `OwnerMap`).
        let mid = NonNull::new(unsafe { root.as_ref() }.mid[r].load(Ordering::Acquire))?;
        // SAFETY: as above.
        let leaf = NonNull::new(unsafe { mid.as_ref() }.leaf[m].load(Ordering::Acquire))?;
        // SAFETY: as above.
        let owner = unsafe { leaf.as_ref() }.owner[l].load(Ordering::Relaxed);
        (owner as usize).checked_sub(1)
    }

    /// Records arena `arena` for every granule of `base..base + bytes`. Fails, changing no
    /// owner, when the range passes [`ADDR_BITS`]; fails part way (the recorded prefix is
    /// harmless: owners are hints the arena confirms) when a node cannot be had.
    pub fn record<P: PageSource>(
        &self,
        src: &P,
        base: usize,
        bytes: usize,
        arena: u8,
    ) -> Result<(), SourceError> {
        let end = base.checked_add(bytes).filter(|e| e >> ADDR_BITS == 0);
        let Some(end) = end else {
            return Err(SourceError::Invalid { op: crate::Op::Used, addr: base, bytes });
        };
        let mut spares = self.lock.lock();
        let mut addr = base;
        while addr < end {
            let (r, m, l) = split(addr);
            let root = self.node(src, &self.root)?;
            // SAFETY: published nodes stay valid until `release` (invariant).
            let mid = self.node(src, &unsafe { root.as_ref() }.mid[r])?;
            // SAFETY: as above.
            let slot = &unsafe { mid.as_ref() }.leaf[m];
            let leaf = match NonNull::new(slot.load(Ordering::Acquire)) {
                Some(leaf) => leaf,
                None => self.spare_leaf(&mut spares, slot).map_or_else(|| self.node(src, slot), Ok)?,
            };
            let run = (FANOUT - l).min((end - addr) >> GRANULE_SHIFT);
            // SAFETY: published leaves stay valid until `release`; the lock is held, so this
            // thread alone writes `set`.
            let leaf = unsafe { &mut *leaf.as_ptr() };
            for o in &leaf.owner[l..l + run] {
                if o.swap(arena + 1, Ordering::Relaxed) == 0 {
                    leaf.set += 1;
                }
            }
            addr += run << GRANULE_SHIFT;
        }
        Ok(())
    }

    /// Links a spare leaf into `slot` (null), if there is one.
    fn spare_leaf(&self, spares: &mut Spares, slot: &AtomicPtr<Leaf>) -> Option<NonNull<Leaf>> {
        let leaf = NonNull::new(spares.0)?;
        // SAFETY: spare leaves are valid, all-zero, and ours under the lock.
        spares.0 = unsafe { (*leaf.as_ptr()).next_spare };
        slot.store(leaf.as_ptr(), Ordering::Release);
        Some(leaf)
    }

    /// Forgets the owner of every granule of `base..base + bytes` (the range went back to
    /// the source); leaves left empty go to the spare list.
    pub fn clear(&self, base: usize, bytes: usize) {
        let Some(root) = NonNull::new(self.root.load(Ordering::Acquire)) else { return };
        let end = base.saturating_add(bytes).min(1 << ADDR_BITS);
        let mut spares = self.lock.lock();
        let mut addr = base;
        while addr < end {
            let (r, m, l) = split(addr);
            let run = (FANOUT - l).min((end - addr).div_ceil(GRANULE_BYTES));
            // SAFETY: published nodes stay valid until `release` (invariant).
            let mid = unsafe { root.as_ref() }.mid[r].load(Ordering::Acquire);
            let slot = NonNull::new(mid).map(|mid| {
                // SAFETY: as above.
                &unsafe { &*mid.as_ptr() }.leaf[m]
            });
            if let Some(slot) = slot
                && let Some(leaf) = NonNull::new(slot.load(Ordering::Acquire))
            {
                // SAFETY: as above; the lock is held, so this thread alone writes `set`.
                let leaf = unsafe { &mut *leaf.as_ptr() };
                for o in &leaf.owner[l..l + run] {
                    if o.swap(0, Ordering::Relaxed) != 0 {
                        leaf.set -= 1;
                    }
                }
                if leaf.set == 0 {
                    // SeqCst: see `owner_guarded`.
                    slot.store(ptr::null_mut(), Ordering::SeqCst);
                    leaf.next_spare = spares.0;
                    spares.0 = leaf;
                }
            }
            addr += run << GRANULE_SHIFT;
        }
    }

    /// The node `slot` points to, made and published if it is still null.
    fn node<P: PageSource, T>(&self, src: &P, slot: &AtomicPtr<T>) -> Result<NonNull<T>, SourceError> {
        if let Some(n) = NonNull::new(slot.load(Ordering::Acquire)) {
            return Ok(n);
        }
        self.install(src, slot)
    }

    #[cold]
    fn install<P: PageSource, T>(&self, src: &P, slot: &AtomicPtr<T>) -> Result<NonNull<T>, SourceError> {
        let bytes = node_bytes::<P, T>();
        let fresh = src.alloc_ready(bytes, GRANULE_BYTES)?;
        if !P::FRESH_ZEROED {
            // SAFETY: a fresh Ready range of `bytes` bytes, ours alone.
            unsafe { ptr::write_bytes(fresh.as_ptr(), 0, bytes) };
        }
        let fresh = fresh.cast::<T>();
        // Release publishes the zeroed contents with the pointer.
        match slot.compare_exchange(ptr::null_mut(), fresh.as_ptr(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.node_bytes.fetch_add(bytes, Ordering::Relaxed);
                Ok(fresh)
            }
            Err(won) => {
                // Another arena published first: give ours back, use theirs.
                // SAFETY: our range was never published; nothing else saw it.
                let _ = unsafe { src.free(fresh.cast(), bytes) };
                // SAFETY: `won` is non-null (the exchange failed on it).
                Ok(unsafe { NonNull::new_unchecked(won) })
            }
        }
    }

    /// Gives every node back to `src` and empties the map.
    ///
    /// # Safety
    /// No other thread uses the map during the call; `src` is the one the nodes came from.
    pub unsafe fn release<P: PageSource>(&self, src: &P) {
        let mut spares = self.lock.lock();
        while let Some(leaf) = NonNull::new(spares.0) {
            // SAFETY: spare leaves are valid and ours; no reader exists (caller).
            unsafe {
                spares.0 = (*leaf.as_ptr()).next_spare;
                let _ = src.free(leaf.cast(), node_bytes::<P, Leaf>());
            }
        }
        drop(spares);
        let Some(root) = NonNull::new(self.root.swap(ptr::null_mut(), Ordering::Acquire)) else { return };
        // SAFETY: the nodes are live until freed here; no other thread uses the map (caller).
        unsafe {
            for m in &root.as_ref().mid {
                let Some(mid) = NonNull::new(m.load(Ordering::Relaxed)) else { continue };
                for l in &mid.as_ref().leaf {
                    if let Some(leaf) = NonNull::new(l.load(Ordering::Relaxed)) {
                        let _ = src.free(leaf.cast(), node_bytes::<P, Leaf>());
                    }
                }
                let _ = src.free(mid.cast(), node_bytes::<P, Mid>());
            }
            let _ = src.free(root.cast(), node_bytes::<P, Root>());
        }
        self.node_bytes.store(0, Ordering::Relaxed);
    }

    /// Checks the invariants: every leaf byte names an arena below `arenas`, and the nodes
    /// add up to `node_bytes`.
    ///
    /// # Safety
    /// No other thread changes the map during the call.
    pub unsafe fn check<P: PageSource>(&self, arenas: usize) -> Result<(), CheckError> {
        let Some(root) = NonNull::new(self.root.load(Ordering::Acquire)) else {
            return match self.node_bytes() {
                0 => Ok(()),
                n => Err(CheckError { what: "empty owner map holds no node bytes", addr: 0, detail: n }),
            };
        };
        let mut bytes = node_bytes::<P, Root>();
        // SAFETY: published nodes are valid until `release` (invariant); no writer (caller).
        unsafe {
            for m in &root.as_ref().mid {
                let Some(mid) = NonNull::new(m.load(Ordering::Acquire)) else { continue };
                bytes += node_bytes::<P, Mid>();
                for l in &mid.as_ref().leaf {
                    let Some(leaf) = NonNull::new(l.load(Ordering::Acquire)) else { continue };
                    bytes += node_bytes::<P, Leaf>();
                    let set = leaf.as_ref().owner.iter().filter(|o| o.load(Ordering::Relaxed) != 0).count();
                    if set != leaf.as_ref().set || set == 0 {
                        return Err(CheckError {
                            what: "owner map leaf: set == non-zero bytes > 0",
                            addr: leaf.as_ptr().addr(),
                            detail: set,
                        });
                    }
                    if let Some(bad) =
                        leaf.as_ref().owner.iter().find(|o| o.load(Ordering::Relaxed) as usize > arenas)
                    {
                        return Err(CheckError {
                            what: "owner map names an arena that does not exist",
                            addr: leaf.as_ptr().addr(),
                            detail: bad.load(Ordering::Relaxed) as usize,
                        });
                    }
                }
            }
        }
        let mut spare = self.lock.lock().0;
        while let Some(leaf) = NonNull::new(spare) {
            bytes += node_bytes::<P, Leaf>();
            // SAFETY: spare leaves are valid; no writer (caller).
            spare = unsafe { (*leaf.as_ptr()).next_spare };
        }
        if bytes != self.node_bytes() {
            return Err(CheckError {
                what: "owner map: node_bytes == Σ node sizes",
                addr: root.as_ptr().addr(),
                detail: bytes,
            });
        }
        Ok(())
    }
}

/// The three indexes of the granule of `addr` (below `1 << ADDR_BITS`).
#[inline(always)]
fn split(addr: usize) -> (usize, usize, usize) {
    let g = addr >> GRANULE_SHIFT;
    (g >> (2 * LEVEL_BITS), (g >> LEVEL_BITS) & (FANOUT - 1), g & (FANOUT - 1))
}

/// A node's size rounded up to the source's pages.
fn node_bytes<P: PageSource, T>() -> usize {
    size_of::<T>().div_ceil(P::PAGE_BYTES) * P::PAGE_BYTES
}
