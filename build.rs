//! Compiles the initial-exec thread-slot blocks of Tiered and of the thread cache
//! (src/tls_blocks.c) when the `initial-exec-tls` feature is on and the target is Linux (see
//! src/static_tls.rs).
fn main() {
    println!("cargo::rerun-if-changed=src/tls_blocks.c");
    let on = std::env::var_os("CARGO_FEATURE_INITIAL_EXEC_TLS").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if on {
        #[cfg(feature = "initial-exec-tls")]
        cc::Build::new().file("src/tls_blocks.c").compile("stratalloc_tls_block");
    }
}
