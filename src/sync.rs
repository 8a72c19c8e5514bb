//! `SpinLock`: the one lock of the framework, const-constructible so it fits in a `static`.
//!
//! It never allocates and never parks through the global allocator. It spins with
//! exponential back-off and, with the `std` feature, yields the CPU after a while, so that a
//! holder preempted on a 2-core machine gets to run.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set spin lock around a `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `&SpinLock<T>` reaches the `T` only through a guard, and at most one guard exists at
// a time (the `locked` flag is taken with Acquire and released with Release, so each holder
// sees the previous holder's writes): sharing the lock moves exclusive access to `T` from
// thread to thread, which `T: Send` allows. (`SpinLock<T>` is `Send` when `T` is, by the
// auto trait: moving the lock moves the `T`.)
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the lock, spinning (and yielding, with `std`) until it is free.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        SpinGuard { lock: self, _not_auto: PhantomData }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self, _not_auto: PhantomData })
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 6 {
                    for _ in 0..(1u32 << spins) {
                        core::hint::spin_loop();
                    }
                    spins += 1;
                } else {
                    yield_now();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Takes the lock and keeps it without a guard, until [`force_unlock`](Self::force_unlock)
    /// (the `fork` protocol: locks taken in the prepare handler are released in the parent
    /// and child handlers, which are other calls).
    pub fn lock_held(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken with [`lock_held`](Self::lock_held).
    ///
    /// # Safety
    /// The calling thread took the lock with `lock_held` and no guard of it exists (in a
    /// `fork` child, the thread that forked is the one that took it).
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Direct access when the caller holds `&mut self` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

#[inline]
fn yield_now() {
    #[cfg(feature = "std")]
    std::thread::yield_now();
    #[cfg(not(feature = "std"))]
    core::hint::spin_loop();
}

/// Access to the value behind a [`SpinLock`]; unlocks on drop.
///
/// A guard shared between threads shares `&T`, so it is `Sync` only when `T` is:
///
/// ```compile_fail
/// fn shared<G: Sync>() {}
/// shared::<stratalloc::sync::SpinGuard<'static, core::cell::Cell<u8>>>();
/// ```
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// Turns off the auto traits, which would follow `&SpinLock<T>` (`Sync` for any
    /// `T: Send`); the impls below give the right bounds.
    _not_auto: PhantomData<*const T>,
}

// SAFETY: a guard is exclusive access to the `T` (at most one guard exists per lock); sending
// it sends that access, and unlocking from another thread is fine for this lock (an atomic
// store, no owner thread), so `T: Send` suffices.
unsafe impl<T: Send> Send for SpinGuard<'_, T> {}
// SAFETY: `&SpinGuard` gives only `&T` (through `Deref`), to every thread that shares it,
// which `T: Sync` allows.
unsafe impl<T: Sync> Sync for SpinGuard<'_, T> {}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and `&mut self`
        // makes this the only reference derived from it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
