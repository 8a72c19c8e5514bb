//! `cargo test -p stratalloc-preload`: runs tests/real_programs.sh (real programs and the C
//! edge-case test under every strategy, compared with runs without the library) on the
//! library cargo built for this test run.
//!
//! The library is the file named by `STRATALLOC_PRELOAD_LIB`, or else the release build,
//! which this test brings up to date with `cargo build --release -p stratalloc-preload`
//! (cargo does not build a cdylib-only package for its integration tests).

use std::path::PathBuf;
use std::process::Command;

/// The cdylib cargo built alongside this test: target/<profile>/libstratalloc_preload.so.
fn library() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATALLOC_PRELOAD_LIB") {
        return PathBuf::from(path);
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "stratalloc-preload"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release -p stratalloc-preload failed");
    // This test runs as target/<profile>/deps/real_programs-<hash>.
    let exe = std::env::current_exe().expect("test executable path");
    let target_dir = exe.ancestors().nth(3).expect("target/<profile>/deps/<test>");
    target_dir.join("release/libstratalloc_preload.so")
}

#[test]
fn real_programs_under_every_strategy() {
    let lib = library();
    assert!(lib.exists(), "{} not found", lib.display());
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    // The tools the programs need: install-tools.sh installs whichever are missing (Debian
    // packages; needs root then, and fails clearly without it) and does nothing otherwise.
    let status = Command::new("bash").arg(tests.join("install-tools.sh")).status();
    assert!(status.is_ok_and(|s| s.success()), "gcc, g++, python3, sqlite3, git and perl are needed");
    let script = tests.join("real_programs.sh");
    let status = Command::new("bash").arg(&script).arg(&lib).status().expect("run real_programs.sh");
    assert!(status.success(), "real_programs.sh failed ({status}); see its output above");
}
