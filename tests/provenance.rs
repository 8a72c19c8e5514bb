//! Strict provenance, checked on the stable toolchain: the library never makes a pointer out
//! of an integer.
//!
//! The nightly lints `fuzzy_provenance_casts` and `lossy_provenance_casts` say it exactly, and
//! `.ci/sanitizers.sh` runs them where a nightly toolchain is installed. Stable Rust has no
//! such lint, so this test reads the library's source and refuses what would break the rule:
//! - an `as *mut` / `as *const` cast of any kind (pointer-to-pointer casts are written
//!   `.cast()`, `.cast_mut()`, `ptr::from_ref`, so every remaining `as` cast to a pointer would
//!   turn an integer into one);
//! - `.as_ptr() as usize` and the like (pointer-to-integer is written `.addr()`, which keeps
//!   the provenance out of the integer instead of exposing it);
//! - the exposed-provenance functions anywhere but the `Mmap` source, where addresses come
//!   back from system calls;
//! - `transmute` (between pointers and integers it would hide the same casts).

use std::fs;
use std::path::{Path, PathBuf};

/// Where the exposed-provenance functions may appear: the syscall boundary.
const EXPOSED_ALLOWED: &[&str] = &["src/source/mmap.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code part of a line: without a `//` comment (a string holding `//` is rare enough in
/// this code base that the test would only be stricter for it).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Everything wrong with one line of `file`.
fn problems(file: &str, line: &str) -> Vec<&'static str> {
    let code = code_of(line);
    let mut out = Vec::new();
    let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    if squeezed.contains("as *mut") || squeezed.contains("as *const") {
        out.push("an `as` cast to a raw pointer (use .cast(), ptr::from_ref, with_addr or map_addr)");
    }
    for pat in [".as_ptr() as usize", "as_mut_ptr() as usize", ".as_ptr() as u64"] {
        if squeezed.contains(pat) {
            out.push("a pointer cast to an integer with `as` (use .addr())");
        }
    }
    let exposed = ["with_exposed_provenance", "from_exposed_provenance", "expose_provenance"];
    if exposed.iter().any(|p| code.contains(p)) && !EXPOSED_ALLOWED.iter().any(|a| file.ends_with(a)) {
        out.push("exposed provenance outside the Mmap source");
    }
    if code.contains("transmute") {
        out.push("transmute (hides pointer/integer casts)");
    }
    out
}

#[test]
fn library_keeps_strict_provenance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "strategies"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), root.display());
    let mut found = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        // Unit tests inside the library may cast as they like; they are not the allocator.
        if rel.ends_with("/tests.rs") {
            continue;
        }
        let text = fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for p in problems(&rel, line) {
                found.push(format!("{rel}:{}: {p}\n    {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "{} provenance problem(s):\n{}", found.len(), found.join("\n"));
}

#[test]
fn the_scan_finds_what_it_looks_for() {
    let bad = [
        "let p = addr as *mut u8;",
        "let q = (base + 8) as *const usize;",
        "let a = ptr.as_ptr() as usize;",
        "let p = core::ptr::with_exposed_provenance_mut::<u8>(a);",
        "let x: usize = unsafe { core::mem::transmute(p) };",
    ];
    for line in bad {
        assert!(!problems("strategies/x.rs", line).is_empty(), "missed: {line}");
    }
    let good = [
        "let p = base.add(off); // was: addr as *mut u8",
        "let q = p.cast::<usize>();",
        "let a = ptr.addr();",
        "let p = base.with_addr(a);",
    ];
    for line in good {
        assert!(problems("strategies/x.rs", line).is_empty(), "false alarm: {line}");
    }
    assert!(problems("src/source/mmap.rs", "let p = ptr::with_exposed_provenance_mut(a);").is_empty());
}
