//! The exported C allocation API, its glibc aliases, and the constructor and destructor
//! (see lib.rs for the semantics chosen).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void};
use core::fmt::Write;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use stratalloc::{BadFree, BlockInfo, CachedFree, Heap, Op, Strategy};

use crate::bad;
use crate::entry::{self, Entry, FastEntry};
use crate::fallback;
use crate::heaps::{self, Src, Visit};
use crate::report::{Line, errno, errno_slot, set_errno};
use crate::trace;

/// Heap blocks freed by a re-entered call, which cannot touch the heap (leaked).
static REENTRANT_LEAKS: AtomicUsize = AtomicUsize::new(0);

/// Alignment of every pointer malloc returns (glibc's MALLOC_ALIGNMENT on 64-bit targets).
const MIN_ALIGN_BYTES: usize = 16;
/// OS page for valloc / pvalloc.
const PAGE_BYTES: usize = 4096;
/// Largest request `malloc`'s fast path offers the strategy's thread cache (32 KiB, the
/// largest object `tiered`, the default strategy, keeps there); a larger one goes to the
/// general path at once. Bounding the size first also spares the fast path `Layout`'s
/// overflow test (the compiler sees the size is small) and the strategy its own size test.
const FAST_MAX_BYTES: usize = 32 << 10;

/// The layout a C request of `n` bytes aligned to `align` (a power of two) asks the heap
/// for: `n` bytes (at least 1, so that `malloc(0)` gets a unique block: the strategy's
/// smallest), aligned to `max(align, 16)`. `None` when no block that large can exist.
#[inline]
fn layout_for(n: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(n.max(1), align.max(MIN_ALIGN_BYTES)).ok()
}

// ---------------------------------------------------------------------------------------
// The generic operations on the selected heap.

struct Alloc {
    layout: Layout,
    zeroed: bool,
}

impl Visit for Alloc {
    type Out = *mut u8;
    #[inline]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size (`layout_for` asks for at least 1 byte).
        unsafe { if self.zeroed { heap.alloc_zeroed(self.layout) } else { heap.alloc(self.layout) } }
    }
}

/// [`Heap::alloc_cached`]: the fast path of `malloc`. Made only with a non-zero size.
struct AllocCached(Layout);

impl Visit for AllocCached {
    type Out = Option<NonNull<u8>>;
    #[inline(always)]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> Option<NonNull<u8>> {
        // SAFETY: `layout` has a non-zero size (`layout_for` asks for at least 1 byte).
        unsafe { heap.alloc_cached(self.0) }
    }
}

/// [`Heap::free_cached`]: the fast path of `free`. Made only by [`FreeCached::new`].
struct FreeCached(NonNull<u8>);

impl FreeCached {
    /// # Safety
    /// As for [`Free::new`].
    unsafe fn new(p: NonNull<u8>) -> FreeCached {
        FreeCached(p)
    }
}

impl Visit for FreeCached {
    type Out = bool;
    #[inline(always)]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> bool {
        // SAFETY: `FreeCached::new`'s caller gives the block up if it is a live one; any
        // other pointer is refused without effect (the strategy's address contract holds for
        // any address, so the reserved-span test `Free` makes first is not needed).
        unsafe { heap.free_cached(self.0) }
    }
}

/// [`Heap::free_cached_fast`]: the call-free first step of `free`'s fast path. Made only by
/// [`FreeCachedFast::new`].
struct FreeCachedFast(NonNull<u8>);

impl FreeCachedFast {
    /// # Safety
    /// As for [`Free::new`].
    unsafe fn new(p: NonNull<u8>) -> FreeCachedFast {
        FreeCachedFast(p)
    }
}

impl Visit for FreeCachedFast {
    type Out = CachedFree;
    #[inline(always)]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> CachedFree {
        // SAFETY: as for `FreeCached`.
        unsafe { heap.free_cached_fast(self.0) }
    }
}

/// Frees by address; `Err(Foreign)` at once for an address outside the span the heap ever
/// reserved (no strategy code runs for it). Made only by [`Free::new`].
struct Free(NonNull<u8>);

impl Free {
    /// # Safety
    /// If `p` is a live block, the caller gives it up: it is not used after the visit, nor
    /// freed or resized concurrently.
    unsafe fn new(p: NonNull<u8>) -> Free {
        Free(p)
    }
}

impl Visit for Free {
    type Out = Result<usize, BadFree>;
    #[inline]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> Result<usize, BadFree> {
        if !heaps::contains(self.0.as_ptr()) {
            return Err(BadFree::Foreign);
        }
        // SAFETY: `Free::new`'s caller gives the block up if it is a live one; any other
        // pointer is refused by the strategy without effect.
        unsafe { heap.free(self.0) }
    }
}

/// The live heap block at an address, if it is one.
struct BlockOf(*const u8);

impl Visit for BlockOf {
    type Out = Option<BlockInfo>;
    #[inline]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> Option<BlockInfo> {
        if !heaps::contains(self.0) {
            return None;
        }
        heap.block_of(self.0)
    }
}

/// `realloc` of a pointer that may be a heap block: `None` when it is not a live one. Made
/// only by [`Realloc::new`].
struct Realloc {
    p: NonNull<u8>,
    n: usize,
}

impl Realloc {
    /// # Safety
    /// If `p` is a live block, the program owns it and does not use it concurrently; it
    /// gives it up if the visit returns a non-null pointer.
    unsafe fn new(p: NonNull<u8>, n: usize) -> Realloc {
        Realloc { p, n }
    }
}

impl Visit for Realloc {
    type Out = Option<*mut u8>;
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> Option<*mut u8> {
        let Realloc { p, n } = self;
        let info = BlockOf(p.as_ptr()).visit(heap)?;
        if keeps(info.usable, n) {
            return Some(p.as_ptr());
        }
        // C realloc keeps malloc's alignment only, so the old block is described (and the
        // new one asked for) with alignment 16: every block of ours honours at least that
        // (`info.align >= 16`), and `BlockInfo` allows any size from the request up to
        // `usable` in the layout, so the strategy keeps all `usable` bytes.
        let (Ok(old), Some(_)) = (Layout::from_size_align(info.usable, MIN_ALIGN_BYTES), layout_for(n, 16))
        else {
            return Some(ptr::null_mut());
        };
        // SAFETY: `p` is a live block of this heap (just found by `block_of`; by
        // `Realloc::new`'s contract nothing frees or resizes it concurrently, and it is
        // given up on success) and `old` a layout `BlockInfo` allows for it; `n > 0`, and
        // `n` rounded up to 16 fits a `Layout` (checked just above).
        Some(unsafe { heap.realloc(p.as_ptr(), old, n) })
    }
}

/// Whether `realloc` to `n` bytes keeps a block of `usable` bytes as it is: it fits, and
/// at least half of the block stays in use (otherwise the strategy gets to shrink it).
#[inline]
fn keeps(usable: usize, n: usize) -> bool {
    n <= usable && n >= usable / 2
}

struct Trim;

impl Visit for Trim {
    type Out = usize;
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> usize {
        heap.trim()
    }
}

struct PrintStats;

impl Visit for PrintStats {
    type Out = ();
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) {
        let s = heap.stats();
        let c = &s.source;
        let mut line = Line::<600>::new();
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        let _ = write!(
            line,
            "stratalloc[{pid}]: strategy={} live_bytes={} live_objects={} peak_live_bytes={} \
             committed_bytes={} reserved_bytes={} source_calls: reserve={} map={} used={} \
             unused={} fault={} free={} failed={} fallback_blocks={} foreign_frees={} \
             interior_frees={} double_frees={} bad_reallocs={} reentrant_leaks={}",
            heaps::selected(),
            s.live_bytes,
            s.live_objects,
            s.peak_live_bytes,
            s.committed_bytes,
            s.reserved_bytes,
            c.calls_of(Op::Reserve),
            c.calls_of(Op::Map),
            c.calls_of(Op::Used),
            c.calls_of(Op::Unused),
            c.calls_of(Op::Fault),
            c.calls_of(Op::Free),
            c.failed,
            fallback::FALLBACK_BLOCKS.load(Ordering::Relaxed),
            bad::FOREIGN.load(Ordering::Relaxed),
            bad::INTERIOR.load(Ordering::Relaxed),
            bad::DOUBLE.load(Ordering::Relaxed),
            bad::REALLOC.load(Ordering::Relaxed),
            REENTRANT_LEAKS.load(Ordering::Relaxed),
        );
        line.emit();
    }
}

// ---------------------------------------------------------------------------------------
// The paths shared by the exported functions.

/// `malloc`'s fast path: the default strategy serves `n` bytes from the thread's cache
/// through the fast entry (`Strategy::alloc_cached`); `None`, with nothing changed, when any
/// of it does not apply (another strategy, tracing: the gate of `FastEntry`; a re-entered
/// call, a fork being prepared, a refill due), and then the general path runs.
#[inline(always)]
fn malloc_cached(n: usize) -> Option<NonNull<u8>> {
    // `malloc(0)` takes the general path too: one test bounds `n` on both sides, and the
    // compiler, knowing `n >= 1`, drops `layout_for`'s `max(n, 1)`.
    if n.wrapping_sub(1) >= FAST_MAX_BYTES {
        return None;
    }
    let layout = layout_for(n, MIN_ALIGN_BYTES)?;
    let _entry = FastEntry::enter()?;
    heaps::visit_fast(AllocCached(layout))
}

/// What `free`'s fast path did (`free_cached`).
enum FastFree {
    /// Freed into the thread's cache.
    Taken,
    /// The strategy's call-free lookup missed: the fast entry, still held, goes to
    /// `free_missed` with the block.
    Missed(NonNull<u8>, FastEntry),
    /// Not taken, nothing changed, the fast entry left (or never made): `free_general`.
    General,
}

/// `free`'s fast path: the default strategy takes `p` back into the thread's cache through
/// the fast entry by its call-free lookup (`Strategy::free_cached_fast`); `Missed` when that
/// lookup found nothing (then `free_missed` tries `Strategy::free_cached`, the entry handed
/// over), `General`, with nothing changed, when any of it does not apply (as for
/// `malloc_cached`, and any pointer the strategy's `free` would refuse or serve on a slower
/// path). No OS call is made on it, so errno needs no saving, and no call at all, so that
/// `free`, whose calls are all in tail position, saves no register.
///
/// # Safety
/// As for [`free`].
#[inline(always)]
unsafe fn free_cached(p: *mut u8) -> FastFree {
    let Some(user) = NonNull::new(p) else { return FastFree::General };
    let Some(entry) = FastEntry::enter() else { return FastFree::General };
    // SAFETY: the caller gives the block up.
    match heaps::visit_fast(unsafe { FreeCachedFast::new(user) }) {
        CachedFree::Taken => FastFree::Taken,
        CachedFree::Refused => FastFree::General,
        CachedFree::Missed => FastFree::Missed(user, entry),
    }
}

/// `free` after the strategy's call-free lookup missed (an address outside the region it
/// looked in first, or any pointer it cannot take that way): its full cached free
/// (`Strategy::free_cached`) inside the same fast entry, else, the entry left,
/// `free_general`. `extern "C"`, as `free_general`.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe extern "C" fn free_missed(user: NonNull<u8>, entry: FastEntry) {
    // SAFETY: the caller gives the block up.
    let taken = heaps::visit_fast(unsafe { FreeCached::new(user) });
    drop(entry);
    if !taken {
        // SAFETY: the caller's guarantee.
        unsafe { free_general(user.as_ptr().cast()) }
    }
}

/// Allocates for a C request; NULL with ENOMEM on failure.
#[inline]
fn alloc_request(n: usize, align: usize, zeroed: bool) -> *mut u8 {
    let p = match layout_for(n, align) {
        Some(layout) => alloc_block(layout, zeroed),
        None => ptr::null_mut(),
    };
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p
}

/// Allocates a block from the selected heap, or from the fallback on a re-entered call.
#[inline]
fn alloc_block(layout: Layout, zeroed: bool) -> *mut u8 {
    match Entry::enter() {
        Some(_entry) => heaps::visit(heaps::selected(), Alloc { layout, zeroed }),
        None => fallback::alloc(layout, zeroed),
    }
}

/// `free`, by address: the pool's range first (a static range check), then the heap (its
/// reserved span, then the strategy's own refusal), then the direct fallback blocks; a
/// pointer none of them owns is a bad call. A re-entered call does not touch the heap: a
/// pointer that is no fallback block is leaked (counted), as the heap may be locked by the
/// interrupted call.
///
/// # Safety
/// `p` is NULL or a pointer the program gives up (C's contract for `free`: a live block, not
/// used after the call nor freed concurrently; anything else is refused as a bad call).
#[inline]
unsafe fn free_ptr(p: *mut u8) {
    let Some(user) = NonNull::new(p) else { return };
    if fallback::in_pool(p) {
        if let Err(why) = fallback::pool_free(p) {
            bad::bad_free(p, why);
        }
        return;
    }
    let why = match Entry::enter() {
        // SAFETY: the caller gives the block up.
        Some(_entry) => match heaps::visit(heaps::selected(), unsafe { Free::new(user) }) {
            Ok(_) => return,
            Err(why) => why,
        },
        None => {
            // SAFETY: the caller gives the block up.
            if !unsafe { fallback::direct_free(user) } {
                REENTRANT_LEAKS.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    // SAFETY: the caller gives the block up.
    if !unsafe { fallback::direct_free(user) } {
        bad::bad_free(p, why);
    }
}

/// `realloc`, with glibc's rules for NULL and 0: `realloc(NULL, n)` is `malloc(n)`;
/// `realloc(p, 0)` frees `p` and returns NULL, errno untouched.
///
/// # Safety
/// `p` is NULL or a pointer the program gives up if the call succeeds (C's contract: a live
/// block, not used concurrently; anything else is refused as a bad call).
unsafe fn realloc_ptr(p: *mut u8, n: usize) -> *mut u8 {
    let Some(user) = NonNull::new(p) else { return alloc_request(n, MIN_ALIGN_BYTES, false) };
    if n == 0 {
        let saved = errno();
        // SAFETY: the caller's guarantee.
        unsafe { free_ptr(p) };
        set_errno(saved);
        return ptr::null_mut();
    }
    // SAFETY: the caller's guarantee.
    unsafe { resize(user, n) }
}

/// `realloc` of a non-NULL pointer to `n > 0` bytes.
///
/// # Safety
/// `user` is a pointer the program gives up if the call succeeds (C's contract: a live
/// block, not used concurrently; anything else is refused as a bad call).
unsafe fn resize(user: NonNull<u8>, n: usize) -> *mut u8 {
    let p = user.as_ptr();
    let usable = if fallback::in_pool(p) {
        match fallback::pool_block(p) {
            Ok(usable) => usable,
            Err(_) => return bad_realloc(p),
        }
    } else {
        match Entry::enter() {
            Some(_entry) => {
                // SAFETY: the caller's guarantee is `Realloc::new`'s.
                let op = unsafe { Realloc::new(user, n) };
                if let Some(moved) = heaps::visit(heaps::selected(), op) {
                    if moved.is_null() {
                        set_errno(libc::ENOMEM);
                    }
                    return moved;
                }
            }
            // A re-entered call cannot ask the heap (it may be locked by the interrupted
            // call); only a direct fallback block can be resized here.
            None if fallback::direct_block(p).is_none() => {
                set_errno(libc::ENOMEM);
                return ptr::null_mut();
            }
            None => {}
        }
        match fallback::direct_block(p) {
            Some(usable) => usable,
            None => return bad_realloc(p),
        }
    };
    // A fallback block: kept when it fits, otherwise moved.
    if n <= usable {
        return p;
    }
    let moved = match layout_for(n, MIN_ALIGN_BYTES) {
        Some(layout) => alloc_block(layout, false),
        None => ptr::null_mut(),
    };
    if moved.is_null() {
        set_errno(libc::ENOMEM);
        return moved;
    }
    // SAFETY: both blocks are live (the old one found just above) and disjoint; the old one
    // holds `usable` bytes, the new one `n > usable`; the caller gives the old one up.
    unsafe {
        ptr::copy_nonoverlapping(p, moved, usable);
        free_ptr(p);
    }
    moved
}

/// A `realloc` of a pointer that is no live block: a bad call; NULL with ENOMEM.
#[cold]
fn bad_realloc(p: *mut u8) -> *mut u8 {
    bad::bad_realloc(p);
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// The usable size of the live block at `p` (0 when it is none). On a re-entered call only
/// fallback blocks are looked up (the heap may be locked by the interrupted call).
fn usable_size(p: *mut u8) -> usize {
    if fallback::in_pool(p) {
        return fallback::pool_block(p).unwrap_or(0);
    }
    if let Some(_entry) = Entry::enter()
        && let Some(info) = heaps::visit(heaps::selected(), BlockOf(p))
    {
        return info.usable;
    }
    fallback::direct_block(p).unwrap_or(0)
}

/// The memalign family, after its own argument rules: `align` is a power of two.
#[inline]
fn aligned(align: usize, n: usize) -> *mut u8 {
    let p = alloc_request(n, align, false);
    if trace::on() {
        trace::alloc(trace::KIND_ALIGNED, align.trailing_zeros() as u8, n, p.cast());
    }
    p
}

// ---------------------------------------------------------------------------------------
// The C API.

/// C `malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    match malloc_cached(size) {
        Some(p) => p.as_ptr().cast(),
        None => malloc_general(size),
    }
}

/// `malloc` past its fast path (out of line, so that the fast path saves no registers). An
/// `extern "C"` function (which cannot unwind) so that `malloc`'s call of it needs no
/// landing pad and is a tail jump: `malloc` then keeps no stack frame on its fast path.
#[inline(never)]
extern "C" fn malloc_general(size: usize) -> *mut c_void {
    let p = alloc_request(size, MIN_ALIGN_BYTES, false).cast();
    if trace::on() {
        trace::alloc(trace::KIND_ALLOC, 4, size, p);
    }
    p
}

/// C `free`; leaves errno as it was (POSIX.1-2024), whatever the strategy's OS calls do.
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function, not used after the call (C's
/// contract). Any other pointer (freed, interior, foreign) is recognised by its address,
/// without reading its memory, and refused as a bad call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the caller's guarantee.
    match unsafe { free_cached(p.cast()) } {
        FastFree::Taken => {}
        // SAFETY: the caller's guarantee.
        FastFree::Missed(user, entry) => unsafe { free_missed(user, entry) },
        // SAFETY: the caller's guarantee.
        FastFree::General => unsafe { free_general(p) },
    }
}

/// `free` past its fast path (out of line, so that the fast path saves no registers). An
/// `extern "C"` function (which cannot unwind) so that `free`'s calls are tail jumps, as for
/// `malloc_general`.
///
/// # Safety
/// As for [`free`].
#[inline(never)]
unsafe extern "C" fn free_general(p: *mut c_void) {
    let errno = errno_slot();
    // SAFETY: this thread's errno slot, valid for the thread's life.
    let saved = unsafe { *errno };
    if trace::on() && !p.is_null() {
        trace::free(trace::seq(), p);
    }
    // SAFETY: the caller's guarantee.
    unsafe { free_ptr(p.cast()) }
    // SAFETY: this thread's errno slot (`__errno_location`'s), valid for the thread's life.
    unsafe { *errno = saved };
}

/// C `calloc`: zeroed; NULL + ENOMEM when `count * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(bytes) => {
            let p = alloc_request(bytes, MIN_ALIGN_BYTES, true).cast();
            if trace::on() {
                trace::alloc(trace::KIND_CALLOC, 4, bytes, p);
            }
            p
        }
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// C `realloc` (glibc's rules for NULL and 0).
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function, not used concurrently (C's
/// contract). Any other pointer is recognised by its address and refused as a bad call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if trace::on() {
        // SAFETY: the caller's guarantee.
        return unsafe { traced_realloc(p, size) };
    }
    // SAFETY: the caller's guarantee.
    unsafe { realloc_ptr(p.cast(), size) }.cast()
}

/// `realloc` recorded: as an allocation (NULL pointer), a free (size 0) or a realloc.
///
/// # Safety
/// As for [`realloc`].
#[cold]
unsafe fn traced_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let seq = if p.is_null() { 0 } else { trace::seq() };
    // SAFETY: the caller's guarantee.
    let q: *mut c_void = unsafe { realloc_ptr(p.cast(), size) }.cast();
    match (p.is_null(), size, q.is_null()) {
        (true, _, _) => trace::alloc(trace::KIND_ALLOC, 4, size, q),
        (false, 0, _) => trace::free(seq, p),
        (false, _, false) => trace::realloc(seq, p, size, q),
        (false, _, true) => {}
    }
    q
}

/// `reallocarray`: `realloc(p, count * size)`, NULL + ENOMEM on overflow (`p` untouched).
///
/// # Safety
/// As for [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: the caller's guarantee.
        Some(bytes) => unsafe { realloc(p, bytes) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// POSIX `posix_memalign`: 0, `EINVAL` (alignment not a power-of-two multiple of
/// `sizeof(void *)`) or `ENOMEM`; errno and `*memptr` are untouched on failure.
///
/// # Safety
/// `memptr` is valid for a pointer write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> c_int {
    let word = size_of::<*mut c_void>();
    if !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    let saved = errno();
    let p = aligned(align, size);
    if p.is_null() {
        set_errno(saved);
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { *memptr = p.cast() };
    0
}

/// C11 `aligned_alloc`: `align` must be a power of two (NULL + EINVAL otherwise); any size.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    aligned(align, size).cast()
}

/// glibc `memalign`: a non-power-of-two alignment is rounded up to one; more than
/// `SIZE_MAX / 2 + 1` is EINVAL.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    aligned(align.next_power_of_two(), size).cast()
}

/// `valloc`: page-aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned(PAGE_BYTES, size).cast()
}

/// glibc `pvalloc`: page-aligned, size rounded up to a whole page (overflow: ENOMEM).
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match stratalloc::source::align_up(size, PAGE_BYTES) {
        Some(rounded) => aligned(PAGE_BYTES, rounded.max(PAGE_BYTES)).cast(),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// glibc `malloc_usable_size`: bytes the program may use in the block, exactly what the
/// strategy can hold there (0 for NULL or a pointer that is not the start of a live block).
/// Safe for any pointer: it is looked up by address only.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    usable_size(p.cast())
}

/// glibc `malloc_trim`: gives free memory back to the OS where the strategy can; 1 if some
/// was given back.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    match Entry::enter() {
        Some(_entry) => c_int::from(heaps::visit(heaps::selected(), Trim) > 0),
        None => 0,
    }
}

/// The old `cfree`: `free`.
///
/// # Safety
/// As for [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: the caller's guarantee.
    unsafe { free(p) }
}

/// The name of the strategy in use ("first-fit", ...): lets a program (and our tests) check
/// which allocator it runs on.
#[unsafe(no_mangle)]
pub extern "C" fn stratalloc_strategy_name() -> *const c_char {
    heaps::strategy_name().as_ptr()
}

// glibc's internal names, which some programs and libraries call directly.

/// `__libc_malloc`: [`malloc`].
#[unsafe(no_mangle)]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// `__libc_free`: [`free`].
///
/// # Safety
/// As for [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: the caller's guarantee.
    unsafe { free(p) }
}

/// `__libc_calloc`: [`calloc`].
#[unsafe(no_mangle)]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// `__libc_realloc`: [`realloc`].
///
/// # Safety
/// As for [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's guarantee.
    unsafe { realloc(p, size) }
}

/// `__libc_memalign`: [`memalign`].
#[unsafe(no_mangle)]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// `__libc_valloc`: [`valloc`].
#[unsafe(no_mangle)]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

/// `__libc_pvalloc`: [`pvalloc`].
#[unsafe(no_mangle)]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

// ---------------------------------------------------------------------------------------
// Start-up and exit.

/// Runs when the library is loaded (after the C library is initialised): chooses the
/// strategy (so a bad `STRATALLOC_STRATEGY` is reported even by a program that never calls
/// malloc) and registers the fork handlers.
extern "C" fn on_load() {
    heaps::selected();
    entry::init();
    // SAFETY: the handlers are `extern "C" fn()` that live as long as the process.
    unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child));
    }
}

/// The fork protocol's steps on the selected heap.
#[derive(Copy, Clone)]
enum ForkStep {
    Prepare,
    Parent,
    Child,
}

impl Visit for ForkStep {
    type Out = ();
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) {
        match self {
            ForkStep::Prepare => heap.fork_prepare(),
            // SAFETY: `before_fork` ran `Prepare` on this thread just before the fork (the
            // handlers are registered together, and the heap is fixed since `on_load`).
            ForkStep::Parent => unsafe { heap.fork_parent() },
            // SAFETY: `before_fork` ran `Prepare` on this thread just before the fork (the
            // handlers are registered together, and the heap is fixed since `on_load`); this
            // is the child's only thread.
            ForkStep::Child => unsafe { heap.fork_child() },
        }
    }
}

/// `pthread_atfork` prepare, in this order: close the entry gate and wait until no call is
/// in flight (`entry::before_fork`), then take every lock of the selected heap
/// (`Heap::fork_prepare`, in the strategy's documented order). The locks cover what the
/// gate does not: a strategy's work outside a malloc-family call (a thread cache flushed
/// by an exiting thread's destructor).
extern "C" fn before_fork() {
    entry::before_fork();
    heaps::visit(heaps::selected(), ForkStep::Prepare);
}

/// `pthread_atfork` parent: the heap's locks, then the gate (the reverse of `before_fork`).
extern "C" fn after_fork_parent() {
    heaps::visit(heaps::selected(), ForkStep::Parent);
    entry::after_fork_parent();
}

/// `pthread_atfork` child: as in the parent (the strategy may also reset state of the
/// threads that the child lacks).
extern "C" fn after_fork_child() {
    heaps::visit(heaps::selected(), ForkStep::Child);
    entry::after_fork_child();
}

/// Runs at exit (after the program's atexit handlers): prints the statistics if asked.
extern "C" fn on_unload() {
    if heaps::STATS_AT_EXIT.load(Ordering::Relaxed) {
        heaps::visit(heaps::selected(), PrintStats);
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static ON_UNLOAD: extern "C" fn() = on_unload;
