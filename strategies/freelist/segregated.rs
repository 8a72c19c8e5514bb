//! Segregated fit: one free list per size class and a bitmap of the non-empty classes.
//!
//! # Design
//! - *class*: a range of block sizes ([`Classes`]). [`DefaultClasses`]: one class per
//!   16-byte step below 1 KiB (small blocks get an exact fit), then sixteen classes per
//!   power of two (at most 6.25% internal spread), the last class taking everything from
//!   4.75 MiB. Sixteen rather than four: a request above 1 KiB takes a block of the next
//!   class up, so the spread is what such a request may leave unused or split off; with
//!   four, the churn benchmark's heap was bigger (figures in `benches/README.md`).
//! - *bitmap*: bit `c` is set exactly when list `c` is non-empty, so the first non-empty
//!   class at or above a class is found with a count of trailing zeros: O(1).
//!
//! Allocation: with `need` in class `f` (`class_min(f) <= need`), every block of a class
//! `c > f` is big enough, and so is every block of `f` itself when `class_min(f) == need`.
//! Take the head of the first non-empty such class (O(1)). If there is none, walk list `f`
//! for a block `>= need` before growing. Alignments above 16 bytes test the first few blocks
//! (`ALIGNED_PROBES`, most recently freed first) of the classes from `f` up to the first
//! class whose every block fits at any address (`need + MIN_BLOCK_BYTES + align - 16` bytes:
//! room for the largest gap below an aligned start), then take that class's head, O(1);
//! only when no such class has a block do they walk every list from `f` upward. A walk of
//! whole lists came first: classes full of blocks of the right size at the wrong addresses
//! made it most of the time of the preload's threaded C++ program (`benches/README.md`).
//!
//! Free: a block (and a split remainder) goes to the head of its own class's list.
//!
//! Cost per operation (the churn benchmark's hot path): one class computation, a bitmap
//! word scan, the list head, and the node's links; no search within a class (every block
//! of the chosen class fits), and no branch on whether a list or a neighbour node exists
//! when linking (a spare word absorbs the write to a missing neighbour, since whether a
//! class is empty is as unpredictable as the request sizes). Taking a list's head (every
//! allocation of the fast path) writes the list head and the bitmap but no node: the head's
//! `prev` link is left unspecified. A block that stays in its class when it grows or shrinks
//! keeps its place in the list. The O(1) search is [`Policy::find`](super::engine::Policy::find), inlined in the
//! allocation path; the walk of a class, for alignments above 16 bytes or when no class
//! above the request's has a block, is [`Policy::find_rest`](super::engine::Policy::find_rest), out of line.
//!
//! Invariants (checked by `check`): every block of list `c` has `class_of(size) == c`;
//! `node.prev` links are the reverse of `node.next` (but the head's `prev`, which is
//! unspecified: a block is the head when `heads[c]` names it); `bitmap bit c == (head[c]
//! != null)`; `Σ list lengths == #free blocks`; `node.class == c`. The lists keep no length
//! of their own (one counter update less per list change): the core's checker compares the
//! walked count with its own count of free blocks and stops a cycle at the first block seen
//! twice.

use core::marker::PhantomData;
use core::mem::offset_of;
use core::ptr;

use super::block::{BLOCK_ALIGN, Block, HEADER_BYTES, MIN_BLOCK_BYTES, NODE_BYTES};
use super::engine::{FreeIndex, Policy, fit_start};
use crate::strategy::CheckError;

/// Blocks an over-aligned request tests for an aligned start in the classes where a block
/// may or may not fit, before it takes a block of a class where every block fits
/// (`SegLists::find_aligned`).
const ALIGNED_PROBES: usize = 8;

/// Most classes a [`Classes`] table may have (the bits of the bitmap).
pub const MAX_CLASSES: usize = 256;
const BITMAP_WORDS: usize = MAX_CLASSES / 64;

/// A table of size classes for [`SegregatedFit`](super::SegregatedFit).
///
/// # Safety
/// Segregated fit hands out the first block of a class without looking at its size, so a
/// wrong table hands out blocks too small for the request. *Implementors must guarantee*:
/// `0 < COUNT <= MAX_CLASSES` (checked at compile time); `class_of` is monotone, maps every
/// block size to `0..COUNT`, and `class_min(class_of(s)) <= s`; `class_min` is strictly
/// increasing with `class_min(0) <= MIN_BLOCK_BYTES`; `class_ceil`, if overridden, returns
/// what the provided method returns.
pub unsafe trait Classes: Send + 'static {
    /// Number of classes.
    const COUNT: usize;
    /// The class holding blocks of `size` bytes.
    fn class_of(size: usize) -> usize;
    /// The smallest block size of `class`.
    fn class_min(class: usize) -> usize;

    /// The first class whose every block holds `need` bytes: `need`'s own class if it
    /// starts at `need`, else the next one (may be `COUNT`: none).
    #[inline]
    fn class_ceil(need: usize) -> usize {
        let f = Self::class_of(need);
        if Self::class_min(f) >= need { f } else { f + 1 }
    }
}

/// Exact 16-byte classes below 1 KiB, then sixteen classes per power of two; 256 classes.
pub struct DefaultClasses;

/// Classes of [`DefaultClasses`] below 1 KiB, one per 16 bytes from `MIN_BLOCK_BYTES`.
const EXACT_CLASSES: usize = (1024 - MIN_BLOCK_BYTES) / BLOCK_ALIGN;
/// Classes of [`DefaultClasses`] per power of two from 1 KiB: `SUBS == 1 << SUB_BITS`.
const SUB_BITS: usize = 4;
/// See [`SUB_BITS`].
const SUBS: usize = 1 << SUB_BITS;

// ANCHOR: seg_classes
// SAFETY: `COUNT == MAX_CLASSES`. Below 1 KiB, `class_of` is `(size - MIN_BLOCK_BYTES) / 16`,
// at most `EXACT_CLASSES - 1`, and `class_min(c) == MIN_BLOCK_BYTES + 16 c` is the least size
// of class `c`; from
// 1 KiB each power of two `2^k` is cut into `SUBS` equal steps, `class_of` names the step
// (capped at `COUNT - 1`, which only merges the top sizes into the last class) and
// `class_min` its first size, so `class_of` is monotone, `class_min(class_of(s)) <= s` and
// `class_min` increases. `class_ceil`'s shortcut below 1 KiB is
// `ceil((need - MIN_BLOCK_BYTES) / 16)`, the first `c` with `MIN_BLOCK_BYTES + 16 c >= need`,
// i.e. the provided method's answer. The test
// `default_classes_keep_the_contract` checks all of it.
unsafe impl Classes for DefaultClasses {
    const COUNT: usize = MAX_CLASSES;

    #[inline]
    fn class_of(size: usize) -> usize {
        if size < 1024 {
            return size.saturating_sub(MIN_BLOCK_BYTES) / BLOCK_ALIGN;
        }
        let k = (usize::BITS - 1 - size.leading_zeros()) as usize;
        let sub = (size >> (k - SUB_BITS)) & (SUBS - 1);
        (EXACT_CLASSES + (k - 10) * SUBS + sub).min(Self::COUNT - 1)
    }

    /// The exact classes first, by one division: `class_min(c) == MIN_BLOCK_BYTES + 16 c`
    /// up to `class_min(EXACT_CLASSES) == 1024`, so the ceiling is
    /// `ceil((need - MIN_BLOCK_BYTES) / 16)`.
    #[inline]
    fn class_ceil(need: usize) -> usize {
        if need <= 1024 {
            return need.saturating_sub(MIN_BLOCK_BYTES - (BLOCK_ALIGN - 1)) / BLOCK_ALIGN;
        }
        let f = Self::class_of(need);
        if Self::class_min(f) >= need { f } else { f + 1 }
    }

    #[inline]
    fn class_min(class: usize) -> usize {
        if class < EXACT_CLASSES {
            return MIN_BLOCK_BYTES + class * BLOCK_ALIGN;
        }
        let (k, sub) = (10 + (class - EXACT_CLASSES) / SUBS, (class - EXACT_CLASSES) % SUBS);
        (1 << k) + sub * (1 << (k - SUB_BITS))
    }
}
// ANCHOR_END: seg_classes

/// The list node kept in a free block's node area (the rest of `NODE_BYTES` is unused).
///
/// `class == class_of(block size)`, the list the block is in: kept so that taking a block
/// out of its list (on every allocation and most frees) reads the class from the node,
/// whose cache line is loaded for the links anyway, instead of computing it again from the
/// size (a branch on the size that mispredicts often).
///
/// `prev` is the block before this one in its list, except for the head (`heads[class] ==
/// this block`), whose `prev` is unspecified: taking the head out (every allocation of the
/// fast path) then writes only `heads[class]`, not the new head's node. A block is
/// the head exactly when `heads[class]` names it, which `unlink` tests.
///
/// Field order: `next` and `class`, which every allocation of the fast path reads and every
/// free writes, come first, in the two words after the header, so that they share the
/// header's cache line unless the header is its line's last word (a quarter of the blocks:
/// headers lie 8 bytes below a 16-byte boundary); `prev`, needed only to take a block out
/// from inside its list, comes last. With `prev` first, half the nodes reached into the
/// next line (churn: 4.93 -> 4.75 L1 and 1.15 -> 1.07 simulated 1 MiB L2 misses per
/// replacement).
#[repr(C)]
#[derive(Copy, Clone)]
struct Link {
    next: *mut u8,
    class: usize,
    prev: *mut u8,
}

const _: () = assert!(size_of::<Link>() <= NODE_BYTES);

#[inline]
fn link(b: *mut u8) -> *mut Link {
    // SAFETY: callers pass block headers (non-null); the node follows the header.
    unsafe { Block::at(b) }.node::<Link>()
}

// ANCHOR: first_set_from
/// The first set bit at or above bit `from` of a bitmap of 64-bit words (`None` if none,
/// or if `from` lies past the end): a shift and a count of trailing zeros in the first word,
/// then the first non-zero word above. Segregated fit's classes and best fit's bins
/// (`bins.rs`) find their first non-empty list with it.
#[inline]
pub(super) fn first_set_from(words: &[u64], from: usize) -> Option<usize> {
    let w = from / 64;
    let bits = *words.get(w)? >> (from % 64);
    if bits != 0 {
        return Some(from + bits.trailing_zeros() as usize);
    }
    // The words above `w` (three at most with 256 classes).
    let rest = words.get(w + 1..)?;
    let (k, &bits) = rest.iter().enumerate().find(|&(_, &b)| b != 0)?;
    Some((w + 1 + k) * 64 + bits.trailing_zeros() as usize)
}
// ANCHOR_END: first_set_from

/// The index of segregated fit: per-class doubly linked lists (LIFO) and their bitmap.
pub struct SegLists<C> {
    heads: [*mut u8; MAX_CLASSES],
    /// Bit `c % 64` of word `c / 64` is set `== (heads[c] != null)`; bits of classes
    /// `>= C::COUNT` are clear.
    bitmap: [u64; BITMAP_WORDS],
    /// Absorbs the link write meant for the old head when a list was empty, so that a push
    /// needs no branch on it (whether a class is empty is as unpredictable as the sizes);
    /// never read.
    spare: *mut u8,
    _classes: PhantomData<C>,
}

// SAFETY: the pointers name free blocks of the one heap that owns this index, whose nodes
// only the index reads and writes, and only through `&mut self` or `&self` of the index;
// nothing is tied to a thread, so moving the index moves that exclusive access with it.
unsafe impl<C> Send for SegLists<C> {}

impl<C: Classes> SegLists<C> {
    /// Refuses an invalid class table at compile time.
    const VALID: () = assert!(C::COUNT > 0 && C::COUNT <= MAX_CLASSES, "1..=MAX_CLASSES classes");

    // ANCHOR: seg_first_class
    /// The first non-empty class at or above `from`.
    #[inline]
    fn first_class_from(&self, from: usize) -> Option<usize> {
        first_set_from(&self.bitmap, from)
    }
    // ANCHOR_END: seg_first_class

    /// The `prev` field of listed block `b`'s node, or the spare word if `b` is null.
    #[inline]
    fn prev_field(&mut self, b: *mut u8) -> *mut *mut u8 {
        let field = b.wrapping_add(HEADER_BYTES + offset_of!(Link, prev)).cast();
        core::hint::select_unpredictable(b.is_null(), &raw mut self.spare, field)
    }

    /// Puts free block `b` at the head of list `c`.
    ///
    /// # Safety
    /// `b` is a free block not listed, of class `c`.
    #[inline]
    unsafe fn push(&mut self, b: Block, c: usize) {
        let head = self.heads[c];
        // SAFETY: `b` is a free block not listed (its node is ours), `head` null or listed.
        unsafe {
            // The head's `prev` is left as it is (unspecified).
            let l = link(b.ptr());
            (*l).next = head;
            (*l).class = c;
            self.prev_field(head).write(b.ptr());
        }
        self.heads[c] = b.ptr();
        self.bitmap[c / 64] |= 1 << (c % 64);
    }

    /// Takes listed block `b` out of its list (the class its node names).
    ///
    /// # Safety
    /// `b` is listed.
    #[inline]
    unsafe fn unlink(&mut self, b: Block) {
        // SAFETY: `b` is listed, in the list its node names; its neighbours are listed or
        // null.
        // `class < C::COUNT <= MAX_CLASSES` (the node invariant), so the head and the bitmap
        // word are in bounds: no bounds checks.
        unsafe {
            // Field by field: the head's `prev` may never have been written, and is read only
            // for a block that is not the head.
            let l = link(b.ptr());
            let (next, c) = ((*l).next, (*l).class);
            let head = self.heads.get_unchecked_mut(c);
            if *head == b.ptr() {
                // `next` becomes the head: its `prev` need not change.
                *head = next;
                *self.bitmap.get_unchecked_mut(c / 64) &= !((next.is_null() as u64) << (c % 64));
            } else {
                let prev = (*l).prev;
                (*link(prev)).next = next;
                self.prev_field(next).write(prev);
            }
        }
    }

    /// The blocks of list `c`, head first.
    fn list(&self, c: usize) -> impl Iterator<Item = Block> + '_ {
        let mut at = self.heads[c];
        core::iter::from_fn(move || {
            if at.is_null() {
                return None;
            }
            // SAFETY: `at` is a listed block; its node holds the next link.
            let b = unsafe { Block::at(at) };
            // SAFETY: `at` is a listed block, so its node holds the list's next link.
            at = unsafe { (*link(at)).next };
            Some(b)
        })
    }

    /// The first block of list `c` for which `fit_start` succeeds.
    fn walk_class(&self, c: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: every listed block is a live free block.
        self.list(c).find(|&b| unsafe { b.size() >= need && fit_start(b, need, align).is_some() })
    }

    // ANCHOR: seg_find_fast
    /// O(1): the head of the first non-empty class whose every block holds `need` bytes.
    #[inline]
    fn find_fast(&self, need: usize) -> Option<Block> {
        let c = self.first_class_from(C::class_ceil(need))?;
        // SAFETY: a set bit means a non-empty list (so `c < C::COUNT`), whose head is a
        // listed block.
        Some(unsafe { Block::at(*self.heads.get_unchecked(c)) })
    }
    // ANCHOR_END: seg_find_fast

    // ANCHOR: seg_find_aligned
    /// An over-aligned request's usual answer: a block of the first [`ALIGNED_PROBES`]
    /// blocks of the classes below the sure ones whose aligned start fits (each class's
    /// most recently freed blocks first), else the head of the first non-empty class whose
    /// every block fits whatever its address: those of `need + MIN_BLOCK_BYTES + align -
    /// BLOCK_ALIGN` bytes or more, since the gap below an aligned start is 0 or
    /// `MIN_BLOCK_BYTES..MIN_BLOCK_BYTES + align - BLOCK_ALIGN` (`fit_start`). The carve
    /// leaves the gap and the rest free. `None` when neither gives a block.
    fn find_aligned(&self, need: usize, align: usize) -> Option<Block> {
        let sure = C::class_ceil(need.checked_add(MIN_BLOCK_BYTES + align - BLOCK_ALIGN)?);
        let (mut c, mut probes) = (C::class_of(need), ALIGNED_PROBES);
        while probes > 0
            && let Some(k) = self.first_class_from(c)
            && k < sure
        {
            for b in self.list(k) {
                // SAFETY: every listed block is a live free block.
                if unsafe { b.size() >= need && fit_start(b, need, align).is_some() } {
                    return Some(b);
                }
                probes -= 1;
                if probes == 0 {
                    break;
                }
            }
            c = k + 1;
        }
        let k = self.first_class_from(sure)?;
        // SAFETY: a set bit means a non-empty list, whose head is a listed block.
        let b = unsafe { Block::at(*self.heads.get_unchecked(k)) };
        // Sure by the arithmetic above; tested all the same, once.
        // SAFETY: a listed block is a live free block.
        unsafe { fit_start(b, need, align) }.map(|_| b)
    }
    // ANCHOR_END: seg_find_aligned

    /// Walks the lists from `need`'s class upward for the first block that fits; an
    /// over-aligned request tries [`find_aligned`](Self::find_aligned) first.
    #[cold]
    fn find_slow(&self, need: usize, align: usize) -> Option<Block> {
        if align > BLOCK_ALIGN
            && let Some(b) = self.find_aligned(need, align)
        {
            return Some(b);
        }
        let mut c = C::class_of(need);
        while let Some(k) = self.first_class_from(c) {
            if let Some(b) = self.walk_class(k, need, align) {
                return Some(b);
            }
            c = k + 1;
        }
        None
    }
}

// SAFETY: only node memory of listed blocks is written; each block sits in the list of its
// class exactly once (the checker proves it).
unsafe impl<C: Classes> FreeIndex for SegLists<C> {
    const EMPTY: Self = {
        let () = Self::VALID;
        SegLists {
            heads: [ptr::null_mut(); MAX_CLASSES],
            bitmap: [0; BITMAP_WORDS],
            spare: ptr::null_mut(),
            _classes: PhantomData,
        }
    };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        // SAFETY: forwarded.
        unsafe { self.push(b, C::class_of(size)) }
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, _size: usize) {
        // The class comes from the node.
        // SAFETY: forwarded.
        unsafe { self.unlink(b) }
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, _old_size: usize, new: Block, new_size: usize) {
        let c = C::class_of(new_size);
        // SAFETY: `old` is listed; its node is read whole before `new`'s (which may overlap
        // it) is written; its neighbours are listed or null.
        unsafe {
            if (*link(old.ptr())).class != c {
                self.unlink(old);
                self.push(new, c);
                return;
            }
            // Same class: `new` takes `old`'s place in the list. Every field is read before
            // any is written (the nodes may overlap); the head's `prev`, which may never have
            // been written, is neither read nor copied.
            let (l, nl) = (link(old.ptr()), link(new.ptr()));
            let next = (*l).next;
            if self.heads[c] == old.ptr() {
                ((*nl).next, (*nl).class) = (next, c);
                self.heads[c] = new.ptr();
            } else {
                let prev = (*l).prev;
                ((*nl).next, (*nl).class, (*nl).prev) = (next, c, prev);
                (*link(prev)).next = new.ptr();
            }
            self.prev_field(next).write(new.ptr());
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, _old_size: usize, new_size: usize) {
        let c = C::class_of(new_size);
        // SAFETY: `b` is listed, so its node is intact.
        if unsafe { (*link(b.ptr())).class } != c {
            // SAFETY: `b` is listed.
            unsafe {
                self.unlink(b);
                self.push(b, c);
            }
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let mut n = 0;
        for c in 0..MAX_CLASSES {
            let bit = self.bitmap[c / 64] >> (c % 64) & 1 == 1;
            if bit == self.heads[c].is_null() || (c >= C::COUNT && bit) {
                return Err(CheckError {
                    what: "seg: bitmap bit != list non-empty",
                    addr: c,
                    detail: bit as usize,
                });
            }
            let mut prev: *mut u8 = ptr::null_mut();
            for b in self.list(c) {
                visit(b)?;
                // SAFETY: `visit` found `b` to be a live free block.
                let (l, size) = (link(b.ptr()), unsafe { b.size() });
                let err = |what, detail| Err(CheckError { what, addr: b.addr(), detail });
                // The head's `prev` is unspecified (see `Link`), maybe never written: read
                // only the others'.
                // SAFETY: `b` is a live free block, so its node is ours to read.
                if !prev.is_null() && unsafe { (*l).prev } != prev {
                    return err("seg: node.prev != previous node", c);
                }
                if C::class_of(size) != c {
                    return err("seg: block in the list of another class", c);
                }
                // SAFETY: `visit` found `b` to be a live free block, so its node is ours.
                let class = unsafe { (*l).class };
                if class != c {
                    return err("seg: node.class != its list's class", class);
                }
                n += 1;
                prev = b.ptr();
            }
        }
        Ok(n)
    }
}

/// The segregated-fit policy over class table `C`.
pub struct Segregated<C> {
    lists: SegLists<C>,
}

// ANCHOR: seg_policy
// SAFETY: `find` returns what `find_fast` returns, a block of a class whose every block is
// `>= need`, and only for alignments up to 16 (where `>= need` fits); `find_rest` returns
// what `find_slow` returns, which checks `fit_start` on each candidate (`find_aligned`'s
// too).
unsafe impl<C: Classes> Policy for Segregated<C> {
    type Index = SegLists<C>;
    const EMPTY: Self = Segregated { lists: SegLists::EMPTY };
    const NAME: &'static str = "segregated-fit";

    #[inline]
    fn index(&self) -> &SegLists<C> {
        &self.lists
    }
    #[inline]
    fn index_mut(&mut self) -> &mut SegLists<C> {
        &mut self.lists
    }
    #[inline]
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block> {
        if align > BLOCK_ALIGN {
            return None;
        }
        self.lists.find_fast(need)
    }
    #[inline]
    unsafe fn find_rest(&mut self, need: usize, align: usize) -> Option<Block> {
        self.lists.find_slow(need, align)
    }
}
// ANCHOR_END: seg_policy

#[cfg(test)]
mod tests {
    use super::*;

    /// The [`Classes`] contract for [`DefaultClasses`], and `class_ceil` against its
    /// definition (the first class whose smallest block holds `need`).
    #[test]
    fn default_classes_keep_the_contract() {
        type D = DefaultClasses;
        for c in 1..D::COUNT {
            assert!(D::class_min(c - 1) < D::class_min(c), "class_min not increasing at {c}");
            assert_eq!(D::class_of(D::class_min(c)), c, "class_of(class_min({c}))");
        }
        assert!(D::class_min(0) <= MIN_BLOCK_BYTES);
        let mut last = 0;
        let mut size = MIN_BLOCK_BYTES;
        while size < 1 << 30 {
            let c = D::class_of(size);
            assert!(c >= last && c < D::COUNT && D::class_min(c) <= size, "class_of({size}) = {c}");
            let ceil = (0..D::COUNT).find(|&k| D::class_min(k) >= size).unwrap_or(D::COUNT);
            assert_eq!(D::class_ceil(size), ceil, "class_ceil({size})");
            last = c;
            size += if size < 4096 { BLOCK_ALIGN } else { size / 64 };
        }
    }

    /// The bitmap scan finds classes in either word, and none past the last.
    #[test]
    fn first_class_from_crosses_words() {
        let mut l = SegLists::<DefaultClasses>::EMPTY;
        assert_eq!(l.first_class_from(0), None);
        l.bitmap = [1 << 5, 1 << 7, 0, 1 << 63];
        assert_eq!(l.first_class_from(0), Some(5));
        assert_eq!(l.first_class_from(5), Some(5));
        assert_eq!(l.first_class_from(6), Some(64 + 7));
        assert_eq!(l.first_class_from(64 + 7), Some(64 + 7));
        assert_eq!(l.first_class_from(64 + 8), Some(255));
        l.bitmap[3] = 0;
        assert_eq!(l.first_class_from(64 + 8), None);
        assert_eq!(l.first_class_from(MAX_CLASSES), None);
    }
}
