// Memory handed back without malloc_trim (issue 16, items 4 and 5), as a new user would see
// it from a C program: resident memory (VmRSS) and address space (VmSize) from
// /proc/self/status.
//
// 1. small: 512 MiB of small blocks (random sizes 16..1024 B, every byte written), freed in
//    a shuffled order, then 1,000,000 more small allocations (each freed after 64 others,
//    a ring of 64 live blocks): at most 64 MiB may stay resident.
// 1b. remote: the same with 256 MiB, freed by another thread while the allocating one lives
//    on and then makes the 1,000,000 allocations: at most 64 MiB may stay resident.
// 2. large: 768 MiB of large blocks (64 KiB .. 4 MiB), freed, then a little more work
//    (1,000 small and 100 large allocations, freed): less than 64 MiB may stay resident.
// 3. aligned: blocks of 1 MiB with alignments 4 KiB .. 1 GiB, each freed at once, then a
//    little more work: the address space held afterwards may exceed the level before the
//    first of them by at most 256 MiB (glibc keeps none of it; a tiered heap may keep a few
//    64 MiB arenas it grew by for the small requests of the work).
// No malloc_trim anywhere. The pointer array of phase 1 comes from mmap, not malloc, and is
// unmapped before the measurement.
//
// Prints each phase's figures (MiB) and, when the stratalloc preload library serves the
// program (`stratalloc_strategy_name` found), checks them and ends with
// `memory_return (stratalloc): N passed, F failed`; exits 0 only if F is 0. Without the
// library (glibc, the reference run), prints the figures and
// `memory_return (reference): not checked` and exits 0 (glibc keeps phase 1's memory).
// Compile: gcc -O1 -fno-builtin -pthread memory_return.c -o memory_return -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIB (1024L * 1024L)

static int passed, failed, checking;

static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long rss_mib(void) { return status_kib("VmRSS") / 1024; }
static long vm_mib(void) { return status_kib("VmSize") / 1024; }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check(int ok, const char *what, long got, long limit) {
    if (!checking) return;
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: %ld MiB, limit %ld MiB\n", what, got, limit);
    }
}

// 1,000 small and `large` large allocations, each freed after the next one.
static void little_work(int large) {
    void *prev = NULL;
    for (int i = 0; i < 1000 + large; i++) {
        size_t n = i < 1000 ? 16 + next_rand() % 1009 : (64 << 10) + next_rand() % (1 << 20);
        void *p = malloc(n);
        if (p) memset(p, i, n < 4096 ? n : 4096);
        free(prev);
        prev = p;
    }
    free(prev);
}

struct blocks {
    void **v;
    size_t n;
};

static void *free_blocks(void *arg) {
    struct blocks *b = arg;
    for (size_t i = 0; i < b->n; i++) free(b->v[i]);
    return NULL;
}

// `total` bytes of small blocks, freed in a shuffled order (by another thread if `remote`),
// then 1,000,000 small allocations; returns the resident MiB after them.
// Fills v with at most max blocks of min_size + rand % spread bytes, written end to end,
// until total bytes are taken; returns the count and sets *bytes. A failed malloc is a failure.
static size_t fill(void **v, size_t max, size_t total, size_t min_size, size_t spread, size_t *bytes) {
    size_t n = 0;
    *bytes = 0;
    while (*bytes < total && n < max) {
        size_t sz = min_size + next_rand() % spread;
        char *p = malloc(sz);
        if (!p) {
            printf("FAIL malloc(%zu) after %zu MiB\n", sz, *bytes / MIB);
            failed++;
            break;
        }
        memset(p, (int)n, sz);
        v[n++] = p;
        *bytes += sz;
    }
    return n;
}

static void small_phase(const char *label, size_t total, int remote) {
    // At least 16 B per block: room for every pointer.
    const size_t max_blocks = total / 16;
    void **v = mmap(NULL, max_blocks * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED) {
        printf("FAIL mmap of the pointer array\n");
        failed++;
        return;
    }
    size_t bytes;
    size_t n = fill(v, max_blocks, total, 16, 1009, &bytes);
    long peak = rss_mib();
    for (size_t i = n; i > 1; i--) {
        size_t j = next_rand() % i;
        void *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    if (remote) {
        struct blocks b = {v, n};
        pthread_t t;
        if (pthread_create(&t, NULL, free_blocks, &b) != 0) {
            free_blocks(&b);
        } else {
            pthread_join(t, NULL);
        }
    } else {
        for (size_t i = 0; i < n; i++) free(v[i]);
    }
    munmap(v, max_blocks * sizeof *v);
    long freed = rss_mib();
    void *ring[64] = {0};
    for (long i = 0; i < 1000000; i++) {
        size_t sz = 16 + next_rand() % 1009;
        void *p = malloc(sz);
        if (p) memset(p, 1, sz < 64 ? sz : 64);
        free(ring[i % 64]);
        ring[i % 64] = p;
    }
    for (int i = 0; i < 64; i++) free(ring[i]);
    long after = rss_mib();
    printf("%s: %zu blocks, %zu MiB; resident: peak %ld, after the frees %ld, after 1,000,000 more %ld\n", label,
           n, bytes / MIB, peak, freed, after);
    check(after <= 64, label, after, 64);
}

static void large_phase(void) {
    enum { MAX = 1024 };
    void *v[MAX];
    size_t bytes;
    size_t n = fill(v, MAX, 768 * MIB, 64 << 10, 4 * MIB, &bytes);
    long peak = rss_mib();
    for (size_t i = 0; i < n; i++) free(v[i]);
    little_work(100);
    long after = rss_mib();
    printf("large: %zu blocks, %zu MiB; resident: peak %ld, after the frees and a little work %ld\n", n,
           bytes / MIB, peak, after);
    check(after < 64, "large: resident after 768 MiB freed", after, 64);
}

static void aligned_phase(void) {
    little_work(0);
    long before = vm_mib(), peak = before;
    for (size_t align = 4096; align <= 1024 * MIB; align *= 4) {
        void *p = NULL;
        int r = posix_memalign(&p, align, MIB);
        if (r != 0 || !p || (uintptr_t)p % align != 0) {
            printf("FAIL posix_memalign(%zu, 1 MiB): %d\n", align, r);
            failed++;
            continue;
        }
        memset(p, 7, MIB);
        long vm = vm_mib();
        if (vm > peak) peak = vm;
        free(p);
    }
    little_work(10);
    long after = vm_mib();
    printf("aligned: address space before %ld MiB, peak %ld, after the frees and a little work %ld\n", before,
           peak, after);
    check(after - before <= 256, "aligned: address space held after freeing (over the level before)",
          after - before, 256);
}

int main(void) {
    const char *(*name)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "stratalloc_strategy_name");
    checking = name != NULL;
    setvbuf(stdout, NULL, _IONBF, 0);
    small_phase("small", 512 * MIB, 0);
    small_phase("remote", 256 * MIB, 1);
    large_phase();
    aligned_phase();
    if (checking) {
        printf("memory_return (stratalloc): %d passed, %d failed\n", passed, failed);
    } else {
        printf("memory_return (reference): not checked\n");
    }
    return failed == 0 ? 0 : 1;
}
