//! The fast indexes: an intrusive treap over the free blocks, O(log n) expected per
//! operation, making exactly the decisions of the [`Linear`](super::Linear) walk.
//!
//! # Design
//! A treap is a binary search tree by key that is also a heap by priority. A block's
//! priority is a hash of its address, taken when it enters the tree and kept in its node, so
//! the expected depth is `O(log n)` with no random state. Nodes live in the free blocks' node
//! area ([`NODE_BYTES`](super::NODE_BYTES)), with parent links; nothing is allocated.
//!
//! Cost per change, beyond the memory it touches: insert descends from the root (O(log n))
//! and rotates up (expected O(1) rotations); remove rotates the node down to a leaf (expected
//! O(1)) without a search; in the address tree a block that takes another's place
//! (`replace`: a split remainder, a block merged with the free block above) or changes size
//! (`resized`) keeps the node's position and priority, O(1), and `max` is repaired upward
//! only as far as it changes.
//!
//! - [`AddrTree`] orders by address and keeps in each node the largest block size of its
//!   subtree (`max`). First fit descends to the leftmost subtree whose `max` admits the
//!   request: the lowest-address fitting block, as the list walk finds it. For alignments up
//!   to 16 bytes a block fits exactly when it is big enough, so this is one descent without
//!   backtracking (`leftmost_fit`). Next fit starts at the least block at or above the
//!   rover and climbs (`climb_fit`): that block, its right subtree, the next ancestor to the
//!   right, and so on, descending into the first right subtree whose `max` admits the
//!   request. The least block at or above the rover is usually the remainder of the last
//!   split, which lies exactly at the rover: the tree remembers the block that last took
//!   another's place (`hot`) and starts there when its address is the rover, else descends.
//! - [`SizeTree`] orders by `(size, address)`, compared as one 128-bit integer. Best fit
//!   takes the least key `>= (need, 0)`: the smallest fitting block, lowest address on ties,
//!   as the list walk finds it. It is best fit's index above 2 KiB (the large blocks of
//!   [`SizeBins`](super::SizeBins), best fit's default), and `BestFit<SizeTree>` uses it
//!   for every block.
//! - `Treap<ByAddrMin>` orders by address with no maxima and keeps a pointer to its least
//!   node (`min`), so the least block is one load: a bin of [`SizeBins`](super::SizeBins)
//!   with more than 32 blocks (smaller bins are sorted lists), whose blocks all have one
//!   size. Removing the least node (it has no left child) moves
//!   `min` to its successor: the least node of its right subtree, else its parent. Each
//!   node also keeps, in the word the address tree uses for `max`, the union of its
//!   subtree's payload residues modulo 64 bytes (`residue_bit`: four bits), so that an
//!   over-aligned request finds the lowest-address block of the bin at a fitting residue
//!   (`fit_residues`) in one descent (`first_fitting`; for alignments up to 64 bytes, where
//!   the residue decides alone). An insert sets its bit on the way
//!   down (a write only where it was clear), rotations recompute the two nodes, and a
//!   removal or a change of address recomputes upward until a mask does not change.
//!
//! For alignments above 16 bytes a block of sufficient size may still not fit (its aligned
//! start lies too high); both searches then go on to the next candidate in the same order
//! (`first_at` for the address tree), so the decision stays the walk's. The address tree's
//! nodes also keep the largest [`aligned_bytes`] of their subtree (`amax`: what the blocks
//! offer from a 64-aligned start), so that for alignments of 64 bytes and more `first_at`
//! skips the subtrees whose blocks are big enough but at residues where they cannot hold
//! the request: without it, a burst of `alignas(64)` requests walked every such block of
//! the spill of [`AddrRegions`](super::AddrRegions). For exactly 64 bytes the bound is exact
//! and the walk goes down one path (for offers up to 64 KiB, which `amax` keeps exactly;
//! larger ones it rounds up). A node is four words (the three links, then `max`, `amax` and
//! the priority packed into one), so that the smallest free block is 48 bytes: the block's
//! size is read from its header, priorities are 16 bits (ties only cost balance, never
//! order), `max` counts `BLOCK_ALIGN` units in 32 bits (saturating: requests above
//! [`EXACT_NEED`], 64 GiB, take the backtracking search) and `amax` is a 16-bit float
//! rounded up ([`offer_code`]).
//!
//! Why the nodes stay in the blocks: an out-of-line index (a pool of compact treap nodes, or
//! a B+ tree of 16-entry nodes, in the heap's own memory) was built and measured
//! (`benches/README.md`): it cost more instructions than its fewer cache misses saved, and
//! memory drawn from the page source would move the chunks, so the heaps would no longer
//! place blocks at the same offsets as the `Linear` reference over the same region.
//!
//! Invariants (checked by `check`), for every node `n`:
//! - order: `key(n.left subtree) < key(n) < key(n.right subtree)`;
//! - heap: `n.prio >= n.left.prio`, `n.prio >= n.right.prio`;
//! - links: `n.left.parent == n`, `n.right.parent == n`, `root.parent == null`;
//! - augmentation (address tree), with `size(n)` the header's size:
//!   `n.max == max(units(size(n)), n.left.max, n.right.max)` and
//!   `n.amax == max(offer_code(aligned_bytes(n)), n.left.amax, n.right.amax)` once the
//!   tree keeps `amax` (from its first search aligned for `ALIGNED` or more), every
//!   `n.amax == 0` before;
//!   (bins' trees) `n.max == residue_bit(n) | n.left.max | n.right.max`;
//!   (size tree) `n.max == units(size(n))`, the size hint;
//! - `#nodes == len`; `hot` is null or a node;
//! - orders that track it ([`TreeOrder::TRACKS_MIN`]): `min` is the least node (null if
//!   the tree is empty).

use core::marker::PhantomData;
use core::ptr;

use super::block::{BLOCK_ALIGN, Block, HEADER_BYTES, MIN_BLOCK_BYTES};
use super::engine::{FreeIndex, fit_start};
use super::policy::{AddrSearch, SizeSearch};
use super::regions::{ALIGNED, aligned_bytes};
use crate::strategy::CheckError;

// ANCHOR: tree_node
/// The tree node kept in a free block's node area (exactly `NODE_BYTES`).
#[repr(C)]
#[derive(Copy, Clone)]
///
/// Four words, so that the smallest block (header, node, footer) is 48 bytes. The block's
/// size is not kept: it is read from the block's header ([`size_at`]). The index never
/// reads the header of a block a [`FreeIndex`] method names (the core may be rewriting
/// it): those sizes are passed in. Every other indexed block's header is intact.
struct Node {
    left: *mut u8,
    right: *mut u8,
    /// The address tree: the largest size in this subtree, in `BLOCK_ALIGN` units
    /// ([`units`], saturating at `u32::MAX`: a saturated value is exact for every request
    /// below [`EXACT_NEED`], and the searches for larger ones do not prune on it). The bins'
    /// trees ([`TreeOrder::RESIDUES`]): the union of the subtree's [`residue_bit`]s. The size
    /// tree ([`TreeOrder::KEYED_BY_SIZE`]): the block's own size in units, so that the
    /// descents compare keys without reading other blocks' headers (exact below
    /// `u32::MAX`; saturated sizes read the header). Next to the links, which a descent
    /// reads with it.
    max: u32,
    /// The address tree ([`TreeOrder::ALIGNED`]): the largest [`aligned_bytes`] of this
    /// subtree's blocks, what they offer to a request aligned for [`ALIGNED`] or more,
    /// coded by [`offer_code`] (rounded up, so still an upper bound); 0 in the other trees.
    amax: u16,
    /// Heap priority: a hash of the address the block had when it entered the tree.
    prio: u16,
    parent: *mut u8,
}
// ANCHOR_END: tree_node

const _: () = assert!(size_of::<Node>() <= super::NODE_BYTES);

/// The size of indexed block `t`, from its header.
///
/// # Safety
/// `t` is an indexed block that no running [`FreeIndex`] call names (its header is intact).
#[inline(always)]
unsafe fn size_at(t: *mut u8) -> usize {
    // SAFETY: an indexed block's header lies in a live chunk (caller).
    unsafe { Block::at(t).size() }
}

/// A block's size (a multiple of `BLOCK_ALIGN`) in `BLOCK_ALIGN` units, as kept in `max`,
/// saturating at `u32::MAX`: a shift, not a rounding (the updates convert sizes often).
#[inline(always)]
fn units(size: usize) -> u32 {
    (size / BLOCK_ALIGN).min(u32::MAX as usize) as u32
}

/// A request in `BLOCK_ALIGN` units, rounded up (saturating), so that a block of `size >=
/// need` bytes has `units(size) >= need_units(need)`, and for requests up to
/// [`EXACT_NEED`] only such a block.
#[inline(always)]
fn need_units(need: usize) -> u32 {
    need.div_ceil(BLOCK_ALIGN).min(u32::MAX as usize) as u32
}

/// The bytes of a saturated `units` (`u32::MAX` units): every block of that many units or
/// more has at least this size.
const SATURATED: usize = u32::MAX as usize * BLOCK_ALIGN;

/// The largest request for which `max` decides exactly whether a subtree holds a block big
/// enough (`need_units(need) < u32::MAX`, so a saturated `max` means a block larger than
/// it).
const EXACT_NEED: usize = (u32::MAX as usize - 1) * BLOCK_ALIGN;

/// Mantissa bits of [`offer_code`].
const OFFER_BITS: u32 = 12;

/// Codes an aligned offer in bytes into 16 bits, monotonically and rounding up: `BLOCK_ALIGN`
/// units below `2^OFFER_BITS` as they are, above that a float with `OFFER_BITS` bits of
/// mantissa (relative error below 1/2048), and `u16::MAX` for anything beyond (about
/// 64 TiB). So `max(code(a), code(b)) == code(max(a, b))`, and [`offer_bytes`] of a code is
/// at least what it codes: a search that prunes when `offer_bytes(amax) < need` prunes
/// only subtrees that hold no answer.
#[inline(always)]
fn offer_code(bytes: usize) -> u16 {
    let u = bytes.div_ceil(BLOCK_ALIGN);
    if u < 1 << OFFER_BITS {
        return u as u16;
    }
    offer_code_large(u)
}

/// [`offer_code`] of `u >= 2^OFFER_BITS` units: the rounded-up float.
#[cold]
fn offer_code_large(u: usize) -> u16 {
    let mut e = usize::BITS - u.leading_zeros() - OFFER_BITS;
    let mut m = u.div_ceil(1 << e);
    if m == 1 << OFFER_BITS {
        (m, e) = (1 << (OFFER_BITS - 1), e + 1);
    }
    let code =
        (1usize << OFFER_BITS) + (e as usize - 1) * (1 << (OFFER_BITS - 1)) + (m - (1 << (OFFER_BITS - 1)));
    code.min(u16::MAX as usize) as u16
}

/// The bytes a code of [`offer_code`] stands for, at least: `usize::MAX` for `u16::MAX`.
#[inline]
fn offer_bytes(code: u16) -> usize {
    let c = code as usize;
    if c < 1 << OFFER_BITS {
        return c * BLOCK_ALIGN;
    }
    if code == u16::MAX {
        return usize::MAX;
    }
    let half = 1 << (OFFER_BITS - 1);
    let (e, m) = ((c - (1 << OFFER_BITS)) / half + 1, (c - (1 << OFFER_BITS)) % half + half);
    (m << e) * BLOCK_ALIGN
}

/// How a tree orders its blocks.
pub trait TreeOrder: Send + 'static {
    /// Whether `(a_size, a)` sorts before `(b_size, b)`.
    fn less(a: *mut u8, a_size: usize, b: *mut u8, b_size: usize) -> bool;
    /// Whether the key holds the size (then a change of size moves the block, and no
    /// subtree maximum is kept).
    const KEYED_BY_SIZE: bool;
    /// Whether each node keeps the largest size of its subtree (`max`).
    const AUGMENTED: bool = !Self::KEYED_BY_SIZE;
    /// Whether the tree keeps a pointer to its least node (`min`).
    const TRACKS_MIN: bool = false;
    /// Whether each node keeps (in `max`) the union of its subtree's payload residues
    /// ([`residue_bit`]), so that a search for an over-aligned start skips the subtrees
    /// where no payload lies at a fitting residue. Not with `AUGMENTED` (one field).
    const RESIDUES: bool = false;
    /// Whether each node keeps the largest [`aligned_bytes`] of its subtree (`amax`), so
    /// that a search aligned for [`ALIGNED`] or more skips the subtrees where no block
    /// offers enough at that alignment (the address tree, for the blocks of the right size
    /// at the wrong residue).
    const ALIGNED: bool = false;
    /// What a tree of this order keeps beyond its links: for `ALIGNED` orders whether
    /// `amax` is kept yet (`bool`), `()` for the others, so that the bins' 128 treaps stay
    /// four words each.
    type State: Copy;
    /// The state of an empty tree.
    const STATE: Self::State;
    /// Whether `amax` is kept in a tree in state `s`.
    #[inline(always)]
    fn aligned_on(_s: Self::State) -> bool {
        false
    }
    /// Records in `s` that `amax` is kept from now on (only for `ALIGNED` orders).
    #[inline(always)]
    fn start_aligned(_s: &mut Self::State) {}
}

/// Order by address.
pub struct ByAddr;
impl TreeOrder for ByAddr {
    #[inline]
    fn less(a: *mut u8, _: usize, b: *mut u8, _: usize) -> bool {
        a < b
    }
    const KEYED_BY_SIZE: bool = false;
    const ALIGNED: bool = true;
    type State = bool;
    const STATE: bool = false;
    #[inline(always)]
    fn aligned_on(s: bool) -> bool {
        s
    }
    #[inline(always)]
    fn start_aligned(s: &mut bool) {
        *s = true;
    }
}

/// Order by address, with no subtree maxima but the least node kept: the bins of
/// [`SizeBins`](super::SizeBins), whose blocks all have one size.
pub struct ByAddrMin;
impl TreeOrder for ByAddrMin {
    #[inline]
    fn less(a: *mut u8, _: usize, b: *mut u8, _: usize) -> bool {
        a < b
    }
    const KEYED_BY_SIZE: bool = false;
    const AUGMENTED: bool = false;
    const TRACKS_MIN: bool = true;
    const RESIDUES: bool = true;
    type State = ();
    const STATE: () = ();
}

/// Order by size, then address.
pub struct BySize;
impl TreeOrder for BySize {
    #[inline]
    fn less(a: *mut u8, a_size: usize, b: *mut u8, b_size: usize) -> bool {
        size_key(a_size, a.addr()) < size_key(b_size, b.addr())
    }
    const KEYED_BY_SIZE: bool = true;
    type State = ();
    const STATE: () = ();
}

/// The key `(size, addr)` as one integer, so that comparing keys takes one branch-free
/// wide comparison instead of two dependent branches.
#[inline]
fn size_key(size: usize, addr: usize) -> u128 {
    (size as u128) << 64 | addr as u128
}

/// Bytes over which payload residues are told apart: one bit of a mask per `BLOCK_ALIGN`
/// granule.
pub(super) const RESIDUE_SPAN: usize = 64;
/// Bits of a residue mask.
const RESIDUE_BITS: usize = RESIDUE_SPAN / BLOCK_ALIGN;
const _: () = assert!(RESIDUE_SPAN.is_power_of_two() && RESIDUE_BITS <= usize::BITS as usize);

/// The bit of block `b`'s payload in a residue mask: bit `r` stands for the payloads at
/// `r * BLOCK_ALIGN` modulo [`RESIDUE_SPAN`].
#[inline]
pub(super) fn residue_bit(b: *mut u8) -> usize {
    1 << ((b.addr() + HEADER_BYTES) / BLOCK_ALIGN % RESIDUE_BITS)
}

// ANCHOR: fit_residues
/// The residue mask of the payloads at which a free block of `need + slack` bytes can hold
/// a block of `need` bytes aligned for `align` (above `BLOCK_ALIGN`), by [`fit_start`]'s
/// rule: the aligned start lies a gap `g` above the block's start, `g == 0` or `g >=
/// MIN_BLOCK_BYTES` (a free block below), the least such `g` with `payload + g ≡ 0 (mod
/// align)`, and the block fits exactly when `g <= slack`. So the payloads that fit are
/// those `≡ -g (mod align)` for `g` in `{0} ∪ [MIN_BLOCK_BYTES, slack]`. Exact for
/// alignments up to [`RESIDUE_SPAN`] (the residues repeat with period `align`); above it
/// the same rule modulo the span is a necessary condition, and [`fit_start`] decides.
pub(super) fn fit_residues(slack: usize, align: usize) -> usize {
    let period = align.clamp(BLOCK_ALIGN, RESIDUE_SPAN);
    let mut base = 1; // g == 0: payloads ≡ 0
    // Gaps past `MIN_BLOCK_BYTES + period` repeat the residues of smaller ones.
    let mut g = MIN_BLOCK_BYTES;
    while g <= slack && g < MIN_BLOCK_BYTES + period {
        base |= 1 << ((period - g % period) % period / BLOCK_ALIGN);
        g += BLOCK_ALIGN;
    }
    // The pattern of one period, repeated over the mask.
    let mut mask = base;
    let mut width = period / BLOCK_ALIGN;
    while width < RESIDUE_BITS {
        mask |= mask << width;
        width *= 2;
    }
    mask
}
// ANCHOR_END: fit_residues

/// A treap of free blocks ordered by `O`.
pub struct Treap<O: TreeOrder> {
    root: *mut u8,
    len: usize,
    /// Null or a node: the block that last took another's place (`replace`), which is
    /// usually the remainder of the last split, lying at next fit's rover.
    hot: *mut u8,
    /// Null or the least node, if `O::TRACKS_MIN` (else always null).
    min: *mut u8,
    /// The order's state ([`TreeOrder::State`]): in the address tree, whether `amax` is
    /// kept (since the first search aligned for [`ALIGNED`] or more). Until then every
    /// node's `amax` is 0 and no update computes an offer, so a heap that never sees such a
    /// request pays one predictable branch per update for it.
    state: O::State,
    _order: PhantomData<O>,
}

/// An index of first and next fit (`FirstFit<AddrTree>`, `NextFit<AddrTree>`): a treap by
/// address with subtree maxima, O(log n), kept wholly in the free blocks. A type to name in
/// a heap's type, with no public methods (`Treap` is private to the free lists).
pub type AddrTree = Treap<ByAddr>;
/// An index of best fit (`BestFit<SizeTree>`): a treap by `(size, address)`, kept wholly in
/// the free blocks. A type to name in a heap's type, with no public methods.
pub type SizeTree = Treap<BySize>;

// SAFETY: the pointers name free blocks of the one heap that owns this index, whose nodes
// only the index reads and writes, and only through `&mut self` or `&self` of the index;
// nothing is tied to a thread, so moving the index moves that exclusive access with it. Of
// `O` only its `State` is stored: a `bool` or `()`, plain values.
unsafe impl<O: TreeOrder> Send for Treap<O> {}

/// The node of block `b` (a non-null header address).
#[inline]
fn node(b: *mut u8) -> *mut Node {
    // SAFETY: callers pass block headers (non-null); the node follows the header.
    unsafe { Block::at(b) }.node::<Node>()
}

/// The priority a block gets when it enters the tree: a hash of its address (the high half
/// of a multiplicative hash).
#[inline]
fn hash_prio(b: *mut u8) -> u16 {
    (((b.addr() as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as u16
}

/// [`aligned_bytes`] of a block, as kept in `amax` ([`offer_code`]).
#[inline]
fn offer(b: *mut u8, size: usize) -> u16 {
    offer_code(aligned_bytes(b.addr(), size))
}

/// `amax` of a subtree (0 for the empty one).
///
/// # Safety
/// `t` is null or a tree node.
#[inline]
unsafe fn amax_of(t: *mut u8) -> u16 {
    // SAFETY: a non-null `t` is a node of the tree.
    if t.is_null() { 0 } else { unsafe { (*node(t)).amax } }
}

/// Recomputes `t.amax` from its block (of `size` bytes) and children.
///
/// # Safety
/// `t` is a tree node whose children are null or nodes.
#[inline]
unsafe fn pull_aligned(t: *mut u8, size: usize) {
    // SAFETY: `t` is a tree node and its children null or nodes (caller).
    unsafe {
        let n = node(t);
        (*n).amax = offer(t, size).max(amax_of((*n).left)).max(amax_of((*n).right));
    }
}

/// `max` of a subtree (0 for the empty one).
///
/// # Safety
/// `t` is null or a tree node.
#[inline]
unsafe fn max_of(t: *mut u8) -> u32 {
    // SAFETY: a non-null `t` is a node of the tree.
    if t.is_null() { 0 } else { unsafe { (*node(t)).max } }
}

/// Recomputes `t.max` from its size (`size` bytes) and children.
///
/// # Safety
/// `t` is a tree node whose children are null or nodes.
#[inline]
unsafe fn pull(t: *mut u8, size: usize) {
    // SAFETY: `t` is a tree node and its children null or nodes (caller), as `max_of` needs.
    unsafe {
        let n = node(t);
        (*n).max = units(size).max(max_of((*n).left)).max(max_of((*n).right));
    }
}

/// The residue mask of a subtree of a [`TreeOrder::RESIDUES`] tree (0 for the empty one).
///
/// # Safety
/// `t` is null or a node of such a tree.
#[inline]
unsafe fn residues_of(t: *mut u8) -> usize {
    // SAFETY: a non-null `t` is a node of the tree.
    if t.is_null() { 0 } else { unsafe { (*node(t)).max as usize } }
}

/// Recomputes the residue mask of `t` from its own bit and its children's; returns whether
/// it changed.
///
/// # Safety
/// `t` is a node of a [`TreeOrder::RESIDUES`] tree whose children are null or nodes.
#[inline]
unsafe fn pull_residues(t: *mut u8) -> bool {
    // SAFETY: `t` is a tree node and its children null or nodes (caller).
    unsafe {
        let n = node(t);
        let mask = residue_bit(t) | residues_of((*n).left) | residues_of((*n).right);
        let changed = (*n).max as usize != mask;
        (*n).max = mask as u32;
        changed
    }
}

impl<O: TreeOrder> Treap<O> {
    /// Whether subtree maxima are kept.
    const AUGMENTED: bool = O::AUGMENTED;

    /// Whether `amax` is kept now.
    #[inline(always)]
    fn aligned(&self) -> bool {
        O::ALIGNED && O::aligned_on(self.state)
    }

    /// The least node (null if the tree is empty); only for orders that track it.
    #[inline]
    pub(super) fn least(&self) -> *mut u8 {
        self.min
    }

    /// The number of nodes.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Points `min` elsewhere, for the checker's tests.
    #[cfg(test)]
    pub(super) fn set_min_for_test(&mut self, min: *mut u8) {
        self.min = min;
    }

    /// Flips bits of the root's `max` word (a subtree maximum or residue mask), for the
    /// checker's tests.
    #[cfg(test)]
    pub(super) fn flip_root_summary_for_test(&mut self, bits: usize) {
        // SAFETY: the tests call it on a non-empty tree of live free blocks.
        unsafe { (*node(self.root)).max ^= bits as u32 };
    }

    /// Whether node `a` sorts before node `b`.
    ///
    /// # Safety
    /// Both are nodes whose headers are intact.
    #[inline]
    unsafe fn lt(a: *mut u8, b: *mut u8) -> bool {
        // SAFETY: both are nodes with intact headers (caller).
        unsafe { O::less(a, size_at(a), b, size_at(b)) }
    }

    /// Points the link that held `old` (in `parent`, or the root) at `new`.
    ///
    /// # Safety
    /// `parent` is null (then `old` is the root) or a node with `old` as a child.
    #[inline]
    unsafe fn relink(&mut self, parent: *mut u8, old: *mut u8, new: *mut u8) {
        if parent.is_null() {
            self.root = new;
            return;
        }
        // SAFETY: `parent` is a node.
        unsafe {
            let p = node(parent);
            if (*p).left == old {
                (*p).left = new;
            } else {
                (*p).right = new;
            }
        }
    }

    /// Rotates `x` above its parent, keeping the in-order sequence. `p_size` is the parent's
    /// size (read only by the orders that keep `max` or `amax`): `x` takes over the parent's
    /// subtree summaries, so `x`'s own size is not needed.
    ///
    /// # Safety
    /// `x` is a node with a parent, whose subtree summaries are right.
    unsafe fn rotate_up(&mut self, x: *mut u8, p_size: usize) {
        // SAFETY: `x`, its parent and the moved subtree are nodes of the tree.
        unsafe {
            let (xn, p) = (node(x), (*node(x)).parent);
            let pn = node(p);
            let g = (*pn).parent;
            if (*pn).left == x {
                let b = (*xn).right;
                (*pn).left = b;
                if !b.is_null() {
                    (*node(b)).parent = p;
                }
                (*xn).right = p;
            } else {
                let b = (*xn).left;
                (*pn).right = b;
                if !b.is_null() {
                    (*node(b)).parent = p;
                }
                (*xn).left = p;
            }
            (*pn).parent = x;
            (*xn).parent = g;
            self.relink(g, p, x);
            if Self::AUGMENTED {
                // `x`'s subtree now holds the blocks `p`'s held: it takes `p`'s old maximum.
                let whole = (*pn).max;
                pull(p, p_size);
                (*xn).max = whole;
            }
            if O::RESIDUES {
                // `x`'s subtree now holds the blocks `p`'s held: it takes `p`'s old mask
                // (read before `p`'s is recomputed) without reading its other child.
                let whole = (*pn).max;
                pull_residues(p);
                (*xn).max = whole;
            }
            if self.aligned() {
                // The same for the aligned bound.
                let whole = (*pn).amax;
                pull_aligned(p, p_size);
                (*xn).amax = whole;
            }
        }
    }

    /// Repairs `max` from `t` upward after a size in `t`'s subtree changed from `old` to
    /// `new` (0 for a node that left). Reads children only where the old size may have been
    /// the maximum: elsewhere a shrink changes nothing and a growth only raises.
    ///
    /// # Safety
    /// `t` is null or a node whose subtree's maxima are right except on the path to the
    /// changed node.
    #[inline]
    unsafe fn fix_up(mut t: *mut u8, old: u32, new: u32) {
        if !Self::AUGMENTED {
            return;
        }
        // SAFETY: `t` and its ancestors are nodes.
        unsafe {
            if new >= old {
                // A growth: raise the maxima below `new`, no child needs reading.
                while !t.is_null() && (*node(t)).max < new {
                    (*node(t)).max = new;
                    t = (*node(t)).parent;
                }
                return;
            }
            // A shrink: only a node whose max was `old` can change.
            while !t.is_null() && (*node(t)).max == old {
                let n = node(t);
                pull(t, size_at(t));
                if (*n).max == old {
                    return;
                }
                t = (*n).parent;
            }
        }
    }

    /// Repairs the residue masks from `t` upward after a block below `t` (or `t` itself)
    /// left or changed address: stops at the first node whose mask is unchanged, since
    /// the masks above it depend on nothing else that changed.
    ///
    /// # Safety
    /// `t` is null or a node whose subtrees' masks are right except on the path to the
    /// change.
    #[inline]
    unsafe fn fix_residues(mut t: *mut u8) {
        if !O::RESIDUES {
            return;
        }
        // SAFETY: `t` and its ancestors are nodes.
        unsafe {
            while !t.is_null() && pull_residues(t) {
                t = (*node(t)).parent;
            }
        }
    }

    /// Repairs `amax` from `t` upward after what a block in `t`'s subtree offers changed
    /// from `old` to `new` (0 for a node that left), as [`fix_up`](Self::fix_up) does for
    /// `max`.
    ///
    /// # Safety
    /// `t` is null or a node whose subtree's bounds are right except on the path to the
    /// changed node.
    #[inline]
    unsafe fn fix_aligned(mut t: *mut u8, old: u16, new: u16) {
        if !O::ALIGNED {
            return;
        }
        // SAFETY: `t` and its ancestors are nodes.
        unsafe {
            if new >= old {
                while !t.is_null() && (*node(t)).amax < new {
                    (*node(t)).amax = new;
                    t = (*node(t)).parent;
                }
                return;
            }
            while !t.is_null() && (*node(t)).amax == old {
                let n = node(t);
                pull_aligned(t, size_at(t));
                if (*n).amax == old {
                    return;
                }
                t = (*n).parent;
            }
        }
    }

    /// Repairs `max` and `amax` of node `x` and upward after `x`'s own block changed from
    /// `old` bytes at `old_at` (`x` itself, or the block whose node `x` took over) to `new`
    /// bytes at `x`, without reading `x`'s header (the core may not have written it yet).
    /// Reads `x`'s children only where its old size or offer may have been the subtree's
    /// bound.
    ///
    /// # Safety
    /// `x` is a node whose children's summaries are right, and whose own are right for
    /// the old block; its ancestors' are right for `x`'s old summaries.
    #[inline(always)]
    unsafe fn own_changed(&self, x: *mut u8, old_at: *mut u8, old: usize, new: usize) {
        // SAFETY: `x` is a node and its children null or nodes (caller).
        unsafe {
            let n = node(x);
            // The parent is read only if `x`'s bound changed (it is another block's node,
            // often a cache miss).
            if Self::AUGMENTED {
                let (before, (o, w)) = ((*n).max, (units(old), units(new)));
                if w > before {
                    (*n).max = w;
                } else if w < o && before == o {
                    pull(x, new);
                }
                if (*n).max != before {
                    Self::fix_up((*n).parent, before, (*n).max);
                }
            }
            if self.aligned() {
                let before = (*n).amax;
                let (old_offer, new_offer) = (offer(old_at, old), offer(x, new));
                if new_offer > before {
                    (*n).amax = new_offer;
                } else if new_offer < old_offer && before == old_offer {
                    pull_aligned(x, new);
                }
                if (*n).amax != before {
                    Self::fix_aligned((*n).parent, before, (*n).amax);
                }
            }
        }
    }

    /// Makes `x` (node fields written) a leaf under the search path, then rotates it up to
    /// its place by priority.
    ///
    /// # Safety
    /// `x` is a node not in the tree, of `size` bytes, its summaries and `prio` set.
    #[inline]
    unsafe fn insert_node(&mut self, x: *mut u8, size: usize) {
        // SAFETY: the descent follows nodes of the tree; `x` becomes one.
        unsafe {
            let (mut t, mut parent, mut left) = (self.root, ptr::null_mut(), false);
            let own = (*node(x)).amax;
            let units = units(size);
            while !t.is_null() {
                let n = node(t);
                if Self::AUGMENTED && (*n).max < units {
                    (*n).max = units;
                }
                if self.aligned() && (*n).amax < own {
                    (*n).amax = own;
                }
                // Written only when it changes (near the leaves): the path stays clean.
                if O::RESIDUES && (*n).max as usize & residue_bit(x) == 0 {
                    (*n).max |= residue_bit(x) as u32;
                }
                parent = t;
                left = if !O::KEYED_BY_SIZE {
                    O::less(x, size, t, 0)
                } else if units < u32::MAX {
                    // `x`'s size is below saturation, so `t`'s size hint decides, with no
                    // header read: equal hints are equal sizes (both multiples of
                    // `BLOCK_ALIGN`), and a larger or saturated hint a larger size.
                    size_key(units as usize, x.addr()) < size_key((*n).max as usize, t.addr())
                } else {
                    O::less(x, size, t, size_at(t))
                };
                t = if left { (*n).left } else { (*n).right };
            }
            (*node(x)).parent = parent;
            if parent.is_null() {
                self.root = x;
            } else if left {
                (*node(parent)).left = x;
            } else {
                (*node(parent)).right = x;
            }
            let prio = (*node(x)).prio;
            while !(*node(x)).parent.is_null() && prio > (*node((*node(x)).parent)).prio {
                let p = (*node(x)).parent;
                self.rotate_up(x, if Self::AUGMENTED || O::ALIGNED { size_at(p) } else { 0 });
            }
        }
    }

    /// The size of node `t` of a [`TreeOrder::KEYED_BY_SIZE`] tree: its hint when below
    /// saturation (exact: sizes are multiples of `BLOCK_ALIGN`), else its header's.
    ///
    /// # Safety
    /// `t` is a node of such a tree that no running [`FreeIndex`] call names.
    #[inline(always)]
    unsafe fn hinted_size(t: *mut u8) -> usize {
        // SAFETY: `t` is a node (caller).
        let h = unsafe { (*node(t)).max };
        // SAFETY: a saturated hint: `t`'s header is intact (caller).
        if h < u32::MAX { h as usize * BLOCK_ALIGN } else { unsafe { size_at(t) } }
    }

    /// The node next to `t` in the tree's order, after it (`forward`) or before it; null if
    /// there is none: the nearest node of its subtree on that side, else its nearest
    /// ancestor of which it lies in the subtree on the other side. O(1) amortized over an
    /// in-order sweep.
    ///
    /// # Safety
    /// `t` is a node of the tree, which holds live free blocks.
    #[inline(always)]
    unsafe fn neighbour(mut t: *mut u8, forward: bool) -> *mut u8 {
        // SAFETY: `t`, its descendants and ancestors are nodes of the tree (the caller), so
        // every link read is a field of a node.
        unsafe {
            // The link towards the side asked for, and the one away from it.
            let toward = |n: *mut Node| if forward { (*n).right } else { (*n).left };
            let away = |n: *mut Node| if forward { (*n).left } else { (*n).right };
            let r = toward(node(t));
            if !r.is_null() {
                t = r;
                while !away(node(t)).is_null() {
                    t = away(node(t));
                }
                return t;
            }
            let mut p = (*node(t)).parent;
            while !p.is_null() && toward(node(p)) == t {
                (t, p) = (p, (*node(p)).parent);
            }
            p
        }
    }

    /// Whether `new` (of `new_size` bytes) sorts exactly where `old` (of `old_size`) does in
    /// a [`TreeOrder::KEYED_BY_SIZE`] tree: between `old`'s in-order neighbours. A split
    /// remainder or a coalesced block usually does (the large blocks are few and far apart
    /// in size); then `replace` takes over `old`'s node instead of a removal and an insert.
    /// Only the neighbour on the side the key moves to is compared.
    ///
    /// # Safety
    /// `old` is a node; neither block's header is read (their sizes are passed).
    #[inline]
    unsafe fn keeps_place(&self, old: *mut u8, old_size: usize, new: *mut u8, new_size: usize) -> bool {
        // SAFETY: `old` and the nodes reached from it by links are nodes of the tree, other
        // blocks than `old` and `new` (whose headers are intact).
        unsafe {
            if O::less(new, new_size, old, old_size) {
                // Down: the predecessor must stay below.
                let p = Self::neighbour(old, false);
                p.is_null() || O::less(p, Self::hinted_size(p), new, new_size)
            } else {
                // Up (or the same key): the successor must stay above.
                let s = Self::neighbour(old, true);
                s.is_null() || O::less(new, new_size, s, Self::hinted_size(s))
            }
        }
    }

    /// [`FreeIndex::replace`] in a [`TreeOrder::KEYED_BY_SIZE`] tree: `new` takes over
    /// `old`'s node when it sorts in `old`'s place ([`keeps_place`](Self::keeps_place)),
    /// else `old` leaves and `new` enters. The move is out of line, so that the common case
    /// (a split remainder, a coalesced block) saves no registers.
    ///
    /// # Safety
    /// As for `replace`.
    #[inline(always)]
    pub(super) unsafe fn replace_keyed(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is in the tree; its node is read whole before `new`'s (which may
        // overlap it) is written.
        unsafe {
            if self.keeps_place(old.ptr(), old_size, new.ptr(), new_size) {
                // `new` takes over `old`'s node, links and priority, with its own hint.
                let (x, n) = (new.ptr(), node(old.ptr()).read());
                node(x).write(Node { max: units(new_size), ..n });
                self.relink(n.parent, old.ptr(), x);
                for child in [n.left, n.right] {
                    if !child.is_null() {
                        (*node(child)).parent = x;
                    }
                }
            } else {
                self.move_keyed(old, old_size, new, new_size);
            }
        }
    }

    /// `old` leaves the tree and `new` enters it (a keyed replacement that moves).
    ///
    /// # Safety
    /// As for `replace`.
    #[inline(never)]
    unsafe fn move_keyed(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: forwarded; the removal reads `old`'s node before the insert writes `new`'s.
        unsafe {
            <Self as FreeIndex>::remove(self, old, old_size);
            <Self as FreeIndex>::insert(self, new, new_size, None);
        }
    }

    /// Rotates `x` (of `size` bytes) down to a leaf and unlinks it.
    ///
    /// # Safety
    /// `x` is in the tree.
    unsafe fn remove_node(&mut self, x: *mut u8, size: usize) {
        // SAFETY: `x` and its relatives are nodes of the tree.
        unsafe {
            let xn = node(x);
            if !O::KEYED_BY_SIZE && x == self.hot {
                self.hot = ptr::null_mut();
            }
            if O::TRACKS_MIN && x == self.min {
                // The least node has no left child: its successor is the least node of its
                // right subtree, else its parent.
                let mut next = (*xn).right;
                if next.is_null() {
                    next = (*xn).parent;
                } else {
                    while !(*node(next)).left.is_null() {
                        next = (*node(next)).left;
                    }
                }
                self.min = next;
            }
            while !(*xn).left.is_null() && !(*xn).right.is_null() {
                let (l, r) = ((*xn).left, (*xn).right);
                self.rotate_up(if (*node(l)).prio > (*node(r)).prio { l } else { r }, size);
            }
            let child = if (*xn).left.is_null() { (*xn).right } else { (*xn).left };
            let parent = (*xn).parent;
            if !child.is_null() {
                (*node(child)).parent = parent;
            }
            self.relink(parent, x, child);
            Self::fix_up(parent, units(size), 0);
            Self::fix_residues(parent);
            if self.aligned() {
                Self::fix_aligned(parent, offer(x, size), 0);
            }
        }
    }

    /// In order, checking the invariants below `t`; returns the subtree's max size in
    /// [`units`] (its residue mask in a [`TreeOrder::RESIDUES`] tree).
    ///
    /// # Safety
    /// The tree holds live free blocks (checked by `visit` before a node is read).
    unsafe fn check_at(
        &self,
        t: *mut u8,
        parent: *mut u8,
        prev: &mut *mut u8,
        count: &mut usize,
        hot_seen: &mut bool,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        if t.is_null() {
            return Ok(0);
        }
        let err = |what, detail| Err(CheckError { what, addr: t.addr(), detail });
        *count += 1;
        *hot_seen |= t == self.hot;
        if *count > self.len {
            return err("tree: more nodes than len (cycle?)", *count);
        }
        // SAFETY: `visit` checks `t` is a live free block before its node is read.
        visit(unsafe { Block::at(t) })?;
        // SAFETY: `visit` has just checked that `t` is a live free block, so its node can be
        // read; its children are checked when the walk reaches them.
        unsafe {
            let n = node(t);
            if (*n).parent != parent {
                return err("tree: node.parent != the node linking to it", (*n).parent.addr());
            }
            if !parent.is_null() && (*n).prio > (*node(parent)).prio {
                return err("tree: priority above the parent's (heap order)", parent.addr());
            }
            let size = Block::at(t).size();
            let lmax = self.check_at((*n).left, t, prev, count, hot_seen, visit)?;
            if !prev.is_null() && !Self::lt(*prev, t) {
                return err("tree: in-order keys not strictly increasing", (*prev).addr());
            }
            *prev = t;
            let rmax = self.check_at((*n).right, t, prev, count, hot_seen, visit)?;
            if O::RESIDUES {
                let mask = residue_bit(t) | lmax | rmax;
                if (*n).max as usize != mask {
                    return err("tree: node residues != union of its subtree's", (*n).max as usize);
                }
                return Ok(mask);
            }
            let max = (units(size) as usize).max(lmax).max(rmax);
            if Self::AUGMENTED && (*n).max as usize != max {
                return err("tree: node.max != max(size, children's max)", (*n).max as usize);
            }
            if O::KEYED_BY_SIZE && (*n).max != units(size) {
                return err("tree: size hint (node.max) != units(size)", (*n).max as usize);
            }
            if O::ALIGNED {
                let amax = if self.aligned() {
                    offer(t, size).max(amax_of((*n).left)).max(amax_of((*n).right))
                } else {
                    0
                };
                if (*n).amax != amax {
                    return err(
                        "tree: node.amax != max(own offer, children's amax) (0 if not kept)",
                        (*n).amax as usize,
                    );
                }
            }
            Ok(max)
        }
    }
}

// SAFETY: only node memory of indexed blocks is written; the tree holds exactly what was
// inserted and not removed (the checker proves it).
unsafe impl<O: TreeOrder> FreeIndex for Treap<O> {
    const EMPTY: Self = Treap {
        root: ptr::null_mut(),
        len: 0,
        hot: ptr::null_mut(),
        min: ptr::null_mut(),
        state: O::STATE,
        _order: PhantomData,
    };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, _hint: Option<Block>) {
        let x = b.ptr();
        let null = ptr::null_mut();
        // SAFETY: `b` is a free block not in the tree; its node memory is ours.
        unsafe {
            node(x).write(Node {
                left: null,
                right: null,
                parent: null,
                max: if O::RESIDUES { residue_bit(x) as u32 } else { units(size) },
                prio: hash_prio(x),
                amax: if self.aligned() { offer(x, size) } else { 0 },
            });
            self.insert_node(x, size);
        }
        if O::TRACKS_MIN && (self.min.is_null() || x < self.min) {
            self.min = x;
        }
        self.len += 1;
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, size: usize) {
        // SAFETY: `b` is in the tree, with `size`.
        unsafe { self.remove_node(b.ptr(), size) };
        self.len -= 1;
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        // SAFETY: `old` is in the tree; its node is read whole before `new`'s (which may
        // overlap it) is written.
        unsafe {
            if O::KEYED_BY_SIZE {
                self.replace_keyed(old, old_size, new, new_size);
                return;
            }
            // Same place in address order: `new` takes over `old`'s node, links and priority.
            let (x, n) = (new.ptr(), node(old.ptr()).read());
            node(x).write(n);
            self.hot = x;
            if O::TRACKS_MIN && self.min == old.ptr() {
                self.min = x;
            }
            self.relink(n.parent, old.ptr(), x);
            for child in [n.left, n.right] {
                if !child.is_null() {
                    (*node(child)).parent = x;
                }
            }
            self.own_changed(x, old.ptr(), old_size, new_size);
            // A new address: a new residue.
            Self::fix_residues(x);
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        // SAFETY: `b` is in the tree with `old_size`.
        unsafe {
            if O::KEYED_BY_SIZE {
                let x = b.ptr();
                if self.keeps_place(x, old_size, x, new_size) {
                    (*node(x)).max = units(new_size);
                } else {
                    self.move_keyed(b, old_size, b, new_size);
                }
            } else {
                let x = b.ptr();
                self.own_changed(x, x, old_size, new_size);
            }
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let (mut prev, mut count, mut hot_seen) = (ptr::null_mut(), 0, false);
        // SAFETY: forwarded.
        unsafe { self.check_at(self.root, ptr::null_mut(), &mut prev, &mut count, &mut hot_seen, visit) }?;
        if count != self.len {
            return Err(CheckError { what: "tree: #nodes != len", addr: self.root.addr(), detail: count });
        }
        if O::TRACKS_MIN {
            let mut least = self.root;
            // SAFETY: the walk above proved every node reachable from the root live.
            while !least.is_null() && unsafe { !(*node(least)).left.is_null() } {
                // SAFETY: `least` is a node reachable from the root, which the walk proved live.
                least = unsafe { (*node(least)).left };
            }
            if least != self.min {
                return Err(CheckError {
                    what: "tree: min is not the least node",
                    addr: self.min.addr(),
                    detail: least.addr(),
                });
            }
        }
        if !self.hot.is_null() && !hot_seen {
            return Err(CheckError {
                what: "tree: hot is not a node of the tree",
                addr: self.hot.addr(),
                detail: 0,
            });
        }
        Ok(count)
    }
}

impl AddrTree {
    /// Starts keeping `amax` (the first search aligned for [`ALIGNED`] or more): computes
    /// every node's from its children's, children first, by a walk over the parent links
    /// (no stack), O(n) once.
    ///
    /// # Safety
    /// The tree holds live free blocks, whose headers are intact (no index call running).
    #[cold]
    unsafe fn start_aligned(&mut self) {
        /// The first node of `t`'s subtree in post-order (children before their parent).
        ///
        /// # Safety
        /// `t` is a node.
        unsafe fn first_post(mut t: *mut u8) -> *mut u8 {
            // SAFETY: `t` and its descendants are nodes (caller).
            unsafe {
                loop {
                    let n = node(t);
                    t = match ((*n).left, (*n).right) {
                        (l, _) if !l.is_null() => l,
                        (_, r) if !r.is_null() => r,
                        _ => return t,
                    };
                }
            }
        }
        ByAddr::start_aligned(&mut self.state);
        if self.root.is_null() {
            return;
        }
        // SAFETY: every pointer followed is a node of the tree; each node's children come
        // before it in post-order, so their `amax` is computed when it is.
        unsafe {
            let mut t = first_post(self.root);
            while !t.is_null() {
                pull_aligned(t, size_at(t));
                let p = (*node(t)).parent;
                t = if !p.is_null() && (*node(p)).left == t && !(*node(p)).right.is_null() {
                    first_post((*node(p)).right)
                } else {
                    p
                };
            }
        }
    }

    // ANCHOR: addr_first_at
    /// The lowest-address block in `t` at or above `from` that fits.
    ///
    /// # Safety
    /// `t` is null or a subtree of live free blocks.
    unsafe fn first_at(t: *mut u8, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            // A subtree with no block of `need` bytes, or (aligned for `ALIGNED` or more) none
            // offering `need` bytes from an `ALIGNED` start, holds no answer.
            let too_small = max_of(t) < need_units(need);
            if too_small || (align >= ALIGNED && offer_bytes(amax_of(t)) < need) {
                return None;
            }
            let n = node(t);
            if t.addr() < from {
                return Self::first_at((*n).right, from, need, align);
            }
            if let Some(b) = Self::first_at((*n).left, from, need, align) {
                return Some(b);
            }
            let b = Block::at(t);
            if size_at(t) >= need && fit_start(b, need, align).is_some() {
                return Some(b);
            }
            Self::first_at((*n).right, from, need, align)
        }
    }
    // ANCHOR_END: addr_first_at
}

impl AddrTree {
    // ANCHOR: addr_leftmost_fit
    /// The lowest-address block of size `>= need` in `t` (alignments up to `BLOCK_ALIGN`,
    /// where a block fits exactly when it is big enough): one descent, no backtracking.
    /// Loop invariant: `t.max >= need`, so `t`'s subtree holds the answer: the left subtree
    /// if its `max` admits `need`, else `t` if big enough, else the right subtree (whose
    /// `max` must then be the one `>= need`).
    ///
    /// # Safety
    /// `t` is null or a subtree of live free blocks.
    #[inline]
    unsafe fn leftmost_fit(mut t: *mut u8, need: usize) -> Option<Block> {
        let units = need_units(need);
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            if max_of(t) < units {
                return None;
            }
            loop {
                let n = node(t);
                let l = (*n).left;
                if max_of(l) >= units {
                    t = l;
                } else if size_at(t) >= need {
                    return Some(Block::at(t));
                } else {
                    t = (*n).right;
                }
            }
        }
    }
    // ANCHOR_END: addr_leftmost_fit

    /// The least node at or above address `from` (null if none): `hot` if it lies exactly
    /// at `from` (next fit's rover is usually the end of the last block handed out, where
    /// the split's remainder lies), else one descent.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    pub(super) unsafe fn at_or_above(&self, from: usize) -> *mut u8 {
        if !self.hot.is_null() && self.hot.addr() == from {
            return self.hot;
        }
        let (mut t, mut c) = (self.root, ptr::null_mut());
        while !t.is_null() {
            let n = node(t);
            if t.addr() < from {
                // SAFETY: `t` is a node of the tree.
                t = unsafe { (*n).right };
            } else {
                c = t;
                // SAFETY: `t` is a node of the tree.
                t = unsafe { (*n).left };
            }
        }
        c
    }

    /// Whether some node's address lies in `from..below`: one descent that stops at the
    /// first such node (where [`at_or_above`](Self::at_or_above) goes down to the least
    /// node at or above `from`, whose address decides the same).
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    pub(super) unsafe fn any_in(&self, from: usize, below: usize) -> bool {
        let mut t = self.root;
        while !t.is_null() {
            // SAFETY: `t` is a node of the tree.
            t = unsafe {
                match t.addr() {
                    a if a < from => (*node(t)).right,
                    a if a >= below => (*node(t)).left,
                    _ => return true,
                }
            };
        }
        false
    }

    /// The node after `t` in address order (null if `t` is the greatest): the least node of
    /// its right subtree, else its nearest ancestor of which it lies in the left subtree.
    /// O(1) amortized over an in-order sweep.
    ///
    /// # Safety
    /// `t` is a node of the tree, which holds live free blocks.
    pub(super) unsafe fn successor(&self, t: *mut u8) -> *mut u8 {
        // SAFETY: the caller's guarantee.
        unsafe { Self::neighbour(t, true) }
    }

    // ANCHOR: addr_climb_fit
    /// The lowest-address block of size `>= need` at or above node `c` (alignments up to
    /// `BLOCK_ALIGN`). The blocks from `c` on, in address order, are: `c`, then `c`'s
    /// right subtree, then the nearest ancestor of which `c` lies in the left subtree, then
    /// that ancestor's right subtree, and so on up. Each such ancestor is tested, and the
    /// first right subtree whose `max` admits `need` holds the answer (`leftmost_fit`).
    ///
    /// # Safety
    /// `c` is null or a node of a tree of live free blocks.
    #[inline]
    unsafe fn climb_fit(mut c: *mut u8, need: usize) -> Option<Block> {
        // SAFETY: every pointer followed is a node of the tree (or null, tested first).
        unsafe {
            while !c.is_null() {
                let n = node(c);
                if size_at(c) >= need {
                    return Some(Block::at(c));
                }
                if max_of((*n).right) >= need_units(need) {
                    return Self::leftmost_fit((*n).right, need);
                }
                // Up to the nearest ancestor whose left subtree holds `c`.
                let mut x = c;
                c = ptr::null_mut();
                while !(*node(x)).parent.is_null() {
                    let p = (*node(x)).parent;
                    if (*node(p)).left == x {
                        c = p;
                        break;
                    }
                    x = p;
                }
            }
            None
        }
    }
    // ANCHOR_END: addr_climb_fit
}

// SAFETY: for alignments up to `BLOCK_ALIGN` a block fits exactly when its size is at
// least `need`: then `leftmost_fit` from the root (`from == 0`), or `climb_fit` from the least
// node at or above `from` (`at_or_above`: `hot` only if it lies exactly at `from`, a node by
// the tree's invariant), returns the lowest-address block at or above `from` of size
// `>= need` (see their docs). Otherwise `first_at` visits every subtree that may hold a
// block at or above `from` of size `>= need` (pruning only by `max`, a necessary
// condition), left before node before right, and tests each with `fit_start`. Either way it
// is the lowest-address fitting block, as the contract asks.
unsafe impl AddrSearch for AddrTree {
    #[inline(always)]
    unsafe fn first_fit(&mut self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe {
            match (align <= BLOCK_ALIGN && need <= EXACT_NEED, from) {
                (true, 0) => Self::leftmost_fit(self.root, need),
                (true, _) => Self::climb_fit(self.at_or_above(from), need),
                (false, _) => {
                    if align >= ALIGNED && !self.aligned() {
                        self.start_aligned();
                    }
                    Self::first_at(self.root, from, need, align)
                }
            }
        }
    }
}

impl Treap<ByAddrMin> {
    // ANCHOR: first_fitting
    /// The lowest-address block of the tree for which `fit_start(b, need, align)` is
    /// `Some`, where `wanted` is [`fit_residues`] for the bin's size: an in-order walk that
    /// skips every subtree whose residue mask meets no wanted residue (every block of a bin
    /// has the bin's size, so only the payload's residue decides). For alignments up to
    /// [`RESIDUE_SPAN`] the mask is exact, so the walk goes down one path: the left subtree
    /// if it holds a wanted residue, else the node if it has one, else the right subtree.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    pub(super) unsafe fn first_fitting(&self, need: usize, align: usize, wanted: usize) -> Option<Block> {
        // SAFETY: forwarded.
        unsafe { Self::first_fitting_at(self.root, need, align, wanted) }
    }

    /// [`first_fitting`](Self::first_fitting) in the subtree `t`.
    ///
    /// # Safety
    /// `t` is null or a subtree of live free blocks.
    unsafe fn first_fitting_at(t: *mut u8, need: usize, align: usize, wanted: usize) -> Option<Block> {
        // SAFETY: `t` and its descendants are nodes of live free blocks.
        unsafe {
            if residues_of(t) & wanted == 0 {
                return None;
            }
            let n = node(t);
            if let Some(b) = Self::first_fitting_at((*n).left, need, align, wanted) {
                return Some(b);
            }
            let b = Block::at(t);
            if residue_bit(t) & wanted != 0 && fit_start(b, need, align).is_some() {
                return Some(b);
            }
            Self::first_fitting_at((*n).right, need, align, wanted)
        }
    }
    // ANCHOR_END: first_fitting
}

impl SizeTree {
    /// The least node with key `>= (size, addr)`.
    ///
    /// # Safety
    /// The tree holds live free blocks.
    #[inline]
    unsafe fn lower_bound(&self, size: usize, addr: usize) -> *mut u8 {
        // The nodes' hints in bytes: exact below saturation, and a saturated one stands for
        // `SATURATED` bytes, at most its block's size and above `size` when `size` is below
        // it, so the comparison's outcome is the exact one. Larger requests read headers.
        let (mut t, mut best) = (self.root, ptr::null_mut());
        let key = size_key(size, addr);
        while !t.is_null() {
            // SAFETY: `t` is a node.
            let n = unsafe { &*node(t) };
            let ge = if size < SATURATED {
                size_key(n.max as usize * BLOCK_ALIGN, t.addr()) >= key
            } else {
                // SAFETY: `t` is an indexed block; no index call is running.
                size_key(unsafe { size_at(t) }, t.addr()) >= key
            };
            if ge {
                best = t;
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }
}

// ANCHOR: size_best_fit
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
            // SAFETY: `b` is the block of node `t`, a live free block.
            if unsafe { fit_start(b, need, align) }.is_some() {
                return Some(b);
            }
            // SAFETY: `t` is a node of a live free block, so its node can be read.
            (size, addr) = (unsafe { size_at(t) }, t.addr() + 1);
        }
    }
}
// ANCHOR_END: size_best_fit

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec::Vec;

    /// `offer_code` is monotone, never codes below its value, is exact up to 64 KiB, loses
    /// less than 1/2048 above, and `max` of codes is the code of the max (so the checker's
    /// recomputation of `amax` from codes equals the code of the true bound).
    #[test]
    fn offer_code_is_a_monotone_upper_bound() {
        let mut samples: Vec<usize> = (0..70_000).map(|u| u * BLOCK_ALIGN).collect();
        for shift in 16..62 {
            for d in [0usize, 1, 7, 1 << 10, (1 << 12) - 1] {
                let v = (1usize << shift).wrapping_sub(d * BLOCK_ALIGN);
                samples.extend([v - v % BLOCK_ALIGN, v + BLOCK_ALIGN * 3]);
            }
        }
        samples.push((usize::MAX / 4) & !(BLOCK_ALIGN - 1));
        samples.sort_unstable();
        let mut last = 0u16;
        for &v in &samples {
            let c = offer_code(v);
            assert!(c >= last, "not monotone at {v}");
            last = c;
            let back = offer_bytes(c);
            assert!(back >= v, "{v} coded as {c}, read back as {back}");
            if v < (1 << OFFER_BITS) * BLOCK_ALIGN {
                assert_eq!(back, v, "exact below 64 KiB");
            } else if c != u16::MAX {
                assert!(back - v <= v / 2048, "{v} read back as {back}");
            }
            // The code of a code's value is the code itself (a fixed point), so a bound
            // recomputed from codes matches one recomputed from bytes.
            if c != u16::MAX {
                assert_eq!(offer_code(back), c);
            }
        }
        assert_eq!(offer_bytes(u16::MAX), usize::MAX);
    }

    /// `units` is exact where the searches rely on it: for every request up to
    /// `EXACT_NEED`, `units(size) >= need_units(need)` exactly when `size >= need` (sizes are
    /// multiples of `BLOCK_ALIGN`), including for saturated sizes.
    #[test]
    fn units_decide_every_request_up_to_exact_need() {
        let sizes = [0, 16, 48, 64, EXACT_NEED, EXACT_NEED + 16, EXACT_NEED + 32, 1 << 40, 1 << 50];
        let needs = [1, 16, 17, 47, 48, 49, 4096, EXACT_NEED - 31, EXACT_NEED - 16, EXACT_NEED];
        for &need in &needs {
            for &size in &sizes {
                let fits = units(size) >= need_units(need);
                assert_eq!(fits, size >= need, "size {size} need {need}");
            }
        }
    }
}
