//! Best fit's default index: exact-size bins for small blocks, a size tree for the rest.
//!
//! # Design
//! Best fit asks for the least `(size, address)` among the blocks that fit. Below
//! [`BIN_MAX_BYTES`] every block size has a bin of its own ([`BIN_COUNT`] bins, one per
//! `BLOCK_ALIGN` step from `MIN_BLOCK_BYTES`), and a bitmap says which bins hold a block.
//! A bin keeps its blocks in address order and knows its least one: as a doubly linked
//! list while it holds at most [`BIN_LIST_MAX`] blocks, as a treap by address beyond (so a
//! bin's operations stay O(log n) however many free blocks share a size). For alignments
//! up to `BLOCK_ALIGN` (where a block fits exactly when it is big enough) the answer is the
//! least block of the first non-empty bin at or above the request's size: a bitmap scan and
//! one pointer, with no descent. Blocks above `BIN_MAX_BYTES` live in a [`SizeTree`], which
//! answers the requests no bin can serve.
//!
//! Why lists first: in the churn of `benches/freelist.rs` best fit keeps about 220 free
//! blocks in 60 bins, rarely more than 30 in one. A short sorted list's least block is its
//! head, a removal unlinks in O(1) with no successor to find, and an insert walks a few
//! nodes, where a treap descends and rotates with a branch per level that the processor
//! cannot predict: the lists took a quarter off best fit's time per replacement (numbers in
//! `benches/README.md`).
//!
//! The index lives in the heap itself (about 8 KiB: per bin a list head and length, a mode
//! flag, a pending head and count, and an empty treap's four words, the bitmap, the tree's
//! root), so a `static`
//! `Heap<BestFit>` is that much larger; nothing is allocated.
//!
//! This is the structure of segregated fit with two differences that keep best fit's
//! decisions: a bin holds one size, not a range of sizes, and it is ordered by address, so
//! ties go to the lowest address as the list walk's do. The bins are small (the free blocks
//! spread over 128 bins), so an insert walks a few nodes where the one size tree of
//! [`SizeTree`] descends through all of them.
//!
//! Alloc: `best_fit` scans the bitmap from the request's bin; the first non-empty bin's
//! least block is the answer. An over-aligned request takes, bin by bin, the lowest-address
//! block whose aligned start fits, then goes on to the next bin, then to the tree. In a bin
//! (one size) whether a block fits depends only on where its payload lies modulo the
//! alignment, so the search computes the fitting residues once per bin (`fit_residues`)
//! and a treap bin, whose nodes keep the union of their subtree's residues, goes straight
//! down to the first block at one of them, instead of testing the bin's blocks one by one
//! (a bin of many blocks of the right size, none aligned, was most of the time of the
//! preload's threaded C++ program: `benches/README.md`).
//! Free: a block enters the bin of its size (or the tree); a block that changes size moves.
//! A bin's insert only pushes the block onto the bin's *pending* blocks (an unordered
//! doubly linked list, O(1)); `find_best`, best fit's search, sorts a bin's pending blocks
//! into its list or treap before it reads the bin (`Bin::settle`), so the answer is the same,
//! and a block that leaves its bin before the next search of the bin (merged with a neighbour
//! freed after it, or resized) leaves in O(1) without ever being sorted in.
//!
//! Invariants (checked by `check`), with `bin(s) = (s - MIN_BLOCK_BYTES) / BLOCK_ALIGN`:
//! - every block in bin `i` has size `MIN_BLOCK_BYTES + i * BLOCK_ALIGN`; every block in the
//!   tree is larger than `BIN_MAX_BYTES`;
//! - bit `i` of `nonempty` is set exactly when bin `i` holds a block;
//! - each bin's sorted part is a valid sorted list of at most `BIN_LIST_MAX` blocks, or a
//!   valid treap by address of more than [`BIN_LIST_MIN`] blocks whose `min` is its least
//!   node (`Bin::check`, `Treap::check`), and the tree is a valid size tree;
//! - each bin's pending blocks form a doubly linked list of `pending_len` nodes tagged
//!   pending (word 0 odd), and no block is both pending and sorted.

#[cfg(test)]
use super::block::HEADER_BYTES;
use super::block::{BLOCK_ALIGN, Block, MIN_BLOCK_BYTES};
use super::engine::{FreeIndex, fit_start};
use super::linear::Linear;
use super::policy::SizeSearch;
use super::segregated::first_set_from;
use super::tree::{ByAddrMin, SizeTree, Treap, fit_residues, residue_bit};
use crate::strategy::CheckError;

/// Number of exact-size bins.
pub const BIN_COUNT: usize = 128;
/// The largest block size with a bin; larger blocks go to the size tree.
pub const BIN_MAX_BYTES: usize = MIN_BLOCK_BYTES + (BIN_COUNT - 1) * BLOCK_ALIGN;

const WORDS: usize = BIN_COUNT / 64;
const _: () = assert!(BIN_COUNT.is_multiple_of(64));

/// The bin of a block size `MIN_BLOCK_BYTES..=BIN_MAX_BYTES` (a multiple of `BLOCK_ALIGN`).
#[inline]
fn bin_of(size: usize) -> usize {
    (size - MIN_BLOCK_BYTES) / BLOCK_ALIGN
}

/// The first bin whose blocks are at least `need` bytes (`need <= BIN_MAX_BYTES`).
#[inline]
fn bin_ceil(need: usize) -> usize {
    need.saturating_sub(MIN_BLOCK_BYTES).div_ceil(BLOCK_ALIGN)
}

/// Exact-size bins by address below `BIN_MAX_BYTES`, a size tree above: best fit's default
/// index (see the module docs).
pub struct SizeBins {
    /// Bit `i` set ⇔ `bins[i]` is non-empty.
    nonempty: [u64; WORDS],
    /// `bins[i]` holds the free blocks of size `MIN_BLOCK_BYTES + i * BLOCK_ALIGN`.
    bins: [Bin; BIN_COUNT],
    /// `trees[i]` holds them instead when `bins[i]` is a treap bin (else it is empty).
    trees: [Treap<ByAddrMin>; BIN_COUNT],
    /// The free blocks larger than `BIN_MAX_BYTES`.
    large: SizeTree,
}

impl SizeBins {
    /// [`FreeIndex::replace`] where a bin holds `old` or takes `new`.
    ///
    /// # Safety
    /// As for `replace`.
    #[inline(never)]
    unsafe fn replace_binned(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: forwarded. Same bin: no block lies between `old` and `new` (the contract),
        // so `new` takes `old`'s place in the bin's address order.
        unsafe {
            if old_size == new_size {
                let i = bin_of(old_size);
                self.bins[i].replace(&mut self.trees[i], old, new, new_size);
            } else {
                <Self as FreeIndex>::remove(self, old, old_size);
                <Self as FreeIndex>::insert(self, new, new_size, None);
            }
        }
    }

    /// The first non-empty bin at or above `from`, if any.
    #[inline]
    fn next_nonempty(&self, from: usize) -> Option<usize> {
        first_set_from(&self.nonempty, from)
    }

    #[inline]
    fn set_bit(&mut self, i: usize) {
        self.nonempty[i / 64] |= 1 << (i % 64);
    }

    #[inline]
    fn clear_bit(&mut self, i: usize) {
        self.nonempty[i / 64] &= !(1 << (i % 64));
    }
}

/// Most blocks a bin keeps as a sorted list; the next insert turns it into a treap.
pub const BIN_LIST_MAX: usize = 32;
/// A treap bin that falls to this many blocks turns back into a list. Below
/// [`BIN_LIST_MAX`], so that a bin at either boundary does not convert on every operation.
pub const BIN_LIST_MIN: usize = 16;

/// One bin: the blocks of one size in address order, as a [`Linear`] list (the reference
/// index's sorted doubly linked list) while there are at most [`BIN_LIST_MAX`] of them, as
/// a treap by address (O(log n)) beyond. The list part is this struct (three words: a scan
/// of the bins reads few cache lines); a treap bin's tree is kept apart, in
/// [`SizeBins`]'s `trees`, and passed in where it is needed.
///
/// A short sorted list is the cheaper structure here: its least block is the head, a removal
/// unlinks in O(1) with no successor to find, and an insert walks a few nodes with one
/// loop, where a treap insert descends and rotates with a branch per level that the
/// processor cannot predict. The treap bounds the cost when many free blocks share a size.
///
/// Beside its list or treap (the sorted part), a bin holds its pending blocks: inserted
/// since its last search, in no order ([`Pending`]).
///
/// Invariants (checked by `check`): a list bin has an empty tree and at most
/// `BIN_LIST_MAX` blocks in a valid list (`Linear`'s invariants); a treap bin has an empty
/// list and more than `BIN_LIST_MIN` blocks in its tree; the pending list has
/// `pending_len` nodes, each tagged pending, each `prev` the node before it.
struct Bin {
    /// The blocks of a list bin (empty for a treap bin).
    list: Linear,
    /// Whether the bin is a treap bin.
    in_tree: bool,
    /// Head of the bin's pending blocks: blocks inserted since the bin was last searched,
    /// in no order (see [`Pending`]). Null when there are none.
    pending: *mut u8,
    /// The number of pending blocks.
    pending_len: u32,
}

// SAFETY: `pending` names free blocks of the one heap that owns the index, whose nodes only
// the index touches, through `&mut self` or `&self` (as `Linear`'s and `Treap`'s pointers);
// nothing is tied to a thread.
unsafe impl Send for Bin {}

/// The node of a pending block (in its node area): `next | 1` and `prev`, both header
/// addresses or null.
///
/// A bin's insert only pushes the block here, in O(1); the next search of the bin sorts
/// its pending blocks into the list or treap (`Bin::settle`), and a pending block that
/// leaves the bin before that (it coalesces with a neighbour freed after it, or changes
/// size) is unlinked in O(1). So a block that is freed and merged again before its bin is
/// searched never pays the sorted insert and removal, each a walk over blocks spread over
/// the heap (mstress, where a thread frees most of a large pool at once: benches/README.md,
/// "Layers").
///
/// Word 0 tells a pending block from a sorted one: a list or treap node holds a link
/// there (a header address, `8 mod 16`, or null: even), a pending node holds `next | 1`
/// (odd). Both node layouts write word 0 whole whenever a block enters them.
#[repr(C)]
struct Pending {
    /// The next pending block's header address, with bit 0 set.
    next_tagged: usize,
    /// The previous pending block's header address (null for the head).
    prev: *mut u8,
}

/// The pending node of block `b`.
#[inline(always)]
fn pending(b: *mut u8) -> *mut Pending {
    // SAFETY: callers pass block headers (non-null); the node follows the header.
    unsafe { Block::at(b) }.node::<Pending>()
}

/// Whether block `b` of a bin is pending (word 0 of its node odd).
///
/// # Safety
/// `b` is a block of a bin (pending, or in its list or treap).
#[inline(always)]
unsafe fn is_pending(b: *mut u8) -> bool {
    // SAFETY: `b`'s node is written by the bin that holds it (caller).
    unsafe { (*pending(b)).next_tagged & 1 == 1 }
}

/// The next pending block after `b` (null at the end).
///
/// # Safety
/// `b` is a pending block.
#[inline(always)]
unsafe fn pending_next(b: *mut u8) -> *mut u8 {
    // SAFETY: a pending block's node holds its links (caller).
    let tagged = unsafe { (*pending(b)).next_tagged };
    b.with_addr(tagged & !1)
}

impl Bin {
    const EMPTY: Self = Bin {
        list: <Linear as FreeIndex>::EMPTY,
        in_tree: false,
        pending: core::ptr::null_mut(),
        pending_len: 0,
    };

    /// Whether the bin holds no block.
    #[inline]
    fn is_empty(&self) -> bool {
        !self.in_tree && self.list.len() == 0 && self.pending.is_null()
    }

    /// Pushes free block `b` onto the pending blocks.
    ///
    /// # Safety
    /// `b` is a free block of this bin's size in no index.
    #[inline(always)]
    unsafe fn push_pending(&mut self, b: *mut u8) {
        let head = self.pending;
        // SAFETY: `b`'s node memory is ours (caller); `head` is null or a pending block.
        unsafe {
            pending(b).write(Pending { next_tagged: head.addr() | 1, prev: core::ptr::null_mut() });
            if !head.is_null() {
                (*pending(head)).prev = b;
            }
        }
        self.pending = b;
        self.pending_len += 1;
    }

    /// Unlinks the pending block `b`.
    ///
    /// # Safety
    /// `b` is a pending block of this bin.
    #[inline(always)]
    unsafe fn unlink_pending(&mut self, b: *mut u8) {
        // SAFETY: `b` and its neighbours are pending blocks of this bin (caller).
        unsafe {
            let (next, prev) = (pending_next(b), (*pending(b)).prev);
            if prev.is_null() {
                self.pending = next;
            } else {
                (*pending(prev)).next_tagged = next.addr() | 1;
            }
            if !next.is_null() {
                (*pending(next)).prev = prev;
            }
        }
        self.pending_len -= 1;
    }

    /// Sorts the pending blocks into the list or treap (before a search of the bin).
    ///
    /// # Safety
    /// The bin holds live free blocks of `size` bytes; `tree` is the bin's tree.
    #[inline(never)]
    unsafe fn settle(&mut self, tree: &mut Treap<ByAddrMin>, size: usize) {
        let mut p = core::mem::replace(&mut self.pending, core::ptr::null_mut());
        self.pending_len = 0;
        // SAFETY: each pending block's next link is read before the sorted insert writes its
        // node; the blocks are free blocks of `size` bytes in no other index.
        unsafe {
            while !p.is_null() {
                let next = pending_next(p);
                self.insert_sorted(tree, Block::at(p), size);
                p = next;
            }
        }
    }

    /// The lowest-address pending block whose start fits `need` bytes at `align` (a scan:
    /// for [`SizeSearch::best_fit`], which may not settle the bin).
    ///
    /// # Safety
    /// The bin holds live free blocks.
    unsafe fn pending_first_fitting(&self, need: usize, align: usize) -> Option<Block> {
        let mut best: Option<Block> = None;
        let mut p = self.pending;
        // SAFETY: the pending blocks are live free blocks whose nodes hold their links.
        unsafe {
            while !p.is_null() {
                let b = Block::at(p);
                if best.is_none_or(|x| b.addr() < x.addr()) && fit_start(b, need, align).is_some() {
                    best = Some(b);
                }
                p = pending_next(p);
            }
        }
        best
    }

    /// The least block's header address (null if empty); `tree` is the bin's tree.
    #[inline]
    fn least(&self, tree: &Treap<ByAddrMin>) -> *mut u8 {
        if self.in_tree { tree.least() } else { self.list.first() }
    }

    // ANCHOR: bin_insert
    /// Adds free block `b` of this bin's `size` to the list or the treap.
    ///
    /// # Safety
    /// `b` is a free block of `size` bytes in no index; `tree` is the bin's tree.
    #[inline(always)]
    unsafe fn insert_sorted(&mut self, tree: &mut Treap<ByAddrMin>, b: Block, size: usize) {
        // SAFETY: forwarded.
        unsafe {
            if self.in_tree {
                tree.insert(b, size, None);
            } else if self.list.len() == BIN_LIST_MAX {
                self.grow_to_tree(tree, b, size);
            } else {
                self.list.insert(b, size, None);
            }
        }
    }
    // ANCHOR_END: bin_insert

    /// Removes block `b` of this bin's `size`.
    ///
    /// # Safety
    /// `b` is in this bin; `tree` is the bin's tree.
    #[inline(always)]
    unsafe fn remove(&mut self, tree: &mut Treap<ByAddrMin>, b: Block, size: usize) {
        // SAFETY: forwarded.
        unsafe {
            if is_pending(b.ptr()) {
                return self.unlink_pending(b.ptr());
            }
            if !self.in_tree {
                return self.list.remove(b, size);
            }
            tree.remove(b, size);
            if tree.len() == BIN_LIST_MIN {
                self.shrink_to_list(tree, size);
            }
        }
    }

    /// `new` (of `size` bytes) takes the place of `old`, which is in this bin; no block of
    /// the bin lies between them. `new`'s node may overlap `old`'s.
    ///
    /// # Safety
    /// As above; `new` is a free block in no index; `tree` is the bin's tree.
    #[inline]
    unsafe fn replace(&mut self, tree: &mut Treap<ByAddrMin>, old: Block, new: Block, size: usize) {
        // SAFETY: forwarded (each reads the old node whole before writing the new one).
        unsafe {
            if is_pending(old.ptr()) {
                // Pending blocks have no order: `new` takes `old`'s links.
                let n = pending(old.ptr()).read();
                let (next, prev) = (new.ptr().with_addr(n.next_tagged & !1), n.prev);
                pending(new.ptr()).write(n);
                if prev.is_null() {
                    self.pending = new.ptr();
                } else {
                    (*pending(prev)).next_tagged = new.addr() | 1;
                }
                if !next.is_null() {
                    (*pending(next)).prev = new.ptr();
                }
            } else if self.in_tree {
                tree.replace(old, size, new, size);
            } else {
                self.list.replace(old, size, new, size);
            }
        }
    }

    /// A full list becomes a treap, then takes `b`.
    ///
    /// # Safety
    /// As for `insert`, with the list full.
    #[cold]
    unsafe fn grow_to_tree(&mut self, tree: &mut Treap<ByAddrMin>, b: Block, size: usize) {
        // SAFETY: the list's iterator reads each block's `next` before yielding it, so the
        // treap may write over the yielded block's node.
        unsafe {
            for x in self.list.iter() {
                tree.insert(x, size, None);
            }
            tree.insert(b, size, None);
        }
        (self.list, self.in_tree) = (<Linear as FreeIndex>::EMPTY, true);
    }

    /// A treap down to `BIN_LIST_MIN` blocks becomes a list: its least block, removed, goes
    /// to the list's tail (the insert's walk starts at the old tail: O(1)), until the treap
    /// is empty.
    ///
    /// # Safety
    /// The bin is a treap bin of blocks of `size` bytes; `tree` is its tree.
    #[cold]
    unsafe fn shrink_to_list(&mut self, tree: &mut Treap<ByAddrMin>, size: usize) {
        self.in_tree = false;
        let mut tail = None;
        // SAFETY: a block leaves the treap (which reads its node) before the list writes it.
        unsafe {
            while tree.len() > 0 {
                let x = Block::at(tree.least());
                tree.remove(x, size);
                self.list.insert(x, size, tail);
                tail = Some(x);
            }
        }
    }

    /// The lowest-address block of the bin, of blocks of `size >= need` bytes, whose
    /// aligned start fits (`align > BLOCK_ALIGN`). Whether a block fits depends only on its
    /// payload's residue ([`fit_residues`]): a list bin tests that mask before calling
    /// `fit_start`, a treap bin skips the subtrees that hold no fitting residue.
    ///
    /// # Safety
    /// The bin holds live free blocks; `tree` is its tree.
    unsafe fn first_fitting(
        &self,
        tree: &Treap<ByAddrMin>,
        size: usize,
        need: usize,
        align: usize,
    ) -> Option<Block> {
        let wanted = fit_residues(size - need, align);
        // SAFETY: the bin's blocks are live free blocks.
        unsafe {
            if self.in_tree {
                return tree.first_fitting(need, align, wanted);
            }
            self.list
                .iter()
                .find(|&b| residue_bit(b.ptr()) & wanted != 0 && fit_start(b, need, align).is_some())
        }
    }

    /// Calls `visit` for every block (before reading its node) and checks the bin's own
    /// invariants (above); returns the number of blocks.
    ///
    /// # Safety
    /// The bin holds only live free blocks; `tree` is its tree.
    unsafe fn check(
        &self,
        tree: &Treap<ByAddrMin>,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        // SAFETY: forwarded.
        let pending = unsafe { self.check_pending(visit) }?;
        // SAFETY: forwarded.
        Ok(pending + unsafe { self.check_sorted(tree, visit) }?)
    }

    /// The pending blocks' part of [`check`](Self::check): a list whose `prev` links
    /// mirror its `next` links, every node tagged pending; returns their number.
    ///
    /// # Safety
    /// As for `check`.
    unsafe fn check_pending(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let (mut n, mut prev, mut p) = (0usize, core::ptr::null_mut::<u8>(), self.pending);
        while !p.is_null() {
            let at = n;
            let err = |what| Err(CheckError { what, addr: p.addr(), detail: at });
            // SAFETY: `visit` checks `p` is a live free block before its node is read.
            visit(unsafe { Block::at(p) })?;
            // SAFETY: `visit` has just proved `p` a live free block: its node is readable.
            let node = unsafe { pending(p).read() };
            if node.next_tagged & 1 != 1 {
                return err("bins: a pending block's node is not tagged pending");
            }
            if node.prev != prev {
                return err("bins: pending node.prev != the node before it");
            }
            n += 1;
            if n > self.pending_len as usize {
                return err("bins: more pending nodes than pending_len (cycle?)");
            }
            prev = p;
            p = p.with_addr(node.next_tagged & !1);
        }
        if n != self.pending_len as usize {
            return Err(CheckError { what: "bins: #pending nodes != pending_len", addr: 0, detail: n });
        }
        Ok(n)
    }

    /// The list or treap part of [`check`](Self::check).
    ///
    /// # Safety
    /// As for `check`.
    unsafe fn check_sorted(
        &self,
        tree: &Treap<ByAddrMin>,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let err = |what, detail| Err(CheckError { what, addr: self.list.first().addr(), detail });
        if self.in_tree {
            if self.list.len() != 0 || !self.list.first().is_null() {
                return err("bins: a treap bin's list holds blocks", self.list.len());
            }
            if tree.len() <= BIN_LIST_MIN {
                return err("bins: a treap bin with at most BIN_LIST_MIN blocks", tree.len());
            }
            // SAFETY: forwarded.
            return unsafe { tree.check(visit) };
        }
        if tree.len() != 0 {
            return err("bins: a list bin's tree holds blocks", tree.len());
        }
        if self.list.len() > BIN_LIST_MAX {
            return err("bins: a list bin longer than BIN_LIST_MAX", self.list.len());
        }
        // SAFETY: forwarded.
        unsafe { self.list.check(visit) }
    }
}

// SAFETY: every method forwards to exactly one bin treap or the size tree, chosen by the
// block's size, so each block is in one of them; the treaps write only node memory.
// `replace` removes `old` (reading its node) before `new`'s node is written, or (the size
// tree, the bins' lists and treaps) reads `old`'s node whole before writing `new`'s.
unsafe impl FreeIndex for SizeBins {
    const EMPTY: Self = SizeBins {
        nonempty: [0; WORDS],
        bins: [const { Bin::EMPTY }; BIN_COUNT],
        trees: [const { <Treap<ByAddrMin> as FreeIndex>::EMPTY }; BIN_COUNT],
        large: SizeTree::EMPTY,
    };

    #[inline(always)]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        // SAFETY: forwarded.
        unsafe {
            if size <= BIN_MAX_BYTES {
                let i = bin_of(size);
                self.bins[i].push_pending(b.ptr());
                self.set_bit(i);
            } else {
                self.large.insert(b, size, None);
            }
        }
    }

    #[inline(always)]
    unsafe fn remove(&mut self, b: Block, size: usize) {
        // SAFETY: forwarded.
        unsafe {
            if size <= BIN_MAX_BYTES {
                let i = bin_of(size);
                self.bins[i].remove(&mut self.trees[i], b, size);
                if self.bins[i].is_empty() {
                    self.clear_bit(i);
                }
            } else {
                self.large.remove(b, size);
            }
        }
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: forwarded.
        unsafe {
            if old_size > BIN_MAX_BYTES && new_size > BIN_MAX_BYTES {
                // Both in the size tree, which keeps the node when the order allows (a split
                // remainder, a coalesced block): inline, and the rest out of line, so that
                // this path saves no registers.
                self.large.replace_keyed(old, old_size, new, new_size);
            } else {
                self.replace_binned(old, old_size, new, new_size);
            }
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        // SAFETY: forwarded.
        unsafe {
            self.remove(b, old_size);
            self.insert(b, new_size, None);
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let mut total = 0;
        for (i, bin) in self.bins.iter().enumerate() {
            let size = MIN_BLOCK_BYTES + i * BLOCK_ALIGN;
            let mut in_bin = |b: Block| {
                visit(b)?;
                // SAFETY: `visit` proved `b` a live free block, so its header is readable.
                let b_size = unsafe { b.size() };
                if b_size != size {
                    return Err(CheckError {
                        what: "bins: block size is not its bin's",
                        addr: b.addr(),
                        detail: i,
                    });
                }
                Ok(())
            };
            // SAFETY: forwarded (the index holds only live free blocks).
            let n = unsafe { bin.check(&self.trees[i], &mut in_bin) }?;
            if (n > 0) != (self.nonempty[i / 64] >> (i % 64) & 1 == 1) {
                return Err(CheckError {
                    what: "bins: nonempty bit != (bin holds a block)",
                    addr: 0,
                    detail: i,
                });
            }
            total += n;
        }
        let mut in_tree = |b: Block| {
            visit(b)?;
            // SAFETY: `visit` has just checked that `b` is a live free block.
            let b_size = unsafe { b.size() };
            if b_size <= BIN_MAX_BYTES {
                return Err(CheckError {
                    what: "bins: tree holds a block with a bin",
                    addr: b.addr(),
                    detail: b_size,
                });
            }
            Ok(())
        };
        // SAFETY: forwarded.
        Ok(total + unsafe { self.large.check(&mut in_tree) }?)
    }
}

// ANCHOR: bins_best_fit
impl SizeBins {
    /// The least fitting block of the non-empty bin `i` (of blocks of at least `need`
    /// bytes): its least block when the alignment is at most `BLOCK_ALIGN` (every block of
    /// the bin fits), else the lowest-address block whose aligned start fits; pending
    /// blocks included (a scan, empty after `settle`).
    ///
    /// # Safety
    /// The index holds only live free blocks.
    #[inline(always)]
    unsafe fn fit_in_bin(&self, i: usize, need: usize, align: usize) -> Option<Block> {
        let bin = &self.bins[i];
        let size = MIN_BLOCK_BYTES + i * BLOCK_ALIGN;
        // SAFETY: the bin holds live free blocks of `size >= need` bytes.
        unsafe {
            let sorted = if align <= BLOCK_ALIGN {
                Some(bin.least(&self.trees[i])).filter(|p| !p.is_null()).map(|p| Block::at(p))
            } else {
                bin.first_fitting(&self.trees[i], size, need, align)
            };
            if bin.pending.is_null() {
                return sorted;
            }
            let pending = bin.pending_first_fitting(need, align);
            match (sorted, pending) {
                (Some(a), Some(b)) => Some(if a.addr() < b.addr() { a } else { b }),
                (a, b) => a.or(b),
            }
        }
    }
}

// SAFETY: candidates are taken in increasing `(size, address)`: bins in increasing size
// from the least that can hold `need`, each in address order (its least block alone when
// the alignment is at most `BLOCK_ALIGN`, since then every block of the bin fits; pending
// blocks compared by address), then the tree, whose blocks are all larger than any bin's;
// the first that fits is returned. `find_best` settles each bin before asking it the same.
unsafe impl SizeSearch for SizeBins {
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block> {
        if need <= BIN_MAX_BYTES {
            let mut from = bin_ceil(need);
            while let Some(i) = self.next_nonempty(from) {
                // SAFETY: forwarded.
                if let Some(b) = unsafe { self.fit_in_bin(i, need, align) } {
                    return Some(b);
                }
                from = i + 1;
            }
        }
        // SAFETY: the tree holds live free blocks.
        unsafe { self.large.best_fit(need, align) }
    }

    #[inline]
    unsafe fn find_best(&mut self, need: usize, align: usize) -> Option<Block> {
        if need <= BIN_MAX_BYTES {
            let mut from = bin_ceil(need);
            while let Some(i) = self.next_nonempty(from) {
                let size = MIN_BLOCK_BYTES + i * BLOCK_ALIGN;
                // SAFETY: the bin holds live free blocks of `size` bytes; then forwarded.
                unsafe {
                    if !self.bins[i].pending.is_null() {
                        self.bins[i].settle(&mut self.trees[i], size);
                    }
                    if let Some(b) = self.fit_in_bin(i, need, align) {
                        return Some(b);
                    }
                }
                from = i + 1;
            }
        }
        // SAFETY: the tree holds live free blocks.
        unsafe { self.large.best_fit(need, align) }
    }
}
// ANCHOR_END: bins_best_fit

#[cfg(test)]
mod tests {
    use super::*;

    /// Free blocks laid out back to back in a buffer (header addresses `8 mod 16`, as in a
    /// chunk), enough for the index: it reads only nodes, and `check` reads headers.
    #[repr(C, align(16))]
    struct Buf([u8; 16384]);

    /// The size of bin 0's blocks: the smallest block.
    const S: usize = MIN_BLOCK_BYTES;

    fn lay_out<const N: usize>(buf: &mut Buf, sizes: [usize; N]) -> [Block; N] {
        let mut at = BLOCK_ALIGN - size_of::<usize>();
        // One pointer for all blocks: taking one per block through `&mut buf` would invalidate
        // the blocks laid out before it (Miri's Stacked Borrows).
        let (start, len) = (buf.0.as_mut_ptr(), buf.0.len());
        core::array::from_fn(|i| {
            assert!(at + sizes[i] <= len);
            // SAFETY: `at..at + size` lies in the buffer, which outlives the blocks' use.
            let b = unsafe { Block::at(start.add(at)) };
            // SAFETY: `b` and its `sizes[i]` bytes (header, node, footer) lie in the buffer.
            unsafe { b.write_free(sizes[i]) };
            at += sizes[i];
            b
        })
    }

    fn check(bins: &SizeBins) -> Result<usize, CheckError> {
        // SAFETY: the index holds the buffer's blocks, all free and laid out.
        unsafe { bins.check(&mut |_| Ok(())) }
    }

    /// Best fit's answer, asked both ways: `best_fit` (pending blocks scanned) and then
    /// `find_best` (the bins searched settled first), which must agree.
    fn best(bins: &mut SizeBins, need: usize) -> Option<Block> {
        // SAFETY: the index holds the buffer's blocks, all free and laid out.
        let scanned = unsafe { bins.best_fit(need, BLOCK_ALIGN) };
        // SAFETY: as above.
        let settled = unsafe { bins.find_best(need, BLOCK_ALIGN) };
        assert_eq!(scanned, settled, "best_fit and find_best disagree at need {need}");
        settled
    }

    #[test]
    fn the_index_is_about_8_kib() {
        // The module docs promise it: per bin a list head and length, a mode flag, the
        // pending head and count, and a treap's four words, the bitmap, the tree's own words.
        assert!(size_of::<SizeBins>() <= 8 * 1024 + 64, "{} bytes", size_of::<SizeBins>());
    }

    /// A small deterministic permutation of `0..N` (a multiplicative step coprime to `N`).
    fn shuffled<const N: usize>(step: usize) -> [usize; N] {
        core::array::from_fn(|i| i * step % N)
    }

    #[test]
    fn a_bin_turns_into_a_treap_and_back_and_keeps_its_order() {
        const N: usize = BIN_LIST_MAX + 9;
        let mut buf = Buf([0; 16384]);
        let b = lay_out(&mut buf, [S; N]);
        let mut bins = SizeBins::EMPTY;
        let mut live = [false; N];
        // Inserted out of address order; the bin becomes a treap at the 33rd block.
        for i in shuffled::<N>(17) {
            // SAFETY: each block is free and not yet in the index.
            unsafe { bins.insert(b[i], S, None) };
            live[i] = true;
            let least = live.iter().position(|&l| l).unwrap();
            check(&bins).unwrap();
            assert_eq!(best(&mut bins, S), Some(b[least]));
            assert_eq!(bins.bins[0].in_tree, live.iter().filter(|&&l| l).count() > BIN_LIST_MAX);
            check(&bins).unwrap();
        }
        // Removed in another order; the bin is a list again once it falls to 16 blocks.
        for (k, i) in shuffled::<N>(23).into_iter().enumerate() {
            // SAFETY: `b[i]` is in the index with its size.
            unsafe { bins.remove(b[i], S) };
            live[i] = false;
            assert_eq!(best(&mut bins, S), live.iter().position(|&l| l).map(|j| b[j]));
            assert_eq!(bins.bins[0].in_tree, N - 1 - k > BIN_LIST_MIN, "after {} removals", k + 1);
            check(&bins).unwrap();
        }
        assert!(bins.bins[0].is_empty() && bins.nonempty[0] & 1 == 0);
    }

    #[test]
    fn smallest_fitting_size_then_lowest_address() {
        let mut buf = Buf([0; 16384]);
        let b = lay_out(&mut buf, [96, S, 128, S, 2400, 3000, 96]);
        let mut bins = SizeBins::EMPTY;
        // Inserted out of address order, so the least node is not simply the first insert.
        for i in [6, 3, 0, 5, 1, 4, 2] {
            // SAFETY: each block is free and not yet in the index.
            unsafe { bins.insert(b[i], b[i].size(), None) };
        }
        assert_eq!(check(&bins), Ok(7));
        assert_eq!(best(&mut bins, S), Some(b[1]), "the lower of the two smallest blocks");
        assert_eq!(best(&mut bins, 80), Some(b[0]), "96 bytes, the lower of two");
        assert_eq!(best(&mut bins, 112), Some(b[2]));
        assert_eq!(best(&mut bins, 144), Some(b[4]), "from the tree: the smaller large block");
        assert_eq!(best(&mut bins, 2500), Some(b[5]));
        assert_eq!(best(&mut bins, 3008), None);
        // SAFETY: `b[1]` is in the index with its size.
        unsafe { bins.remove(b[1], S) };
        assert_eq!(best(&mut bins, S), Some(b[3]), "the least node moves to the next address");
        // SAFETY: `b[3]` is in the index with its size.
        unsafe { bins.remove(b[3], S) };
        assert_eq!(best(&mut bins, S), Some(b[0]), "an emptied bin is skipped");
        assert_eq!(bins.nonempty[0] & 1, 0, "bin 0 (the smallest blocks) is marked empty");
        assert_eq!(check(&bins), Ok(5));
    }

    #[test]
    fn resized_blocks_move_between_bins_and_tree() {
        let mut buf = Buf([0; 16384]);
        // Room for b[0] to grow to 2176 bytes without overlapping b[1].
        let b = lay_out(&mut buf, [2176, 2112]);
        let mut bins = SizeBins::EMPTY;
        // SAFETY: free blocks not in the index; then each is in it with the size given.
        unsafe {
            b[0].write_free(S);
            bins.insert(b[0], S, None);
            bins.insert(b[1], 2112, None);
            b[0].write_free(2176);
            bins.resized(b[0], S, 2176);
            b[1].write_free(128);
            bins.resized(b[1], 2112, 128);
        }
        assert_eq!(check(&bins), Ok(2));
        assert_eq!(best(&mut bins, S), Some(b[1]));
        assert_eq!(best(&mut bins, 144), Some(b[0]));
    }

    #[test]
    fn check_catches_a_wrong_bitmap_and_a_wrong_bin() {
        let mut buf = Buf([0; 16384]);
        let b = lay_out(&mut buf, [80, 96]);
        let mut bins = SizeBins::EMPTY;
        // SAFETY: free blocks not in the index.
        unsafe {
            bins.insert(b[0], 80, None);
            bins.insert(b[1], 96, None);
        }
        assert_eq!(check(&bins), Ok(2));
        // Settled into their lists by searches.
        assert_eq!((best(&mut bins, 80), best(&mut bins, 96)), (Some(b[0]), Some(b[1])));
        bins.nonempty[1] |= 1;
        assert_eq!(check(&bins).unwrap_err().what, "bins: nonempty bit != (bin holds a block)");
        bins.nonempty[1] = 0;
        // A list bin marked as a treap bin.
        let bin_96 = bin_of(96);
        bins.bins[bin_96].in_tree = true;
        assert_eq!(check(&bins).unwrap_err().what, "bins: a treap bin's list holds blocks");
        bins.bins[bin_96].in_tree = false;
        assert_eq!(check(&bins), Ok(2));
        // The header says 112 bytes while the block sits in the 96-byte bin.
        // SAFETY: the block is free; only its size word changes.
        unsafe { b[1].write_free(112) };
        assert_eq!(check(&bins).unwrap_err().what, "bins: block size is not its bin's");
    }

    /// Inserts only push onto a bin's pending blocks; a pending block that leaves (or is
    /// replaced) before a search never enters the list; a search settles the rest, in
    /// address order, into the list or treap; the checker follows every step.
    #[test]
    fn pending_blocks_leave_in_constant_time_and_settle_at_a_search() {
        const N: usize = BIN_LIST_MAX + 8;
        let mut buf = Buf([0; 16384]);
        let b = lay_out(&mut buf, [S; N]);
        let mut bins = SizeBins::EMPTY;
        for i in shuffled::<N>(13) {
            // SAFETY: each block is free and not yet in the index.
            unsafe { bins.insert(b[i], S, None) };
        }
        assert_eq!(bins.bins[0].pending_len as usize, N);
        assert!(!bins.bins[0].in_tree && bins.bins[0].list.len() == 0);
        assert_eq!(check(&bins), Ok(N));
        // Every third block leaves while pending: unlinked, the others untouched.
        for i in (0..N).step_by(3) {
            // SAFETY: `b[i]` is in the index with its size.
            unsafe { bins.remove(b[i], S) };
            assert_eq!(check(&bins), Ok(N - i / 3 - 1));
        }
        let left = N - N.div_ceil(3);
        assert_eq!(bins.bins[0].pending_len as usize, left);
        // `best_fit` scans the pending blocks without settling them.
        // SAFETY: the index holds the buffer's blocks, all free and laid out.
        assert_eq!(unsafe { bins.best_fit(S, BLOCK_ALIGN) }, Some(b[1]));
        assert_eq!(bins.bins[0].pending_len as usize, left);
        assert_eq!(best(&mut bins, S), Some(b[1]));
        assert!(bins.bins[0].pending.is_null() && bins.bins[0].list.len() == left);
        assert_eq!(check(&bins), Ok(left));
        // Past a list's length, the settling turns the bin into a treap.
        for i in (0..N).step_by(3) {
            // SAFETY: each block is free and not in the index.
            unsafe { bins.insert(b[i], S, None) };
        }
        assert_eq!(best(&mut bins, S), Some(b[0]));
        assert!(bins.bins[0].in_tree && bins.bins[0].pending.is_null());
        assert_eq!(check(&bins), Ok(N));
    }

    /// A pending block replaced by another block of its size takes its place in the
    /// pending list; the checker catches a pending node that lost its tag or its back link.
    #[test]
    fn pending_replace_and_the_checker() {
        let mut buf = Buf([0; 16384]);
        let b = lay_out(&mut buf, [S, S, S]);
        let mut bins = SizeBins::EMPTY;
        // SAFETY: free blocks not in the index; `b[1]` (free, in no index, no block of the
        // bin between it and `b[2]`) takes `b[2]`'s place.
        unsafe {
            bins.insert(b[0], S, None);
            bins.insert(b[2], S, None);
            bins.replace(b[2], S, b[1], S);
        }
        assert_eq!(check(&bins), Ok(2));
        assert_eq!(bins.bins[0].pending, b[1].ptr(), "the replaced block was the head");
        // SAFETY: `b[0]` is in the index.
        unsafe { bins.remove(b[0], S) };
        assert_eq!(best(&mut bins, S), Some(b[1]));
        // SAFETY: `b[1]` is in the index (settled); then both are pending again.
        unsafe {
            bins.remove(b[1], S);
            bins.insert(b[0], S, None);
            bins.insert(b[1], S, None);
        }
        assert_eq!(check(&bins), Ok(2));
        let head = pending(bins.bins[0].pending);
        // SAFETY: the head is a pending block of the buffer; its node is corrupted and
        // restored by the test.
        unsafe {
            (*head).next_tagged &= !1;
            assert_eq!(check(&bins).unwrap_err().what, "bins: a pending block's node is not tagged pending");
            (*head).next_tagged |= 1;
            (*head).prev = b[2].ptr();
            assert_eq!(check(&bins).unwrap_err().what, "bins: pending node.prev != the node before it");
            (*head).prev = core::ptr::null_mut();
        }
        bins.bins[0].pending_len = 3;
        assert_eq!(check(&bins).unwrap_err().what, "bins: #pending nodes != pending_len");
        bins.bins[0].pending_len = 2;
        assert_eq!(check(&bins), Ok(2));
    }

    /// The least `(size, address)` fitting block, by a scan of `blocks` (the reference).
    fn scan(blocks: &[Block], live: &[bool], need: usize, align: usize) -> Option<Block> {
        let fitting = blocks.iter().zip(live).filter(|&(&b, &l)| {
            // SAFETY: the test's blocks are laid out and free.
            l && unsafe { b.size() >= need && fit_start(b, need, align).is_some() }
        });
        // SAFETY: as above.
        fitting.map(|(&b, _)| b).min_by_key(|b| (unsafe { b.size() }, b.addr()))
    }

    /// Over-aligned requests take the least fitting `(size, address)`, as a scan does, from
    /// list bins and treap bins (whose residue masks the checker verifies after every
    /// change), as blocks come and go in an order unrelated to their addresses.
    #[test]
    fn over_aligned_requests_take_the_least_fitting_block() {
        // A treap bin of 80-byte blocks among a few larger ones, at every payload residue.
        const N: usize = BIN_LIST_MAX + 24;
        let mut buf = Buf([0; 16384]);
        let sizes: [usize; N] = core::array::from_fn(|i| if i % 9 == 4 { 96 + 16 * (i % 5) } else { 80 });
        let b = lay_out(&mut buf, sizes);
        let mut bins = SizeBins::EMPTY;
        let mut live = [false; N];
        let aligns = [32, 64, 128, 256, 1024, 4096];
        let probe = |bins: &mut SizeBins, live: &[bool; N]| {
            for need in [64, 80, 96, 112, 160] {
                for align in aligns {
                    // SAFETY: the index holds the buffer's blocks, all free and laid out.
                    let got = unsafe { bins.best_fit(need, align) };
                    assert_eq!(got, scan(&b, live, need, align), "need {need} align {align}");
                }
            }
            assert_eq!(check(bins), Ok(live.iter().filter(|&&l| l).count()));
            for need in [64, 80, 96, 112, 160] {
                for align in aligns {
                    // SAFETY: as above; the bins searched are settled first.
                    let got = unsafe { bins.find_best(need, align) };
                    assert_eq!(got, scan(&b, live, need, align), "need {need} align {align}, settled");
                }
            }
            assert_eq!(check(bins), Ok(live.iter().filter(|&&l| l).count()));
        };
        // Blocks that touch are never both free in a heap; here the index alone is tested.
        for i in shuffled::<N>(19) {
            // SAFETY: each block is free and not yet in the index.
            unsafe { bins.insert(b[i], sizes[i], None) };
            live[i] = true;
            probe(&mut bins, &live);
        }
        assert!(bins.bins[bin_of(80)].in_tree);
        for i in shuffled::<N>(29).into_iter().take(N - 4) {
            // SAFETY: `b[i]` is in the index with its size.
            unsafe { bins.remove(b[i], sizes[i]) };
            live[i] = false;
            probe(&mut bins, &live);
        }
    }

    /// `fit_residues` against `fit_start`: exact up to `RESIDUE_SPAN`, a superset above.
    #[test]
    fn fit_residues_are_the_payloads_that_fit() {
        use super::super::tree::RESIDUE_SPAN;
        let mut buf = Buf([0; 16384]);
        let base = buf.0.as_mut_ptr();
        for align in [32, 64, 128, 512, 4096] {
            for slack in (0..=4 * 1024).step_by(BLOCK_ALIGN) {
                let need = 80;
                let wanted = fit_residues(slack, align);
                for at in (BLOCK_ALIGN - HEADER_BYTES..2048).step_by(BLOCK_ALIGN) {
                    // SAFETY: `at..at + need + slack` lies in the buffer.
                    let blk = unsafe { Block::at(base.add(at)) };
                    // SAFETY: as above; the block is written before it is read.
                    let fits = unsafe {
                        blk.write_free(need + slack);
                        fit_start(blk, need, align).is_some()
                    };
                    let bit = residue_bit(blk.ptr()) & wanted != 0;
                    if align <= RESIDUE_SPAN {
                        assert_eq!(bit, fits, "align {align} slack {slack} at {at}");
                    } else {
                        assert!(bit || !fits, "align {align} slack {slack} at {at}: fits, bit clear");
                    }
                }
            }
        }
    }

    /// Blocks in one bin: one more than a list bin holds, so that the bin is a treap.
    const TREAP_BIN_BLOCKS: usize = BIN_LIST_MAX + 1;

    /// `TREAP_BIN_BLOCKS` free blocks of `S` bytes laid out in `buf` and inserted into fresh
    /// bins (a treap bin), which the checker accepts.
    fn treap_bin_of_smallest(buf: &mut Buf) -> (SizeBins, [Block; TREAP_BIN_BLOCKS]) {
        let b = lay_out(buf, [S; TREAP_BIN_BLOCKS]);
        let mut bins = SizeBins::EMPTY;
        for x in b {
            // SAFETY: each block is free and not yet in the index.
            unsafe { bins.insert(x, S, None) };
        }
        assert_eq!(check(&bins), Ok(TREAP_BIN_BLOCKS));
        // The inserts are pending; a search settles them into the bin's treap.
        assert_eq!(best(&mut bins, S), Some(b[0]));
        assert!(bins.bins[0].in_tree && bins.bins[0].pending.is_null());
        assert_eq!(check(&bins), Ok(TREAP_BIN_BLOCKS));
        (bins, b)
    }

    #[test]
    fn check_catches_a_wrong_residue_mask() {
        let mut buf = Buf([0; 16384]);
        let (mut bins, _) = treap_bin_of_smallest(&mut buf);
        bins.trees[0].flip_root_summary_for_test(1);
        assert_eq!(check(&bins).unwrap_err().what, "tree: node residues != union of its subtree's");
    }

    #[test]
    fn check_catches_a_treap_bin_with_a_wrong_least_node() {
        const N: usize = TREAP_BIN_BLOCKS;
        let mut buf = Buf([0; 16384]);
        let (mut bins, b) = treap_bin_of_smallest(&mut buf);
        assert!(bins.bins[0].in_tree);
        bins.trees[0].set_min_for_test(b[1].ptr());
        assert_eq!(check(&bins).unwrap_err().what, "tree: min is not the least node");
        bins.trees[0].set_min_for_test(b[0].ptr());
        assert_eq!(check(&bins), Ok(N));
        // A treap bin marked as a list bin.
        bins.bins[0].in_tree = false;
        assert_eq!(check(&bins).unwrap_err().what, "bins: a list bin's tree holds blocks");
    }
}
