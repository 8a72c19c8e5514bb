//! The fast indexes: an intrusive treap over the free blocks, O(log n) expected per
//! operation, making exactly the decisions of the [`Linear`](super::Linear) walk.
//!
//! # Design
//! A treap is a binary search tree by key that is also a heap by priority. Here the priority
//! of a block is a hash of its address, so the shape of the tree is a function of the set of
//! free blocks alone (no random state, no history) and its expected depth is `O(log n)`.
//! Nodes live in the free blocks' node area ([`NODE_BYTES`](super::NODE_BYTES)); nothing is
//! allocated.
//!
//! - [`AddrTree`] orders by address and keeps in each node the largest block size of its
//!   subtree (`max`). First fit descends to the leftmost subtree whose `max` admits the
//!   request: the lowest-address fitting block, as the list walk finds it. Next fit does the
//!   same from the rover's address.
//! - [`SizeTree`] orders by `(size, address)`. Best fit takes the least key `>= (need, 0)`:
//!   the smallest fitting block, lowest address on ties, as the list walk finds it.
//!
//! For alignments above 16 bytes a block of sufficient size may still not fit (its aligned
//! start lies too high); both searches then go on to the next candidate in the same order,
//! so the decision stays the walk's.
//!
//! Invariants (checked by `check`), for every node `n`:
//! - order: `key(n.left subtree) < key(n) < key(n.right subtree)`;
//! - heap: `prio(n) >= prio(n.left)`, `prio(n) >= prio(n.right)`;
//! - augmentation: `n.max == max(n.size, n.left.max, n.right.max)`;
//! - `n.size ==` the block's header size; `#nodes == len`.

use core::marker::PhantomData;
use core::ptr;

use super::block::Block;
use super::engine::{FreeIndex, fit_start};
use super::policy::{AddrSearch, SizeSearch};
use crate::strategy::CheckError;

/// The tree node kept in a free block's node area (exactly `NODE_BYTES`).
#[repr(C)]
struct Node {
    left: *mut u8,
    right: *mut u8,
    /// The block's size (the index never reads headers: the core may be rewriting them).
    size: usize,
    /// The largest `size` in this subtree.
    max: usize,
}

const _: () = assert!(size_of::<Node>() <= super::NODE_BYTES);

/// How a tree orders its blocks.
pub trait TreeOrder: Send + 'static {
    /// Whether `(a_size, a)` sorts before `(b_size, b)`.
    fn less(a: *mut u8, a_size: usize, b: *mut u8, b_size: usize) -> bool;
    /// Whether the key holds the size (then a change of size moves the block).
    const KEYED_BY_SIZE: bool;
}

/// Order by address.
pub struct ByAddr;
impl TreeOrder for ByAddr {
    #[inline]
    fn less(a: *mut u8, _: usize, b: *mut u8, _: usize) -> bool {
        a < b
    }
    const KEYED_BY_SIZE: bool = false;
}

/// Order by size, then address.
pub struct BySize;
impl TreeOrder for BySize {
    #[inline]
    fn less(a: *mut u8, a_size: usize, b: *mut u8, b_size: usize) -> bool {
        (a_size, a) < (b_size, b)
    }
    const KEYED_BY_SIZE: bool = true;
}

/// A treap of free blocks ordered by `O`.
pub struct Treap<O> {
    root: *mut u8,
    len: usize,
    _order: PhantomData<O>,
}

/// The default index of first and next fit: a treap by address with subtree maxima.
pub type AddrTree = Treap<ByAddr>;
/// The default index of best fit: a treap by `(size, address)`.
pub type SizeTree = Treap<BySize>;

// SAFETY: the tree links blocks owned by one heap, reached only under its lock.
unsafe impl<O> Send for Treap<O> {}

/// The node of block `b` (a non-null header address).
#[inline]
fn node(b: *mut u8) -> *mut Node {
    // SAFETY: callers pass block headers (non-null); the node follows the header.
    unsafe { Block::at(b) }.node::<Node>()
}

/// The priority of a block: a hash of its address (Fibonacci hashing).
#[inline]
fn prio(b: *mut u8) -> u64 {
    ((b as usize as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `max` of a subtree (0 for the empty one).
///
/// # Safety
/// `t` is null or a tree node.
#[inline]
unsafe fn max_of(t: *mut u8) -> usize {
    // SAFETY: a non-null `t` is a node of the tree.
    if t.is_null() { 0 } else { unsafe { (*node(t)).max } }
}

/// Recomputes `t.max` from its size and children.
///
/// # Safety
/// `t` is a tree node whose children are null or nodes.
#[inline]
unsafe fn pull(t: *mut u8) {
    // SAFETY: as above.
    unsafe {
        let n = node(t);
        (*n).max = (*n).size.max(max_of((*n).left)).max(max_of((*n).right));
    }
}

impl<O: TreeOrder> Treap<O> {
    /// Whether node `a` sorts before node `b`.
    ///
    /// # Safety
    /// Both are nodes (their `size` fields are set).
    #[inline]
    unsafe fn lt(a: *mut u8, b: *mut u8) -> bool {
        // SAFETY: as above.
        unsafe { O::less(a, (*node(a)).size, b, (*node(b)).size) }
    }

    /// Splits `t` into the nodes sorting before `x` and the rest.
    ///
    /// # Safety
    /// `t` is null or a subtree; `x` is a node not in it.
    unsafe fn split(t: *mut u8, x: *mut u8) -> (*mut u8, *mut u8) {
        if t.is_null() {
            return (ptr::null_mut(), ptr::null_mut());
        }
        // SAFETY: `t` and its descendants are nodes.
        unsafe {
            let n = node(t);
            if Self::lt(t, x) {
                let (l, r) = Self::split((*n).right, x);
                (*n).right = l;
                pull(t);
                (t, r)
            } else {
                let (l, r) = Self::split((*n).left, x);
                (*n).left = r;
                pull(t);
                (l, t)
            }
        }
    }

    /// Joins two subtrees, every key of `a` below every key of `b`.
    ///
    /// # Safety
    /// Both are null or subtrees, disjoint and ordered.
    unsafe fn merge(a: *mut u8, b: *mut u8) -> *mut u8 {
        if a.is_null() {
            return b;
        }
        if b.is_null() {
            return a;
        }
        // SAFETY: `a` and `b` are nodes.
        unsafe {
            if prio(a) > prio(b) {
                (*node(a)).right = Self::merge((*node(a)).right, b);
                pull(a);
                a
            } else {
                (*node(b)).left = Self::merge(a, (*node(b)).left);
                pull(b);
                b
            }
        }
    }

    /// Inserts node `x` (its fields set but the links) into `t`; returns the new root.
    ///
    /// # Safety
    /// `t` is null or a subtree; `x` is a node not in it, its `size` set.
    unsafe fn insert_at(t: *mut u8, x: *mut u8) -> *mut u8 {
        // SAFETY: `t`, its descendants and `x` are nodes.
        unsafe {
            if t.is_null() || prio(x) > prio(t) {
                let (l, r) = Self::split(t, x);
                let n = node(x);
                (*n).left = l;
                (*n).right = r;
                pull(x);
                return x;
            }
            let n = node(t);
            if Self::lt(x, t) {
                (*n).left = Self::insert_at((*n).left, x);
            } else {
                (*n).right = Self::insert_at((*n).right, x);
            }
            (*n).max = (*n).max.max((*node(x)).size);
            t
        }
    }

    /// Removes node `x` (sorting by `x_size`) from `t`; returns the new root.
    ///
    /// # Safety
    /// `x` is in subtree `t` with size `x_size`.
    unsafe fn remove_at(t: *mut u8, x: *mut u8, x_size: usize) -> *mut u8 {
        // SAFETY: `t` is a node on the search path to `x` (the caller's guarantee).
        unsafe {
            let n = node(t);
            if t == x {
                return Self::merge((*n).left, (*n).right);
            }
            if O::less(x, x_size, t, (*n).size) {
                (*n).left = Self::remove_at((*n).left, x, x_size);
            } else {
                (*n).right = Self::remove_at((*n).right, x, x_size);
            }
            pull(t);
            t
        }
    }

    /// Recomputes `max` on the path from `t` down to `x`.
    ///
    /// # Safety
    /// `x` is in subtree `t`, keyed by `x_size`.
    unsafe fn repull(t: *mut u8, x: *mut u8, x_size: usize) {
        // SAFETY: `t` is a node on the search path to `x`.
        unsafe {
            let n = node(t);
            if t != x {
                let child = if O::less(x, x_size, t, (*n).size) { (*n).left } else { (*n).right };
                Self::repull(child, x, x_size);
            }
            pull(t);
        }
    }

    /// In order, checking the invariants below `t`; returns the subtree's max.
    ///
    /// # Safety
    /// The tree holds live free blocks (checked by `visit` before a node is read).
    unsafe fn check_at(
        &self,
        t: *mut u8,
        prev: &mut *mut u8,
        count: &mut usize,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        if t.is_null() {
            return Ok(0);
        }
        let err = |what, detail| Err(CheckError { what, addr: t as usize, detail });
        *count += 1;
        if *count > self.len {
            return err("tree: more nodes than len (cycle?)", *count);
        }
        // SAFETY: `visit` checks `t` is a live free block before its node is read.
        visit(unsafe { Block::at(t) })?;
        // SAFETY: as above; children are checked when reached.
        unsafe {
            let n = node(t);
            for child in [(*n).left, (*n).right] {
                if !child.is_null() && prio(child) > prio(t) {
                    return err("tree: child priority above parent's (heap order)", child as usize);
                }
            }
            if (*n).size != Block::at(t).size() {
                return err("tree: node.size != header size", (*n).size);
            }
            let lmax = self.check_at((*n).left, prev, count, visit)?;
            if !prev.is_null() && !Self::lt(*prev, t) {
                return err("tree: in-order keys not strictly increasing", *prev as usize);
            }
            *prev = t;
            let rmax = self.check_at((*n).right, prev, count, visit)?;
            let max = (*n).size.max(lmax).max(rmax);
            if (*n).max != max {
                return err("tree: node.max != max(size, children's max)", (*n).max);
            }
            Ok(max)
        }
    }
}

// SAFETY: only node memory of indexed blocks is written; the tree holds exactly what was
// inserted and not removed (the checker proves it).
unsafe impl<O: TreeOrder> FreeIndex for Treap<O> {
    const EMPTY: Self = Treap { root: ptr::null_mut(), len: 0, _order: PhantomData };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        // SAFETY: `b` is a free block not in the tree; its node memory is ours.
        unsafe {
            node(b.ptr()).write(Node { left: ptr::null_mut(), right: ptr::null_mut(), size, max: size });
            self.root = Self::insert_at(self.root, b.ptr());
        }
        self.len += 1;
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, size: usize) {
        // SAFETY: `b` is in the tree with `size`.
        self.root = unsafe { Self::remove_at(self.root, b.ptr(), size) };
        self.len -= 1;
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is in the tree; its node is done with before `new`'s is written.
        unsafe {
            self.remove(old, old_size);
            self.insert(new, new_size, None);
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        // SAFETY: `b` is in the tree with `old_size`.
        unsafe {
            if O::KEYED_BY_SIZE {
                self.remove(b, old_size);
                self.insert(b, new_size, None);
            } else {
                (*node(b.ptr())).size = new_size;
                Self::repull(self.root, b.ptr(), new_size);
            }
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let (mut prev, mut count) = (ptr::null_mut(), 0);
        // SAFETY: forwarded.
        unsafe { self.check_at(self.root, &mut prev, &mut count, visit) }?;
        if count != self.len {
            return Err(CheckError { what: "tree: #nodes != len", addr: self.root as usize, detail: count });
        }
        Ok(count)
    }
}

impl AddrTree {
    /// The lowest-address block in `t` at or above `from` that fits.
    ///
    /// # Safety
    /// `t` is null or a subtree of live free blocks.
    unsafe fn first_at(t: *mut u8, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            if max_of(t) < need {
                return None;
            }
            let n = node(t);
            if (t as usize) < from {
                return Self::first_at((*n).right, from, need, align);
            }
            if let Some(b) = Self::first_at((*n).left, from, need, align) {
                return Some(b);
            }
            let b = Block::at(t);
            if (*n).size >= need && fit_start(b, need, align).is_some() {
                return Some(b);
            }
            Self::first_at((*n).right, from, need, align)
        }
    }
}

// SAFETY: the search visits every subtree that may hold a block at or above `from` of size
// `>= need` (pruning only by `max`, a necessary condition), left before node before right, so
// it returns the lowest-address fitting block, as the contract asks.
unsafe impl AddrSearch for AddrTree {
    #[inline]
    unsafe fn first_fit(&self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { Self::first_at(self.root, from, need, align) }
    }
}

impl SizeTree {
    /// The least node with key `>= (size, addr)`.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    unsafe fn lower_bound(&self, size: usize, addr: usize) -> *mut u8 {
        let (mut t, mut best) = (self.root, ptr::null_mut());
        while !t.is_null() {
            // SAFETY: `t` is a node.
            let n = unsafe { &*node(t) };
            if (n.size, t as usize) >= (size, addr) {
                best = t;
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }
}

// SAFETY: candidates are taken in increasing `(size, address)` from `(need, 0)` on, and the
// first that fits is returned: the least fitting key, as the contract asks.
unsafe impl SizeSearch for SizeTree {
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block> {
        let (mut size, mut addr) = (need, 0);
        loop {
            // SAFETY: the tree holds live free blocks.
            let t = unsafe { self.lower_bound(size, addr) };
            if t.is_null() {
                return None;
            }
            // SAFETY: `t` is a node of a live free block.
            let b = unsafe { Block::at(t) };
            // SAFETY: as above.
            if unsafe { fit_start(b, need, align) }.is_some() {
                return Some(b);
            }
            // SAFETY: as above.
            (size, addr) = (unsafe { (*node(t)).size }, t as usize + 1);
        }
    }
}
