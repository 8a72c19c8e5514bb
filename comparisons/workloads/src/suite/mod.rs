//! The workloads: each a whole program run in its own process, checking its own results.
//!
//! A workload is a function of a [`Ctx`] (scale, threads, seed) that returns an
//! allocator-independent checksum and optional metrics, or `Err` naming the check that
//! failed. The driver compares checksums across allocators as a second line of defence.
//! Scale 1 is the quick set's size (tens of milliseconds with mimalloc: long enough to time,
//! short enough for the quick run); the driver's `--scale` multiplies it.

use crate::check::Check;

pub mod mimalloc_bench;
pub mod programs;
pub mod talc_bench;

/// What a workload is given.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Multiplies the work (1.0 = quick).
    pub scale: f64,
    /// Worker threads for multi-threaded workloads (mimalloc-bench's N).
    pub threads: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// The recorded trace, for trace replay.
    pub trace: Option<std::path::PathBuf>,
}

impl Ctx {
    /// `base` scaled, at least 1.
    pub fn n(&self, base: usize) -> usize {
        ((base as f64 * self.scale) as usize).max(1)
    }
}

/// What a workload returns.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Allocator-independent checksum of the results.
    pub checksum: u64,
    /// Extra measurements (name, value), e.g. fragmentation.
    pub metrics: Vec<(&'static str, f64)>,
}

impl Outcome {
    /// An outcome with a checksum only.
    pub fn sum(checksum: u64) -> Check<Outcome> {
        Ok(Outcome { checksum, metrics: Vec::new() })
    }
}

/// A named workload.
#[derive(Debug)]
pub struct Workload {
    /// Name on the command line and in tables.
    pub name: &'static str,
    /// Where it comes from (mimalloc-bench, talc, program, trace).
    pub group: &'static str,
    /// One line on what it does.
    pub about: &'static str,
    /// The entry point.
    pub run: fn(&Ctx) -> Check<Outcome>,
}

/// Every workload, in table order.
pub const ALL: &[Workload] = &[
    Workload {
        name: "larson",
        group: "mimalloc-bench",
        about: "server bleeding memory between threads: random slot replace 8..1000 B, threads respawned",
        run: mimalloc_bench::larson,
    },
    Workload {
        name: "xmalloc-test",
        group: "mimalloc-bench",
        about: "producers allocate 64 B objects, consumers on other threads free them",
        run: mimalloc_bench::xmalloc,
    },
    Workload {
        name: "mstress",
        group: "mimalloc-bench",
        about: "power-of-two 8..512 B (rarely x100..x10000), retention, realloc, hand-off between rounds",
        run: mimalloc_bench::mstress,
    },
    Workload {
        name: "rptest",
        group: "mimalloc-bench",
        about: "8..16000 B linear drop-off, cross-thread batches, aligned and zeroed, touches every page",
        run: mimalloc_bench::rptest,
    },
    Workload {
        name: "alloc-test1",
        group: "mimalloc-bench",
        about: "Pareto slot choice, geometric 5 B..1 KiB, memset and read everything, 1 thread",
        run: mimalloc_bench::alloc_test1,
    },
    Workload {
        name: "alloc-testN",
        group: "mimalloc-bench",
        about: "alloc-test on N threads",
        run: mimalloc_bench::alloc_test_n,
    },
    Workload {
        name: "glibc-simple",
        group: "mimalloc-bench",
        about: "16/32/64 B malloc-free loops",
        run: mimalloc_bench::glibc_simple,
    },
    Workload {
        name: "glibc-thread",
        group: "mimalloc-bench",
        about: "N threads, sizes 4..32768 drawn inverse-square, random slot replace",
        run: mimalloc_bench::glibc_thread,
    },
    Workload {
        name: "cache-scratch",
        group: "mimalloc-bench",
        about: "false sharing: small objects from one thread reused and written by others",
        run: mimalloc_bench::cache_scratch,
    },
    Workload {
        name: "malloc-large",
        group: "mimalloc-bench",
        about: "20 live buffers (6 at scale 1) of 5..25 MiB, replaced, zero-initialised",
        run: mimalloc_bench::malloc_large,
    },
    Workload {
        name: "mleak",
        group: "mimalloc-bench",
        about: "short-lived threads allocate and exit; survivors freed by the main thread",
        run: mimalloc_bench::mleak,
    },
    Workload {
        name: "heap-efficiency",
        group: "talc",
        about: "random allocs and frees up to a live budget; metric: live bytes / RSS growth",
        run: talc_bench::heap_efficiency,
    },
    Workload {
        name: "random-actions",
        group: "talc",
        about: "random alloc / realloc / free of 1 B..16 KiB over 10,000 slots",
        run: talc_bench::random_actions,
    },
    Workload {
        name: "fragmentation",
        group: "Johnstone-Wilson",
        about: "phased lifetimes and sizes; metric: max heap (RSS) / max live - 1",
        run: talc_bench::fragmentation,
    },
    Workload {
        name: "json",
        group: "program",
        about: "serde_json: generate, serialise, parse and compare a document",
        run: programs::json,
    },
    Workload {
        name: "btree-hash",
        group: "program",
        about: "BTreeMap and HashMap churn with String and Vec values",
        run: programs::btree_hash,
    },
    Workload {
        name: "strings",
        group: "program",
        about: "string building: format!, push_str, replace, split and join",
        run: programs::strings,
    },
    Workload {
        name: "parser",
        group: "program",
        about: "tokenise, parse to a boxed AST and evaluate generated expressions",
        run: programs::parser,
    },
    Workload {
        name: "trace-replay",
        group: "trace",
        about: "replays the recorded allocation trace of json+btree-hash+strings+parser",
        run: crate::trace::replay,
    },
];

/// The workload called `name`, of the default set or of [`TARGETS`](crate::targets::TARGETS).
pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().chain(crate::targets::TARGETS).find(|w| w.name == name)
}
