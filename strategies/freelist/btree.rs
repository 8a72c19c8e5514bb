//! The compact part of the fast indexes: a B+ tree of free blocks in a fixed pool of nodes
//! kept inside the index (see [`tree`](super::tree) for how it and the spill treap make one
//! index).
//!
//! # Design
//! ## Glossary
//! - *entry*: `(addr, size, max, child)`. In a leaf: one free block (`max == size`, no
//!   child). In an inner node: child `child`'s first block `(addr, size)` and the largest
//!   block size under it (`max`).
//! - *key*: [`TreeOrder::key`] of `(addr, size)`: the address (first and next fit), or
//!   `(size, address)` (best fit).
//! - *pool*: `N` nodes of [`FANOUT`] entries (456 bytes each) inside the index, linked by
//!   32-bit slot numbers (so the heap may move in memory before use), free slots on a list.
//!
//! A search reads per level one node whose arrays lie next to each other (a few cache
//! lines, which the prefetcher follows), instead of one scattered node per binary level:
//! about 1,000 free blocks fit in 3 levels.
//!
//! ## Operations
//! - Search ([`first_from`](BTree::first_from)): the first entry in key order at or above a
//!   key `lo` that fits. Inner nodes skip every child before the one that may hold `lo` and
//!   every child whose `max` is below the request; the leaf scan tests the fit.
//! - Insert: descend by key to a leaf and shift the entry in; a full node splits in halves
//!   and its new right half becomes an entry of the parent (a new root when the root
//!   splits). An insert needs at most `height + 1` new nodes: [`can_insert`](BTree::can_insert)
//!   says whether the pool has them (the caller spills the block otherwise), so no insert
//!   fails half-way.
//! - Remove: descend by key, shift the entry out; a node left with fewer than [`MIN_FILL`]
//!   entries borrows one from a sibling or merges with it (freeing a node); a root with one
//!   child gives way to it.
//! - Update in place (address order only: a block that keeps its place among the others
//!   changes address or size): descend by the old key, rewrite the entry.
//!
//! Every change refreshes, on its way back up, the entries of the nodes on its path
//! (first block, `max`).
//!
//! ## Invariants (checked by [`check`](BTree::check))
//! - keys strictly increase from leaf to leaf in order; every leaf is at depth `height`;
//! - `1 <= len <= FANOUT` for every node, `len >= MIN_FILL` except at the root;
//! - inner entry `i`: `(addr, size) == ` child `i`'s first block, `max == max` over the
//!   child's entries' `max`; leaf entry: `max == size == ` the block's header size;
//! - `#entries == len`; `#reachable nodes + #free slots == fresh <= N`, `free_nodes == N -
//!   #reachable nodes`.

use core::marker::PhantomData;

use super::block::Block;
use super::engine::fit_range;
use super::tree::TreeOrder;
use crate::strategy::CheckError;

/// Entries per node.
pub const FANOUT: usize = 16;
/// Fewest entries of a node other than the root.
pub const MIN_FILL: usize = FANOUT / 2;
/// No node.
const NIL: u32 = u32::MAX;

// ANCHOR: bnode
/// A node: `len` entries in four parallel arrays (see the module header).
#[repr(C)]
#[derive(Copy, Clone)]
struct BNode {
    addr: [usize; FANOUT],
    size: [usize; FANOUT],
    max: [usize; FANOUT],
    child: [u32; FANOUT],
    len: u32,
    leaf: bool,
}
// ANCHOR_END: bnode

/// One entry, moved between nodes.
#[derive(Copy, Clone)]
struct Entry {
    addr: usize,
    size: usize,
    max: usize,
    child: u32,
}

impl BNode {
    const EMPTY: BNode = BNode {
        addr: [0; FANOUT],
        size: [0; FANOUT],
        max: [0; FANOUT],
        child: [NIL; FANOUT],
        len: 0,
        leaf: true,
    };

    #[inline]
    fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    fn entry(&self, i: usize) -> Entry {
        Entry { addr: self.addr[i], size: self.size[i], max: self.max[i], child: self.child[i] }
    }

    #[inline]
    fn put(&mut self, i: usize, e: Entry) {
        (self.addr[i], self.size[i], self.max[i], self.child[i]) = (e.addr, e.size, e.max, e.child);
    }

    /// Inserts `e` at `i`, shifting the entries from `i` up (the node is not full).
    #[inline]
    fn insert(&mut self, i: usize, e: Entry) {
        let len = self.len();
        self.addr.copy_within(i..len, i + 1);
        self.size.copy_within(i..len, i + 1);
        self.max.copy_within(i..len, i + 1);
        self.child.copy_within(i..len, i + 1);
        self.put(i, e);
        self.len += 1;
    }

    /// Removes entry `i`, shifting the ones above down.
    #[inline]
    fn remove(&mut self, i: usize) -> Entry {
        let (len, e) = (self.len(), self.entry(i));
        self.addr.copy_within(i + 1..len, i);
        self.size.copy_within(i + 1..len, i);
        self.max.copy_within(i + 1..len, i);
        self.child.copy_within(i + 1..len, i);
        self.len -= 1;
        e
    }

    /// The largest `max` of the node's entries.
    #[inline]
    fn max_all(&self) -> usize {
        self.max[..self.len()].iter().copied().max().unwrap_or(0)
    }

    /// The entry that stands for this node in its parent (`child` set by the caller).
    #[inline]
    fn summary(&self, child: u32) -> Entry {
        Entry { addr: self.addr[0], size: self.size[0], max: self.max_all(), child }
    }
}

/// A B+ tree of free blocks ordered by `O`, in a pool of `N` nodes.
pub struct BTree<O, const N: usize> {
    nodes: [BNode; N],
    root: u32,
    /// Levels: 0 when empty, 1 when the root is a leaf.
    height: usize,
    /// Entries (blocks).
    pub(super) len: usize,
    /// Head of the free-slot list (linked through `child[0]`).
    free: u32,
    /// Slots `fresh..N` were never used.
    fresh: u32,
    /// Slots not in the tree: `N - #nodes`.
    free_nodes: usize,
    _order: PhantomData<O>,
}

impl<O: TreeOrder, const N: usize> BTree<O, N> {
    const FITS_U32: () = assert!(N < u32::MAX as usize);
    /// An empty tree (no work; all-zero but for NIL links, so a `static` costs no memory
    /// until used).
    #[allow(clippy::let_unit_value)]
    pub const EMPTY: Self = {
        let () = Self::FITS_U32;
        BTree {
            nodes: [BNode::EMPTY; N],
            root: NIL,
            height: 0,
            len: 0,
            free: NIL,
            fresh: 0,
            free_nodes: N,
            _order: PhantomData,
        }
    };

    #[inline]
    fn key(addr: usize, size: usize) -> (usize, usize) {
        O::key(addr, size)
    }

    #[inline]
    fn key_at(n: &BNode, i: usize) -> (usize, usize) {
        Self::key(n.addr[i], n.size[i])
    }

    #[inline]
    fn node(&self, n: u32) -> &BNode {
        &self.nodes[n as usize]
    }

    #[inline]
    fn node_mut(&mut self, n: u32) -> &mut BNode {
        &mut self.nodes[n as usize]
    }

    /// The child of inner node `n` whose range holds key `k`: the last entry with key
    /// `<= k`, or the first.
    #[inline]
    fn route(n: &BNode, k: (usize, usize)) -> usize {
        let mut i = 1;
        while i < n.len() && Self::key_at(n, i) <= k {
            i += 1;
        }
        i - 1
    }

    /// Whether an insert surely finds the nodes it may need (`height + 1`).
    #[inline]
    pub fn can_insert(&self) -> bool {
        self.free_nodes > self.height
    }

    /// A node from the pool, laid out empty (`can_insert` said there is one).
    fn alloc_node(&mut self, leaf: bool) -> u32 {
        let n = if self.free != NIL {
            let n = self.free;
            self.free = self.node(n).child[0];
            n
        } else {
            self.fresh += 1;
            self.fresh - 1
        };
        self.free_nodes -= 1;
        *self.node_mut(n) = BNode { leaf, ..BNode::EMPTY };
        n
    }

    /// Gives node `n` back to the pool.
    fn free_node(&mut self, n: u32) {
        let free = self.free;
        let node = self.node_mut(n);
        node.child[0] = free;
        node.len = 0;
        self.free = n;
        self.free_nodes += 1;
    }

    /// Rewrites inner node `p`'s entry `i` from its child.
    #[inline]
    fn refresh(&mut self, p: u32, i: usize) {
        let c = self.node(p).child[i];
        let e = self.node(c).summary(c);
        self.node_mut(p).put(i, e);
    }

    // ---------------------------------------------------------------- insert

    /// Adds a block (`can_insert` must hold).
    pub fn insert(&mut self, addr: usize, size: usize) {
        let e = Entry { addr, size, max: size, child: NIL };
        if self.root == NIL {
            self.root = self.alloc_node(true);
            self.height = 1;
        }
        if let Some(r) = self.insert_rec(self.root, e) {
            let (old, root) = (self.root, self.alloc_node(false));
            let (lo, hi) = (self.node(old).summary(old), self.node(r).summary(r));
            let n = self.node_mut(root);
            n.put(0, lo);
            n.put(1, hi);
            n.len = 2;
            self.root = root;
            self.height += 1;
        }
        self.len += 1;
    }

    /// Inserts `e` under node `n`; returns the new right sibling if `n` split.
    fn insert_rec(&mut self, n: u32, e: Entry) -> Option<u32> {
        let k = Self::key(e.addr, e.size);
        let node = self.node(n);
        if node.leaf {
            let mut pos = 0;
            while pos < node.len() && Self::key_at(node, pos) < k {
                pos += 1;
            }
            return self.insert_at(n, pos, e);
        }
        let i = Self::route(node, k);
        let c = node.child[i];
        let split = self.insert_rec(c, e);
        self.refresh(n, i);
        let r = split?;
        let er = self.node(r).summary(r);
        self.insert_at(n, i + 1, er)
    }

    /// Puts `e` at `pos` in node `n`, splitting a full node in halves; returns the right
    /// half's new node if it split.
    fn insert_at(&mut self, n: u32, pos: usize, e: Entry) -> Option<u32> {
        if self.node(n).len() < FANOUT {
            self.node_mut(n).insert(pos, e);
            return None;
        }
        let r = self.alloc_node(self.node(n).leaf);
        let left = *self.node(n);
        let right = self.node_mut(r);
        for j in MIN_FILL..FANOUT {
            right.put(j - MIN_FILL, left.entry(j));
        }
        right.len = (FANOUT - MIN_FILL) as u32;
        self.node_mut(n).len = MIN_FILL as u32;
        if pos <= MIN_FILL {
            self.node_mut(n).insert(pos, e);
        } else {
            self.node_mut(r).insert(pos - MIN_FILL, e);
        }
        Some(r)
    }

    // ---------------------------------------------------------------- remove

    /// Removes the block of key `(addr, size)` (it must be in the tree).
    pub fn remove(&mut self, addr: usize, size: usize) {
        self.remove_rec(self.root, Self::key(addr, size));
        self.len -= 1;
        let root = self.root;
        let r = self.node(root);
        if !r.leaf && r.len() == 1 {
            self.root = r.child[0];
            self.height -= 1;
            self.free_node(root);
        } else if r.leaf && r.len() == 0 {
            self.root = NIL;
            self.height = 0;
            self.free_node(root);
        }
    }

    fn remove_rec(&mut self, n: u32, k: (usize, usize)) {
        let node = self.node(n);
        if node.leaf {
            if let Some(pos) = (0..node.len()).find(|&j| Self::key_at(node, j) == k) {
                self.node_mut(n).remove(pos);
            }
            return;
        }
        let i = Self::route(node, k);
        let c = node.child[i];
        self.remove_rec(c, k);
        if self.node(c).len() >= MIN_FILL {
            self.refresh(n, i);
        } else {
            self.rebalance(n, i);
        }
    }

    /// Child `i` of inner node `n` fell below `MIN_FILL`: borrow from a sibling or merge.
    fn rebalance(&mut self, n: u32, i: usize) {
        // An inner node has at least two children (a root with one gives way to it).
        let (l, r) = if i > 0 { (i - 1, i) } else { (i, i + 1) };
        let (lc, rc) = (self.node(n).child[l], self.node(n).child[r]);
        let (llen, rlen) = (self.node(lc).len(), self.node(rc).len());
        if llen + rlen <= FANOUT {
            let right = *self.node(rc);
            let left = self.node_mut(lc);
            for j in 0..rlen {
                left.put(llen + j, right.entry(j));
            }
            left.len += rlen as u32;
            self.free_node(rc);
            self.node_mut(n).remove(r);
            self.refresh(n, l);
            return;
        }
        if llen < rlen {
            let e = self.node_mut(rc).remove(0);
            let left = self.node_mut(lc);
            left.insert(left.len(), e);
        } else {
            let left = self.node_mut(lc);
            let e = left.remove(left.len() - 1);
            self.node_mut(rc).insert(0, e);
        }
        self.refresh(n, l);
        self.refresh(n, r);
    }

    // ---------------------------------------------------------------- update

    /// The block of key `(addr, size)` becomes `(new_addr, new_size)`, keeping its place in
    /// the order (address order only).
    pub fn update(&mut self, addr: usize, size: usize, new_addr: usize, new_size: usize) {
        debug_assert!(!O::KEYED_BY_SIZE);
        self.update_rec(self.root, Self::key(addr, size), new_addr, new_size);
    }

    fn update_rec(&mut self, n: u32, k: (usize, usize), new_addr: usize, new_size: usize) {
        let node = self.node(n);
        if node.leaf {
            if let Some(pos) = (0..node.len()).find(|&j| Self::key_at(node, j) == k) {
                let e = Entry { addr: new_addr, size: new_size, max: new_size, child: NIL };
                self.node_mut(n).put(pos, e);
            }
            return;
        }
        let i = Self::route(node, k);
        self.update_rec(node.child[i], k, new_addr, new_size);
        self.refresh(n, i);
    }

    // ---------------------------------------------------------------- search

    // ANCHOR: btree_first_from
    /// The first block in key order with key `>= lo` that fits `need` bytes aligned for
    /// `align`, as `(addr, size)`.
    #[inline]
    pub fn first_from(&self, lo: (usize, usize), need: usize, align: usize) -> Option<(usize, usize)> {
        if self.root == NIL {
            return None;
        }
        self.first_rec(self.root, lo, need, align)
    }

    fn first_rec(&self, n: u32, lo: (usize, usize), need: usize, align: usize) -> Option<(usize, usize)> {
        let node = self.node(n);
        if node.leaf {
            return (0..node.len()).map(|j| (node.addr[j], node.size[j])).find(|&(a, s)| {
                s >= need && Self::key(a, s) >= lo && fit_range(a, a + s, need, align).is_some()
            });
        }
        // Children before `route` hold only keys below `lo`; a child whose `max` is below
        // `need` holds no block that fits.
        (Self::route(node, lo)..node.len())
            .filter(|&j| node.max[j] >= need)
            .find_map(|j| self.first_rec(node.child[j], lo, need, align))
    }
    // ANCHOR_END: btree_first_from

    // ---------------------------------------------------------------- check

    /// Checks every invariant, calling `visit` on each block; returns the number of blocks.
    ///
    /// # Safety
    /// The tree holds live free blocks (checked by `visit` before a header is read).
    pub unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
        tagged: &dyn Fn(Block) -> bool,
    ) -> Result<usize, CheckError> {
        let me = self as *const Self as usize;
        let err = |what, detail| Err(CheckError { what, addr: me, detail });
        let mut w = Walk { prev: None, blocks: 0, nodes: 0 };
        if self.root != NIL {
            // SAFETY: forwarded.
            unsafe { self.check_rec(self.root, 1, &mut w, visit, tagged) }?;
        } else if self.height != 0 || self.len != 0 {
            return err("btree: empty root but height or len != 0", self.height);
        }
        if w.blocks != self.len {
            return err("btree: #entries != len", w.blocks);
        }
        let mut free = 0;
        let mut s = self.free;
        while s != NIL && free <= N {
            free += 1;
            s = self.nodes.get(s as usize).map_or(NIL, |n| n.child[0]);
        }
        if w.nodes + free != self.fresh as usize || self.fresh as usize > N || self.free_nodes != N - w.nodes
        {
            return err("btree: #nodes + #free slots != fresh, or free_nodes != N - #nodes", free);
        }
        Ok(w.blocks)
    }

    /// Checks the subtree of `n` at `depth`; returns its largest block size.
    unsafe fn check_rec(
        &self,
        n: u32,
        depth: usize,
        w: &mut Walk,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
        tagged: &dyn Fn(Block) -> bool,
    ) -> Result<usize, CheckError> {
        let err = |what, detail| Err(CheckError { what, addr: n as usize, detail });
        w.nodes += 1;
        if w.nodes > N || n as usize >= N {
            return err("btree: more nodes than the pool (cycle?)", w.nodes);
        }
        let node = self.node(n);
        let min = if n == self.root { 1 } else { MIN_FILL };
        if node.len() < min || node.len() > FANOUT {
            return err("btree: node len outside MIN_FILL..=FANOUT (1 at the root)", node.len());
        }
        if node.leaf != (depth == self.height) {
            return err("btree: leaf not at depth height, or inner node there", depth);
        }
        if node.leaf {
            for j in 0..node.len() {
                // SAFETY: forwarded.
                unsafe { self.check_leaf_entry(node, j, w, visit, tagged) }?;
            }
            return Ok(node.max_all());
        }
        for j in 0..node.len() {
            let c = node.child[j];
            // SAFETY: forwarded.
            let max = unsafe { self.check_rec(c, depth + 1, w, visit, tagged) }?;
            let first = self.node(c);
            if (node.addr[j], node.size[j], node.max[j]) != (first.addr[0], first.size[0], max) {
                return err("btree: inner entry != (child's first block, child's max)", j);
            }
        }
        Ok(node.max_all())
    }

    /// Checks leaf entry `j`: a live free block of this size, tagged, in increasing key order.
    unsafe fn check_leaf_entry(
        &self,
        node: &BNode,
        j: usize,
        w: &mut Walk,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
        tagged: &dyn Fn(Block) -> bool,
    ) -> Result<(), CheckError> {
        let (a, s) = (node.addr[j], node.size[j]);
        let err = |what, detail| Err(CheckError { what, addr: a, detail });
        w.blocks += 1;
        if w.blocks > self.len {
            return err("btree: more entries than len", w.blocks);
        }
        if a == 0 {
            return err("btree: null block address", 0);
        }
        // SAFETY: non-null, checked above.
        let b = unsafe { Block::at(a as *mut u8) };
        visit(b)?;
        // SAFETY: `visit` found `b` a live free block.
        if unsafe { b.size() } != s || node.max[j] != s {
            return err("btree: leaf size or max != header size", s);
        }
        if !tagged(b) {
            return err("btree: block's node area lacks the B-tree tag", 0);
        }
        if w.prev.is_some_and(|p| p >= Self::key(a, s)) {
            return err("btree: keys not strictly increasing", w.prev.map_or(0, |p| p.1));
        }
        w.prev = Some(Self::key(a, s));
        Ok(())
    }
}

/// State of a checker walk.
struct Walk {
    prev: Option<(usize, usize)>,
    blocks: usize,
    nodes: usize,
}
