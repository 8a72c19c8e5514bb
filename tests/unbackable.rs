//! Requests no machine can back (issue #16, item 3): every strategy over `Mmap` refuses them
//! through every entry point (`alloc`, `alloc_zeroed`, `realloc`, `allocate`,
//! `allocate_zeroed`, `grow`, `grow_zeroed`), gives the same answer for all of them, and stays
//! usable afterwards. No pointer a test here gets back for such a request is ever touched: if
//! a strategy wrongly returns one, the test frees it untouched and fails. A tiny block at a
//! huge alignment may be granted (it needs little memory), but then through every entry point
//! and really writable.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use stratalloc::{
    BestFit, ConstInit, FirstFit, Heap, Linear, Mmap, NextFit, PageSource, SegregatedFit, SourceError,
    Strategy, Tiered,
};

/// 64 TiB: more than any machine's memory and swap, less than the 128 TiB of user address
/// space of x86-64 Linux (so address space alone does not refuse it).
const HUGE: usize = 1 << 46;

/// Held by every test of this file while it runs. Two 64 TiB reservations at once need more
/// than the free address space of a process (128 TiB less the program, libraries, stack and
/// ASLR's gaps), so tests run in parallel could refuse each other's reservations: this file's
/// tests take turns (they take a fraction of a second each).
static ADDRESS_SPACE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test's turn at the address space (a failed test before it does not end the others).
fn turn() -> std::sync::MutexGuard<'static, ()> {
    ADDRESS_SPACE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A page source call for `HUGE` read-write bytes is refused, and so is one past RAM + swap.
#[test]
fn mmap_refuses_to_map_what_it_cannot_commit() {
    let _turn = turn();
    let m = Mmap;
    // Reserving address space costs nothing and stays allowed.
    let base = m.reserve(HUGE, 4096).expect("64 TiB of PROT_NONE address space");
    // SAFETY: `base..base + HUGE` was just reserved from `m` and is Reserved.
    let mapped = unsafe { m.map(base, HUGE) };
    // SAFETY: the whole reservation, unused by anything.
    unsafe { m.free(base, HUGE) }.unwrap();
    match mapped {
        Err(SourceError::Os { errno, .. }) => assert_eq!(errno, libc::ENOMEM),
        Err(SourceError::Exhausted { .. }) => {}
        other => panic!("mapping 64 TiB read-write: {other:?}, expected a refusal"),
    }
    assert!(m.alloc_ready(HUGE, 4096).is_err(), "alloc_ready of 64 TiB succeeded");
}

/// A 64 MiB read-write range (a tiered arena) still maps, and can be touched end to end.
#[test]
fn mmap_still_maps_a_64_mib_arena() {
    let _turn = turn();
    const ARENA: usize = 64 << 20;
    let m = Mmap;
    let p = m.alloc_ready(ARENA, ARENA).expect("a 64 MiB arena");
    // SAFETY: `p..p + ARENA` is Ready memory of this test alone.
    unsafe {
        for off in (0..ARENA).step_by(4096) {
            *p.as_ptr().add(off) = off as u8 | 1;
        }
        for off in (0..ARENA).step_by(4096) {
            assert_eq!(*p.as_ptr().add(off), off as u8 | 1);
        }
        m.free(p, ARENA).unwrap();
    }
}

/// Records an unexpected success (the pointer is freed untouched).
fn refused<T>(what: &str, r: Option<T>, errors: &mut Vec<String>) -> Option<T> {
    if r.is_some() {
        errors.push(format!("{what} succeeded"));
    }
    r
}

/// Whether a block was granted; a granted one is checked aligned (and zero if asked), written
/// end to end and freed.
///
/// # Safety
/// `p`, if any, is a fresh block of `heap` for `layout`.
unsafe fn touch_and_free<S: Strategy>(
    heap: &Heap<S, Mmap>,
    p: Option<NonNull<u8>>,
    layout: Layout,
    zeroed: bool,
) -> bool {
    let Some(p) = p else { return false };
    assert!(p.addr().get().is_multiple_of(layout.align()), "{p:p} not aligned to {layout:?}");
    // SAFETY: a live block of `layout.size()` bytes (the caller's guarantee).
    unsafe {
        let bytes = core::slice::from_raw_parts_mut(p.as_ptr(), layout.size());
        assert!(!zeroed || bytes.iter().all(|&b| b == 0), "zeroed block {p:p} not zero");
        bytes.fill(0xA5);
        assert!(bytes.iter().all(|&b| b == 0xA5));
        heap.dealloc(p.as_ptr(), layout);
    }
    true
}

fn refuses_huge<S: Strategy + ConstInit>() {
    let _turn = turn();
    let heap: Heap<S, Mmap> = Heap::new();
    let name = heap.strategy().name();
    let mut errors = Vec::new();
    let huge = Layout::from_size_align(HUGE, 8).unwrap();
    let huge_align = Layout::from_size_align(64, 1 << 40).unwrap();
    // Something live first, so that realloc and grow have a block to move.
    let small = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero sizes throughout; every block returned is freed once with its layout.
    unsafe {
        let keep = heap.alloc(small);
        assert!(!keep.is_null(), "{name}: 100 bytes refused");
        keep.write_bytes(0x5A, 100);
        for zeroed in [false, true] {
            let p = if zeroed { heap.alloc_zeroed(huge) } else { heap.alloc(huge) };
            let what = format!("{name}: GlobalAlloc::alloc{} {huge:?}", if zeroed { "_zeroed" } else { "" });
            if let Some(p) = refused(&what, NonNull::new(p), &mut errors) {
                heap.dealloc(p.as_ptr(), huge);
            }
            let r = if zeroed { heap.allocate_zeroed(huge) } else { heap.allocate(huge) };
            let what = format!("{name}: Allocator::allocate{} {huge:?}", if zeroed { "_zeroed" } else { "" });
            if let Some(p) = refused(&what, r.ok(), &mut errors) {
                heap.deallocate(p.cast(), huge);
            }
        }
        // 64 bytes aligned to 1 TiB need 64 bytes of memory at an aligned address: a strategy
        // that reserves only what it maps (tiered: one arena at such an address) can back them,
        // one that maps the alignment gap cannot. Either answer is right if it is the same
        // through every entry point and a granted block really holds its bytes.
        let mut answers = Vec::new();
        for zeroed in [false, true] {
            let p = if zeroed { heap.alloc_zeroed(huge_align) } else { heap.alloc(huge_align) };
            answers.push(touch_and_free(&heap, NonNull::new(p), huge_align, zeroed));
            let r = if zeroed { heap.allocate_zeroed(huge_align) } else { heap.allocate(huge_align) };
            answers.push(touch_and_free(&heap, r.ok().map(|p| p.cast()), huge_align, zeroed));
        }
        if answers.iter().any(|&a| a != answers[0]) {
            errors.push(format!("{name}: {huge_align:?} granted by some entry points only: {answers:?}"));
        }
        let p = heap.realloc(keep, small, HUGE);
        let keep = match refused(&format!("{name}: realloc to {HUGE}"), NonNull::new(p), &mut errors) {
            Some(p) => {
                let moved = Layout::from_size_align(HUGE, 8).unwrap();
                heap.dealloc(p.as_ptr(), moved);
                let k = heap.alloc(small);
                k.write_bytes(0x5A, 100);
                k
            }
            None => keep,
        };
        // Sizes no layout allows (rounded up to the block's alignment, past `isize::MAX`): the
        // heap refuses them before the strategy sees one, and the block stays as it was.
        for bad in [isize::MAX as usize - 6, usize::MAX - 7, usize::MAX] {
            let p = heap.realloc(keep, small, bad);
            assert!(p.is_null(), "{name}: realloc to {bad} bytes, which no layout allows, returned {p:p}");
        }
        let kept = NonNull::new(keep).unwrap();
        for zeroed in [false, true] {
            let r = if zeroed { heap.grow_zeroed(kept, small, huge) } else { heap.grow(kept, small, huge) };
            if let Some(p) =
                refused(&format!("{name}: grow (zeroed: {zeroed}) to {huge:?}"), r.ok(), &mut errors)
            {
                heap.deallocate(p.cast(), huge);
                panic!("{errors:?}");
            }
        }
        // A refused realloc or grow leaves the block live and intact.
        assert!(
            core::slice::from_raw_parts(keep, 100).iter().all(|&b| b == 0x5A),
            "{name}: a refused realloc changed the block"
        );
        // The heap still works and is consistent.
        let q = heap.alloc(Layout::from_size_align(1 << 20, 64).unwrap());
        assert!(!q.is_null(), "{name}: 1 MiB refused after the refusals");
        q.write_bytes(1, 1 << 20);
        heap.dealloc(q, Layout::from_size_align(1 << 20, 64).unwrap());
        heap.dealloc(keep, small);
        heap.check().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(errors.is_empty(), "requests no machine can back were granted:\n{}", errors.join("\n"));
    assert_eq!(heap.stats().live_objects, 0);
}

macro_rules! unbackable {
    ($($name:ident: $s:ty),* $(,)?) => {$(
        #[test]
        fn $name() {
            refuses_huge::<$s>();
        }
    )*};
}

unbackable! {
    first_fit: FirstFit,
    first_fit_linear: FirstFit<Linear>,
    next_fit: NextFit,
    best_fit: BestFit,
    segregated_fit: SegregatedFit,
    tiered: Tiered,
}
