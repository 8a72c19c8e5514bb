//! `comparisons`: runs workloads x allocators, each run a child process whose global
//! allocator is the allocator under test, and reports median wall time, CPU time, peak RSS
//! and the ratio to mimalloc as a terminal table, markdown, JSON and SVG plots.
//!
//! Flow: find the runner bins (building them with cargo when run by cargo) -> record the
//! trace if trace-replay is selected -> plan reps x workloads x allocators, rotating the
//! allocator order every workload and rep so that no allocator always runs first -> run
//! each child under a time limit (`wait4` gives its own CPU time and peak RSS) -> mark
//! failures (exit code, signal, time-out, missing result, checksum differing from the
//! others) -> aggregate medians -> write the report.
//!
//! A/B runs (`--ab DIR`): the runner bins of another build join as `<name>@b`, in the same
//! rotation; with `--anchor <name>` every ratio, the per-rep CPU ratio included, is B over A.
//!
//! Program traces (`comparisons replay TRACE`, `driver/replay.rs`): a program's allocations
//! recorded by the preload library, replayed by every allocator's runner bin.
//!
//! C workloads (`driver/cload.rs`, `--c-workloads` or `c-...` names) go through the same
//! plan, timing and report: their child is a real program with the allocator preloaded
//! (`LD_PRELOAD`), and their checksum is a hash of the program's output.

#[path = "driver/cload.rs"]
mod cload;
#[path = "driver/exec.rs"]
mod exec;
#[path = "driver/machine.rs"]
mod machine;
#[path = "driver/plot.rs"]
mod plot;
#[path = "driver/replay.rs"]
mod replay;
#[path = "driver/report.rs"]
mod report;
#[path = "driver/runners.rs"]
mod runners;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Command, value_parser};
use comparisons::workloads;

/// Options of one invocation.
#[derive(Clone, Debug)]
pub struct Opts {
    pub quick: bool,
    pub workloads: Vec<&'static workloads::Workload>,
    /// C workloads, run with each allocator preloaded (`--c-workloads`, or `c-...` names).
    pub c_workloads: Vec<&'static cload::CWorkload>,
    pub allocators: Option<Vec<String>>,
    pub reps: usize,
    pub out: PathBuf,
    pub timeout: Duration,
    pub scale: f64,
    pub threads: usize,
    pub seed: u64,
    pub build: bool,
    pub bin_dir: Option<PathBuf>,
    /// The allocator every ratio is taken against.
    pub anchor: String,
    /// Runner bins of another build, run as `<name>@b` beside this build's (A/B runs).
    pub ab: Option<PathBuf>,
}

fn cli() -> Command {
    Command::new("comparisons")
        .about("Workloads x allocators, each allocator the global allocator of its own process")
        .after_help(
            "A program's own allocations: record with STRATALLOC_TRACE=out.trace LD_PRELOAD=.../libstratalloc_preload.so \
             program, then `comparisons replay out.trace [--profile]` (see comparisons/harness/TRACE.md; \
             `comparisons replay --help`)",
        )
        .arg(Arg::new("quick").long("quick").action(ArgAction::SetTrue).help(
            "Every workload of the default set, C ones included, at small sizes (scale 1, 3 reps, 5 s limit)",
        ))
        .arg(
            Arg::new("workloads")
                .long("workloads")
                .value_delimiter(',')
                .help("Comma list of workloads (default: all Rust workloads; c-... names are C workloads)"),
        )
        .arg(
            Arg::new("c-workloads").long("c-workloads").action(ArgAction::SetTrue).help(
                "Also run every C workload (real programs with each allocator preloaded; part of --quick)",
            ),
        )
        .arg(Arg::new("allocators").long("allocators").action(clap::ArgAction::Append).help(
            "Comma list of allocators (default: every allocator in the table); compositions \
                     such as tcache(arenas(best-fit)) or segregate(1024,segregated-fit,best-fit) \
                     keep their inner commas",
        ))
        .arg(
            Arg::new("reps")
                .long("reps")
                .value_parser(value_parser!(usize))
                .help("Repetitions (default 3 quick, 5 full)"),
        )
        .arg(
            Arg::new("out")
                .long("out")
                .value_parser(value_parser!(PathBuf))
                .help("Output directory (default book/src/results)"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_parser(value_parser!(f64))
                .help("Seconds a run may take before it is killed (default 5 quick, 120 full)"),
        )
        .arg(
            Arg::new("scale")
                .long("scale")
                .value_parser(value_parser!(f64))
                .help("Work multiplier (default 1 quick, 5 full)"),
        )
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_parser(value_parser!(usize))
                .help("Threads per multi-threaded workload (default: cores)"),
        )
        .arg(Arg::new("seed").long("seed").value_parser(value_parser!(u64)).default_value("42"))
        .arg(
            Arg::new("no-build")
                .long("no-build")
                .action(ArgAction::SetTrue)
                .help("Do not build the runner bins with cargo; use those beside this executable"),
        )
        .arg(
            Arg::new("bin-dir")
                .long("bin-dir")
                .value_parser(value_parser!(PathBuf))
                .help("Where the runner bins are"),
        )
        .arg(
            Arg::new("anchor")
                .long("anchor")
                .default_value(report::ANCHOR)
                .help("The allocator every ratio is taken against"),
        )
        .arg(Arg::new("ab").long("ab").value_parser(value_parser!(PathBuf)).help(
            "A/B runs: also run the runner bins in this directory (another build's target/release), \
             as <name>@b, interleaved with this build's; try --anchor tiered --allocators tiered",
        ))
        .arg(
            Arg::new("list")
                .long("list")
                .action(ArgAction::SetTrue)
                .help("List workloads and allocators, then exit"),
        )
}

fn default_out() -> PathBuf {
    let harness = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.ancestors().nth(2).unwrap_or(harness).join("book/src/results")
}

/// Splits a comma list of allocator names at the commas outside parentheses, dropping
/// whitespace: `tcache(best-fit), segregate(64, a, b)` is two names.
fn split_names(list: &str) -> Vec<String> {
    let (mut names, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in list.chars().filter(|c| !c.is_whitespace()) {
        match c {
            ',' if depth == 0 => names.push(std::mem::take(&mut cur)),
            '(' | ')' => {
                depth += if c == '(' { 1 } else { -1 };
                cur.push(c);
            }
            _ => cur.push(c),
        }
    }
    names.push(cur);
    names.retain(|n| !n.is_empty());
    names
}

fn parse() -> Result<(Opts, bool), String> {
    let m = cli().get_matches();
    let quick = m.get_flag("quick");
    let (mut workloads, mut c_workloads) = (Vec::new(), Vec::new());
    match m.get_many::<String>("workloads") {
        None => workloads = workloads::ALL.iter().collect(),
        Some(names) => {
            for n in names {
                match (workloads::find(n), cload::find(n)) {
                    (Some(w), _) => workloads.push(w),
                    (None, Some(c)) => c_workloads.push(c),
                    _ => return Err(format!("unknown workload {n}; try --list")),
                }
            }
        }
    }
    // The quick set includes the C workloads; --workloads narrows it.
    if m.get_flag("c-workloads") || (quick && m.get_many::<String>("workloads").is_none()) {
        c_workloads = cload::ALL.iter().collect();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let opts = Opts {
        quick,
        workloads,
        c_workloads,
        allocators: m.get_many::<String>("allocators").map(|v| v.flat_map(|s| split_names(s)).collect()),
        reps: m.get_one::<usize>("reps").copied().unwrap_or(if quick { 3 } else { 5 }).max(1),
        out: m.get_one::<PathBuf>("out").cloned().unwrap_or_else(default_out),
        timeout: Duration::from_secs_f64(m.get_one::<f64>("timeout").copied().unwrap_or(if quick {
            5.0
        } else {
            120.0
        })),
        scale: m.get_one::<f64>("scale").copied().unwrap_or(if quick { 1.0 } else { 5.0 }),
        threads: m.get_one::<usize>("threads").copied().unwrap_or(cores).max(1),
        seed: *m.get_one::<u64>("seed").unwrap_or(&42),
        build: !m.get_flag("no-build"),
        bin_dir: m.get_one::<PathBuf>("bin-dir").cloned(),
        anchor: m.get_one::<String>("anchor").cloned().unwrap_or_else(|| report::ANCHOR.into()),
        ab: m.get_one::<PathBuf>("ab").cloned(),
    };
    Ok((opts, m.get_flag("list")))
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("replay") {
        replay::main();
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("replot") {
        let dir = std::env::args().nth(2).map_or_else(default_out, PathBuf::from);
        match report::replot(&dir) {
            Ok(files) => files.iter().for_each(|f| eprintln!("wrote {}", f.display())),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1)
            }
        }
        return;
    }
    let (opts, list) = parse().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(64)
    });
    let set = runners::discover(&opts).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    if list {
        runners::print_list(&set);
        return;
    }
    // Before the run: the commit measured is the one checked out when it started.
    let machine = machine::describe();
    let results = exec::run_all(&opts, &set).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let summary = report::summarise(&opts, &set, results, machine);
    print!("{}", report::terminal(&summary));
    match report::write_all(&opts, &summary) {
        Ok(files) => {
            for f in files {
                eprintln!("wrote {}", f.display());
            }
        }
        Err(e) => {
            eprintln!("error writing results: {e}");
            std::process::exit(1)
        }
    }
    if summary.failures() > 0 {
        eprintln!("{} allocator x workload cells FAILED", summary.failures());
        std::process::exit(1);
    }
}
