//! The harness run on `PagePerBlock`, the simplest correct strategy (one page-source
//! reservation per block), and a check that it catches a broken strategy.

#[macro_use]
mod harness;

use harness::reference::{Corrupting, PagePerBlock};
use harness::{Api, Runner};
use stratalloc::{Heap, Mmap};

strategy_suites!(PagePerBlock);

/// A strategy that flips a byte of every second reallocated block is reported, with the
/// address and offset of the damage.
#[test]
fn harness_detects_a_corrupting_strategy() {
    let heap: Heap<Corrupting<PagePerBlock>, Mmap> = Heap::new();
    let mut r = Runner::new(&heap, false);
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
        if harness::run_ops_on(&env.heap, &ops, &harness::Opts::DEFAULT, false, |_, _| Ok(())).is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0, "16 random sequences never noticed a strategy that corrupts reallocs");
}
