//! The harness run on `PagePerBlock`, the simplest correct strategy (one page-source
//! reservation per block), and checks that it catches broken strategies: one that corrupts
//! blocks, and one that refuses every request.

#[macro_use]
mod harness;

use harness::reference::{Corrupting, PagePerBlock, Refusing};
use harness::{Api, Backing, Runner};
use stratalloc::{Heap, Mmap};

strategy_suites!(PagePerBlock);

/// A strategy that flips a byte of every second reallocated block is reported, with the
/// address and offset of the damage.
#[test]
fn harness_detects_a_corrupting_strategy() {
    let heap: Heap<Corrupting<PagePerBlock>, Mmap> = Heap::new();
    let mut r = Runner::new(&heap, Backing::Machine);
    r.alloc(100, 8, false, Api::Global).unwrap();
    let mut outcome = Ok(());
    for size in [200, 300, 400, 500] {
        outcome = r.realloc(0, size);
        if outcome.is_err() {
            break;
        }
    }
    let err = outcome.expect_err("the harness missed a corrupted byte");
    assert!(err.contains("contents kept by realloc") && err.contains("offset 0"), "{err}");
}

/// The same broken strategy fails the random-operation property itself.
#[test]
fn random_ops_property_fails_on_a_corrupting_strategy() {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut failures = 0;
    for _ in 0..16 {
        let ops = harness::ops().new_tree(&mut runner).unwrap().current();
        let env = <harness::kinds::mmap as harness::SourceKind>::env::<Corrupting<PagePerBlock>>();
        if harness::run_ops_on(&env.heap, &ops, &harness::Opts::DEFAULT, Backing::Machine, |_, _| Ok(()))
            .is_err()
        {
            failures += 1;
        }
    }
    assert!(failures > 0, "16 random sequences never noticed a strategy that corrupts reallocs");
}

/// Runs 16 deterministic random sequences over kind `K` with the refusing strategy; returns
/// the first error (or panics if every sequence passed).
fn refusing_fails_over<K: harness::SourceKind>() -> String {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..16 {
        let ops = harness::ops().new_tree(&mut runner).unwrap().current();
        let env = K::env::<Refusing>();
        if let Err(e) =
            harness::run_ops_on(&env.heap, &ops, &harness::Opts::DEFAULT, K::BACKING, K::check_source)
        {
            return e;
        }
    }
    panic!("16 random sequences over {:?} passed a strategy that refuses everything", K::BACKING);
}

/// A strategy that always returns null fails the random-operation property over every
/// source: over `Fixed` too, where the old rule ("a bounded region may run out") let it pass.
#[test]
fn random_ops_property_fails_on_a_refusing_strategy() {
    let e = refusing_fails_over::<harness::kinds::mmap>();
    assert!(e.contains("refused, though Machine can back it"), "{e}");
    let e = refusing_fails_over::<harness::kinds::tracked>();
    assert!(e.contains("refused, though Machine can back it"), "{e}");
    let e = refusing_fails_over::<harness::kinds::fixed>();
    assert!(e.contains("refused, though Region"), "{e}");
}

/// The threads test fails on a strategy that refuses everything, over `Fixed` as well.
#[test]
#[should_panic(expected = "refused, though Region")]
fn threads_fails_on_a_refusing_strategy_over_fixed() {
    harness::threads::<Refusing, harness::kinds::fixed>(&harness::Opts::DEFAULT);
}

/// The threads test fails on a strategy that refuses everything, over the OS.
#[test]
#[should_panic(expected = "refused, though Machine")]
fn threads_fails_on_a_refusing_strategy_over_mmap() {
    harness::threads::<Refusing, harness::kinds::mmap>(&harness::Opts::DEFAULT);
}

/// The exhaustion test fails on a strategy that refuses everything (it refuses before the
/// region could have run out).
#[test]
#[should_panic(expected = "refused, though Region")]
fn exhaustion_fails_on_a_refusing_strategy() {
    harness::exhaustion::<Refusing>(&harness::Opts::DEFAULT);
}
