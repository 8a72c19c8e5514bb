/* The thread-slot blocks of the initial-exec TLS model, for builds with the
 * `initial-exec-tls` feature (the preload library): see src/static_tls.rs, `ie_tls_slots!`.
 * Each is 128 bytes (`SLOTS_BLOCK_BYTES`), 16-aligned and zero at thread start, zero being
 * its slots' initial state; the Rust side asserts that its slots fit. Not `static`: on
 * x86_64 the Rust side reaches a block by name (its GOT TLS offset, `ie_tls_block!`);
 * hidden, so that it stays inside the library that links it. The accessor serves the other
 * architectures (`StaticTls`). */
#define STRATALLOC_SLOTS_BLOCK(name, accessor)                                                   \
    __attribute__((visibility("hidden"))) __thread                                             \
        __attribute__((tls_model("initial-exec"), aligned(16))) unsigned char name[128];       \
    void *accessor(void) { return name; }

/* Tiered's cache slots (strategies/tiered/tls.rs, `ThreadCaches`). */
STRATALLOC_SLOTS_BLOCK(stratalloc_tiered_slots, stratalloc_tiered_tls_block)

/* The thread cache layer's slots (strategies/layers/thread_cache/tls.rs, `Slots`). */
STRATALLOC_SLOTS_BLOCK(stratalloc_tcache_slots, stratalloc_tcache_tls_block)
