/* The entry state of a thread (entry.rs, `ThreadEntry`) in the initial-exec TLS model: the
 * library is preloaded, so its initial-exec variables are in every thread's static TLS area
 * (see stratalloc's src/static_tls.rs). Zero is the initial state; entry.rs checks the size. */
static __thread __attribute__((tls_model("initial-exec"), aligned(16))) unsigned char
    stratalloc_preload_entry[16];

void *stratalloc_preload_entry_block(void) { return stratalloc_preload_entry; }
