//! Finding the runner bins: built by cargo when the driver runs under cargo (`$CARGO` is
//! set), else taken from beside the driver's executable; each asked `--describe`.

use std::path::{Path, PathBuf};
use std::process::Command;

use comparisons::workloads;

use crate::Opts;

/// One runnable allocator.
#[derive(Clone, Debug)]
pub struct Runner {
    pub name: String,
    pub kind: String,
    pub path: PathBuf,
}

/// What was found.
#[derive(Clone, Debug, Default)]
pub struct RunnerSet {
    /// Runners to use, in table order (strategies, then anchors, then others).
    pub runners: Vec<Runner>,
    /// Allocators of the table that run only when named (variants, test allocators).
    pub on_request: Vec<Runner>,
    /// The trace recorder, if built.
    pub recorder: Option<PathBuf>,
    /// Where the bins are (the trace file goes beside them).
    pub dir: PathBuf,
}

fn build_with_cargo(cargo: &str) -> Result<(), String> {
    let mut cmd = Command::new(cargo);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    cmd.args(["build", "--manifest-path", manifest, "-p", "comparisons", "--bins"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("building the runner bins: {cmd:?}");
    let st = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("building the runners failed ({st})")) }
}

fn describe(path: &Path) -> Option<(String, String)> {
    let out = Command::new(path).arg("--describe").output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["name"].as_str()?.to_string(), v["kind"].as_str()?.to_string()))
}

/// Whether `file` is a runner this package builds: a slot `alloc_NN` or the test allocator.
/// (Other `alloc_*` files in a shared target directory are stale runners of older builds.)
fn is_runner_bin(file: &str) -> bool {
    let slot =
        file.strip_prefix("alloc_").is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()));
    slot || file == "alloc_broken_overlap"
}

/// Table order, then the others (the test allocator).
fn rank(name: &str) -> usize {
    let table = workloads::allocators::NAMES;
    table.iter().position(|(n, _)| *n == name).unwrap_or(table.len())
}

/// The suffix of the runners of `--ab`'s build.
pub const B_SUFFIX: &str = "@b";

/// The runners in `dir`, each named with `suffix`.
fn runners_in(dir: &Path, suffix: &str) -> Result<Vec<Runner>, String> {
    let mut runners = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        // Another build may predate the slots: its runners are alloc_<name>.
        let older = !suffix.is_empty() && file.starts_with("alloc_") && !file.contains(['.', '-']);
        if !is_runner_bin(&file) && !older {
            continue;
        }
        let Some((name, kind)) = describe(&e.path()) else { continue };
        let name = name + suffix;
        if kind != "spare" && kind != "absent" && !runners.iter().any(|r: &Runner| r.name == name) {
            runners.push(Runner { name, kind, path: e.path() });
        }
    }
    Ok(runners)
}

/// Finds, builds if needed, and describes the runners; applies `--allocators` (a name there
/// selects its `@b` runner too).
pub fn discover(opts: &Opts) -> Result<RunnerSet, String> {
    if let (true, None, Ok(cargo)) = (opts.build, &opts.bin_dir, std::env::var("CARGO")) {
        build_with_cargo(&cargo)?;
    }
    let dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .ok_or("no directory for the driver")?
            .to_path_buf(),
    };
    let mut set = RunnerSet { dir: dir.clone(), ..Default::default() };
    set.recorder = Some(dir.join("trace_record")).filter(|p| p.exists());
    set.runners = runners_in(&dir, "")?;
    if let Some(b) = &opts.ab {
        set.runners.extend(runners_in(b, B_SUFFIX)?);
    }
    set.runners.sort_by_key(|r| (rank(r.name.trim_end_matches(B_SUFFIX)), r.name.ends_with(B_SUFFIX)));
    let by_default = |r: &Runner| r.kind == "strategy" || r.kind == "anchor";
    match &opts.allocators {
        None => {
            set.on_request = set.runners.iter().filter(|r| !by_default(r)).cloned().collect();
            set.runners.retain(by_default);
        }
        Some(want) => {
            let wanted = |r: &Runner| want.iter().any(|w| r.name == *w || r.name == format!("{w}{B_SUFFIX}"));
            for w in want {
                if !set.runners.iter().any(|r| &r.name == w) {
                    return Err(format!("allocator {w}: unknown; try --list"));
                }
            }
            let (named, rest) = set.runners.into_iter().partition(wanted);
            (set.runners, set.on_request) = (named, rest);
        }
    }
    if set.runners.is_empty() {
        return Err(format!(
            "no runner bins in {} (build with cargo build -p comparisons --bins)",
            dir.display()
        ));
    }
    Ok(set)
}

/// `--list`.
pub fn print_list(set: &RunnerSet) {
    println!("allocators:");
    for r in &set.runners {
        println!("  {:<16} {}", r.name, r.kind);
    }
    for r in &set.on_request {
        println!("  {:<16} {} (runs when named in --allocators)", r.name, r.kind);
    }
    println!("workloads:");
    for w in workloads::ALL {
        println!("  {:<16} {:<16} {}", w.name, w.group, w.about);
    }
    for w in workloads::targets::TARGETS {
        println!("  {:<16} {:<16} {} (runs when named in --workloads)", w.name, w.group, w.about);
    }
    for w in crate::cload::ALL {
        println!("  {:<16} {:<16} {}", w.name, "C, preloaded", w.about);
    }
}
