//! Binding of caches to threads: one slot per thread and heap, and an exit guard (`std`);
//! without `std`, none (every thread uses the shared cache). Go binds an `mcache` to each
//! `P` instead (`p.mcache`, `getMCache` in `runtime/mcache.go`).
//!
//! # Threads
//! The `std` feature binds a cache to each thread and heap with a destructor-free,
//! const-initialised `thread_local!` (no allocation, no registration), and registers a
//! separate exit guard once per thread; while that registration runs (glibc's
//! `__cxa_thread_atexit_impl` may call `calloc`, i.e. us) and after the guard has run, the
//! thread uses the root's *shared cache* under its lock. The guard gives every cache of the
//! thread back (`release_all`: uncacheSpan for each class, retire the tiny block, flush
//! statistics) and the record goes on the heap's free-cache list for the next thread. Frees
//! never need a cache: without one they take the non-owner path. Threads created by C code
//! are handled the same way, since the guard is std's TLS destructor.

/// Binding of caches to threads (`std`), see "Threads" above.
#[cfg(feature = "std")]
mod imp {
    use core::cell::Cell;
    use core::ptr;

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
        roots: [Cell<*const Root>; SLOTS],
        caches: [Cell<*mut MCache>; SLOTS],
    }

    std::thread_local! {
        // Const-initialised and without a destructor: using it never allocates or registers.
        static TC: ThreadCaches = const {
            ThreadCaches {
                state: Cell::new(UNREGISTERED),
                roots: [const { Cell::new(ptr::null()) }; SLOTS],
                caches: [const { Cell::new(ptr::null_mut()) }; SLOTS],
            }
        };
        static GUARD: ExitGuard = const { ExitGuard };
    }

    struct ExitGuard;

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            TC.with(|t| {
                t.state.set(DEAD);
                for i in 0..SLOTS {
                    let r = t.roots[i].replace(ptr::null());
                    let c = t.caches[i].replace(ptr::null_mut());
                    if !r.is_null() {
                        // SAFETY: a root outlives the threads that used it (Tiered's docs);
                        // the cache is this thread's.
                        unsafe { (*r).release_cache(c) };
                    }
                }
            });
        }
    }

    /// Gives back the calling thread's cache for `root`, if any.
    pub fn forget(root: &Root) {
        let c = TC.with(|t| {
            for i in 0..SLOTS {
                if ptr::eq(t.roots[i].get(), root) {
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

    /// The calling thread's cache for `root` if `root` is the heap it used last (the
    /// allocation fast path; never creates, never calls).
    #[inline(always)]
    pub fn peek(root: *const Root) -> *mut MCache {
        TC.with(|t| if ptr::eq(t.roots[0].get(), root) { t.caches[0].get() } else { ptr::null_mut() })
    }

    /// The calling thread's most recently used cache, of whichever heap (the free path's
    /// owner test: a span's owner is a cache of the span's heap, so equality with it needs
    /// no root compare; never creates, never calls).
    #[inline(always)]
    pub fn peek_any() -> *mut MCache {
        TC.with(|t| t.caches[0].get())
    }

    /// The calling thread's cache for `root`, if it has one (the free path; never creates).
    #[inline]
    pub fn lookup(root: *const Root) -> *mut MCache {
        TC.with(|t| {
            if t.roots[0].get() == root {
                return t.caches[0].get();
            }
            for i in 1..SLOTS {
                if t.roots[i].get() == root {
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
        TC.with(|t| {
            if ptr::eq(t.roots[0].get(), root) {
                return t.caches[0].get();
            }
            get_slow(t, root, src)
        })
    }

    #[cold]
    fn get_slow<P: PageSource>(t: &ThreadCaches, root: &Root, src: &P) -> *mut MCache {
        for i in 1..SLOTS {
            if ptr::eq(t.roots[i].get(), root) {
                // Move the hit to slot 0 (most recently used).
                let c = t.caches[i].get();
                t.roots[i].set(t.roots[0].get());
                t.caches[i].set(t.caches[0].get());
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
        // Evict the least recently used slot, then shift everything down one.
        let last_root = t.roots[SLOTS - 1].get();
        if !last_root.is_null() {
            // SAFETY: a root outlives the threads that used it; the cache is this thread's.
            unsafe { (*last_root).release_cache(t.caches[SLOTS - 1].get()) };
        }
        for i in (1..SLOTS).rev() {
            t.roots[i].set(t.roots[i - 1].get());
            t.caches[i].set(t.caches[i - 1].get());
        }
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
    #[inline]
    pub fn lookup(_root: *const Root) -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none.
    #[inline]
    pub fn peek_any() -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none.
    #[inline]
    pub fn peek(_root: *const Root) -> *mut MCache {
        ptr::null_mut()
    }

    /// Always none: use the shared cache.
    #[inline]
    pub fn get<P: PageSource>(_root: &Root, _src: &P) -> *mut MCache {
        ptr::null_mut()
    }

    /// Nothing to give back: no thread has a cache.
    #[inline]
    pub fn forget(_root: &Root) {}
}

pub(super) use imp::{forget, get, lookup, peek, peek_any};
