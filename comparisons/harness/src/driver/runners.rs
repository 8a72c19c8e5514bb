//! Finding the runner bins: built by cargo when the driver runs under cargo (`$CARGO` is
//! set), else taken from beside the driver's executable; each asked `--describe`.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    /// Bins whose allocator is not in the table yet.
    pub absent: Vec<String>,
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

fn rank(name: &str, kind: &str) -> (usize, usize) {
    let table = comparisons::allocators::table();
    let strategies = stratalloc::StrategyKind::NAMES;
    match (strategies.iter().position(|n| *n == name), table.iter().position(|(n, _)| *n == name)) {
        (Some(i), _) => (0, i),
        (None, Some(i)) => (1, i),
        _ => (if kind == "test" { 3 } else { 2 }, 0),
    }
}

/// Finds, builds if needed, and describes the runners; applies `--allocators`.
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
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if file == "trace_record" {
            set.recorder = Some(path);
        } else if file.starts_with("alloc_") && !file.contains('.') && !file.contains('-') {
            let Some((name, kind)) = describe(&path) else { continue };
            if kind == "absent" {
                set.absent.push(name);
            } else {
                set.runners.push(Runner { name, kind, path });
            }
        }
    }
    set.runners.sort_by_key(|r| rank(&r.name, &r.kind));
    set.absent.sort_by_key(|n| rank(n, "absent"));
    match &opts.allocators {
        None => set.runners.retain(|r| r.kind != "test"),
        Some(want) => {
            for w in want {
                if !set.runners.iter().any(|r| &r.name == w) {
                    let why = if set.absent.contains(w) {
                        "absent (not in the allocator table)"
                    } else {
                        "unknown"
                    };
                    return Err(format!("allocator {w}: {why}; try --list"));
                }
            }
            set.runners.retain(|r| want.contains(&r.name));
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
    for a in &set.absent {
        println!("  {a:<16} absent (not in the allocator table yet)");
    }
    println!("workloads:");
    for w in comparisons::workloads::ALL {
        println!("  {:<16} {:<16} {}", w.name, w.group, w.about);
    }
    for w in crate::cload::ALL {
        println!("  {:<16} {:<16} {}", w.name, "C, preloaded", w.about);
    }
}
