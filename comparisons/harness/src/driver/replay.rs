//! `comparisons replay TRACE`: a program's recorded allocations (comparisons/harness/TRACE.md)
//! replayed against every allocator, each in its own process (`alloc_NN replay TRACE`), and
//! a report: time, peak resident memory, resident growth against peak live bytes, memory
//! over the run (a terminal sparkline and an SVG), and a one-line recommendation.
//! `--profile` describes the trace instead (sizes, lifetimes, cross-thread frees).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{Arg, ArgAction, value_parser};
use comparisons::workloads::{program_replay, program_trace};
use plotters::prelude::*;

use crate::exec::{self, Reply, Status};
use crate::runners::{self, Runner};
use crate::{Opts, report};

/// Exit code for a trace that cannot be read.
const EXIT_BAD_TRACE: i32 = 65;

fn cli() -> clap::Command {
    clap::Command::new("comparisons replay")
        .about(
            "Replays a program's allocation trace (STRATALLOC_TRACE=out.trace LD_PRELOAD=libstratalloc_preload.so \
             program) against every allocator, each in its own process",
        )
        .arg(Arg::new("trace").required(true).value_parser(value_parser!(PathBuf)).help("The trace file"))
        .arg(Arg::new("profile").long("profile").action(ArgAction::SetTrue).help(
            "Describe the trace (size and lifetime histograms, cross-thread frees, peak live bytes) instead of replaying it",
        ))
        .arg(Arg::new("order").long("order").value_parser(["threads", "recorded", "serial"]).default_value("threads").help(
            "threads: one replay thread per recorded thread, each doing its calls in order, calls on one object in the \
             recorded order, the threads otherwise free (the default); recorded: the same threads, and every call waits \
             for its turn in the recorded global order, so the calls run in the program's order on the program's \
             threads (as threads taking turns under a lock, Python's GIL, do; it costs a hand-off between threads at \
             every change of thread); serial: every call on one thread, in the recorded global order (cross-thread \
             frees become local ones)",
        ))
        .arg(Arg::new("serial").long("serial").action(ArgAction::SetTrue).conflicts_with("order").help("--order serial"))
        .arg(Arg::new("partial").long("partial").action(ArgAction::SetTrue).help(
            "Accept a trace without its end record (a program killed or left with _exit): replays the chunks it has",
        ))
        .arg(Arg::new("allocators").long("allocators").action(ArgAction::Append).help(
            "Comma list of allocators (default: every strategy, every composition, mimalloc, system, talc)",
        ))
        .arg(Arg::new("touch").long("touch").value_parser(["whole", "ends"]).default_value("whole").help(
            "whole: write every byte of a block when it is allocated and read every byte before it is freed, as a \
             program does with its memory (the default, for ranking); ends: only the stamps at a block's ends",
        ))
        .arg(Arg::new("preload").long("preload").action(ArgAction::Append).value_name("NAME=LIB[,VAR=VALUE...]").help(
            "Also replay with the `system` runner (Rust's System allocator: malloc, free, realloc, posix_memalign \
             through the C ABI) under LD_PRELOAD=LIB and the variables given, reported as NAME: the same build a \
             program gets with that preload (repeatable)",
        ))
        .arg(Arg::new("reps").long("reps").value_parser(value_parser!(usize)).default_value("3").help("Runs per allocator"))
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_parser(value_parser!(f64))
                .default_value("300")
                .help("Seconds one replay may take before it is killed"),
        )
        .arg(Arg::new("out").long("out").value_parser(value_parser!(PathBuf)).help(
            "Directory for replay.md, replay.json and replay-memory.svg (default: <trace>.replay/ beside the trace)",
        ))
        .arg(Arg::new("no-build").long("no-build").action(ArgAction::SetTrue).help("Do not build the runner bins"))
        .arg(Arg::new("bin-dir").long("bin-dir").value_parser(value_parser!(PathBuf)).help("Where the runner bins are"))
}

/// A runner to replay with, and what its environment adds (a preloaded allocator).
#[derive(Clone, Debug)]
struct Target {
    runner: Runner,
    /// `LD_PRELOAD` and the other variables of `--preload`; empty for a table runner.
    env: Vec<(String, String)>,
}

/// `NAME=LIB[,VAR=VALUE...]` of `--preload`, with the `system` runner.
fn preload_target(spec: &str, system: &Runner) -> Result<Target, String> {
    let mut parts = spec.split(',');
    let (name, lib) = parts
        .next()
        .and_then(|p| p.split_once('='))
        .filter(|(n, l)| !n.is_empty() && !l.is_empty())
        .ok_or_else(|| format!("--preload {spec}: expected NAME=LIB[,VAR=VALUE...]"))?;
    if !Path::new(lib).exists() {
        return Err(format!("--preload {spec}: {lib} not found"));
    }
    let mut env = vec![("LD_PRELOAD".to_string(), lib.to_string())];
    for kv in parts {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--preload {spec}: {kv} is not VAR=VALUE"))?;
        env.push((k.to_string(), v.to_string()));
    }
    let runner = Runner { name: name.to_string(), kind: "preload".into(), path: system.path.clone() };
    Ok(Target { runner, env })
}

/// One allocator's replays.
#[derive(Clone, Debug, Default)]
struct Row {
    name: String,
    replay_s: Vec<f64>,
    maxrss_bytes: Vec<f64>,
    resident_bytes: Vec<f64>,
    /// A stratalloc heap's own peak committed bytes and page-source calls, by run.
    committed_bytes: Vec<f64>,
    source_calls: Vec<f64>,
    /// `[op, live, resident, committed]` of the first successful run.
    series: Vec<[u64; 4]>,
    failure: Option<String>,
}

impl Row {
    fn time(&self) -> Option<f64> {
        report::median(&self.replay_s)
    }
    fn rss(&self) -> Option<f64> {
        report::median(&self.maxrss_bytes)
    }
    fn resident(&self) -> Option<f64> {
        report::median(&self.resident_bytes)
    }
    fn committed(&self) -> Option<f64> {
        report::median(&self.committed_bytes)
    }
    fn calls(&self) -> Option<f64> {
        report::median(&self.source_calls)
    }
}

fn fail(code: i32, msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(code)
}

/// The main of `comparisons replay ...` (argv[1] is `replay`).
pub fn main() {
    let m = cli().get_matches_from(std::env::args().skip(1).map(|a| a.to_string()).collect::<Vec<_>>());
    let path = m.get_one::<PathBuf>("trace").cloned().unwrap_or_default();
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| fail(EXIT_BAD_TRACE, &format!("cannot read {}: {e}", path.display())));
    let others = sibling_traces(&path);
    let trace = program_trace::decode(&bytes, m.get_flag("partial")).unwrap_or_else(|e| {
        let mut msg = format!("{}: {e}", path.display());
        if !others.is_empty() {
            let _ = write!(
                msg,
                "\nnote: the processes it started wrote traces of their own (a wrapper such as sh -c leaves \
                 with _exit, its own trace empty): replay the program's instead:"
            );
            for o in &others {
                let _ = write!(
                    msg,
                    "\n  {} ({} bytes)",
                    o.display(),
                    std::fs::metadata(o).map_or(0, |m| m.len())
                );
            }
        }
        fail(EXIT_BAD_TRACE, &msg)
    });
    drop(bytes);
    if !others.is_empty() {
        eprintln!(
            "note: {} more trace(s) beside it, of processes this one forked or exec'd (each is replayed on its own): {}",
            others.len(),
            others.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if trace.partial {
        eprintln!(
            "note: the trace has no end record (--partial): the calls after its last chunk are missing"
        );
    }
    let prof = program_trace::profile(&trace);
    if m.get_flag("profile") {
        print!("{}", prof.render(&trace));
        return;
    }
    if trace.ops.is_empty() {
        fail(EXIT_BAD_TRACE, &format!("{}: the trace holds no allocation to replay", path.display()));
    }
    let order = if m.get_flag("serial") {
        program_replay::Order::Serial
    } else {
        match m.get_one::<String>("order").map(String::as_str) {
            Some("recorded") => program_replay::Order::Recorded,
            Some("serial") => program_replay::Order::Serial,
            _ => program_replay::Order::Threads,
        }
    };
    let whole = m.get_one::<String>("touch").is_none_or(|t| t == "whole");
    let opts = Opts {
        quick: false,
        workloads: Vec::new(),
        c_workloads: Vec::new(),
        allocators: m
            .get_many::<String>("allocators")
            .map(|v| v.flat_map(|s| crate::split_names(s)).collect()),
        reps: m.get_one::<usize>("reps").copied().unwrap_or(3).max(1),
        out: m.get_one::<PathBuf>("out").cloned().unwrap_or_else(|| default_out(&path)),
        timeout: Duration::from_secs_f64(m.get_one::<f64>("timeout").copied().unwrap_or(300.0)),
        scale: 1.0,
        threads: 1,
        seed: 42,
        build: !m.get_flag("no-build"),
        bin_dir: m.get_one::<PathBuf>("bin-dir").cloned(),
        anchor: report::ANCHOR.into(),
        ab: None,
    };
    let mut set = runners::discover(&opts).unwrap_or_else(|e| fail(1, &e));
    if opts.allocators.is_none() {
        // Every strategy and composition, and the three anchors the issue names.
        let wanted = |r: &Runner| {
            r.kind == "strategy"
                || r.name.contains('(')
                || ["mimalloc", "system", "talc"].contains(&r.name.as_str())
        };
        let all: Vec<Runner> =
            set.runners.iter().chain(&set.on_request).filter(|r| wanted(r)).cloned().collect();
        let rank =
            |r: &Runner| comparisons::workloads::allocators::NAMES.iter().position(|(n, _)| *n == r.name);
        set.runners = all;
        set.runners.sort_by_key(rank);
    }
    let mut targets: Vec<Target> =
        set.runners.iter().map(|r| Target { runner: r.clone(), env: Vec::new() }).collect();
    if let Some(specs) = m.get_many::<String>("preload") {
        let system = set
            .runners
            .iter()
            .chain(&set.on_request)
            .find(|r| r.name == "system")
            .unwrap_or_else(|| fail(1, "--preload needs the `system` runner bin"));
        for spec in specs {
            let t = preload_target(spec, system).unwrap_or_else(|e| fail(2, &e));
            if targets.iter().any(|o| o.runner.name == t.runner.name) {
                fail(2, &format!("--preload {spec}: the name {} is taken", t.runner.name));
            }
            targets.push(t);
        }
    }
    println!(
        "{}: {} calls of {} threads, {} objects, peak live {}; replayed {}; {}",
        path.display(),
        trace.ops.len(),
        trace.threads,
        trace.objects,
        bytes_h(prof.peak_live_bytes as f64),
        match order {
            program_replay::Order::Serial =>
                "serialised: one thread, every call in the recorded global order (--order serial)".to_string(),
            program_replay::Order::Recorded => format!(
                "with {} thread(s), every call in the recorded global order (--order recorded: {} hand-offs \
                 between threads)",
                (trace.threads as usize).clamp(1, program_replay::MAX_THREADS),
                handoffs(&trace)
            ),
            program_replay::Order::Threads => format!(
                "with {} thread(s): each recorded thread's calls in order, calls on one object in the recorded order",
                (trace.threads as usize).clamp(1, program_replay::MAX_THREADS)
            ),
        },
        if whole {
            "every block written whole when allocated and read whole before it is freed (--touch whole)"
        } else {
            "only the stamps at each block's ends written and read (--touch ends)"
        }
    );
    let rows = run(&opts, &targets, &trace, order, whole);
    let text = render(&rows, &prof, opts.reps, whole);
    print!("{text}");
    match write_out(&opts.out, &path, &rows, &prof, &text) {
        Ok(files) => files.iter().for_each(|f| eprintln!("wrote {}", f.display())),
        Err(e) => fail(1, &format!("writing the report: {e}")),
    }
    if rows.iter().any(|r| r.failure.is_some()) {
        eprintln!("{} allocator(s) FAILED the replay", rows.iter().filter(|r| r.failure.is_some()).count());
        std::process::exit(1);
    }
}

fn default_out(trace: &Path) -> PathBuf {
    let mut name = trace.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".replay");
    trace.with_file_name(name)
}

/// `<trace>.<pid>` and `<trace>.<pid>.<n>` files beside the trace (its forked or exec'd
/// processes, see TRACE.md).
fn sibling_traces(trace: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (trace.parent(), trace.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{name}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let f = e.file_name().to_string_lossy().into_owned();
                    f.strip_prefix(&prefix).is_some_and(|rest| {
                        !rest.is_empty()
                            && rest.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    })
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Runs every (rep, allocator), the allocators rotated each rep.
/// Changes of replay thread between consecutive calls: what `--order recorded` pays a
/// hand-off for.
fn handoffs(trace: &program_trace::Trace) -> usize {
    let lane = |t: u32| t as usize % program_replay::MAX_THREADS;
    trace.ops.windows(2).filter(|w| lane(w[0].thread) != lane(w[1].thread)).count()
}

fn run(
    opts: &Opts,
    targets: &[Target],
    trace: &program_trace::Trace,
    order: program_replay::Order,
    whole: bool,
) -> Vec<Row> {
    let flat = program_replay::flat_ops(trace);
    let want = format!(
        "{:016x}",
        program_replay::plan_checksum(&program_replay::Plan::new(&flat, trace.objects, trace.threads))
    );
    drop(flat);
    let mut rows: Vec<Row> =
        targets.iter().map(|t| Row { name: t.runner.name.clone(), ..Row::default() }).collect();
    let scratch = std::env::temp_dir().join(format!("stratalloc-replay-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&scratch);
    // The runners read the decoded ops in place (see runner.rs), not the trace.
    let ops_file = scratch.join("ops.bin");
    if let Err(e) = std::fs::write(&ops_file, program_replay::flat_file(trace)) {
        fail(1, &format!("cannot write {}: {e}", ops_file.display()));
    }
    let n = targets.len();
    let pb = exec::progress(n * opts.reps);
    for rep in 0..opts.reps {
        for k in 0..n {
            let i = (k + rep) % n;
            let (target, row) = (&targets[i], &mut rows[i]);
            let runner = &target.runner;
            pb.set_message(format!("rep {} {}", rep + 1, runner.name));
            if row.failure.is_some() {
                pb.inc(1);
                continue;
            }
            let series = scratch.join(format!("{i}.json"));
            let mut cmd = Command::new(&runner.path);
            cmd.arg("replay").arg(&ops_file).arg("--series").arg(&series);
            match order {
                program_replay::Order::Serial => _ = cmd.arg("--serial"),
                program_replay::Order::Recorded => _ = cmd.arg("--recorded"),
                program_replay::Order::Threads => {}
            }
            if !whole {
                cmd.arg("--ends-only");
            }
            if !target.env.is_empty() {
                // The preloaded allocator serves this runner only, and it records nothing.
                cmd.env_remove("STRATALLOC_TRACE").env_remove("STRATALLOC_CHILD");
                cmd.envs(target.env.iter().map(|(k, v)| (k, v)));
            }
            match exec::run_one(cmd, Reply::ResultLine, opts.timeout) {
                Err(e) => row.failure = Some(e),
                Ok((_, ex, status)) => match status {
                    Status::Ok { checksum, metrics } if checksum == want => {
                        let get =
                            |k: &str| metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(0.0);
                        row.replay_s.push(get("replay_s"));
                        row.resident_bytes.push(get("peak_resident_bytes"));
                        // The runner's own VmHWM: wait4's ru_maxrss keeps the high-water mark of the
                        // forked copy of this driver from before the exec.
                        let own = get("peak_rss_bytes");
                        row.maxrss_bytes.push(if own > 0.0 {
                            own
                        } else {
                            ex.rusage.ru_maxrss as f64 * 1024.0
                        });
                        if metrics.iter().any(|(n, _)| n == "page_source_calls") {
                            row.committed_bytes.push(get("peak_committed_bytes"));
                            row.source_calls.push(get("page_source_calls"));
                        }
                        if row.series.is_empty() {
                            let text = std::fs::read_to_string(&series).unwrap_or_default();
                            row.series = serde_json::from_str(&text).unwrap_or_default();
                        }
                    }
                    Status::Ok { checksum, .. } => {
                        row.failure = Some(format!("checksum {checksum}, expected {want}"));
                    }
                    Status::Failed(why) => row.failure = Some(why),
                    Status::Timeout => row.failure = Some(format!("timed out after {:?}", opts.timeout)),
                    Status::Skipped => {}
                },
            }
            if let Some(why) = &row.failure {
                pb.println(format!("FAILED {}: {why}", runner.name));
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    rows
}

fn bytes_h(b: f64) -> String {
    match b {
        b if b >= (1u64 << 30) as f64 => format!("{:.2} GiB", b / (1u64 << 30) as f64),
        b if b >= (1u64 << 20) as f64 => format!("{:.1} MiB", b / (1u64 << 20) as f64),
        b if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
}

/// Memory over the run as a sparkline of `width` cells (each the peak in its span).
fn sparkline(series: &[[u64; 4]], pick: usize, max: u64, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let Some(last) = series.last() else { return String::new() };
    let span = last[0].max(1);
    let mut cells = vec![0u64; width];
    for p in series {
        let c = ((p[0] as u128 * width as u128 / (span as u128 + 1)) as usize).min(width - 1);
        cells[c] = cells[c].max(p[pick]);
    }
    cells
        .iter()
        .map(|&v| BARS[((v as f64 / max.max(1) as f64) * 7.0).round().clamp(0.0, 7.0) as usize])
        .collect()
}

fn ratio(v: Option<f64>, anchor: Option<f64>) -> String {
    match (v, anchor) {
        (Some(v), Some(a)) if a > 0.0 => format!("{:.2}x", v / a),
        _ => "-".into(),
    }
}

/// The terminal (and markdown) report.
fn render(rows: &[Row], prof: &program_trace::Profile, reps: usize, whole: bool) -> String {
    let anchor = rows.iter().find(|r| r.name == report::ANCHOR);
    let (at, am) = (anchor.and_then(Row::time), anchor.and_then(Row::rss));
    let peak_live = prof.peak_live_bytes as f64;
    let max_mem = rows.iter().flat_map(|r| r.series.iter().map(|p| p[2].max(p[1]))).max().unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<40} {:>9} {:>6} {:>10} {:>6} {:>10} {:>10} {:>7} {:>7}  resident memory over the run",
        "allocator", "time", "x mi", "peak RSS", "x mi", "resident+", "committed+", "/ live", "src ops"
    );
    for r in rows {
        if let Some(why) = &r.failure {
            let _ = writeln!(s, "{:<40} FAILED: {why}", r.name);
            continue;
        }
        let _ = writeln!(
            s,
            "{:<40} {:>8.4}s {:>6} {:>10} {:>6} {:>10} {:>10} {:>7} {:>7}  {}",
            r.name,
            r.time().unwrap_or(0.0),
            ratio(r.time(), at),
            bytes_h(r.rss().unwrap_or(0.0)),
            ratio(r.rss(), am),
            bytes_h(r.resident().unwrap_or(0.0)),
            r.committed().map_or("-".into(), bytes_h),
            match r.committed() {
                Some(c) if peak_live > 0.0 => format!("{:.2}x", c / peak_live),
                _ => "-".into(),
            },
            r.calls().map_or("-".into(), |c| format!("{c:.0}")),
            sparkline(&r.series, 2, max_mem, 24)
        );
    }
    if let Some(r) = rows.iter().find(|r| !r.series.is_empty()) {
        let _ = writeln!(
            s,
            "{:<40} {:>9} {:>6} {:>10} {:>6} {:>10} {:>10} {:>7} {:>7}  {}",
            "(the program's live bytes)",
            "",
            "",
            "",
            "",
            "",
            bytes_h(peak_live),
            "1.00x",
            "",
            sparkline(&r.series, 1, max_mem, 24)
        );
    }
    let _ = writeln!(
        s,
        "\ntime: median replay time of {reps} run(s) (decoding excluded); peak RSS: the replaying process's peak resident \
         memory (VmHWM), the mapped ops and bookkeeping included; resident+: peak growth of resident memory during the replay \
         (what the allocator touched, thread stacks excluded{}); committed+: the peak growth of a stratalloc heap's \
         own committed bytes during the replay, and / live its ratio to the trace's peak live bytes ({}, the fragmentation); src ops: its \
         page-source calls during the replay (reserve, map, used, unused, fault, free). The anchors do not say: -.",
        if whole {
            "; every block is written whole"
        } else {
            "; with --touch ends only the ends of a block are touched, so it can stay below the live bytes"
        },
        bytes_h(peak_live)
    );
    let _ = writeln!(s, "\n{}", recommendation(rows));
    s
}

/// "fastest: X (0.93x mimalloc); least memory: Y (0.71x mimalloc)": the least median
/// replay time, the least median growth of resident memory.
fn recommendation(rows: &[Row]) -> String {
    let ok: Vec<&Row> = rows.iter().filter(|r| r.failure.is_none() && r.time().is_some()).collect();
    let anchor = rows.iter().find(|r| r.name == report::ANCHOR);
    let best = |f: fn(&Row) -> Option<f64>| {
        ok.iter().min_by(|a, b| f(a).unwrap_or(f64::MAX).total_cmp(&f(b).unwrap_or(f64::MAX))).copied()
    };
    let part = |label: &str, r: Option<&Row>, f: fn(&Row) -> Option<f64>| match r {
        Some(r) => match anchor.and_then(f) {
            Some(a) if a > 0.0 && r.name != report::ANCHOR => {
                format!("{label}: {} ({:.2}x {})", r.name, f(r).unwrap_or(0.0) / a, report::ANCHOR)
            }
            _ => format!("{label}: {}", r.name),
        },
        None => format!("{label}: none (every replay failed)"),
    };
    format!(
        "{}; {}",
        part("fastest", best(Row::time), Row::time),
        part("least memory", best(Row::resident), Row::resident)
    )
}

fn write_out(
    dir: &Path,
    trace: &Path,
    rows: &[Row],
    prof: &program_trace::Profile,
    text: &str,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let md = dir.join("replay.md");
    let body = format!(
        "# Replay of {}\n\n```text\n{}```\n\n![memory over the run](replay-memory.svg)\n",
        trace.display(),
        text
    );
    std::fs::write(&md, body).map_err(|e| e.to_string())?;
    let json = dir.join("replay.json");
    let v = serde_json::json!({
        "trace": trace.display().to_string(),
        "peak_live_bytes": prof.peak_live_bytes,
        "recommendation": recommendation(rows),
        "allocators": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "failure": r.failure,
            "replay_s": r.replay_s,
            "peak_rss_bytes": r.maxrss_bytes,
            "peak_resident_growth_bytes": r.resident_bytes,
            "peak_committed_bytes": r.committed_bytes,
            "page_source_calls": r.source_calls,
            "series_op_live_resident_committed": r.series,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(&json, v.to_string()).map_err(|e| e.to_string())?;
    let svg = dir.join("replay-memory.svg");
    memory_svg(&svg, rows)?;
    Ok(vec![md, json, svg])
}

/// Live bytes and each allocator's resident growth against the ops done, in MiB.
fn memory_svg(path: &Path, rows: &[Row]) -> Result<(), String> {
    let with: Vec<&Row> = rows.iter().filter(|r| !r.series.is_empty()).collect();
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let x_max = with.iter().flat_map(|r| r.series.last()).map(|p| p[0]).max().unwrap_or(1).max(1) as f64;
    let y_max =
        with.iter().flat_map(|r| r.series.iter().map(|p| mib(p[1].max(p[2])))).fold(0.01, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Memory over the replay: live bytes and each allocator's resident growth",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("calls replayed").y_desc("MiB").draw().map_err(|e| e.to_string())?;
    for (i, r) in with.iter().enumerate() {
        let color = crate::plot::COLORS[i % crate::plot::COLORS.len()];
        chart
            .draw_series(std::iter::once(PathElement::new(
                r.series.iter().map(|p| (p[0] as f64, mib(p[2]))).collect::<Vec<_>>(),
                color.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?
            .label(r.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    if let Some(r) = with.first() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                r.series.iter().map(|p| (p[0] as f64, mib(p[1]))).collect::<Vec<_>>(),
                BLACK.stroke_width(3),
            )))
            .map_err(|e| e.to_string())?
            .label("live bytes (the program's)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
