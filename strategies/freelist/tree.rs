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

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr;

use super::block::Block;
use super::engine::{FreeIndex, fit_range};
use super::policy::{AddrSearch, SizeSearch};
use crate::strategy::CheckError;

/// Nodes in the pool of [`AddrTree`] and [`SizeTree`] (80 KiB of the heap's own memory).
pub const POOL_NODES: usize = 2048;

// ANCHOR: tree_node
/// A treap node, with links `H` (32-bit slots in the pool, block addresses in the spill)
/// and key address `A` (stored in the pool; the block's own address in the spill).
#[repr(C)]
#[derive(Copy, Clone)]
pub struct Node<H, A> {
    /// The block's size (first: even, unlike a pool tag; the index never reads headers).
    size: usize,
    /// The largest `size` in this subtree (address tree only).
    max: usize,
    left: H,
    right: H,
    parent: H,
    /// Heap priority: a hash of the address the block had when it entered the tree.
    prio: u32,
    /// The block's header address (pool nodes), `()` in the spill.
    at: A,
}
// ANCHOR_END: tree_node

/// A spilled block's node, in its node area.
type BlockNode = Node<*mut u8, ()>;
/// A pool node.
type PoolNode = Node<u32, usize>;

const _: () = assert!(size_of::<BlockNode>() <= super::NODE_BYTES);
const _: () = assert!(size_of::<PoolNode>() == 40);

/// Where a treap keeps its nodes.
///
/// # Safety
/// *Implementors must guarantee* that for the handle `h` of a node in the tree, `node(h)`
/// points to that node, valid for reads and writes and written by nothing but the tree, and
/// `addr(h)` is the header address of its block.
pub unsafe trait Store: Send {
    /// A node handle.
    type H: Copy + Eq;
    /// The key address kept in the node (or `()`).
    type A: Copy;
    /// No node.
    const NIL: Self::H;
    /// An empty store (no work).
    const EMPTY: Self;
    /// The node of `h`.
    ///
    /// # Safety
    /// `h` is a node of the tree.
    unsafe fn node(&self, h: Self::H) -> *mut Node<Self::H, Self::A>;
    /// The block address of `h`.
    ///
    /// # Safety
    /// As for [`node`](Self::node).
    unsafe fn addr(&self, h: Self::H) -> usize;
    /// Whether block `b`'s memory names node `h` (the pool's tag); checker only.
    ///
    /// # Safety
    /// `b` is a live free block holding node `h`.
    unsafe fn owns(&self, h: Self::H, b: Block) -> bool;
}

/// Nodes in the free blocks' node areas.
pub struct InBlock;

// SAFETY: a spilled block's node area belongs to the index while the block is indexed.
unsafe impl Store for InBlock {
    type H = *mut u8;
    type A = ();
    const NIL: *mut u8 = ptr::null_mut();
    const EMPTY: Self = InBlock;

    #[inline]
    unsafe fn node(&self, h: *mut u8) -> *mut BlockNode {
        // SAFETY: `h` is a block header (non-null); the node follows it.
        unsafe { Block::at(h) }.node::<BlockNode>()
    }
    #[inline]
    unsafe fn addr(&self, h: *mut u8) -> usize {
        h as usize
    }
    #[inline]
    unsafe fn owns(&self, _h: *mut u8, _b: Block) -> bool {
        true
    }
}

/// The tag a pooled block keeps in the first word of its node area.
#[inline]
fn tag_of(slot: u32) -> usize {
    (slot as usize) << 1 | 1
}

/// The tag word of block `b`.
#[inline]
fn tag_word(b: Block) -> *mut usize {
    b.node::<usize>()
}

/// `N` nodes inside the index, linked by slot number.
pub struct Pool<const N: usize> {
    nodes: UnsafeCell<[PoolNode; N]>,
    /// Head of the list of freed slots (linked through `left`), or `NIL`.
    free: u32,
    /// Slots `fresh..N` were never used.
    fresh: u32,
}

impl<const N: usize> Pool<N> {
    const NIL_SLOT: u32 = u32::MAX;
    const ZERO: PoolNode =
        Node { size: 0, max: 0, left: u32::MAX, right: u32::MAX, parent: u32::MAX, prio: 0, at: 0 };
    const FITS_U32: () = assert!(N < u32::MAX as usize);

    /// A free slot, if any.
    #[inline]
    fn take(&mut self) -> Option<u32> {
        if self.free != Self::NIL_SLOT {
            let s = self.free;
            // SAFETY: `s` is a slot (below `fresh`) on the free list.
            self.free = unsafe { (*self.node(s)).left };
            return Some(s);
        }
        if (self.fresh as usize) < N {
            self.fresh += 1;
            return Some(self.fresh - 1);
        }
        None
    }

    /// Puts slot `s` on the free list.
    ///
    /// # Safety
    /// `s` is a used slot no longer in the tree.
    #[inline]
    unsafe fn give(&mut self, s: u32) {
        // SAFETY: `s < N`.
        unsafe { (*self.node(s)).left = self.free };
        self.free = s;
    }

    /// Number of slots on the free list (at most `limit`: a cycle stops there).
    fn free_count(&self, limit: usize) -> usize {
        let (mut s, mut n) = (self.free, 0);
        while s != Self::NIL_SLOT && n <= limit {
            n += 1;
            // SAFETY: free-list slots are below `fresh <= N` (checked by the caller's count).
            s = if (s as usize) < N { unsafe { (*self.node(s)).left } } else { Self::NIL_SLOT };
        }
        n
    }
}

// SAFETY: slot `h < N` is inside the array; the array is reached only through the index,
// under the heap's lock; `at` holds the block address written at insertion.
unsafe impl<const N: usize> Store for Pool<N> {
    type H = u32;
    type A = usize;
    const NIL: u32 = u32::MAX;
    #[allow(clippy::let_unit_value)]
    const EMPTY: Self = {
        let () = Self::FITS_U32;
        Pool { nodes: UnsafeCell::new([Self::ZERO; N]), free: Self::NIL_SLOT, fresh: 0 }
    };

    #[inline]
    unsafe fn node(&self, h: u32) -> *mut PoolNode {
        // SAFETY: `h < N` (a slot handed out by `take`).
        unsafe { self.nodes.get().cast::<PoolNode>().add(h as usize) }
    }
    #[inline]
    unsafe fn addr(&self, h: u32) -> usize {
        // SAFETY: forwarded.
        unsafe { (*self.node(h)).at }
    }
    unsafe fn owns(&self, h: u32, b: Block) -> bool {
        // SAFETY: `b` is a live free block; its node area holds the tag.
        unsafe { tag_word(b).read() == tag_of(h) }
    }
}

/// How a tree orders its blocks.
pub trait TreeOrder: Send + 'static {
    /// Whether `(a_size, a)` sorts before `(b_size, b)` (block addresses).
    fn less(a: usize, a_size: usize, b: usize, b_size: usize) -> bool;
    /// Whether the key holds the size (then a change of size moves the block, and no
    /// subtree maximum is kept).
    const KEYED_BY_SIZE: bool;
}

/// Order by address.
pub struct ByAddr;
impl TreeOrder for ByAddr {
    #[inline]
    fn less(a: usize, _: usize, b: usize, _: usize) -> bool {
        a < b
    }
    const KEYED_BY_SIZE: bool = false;
}

/// Order by size, then address.
pub struct BySize;
impl TreeOrder for BySize {
    #[inline]
    fn less(a: usize, a_size: usize, b: usize, b_size: usize) -> bool {
        (a_size, a) < (b_size, b)
    }
    const KEYED_BY_SIZE: bool = true;
}

/// The priority a block gets when it enters the tree: a hash of its address.
#[inline]
fn hash_prio(addr: usize) -> u32 {
    (((addr as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// A treap of free blocks ordered by `O`, nodes kept in `S`.
pub struct Treap<O, S: Store> {
    store: S,
    root: S::H,
    len: usize,
    _order: PhantomData<O>,
}

// SAFETY: the tree links blocks owned by one heap, reached only under its lock.
unsafe impl<O, S: Store> Send for Treap<O, S> {}

/// The default index of first and next fit: treaps by address with subtree maxima.
pub type AddrTree = Tree<ByAddr>;
/// The default index of best fit: treaps by `(size, address)`.
pub type SizeTree = Tree<BySize>;

impl<O: TreeOrder, S: Store> Treap<O, S> {
    /// Whether subtree maxima are kept.
    const AUGMENTED: bool = !O::KEYED_BY_SIZE;
    const EMPTY: Self = Treap { store: S::EMPTY, root: S::NIL, len: 0, _order: PhantomData };

    /// The node of `h`.
    ///
    /// # Safety
    /// `h` is a node of the tree.
    #[inline]
    unsafe fn nd(&self, h: S::H) -> *mut Node<S::H, S::A> {
        // SAFETY: forwarded.
        unsafe { self.store.node(h) }
    }

    /// `max` of a subtree (0 for the empty one).
    ///
    /// # Safety
    /// `t` is NIL or a tree node.
    #[inline]
    unsafe fn max_of(&self, t: S::H) -> usize {
        // SAFETY: a non-NIL `t` is a node of the tree.
        if t == S::NIL { 0 } else { unsafe { (*self.nd(t)).max } }
    }

    /// Recomputes `t.max` from its size and children.
    ///
    /// # Safety
    /// `t` is a tree node whose children are NIL or nodes.
    #[inline]
    unsafe fn pull(&self, t: S::H) {
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
    unsafe fn lt(&self, a: S::H, b: S::H) -> bool {
        // SAFETY: as above.
        unsafe { O::less(self.store.addr(a), (*self.nd(a)).size, self.store.addr(b), (*self.nd(b)).size) }
    }

    /// Points the link that held `old` (in `parent`, or the root) at `new`.
    ///
    /// # Safety
    /// `parent` is NIL (then `old` is the root) or a node with `old` as a child.
    #[inline]
    unsafe fn relink(&mut self, parent: S::H, old: S::H, new: S::H) {
        if parent == S::NIL {
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
    unsafe fn set_parent(&self, c: S::H, p: S::H) {
        if c != S::NIL {
            // SAFETY: as above.
            unsafe { (*self.nd(c)).parent = p };
        }
    }

    /// Rotates `x` above its parent, keeping the in-order sequence.
    ///
    /// # Safety
    /// `x` is a node with a parent.
    unsafe fn rotate_up(&mut self, x: S::H) {
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
    unsafe fn fix_up(&self, mut t: S::H, old: usize, new: usize) {
        if !Self::AUGMENTED {
            return;
        }
        // SAFETY: `t` and its ancestors are nodes.
        unsafe {
            if new >= old {
                // A growth: raise the maxima below `new`, no child needs reading.
                while t != S::NIL && (*self.nd(t)).max < new {
                    (*self.nd(t)).max = new;
                    t = (*self.nd(t)).parent;
                }
                return;
            }
            // A shrink: only a node whose max was `old` can change.
            while t != S::NIL && (*self.nd(t)).max == old {
                let n = self.nd(t);
                self.pull(t);
                if (*n).max == old {
                    return;
                }
                t = (*n).parent;
            }
        }
    }

    /// Writes a fresh node for a block at `addr` of `size` bytes into `x` (its key address
    /// `at`) and links it in.
    ///
    /// # Safety
    /// `x` is a handle not in the tree whose node memory the tree may write.
    #[inline]
    unsafe fn insert_new(&mut self, x: S::H, addr: usize, size: usize, at: S::A) {
        let nil = S::NIL;
        // SAFETY: as above.
        unsafe {
            self.nd(x).write(Node {
                size,
                max: size,
                left: nil,
                right: nil,
                parent: nil,
                prio: hash_prio(addr),
                at,
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
    unsafe fn insert_node(&mut self, x: S::H, addr: usize, size: usize) {
        // SAFETY: the descent follows nodes of the tree; `x` becomes one.
        unsafe {
            let (mut t, mut parent, mut left) = (self.root, S::NIL, false);
            while t != S::NIL {
                let n = self.nd(t);
                if Self::AUGMENTED && (*n).max < size {
                    (*n).max = size;
                }
                parent = t;
                left = O::less(addr, size, self.store.addr(t), (*n).size);
                t = if left { (*n).left } else { (*n).right };
            }
            let xn = self.nd(x);
            (*xn).parent = parent;
            if parent == S::NIL {
                self.root = x;
            } else if left {
                (*self.nd(parent)).left = x;
            } else {
                (*self.nd(parent)).right = x;
            }
            let prio = (*xn).prio;
            while (*xn).parent != S::NIL && prio > (*self.nd((*xn).parent)).prio {
                self.rotate_up(x);
            }
        }
    }

    /// Rotates `x` down to a leaf and unlinks it (its node memory is then free).
    ///
    /// # Safety
    /// `x` is in the tree.
    unsafe fn remove_node(&mut self, x: S::H) {
        // SAFETY: `x` and its relatives are nodes of the tree.
        unsafe {
            let xn = self.nd(x);
            while (*xn).left != S::NIL && (*xn).right != S::NIL {
                let (l, r) = ((*xn).left, (*xn).right);
                self.rotate_up(if (*self.nd(l)).prio > (*self.nd(r)).prio { l } else { r });
            }
            let child = if (*xn).left == S::NIL { (*xn).right } else { (*xn).left };
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
    unsafe fn rekey(&mut self, x: S::H, addr: usize, old: usize, new: usize) {
        // SAFETY: as above.
        unsafe {
            if O::KEYED_BY_SIZE {
                self.remove_node(x);
                let n = self.nd(x);
                (*n).size = new;
                (*n).max = new;
                (*n).left = S::NIL;
                (*n).right = S::NIL;
                (*n).parent = S::NIL;
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
        t: S::H,
        parent: S::H,
        prev: &mut Option<S::H>,
        count: &mut usize,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        if t == S::NIL {
            return Ok(0);
        }
        *count += 1;
        // SAFETY: `t` is reached from the root through links (a cycle is caught by `count`).
        let addr = unsafe { self.store.addr(t) };
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
            if parent != S::NIL && (*n).prio > (*self.nd(parent)).prio {
                return err("tree: priority above the parent's (heap order)", (*n).prio as usize);
            }
            if (*n).size != b.size() {
                return err("tree: node.size != header size", (*n).size);
            }
            if !self.store.owns(t, b) {
                return err("tree: pooled block's tag != its slot", tag_word(b).read());
            }
            let lmax = self.check_at((*n).left, t, prev, count, visit)?;
            if let Some(p) = *prev
                && !self.lt(p, t)
            {
                return err("tree: in-order keys not strictly increasing", self.store.addr(p));
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
    unsafe fn check(&self, visit: &mut dyn FnMut(Block) -> Result<(), CheckError>) -> Result<usize, CheckError> {
        let (mut prev, mut count) = (None, 0);
        // SAFETY: forwarded.
        unsafe { self.check_at(self.root, S::NIL, &mut prev, &mut count, visit) }?;
        if count != self.len {
            return Err(CheckError { what: "tree: #nodes != len", addr: self as *const Self as usize, detail: count });
        }
        Ok(count)
    }

    // ANCHOR: addr_first_at
    /// The lowest address of a block in `t` at or above `from` that fits.
    ///
    /// # Safety
    /// `t` is NIL or a subtree of live free blocks.
    unsafe fn first_at(&self, t: S::H, from: usize, need: usize, align: usize) -> Option<usize> {
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            if self.max_of(t) < need {
                return None;
            }
            let (n, addr) = (self.nd(t), self.store.addr(t));
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
        while t != S::NIL {
            // SAFETY: `t` is a node.
            let (n, a) = unsafe { (&*self.nd(t), self.store.addr(t)) };
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

impl<O: TreeOrder> Treap<O, InBlock> {
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
                self.insert_new(new.ptr(), new.addr(), new_size, ());
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

/// The fast index: a treap over a pool of [`POOL`](POOL_NODES) compact nodes inside the
/// index, and a spill treap in the blocks for the rest (see the module header).
pub struct Tree<O, const POOL: usize = POOL_NODES> {
    pool: Treap<O, Pool<POOL>>,
    spill: Treap<O, InBlock>,
}

impl<O: TreeOrder, const POOL: usize> Tree<O, POOL> {
    /// The pool slot of indexed block `b`, or `None` if it is spilled.
    ///
    /// # Safety
    /// `b` is indexed.
    #[inline]
    unsafe fn slot_of(b: Block) -> Option<u32> {
        // SAFETY: an indexed block's node area starts with its tag (odd) or its spill
        // node's size (even).
        let w = unsafe { tag_word(b).read() };
        (w & 1 == 1).then_some((w >> 1) as u32)
    }

    /// Indexes `b` in pool slot `s`.
    ///
    /// # Safety
    /// `s` is a free slot; `b` is a free block not indexed.
    #[inline]
    unsafe fn pool_insert(&mut self, s: u32, b: Block, size: usize) {
        // SAFETY: as above: the block's node area is the index's.
        unsafe {
            tag_word(b).write(tag_of(s));
            self.pool.insert_new(s, b.addr(), size, b.addr());
        }
    }

    /// A pool slot freed: a spilled block (the spill's root, the cheapest to remove) moves
    /// into the pool, so that `spill.len > 0 ⇒ pool.len == POOL` holds again.
    #[cold]
    fn unspill(&mut self) {
        let (r, Some(s)) = (self.spill.root, self.pool.store.take()) else { return };
        // SAFETY: the spill is non-empty, so `r` is a spilled block; its size is in its node,
        // read before the node area is given to the tag.
        unsafe {
            let size = (*self.spill.nd(r)).size;
            self.spill.remove_node(r);
            self.pool_insert(s, Block::at(r), size);
        }
    }
}

// SAFETY: only node memory of indexed blocks (a tag or a spill node) and the pool are
// written; each treap holds exactly the blocks put in it (the checker proves it), and every
// block is in exactly one: `insert` puts it in one, and every other change goes to the treap
// its tag names.
unsafe impl<O: TreeOrder, const POOL: usize> FreeIndex for Tree<O, POOL> {
    const EMPTY: Self = Tree { pool: Treap::EMPTY, spill: Treap::EMPTY };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        // SAFETY: `b` is a free block not in the index; its node memory is ours.
        unsafe {
            match self.pool.store.take() {
                Some(s) => self.pool_insert(s, b, size),
                None => self.spill.insert_new(b.ptr(), b.addr(), size, ()),
            }
        }
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, _size: usize) {
        // SAFETY: `b` is indexed; its tag names its treap.
        unsafe {
            match Self::slot_of(b) {
                Some(s) => {
                    self.pool.remove_node(s);
                    self.pool.store.give(s);
                    if self.spill.len > 0 {
                        self.unspill();
                    }
                }
                None => self.spill.remove_node(b.ptr()),
            }
        }
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is indexed; its tag is read before `new`'s node area (which may
        // overlap it) is written.
        unsafe {
            match Self::slot_of(old) {
                Some(s) => {
                    tag_word(new).write(tag_of(s));
                    (*self.pool.nd(s)).at = new.addr();
                    self.pool.rekey(s, new.addr(), old_size, new_size);
                }
                None => self.spill.replace_block(old, old_size, new, new_size),
            }
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        // SAFETY: `b` is indexed with `old_size`.
        unsafe {
            match Self::slot_of(b) {
                Some(s) => self.pool.rekey(s, b.addr(), old_size, new_size),
                None if O::KEYED_BY_SIZE => {
                    self.spill.remove_node(b.ptr());
                    self.spill.insert_new(b.ptr(), b.addr(), new_size, ());
                }
                None => self.spill.rekey(b.ptr(), b.addr(), old_size, new_size),
            }
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let me = self as *const Self as usize;
        let (pool, spill) = (&self.pool, &self.spill);
        let free = pool.store.free_count(POOL);
        if pool.len + free != pool.store.fresh as usize || pool.store.fresh as usize > POOL {
            return Err(CheckError { what: "pool: len + #free slots != fresh (or fresh > POOL)", addr: me, detail: free });
        }
        if spill.len > 0 && pool.len != POOL {
            return Err(CheckError { what: "spill not empty while the pool has room", addr: me, detail: pool.len });
        }
        // SAFETY: forwarded; tags are checked by `owns`, spill nodes' first word by the
        // size check (an even size cannot pass for a tag).
        Ok(unsafe { pool.check(visit)? + spill.check(visit)? })
    }
}

impl<O: TreeOrder, const POOL: usize> Tree<O, POOL> {
    /// Blocks in the pool and in the spill (tests, statistics).
    pub fn lens(&self) -> (usize, usize) {
        (self.pool.len, self.spill.len)
    }
}

// SAFETY: each treap's search visits every subtree that may hold a block at or above
// `from` of size `>= need` (pruning only by `max`, a necessary condition), left before node
// before right, so it returns its lowest-address fitting block; the lower of the two is the
// lowest of all, as the contract asks.
unsafe impl<const POOL: usize> AddrSearch for Tree<ByAddr, POOL> {
    #[inline]
    unsafe fn first_fit(&self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: both treaps hold live free blocks.
        unsafe {
            let mut a = self.pool.first_at(self.pool.root, from, need, align);
            if self.spill.len > 0
                && let Some(s) = self.spill.first_at(self.spill.root, from, need, align)
            {
                a = Some(a.map_or(s, |a| a.min(s)));
            }
            a.map(|a| Block::at(a as *mut u8))
        }
    }
}

// ANCHOR: size_best_fit
// SAFETY: each treap takes candidates in increasing `(size, address)` from `(need, 0)` on
// and returns the first that fits, its least fitting key; the lesser of the two is the
// least of all, as the contract asks.
unsafe impl<const POOL: usize> SizeSearch for Tree<BySize, POOL> {
    #[inline]
    unsafe fn best_fit(&self, need: usize, align: usize) -> Option<Block> {
        // SAFETY: both treaps hold live free blocks.
        unsafe {
            let mut a = self.pool.best_fit(need, align);
            if self.spill.len > 0
                && let Some(s) = self.spill.best_fit(need, align)
            {
                a = Some(a.map_or(s, |a| a.min(s)));
            }
            a.map(|(_, a)| Block::at(a as *mut u8))
        }
    }
}
// ANCHOR_END: size_best_fit
