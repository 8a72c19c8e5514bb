//! Loom model checks of the tiered strategy's lock-free structures. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_tiered` (.ci/steps/45-loom.sh).
//! The file under test is included as is, compiled against loom's atomics.
#![cfg(loom)]

/// The atomics remote.rs is built on: loom's here.
mod remote_atomics {
    pub use loom::sync::atomic::{AtomicPtr, Ordering};
}

#[path = "../strategies/tiered/remote.rs"]
#[allow(dead_code, clippy::all)]
mod remote;

use core::ptr::{self, NonNull};

use loom::sync::Arc;
use loom::thread;
use remote::RemoteStack;

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

/// The owner's side of both models: collects while the `pushers` run and once after they
/// end, then checks that it saw every node of `want` exactly once, and frees them.
fn collect_while_pushed(
    stack: &RemoteStack,
    pushers: [thread::JoinHandle<()>; 2],
    mut want: Vec<NonNull<u8>>,
) {
    let mut seen = Vec::new();
    drain(stack, &mut seen);
    for t in pushers {
        t.join().unwrap();
    }
    drain(stack, &mut seen);
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
    for p in want {
        // SAFETY: made by `node`, no longer on the stack.
        drop(unsafe { Box::from_raw(p.as_ptr().cast::<usize>()) });
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
        collect_while_pushed(&stack, [t1, t2], vec![a, b, c]);
    });
}

/// Links `nodes` (at least one) through their first words, first to last, as a thread's
/// held-back remote frees are (`RemoteChain` in mcache.rs); returns the first and the last.
fn link(nodes: &[NonNull<u8>]) -> (NonNull<u8>, NonNull<u8>) {
    for w in nodes.windows(2) {
        // SAFETY: fresh 8-byte boxes owned by the caller; the link goes in the first word.
        unsafe { w[0].cast::<*mut u8>().write(w[1].as_ptr()) };
    }
    (nodes[0], nodes[nodes.len() - 1])
}

/// A thread pushes a chain of two held-back frees while another pushes a single free and
/// the owner collects: every object is collected exactly once, with the chain's links
/// (written before the push) intact.
#[test]
fn chains_of_remote_frees_are_collected_exactly_once() {
    loom::model(|| {
        let stack = Arc::new(RemoteStack::from_atomic(loom::sync::atomic::AtomicPtr::new(ptr::null_mut())));
        let (a, b, c) = (node(), node(), node());
        let s1 = stack.clone();
        let (na, nb) = (Node(a), Node(b));
        let t1 = thread::spawn(move || {
            let (first, last) = link(&[na.0, nb.0]);
            // SAFETY: fresh 8-byte boxes, linked first to last, given to the stack.
            unsafe { s1.push_chain(first, last) };
        });
        let s2 = stack.clone();
        let nc = Node(c);
        let t2 = thread::spawn(move || {
            // SAFETY: the node, a fresh 8-byte box, is given to the stack.
            unsafe { s2.push(nc.0) }
        });
        collect_while_pushed(&stack, [t1, t2], vec![a, b, c]);
    });
}
