//! Real programs (python3, sqlite3, git, gcc, g++, perl) and the C tests (edge cases, bad frees,
//! fork stress) under every strategy of the preload library, compared with runs without it:
//! tests/real_programs.sh.
//!
//! The programs are not Rust dependencies, so `cargo test` neither installs them nor builds
//! the library in another profile: this test runs the script on the library named by
//! `STRATALLOC_PRELOAD_LIB`, and otherwise says in one line that it skips.
//! `.ci/steps/50-preload.sh` installs the tools, builds the library and runs the script;
//! by hand:
//!
//! ```text
//! cargo build --release -p stratalloc-preload
//! STRATALLOC_PRELOAD_LIB=$PWD/target/release/libstratalloc_preload.so cargo test -p stratalloc-preload
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn real_programs_under_every_strategy() {
    let Some(lib) = std::env::var_os("STRATALLOC_PRELOAD_LIB").map(PathBuf::from) else {
        // Straight to stderr: the test harness captures `eprintln!`, and this line is for
        // whoever runs a plain `cargo test`.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: real-program tests (set STRATALLOC_PRELOAD_LIB to a built \
             libstratalloc_preload.so, or run .ci/steps/50-preload.sh)"
        );
        return;
    };
    assert!(lib.exists(), "STRATALLOC_PRELOAD_LIB={} not found", lib.display());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/real_programs.sh");
    let status = Command::new("bash").arg(&script).arg(&lib).status().expect("run real_programs.sh");
    assert!(status.success(), "real_programs.sh failed ({status}); see its output above");
}
