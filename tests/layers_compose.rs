//! Runtime compositions: the grammar of names, its errors, and composed `AnyStrategy`
//! heaps through the shared harness (random operations and threads, over `Tracked`).

#[macro_use]
mod harness;

use harness::{Backing, Opts, ThreadShape};
use proptest::strategy::{Strategy as _, ValueTree as _};
use stratalloc::{AnyStrategy, Heap, Mmap, Spec, StrategyKind, Tracked};

#[test]
fn names_parse_and_print_canonically() {
    for (given, canonical) in [
        ("best-fit", "best-fit"),
        ("tcache(arenas(best-fit))", "tcache(arenas(best-fit))"),
        ("  TCache ( Arenas(Best-Fit) ) ", "tcache(arenas(best-fit))"),
        ("segregate(1024, segregated-fit, best-fit)", "segregate(1024,segregated-fit,best-fit)"),
        ("segregate(64,tcache(first-fit),arenas(tiered))", "segregate(64,tcache(first-fit),arenas(tiered))"),
    ] {
        let spec: Spec = given.parse().unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(spec.to_string(), canonical);
    }
    assert_eq!("next-fit".parse::<Spec>().unwrap().as_base(), Some(StrategyKind::NextFit));
}

#[test]
fn malformed_names_get_one_line_listing_what_is_valid() {
    std::thread::Builder::new().stack_size(64 << 20).spawn(malformed).unwrap().join().unwrap();
}

fn malformed() {
    for bad in [
        "",
        "worst-fit",
        "tcache(best-fit",
        "tcache(best-fit))",
        "arenas()",
        "segregate(0, best-fit, best-fit)",
        "segregate(x, best-fit, best-fit)",
        "segregate(64, best-fit)",
        "tcache best-fit",
        "arenas(tcache(arenas(best-fit)))",
        "tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(tcache(best-fit))))))))))))))))",
    ] {
        let e = AnyStrategy::from_name(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("best-fit") && line.contains("segregate(LIMIT, S, S)"), "{line}");
    }
}

/// Composed heaps pass the model (random operations) and the threads test. (On a thread
/// with a large stack: compositions are built by value, and strategy values are large.)
#[test]
fn composed_heaps_pass_the_harness() {
    std::thread::Builder::new().stack_size(64 << 20).spawn(composed_heaps).unwrap().join().unwrap();
}

fn composed_heaps() {
    let opts = Opts::DEFAULT;
    for name in ["tcache(arenas(segregated-fit))", "segregate(256,tcache(best-fit),arenas(first-fit))"] {
        let s = AnyStrategy::from_name(name).unwrap();
        let heap = Heap::from_parts(s, Tracked::new(Mmap));
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for case in 0..8 {
            let ops = harness::ops().new_tree(&mut runner).unwrap().current();
            harness::run_ops_on(&heap, &ops, &opts, Backing::Machine, |h, o| {
                harness::tracked_agrees(h.source(), h, o)
            })
            .unwrap_or_else(|e| panic!("{name} case {case}: {e}"));
        }
        let shape = ThreadShape { threads: 16, steps: 300, max_size: 64 << 10, max_align: 4096 };
        harness::threads_on(&heap, shape, Backing::Machine, &opts, |h, o| {
            harness::tracked_agrees(h.source(), h, o)
        });
        // SAFETY: no other thread uses the heap.
        unsafe { heap.release_all() };
        assert_eq!(heap.source().counts().owned(), 0, "{name}: release_all left memory with the source");
    }
}
