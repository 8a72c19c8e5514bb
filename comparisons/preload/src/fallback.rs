//! The fallback: blocks for calls that must not touch the heap (a call re-entered from
//! inside the allocator on the same thread).
//!
//! Typical re-entry: a strategy's first use of a thread-local with a destructor makes glibc's
//! `__cxa_thread_atexit_impl` call `calloc` for its bookkeeping, while the strategy is in the
//! middle of an allocation and may hold a lock. The fallback takes no lock:
//! - *pool*: `POOL_SLOTS` slots of `SLOT_BYTES` in `.bss`, claimed and released with atomic
//!   bit operations (small requests, alignment up to 16);
//! - *direct*: anything else gets a mapping of its own from [`Mmap`] (freed with `munmap`).
//!
//! Invariants: bit `i` of `USED` is set ⇔ slot `i` is a live block; a direct block's
//! `layout.size()` is its whole mapping length (a multiple of the OS page) and its base is
//! the mapping's start.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use stratalloc::{Mmap, PageSource};

use crate::block::{self, Found, Origin};

/// Bytes of a pool slot (16 of which are the header).
const SLOT_BYTES: usize = 128;
/// Slots in the pool.
const POOL_SLOTS: usize = 1024;
const POOL_BYTES: usize = SLOT_BYTES * POOL_SLOTS;
/// OS page of direct blocks.
const PAGE_BYTES: usize = <Mmap as PageSource>::PAGE_BYTES;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[u8; POOL_BYTES]>);

// SAFETY: slots are handed out to one owner at a time through the `USED` bitmap; the pool
// is only accessed through raw pointers to claimed slots.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([0; POOL_BYTES]));
static USED: [AtomicU64; POOL_SLOTS / 64] = [const { AtomicU64::new(0) }; POOL_SLOTS / 64];

/// Blocks handed out by the fallback (pool and direct), for the statistics.
pub static FALLBACK_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Allocates a block of `layout` (from [`block::layout_for`]) and returns its user pointer,
/// zeroed if asked; null when even the OS refuses.
pub fn alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    FALLBACK_BLOCKS.fetch_add(1, Ordering::Relaxed);
    if layout.size() <= SLOT_BYTES
        && layout.align() <= block::MIN_ALIGN_BYTES
        && let Some(user) = pool_alloc(zeroed)
    {
        return user;
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
    let layout = Layout::new::<[u128; SLOT_BYTES / 16]>();
    // SAFETY: `slot < POOL_SLOTS`, so the slot lies inside the pool; it was just claimed in
    // `USED`, so nothing else uses it; it is 16-aligned (pool 4096-aligned, slots 128 apart).
    unsafe {
        let base = POOL.0.get().cast::<u8>().add(slot * SLOT_BYTES);
        if zeroed {
            ptr::write_bytes(base, 0, SLOT_BYTES);
        }
        block::finish(NonNull::new_unchecked(base), layout, Origin::Pool)
    }
}

fn direct_alloc(layout: Layout) -> *mut u8 {
    let Some(bytes) = stratalloc::source::align_up(layout.size(), PAGE_BYTES) else {
        return ptr::null_mut();
    };
    let Ok(mapped) = Layout::from_size_align(bytes, layout.align()) else { return ptr::null_mut() };
    match Mmap.alloc_ready(bytes, layout.align().max(PAGE_BYTES)) {
        // SAFETY: a fresh mapping of `bytes`, aligned to `layout.align()`, zeroed by the OS.
        Ok(base) => unsafe { block::finish(base, mapped, Origin::Direct) },
        Err(_) => ptr::null_mut(),
    }
}

/// Whether `found` describes a block the fallback could have handed out.
pub fn owns(found: &Found) -> bool {
    let addr = found.base.as_ptr() as usize;
    match found.origin {
        Origin::Pool => {
            let start = POOL.0.get() as usize;
            addr >= start && addr < start + POOL_BYTES && (addr - start).is_multiple_of(SLOT_BYTES)
        }
        Origin::Direct => addr.is_multiple_of(PAGE_BYTES) && found.layout.size().is_multiple_of(PAGE_BYTES),
        Origin::Heap => false,
    }
}

/// Frees a fallback block.
///
/// # Safety
/// `found` was read from a live block of the fallback (`owns(found)`), freed once.
pub unsafe fn free(found: &Found) {
    match found.origin {
        Origin::Pool => {
            let slot = (found.base.as_ptr() as usize - POOL.0.get() as usize) / SLOT_BYTES;
            USED[slot / 64].fetch_and(!(1 << (slot % 64)), Ordering::Release);
        }
        Origin::Direct => {
            // SAFETY: the block is a whole mapping from `Mmap` (the caller's guarantee), no
            // longer used.
            let _ = unsafe { Mmap.free(found.base, found.layout.size()) };
        }
        Origin::Heap => {}
    }
}
