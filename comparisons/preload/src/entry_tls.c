/* The entry state of a thread (entry.rs, `ThreadEntry`) in the initial-exec TLS model: the
 * library is preloaded, so its initial-exec variables are in every thread's static TLS area
 * (see stratalloc's src/static_tls.rs). entry.rs checks the layout.
 *
 * Initial state: `fast` points at `stratalloc_preload_no_flag`, a flag that reads "inside"
 * for good (1, read-only), so that the fast entry needs no null test; everything else is
 * zero. The pointer is a relocated initialiser of the TLS image, which the dynamic loader
 * relocates before it copies the image into any thread's block. */
__attribute__((visibility("hidden"))) const unsigned char stratalloc_preload_no_flag = 1;

struct stratalloc_preload_thread_entry {
    const unsigned char *fast;
    unsigned char rest[8];
};

/* Not `static`, hidden: entry.rs's fast entry reads its TLS offset from the GOT entry the
 * linker makes for it (stratalloc's `ie_tls_block!`). */
__thread __attribute__((visibility("hidden"), tls_model("initial-exec"), aligned(16)))
struct stratalloc_preload_thread_entry stratalloc_preload_entry = { &stratalloc_preload_no_flag, { 0 } };

void *stratalloc_preload_entry_block(void) { return &stratalloc_preload_entry; }
