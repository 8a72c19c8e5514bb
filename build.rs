//! Compiles the initial-exec thread-local blocks of Tiered (strategies/tiered/tls_block.c) and
//! of the thread cache (strategies/layers/thread_cache/tls_block.c) when the
//! `initial-exec-tls` feature is on and the target is Linux (see src/static_tls.rs).
fn main() {
    println!("cargo::rerun-if-changed=strategies/tiered/tls_block.c");
    println!("cargo::rerun-if-changed=strategies/layers/thread_cache/tls_block.c");
    let on = std::env::var_os("CARGO_FEATURE_INITIAL_EXEC_TLS").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if on {
        #[cfg(feature = "initial-exec-tls")]
        cc::Build::new()
            .file("strategies/tiered/tls_block.c")
            .file("strategies/layers/thread_cache/tls_block.c")
            .compile("stratalloc_tls_block");
    }
}
