//! Loom model checks of the tiered strategy's lock-free structures. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_tiered` (.ci/steps/45-loom.sh).
//! The file under test is included as is, compiled against loom's atomics.
#![cfg(loom)]

/// The atomics remote.rs is built on: loom's here.
mod remote_atomics {
    pub use loom::sync::atomic::{AtomicI8, AtomicPtr, Ordering};
}

#[path = "../strategies/tiered/remote.rs"]
#[allow(dead_code, clippy::all)]
mod remote;

use core::ptr::{self, NonNull};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use remote::{RemoteStack, TinyCounter};

fn node() -> NonNull<u8> {
    NonNull::from(Box::leak(Box::new(0usize))).cast()
}

fn drain(s: &RemoteStack, out: &mut Vec<NonNull<u8>>) {
    let mut p = s.take();
    while let Some(q) = NonNull::new(p) {
        out.push(q);
        // SAFETY: `q` is a node of the list just taken.
        p = unsafe { RemoteStack::next(q) };
    }
}

/// A node, movable into a loom thread (raw pointers are not `Send`).
struct Node(NonNull<u8>);
// SAFETY: a node is a leaked box of plain memory, tied to no thread; each is pushed by one
// thread.
unsafe impl Send for Node {}

/// Two threads free into one span while the owner collects: every object is collected
/// exactly once.
#[test]
fn remote_frees_are_collected_exactly_once() {
    loom::model(|| {
        let stack = Arc::new(RemoteStack::from_atomic(loom::sync::atomic::AtomicPtr::new(ptr::null_mut())));
        let (a, b, c) = (node(), node(), node());
        let s1 = stack.clone();
        let (na, nc) = (Node(a), Node(c));
        let t1 = thread::spawn(move || {
            // SAFETY: the node, a fresh 8-byte box, is given to the stack.
            unsafe { s1.push(na.0) };
            // SAFETY: the node, a fresh 8-byte box, is given to the stack.
            unsafe { s1.push(nc.0) };
        });
        let s2 = stack.clone();
        let nb = Node(b);
        let t2 = thread::spawn(move || {
            // SAFETY: the node, a fresh 8-byte box, is given to the stack.
            unsafe { s2.push(nb.0) }
        });
        let mut seen = Vec::new();
        drain(&stack, &mut seen);
        t1.join().unwrap();
        t2.join().unwrap();
        drain(&stack, &mut seen);
        seen.sort();
        let mut want = vec![a, b, c];
        want.sort();
        assert_eq!(seen, want);
        for p in want {
            // SAFETY: made by `node`, no longer on the stack.
            drop(unsafe { Box::from_raw(p.as_ptr().cast::<usize>()) });
        }
    });
}

/// The owner retires a block of 3 objects while two other threads free two of them; the
/// owner frees the third afterwards. Exactly one party frees the block.
#[test]
fn tiny_block_is_freed_exactly_once() {
    loom::model(|| {
        let c = Arc::new(TinyCounter::from_atomic(loom::sync::atomic::AtomicI8::new(0)));
        let freed = Arc::new(AtomicUsize::new(0));
        let spawn_free = |c: Arc<TinyCounter>, f: Arc<AtomicUsize>| {
            thread::spawn(move || {
                if c.free_one() {
                    f.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let t1 = spawn_free(c.clone(), freed.clone());
        let t2 = spawn_free(c.clone(), freed.clone());
        if c.retire(3) {
            freed.fetch_add(1, Ordering::Relaxed);
        }
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(freed.load(Ordering::Relaxed), 0, "one object is still live");
        if c.free_one() {
            freed.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(freed.load(Ordering::Relaxed), 1);
        assert_eq!(c.get(), 0, "a freed block's counter is back to zero for reuse");
    });
}

/// The owner frees one object of its current block while another thread frees the other,
/// then retires it: the block is freed exactly once, by whoever finishes last, or reset for
/// reuse by the owner.
#[test]
fn owner_and_remote_free_of_a_current_block() {
    loom::model(|| {
        let c = Arc::new(TinyCounter::from_atomic(loom::sync::atomic::AtomicI8::new(0)));
        let freed = Arc::new(AtomicUsize::new(0));
        let (c1, f1) = (c.clone(), freed.clone());
        let t = thread::spawn(move || {
            if c1.free_one() {
                f1.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Owner: two objects out, frees one locally (given 2 -> 1).
        let mut given = 1i8;
        let reset = c.reset_if_all_freed(given);
        if reset {
            given = 0;
        }
        t.join().unwrap();
        if !reset && c.reset_if_all_freed(given) {
            given = 0;
        }
        // The owner now retires the block.
        if c.retire(given) {
            freed.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(freed.load(Ordering::Relaxed), 1, "the block is free exactly once");
        assert_eq!(c.get(), 0);
    });
}
