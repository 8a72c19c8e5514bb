//! Compiles the entry state's initial-exec thread-local block (src/entry_tls.c; see entry.rs
//! and stratalloc's src/static_tls.rs).
fn main() {
    println!("cargo::rerun-if-changed=src/entry_tls.c");
    cc::Build::new().file("src/entry_tls.c").compile("stratalloc_preload_entry_tls");
}
