//! The fallback: blocks for calls that must not touch the heap (a call re-entered from
//! inside the allocator on the same thread).
//!
//! Typical re-entry: a strategy's first use of a thread-local with a destructor makes glibc's
//! `__cxa_thread_atexit_impl` call `calloc` for its bookkeeping, while the strategy is in the
//! middle of an allocation and may hold a lock. The fallback takes no lock:
//! - *pool*: `POOL_SLOTS` slots of `SLOT_BYTES` in `.bss`, claimed and released with atomic
//!   bit operations (requests up to `SLOT_BYTES` bytes aligned to at most `SLOT_BYTES`);
//! - *direct*: anything else gets a mapping of its own from [`Mmap`] (freed with `munmap`),
//!   recorded in a fixed table of `DIRECT_SLOTS` entries so that `free` recognises it by its
//!   address.
//!
//! No header: a pool block is recognised by the pool's address range and its slot's bit, a
//! direct block by its entry in the table. Nothing is ever read below a pointer.
//!
//! Invariants: bit `i` of `USED` is set ⇔ slot `i` is a live block, whose pointer is the
//! slot's first byte. A direct entry with `start == a` (not `EMPTY`, not `BUSY`) ⇔ a live
//! direct block at address `a`, a whole mapping of `bytes` bytes (a multiple of the OS page).

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use stratalloc::{BadFree, Mmap, PageSource};

/// Bytes of a pool slot (all of them usable).
pub const SLOT_BYTES: usize = 128;
/// Slots in the pool.
const POOL_SLOTS: usize = 1024;
const POOL_BYTES: usize = SLOT_BYTES * POOL_SLOTS;
/// OS page of direct blocks.
const PAGE_BYTES: usize = <Mmap as PageSource>::PAGE_BYTES;
/// Live direct blocks at most; a re-entered call that needs one more fails (NULL, ENOMEM).
const DIRECT_SLOTS: usize = 256;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[u8; POOL_BYTES]>);

// SAFETY: slots are handed out to one owner at a time through the `USED` bitmap; the pool
// is only accessed through raw pointers to claimed slots.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([0; POOL_BYTES]));
static USED: [AtomicU64; POOL_SLOTS / 64] = [const { AtomicU64::new(0) }; POOL_SLOTS / 64];

/// One entry of the direct table.
struct Direct {
    /// `EMPTY`, `BUSY` (being filled or emptied by one thread), or a live block's address.
    start: AtomicUsize,
    /// The block's mapping length; meaningful while `start` is an address.
    bytes: AtomicUsize,
}

const EMPTY: usize = 0;
const BUSY: usize = 1;

static DIRECT: [Direct; DIRECT_SLOTS] =
    [const { Direct { start: AtomicUsize::new(EMPTY), bytes: AtomicUsize::new(0) } }; DIRECT_SLOTS];
/// Entries of `DIRECT` not `EMPTY`: lets `free` skip the table when it holds nothing.
static DIRECT_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Blocks handed out by the fallback (pool and direct), for the statistics.
pub static FALLBACK_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Allocates a block of `layout` (size at least 1, alignment at least 16), zeroed if asked;
/// null when even the OS refuses or the direct table is full.
pub fn alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    FALLBACK_BLOCKS.fetch_add(1, Ordering::Relaxed);
    if layout.size() <= SLOT_BYTES
        && layout.align() <= SLOT_BYTES
        && let Some(p) = pool_alloc(zeroed)
    {
        return p;
    }
    direct_alloc(layout)
}

fn pool_alloc(zeroed: bool) -> Option<*mut u8> {
    for (word_index, word) in USED.iter().enumerate() {
        let mut bits = word.load(Ordering::Relaxed);
        while bits != u64::MAX {
            let bit = (!bits).trailing_zeros() as usize;
            match word.compare_exchange_weak(bits, bits | 1 << bit, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(pool_slot_ready(word_index * 64 + bit, zeroed)),
                Err(now) => bits = now,
            }
        }
    }
    None
}

fn pool_slot_ready(slot: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: `slot < POOL_SLOTS`, so the slot lies inside the pool; it was just claimed in
    // `USED`, so nothing else uses it. It is `SLOT_BYTES`-aligned (pool 4096-aligned, slots
    // `SLOT_BYTES` apart).
    unsafe {
        let base = POOL.0.get().cast::<u8>().add(slot * SLOT_BYTES);
        if zeroed {
            ptr::write_bytes(base, 0, SLOT_BYTES);
        }
        base
    }
}

/// Whether `p` lies in the pool (live or not, slot start or not).
#[inline]
pub fn in_pool(p: *const u8) -> bool {
    p.addr().wrapping_sub(POOL.0.get().addr()) < POOL_BYTES
}

/// The slot of a pool address and whether `p` is its start; `Err(Foreign)` outside the pool.
fn slot_of(p: *const u8) -> Result<(usize, bool), BadFree> {
    let offset = p.addr().wrapping_sub(POOL.0.get().addr());
    if offset >= POOL_BYTES {
        return Err(BadFree::Foreign);
    }
    Ok((offset / SLOT_BYTES, offset.is_multiple_of(SLOT_BYTES)))
}

/// The usable size of the live pool block at `p`, or why `p` is none.
pub fn pool_block(p: *const u8) -> Result<usize, BadFree> {
    let (slot, start) = slot_of(p)?;
    if !start {
        return Err(BadFree::Interior);
    }
    if USED[slot / 64].load(Ordering::Acquire) & 1 << (slot % 64) == 0 {
        return Err(BadFree::NotLive);
    }
    Ok(SLOT_BYTES)
}

/// Frees the pool block at `p`; refuses an interior pointer, a slot that is not live or an
/// address outside the pool, changing nothing.
pub fn pool_free(p: *const u8) -> Result<(), BadFree> {
    let (slot, start) = slot_of(p)?;
    if !start {
        return Err(BadFree::Interior);
    }
    let bit = 1 << (slot % 64);
    if USED[slot / 64].fetch_and(!bit, Ordering::Release) & bit == 0 {
        return Err(BadFree::NotLive);
    }
    Ok(())
}

fn direct_alloc(layout: Layout) -> *mut u8 {
    let Some(bytes) = stratalloc::source::align_up(layout.size(), PAGE_BYTES) else {
        return ptr::null_mut();
    };
    let Some(entry) = DIRECT.iter().find(|e| {
        e.start.load(Ordering::Relaxed) == EMPTY
            && e.start.compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }) else {
        return ptr::null_mut();
    };
    DIRECT_IN_USE.fetch_add(1, Ordering::Relaxed);
    match Mmap.alloc_ready(bytes, layout.align().max(PAGE_BYTES)) {
        Ok(base) => {
            entry.bytes.store(bytes, Ordering::Relaxed);
            entry.start.store(base.as_ptr().addr(), Ordering::Release);
            base.as_ptr()
        }
        Err(_) => {
            entry.start.store(EMPTY, Ordering::Release);
            DIRECT_IN_USE.fetch_sub(1, Ordering::Relaxed);
            ptr::null_mut()
        }
    }
}

/// The entry of the live direct block at `p`.
fn direct_entry(p: *const u8) -> Option<&'static Direct> {
    if DIRECT_IN_USE.load(Ordering::Acquire) == 0 || p.addr() <= BUSY {
        return None;
    }
    DIRECT.iter().find(|e| e.start.load(Ordering::Acquire) == p.addr())
}

/// The usable size of the live direct block at `p`, if `p` is one.
pub fn direct_block(p: *const u8) -> Option<usize> {
    direct_entry(p).map(|e| e.bytes.load(Ordering::Relaxed))
}

/// Frees the direct block at `p` if `p` is one (true); false, changing nothing, otherwise.
///
/// # Safety
/// If `p` is a live direct block, the caller gives it up: its memory is not used after the
/// call.
pub unsafe fn direct_free(p: NonNull<u8>) -> bool {
    let Some(entry) = direct_entry(p.as_ptr()) else { return false };
    // Only one caller can take the entry from the address to BUSY: a concurrent double free
    // of the same block loses here and is refused.
    if entry.start.compare_exchange(p.as_ptr().addr(), BUSY, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return false;
    }
    let bytes = entry.bytes.load(Ordering::Relaxed);
    // SAFETY: the entry recorded `p` as the start of a live mapping of `bytes` bytes from
    // `Mmap` (the table's invariant), which this call alone took out of the table; the
    // caller gives its memory up.
    let _ = unsafe { Mmap.free(p, bytes) };
    entry.start.store(EMPTY, Ordering::Release);
    DIRECT_IN_USE.fetch_sub(1, Ordering::Relaxed);
    true
}
