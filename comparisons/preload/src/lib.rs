//! # stratalloc-preload: any stratalloc strategy as the `malloc` of an unmodified program
//!
//! ```text
//! LD_PRELOAD=target/release/libstratalloc_preload.so STRATALLOC_STRATEGY=best-fit python3 ...
//! ```
//!
//! The library exports the C allocation API (malloc, free, calloc, realloc, reallocarray,
//! posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, malloc_trim,
//! cfree and glibc's `__libc_*` aliases) and serves it from one `static`
//! [`Heap`](stratalloc::Heap) per strategy, of which one is chosen at start-up.
//!
//! ## Glossary
//! - *C request*: what the program asked for: `n` bytes aligned to `align` (16 unless it
//!   called an aligned function with more).
//! - *Block*: what we ask a heap (or the fallback) for and hand out as is: a
//!   [`Layout`](core::alloc::Layout) `(max(n, 1), max(align, 16))`. No header: C `free` has
//!   no size, and the strategies find a block from its address alone
//!   ([`Heap::block_of`](stratalloc::Heap::block_of), [`Heap::free`](stratalloc::Heap::free)).
//! - *Owner*: who holds a block: the selected heap, the re-entry pool or a direct mapping
//!   (the last two form the *fallback*, see [`fallback`]). Told apart by address only.
//! - *Bad call*: a `free`/`realloc` of a pointer that is not the start of a live block of
//!   any owner (double free, interior, stack, foreign); see [`bad`].
//! - *Entry*: one call of an exported function on one thread; [`entry`] marks it so that a
//!   re-entered call (malloc called from inside our malloc) is recognised, and so that `fork`
//!   waits until no entry is in flight.
//!
//! ## Allocation path (malloc, calloc, the aligned family)
//! 1. Validate the C arguments (overflow, alignment rules); failures return NULL with errno
//!    (`ENOMEM`, or `EINVAL` for a bad alignment), never a panic.
//! 2. Compute the block layout; impossible sizes fail as ENOMEM.
//! 3. Enter ([`entry::Entry::enter`]). If this thread is already inside the allocator (a
//!    strategy registering a thread-local destructor makes glibc call `calloc`, a signal
//!    handler interrupted a `malloc`), serve the block from the fallback, which takes no lock
//!    the interrupted call could hold.
//! 4. On the first call only: read the `STRATALLOC_*` settings without allocating ([`env`])
//!    and select the heap ([`heaps`]).
//! 5. Return the selected heap's block for the layout.
//!
//! ## Fast paths (malloc, free)
//! Before the paths below, `malloc` and `free` try the selected strategy's cached path
//! ([`Strategy::alloc_cached`](stratalloc::Strategy::alloc_cached),
//! [`Strategy::free_cached`](stratalloc::Strategy::free_cached): the calling thread's cache
//! alone, no lock, no call, no OS call; `free` first by
//! [`Strategy::free_cached_fast`](stratalloc::Strategy::free_cached_fast), whose `Missed`
//! sends it to `free_cached`) through the gate's own-flag entry alone
//! ([`entry::FastEntry`]), when the default strategy is selected and calls are not traced
//! (one byte, the entry's gate, tested once the thread's flag is set). Anything else (a
//! re-entered call, a fork being prepared, a refill due, a pointer the strategy does not
//! take back there, a bad one included) goes to the paths below with nothing changed. A free taken there makes no system call, so
//! errno needs no saving.
//!
//! ## Free path (free, realloc, malloc_usable_size): the pointer classified by address
//! 1. NULL: nothing (free), malloc (realloc), 0 (malloc_usable_size).
//! 2. In the re-entry pool's range (a static array): the pool's (slot start and bit).
//! 3. Otherwise, on a call that is not re-entered: outside the span the heap ever reserved,
//!    not the heap's; inside it, the strategy frees the block by address or refuses the
//!    pointer with a reason, changing nothing (`Heap::free`; `Heap::block_of` for realloc
//!    and malloc_usable_size). A re-entered call does not touch the heap (the interrupted
//!    call may hold its locks): a pointer it frees that is no fallback block is leaked
//!    (counted), a realloc of one fails with ENOMEM.
//! 4. Otherwise a direct fallback block, found in the fallback's table.
//! 5. Otherwise a bad call: counted, then reported, aborted or ignored as
//!    `STRATALLOC_BAD_FREE` says ([`bad`]).
//!
//! ## C semantics chosen (glibc's, as documented in its manual and man pages)
//! - `malloc(0)`, `calloc(0, n)`, `memalign(a, 0)`: a unique pointer (a one-byte request: the
//!   strategy's smallest block).
//! - `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` with `p != NULL` frees `p` and
//!   returns NULL without touching errno, as glibc does (C23 leaves it undefined).
//! - `calloc` and `reallocarray` overflow: NULL and `ENOMEM`.
//! - `posix_memalign`: alignment not a power-of-two multiple of `sizeof(void *)`: `EINVAL`;
//!   out of memory: `ENOMEM`; `*memptr` and errno are left unchanged on failure.
//! - `aligned_alloc`: alignment must be a power of two (NULL + `EINVAL` otherwise, as glibc
//!   2.38 and C17 DR 460); the size need not be a multiple of it.
//! - `memalign`: an alignment that is not a power of two is rounded up to one; above
//!   `SIZE_MAX / 2 + 1`: NULL + `EINVAL`. `valloc(n)` is `memalign(page, n)`; `pvalloc(n)`
//!   rounds `n` up to a page (overflow: `ENOMEM`).
//! - Every pointer is 16-byte aligned at least; `malloc_usable_size` and `free` work on
//!   blocks from every function. `malloc_usable_size` is exact: what the block holds
//!   (`BlockInfo::usable`), all of which the program may use and `realloc` keeps. `realloc`
//!   to a size from half the usable size up to it returns the same pointer; a moved block
//!   has malloc's alignment (16), as in glibc.
//! - Every failure sets `ENOMEM` (except posix_memalign, which returns it).
//!
//! ## Process events
//! - Threads (C or Rust): nothing to set up; our thread-local state is a few `Cell`s without
//!   destructors in a C `__thread` block of the initial-exec model (zero at thread start,
//!   reached from the thread pointer: no `__tls_get_addr`; Tiered's thread slots likewise,
//!   through stratalloc's `initial-exec-tls` feature), so reading it never registers anything
//!   nor allocates. The initial-exec model is why the library must be loaded at start-up
//!   (`LD_PRELOAD`, its use): a `dlopen` of it may fail for want of static TLS room. A
//!   thread's first call claims a gate flag and sets a `pthread_key` (no allocation for
//!   glibc's first keys) whose destructor gives the flag back at thread exit (see [`entry`]).
//!   The rest of thread exit is the strategy's business (e.g. Tiered flushing its thread
//!   cache).
//! - `fork`: `pthread_atfork` handlers registered by our constructor. Prepare closes the
//!   entry gate and waits until no entry is in flight on any thread (an asymmetric Dekker
//!   handshake: plain stores on the entry path, `membarrier` in the forker), then takes every lock
//!   of the selected heap (`Heap::fork_prepare`, in the strategy's documented order); parent
//!   and child release the heap's locks, then open the gate. So the child never inherits a
//!   heap lock held mid-operation by a thread that does not exist in it, whether that thread
//!   was in a call (the gate) or doing the strategy's own work outside one, such as a thread
//!   cache flushed by a thread-exit destructor (the locks).
//! - Exit: with `STRATALLOC_STATS=1` a `.fini_array` destructor prints the heap's statistics
//!   to stderr, formatted in a stack buffer and written with `write(2)`.
//! - Pointers from before we initialised: there are none of ours (we initialise on the first
//!   call, whenever it comes); blocks the dynamic loader allocated with its own minimal
//!   malloc before switching to ours are never passed to `free` by glibc, and would be
//!   classified as foreign (by address: no memory of theirs is read) if they were.
//! - Thread cancellation: our own `write`/`open`/`read` calls (messages, reading
//!   /proc/self/environ) run with cancellation disabled, so a cancelled thread never unwinds
//!   through our frames.

#![deny(unsafe_op_in_unsafe_fn)]

mod bad;
mod entry;
mod env;
mod exports;
mod fallback;
mod heaps;
mod report;
mod trace;
