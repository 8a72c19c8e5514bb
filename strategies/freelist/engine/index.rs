//! The contract between the core and the policies: the free-block index ([`FreeIndex`]), the
//! placement policy ([`Policy`], sealed behind [`Placement`]) and the fit rule [`fit_start`].
//! Textbook counterpart: the free list a first/next/best-fit search walks (Knuth, TAOCP 2.5).

use super::super::block::{BLOCK_ALIGN, Block, HEADER_BYTES, MIN_BLOCK_BYTES};
use crate::source::align_up;
use crate::strategy::CheckError;

/// The set of free blocks, kept in step with the core's changes, in an order a policy can
/// search.
///
/// Every method is told the sizes of the blocks it names and must not read their headers
/// (the core may have rewritten them); it may read the headers of the other indexed blocks,
/// which are unchanged. The node memory (`NODE_BYTES` after the header) of every indexed
/// block is intact when a method is called, and a method writes only node memory.
///
/// # Safety
/// *Implementors must guarantee* that the index holds exactly the blocks the core inserted
/// and did not remove, that searches return only indexed blocks, and that node memory of
/// indexed blocks is the only memory written.
pub unsafe trait FreeIndex: Send {
    /// An empty index (no work).
    const EMPTY: Self;

    /// `b` (of `size` bytes) became free; `hint`, if given, is the indexed block just below
    /// `b` in address order.
    ///
    /// # Safety
    /// `b` is a free block not in the index.
    unsafe fn insert(&mut self, b: Block, size: usize, hint: Option<Block>);

    /// `b` (indexed with `size` bytes) leaves the index.
    ///
    /// # Safety
    /// `b` is in the index with `size`.
    unsafe fn remove(&mut self, b: Block, size: usize);

    /// `new` (of `new_size` bytes) takes the place of `old` (indexed with `old_size`); no
    /// other indexed block lies between them in address order. `new`'s node may overlap
    /// `old`'s: read the old node before writing the new one.
    ///
    /// # Safety
    /// `old` is in the index, `new` is a free block not in it.
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize);

    /// `b` stays at its address, its size changed from `old_size` to `new_size`.
    ///
    /// # Safety
    /// `b` is in the index with `old_size`.
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize);

    /// Calls `visit` once per indexed block and checks the index's own invariants (ordering,
    /// links, balance); returns the number of blocks.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError>;
}

/// A placement policy of a [`FreeList`](super::super::FreeList): which free block a request takes
/// ([`First`](super::super::First), [`Next`](super::super::Next), [`Best`](super::super::Best) or
/// [`Segregated`](super::super::Segregated), over an index).
///
/// Sealed: implemented by those policies only. What a policy does is the free lists' own
/// business (the private trait it extends, whose methods choose blocks in heap memory); the
/// trait is public so that code can be generic over `FreeList<X>`.
pub trait Placement: Policy {}

impl<X: Policy> Placement for X {}

/// What a placement policy does: which free block a request takes. Owns its index. Public
/// only in name (declared in a private module, so no code outside the crate can name it,
/// implement it or call its methods), as the supertrait of [`Placement`].
///
/// # Safety
/// *Implementors must guarantee* that [`find`](Self::find) and
/// [`find_rest`](Self::find_rest) return only a block now in the index for which
/// [`fit_start`] returns `Some`.
pub unsafe trait Policy: Send {
    /// The index of free blocks.
    type Index: FreeIndex;
    /// An empty policy (no work).
    const EMPTY: Self;
    /// The strategy's name, as the runtime choice parses it.
    const NAME: &'static str;

    /// The index.
    fn index(&self) -> &Self::Index;
    /// The index, to change.
    fn index_mut(&mut self) -> &mut Self::Index;

    /// Chooses a free block with room for a block of `need` bytes aligned for `align`, in
    /// the common case: the policy's choice is `find(..).or_else(|| find_rest(..))`. It is
    /// inlined in the allocation path; [`find_rest`](Self::find_rest) is called out of line.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    unsafe fn find(&mut self, need: usize, align: usize) -> Option<Block>;

    /// The rest of the search, called only when [`find`](Self::find) returned `None` (for
    /// a policy whose `find` decides every request: `None`, the default). Kept out of the
    /// allocation path so that the registers a longer search needs are not saved on every
    /// request.
    ///
    /// # Safety
    /// As for [`find`](Self::find), which has just returned `None` for the same request.
    #[inline]
    unsafe fn find_rest(&mut self, need: usize, align: usize) -> Option<Block> {
        let _ = (need, align);
        None
    }

    /// A block ending at `end` was handed out (next fit moves its rover there).
    #[inline]
    fn handed_out(&mut self, end: usize) {
        let _ = end;
    }
}

// ANCHOR: fit_start
/// Where a block of `need` bytes aligned for `align` would start inside free block `b`, or
/// `None` if it does not fit. A non-empty gap below it must be able to stay a free block.
///
/// # Safety
/// `b` is a live block.
#[inline]
pub(in super::super) unsafe fn fit_start(b: Block, need: usize, align: usize) -> Option<usize> {
    // SAFETY: the caller passes a live block.
    let (start, end) = (b.addr(), unsafe { b.end() });
    let q = if align <= BLOCK_ALIGN { start } else { aligned_start(start, align)? };
    (q.checked_add(need)? <= end).then_some(q)
}
// ANCHOR_END: fit_start

/// Start of the first block at or above `start` whose payload is `align`-aligned and whose
/// gap below is empty or can hold a free block.
#[cold]
fn aligned_start(start: usize, align: usize) -> Option<usize> {
    let mut p = align_up(start + HEADER_BYTES, align)?;
    if p - HEADER_BYTES != start && p - HEADER_BYTES - start < MIN_BLOCK_BYTES {
        p = align_up(start + HEADER_BYTES + MIN_BLOCK_BYTES, align)?;
    }
    Some(p - HEADER_BYTES)
}
