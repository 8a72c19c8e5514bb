//! C workloads: real programs pass with glibc and with a strategy preloaded, and a broken
//! preload library (blocks that overlap) is reported FAILED. They need gcc, and the first
//! python3 and the preload library named by `STRATALLOC_PRELOAD_LIB` (.ci/steps/70-harness.sh
//! builds it and sets it); without them each test says in one line that it skips, so that
//! `cargo test` neither installs tools nor builds another profile.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

mod support;
use support::{out_dir, result, verdict};

/// Says in one line that `test` skips, and why: straight to stderr, since the test harness
/// captures `eprintln!` and this line is for whoever runs a plain `cargo test`.
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {test} ({why})");
}

/// Whether `tool --version` runs; if not, says that `test` skips.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        skip(test, &format!("{tool} is not installed"));
    }
    ok
}

/// Runs the driver; `lib` replaces the stratalloc preload library when given.
fn drive(allocators: &str, workloads: &str, out: &Path, lib: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_comparisons"));
    cmd.args(["--no-build", "--allocators", allocators, "--workloads", workloads])
        .args(["--reps", "1", "--scale", "0.2", "--threads", "2", "--out"])
        .arg(out);
    if let Some(lib) = lib {
        cmd.env("STRATALLOC_PRELOAD_LIB", lib);
    }
    let o = cmd.output().expect("driver runs");
    let json = std::fs::read_to_string(out.join("results.json"))
        .unwrap_or_else(|_| panic!("no results.json: {}", String::from_utf8_lossy(&o.stderr)));
    serde_json::from_str(&json).expect("valid JSON")
}

#[test]
fn c_workloads_pass_with_glibc_and_a_preloaded_strategy() {
    let test = "C workloads with a preloaded strategy";
    if std::env::var_os("STRATALLOC_PRELOAD_LIB").is_none() {
        skip(test, "set STRATALLOC_PRELOAD_LIB to a built libstratalloc_preload.so");
        return;
    }
    if !have("gcc", test) || !have("python3", test) {
        return;
    }
    let out = out_dir("sound");
    let j = drive("system,segregated-fit,talc", "c-larson,c-python", &out, None);
    for w in ["c-larson", "c-python"] {
        for a in ["system", "segregated-fit"] {
            let r = result(&j, w, a);
            assert_eq!(verdict(&j, w, a), "ok", "{w} / {a}: {}", r["reason"]);
            assert_eq!(r["preloaded"], true);
        }
        // talc has no preload library: no cell, never a made-up one.
        assert!(
            !j["results"].as_array().unwrap().iter().any(|r| r["workload"] == w && r["allocator"] == "talc")
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

/// A malloc whose blocks come round a 64 KiB arena again while still live.
const OVERLAPPING_MALLOC: &str = r#"
#include <stddef.h>
#include <string.h>
static char arena[1 << 16] __attribute__((aligned(16)));
static size_t top;
void *malloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof arena) return NULL;
    if (top + n > sizeof arena) top = 0;
    void *p = arena + top;
    top += n;
    return p;
}
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) { void *p = malloc(a * b); if (p) memset(p, 0, a * b); return p; }
void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (q && p) memmove(q, p, n < 16 ? n : 16);
    return q;
}
"#;

#[test]
fn a_broken_preload_library_is_reported_failed() {
    if !have("gcc", "a broken preload library") {
        return;
    }
    let out = out_dir("broken");
    std::fs::create_dir_all(&out).unwrap();
    let src = out.join("overlap.c");
    let lib = out.join("liboverlap.so");
    std::fs::write(&src, OVERLAPPING_MALLOC).unwrap();
    let st = Command::new("gcc").args(["-O1", "-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status();
    assert!(st.expect("gcc runs").success(), "compiling the broken malloc failed");
    let j = drive("system,first-fit", "c-larson", &out.join("results"), Some(&lib));
    assert_eq!(verdict(&j, "c-larson", "system"), "ok", "{}", result(&j, "c-larson", "system")["reason"]);
    assert_eq!(verdict(&j, "c-larson", "first-fit"), "failed", "overlapping blocks went unnoticed");
    let _ = std::fs::remove_dir_all(out);
}
