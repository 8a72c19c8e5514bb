//! The driver reports a faulty allocator as FAILED (never as fast), a run over the time limit
//! as TIMEOUT, refuses unknown allocators, and does not fail a sound allocator.

use std::path::PathBuf;
use std::process::Command;

mod support;
use support::{out_dir, verdict};

fn drive(allocators: &str, workloads: &str, out: &PathBuf) -> (std::process::Output, serde_json::Value) {
    drive_with(allocators, workloads, out, "0.05", "120")
}

fn drive_with(
    allocators: &str,
    workloads: &str,
    out: &PathBuf,
    scale: &str,
    timeout: &str,
) -> (std::process::Output, serde_json::Value) {
    drive_in(Command::new(env!("CARGO_BIN_EXE_comparisons")), allocators, workloads, out, scale, timeout)
}

fn drive_in(
    mut driver: Command,
    allocators: &str,
    workloads: &str,
    out: &PathBuf,
    scale: &str,
    timeout: &str,
) -> (std::process::Output, serde_json::Value) {
    let o = driver
        .args(["--no-build", "--allocators", allocators, "--workloads", workloads])
        .args(["--reps", "2", "--scale", scale, "--threads", "2", "--timeout", timeout, "--out"])
        .arg(out)
        .output()
        .expect("driver runs");
    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json written");
    (o, serde_json::from_str(&json).expect("valid JSON"))
}

#[test]
fn overlapping_blocks_are_reported_failed() {
    let out = out_dir("broken");
    let (o, j) = drive("broken-overlap,system", "larson,glibc-simple,btree-hash", &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "the driver must exit non-zero when an allocator fails:\n{stdout}");
    for w in ["larson", "glibc-simple", "btree-hash"] {
        assert_eq!(verdict(&j, w, "broken-overlap"), "failed", "{w} did not catch the broken allocator");
        assert_eq!(verdict(&j, w, "system"), "ok", "{w} failed the system allocator");
    }
    let table_row = stdout.lines().find(|l| l.starts_with("larson")).expect("table row");
    assert!(table_row.contains("FAILED"), "table row: {table_row}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn every_workload_passes_with_the_system_allocator() {
    let out = out_dir("sound");
    let workloads = comparisons::workloads::ALL.iter().chain(comparisons::workloads::targets::TARGETS);
    let all: Vec<&str> = workloads.map(|w| w.name).collect();
    let (o, j) = drive("system", &all.join(","), &out);
    let failed: Vec<String> = all
        .iter()
        .filter(|w| verdict(&j, w, "system") != "ok")
        .map(|w| {
            format!("{w}: {} ({})", verdict(&j, w, "system"), support::result(&j, w, "system")["reason"])
        })
        .collect();
    assert!(
        o.status.success() && failed.is_empty(),
        "failed cells: {failed:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_run_over_the_time_limit_is_killed_and_reported() {
    // glibc-simple at scale 200 makes 300 million allocations: far beyond 0.3 s in any build.
    let out = out_dir("timeout");
    let (_, j) = drive_with("system", "glibc-simple", &out, "200", "0.3");
    assert_eq!(verdict(&j, "glibc-simple", "system"), "timeout");
    let r = &j["results"][0];
    assert_eq!(r["wall_s"].as_array().map(Vec::len), Some(0), "a killed run is not timed: {r}");
    let _ = std::fs::remove_dir_all(out);
}

/// `git` run in this crate's directory, or None where git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").arg("-C").arg(env!("CARGO_MANIFEST_DIR")).args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn results_record_the_commit_they_measured() {
    let out = out_dir("commit");
    let (o, j) = drive("system", "glibc-simple", &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let machine = &j["machine"];
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => {
            assert_eq!(machine["commit"], head.as_str(), "results.json: {machine}");
            let tree = machine["tree"].as_str().unwrap_or_default();
            assert!(tree == "clean" || tree == "dirty", "results.json: {machine}");
            let md = std::fs::read_to_string(out.join("results.md")).expect("results.md written");
            assert!(md.contains(&format!("at commit {} ({tree} tree)", &head[..12])), "{md}");
        }
        None => assert_eq!(machine["commit"], "unknown", "no git here, yet: {machine}"),
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn without_git_the_commit_is_unknown_and_the_run_completes() {
    // An empty PATH: the driver finds no `git` (nor `uname` or `date`), as on a machine
    // without them; --no-build needs no cargo. The run must still complete and say so.
    let out = out_dir("nogit");
    let empty = out_dir("nogit-path");
    std::fs::create_dir_all(&empty).unwrap();
    let mut driver = Command::new(env!("CARGO_BIN_EXE_comparisons"));
    driver.env("PATH", &empty);
    let (o, j) = drive_in(driver, "system", "glibc-simple", &out, "0.05", "120");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(verdict(&j, "glibc-simple", "system"), "ok");
    assert_eq!(j["machine"]["commit"], "unknown", "{}", j["machine"]);
    assert_eq!(j["machine"]["tree"], "unknown", "{}", j["machine"]);
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn unknown_allocators_are_refused() {
    let o = Command::new(env!("CARGO_BIN_EXE_comparisons"))
        .args(["--no-build", "--allocators", "no-such-allocator", "--out"])
        .arg(out_dir("unknown"))
        .output()
        .expect("driver runs");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-allocator: unknown"));
}

#[test]
fn every_row_of_the_table_has_a_runner_slot() {
    let manifest = include_str!("../Cargo.toml");
    let slots = (0..).take_while(|k| manifest.contains(&format!("\"alloc_{k:02}\""))).count();
    let rows = comparisons::workloads::allocators::NAMES.len();
    assert!(
        rows <= slots,
        "the allocator table has {rows} rows but comparisons/harness/Cargo.toml has {slots} runner \
         slots: add lines like {{ name = \"alloc_{slots:02}\", path = \"src/runner_bin.rs\", test = false, bench = false }}"
    );
}
