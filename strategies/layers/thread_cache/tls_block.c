/* The thread cache's slots (tls.rs, `Slots`) in the initial-exec TLS model, for builds with
 * the `initial-exec-tls` feature (the preload library): see src/static_tls.rs. Zero is the
 * slots' initial state (state UNREGISTERED, every slot empty); tls.rs checks that they fit.
 * Not `static`: on x86_64 tls.rs reaches it by name (its GOT TLS offset, `ie_tls_block!`);
 * hidden, so that it stays inside the library that links it. */
__attribute__((visibility("hidden"))) __thread __attribute__((tls_model("initial-exec"), aligned(16)))
unsigned char stratalloc_tcache_slots[128];

void *stratalloc_tcache_tls_block(void) { return stratalloc_tcache_slots; }
