//! Turning runs into a summary (medians, ratios, verdicts) and writing it out: a terminal
//! table, `results.md`, `results.json`, and SVG plots.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Opts;
use crate::exec::{Results, Run, Status};
use crate::machine::Machine;
use crate::runners::RunnerSet;

/// The anchor every ratio is taken against unless `--anchor` names another.
pub const ANCHOR: &str = "mimalloc";

/// Verdict of one workload x allocator cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Ok,
    Failed(String),
    Timeout,
}

/// One workload x allocator cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub verdict: Verdict,
    pub wall_s: Vec<f64>,
    pub cpu_s: Vec<f64>,
    pub maxrss_kib: Vec<u64>,
    /// CPU seconds by rep, for ratios within a round.
    pub rep_cpu_s: Vec<(usize, f64)>,
    pub metrics: Vec<(String, f64)>,
    pub checksum: Option<String>,
}

/// The whole report.
pub struct Summary {
    pub workloads: Vec<&'static str>,
    pub allocators: Vec<(String, String)>,
    pub cells: HashMap<(String, String), Cell>,
    pub machine: Machine,
    pub command: String,
    pub opts: Opts,
    pub trace: Option<(PathBuf, u64)>,
    /// C workloads or allocators left out, and why.
    pub c_notes: Vec<String>,
}

/// Median of a non-empty list (mean of the middle two for even lengths).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 })
}

impl Cell {
    pub fn wall(&self) -> Option<f64> {
        if self.verdict == Verdict::Ok { median(&self.wall_s) } else { None }
    }
    pub fn cpu(&self) -> Option<f64> {
        if self.verdict == Verdict::Ok { median(&self.cpu_s) } else { None }
    }
    pub fn rss_mib(&self) -> Option<f64> {
        let v: Vec<f64> = self.maxrss_kib.iter().map(|k| *k as f64 / 1024.0).collect();
        if self.verdict == Verdict::Ok { median(&v) } else { None }
    }
}

impl Summary {
    pub fn cell(&self, w: &str, a: &str) -> Option<&Cell> {
        self.cells.get(&(w.to_string(), a.to_string()))
    }
    /// Cells that failed (not time-outs).
    pub fn failures(&self) -> usize {
        self.cells.values().filter(|c| matches!(c.verdict, Verdict::Failed(_))).count()
    }
    fn ratio(&self, w: &str, a: &str, f: fn(&Cell) -> Option<f64>) -> Option<f64> {
        let base = f(self.cell(w, &self.opts.anchor)?)?;
        Some(f(self.cell(w, a)?)? / base)
    }
    /// The median over reps of the CPU-time ratio to the anchor within the same rep (both
    /// runs moments apart, so a noisy minute of a shared machine hits both).
    pub fn round_ratio(&self, w: &str, a: &str) -> Option<f64> {
        let (base, cell) = (self.cell(w, &self.opts.anchor)?, self.cell(w, a)?);
        if base.verdict != Verdict::Ok || cell.verdict != Verdict::Ok {
            return None;
        }
        let ratios: Vec<f64> = cell
            .rep_cpu_s
            .iter()
            .filter_map(|(rep, cpu)| {
                let b = base.rep_cpu_s.iter().find(|(r, _)| r == rep)?.1;
                (b > 0.0).then(|| cpu / b)
            })
            .collect();
        median(&ratios)
    }
    fn names(&self) -> Vec<String> {
        self.allocators.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Marks runs whose checksum differs from the reference (the system allocator's, else the
/// most common) as failed.
fn cross_check(runs: &mut [Run]) {
    let mut by_workload: HashMap<&'static str, Vec<(String, String)>> = HashMap::new();
    for r in runs.iter() {
        if let Status::Ok { checksum, .. } = &r.status {
            by_workload.entry(r.workload).or_default().push((r.allocator.clone(), checksum.clone()));
        }
    }
    let mut reference: HashMap<&'static str, String> = HashMap::new();
    for (w, sums) in by_workload {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (_, s) in &sums {
            *count.entry(s).or_default() += 1;
        }
        let system: Vec<&str> = sums.iter().filter(|(a, _)| a == "system").map(|(_, s)| s.as_str()).collect();
        let pick = if !system.is_empty() && system.iter().all(|s| *s == system[0]) {
            system[0].to_string()
        } else {
            count.iter().max_by_key(|(s, n)| (**n, *s)).map(|(s, _)| s.to_string()).unwrap_or_default()
        };
        reference.insert(w, pick);
    }
    for r in runs.iter_mut() {
        if let Status::Ok { checksum, .. } = &r.status {
            let want = &reference[r.workload];
            if checksum != want {
                r.status = Status::Failed(format!("checksum {checksum} differs from the reference {want}"));
            }
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CARGO").is_some() {
        let profile = if cfg!(debug_assertions) { "" } else { " --release" };
        format!("cargo run{profile} -p comparisons -- {}", args.join(" ")).trim_end().to_string()
    } else {
        let exe = std::env::args().next().unwrap_or_default();
        format!("{exe} {}", args.join(" ")).trim_end().to_string()
    }
}

/// Builds the summary from the runs.
/// `machine` is read when the run starts (see [`crate::machine::describe`]).
pub fn summarise(opts: &Opts, set: &RunnerSet, results: Results, machine: Machine) -> Summary {
    let Results { mut runs, trace, c_notes } = results;
    cross_check(&mut runs);
    let mut cells: HashMap<(String, String), Cell> = HashMap::new();
    let mut metric_lists: HashMap<(String, String), Vec<(String, f64)>> = HashMap::new();
    for r in &runs {
        let key = (r.workload.to_string(), r.allocator.clone());
        let c = cells.entry(key.clone()).or_insert(Cell {
            verdict: Verdict::Ok,
            wall_s: vec![],
            cpu_s: vec![],
            maxrss_kib: vec![],
            rep_cpu_s: vec![],
            metrics: vec![],
            checksum: None,
        });
        match &r.status {
            Status::Ok { checksum, metrics } => {
                c.wall_s.push(r.wall_s);
                c.cpu_s.push(r.cpu_s);
                c.maxrss_kib.push(r.maxrss_kib);
                c.rep_cpu_s.push((r.rep, r.cpu_s));
                c.checksum = Some(checksum.clone());
                metric_lists.entry(key).or_default().extend(metrics.iter().cloned());
            }
            Status::Failed(why) => {
                if !matches!(c.verdict, Verdict::Failed(_)) {
                    c.verdict = Verdict::Failed(why.clone());
                }
            }
            Status::Timeout => {
                if c.verdict == Verdict::Ok {
                    c.verdict = Verdict::Timeout;
                }
            }
            Status::Skipped => {}
        }
    }
    for (key, list) in metric_lists {
        let mut names: Vec<String> = list.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        let c = cells.get_mut(&key).expect("cell exists");
        c.metrics = names
            .into_iter()
            .filter_map(|n| {
                let vals: Vec<f64> = list.iter().filter(|(m, _)| *m == n).map(|(_, v)| *v).collect();
                Some((n, median(&vals)?))
            })
            .collect();
    }
    Summary {
        workloads: opts
            .workloads
            .iter()
            .map(|w| w.name)
            .chain(opts.c_workloads.iter().map(|w| w.name).filter(|n| !c_skipped(&c_notes, n)))
            .collect(),
        allocators: set.runners.iter().map(|r| (r.name.clone(), r.kind.clone())).collect(),
        cells,
        machine,
        command: command_line(),
        opts: opts.clone(),
        trace,
        c_notes,
    }
}

/// Whether the C workload `name` was skipped (a note says so).
fn c_skipped(notes: &[String], name: &str) -> bool {
    notes.iter().any(|n| n.starts_with(&format!("{name} skipped")))
}

fn verdict_text(c: Option<&Cell>) -> Option<String> {
    match c.map(|c| &c.verdict) {
        None => Some("-".into()),
        Some(Verdict::Failed(_)) => Some("FAILED".into()),
        Some(Verdict::Timeout) => Some("TIMEOUT".into()),
        Some(Verdict::Ok) => None,
    }
}

/// A table of `f(workload, allocator)` with verdicts in place of failed cells.
fn table(s: &Summary, f: &dyn Fn(&str, &str) -> Option<String>, md: bool) -> String {
    let names = s.names();
    let mut rows: Vec<Vec<String>> =
        vec![std::iter::once("workload".to_string()).chain(names.iter().cloned()).collect()];
    for w in &s.workloads {
        let mut row = vec![w.to_string()];
        for a in &names {
            let c = s.cell(w, a);
            row.push(verdict_text(c).or_else(|| f(w, a)).unwrap_or_else(|| "-".into()));
        }
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (k, r) in rows.iter().enumerate() {
        if md {
            let _ = writeln!(out, "| {} |", r.join(" | "));
            if k == 0 {
                let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
            }
        } else {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    if i == 0 { format!("{x:<w$}", w = widths[i]) } else { format!("{x:>w$}", w = widths[i]) }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  "));
        }
    }
    out
}

/// The geometric mean of each allocator's ratios over the workloads it completed (count in
/// parentheses).
fn geomean_row(s: &Summary, f: fn(&Cell) -> Option<f64>, md: bool) -> String {
    let names = s.names();
    let mut row = vec!["geomean (completed)".to_string()];
    for a in &names {
        let rs: Vec<f64> = s.workloads.iter().filter_map(|w| s.ratio(w, a, f)).filter(|r| *r > 0.0).collect();
        row.push(if rs.is_empty() {
            "-".into()
        } else {
            format!("{:.2} ({})", (rs.iter().map(|r| r.ln()).sum::<f64>() / rs.len() as f64).exp(), rs.len())
        });
    }
    if md { format!("| {} |\n", row.join(" | ")) } else { format!("{}\n", row.join("  ")) }
}

fn ratio_fmt(s: &Summary, f: fn(&Cell) -> Option<f64>) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |w, a| match s.ratio(w, a, f) {
        Some(r) => Some(format!("{r:.2}")),
        None => s.cell(w, a).and_then(f).map(|v| format!("({v:.3})")),
    }
}

fn round_fmt(s: &Summary) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |w, a| s.round_ratio(w, a).map(|r| format!("{r:.2}"))
}

/// The terminal report.
pub fn terminal(s: &Summary) -> String {
    let mut out = String::new();
    let anchor = &s.opts.anchor;
    let _ = writeln!(out, "\nWall time, median of {} reps, ratio to {anchor} (lower is better)", s.opts.reps);
    out += &table(s, &ratio_fmt(s, Cell::wall), false);
    out += &geomean_row(s, Cell::wall, false);
    if s.allocators.iter().all(|(n, _)| n != anchor) {
        let _ = writeln!(out, "({anchor} was not run: values in parentheses are median seconds)");
    }
    let _ = writeln!(out, "\nCPU time, ratio to {anchor}: median over reps of the ratio within each rep");
    out += &table(s, &round_fmt(s), false);
    let _ = writeln!(out, "\n{anchor} median wall time (ms):");
    for w in &s.workloads {
        if let Some(v) = s.cell(w, anchor).and_then(Cell::wall) {
            let _ = write!(out, "{w} {:.0}  ", v * 1000.0);
        }
    }
    let _ = writeln!(out, "\n\nPeak RSS (MiB), median");
    out += &table(s, &|w, a| s.cell(w, a).and_then(Cell::rss_mib).map(|v| format!("{v:.1}")), false);
    out += &notes(s, "");
    out
}

/// Failures, time-outs and C notes; `heading` is the markdown heading level, or
/// "" for the terminal.
fn notes(s: &Summary, heading: &str) -> String {
    let md = !heading.is_empty();
    let mut out = String::new();
    let bullet = if md { "- " } else { "  " };
    let _ = writeln!(out, "\n{heading}{}Notes", if md { " " } else { "" });
    if md {
        out.push('\n');
    }
    let names = s.names();
    for w in &s.workloads {
        for a in &names {
            match s.cell(w, a).map(|c| &c.verdict) {
                Some(Verdict::Failed(why)) => {
                    let _ = writeln!(out, "{bullet}FAILED {w} / {a}: {why}");
                }
                Some(Verdict::Timeout) => {
                    let _ = writeln!(
                        out,
                        "{bullet}TIMEOUT {w} / {a}: killed at the {:.0} s limit (not timed; later reps skipped)",
                        s.opts.timeout.as_secs_f64()
                    );
                }
                _ => {}
            }
        }
    }
    for n in &s.c_notes {
        let _ = writeln!(out, "{bullet}{n}");
    }
    if out.lines().filter(|l| !l.trim().is_empty()).count() == 1 {
        let _ = writeln!(out, "{bullet}none: every run completed and passed its checks");
    }
    if let Some((p, len)) = &s.trace {
        let _ = writeln!(
            out,
            "{bullet}trace-replay replays {} ({len} bytes)",
            p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
        );
    }
    out
}

/// Writes results.md, results.json and the plots into `--out`; returns the files written.
pub fn write_all(opts: &Opts, s: &Summary) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let md = opts.out.join("results.md");
    let json = opts.out.join("results.json");
    let wall_svg = opts.out.join("wall_ratio.svg");
    let rss_svg = opts.out.join("rss_ratio.svg");
    let tables = opts.out.join("tables.md");
    std::fs::write(&md, markdown(s, true)).map_err(|e| e.to_string())?;
    std::fs::write(&tables, markdown(s, false)).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&to_json(s)).map_err(|e| e.to_string())?;
    std::fs::write(&json, text + "\n").map_err(|e| e.to_string())?;
    let names = s.names();
    let ratios = |f: fn(&Cell) -> Option<f64>| -> Vec<Vec<Option<f64>>> {
        s.workloads.iter().map(|w| names.iter().map(|a| s.ratio(w, a, f)).collect()).collect()
    };
    plots(&opts.out, &s.opts.anchor, &s.workloads, &names, &ratios(Cell::wall), &ratios(Cell::rss_mib))?;
    Ok(vec![md, tables, json, wall_svg, rss_svg])
}

/// Draws `wall_ratio.svg` and `rss_ratio.svg` into `dir`.
fn plots(
    dir: &std::path::Path,
    anchor: &str,
    workloads: &[&str],
    names: &[String],
    wall: &[Vec<Option<f64>>],
    rss: &[Vec<Option<f64>>],
) -> Result<(), String> {
    crate::plot::grouped_bars(
        &dir.join("wall_ratio.svg"),
        &format!("Wall time, ratio to {anchor} (log scale, lower is better)"),
        &format!("wall time / {anchor}'s (no bar: FAILED, TIMEOUT or not run)"),
        workloads,
        names,
        wall,
    )?;
    crate::plot::grouped_bars(
        &dir.join("rss_ratio.svg"),
        &format!("Peak RSS, ratio to {anchor} (log scale, lower is better)"),
        &format!("peak RSS / {anchor}'s (no bar: FAILED, TIMEOUT or not run)"),
        workloads,
        names,
        rss,
    )
}

/// `comparisons replot [DIR]`: draws the two plots of DIR (default: the book's results)
/// again from its `results.json`, with the plot code of this build, without running
/// anything. Reads the ratios the run recorded (`..._ratio_to_anchor`, or
/// `..._ratio_to_mimalloc` in runs from before `--anchor`).
pub fn replot(dir: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = |key: &str| -> Result<Vec<String>, String> {
        v[key]
            .as_array()
            .ok_or(format!("{}: no {key}", path.display()))?
            .iter()
            .map(|x| {
                x["name"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or(format!("{}: {key} without a name", path.display()))
            })
            .collect()
    };
    let names = list("allocators")?;
    let workloads = list("workloads")?;
    let anchor = v["anchor"].as_str().unwrap_or(ANCHOR);
    let results = v["results"].as_array().ok_or(format!("{}: no results", path.display()))?;
    let ratios = |what: &str| -> Vec<Vec<Option<f64>>> {
        workloads
            .iter()
            .map(|w| {
                names
                    .iter()
                    .map(|a| {
                        let r = results
                            .iter()
                            .find(|r| r["workload"] == w.as_str() && r["allocator"] == a.as_str())?;
                        let key = format!("{what}_ratio_to_anchor");
                        let old = format!("{what}_ratio_to_mimalloc");
                        r.get(&key).or_else(|| r.get(&old))?.as_f64()
                    })
                    .collect()
            })
            .collect()
    };
    let w: Vec<&str> = workloads.iter().map(String::as_str).collect();
    plots(dir, anchor, &w, &names, &ratios("wall"), &ratios("rss"))?;
    Ok(vec![dir.join("wall_ratio.svg"), dir.join("rss_ratio.svg")])
}

/// The report in markdown. `standalone`: results.md, with a title and the plots; otherwise
/// tables.md, for a book chapter to include under its own heading (`###` headings, no
/// images, since an included file's relative links would resolve from the chapter).
fn markdown(s: &Summary, standalone: bool) -> String {
    let m = &s.machine;
    let mut out = String::new();
    let h = if standalone { "##" } else { "###" };
    if standalone {
        let _ = writeln!(out, "# Comparison results\n");
    }
    let _ = writeln!(out, "Produced by:\n\n```sh\n{}\n```\n", s.command);
    let _ = writeln!(
        out,
        "Machine: {} cores, {}, {}; {}; measured {} at {}. Anchors: {}.\n",
        m.nproc,
        m.cpu,
        m.kernel,
        m.rustc,
        m.date_utc,
        m.source.describe(),
        env!("ANCHOR_VERSIONS")
    );
    let _ = writeln!(
        out,
        "Options: scale {}, {} reps, {} threads per multi-threaded workload, seed {}, time limit {:.0} s per run. \
         Each run is a child process whose `#[global_allocator]` is the allocator named; the order of \
         allocators rotates every workload and rep. Wall time is measured around the child, CPU time \
         (user + system) and peak RSS come from `wait4`'s rusage of that child.\n",
        s.opts.scale,
        s.opts.reps,
        s.opts.threads,
        s.opts.seed,
        s.opts.timeout.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Read with care: these machines are shared and noisy (+-30%); compare ratios within one run, not across runs. A cell says FAILED when a run exited non-zero, crashed, printed no result or a checksum differing from the other allocators'; TIMEOUT when it was killed at the time limit. \
         Wall time includes the child's start-up and exit (a few ms), so workloads of tens of \
         milliseconds compress the ratios toward 1. The memory metrics read the process's resident \
         set: they include the allocator's metadata and caches and the pages the Rust runtime maps.\n"
    );
    if standalone {
        let _ = writeln!(
            out,
            "![wall time ratio to {}, per workload and allocator](wall_ratio.svg)\n",
            s.opts.anchor
        );
    }
    let anchor = &s.opts.anchor;
    let _ = writeln!(out, "{h} Wall time, ratio to {anchor} (median; lower is better)\n");
    out += &table(s, &ratio_fmt(s, Cell::wall), true);
    out += &geomean_row(s, Cell::wall, true);
    let _ = writeln!(
        out,
        "\n{h} CPU time, ratio to {anchor} within each rep (median over reps; lower is better)\n"
    );
    out += &table(s, &round_fmt(s), true);
    let _ = writeln!(out, "\n{h} Wall time, median (ms)\n");
    out += &table(s, &|w, a| s.cell(w, a).and_then(Cell::wall).map(|v| format!("{:.1}", v * 1000.0)), true);
    let _ = writeln!(out, "\n{h} CPU time (user + system), median (ms)\n");
    out += &table(s, &|w, a| s.cell(w, a).and_then(Cell::cpu).map(|v| format!("{:.1}", v * 1000.0)), true);
    let _ = writeln!(out, "\n{h} Peak RSS, median (MiB)\n");
    if standalone {
        let _ = writeln!(
            out,
            "![peak RSS ratio to {}, per workload and allocator](rss_ratio.svg)\n",
            s.opts.anchor
        );
    }
    out += &table(s, &|w, a| s.cell(w, a).and_then(Cell::rss_mib).map(|v| format!("{v:.1}")), true);
    let metric_names: Vec<(&str, &str)> =
        vec![("heap-efficiency", "efficiency_pct"), ("fragmentation", "frag_pct")];
    let _ = writeln!(
        out,
        "\n{h} Memory metrics\n\nheap-efficiency: live bytes / resident growth at the live budget, % (higher is better). \
         fragmentation: peak resident growth / max live bytes - 1, % (Johnstone & Wilson; lower is better).\n"
    );
    let names = s.names();
    let _ = writeln!(out, "| metric | {} |\n|{}", names.join(" | "), "---|".repeat(names.len() + 1));
    for (w, metric) in metric_names {
        if !s.workloads.contains(&w) {
            continue;
        }
        let vals: Vec<String> = names
            .iter()
            .map(|a| {
                s.cell(w, a)
                    .filter(|c| c.verdict == Verdict::Ok)
                    .and_then(|c| c.metrics.iter().find(|(n, _)| n == metric))
                    .map_or("-".into(), |(_, v)| format!("{v:.1}"))
            })
            .collect();
        let _ = writeln!(out, "| {w} {metric} | {} |", vals.join(" | "));
    }
    let _ = writeln!(out, "\n{h} Workloads\n");
    for w in &s.opts.workloads {
        let _ = writeln!(out, "- **{}** ({}): {}", w.name, w.group, w.about);
    }
    for w in &s.opts.c_workloads {
        let _ = writeln!(out, "- **{}** (C, each allocator preloaded): {}", w.name, w.about);
    }
    if !s.opts.c_workloads.is_empty() {
        let _ = writeln!(
            out,
            "\nC workloads run the program with LD_PRELOAD: the strategies through libstratalloc_preload.so \
             (STRATALLOC_STRATEGY), mimalloc through {} (Debian's libmimalloc2.0), system with no preload (glibc). \
             Their checksum is a hash of the program's output, compared with the system run's.",
            crate::cload::MIMALLOC_SO
        );
    }
    out += &notes(s, h);
    out
}

fn to_json(s: &Summary) -> serde_json::Value {
    let mut results = Vec::new();
    for w in &s.workloads {
        for (a, kind) in &s.allocators {
            let Some(c) = s.cell(w, a) else { continue };
            let (verdict, reason) = match &c.verdict {
                Verdict::Ok => ("ok", None),
                Verdict::Failed(why) => ("failed", Some(why.clone())),
                Verdict::Timeout => ("timeout", None),
            };
            let metrics: serde_json::Map<String, serde_json::Value> =
                c.metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
            results.push(serde_json::json!({
                "workload": w, "allocator": a, "kind": kind, "verdict": verdict, "reason": reason,
                "preloaded": s.opts.c_workloads.iter().any(|c| c.name == *w),
                "wall_s": c.wall_s, "cpu_s": c.cpu_s, "maxrss_kib": c.maxrss_kib,
                "median_wall_s": c.wall(), "median_cpu_s": c.cpu(), "median_maxrss_mib": c.rss_mib(),
                "wall_ratio_to_anchor": s.ratio(w, a, Cell::wall),
                "rss_ratio_to_anchor": s.ratio(w, a, Cell::rss_mib),
                "cpu_round_ratio_to_anchor": s.round_ratio(w, a),
                "checksum": c.checksum, "metrics": metrics,
            }));
        }
    }
    serde_json::json!({
        "command": s.command,
        "machine": s.machine.json(),
        "anchor_versions": env!("ANCHOR_VERSIONS"),
        "anchor": s.opts.anchor,
        "options": {
            "quick": s.opts.quick, "scale": s.opts.scale, "reps": s.opts.reps,
            "threads": s.opts.threads, "seed": s.opts.seed, "timeout_s": s.opts.timeout.as_secs_f64(),
        },
        "allocators": s.allocators.iter().map(|(n, k)| serde_json::json!({"name": n, "kind": k})).collect::<Vec<_>>(),
        "workloads": s.opts.workloads.iter().map(|w| serde_json::json!({"name": w.name, "group": w.group, "about": w.about}))
            .chain(s.opts.c_workloads.iter().map(|w| serde_json::json!({"name": w.name, "group": "C, preloaded", "about": w.about})))
            .collect::<Vec<_>>(),
        "results": results,
    })
}
