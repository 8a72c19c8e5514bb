//! The fast indexes: treaps over the free blocks, O(log n) expected per operation, making
//! exactly the decisions of the [`Linear`](super::Linear) walk.
//!
//! # Design
//! A treap is a binary search tree by key that is also a heap by priority. A block's
//! priority is a hash of its address, taken when it enters the tree and kept in its node, so
//! the expected depth is `O(log n)` with no random state.
//!
//! ## Glossary
//! - *pool*: an array of [`POOL_NODES`] compact nodes (40 bytes: key address, size, subtree
//!   maximum, three 32-bit links, 32-bit priority) inside the index itself, so inside the
//!   heap's `static` (no page source, no global allocator: zero-initialised, it costs no
//!   memory until touched). A search walks only the pool, which stays in the CPU caches
//!   (2,048 nodes = 80 KiB), instead of missing once per level on nodes spread over the
//!   heap. Linking through 32-bit slot numbers (not pointers) lets the heap move in memory.
//! - *pooled block*: a free block whose node is a pool slot; the first word of its node area
//!   holds its *tag*, `slot << 1 | 1` (odd), so a block named by the core finds its node.
//! - *spill*: a second treap of the same code whose nodes live in the free blocks' node
//!   areas ([`NODE_BYTES`](super::NODE_BYTES), 6 words; the first word is the size, a
//!   multiple of 16, so even: pooled and spilled blocks are told apart by that one word).
//!   It takes the blocks that find the pool full, so the index never fails and never asks
//!   for memory. Invariant: `spill.len > 0 ⇒ pool.len == POOL` (a slot that frees up takes
//!   a spilled block in at once), so the spill is searched only when the pool is full.
//!
//! A search asks the pool and, if non-empty, the spill, and takes the better answer (lower
//! address; lower `(size, address)`): each tree answers exactly for its blocks, so the union
//! answers exactly for all.
//!
//! ## Cost per change
//! Insert descends from the root (O(log n)) and rotates up (expected O(1) rotations); remove
//! rotates the node down to a leaf (expected O(1)) without a search (the tag names the
//! node); in the address tree a block that takes another's place (`replace`: a split
//! remainder, a block merged with the free block above) or changes size (`resized`) keeps
//! the node's position and priority, O(1), and `max` is repaired upward only as far as it
//! changes. Nodes carry each block's address and size, so neither searches nor changes read
//! block headers (only the tag word of a block the core names).
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
//! ## Invariants (checked by `check`), for every node `n` of either treap:
//! - order: `key(n.left subtree) < key(n) < key(n.right subtree)`;
//! - heap: `n.prio >= n.left.prio`, `n.prio >= n.right.prio`;
//! - links: `n.left.parent == n`, `n.right.parent == n`, `root.parent == NIL`;
//! - augmentation (address tree): `n.max == max(n.size, n.left.max, n.right.max)`;
//! - `n.size ==` the block's header size; `#nodes == len`;
//! - pool: `tag(block of slot s) == s << 1 | 1`; `len + #free slots == fresh` (slots at or
//!   above `fresh` were never used); `spill.len > 0 ⇒ pool.len == POOL`.

use core::marker::PhantomData;
use core::ptr;

use super::block::Block;
use super::btree::BTree;
use super::engine::{FreeIndex, fit_range};
use super::policy::{AddrSearch, SizeSearch};
use crate::strategy::CheckError;

/// B-tree nodes in the pool of [`AddrTree`] and [`SizeTree`] (456 bytes each: 114 KiB of
/// the heap's own memory, room for 2,048 to 4,096 free blocks).
pub const POOL_NODES: usize = 256;

// ANCHOR: tree_node
/// The spill treap's node, kept in a free block's node area (at most `NODE_BYTES`).
#[repr(C)]
#[derive(Copy, Clone)]
struct Node {
    /// The block's size (first: even, unlike the B-tree tag; the index never reads headers).
    size: usize,
    /// The largest `size` in this subtree (address tree only).
    max: usize,
    left: *mut u8,
    right: *mut u8,
    parent: *mut u8,
    /// Heap priority: a hash of the address the block had when it entered the tree.
    prio: u32,
}
// ANCHOR_END: tree_node

const _: () = assert!(size_of::<Node>() <= super::NODE_BYTES);

/// The node of spilled block `b` (a non-null header address).
#[inline]
fn node(b: *mut u8) -> *mut Node {
    // SAFETY: callers pass block headers (non-null); the node follows the header.
    unsafe { Block::at(b) }.node::<Node>()
}

/// The tag word: the first word of an indexed block's node area.
#[inline]
fn tag_word(b: Block) -> *mut usize {
    b.node::<usize>()
}

/// The tag of a block in the B-tree (odd; a spilled block's first node word is its size).
const BTREE_TAG: usize = 1;

/// How a tree orders its blocks.
pub trait TreeOrder: Send + 'static {
    /// The key of a block at `addr` of `size` bytes (compared as a pair).
    fn key(addr: usize, size: usize) -> (usize, usize);
    /// Whether `(a_size, a)` sorts before `(b_size, b)` (block addresses).
    #[inline]
    fn less(a: usize, a_size: usize, b: usize, b_size: usize) -> bool {
        Self::key(a, a_size) < Self::key(b, b_size)
    }
    /// Whether the key holds the size (then a change of size moves the block, and no
    /// subtree maximum is kept).
    const KEYED_BY_SIZE: bool;
}

/// Order by address.
pub struct ByAddr;
impl TreeOrder for ByAddr {
    #[inline]
    fn key(addr: usize, _size: usize) -> (usize, usize) {
        (addr, 0)
    }
    const KEYED_BY_SIZE: bool = false;
}

/// Order by size, then address.
pub struct BySize;
impl TreeOrder for BySize {
    #[inline]
    fn key(addr: usize, size: usize) -> (usize, usize) {
        (size, addr)
    }
    const KEYED_BY_SIZE: bool = true;
}

/// The priority a block gets when it enters the tree: a hash of its address.
#[inline]
fn hash_prio(addr: usize) -> u32 {
    (((addr as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// A treap of free blocks ordered by `O`, nodes kept in the blocks.
pub struct Treap<O> {
    root: *mut u8,
    len: usize,
    _order: PhantomData<O>,
}

// SAFETY: the tree links blocks owned by one heap, reached only under its lock.
unsafe impl<O> Send for Treap<O> {}

/// The default index of first and next fit: treaps by address with subtree maxima.
pub type AddrTree = Tree<ByAddr>;
/// The default index of best fit: treaps by `(size, address)`.
pub type SizeTree = Tree<BySize>;

impl<O: TreeOrder> Treap<O> {
    /// Whether subtree maxima are kept.
    const AUGMENTED: bool = !O::KEYED_BY_SIZE;
    const EMPTY: Self = Treap { root: ptr::null_mut(), len: 0, _order: PhantomData };

    /// The node of `h`.
    ///
    /// # Safety
    /// `h` is a node of the tree.
    #[inline]
    unsafe fn nd(&self, h: *mut u8) -> *mut Node {
        node(h)
    }

    /// `max` of a subtree (0 for the empty one).
    ///
    /// # Safety
    /// `t` is NIL or a tree node.
    #[inline]
    unsafe fn max_of(&self, t: *mut u8) -> usize {
        // SAFETY: a non-NIL `t` is a node of the tree.
        if t == ptr::null_mut() { 0 } else { unsafe { (*self.nd(t)).max } }
    }

    /// Recomputes `t.max` from its size and children.
    ///
    /// # Safety
    /// `t` is a tree node whose children are NIL or nodes.
    #[inline]
    unsafe fn pull(&self, t: *mut u8) {
        // SAFETY: as above.
        unsafe {
            let n = self.nd(t);
            (*n).max = (*n).size.max(self.max_of((*n).left)).max(self.max_of((*n).right));
        }
    }

    /// Whether node `a` sorts before node `b`.
    ///
    /// # Safety
    /// Both are nodes.
    #[inline]
    unsafe fn lt(&self, a: *mut u8, b: *mut u8) -> bool {
        // SAFETY: as above.
        unsafe { O::less(a as usize, (*self.nd(a)).size, b as usize, (*self.nd(b)).size) }
    }

    /// Points the link that held `old` (in `parent`, or the root) at `new`.
    ///
    /// # Safety
    /// `parent` is NIL (then `old` is the root) or a node with `old` as a child.
    #[inline]
    unsafe fn relink(&mut self, parent: *mut u8, old: *mut u8, new: *mut u8) {
        if parent == ptr::null_mut() {
            self.root = new;
            return;
        }
        // SAFETY: `parent` is a node.
        unsafe {
            let p = self.nd(parent);
            if (*p).left == old {
                (*p).left = new;
            } else {
                (*p).right = new;
            }
        }
    }

    /// Sets `c.parent = p` unless `c` is NIL.
    ///
    /// # Safety
    /// `c` is NIL or a node.
    #[inline]
    unsafe fn set_parent(&self, c: *mut u8, p: *mut u8) {
        if c != ptr::null_mut() {
            // SAFETY: as above.
            unsafe { (*self.nd(c)).parent = p };
        }
    }

    /// Rotates `x` above its parent, keeping the in-order sequence.
    ///
    /// # Safety
    /// `x` is a node with a parent.
    unsafe fn rotate_up(&mut self, x: *mut u8) {
        // SAFETY: `x`, its parent and the moved subtree are nodes of the tree.
        unsafe {
            let xn = self.nd(x);
            let p = (*xn).parent;
            let pn = self.nd(p);
            let g = (*pn).parent;
            if (*pn).left == x {
                let b = (*xn).right;
                (*pn).left = b;
                self.set_parent(b, p);
                (*xn).right = p;
            } else {
                let b = (*xn).left;
                (*pn).right = b;
                self.set_parent(b, p);
                (*xn).left = p;
            }
            (*pn).parent = x;
            (*xn).parent = g;
            self.relink(g, p, x);
            if Self::AUGMENTED {
                self.pull(p);
                self.pull(x);
            }
        }
    }

    /// Repairs `max` from `t` upward after a size in `t`'s subtree changed from `old` to
    /// `new` (0 for a node that left). Reads children only where the old size may have been
    /// the maximum: elsewhere a shrink changes nothing and a growth only raises.
    ///
    /// # Safety
    /// `t` is NIL or a node whose subtree's maxima are right except on the path to the
    /// changed node.
    #[inline]
    unsafe fn fix_up(&self, mut t: *mut u8, old: usize, new: usize) {
        if !Self::AUGMENTED {
            return;
        }
        // SAFETY: `t` and its ancestors are nodes.
        unsafe {
            if new >= old {
                // A growth: raise the maxima below `new`, no child needs reading.
                while t != ptr::null_mut() && (*self.nd(t)).max < new {
                    (*self.nd(t)).max = new;
                    t = (*self.nd(t)).parent;
                }
                return;
            }
            // A shrink: only a node whose max was `old` can change.
            while t != ptr::null_mut() && (*self.nd(t)).max == old {
                let n = self.nd(t);
                self.pull(t);
                if (*n).max == old {
                    return;
                }
                t = (*n).parent;
            }
        }
    }

    /// Writes a fresh node into block `x` of `size` bytes and links it in.
    ///
    /// # Safety
    /// `x` is a free block not in the tree whose node memory the tree may write.
    #[inline]
    unsafe fn insert_new(&mut self, x: *mut u8, size: usize) {
        let addr = x as usize;
        let nil = ptr::null_mut();
        // SAFETY: as above.
        unsafe {
            self.nd(x).write(Node {
                size,
                max: size,
                left: nil,
                right: nil,
                parent: nil,
                prio: hash_prio(addr),
            });
            self.insert_node(x, addr, size);
        }
        self.len += 1;
    }

    /// Makes `x` (node fields written) a leaf under the search path, then rotates it up to
    /// its place by priority.
    ///
    /// # Safety
    /// `x` is a node not in the tree, its `size`, `prio` and key set, links NIL.
    unsafe fn insert_node(&mut self, x: *mut u8, addr: usize, size: usize) {
        // SAFETY: the descent follows nodes of the tree; `x` becomes one.
        unsafe {
            let (mut t, mut parent, mut left) = (self.root, ptr::null_mut(), false);
            while t != ptr::null_mut() {
                let n = self.nd(t);
                if Self::AUGMENTED && (*n).max < size {
                    (*n).max = size;
                }
                parent = t;
                left = O::less(addr, size, t as usize, (*n).size);
                t = if left { (*n).left } else { (*n).right };
            }
            let xn = self.nd(x);
            (*xn).parent = parent;
            if parent == ptr::null_mut() {
                self.root = x;
            } else if left {
                (*self.nd(parent)).left = x;
            } else {
                (*self.nd(parent)).right = x;
            }
            let prio = (*xn).prio;
            while !(*xn).parent.is_null() && prio > (*self.nd((*xn).parent)).prio {
                self.rotate_up(x);
            }
        }
    }

    /// Rotates `x` down to a leaf and unlinks it (its node memory is then free).
    ///
    /// # Safety
    /// `x` is in the tree.
    unsafe fn remove_node(&mut self, x: *mut u8) {
        // SAFETY: `x` and its relatives are nodes of the tree.
        unsafe {
            let xn = self.nd(x);
            while (*xn).left != ptr::null_mut() && (*xn).right != ptr::null_mut() {
                let (l, r) = ((*xn).left, (*xn).right);
                self.rotate_up(if (*self.nd(l)).prio > (*self.nd(r)).prio { l } else { r });
            }
            let child = if (*xn).left == ptr::null_mut() { (*xn).right } else { (*xn).left };
            let parent = (*xn).parent;
            self.set_parent(child, parent);
            self.relink(parent, x, child);
            self.fix_up(parent, (*xn).size, 0);
        }
        self.len -= 1;
    }

    /// Node `x` now stands for a block at `addr` of `new` bytes (was `old`), its key address
    /// already updated: repairs maxima in place (address order, where the position holds)
    /// or moves the node (size order).
    ///
    /// # Safety
    /// `x` is in the tree; in address order, `addr` keeps `x`'s place in the order.
    #[inline]
    unsafe fn rekey(&mut self, x: *mut u8, addr: usize, old: usize, new: usize) {
        // SAFETY: as above.
        unsafe {
            if O::KEYED_BY_SIZE {
                self.remove_node(x);
                let n = self.nd(x);
                (*n).size = new;
                (*n).max = new;
                (*n).left = ptr::null_mut();
                (*n).right = ptr::null_mut();
                (*n).parent = ptr::null_mut();
                self.insert_node(x, addr, new);
                self.len += 1;
            } else {
                (*self.nd(x)).size = new;
                self.fix_up(x, old, new);
            }
        }
    }

    /// In order, checking the invariants below `t`; returns the subtree's max size.
    ///
    /// # Safety
    /// The tree holds live free blocks (checked by `visit` before a block is read).
    unsafe fn check_at(
        &self,
        t: *mut u8,
        parent: *mut u8,
        prev: &mut Option<*mut u8>,
        count: &mut usize,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        if t == ptr::null_mut() {
            return Ok(0);
        }
        *count += 1;
        // SAFETY: `t` is reached from the root through links (a cycle is caught by `count`).
        let addr = t as usize;
        let err = |what, detail| Err(CheckError { what, addr, detail });
        if *count > self.len {
            return err("tree: more nodes than len (cycle?)", *count);
        }
        if addr == 0 {
            return err("tree: node with a null block address", 0);
        }
        // SAFETY: non-null, checked just above.
        let b = unsafe { Block::at(addr as *mut u8) };
        visit(b)?;
        // SAFETY: `visit` checked `b` is a live free block; children are checked when reached.
        unsafe {
            let n = self.nd(t);
            if (*n).parent != parent {
                return err("tree: node.parent != the node linking to it", 0);
            }
            if !parent.is_null() && (*n).prio > (*self.nd(parent)).prio {
                return err("tree: priority above the parent's (heap order)", (*n).prio as usize);
            }
            if (*n).size != b.size() {
                return err("tree: node.size != header size", (*n).size);
            }
            let lmax = self.check_at((*n).left, t, prev, count, visit)?;
            if let Some(p) = *prev
                && !self.lt(p, t)
            {
                return err("tree: in-order keys not strictly increasing", p as usize);
            }
            *prev = Some(t);
            let rmax = self.check_at((*n).right, t, prev, count, visit)?;
            let max = (*n).size.max(lmax).max(rmax);
            if Self::AUGMENTED && (*n).max != max {
                return err("tree: node.max != max(size, children's max)", (*n).max);
            }
            Ok(max)
        }
    }

    /// Checks the whole tree; returns its number of nodes.
    ///
    /// # Safety
    /// As for [`check_at`](Self::check_at).
    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let (mut prev, mut count) = (None, 0);
        // SAFETY: forwarded.
        unsafe { self.check_at(self.root, ptr::null_mut(), &mut prev, &mut count, visit) }?;
        if count != self.len {
            return Err(CheckError {
                what: "tree: #nodes != len",
                addr: self as *const Self as usize,
                detail: count,
            });
        }
        Ok(count)
    }

    // ANCHOR: addr_first_at
    /// The lowest address of a block in `t` at or above `from` that fits.
    ///
    /// # Safety
    /// `t` is NIL or a subtree of live free blocks.
    unsafe fn first_at(&self, t: *mut u8, from: usize, need: usize, align: usize) -> Option<usize> {
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            if self.max_of(t) < need {
                return None;
            }
            let (n, addr) = (self.nd(t), (t as usize));
            if addr < from {
                return self.first_at((*n).right, from, need, align);
            }
            if let Some(a) = self.first_at((*n).left, from, need, align) {
                return Some(a);
            }
            if (*n).size >= need && fit_range(addr, addr + (*n).size, need, align).is_some() {
                return Some(addr);
            }
            self.first_at((*n).right, from, need, align)
        }
    }
    // ANCHOR_END: addr_first_at

    /// The least node with key `>= (size, addr)`, as `(size, addr)`.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    unsafe fn lower_bound(&self, size: usize, addr: usize) -> Option<(usize, usize)> {
        let (mut t, mut best) = (self.root, None);
        while t != ptr::null_mut() {
            // SAFETY: `t` is a node.
            let (n, a) = unsafe { (&*self.nd(t), (t as usize)) };
            if (n.size, a) >= (size, addr) {
                best = Some((n.size, a));
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }

    /// The least `(size, addr)` of a block that fits.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<(usize, usize)> {
        let (mut size, mut addr) = (need, 0);
        loop {
            // SAFETY: forwarded.
            let (s, a) = unsafe { self.lower_bound(size, addr) }?;
            if fit_range(a, a + s, need, align).is_some() {
                return Some((s, a));
            }
            (size, addr) = (s, a + 1);
        }
    }
}

impl<O: TreeOrder> Treap<O> {
    /// `new` (`new_size` bytes) takes the place of spilled `old` (`old_size`).
    ///
    /// # Safety
    /// As for [`FreeIndex::replace`], `old` spilled.
    unsafe fn replace_block(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is in the tree; its node is read whole before `new`'s (which may
        // overlap it) is written.
        unsafe {
            if O::KEYED_BY_SIZE {
                self.remove_node(old.ptr());
                self.insert_new(new.ptr(), new_size);
                return;
            }
            // Same place in address order: `new` takes over `old`'s node, links and priority.
            let (x, mut n) = (new.ptr(), self.nd(old.ptr()).read());
            n.size = new_size;
            self.nd(x).write(n);
            self.relink(n.parent, old.ptr(), x);
            self.set_parent(n.left, x);
            self.set_parent(n.right, x);
            self.fix_up(x, old_size, new_size);
        }
    }
}

/// The fast index: a B+ tree in a pool of `NODES` nodes inside the index, and a treap in
/// the blocks for what the pool cannot hold (see the module header).
pub struct Tree<O, const NODES: usize = POOL_NODES> {
    btree: BTree<O, NODES>,
    spill: Treap<O>,
}

impl<O: TreeOrder, const NODES: usize> Tree<O, NODES> {
    /// Whether indexed block `b` is in the B-tree (else in the spill).
    ///
    /// # Safety
    /// `b` is indexed.
    #[inline]
    unsafe fn in_btree(b: Block) -> bool {
        // SAFETY: an indexed block's node area starts with the tag (odd) or its spill node's
        // size (a multiple of 16).
        unsafe { tag_word(b).read() & 1 == 1 }
    }

    /// Indexes free block `b` of `size` bytes where there is room.
    ///
    /// # Safety
    /// `b` is a free block not in the index.
    #[inline]
    unsafe fn add(&mut self, b: Block, size: usize) {
        // SAFETY: `b`'s node area is the index's.
        unsafe {
            if self.btree.can_insert() {
                tag_word(b).write(BTREE_TAG);
                self.btree.insert(b.addr(), size);
            } else {
                self.spill.insert_new(b.ptr(), size);
            }
        }
    }

    /// After the B-tree lost a block: spilled blocks move into it while it surely has room,
    /// so that `spill.len > 0 ⇒ ¬btree.can_insert()` holds again.
    #[inline]
    fn settle(&mut self) {
        if self.spill.len > 0 {
            self.unspill();
        }
    }

    #[cold]
    fn unspill(&mut self) {
        while self.spill.len > 0 && self.btree.can_insert() {
            let r = self.spill.root;
            // SAFETY: the spill is non-empty, so `r` is a spilled block; its size is read
            // from its node before the node area takes the tag.
            let size = unsafe {
                let size = (*node(r)).size;
                self.spill.remove_node(r);
                tag_word(Block::at(r)).write(BTREE_TAG);
                size
            };
            self.btree.insert(r as usize, size);
        }
    }

    /// Blocks in the B-tree and in the spill.
    pub fn lens(&self) -> (usize, usize) {
        (self.btree.len, self.spill.len)
    }
}

// SAFETY: only node memory of indexed blocks (the tag or a spill node) and the index's own
// pool are written; each part holds exactly the blocks put in it (the checker proves it),
// and every block is in exactly one: `insert` puts it in one, and every other change goes to
// the part its tag names.
unsafe impl<O: TreeOrder, const NODES: usize> FreeIndex for Tree<O, NODES> {
    const EMPTY: Self = Tree { btree: BTree::EMPTY, spill: Treap::EMPTY };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        // SAFETY: forwarded.
        unsafe { self.add(b, size) }
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, size: usize) {
        // SAFETY: `b` is indexed; its tag names its part.
        unsafe {
            if Self::in_btree(b) {
                self.btree.remove(b.addr(), size);
                self.settle();
            } else {
                self.spill.remove_node(b.ptr());
            }
        }
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is indexed; its tag is read before `new`'s node area (which may
        // overlap it) is written.
        unsafe {
            if !Self::in_btree(old) {
                self.spill.replace_block(old, old_size, new, new_size);
            } else if O::KEYED_BY_SIZE {
                self.btree.remove(old.addr(), old_size);
                self.add(new, new_size);
                self.settle();
            } else {
                tag_word(new).write(BTREE_TAG);
                self.btree.update(old.addr(), old_size, new.addr(), new_size);
            }
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        // SAFETY: `b` is indexed with `old_size`.
        unsafe {
            match (Self::in_btree(b), O::KEYED_BY_SIZE) {
                (true, false) => self.btree.update(b.addr(), old_size, b.addr(), new_size),
                (true, true) => {
                    self.btree.remove(b.addr(), old_size);
                    self.add(b, new_size);
                    self.settle();
                }
                (false, true) => {
                    self.spill.remove_node(b.ptr());
                    self.spill.insert_new(b.ptr(), new_size);
                }
                (false, false) => self.spill.rekey(b.ptr(), b.addr(), old_size, new_size),
            }
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        if self.spill.len > 0 && self.btree.can_insert() {
            let addr = self as *const Self as usize;
            return Err(CheckError {
                what: "spill not empty while the B-tree has room",
                addr,
                detail: self.spill.len,
            });
        }
        // SAFETY: `visit` checks each block before it is read.
        let tagged = |b: Block| unsafe { tag_word(b).read() == BTREE_TAG };
        // SAFETY: forwarded; a spilled block's first node word is checked to be its size.
        Ok(unsafe { self.btree.check(visit, &tagged)? + self.spill.check(visit)? })
    }
}

// ANCHOR: addr_first_fit
// SAFETY: each part returns its lowest-address block at or above `from` that fits (the
// B-tree prunes only by `max` and by key, the treap only by `max`: necessary conditions);
// the lower of the two is the lowest of all, as the contract asks.
unsafe impl<const NODES: usize> AddrSearch for Tree<ByAddr, NODES> {
    #[inline]
    unsafe fn first_fit(&self, from: usize, need: usize, align: usize) -> Option<Block> {
        let mut a = self.btree.first_from((from, 0), need, align).map(|(a, _)| a);
        if self.spill.len > 0 {
            // SAFETY: the spill holds live free blocks.
            let s = unsafe { self.spill.first_at(self.spill.root, from, need, align) };
            a = match (a, s) {
                (Some(a), Some(s)) => Some(a.min(s)),
                (a, s) => a.or(s),
            };
        }
        // SAFETY: a block address is non-null.
        a.map(|a| unsafe { Block::at(a as *mut u8) })
    }
}
// ANCHOR_END: addr_first_fit

// ANCHOR: size_best_fit
// SAFETY: each part takes candidates in increasing `(size, address)` from `(need, 0)` on
// and returns the first that fits, its least fitting key; the lesser of the two is the
// least of all, as the contract asks.
unsafe impl<const NODES: usize> SizeSearch for Tree<BySize, NODES> {
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block> {
        let mut a = self.btree.first_from((need, 0), need, align).map(|(a, s)| (s, a));
        if self.spill.len > 0 {
            // SAFETY: the spill holds live free blocks.
            let s = unsafe { self.spill.best_fit(need, align) };
            a = match (a, s) {
                (Some(a), Some(s)) => Some(a.min(s)),
                (a, s) => a.or(s),
            };
        }
        // SAFETY: a block address is non-null.
        a.map(|(_, a)| unsafe { Block::at(a as *mut u8) })
    }
}
// ANCHOR_END: size_best_fit
