//! Layers: strategies generic over an inner strategy, so that allocators are composed as
//! types, as in Heap Layers (Berger, Zorn and McKinley, PLDI 2001):
//! `Heap<ThreadCache<Arenas<BestFit>>>` is glibc's shape (a tcache in front of per-thread
//! arenas of a binned best fit), `Segregate<1024, SegregatedFit, BestFit>` is Heap Layers'
//! segregated heap.
//!
//! # Design
//!
//! ## Glossary
//! - *inner*: the strategy a layer wraps; to it the layer is a user like any other (it calls
//!   `alloc`, `dealloc`, `free`, `block_of` under their contracts).
//! - *side* ([`Routed`] / [`Segregate`]): the small or the large strategy; a block's side is
//!   the one whose `block_of` knows it.
//! - *arena* ([`Arenas`]): one of `N` instances of the inner strategy with its own lock
//!   (`busy`); a thread's *home* arena is the one it tries first.
//! - *owner map* (`owners.rs`): granule (4 KiB of address space) -> the arena that made it
//!   Ready, a three-level radix tree in page-source memory, read without locks.
//! - *bin*, *record*, *root* ([`ThreadCache`]): a bin is a stack of at most [`BIN_CAP`] free
//!   blocks of one 16-byte size step (64 bins: requests up to [`MAX_CACHED_BYTES`]); a
//!   record is one thread's bins for one heap; the root is the heap's list of records, its
//!   generation and its mark key. Roots and records live in page-source memory.
//! - *generation*: a process-wide unique number a `ThreadCache` takes when it makes its root;
//!   a thread's slot serves a heap only while the generations agree.
//! - *mark*: the second word of a cached block, `key ^ usable`: the block is in a cache.
//!
//! ## Paths
//! **Segregate.** alloc: `size <= LIMIT` to Small, else Large. dealloc / realloc /
//! usable_size: a layout of `size <= LIMIT` is Small's without a lookup (a block is freed
//! with at least its requested size); a larger one may still be a Small block whose usable
//! size passes the limit, so `Small::block_of` decides (the cold path). realloc across the
//! limit moves the block (allocate on the other side, copy, free). free by address and
//! block_of: Small, then Large (Small refuses a pointer outside its memory as `Foreign`
//! without changing anything).
//!
//! **Arenas.** alloc: 1. the home arena (thread-local index with `std`: at its first
//! allocation a thread claims the lowest home index no live thread holds, process-wide, and
//! gives it back at exit, so a new thread takes over the arena of an exited one, as glibc's
//! `free_list`; without `std` a hash of the stack address); `try_lock`. 2. Busy: the first free arena after it becomes home
//! (glibc's `arena_get2` / `reused_arena`); all busy: wait for home. 3. The arena's source
//! refused: every other arena in turn (`arena_get_retry`). free / dealloc / realloc from any
//! thread: the owner map names the arena in O(1) (each arena's strategy sees an
//! `ArenaSource` that records every range it makes Ready), then that arena's lock; except a
//! `dealloc` (with a layout) of a block of 16 B..`REMOTE_MAX_BYTES` from a thread whose
//! home is another arena: see "Remote frees".
//! block_of: the named arena's lookup; a pointer in no arena's memory is `None` at once.
//!
//! **ThreadCache** (`std`). alloc of `size <= 1024`, `align <= 16`: pop the calling thread's
//! bin `size / 16` if its head's usable size (kept in the mark) suffices, else bin
//! `ceil(size / 16)`, else the bin the record learnt that the inner strategy's blocks for
//! this size land in (`fits`: a free list rounds small requests up to its smallest block)
//! (no lock, no atomic read-modify-write), clear the mark; empty: a refill from the inner
//! strategy (`alloc_batch` of `REFILL_BLOCKS`, or of `REFILL_BATCH` once the thread has
//! refilled `STREAK_FOR_BATCH` times in a row without caching a block it freed: a producer;
//! learning `fits` the first time). alloc of
//! `size <= 1024` over-aligned: the first block of those three bins whose start is aligned
//! and for which `inner.block_of` names at least the alignment and size (glibc's tcache does
//! the same for `memalign`); none: the inner strategy (no refill). free by address: `inner.block_of` validates it (a pointer the inner
//! strategy does not know goes to its `free`, which refuses it unchanged); a cacheable block
//! (16-aligned, usable size in a bin) that carries the mark is already cached: refused as a
//! double free, never cached twice; else pushed if its bin has room, else the inner `free`.
//! dealloc with a layout: the same with `inner.usable_size` for the size. A request the
//! inner strategy refuses, or a failed realloc, flushes the caches and tries once more.
//!
//! ## Remote frees (Arenas)
//! Each arena has a lock-free stack (`remote.rs`) of blocks that threads whose home is
//! another arena freed with `dealloc`: a push is one compare-and-swap on the stack's head
//! (no arena lock, no write to the arena's strategy), linking the block through its first
//! word and writing the *pending mark* (a keyed hash of the address and usable size) into its
//! second. The stack is taken whole, with one swap, by whoever holds the arena's lock next:
//! every allocation from the arena (a relaxed load when it is empty), a `dealloc` by a
//! home thread, a free by address, `realloc`, `free_batch`, `trim`; and the pusher whose
//! push makes the count a multiple of `DRAIN_EVERY` drains it itself if the lock is free,
//! so an arena whose threads have exited holds back fewer than `DRAIN_EVERY` blocks of at
//! most `REMOTE_MAX_BYTES` until `trim`. A drain *parks* the blocks of up to 1 KiB usable
//! (16-aligned) while the arena holds fewer than `PARK_MAX_BYTES` (64 KiB) parked: LIFO
//! stacks by usable size (16-byte classes) under the arena's lock, the pending mark kept, from
//! which the arena's next allocations of alignment at most 16 take a block whole (a class
//! that fits, at most 3 classes above the request's), before asking the strategy (glibc's
//! fastbins: small frees are not coalesced; without parking a drained block coalesced in best
//! fit and the next allocation split it off again). The other blocks go to the strategy
//! with `free_batch` (one inner lock per 32). `trim`, and an allocation the strategy
//! cannot serve, hand the parked blocks to the strategy. Pending and parked blocks are live
//! to the strategy and free to the user: `stats` subtracts them, `block_of` refuses a block
//! with the pending mark, a free by address refuses a parked block (`NotLive`), a `dealloc`
//! by the home thread of a parked block is refused as a double free (a debug assertion),
//! `check` walks every stack (count, bytes, each a live block of its arena with the mark's
//! size, parked ones in their class).
//!
//! Double frees: a second `dealloc` while the block is pending finds the mark and is
//! refused (a debug assertion; ignored in release builds), before anything is written. A
//! free by address drains the stack first, so the strategy's own check refuses a pending
//! block (`NotLive`). A second `dealloc` *after* the drain is not caught before the push
//! writes the link and the mark into the (now free) block: it is undefined behaviour by
//! `dealloc`'s contract, as it is through the thread cache; the drain's `free_batch` then
//! refuses it where the strategy checks (the free lists' live bit), which a debug build
//! reports.
//!
//! ## Threads and lifetimes (ThreadCache)
//! A thread's slots (a const-initialised `thread_local!` without destructor; an exit guard
//! registered separately, as in `strategies/tiered/tls.rs`) hold `(generation, root,
//! record)` for up to 4 heaps. A slot is used only if its generation is the heap's, which
//! `release_all` sets to 0, so a dropped heap is never served and its records never
//! touched. At thread exit (or eviction) a record goes back to its root only through the
//! process-wide registry of live roots, under the registry lock that `release_all` takes to
//! unregister the root before releasing it; a record of a released root is forgotten. A
//! returned record becomes *idle* with its blocks, and the next thread to need a record
//! adopts it (blocks and all); `trim`, and any request the inner strategy refuses, flush
//! the idle records and the calling thread's own into the inner strategy. Roots and
//! records never move, so a heap value moved after use (as Rust allows) still works.
//! Without `std` there is no thread cache: every call passes through.
//!
//! ## Invariants
//! Written next to the data, checked by each layer's `check`:
//! - Segregate: every live block belongs to exactly one side.
//! - Arenas: every inner call that may change an arena runs under its `busy` lock; the owner
//!   map's nodes add up to its `node_bytes` and name only existing arenas; a live block's
//!   granule names its arena.
//! - ThreadCache: per record, `cached_objects == Σ bin counts`, `cached_bytes == Σ usable
//!   sizes`, every cached block a live inner block in the bin of its usable size, carrying
//!   the mark; `meta_bytes == root + chunks`; the stats report `inner live - cached`.
//!
//! ## Limits
//! - The owner map keeps its root and interior nodes until `release_all`; a leaf (4 KiB, 16
//!   MiB of address space) emptied by the source's `free` goes to a spare list, reused for
//!   another part of the address space, and goes back to the source at `trim` only when no
//!   lookup of an arbitrary pointer (`block_of`, a free by address) is in flight: those
//!   lookups count themselves in a striped reader count (two atomic operations each);
//!   lookups of live blocks (`dealloc`, `realloc`) do not.
//! - `arenas(...)` needs a source whose pages are multiples of 4 KiB (checked at compile
//!   time) and addresses below 2^48 (a higher range is refused as the source refusing).
//! - A thread's cache is handed back at thread exit as an idle record with its blocks; the
//!   blocks reach the inner strategy at the next `trim`, at the next request the inner
//!   strategy refuses, or when a new thread adopts the record. `trim` cannot reach the
//!   caches of threads that are still running.
//! - Each arena keeps up to `PARK_MAX_BYTES` (64 KiB) of drained remote frees parked, not
//!   coalesced, until its next allocations take them or `trim`; with `N` arenas that is at
//!   most `N * 64 KiB` held back, besides the pending stacks.
//! - Home indexes are process-wide (256; a thread's index modulo each heap's arena count):
//!   with several `Arenas` heaps in one process, live threads hold distinct indexes but may
//!   share an arena of a heap with fewer arenas than live threads.
//! - The pending mark of a remote free uses a constant key (it must survive the heap value
//!   moving): a block whose owner wrote exactly that word into its second word before a
//!   cross-thread `dealloc` is refused as a double free (and leaks).
//! - The mark of a cached block is a keyed word, not a proof: a live block whose owner
//!   wrote exactly `key ^ usable` into its second word is refused as a double free (and
//!   leaks); the key is a per-heap hash, so only a program that reads the heap's metadata
//!   can do it.
//!
//! ## Statistics
//! Layers report their inner strategies' statistics: sums over sides and arenas (the peak
//! is the sum of the peaks, an upper bound, since they fall at different moments), cached
//! blocks subtracted from the live counts, and the layers' own page-source memory (owner
//! map, roots and records) added to the committed and reserved bytes.

mod arenas;
mod by_ref;
mod identity;
mod owners;
mod remote;
mod segregate;
mod thread_cache;

pub use arenas::{ArenaSource, Arenas, DEFAULT_ARENAS, DRAIN_EVERY, REMOTE_MAX_BYTES};
pub use identity::Identity;
pub use segregate::{ConstLimit, Limit, Routed, Segregate};
pub use thread_cache::{
    BIN_BYTES, BIN_CAP, BIN_COUNT, FLUSH_AFTER_OVERFLOWS, MAX_CACHED_BYTES, REFILL_BATCH, REFILL_BLOCKS,
    STREAK_FOR_BATCH, ThreadCache,
};
