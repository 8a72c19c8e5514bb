//! C workloads: real programs (python3, sqlite3, git, gcc) and a small C program run with
//! each allocator preloaded as their malloc (`LD_PRELOAD`), timed like the Rust workloads.
//!
//! Glossary: a *C workload* is a command line run once per (rep, allocator); a *preload* is
//! how an allocator becomes the program's malloc: `system` preloads nothing (glibc), the five
//! strategies preload `libstratalloc_preload.so` with `STRATALLOC_STRATEGY` set, and
//! `mimalloc` preloads Debian's `libmimalloc.so.2` (package libmimalloc2.0) when that file
//! exists. Rust-only allocators (talc, linked-list) have no preload and no C cells.
//!
//! Checks: a run that exits non-zero or crashes is FAILED; otherwise its checksum is the
//! FNV-1a hash of its stdout, which the report compares with the `system` run's, so a preload
//! that changes a program's output is FAILED too. Every command prints deterministic output
//! (fixed dates, names and seeds in the scripts of comparisons/preload/tests/programs/).
//!
//! Set-up per run: a fresh scratch directory (sqlite's database, git's repository, gcc's
//! output), removed afterwards. A workload whose tool is not on PATH is left out with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

use comparisons::workloads;

use crate::Opts;

/// Debian's mimalloc preload library (package libmimalloc2.0).
pub const MIMALLOC_SO: &str = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2";

/// What a C workload's command line is built from.
pub struct Env<'a> {
    /// comparisons/preload/tests/programs.
    pub programs: &'a Path,
    /// The scratch directory of this run.
    pub scratch: &'a Path,
    /// The C program the driver compiled (for c-larson).
    pub larson: &'a Path,
    pub opts: &'a Opts,
}

/// A real program run under each preloaded allocator.
#[derive(Debug)]
pub struct CWorkload {
    /// Name on the command line and in tables (`c-...`).
    pub name: &'static str,
    /// One line on what it does.
    pub about: &'static str,
    /// Programs that must be on PATH.
    pub tools: &'static [&'static str],
    /// The command line (program first).
    pub argv: fn(&Env) -> Vec<String>,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Every C workload, in table order.
pub const ALL: &[CWorkload] = &[
    CWorkload {
        name: "c-larson",
        about: "larson-like C program (harness/c/larson.c, compiled by the driver): 8..1000 B slots replaced \
                across respawned threads, realloc/calloc, every block verified",
        tools: &["gcc"],
        argv: |e| {
            vec![s(e.larson), e.opts.scale.to_string(), e.opts.threads.to_string(), e.opts.seed.to_string()]
        },
    },
    CWorkload {
        name: "c-python",
        about: "python3 running a threaded workload (dicts, lists, JSON, queues; 8 threads)",
        tools: &["python3"],
        argv: |e| vec!["python3".into(), s(&e.programs.join("threaded.py"))],
    },
    CWorkload {
        name: "c-sqlite",
        about: "sqlite3 running a query script on a fresh database file",
        tools: &["sqlite3"],
        argv: |e| {
            let script =
                format!("sqlite3 '{}' < '{}'", s(&e.scratch.join("t.db")), s(&e.programs.join("query.sql")));
            vec!["sh".into(), "-c".into(), script]
        },
    },
    CWorkload {
        name: "c-git",
        about: "git session: 40 commits, branches, merge, gc, fsck, log, blame, grep, archive",
        tools: &["git", "bash"],
        argv: |e| vec!["bash".into(), s(&e.programs.join("git_workload.sh")), s(e.scratch)],
    },
    CWorkload {
        name: "c-gcc",
        about: "gcc -O2 compiling a small C file, then running it",
        tools: &["gcc"],
        argv: |e| {
            let exe = s(&e.scratch.join("hello"));
            let script = format!("gcc -O2 -o '{exe}' '{}' && '{exe}'", s(&e.programs.join("hello.c")));
            vec!["sh".into(), "-c".into(), script]
        },
    },
];

/// The C workload named `name`.
pub fn find(name: &str) -> Option<&'static CWorkload> {
    ALL.iter().find(|w| w.name == name)
}

/// How one allocator is preloaded.
#[derive(Clone, Debug)]
pub struct Preload {
    pub allocator: String,
    /// Library for LD_PRELOAD, none for `system`.
    pub lib: Option<PathBuf>,
    /// STRATALLOC_STRATEGY, for the strategies.
    pub strategy: Option<&'static str>,
}

impl Preload {
    /// Sets the environment of `cmd` for this allocator.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_remove("LD_PRELOAD").env_remove("STRATALLOC_STRATEGY");
        if let Some(lib) = &self.lib {
            cmd.env("LD_PRELOAD", lib);
        }
        if let Some(st) = self.strategy {
            cmd.env("STRATALLOC_STRATEGY", st);
        }
    }
}

/// What the C workloads need, found once per invocation.
pub struct CSetup {
    pub workloads: Vec<&'static CWorkload>,
    pub preloads: Vec<Preload>,
    pub programs: PathBuf,
    pub larson: PathBuf,
    /// Scratch directories go under here.
    pub scratch: PathBuf,
    /// Workloads or allocators left out, and why.
    pub notes: Vec<String>,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.ancestors().nth(2).unwrap_or(harness).to_path_buf()
}

/// The stratalloc preload library: `$STRATALLOC_PRELOAD_LIB`, else the release build in the
/// target directory the runner bins are in (`<target>/<profile>/..`).
fn stratalloc_lib(bin_dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("STRATALLOC_PRELOAD_LIB") {
        return PathBuf::from(p);
    }
    let target = bin_dir.parent().unwrap_or(bin_dir);
    target.join("release/libstratalloc_preload.so")
}

fn build_preload(cargo: &str) -> Result<(), String> {
    let mut cmd = Command::new(cargo);
    let manifest = workspace().join("Cargo.toml");
    cmd.arg("build").arg("--manifest-path").arg(manifest).args(["--release", "-p", "stratalloc-preload"]);
    eprintln!("building the preload library: {cmd:?}");
    let st = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("building the preload library failed ({st})")) }
}

fn compile_larson(out: &Path) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/larson.c");
    let st = Command::new("gcc")
        .args(["-O2", "-pthread", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("gcc {} failed ({st})", src.display())) }
}

/// The preloads of the allocators selected (`names`, table order), with notes for those
/// that have none.
fn preloads(names: &[String], lib: &Path, notes: &mut Vec<String>) -> Vec<Preload> {
    let mut out = Vec::new();
    for name in names {
        // The preload library serves every strategy and variant of the table.
        let strategy = workloads::allocators::NAMES
            .iter()
            .find(|(n, kind)| *n == name.as_str() && *kind != "anchor")
            .map(|(n, _)| *n);
        let p = match (name.as_str(), strategy) {
            (_, Some(st)) => {
                Preload { allocator: name.clone(), lib: Some(lib.to_path_buf()), strategy: Some(st) }
            }
            ("system", _) => Preload { allocator: name.clone(), lib: None, strategy: None },
            ("mimalloc", _) if Path::new(MIMALLOC_SO).exists() => {
                Preload { allocator: name.clone(), lib: Some(MIMALLOC_SO.into()), strategy: None }
            }
            ("mimalloc", _) => {
                notes.push(format!(
                    "mimalloc has no C cells: {MIMALLOC_SO} is not installed (apt-get install libmimalloc2.0)"
                ));
                continue;
            }
            _ => continue,
        };
        out.push(p);
    }
    let rust_only: Vec<&str> = names
        .iter()
        .filter(|n| !out.iter().any(|p| &p.allocator == *n) && *n != "mimalloc")
        .map(|n| n.as_str())
        .collect();
    if !rust_only.is_empty() {
        notes.push(format!("{} have no preload library: no C cells", rust_only.join(", ")));
    }
    out
}

/// Prepares the selected C workloads: drops those whose tools are missing, builds the
/// preload library (under cargo, unless `--no-build`), compiles the C program.
pub fn setup(opts: &Opts, allocators: &[String], bin_dir: &Path) -> Result<Option<CSetup>, String> {
    if opts.c_workloads.is_empty() {
        return Ok(None);
    }
    let mut notes = Vec::new();
    let mut workloads = Vec::new();
    for w in &opts.c_workloads {
        match w.tools.iter().find(|t| !on_path(t)) {
            Some(t) => notes.push(format!("{} skipped: {t} is not installed", w.name)),
            None => workloads.push(*w),
        }
    }
    if let (true, None, Ok(cargo)) = (opts.build, &opts.bin_dir, std::env::var("CARGO")) {
        build_preload(&cargo)?;
    }
    let lib = stratalloc_lib(bin_dir);
    if !lib.exists() {
        return Err(format!(
            "{} not found (cargo build --release -p stratalloc-preload, or set STRATALLOC_PRELOAD_LIB)",
            lib.display()
        ));
    }
    let scratch = bin_dir.join("comparisons-c");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let larson = scratch.join(format!("larson-{}", std::process::id()));
    if workloads.iter().any(|w| w.name == "c-larson") {
        compile_larson(&larson)?;
    }
    let preloads = preloads(allocators, &lib, &mut notes);
    let programs = workspace().join("comparisons/preload/tests/programs");
    Ok(Some(CSetup { workloads, preloads, programs, larson, scratch, notes }))
}

impl CSetup {
    /// The command of one run of `w` under `p`, with its scratch directory.
    pub fn command(
        &self,
        opts: &Opts,
        w: &CWorkload,
        p: &Preload,
        run: usize,
    ) -> Result<(Command, PathBuf), String> {
        let dir = self.scratch.join(format!("run-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let env = Env { programs: &self.programs, scratch: &dir, larson: &self.larson, opts };
        let argv = (w.argv)(&env);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(&dir);
        p.apply(&mut cmd);
        Ok((cmd, dir))
    }
}

impl Drop for CSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.larson);
    }
}

/// FNV-1a 64 of a run's stdout: its checksum.
pub fn checksum(stdout: &str) -> String {
    let h =
        stdout.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}
