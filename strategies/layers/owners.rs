//! The owner map of [`Arenas`](super::Arenas): which arena made each 4 KiB granule of address
//! space Ready, a three-level radix tree read without locks (like Go's arena index
//! `mheap.arenas`, at page granularity). See `layers/mod.rs` for the overview.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

use crate::source::{PageSource, SourceError};
use crate::strategy::CheckError;

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
struct Leaf {
    owner: [AtomicU8; FANOUT],
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
/// read as null pointers and "no arena"), are published with a compare-and-swap and never
/// moved or freed before [`release`](Self::release), so a reader follows pointers without
/// a lock.
///
/// Invariants: every node reachable from `root` is a Ready range of the source of its own
/// size; `node_bytes == Σ node sizes`; every leaf byte is 0 or at most the arena count.
pub struct OwnerMap {
    root: AtomicPtr<Root>,
    node_bytes: AtomicUsize,
}

impl OwnerMap {
    /// An empty map; does no work.
    pub const INIT: Self = OwnerMap { root: AtomicPtr::new(ptr::null_mut()), node_bytes: AtomicUsize::new(0) };

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
    pub fn record<P: PageSource>(&self, src: &P, base: usize, bytes: usize, arena: u8) -> Result<(), SourceError> {
        let end = base.checked_add(bytes).filter(|e| e >> ADDR_BITS == 0);
        let Some(end) = end else {
            return Err(SourceError::Invalid { op: crate::Op::Used, addr: base, bytes });
        };
        let mut addr = base;
        while addr < end {
            let (r, m, l) = split(addr);
            let root = self.node(src, &self.root)?;
            // SAFETY: published nodes stay valid until `release` (invariant).
            let mid = self.node(src, &unsafe { root.as_ref() }.mid[r])?;
            // SAFETY: as above.
            let leaf = self.node(src, &unsafe { mid.as_ref() }.leaf[m])?;
            let run = (FANOUT - l).min((end - addr) >> GRANULE_SHIFT);
            // SAFETY: as above.
            for o in &unsafe { leaf.as_ref() }.owner[l..l + run] {
                o.store(arena + 1, Ordering::Relaxed);
            }
            addr += run << GRANULE_SHIFT;
        }
        Ok(())
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
                    if let Some(bad) = leaf.as_ref().owner.iter().find(|o| o.load(Ordering::Relaxed) as usize > arenas) {
                        return Err(CheckError {
                            what: "owner map names an arena that does not exist",
                            addr: leaf.as_ptr().addr(),
                            detail: bad.load(Ordering::Relaxed) as usize,
                        });
                    }
                }
            }
        }
        if bytes != self.node_bytes() {
            return Err(CheckError { what: "owner map: node_bytes == Σ node sizes", addr: root.as_ptr().addr(), detail: bytes });
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
