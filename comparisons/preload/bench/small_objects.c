/* Three small-object measurements of a C program's malloc (issue 22's targets), one per run:
 *
 *   small_objects hot [PAIRS]     ns per malloc(16)/free pair, the same block over and over
 *   small_objects churn [OPS]     ns per replacement in a pool of 100,000 live objects of
 *                                 16..1024 B (uniform): free a random one, malloc a new one
 *                                 of a random size, write its first and last byte
 *   small_objects rss [COUNT]     resident bytes per live malloc(16): COUNT (default 1M)
 *                                 blocks made and written, RSS delta (/proc/self/statm) / COUNT
 *
 * Prints one line "METRIC VALUE". Run it under each allocator with bench/run.sh, which
 * interleaves the allocators and takes medians. Timing uses CLOCK_MONOTONIC around the loop
 * only (set-up and the initial fill are outside it).
 *
 *   cc -O2 -fno-builtin -o small_objects small_objects.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Keeps the compiler from removing a malloc/free pair. */
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static uint64_t rng = 0x9E3779B97F4A7C15u;
static inline uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long resident_pages(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        fprintf(stderr, "small_objects: cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return resident;
}

/* Memory for the benchmark's own arrays, from mmap (not the allocator under test), touched
 * before any measurement. */
static void *own(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(p, 0, bytes);
    return p;
}

static void hot(long pairs) {
    for (long i = 0; i < 100000; i++) { /* warm-up: the first block, the thread cache */
        void *p = malloc(16);
        escape(p);
        free(p);
    }
    double t0 = now_ns();
    for (long i = 0; i < pairs; i++) {
        void *p = malloc(16);
        escape(p);
        free(p);
    }
    printf("hot %.2f\n", (now_ns() - t0) / (double)pairs);
}

#define LIVE 100000

static void churn(long ops) {
    unsigned char **slot = own(LIVE * sizeof *slot);
    size_t *size = own(LIVE * sizeof *size);
    for (long i = 0; i < LIVE; i++) {
        size[i] = 16 + next() % 1009;
        slot[i] = malloc(size[i]);
        slot[i][0] = slot[i][size[i] - 1] = (unsigned char)i;
    }
    double t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        uint64_t r = next();
        size_t k = (size_t)(r % LIVE);
        free(slot[k]);
        size_t n = 16 + (r >> 32) % 1009;
        unsigned char *p = malloc(n);
        p[0] = p[n - 1] = (unsigned char)i;
        slot[k] = p;
        size[k] = n;
    }
    double ns = (now_ns() - t0) / (double)ops;
    for (long i = 0; i < LIVE; i++) free(slot[i]);
    printf("churn %.2f\n", ns);
}

static void rss(long count) {
    void **p = own((size_t)count * sizeof *p);
    long page = sysconf(_SC_PAGESIZE);
    free(malloc(16)); /* the allocator's own start-up, outside the delta */
    long before = resident_pages();
    for (long i = 0; i < count; i++) {
        p[i] = malloc(16);
        memset(p[i], (int)i, 16);
    }
    long after = resident_pages();
    printf("rss %.2f\n", (double)(after - before) * (double)page / (double)count);
    for (long i = 0; i < count; i++) free(p[i]);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (strcmp(what, "hot") == 0) {
        hot(n > 0 ? n : 20000000);
    } else if (strcmp(what, "churn") == 0) {
        churn(n > 0 ? n : 2000000);
    } else if (strcmp(what, "rss") == 0) {
        rss(n > 0 ? n : 1000000);
    } else {
        fprintf(stderr, "usage: small_objects hot|churn|rss [N]\n");
        return 2;
    }
    return 0;
}
