//! Binding of caches to threads: one slot per thread and heap, and an exit guard (`std`);
//! without `std`, none (every thread uses the shared cache). Go binds an `mcache` to each
//! `P` instead (`p.mcache`, `getMCache` in `runtime/mcache.go`).
//!
//! # Threads
//! The `std` feature binds a cache to each thread and heap with a destructor-free,
//! const-initialised `thread_local!` (no allocation, no registration); with the
//! `initial-exec-tls` feature (the preload library) the same slots live in a zero-initialised
//! C `__thread` block of the initial-exec model (src/tls_blocks.c, `ie_tls_slots!`: reached from
//! the thread pointer by its link-time offset on x86_64, and by `StaticTls` elsewhere:
//! a shared library's `thread_local!` costs a `__tls_get_addr` call per access). It registers a separate exit guard (a `thread_local!` in both builds) once per
//! thread; while that registration runs (glibc's
//! `__cxa_thread_atexit_impl` may call `calloc`, i.e. us) and after the guard has run, the
//! thread uses the root's *shared cache* under its lock. The guard gives every cache of the
//! thread back (`release_all`: uncacheSpan for each class, flush statistics) and the record
//! goes on the heap's free-cache list for the next thread. Frees never need a cache:
//! without one they take the non-owner path. Threads created by C code are handled the
//! same way, since the guard is std's TLS destructor.
//!
//! # Heap keys (a released heap is never reached through a slot)
//! A heap may give everything back (`Strategy::release_all`, a dropped `Heap`) while
//! threads that used it live on, with slots naming its root and cache, memory that is gone
//! (or, over `Fixed`, a region its owner has freed). So a slot names its heap by a *key*,
//! never compared with a pointer: each root registers in [`REGISTRY`] when it is made and
//! gets `key = serial << INDEX_BITS | entry` (serials are never reused, so neither are
//! keys); `release_all` clears its entry. A slot is used only when its key equals the key
//! of the root the caller holds (the lookups below), so a stale slot never matches a live
//! heap, even one whose root was made at the same address. The exit guard and an eviction
//! reach a heap through a slot without the caller holding it: they *pin* the entry first
//! (a CAS from `key` to `key | PINNED`), which fails once the heap is released, and
//! `release_all` waits for a pin to end before it clears the entry. A heap made while every
//! entry is taken gets key 0: it binds no cache to any thread (the shared cache serves it).

use core::sync::atomic::{AtomicU64, Ordering};

/// Bits of a key that name its registry entry.
const INDEX_BITS: u32 = 10;
/// Registry entries: heaps that can bind thread caches at once.
const ENTRIES: usize = 1 << INDEX_BITS;
/// Set in an entry while a thread releases its cache of that heap through a slot.
const PINNED: u64 = 1 << 63;

/// A value no slot ever holds (keys are below [`PINNED`], an empty slot holds 0): what
/// `Tiered::key` holds while the heap has no registered root, so that [`peek_key`] matches
/// only a slot that holds a cache.
pub const NO_KEY: u64 = u64::MAX;

/// The keys of live heaps (0: a free entry). See "Heap keys".
static REGISTRY: [AtomicU64; ENTRIES] = [const { AtomicU64::new(0) }; ENTRIES];
/// The next serial number of a key.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A key for a new heap, registered; 0 if every entry is taken.
pub fn register() -> u64 {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed) & (PINNED - 1) >> INDEX_BITS;
    for (i, e) in REGISTRY.iter().enumerate() {
        let key = serial << INDEX_BITS | i as u64;
        if e.load(Ordering::Relaxed) == 0
            && e.compare_exchange(0, key, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            return key;
        }
    }
    0
}

/// Takes `key` out of the registry (its heap is being released), after any pin of it ends.
pub fn unregister(key: u64) {
    if key == 0 {
        return;
    }
    let e = &REGISTRY[(key & (ENTRIES as u64 - 1)) as usize];
    while e.compare_exchange_weak(key, 0, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        if e.load(Ordering::Relaxed) & !PINNED != key {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Pins `key`'s heap so that it is not released until [`unpin`]; false if it is gone.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
fn pin(key: u64) -> bool {
    if key == 0 {
        return false;
    }
    let e = &REGISTRY[(key & (ENTRIES as u64 - 1)) as usize];
    loop {
        match e.compare_exchange_weak(key, key | PINNED, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) if now == key | PINNED || now == key => core::hint::spin_loop(),
            Err(_) => return false,
        }
    }
}

/// Ends a pin taken by [`pin`].
#[cfg_attr(not(feature = "std"), allow(dead_code))]
fn unpin(key: u64) {
    REGISTRY[(key & (ENTRIES as u64 - 1)) as usize].store(key, Ordering::Release);
}

/// Binding of caches to threads (`std`), see "Threads" above.
#[cfg(feature = "std")]
mod imp {
    use core::cell::Cell;
    use core::ptr;

    use super::{pin, unpin};
    use crate::source::PageSource;
    use crate::strategies::tiered::Root;
    use crate::strategies::tiered::mcache::MCache;

    /// Heaps one thread keeps a cache for at once; more evicts the least recently used.
    const SLOTS: usize = 4;
    const UNREGISTERED: u8 = 0;
    const REGISTERING: u8 = 1;
    const ACTIVE: u8 = 2;
    const DEAD: u8 = 3;

    struct ThreadCaches {
        state: Cell<u8>,
        /// The key of each slot's heap (0: empty); see "Heap keys".
        keys: [Cell<u64>; SLOTS],
        /// Dereferenced only while the key matches a root the caller holds, or is pinned.
        roots: [Cell<*const Root>; SLOTS],
        caches: [Cell<*mut MCache>; SLOTS],
    }

    #[cfg(not(all(feature = "initial-exec-tls", target_os = "linux")))]
    std::thread_local! {
        // Const-initialised and without a destructor: using it never allocates or registers.
        static TC: ThreadCaches = const {
            ThreadCaches {
                state: Cell::new(UNREGISTERED),
                keys: [const { Cell::new(0) }; SLOTS],
                roots: [const { Cell::new(ptr::null()) }; SLOTS],
                caches: [const { Cell::new(ptr::null_mut()) }; SLOTS],
            }
        };
    }
    std::thread_local! {
        static GUARD: ExitGuard = const { ExitGuard };
    }

    /// Runs `f` with the calling thread's slots (`thread_local!`).
    #[cfg(not(all(feature = "initial-exec-tls", target_os = "linux")))]
    #[inline(always)]
    fn with_tc<R>(f: impl FnOnce(&ThreadCaches) -> R) -> R {
        TC.with(f)
    }

    /// `with_tc` for the fast paths: never calls (`thread_local!` makes no call for a
    /// const-initialised variable without destructor).
    #[cfg(not(all(feature = "initial-exec-tls", target_os = "linux")))]
    #[inline(always)]
    fn with_tc_measured<R>(f: impl FnOnce(&ThreadCaches) -> R) -> Option<R> {
        Some(TC.with(f))
    }

    // The slots' initial-exec block: `tc_block`, `tc_block_measured` (src/static_tls.rs).
    #[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
    crate::ie_tls_slots!(
        ThreadCaches,
        "stratalloc_tiered_slots",
        stratalloc_tiered_tls_block,
        fn tc_block,
        fn tc_block_measured
    );

    /// Runs `f` with the calling thread's slots (the initial-exec block).
    #[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
    #[inline(always)]
    fn with_tc<R>(f: impl FnOnce(&ThreadCaches) -> R) -> R {
        // SAFETY: (1) the block is this thread's own (`tc_block`), 16-aligned and large
        // enough for a `ThreadCaches` (asserted by `ie_tls_slots!`), and lives until the
        // thread's descriptor is freed, after its exit destructors (the exit guard included)
        // ran;
        // (2) the C runtime zeroes it at thread start, and all-zero bytes are the slots'
        // initial value (`UNREGISTERED`, keys 0, null roots and caches), every field being a
        // `Cell` of an integer or a raw pointer; (3) only this thread touches it (its
        // address is never given to another thread), and `f` gets a borrow no longer than
        // the call, so no reference outlives the thread.
        f(unsafe { &*tc_block().cast::<ThreadCaches>() })
    }

    /// `with_tc` for the fast paths, which never call: on x86_64 always `Some` (the block's
    /// offset is known at link time, `tc_block`); elsewhere `None` until some thread measured
    /// the block's offset (`StaticTls::get_measured`), so that no value of theirs lives across
    /// a call.
    #[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
    #[inline(always)]
    fn with_tc_measured<R>(f: impl FnOnce(&ThreadCaches) -> R) -> Option<R> {
        let block = tc_block_measured()?;
        // SAFETY: as in `with_tc`: the same block, which `tc_block_measured` gives as
        // `tc_block` does.
        Some(f(unsafe { &*block.cast::<ThreadCaches>() }))
    }

    struct ExitGuard;

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            with_tc(|t| {
                t.state.set(DEAD);
                for i in 0..SLOTS {
                    release_slot(t, i);
                }
            });
        }
    }

    /// Empties slot `i`, giving its cache back if its heap is still registered (pinned
    /// meanwhile, so that it is not released under the call).
    fn release_slot(t: &ThreadCaches, i: usize) {
        let key = t.keys[i].replace(0);
        let r = t.roots[i].replace(ptr::null());
        let c = t.caches[i].replace(ptr::null_mut());
        if !r.is_null() && !c.is_null() && pin(key) {
            // SAFETY: the key is registered and pinned, so its heap, root and caches are
            // live until `unpin`; the cache is this thread's, and no slot names it now.
            unsafe { (*r).release_cache(c) };
            unpin(key);
        }
    }

    /// Empties the calling thread's slot of the heap with `key`, if any, without touching
    /// the heap (which is being released).
    pub fn drop_slot(key: u64) {
        with_tc(|t| {
            for i in 0..SLOTS {
                if key != 0 && t.keys[i].get() == key {
                    t.keys[i].set(0);
                    t.roots[i].set(ptr::null());
                    t.caches[i].set(ptr::null_mut());
                }
            }
        });
    }

    /// Gives back the calling thread's cache for `root`, if any.
    pub fn forget(root: &Root) {
        let key = root.key;
        let c = with_tc(|t| {
            for i in 0..SLOTS {
                if key != 0 && t.keys[i].get() == key {
                    t.keys[i].set(0);
                    t.roots[i].set(ptr::null());
                    return t.caches[i].replace(ptr::null_mut());
                }
            }
            ptr::null_mut()
        });
        if !c.is_null() {
            // SAFETY: the cache was this thread's, and the slot no longer names it.
            unsafe { root.release_cache(c) };
        }
    }

    /// The calling thread's cache for the heap with `key` if it is the heap it used last
    /// (the fast paths; never creates, never calls). Key 0 (a heap without a registry
    /// entry) finds only empty slots, whose cache is null. Null too before the slots' block
    /// is first reached (`with_tc_measured`): the fast paths then take their slow way, which
    /// reaches it.
    #[inline(always)]
    pub fn peek(key: u64) -> *mut MCache {
        with_tc_measured(|t| if t.keys[0].get() == key { t.caches[0].get() } else { ptr::null_mut() })
            .unwrap_or(ptr::null_mut())
    }

    /// [`peek`] for a key that is a registered heap's or [`NO_KEY`](super::NO_KEY), never 0:
    /// a slot holding such a key holds a cache (slots are written key and cache together,
    /// the cache non-null, and emptied together), so a match needs no null test. `None`
    /// where `peek` answers null.
    #[inline(always)]
    pub fn peek_key(key: u64) -> Option<core::ptr::NonNull<MCache>> {
        debug_assert!(key != 0, "peek_key of key 0");
        with_tc_measured(|t| {
            if t.keys[0].get() == key {
                let c = t.caches[0].get();
                debug_assert!(!c.is_null(), "a slot with a key and no cache");
                // SAFETY: slot 0 holds `key`, which is not 0, so it is not empty and holds
                // the non-null cache `get_slow` stored with it (see above).
                Some(unsafe { core::ptr::NonNull::new_unchecked(c) })
            } else {
                None
            }
        })
        .flatten()
    }

    /// The calling thread's cache for the heap with `key`, if it has one (the free path;
    /// never creates).
    #[cfg(test)]
    #[inline]
    pub fn lookup(key: u64) -> *mut MCache {
        with_tc(|t| {
            for i in 0..SLOTS {
                if t.keys[i].get() == key {
                    return t.caches[i].get();
                }
            }
            ptr::null_mut()
        })
    }

    /// The calling thread's cache for `root`, made if needed; null when the thread must use
    /// the shared path (registration in progress, thread exiting, no memory).
    #[inline]
    pub fn get<P: PageSource>(root: &Root, src: &P) -> *mut MCache {
        with_tc(|t| {
            if t.keys[0].get() == root.key {
                return t.caches[0].get();
            }
            get_slow(t, root, src)
        })
    }

    #[cold]
    fn get_slow<P: PageSource>(t: &ThreadCaches, root: &Root, src: &P) -> *mut MCache {
        if root.key == 0 {
            // No registry entry: no thread cache (see "Heap keys").
            return ptr::null_mut();
        }
        for i in 1..SLOTS {
            if t.keys[i].get() == root.key {
                // Move the hit to slot 0 (most recently used).
                let c = t.caches[i].get();
                t.keys[i].set(t.keys[0].get());
                t.roots[i].set(t.roots[0].get());
                t.caches[i].set(t.caches[0].get());
                t.keys[0].set(root.key);
                t.roots[0].set(root);
                t.caches[0].set(c);
                return c;
            }
        }
        match t.state.get() {
            UNREGISTERED => {
                t.state.set(REGISTERING);
                // Registers the exit guard's destructor; may allocate (re-entering us, which
                // then sees REGISTERING and takes the shared path).
                GUARD.with(|_| {});
                t.state.set(ACTIVE);
            }
            ACTIVE => {}
            _ => return ptr::null_mut(),
        }
        let c = root.new_cache(src);
        if c.is_null() {
            return c;
        }
        // Evict the least recently used slot (a slot of a released heap first), then shift
        // everything down one.
        let victim = (0..SLOTS).find(|&i| t.keys[i].get() == 0).unwrap_or(SLOTS - 1);
        release_slot(t, victim);
        for i in (1..=victim).rev() {
            t.keys[i].set(t.keys[i - 1].get());
            t.roots[i].set(t.roots[i - 1].get());
            t.caches[i].set(t.caches[i - 1].get());
        }
        t.keys[0].set(root.key);
        t.roots[0].set(root);
        t.caches[0].set(c);
        c
    }
}

/// Without `std` there are no thread caches: every thread uses the shared cache.
#[cfg(not(feature = "std"))]
mod imp {
    use core::ptr;

    use crate::source::PageSource;
    use crate::strategies::tiered::Root;
    use crate::strategies::tiered::mcache::MCache;

    /// Always none.
    #[cfg(test)]
    #[inline]
    pub fn lookup(_key: u64) -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none.
    #[inline]
    pub fn peek(_key: u64) -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none.
    #[inline]
    pub fn peek_key(_key: u64) -> Option<core::ptr::NonNull<MCache>> {
        None
    }

    /// No slots.
    #[inline]
    pub fn drop_slot(_key: u64) {}

    /// Always none: use the shared cache.
    #[inline]
    pub fn get<P: PageSource>(_root: &Root, _src: &P) -> *mut MCache {
        ptr::null_mut()
    }

    /// Nothing to give back: no thread has a cache.
    #[inline]
    pub fn forget(_root: &Root) {}
}

#[cfg(test)]
pub(super) use imp::lookup;
pub(super) use imp::{drop_slot, forget, get, peek, peek_key};
