//! The exported C allocation API, its glibc aliases, and the constructor and destructor
//! (see lib.rs for the semantics chosen).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void};
use core::fmt::Write;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use stratalloc::{Heap, Op, Strategy};

use crate::block::{self, Found, MIN_ALIGN_BYTES, Origin};
use crate::entry::{self, Entry};
use crate::fallback;
use crate::heaps::{self, Src, Visit};
use crate::report::{Line, errno, set_errno};

/// Frees of pointers that are not ours (ignored).
static FOREIGN_FREES: AtomicUsize = AtomicUsize::new(0);
/// Heap blocks freed by a re-entered call, which cannot touch the heap (leaked).
static REENTRANT_LEAKS: AtomicUsize = AtomicUsize::new(0);

/// OS page for valloc / pvalloc.
const PAGE_BYTES: usize = 4096;

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
        // SAFETY: `layout` has a non-zero size (it includes the header).
        let base =
            unsafe { if self.zeroed { heap.alloc_zeroed(self.layout) } else { heap.alloc(self.layout) } };
        match NonNull::new(base) {
            // SAFETY: a fresh block of `layout`, aligned as it asks.
            Some(base) => unsafe { block::finish(base, self.layout, Origin::Heap) },
            None => ptr::null_mut(),
        }
    }
}

struct Dealloc(Found);

impl Visit for Dealloc {
    type Out = ();
    #[inline]
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) {
        // SAFETY: `owner` found a live heap block of this layout (the heap in use is the
        // selected one, which allocated it).
        unsafe { heap.dealloc(self.0.base.as_ptr(), self.0.layout) }
    }
}

struct Realloc {
    found: Found,
    new_layout: Layout,
}

impl Visit for Realloc {
    type Out = *mut u8;
    fn visit<S: Strategy>(self, heap: &'static Heap<S, Src>) -> *mut u8 {
        let Realloc { found, new_layout } = self;
        // SAFETY: a live heap block with its layout; `new_layout` has the same alignment and
        // is a valid layout (so its size rounded up to the alignment fits in isize).
        let base = unsafe { heap.realloc(found.base.as_ptr(), found.layout, new_layout.size()) };
        match NonNull::new(base) {
            // SAFETY: the resized block of `new_layout`; the header moved with the contents
            // and is rewritten with the new size.
            Some(base) => unsafe { block::finish(base, new_layout, Origin::Heap) },
            None => ptr::null_mut(),
        }
    }
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
        let mut line = Line::<512>::new();
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        let _ = write!(
            line,
            "stratalloc[{pid}]: strategy={} live_bytes={} live_objects={} peak_live_bytes={} \
             committed_bytes={} reserved_bytes={} source_calls: reserve={} map={} used={} \
             unused={} fault={} free={} failed={} fallback_blocks={} foreign_frees={} \
             reentrant_leaks={}",
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
            FOREIGN_FREES.load(Ordering::Relaxed),
            REENTRANT_LEAKS.load(Ordering::Relaxed),
        );
        line.emit();
    }
}

// ---------------------------------------------------------------------------------------
// The paths shared by the exported functions.

/// Allocates for a C request; NULL with ENOMEM on failure.
#[inline]
fn alloc_request(n: usize, align: usize, zeroed: bool) -> *mut u8 {
    let p = match block::layout_for(n, align) {
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

/// The block below `user` if it is ours.
///
/// # Safety
/// `user` came from a malloc-family function (see [`block::read`]).
#[inline]
unsafe fn owner(user: NonNull<u8>) -> Option<Found> {
    // SAFETY: forwarded with the caller's guarantee.
    let found = unsafe { block::read(user) }?;
    let ours = match found.origin {
        Origin::Heap => heaps::contains(found.base, found.layout.size()),
        Origin::Pool | Origin::Direct => fallback::owns(&found),
    };
    ours.then_some(found)
}

/// Gives a block back to its owner.
///
/// # Safety
/// `found` describes a live block of ours, released once.
unsafe fn release(found: Found) {
    match found.origin {
        Origin::Heap => match Entry::enter() {
            Some(_entry) => heaps::visit(heaps::selected(), Dealloc(found)),
            None => {
                REENTRANT_LEAKS.fetch_add(1, Ordering::Relaxed);
            }
        },
        // SAFETY: a live fallback block (the caller's guarantee).
        Origin::Pool | Origin::Direct => unsafe { fallback::free(&found) },
    }
}

/// Reports a pointer that is not ours, once per process, and counts it.
#[cold]
fn foreign(p: *mut u8, what: &str) {
    if FOREIGN_FREES.fetch_add(1, Ordering::Relaxed) == 0 {
        let mut line = Line::<160>::new();
        let _ = write!(line, "stratalloc: {what}({p:p}): not a block of this allocator; ignored");
        line.emit();
    }
}

/// `free`.
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function.
#[inline]
unsafe fn free_ptr(p: *mut u8) {
    let Some(user) = NonNull::new(p) else { return };
    // SAFETY: the caller's guarantee.
    match unsafe { owner(user) } {
        // SAFETY: a live block of ours, freed once (the caller's guarantee).
        Some(found) => unsafe { release(found) },
        None => foreign(p, "free"),
    }
}

/// `realloc`.
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function.
unsafe fn realloc_ptr(p: *mut u8, n: usize) -> *mut u8 {
    let Some(user) = NonNull::new(p) else { return alloc_request(n, MIN_ALIGN_BYTES, false) };
    if n == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL (errno untouched).
        // SAFETY: the caller's guarantee.
        unsafe { free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: the caller's guarantee.
    let Some(found) = (unsafe { owner(user) }) else {
        foreign(p, "realloc");
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let Some(new_layout) = block::layout_for(n, found.layout.align()) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    if new_layout.size() == found.layout.size() {
        return p;
    }
    let moved = match (found.origin, Entry::enter()) {
        (Origin::Heap, Some(_entry)) => heaps::visit(heaps::selected(), Realloc { found, new_layout }),
        // SAFETY: `found` is the live block below `user`.
        _ => unsafe { move_block(found, user, new_layout) },
    };
    if moved.is_null() {
        set_errno(libc::ENOMEM);
    }
    moved
}

/// Realloc by allocate, copy and release (fallback blocks; heap blocks on a re-entered call).
///
/// # Safety
/// `found` is the live block below `user`; it is released on success.
unsafe fn move_block(found: Found, user: NonNull<u8>, new_layout: Layout) -> *mut u8 {
    let new = alloc_block(new_layout, false);
    if !new.is_null() {
        let keep = found.user_bytes().min(new_layout.size() - block::offset_for(new_layout.align()));
        // SAFETY: both blocks are live and disjoint and hold at least `keep` user bytes.
        unsafe {
            ptr::copy_nonoverlapping(user.as_ptr(), new, keep);
            release(found);
        }
    }
    new
}

/// The memalign family, after its own argument rules: `align` is a power of two.
#[inline]
fn aligned(align: usize, n: usize) -> *mut u8 {
    alloc_request(n, align, false)
}

// ---------------------------------------------------------------------------------------
// The C API.

/// C `malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc_request(size, MIN_ALIGN_BYTES, false).cast()
}

/// C `free`; leaves errno as it was (POSIX.1-2024), whatever the strategy's OS calls do.
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    let saved = errno();
    // SAFETY: the caller's guarantee.
    unsafe { free_ptr(p.cast()) }
    set_errno(saved);
}

/// C `calloc`: zeroed; NULL + ENOMEM when `count * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(bytes) => alloc_request(bytes, MIN_ALIGN_BYTES, true).cast(),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// C `realloc` (glibc's rules for NULL and 0).
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's guarantee.
    unsafe { realloc_ptr(p.cast(), size) }.cast()
}

/// `reallocarray`: `realloc(p, count * size)`, NULL + ENOMEM on overflow (`p` untouched).
///
/// # Safety
/// As for [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: the caller's guarantee.
        Some(bytes) => unsafe { realloc_ptr(p.cast(), bytes) }.cast(),
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

/// glibc `malloc_usable_size`: bytes the program may use in the block (0 for NULL or a
/// pointer that is not ours).
///
/// # Safety
/// `p` is NULL or a live block from a malloc-family function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    let Some(user) = NonNull::new(p.cast::<u8>()) else { return 0 };
    // SAFETY: the caller's guarantee.
    unsafe { owner(user) }.map_or(0, |found| found.user_bytes())
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
            // SAFETY: as for `Parent`; this is the child's only thread.
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
    entry::after_fork();
}

/// `pthread_atfork` child: as in the parent (the strategy may also reset state of the
/// threads that the child lacks).
extern "C" fn after_fork_child() {
    heaps::visit(heaps::selected(), ForkStep::Child);
    entry::after_fork();
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
