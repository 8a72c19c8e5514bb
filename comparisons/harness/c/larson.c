/* c-larson: a larson-like server in C for the preloaded comparison runs.
 *
 * Usage: larson SCALE THREADS SEED
 *
 * Each of THREADS workers owns SLOTS blocks of 8..1000 bytes and replaces random slots
 * ITERS times per round (malloc the new block, free the old one); after each round the
 * workers are joined and new threads take over their neighbour's slots, so blocks are freed
 * by threads other than the one that allocated them (mimalloc-bench's larson pattern).
 * Every 16th replacement goes through realloc or calloc instead of malloc.
 *
 * Checks: every block is filled with a pattern derived from its tag and verified when freed
 * (and when realloc'd); calloc'd memory must read as zero; pointers must have the C
 * standard's fundamental alignment (16 bytes; 8 for blocks under 16 bytes, which cannot
 * hold a 16-byte-aligned object, as mimalloc's 8-byte size class uses).
 * Output: one line "checksum <hex>" summing tags and sizes of every block freed or kept,
 * which does not depend on addresses, so every allocator must print the same line.
 * A failed check prints the reason on stderr and exits 1; malloc returning NULL exits 2.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1000
#define ROUNDS 4
#define BASE_ITERS 20000

struct block {
    uint64_t tag;
    size_t size;
    unsigned char *data;
};

struct worker {
    struct block *slots;
    uint64_t rng;
    uint64_t sum;
    long iters;
    int round, id;
};

static uint64_t next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fail(const char *why, uint64_t tag) {
    fprintf(stderr, "larson: %s (block tag %llx)\n", why, (unsigned long long)tag);
    exit(1);
}

static unsigned char pattern(uint64_t tag, size_t i) { return (unsigned char)(tag * 31 + i * 7 + (tag >> 17)); }

static void fill(struct block *b, size_t from) {
    for (size_t i = from; i < b->size; i++) b->data[i] = pattern(b->tag, i);
}

static void verify(const struct block *b, size_t upto) {
    uintptr_t align = b->size >= 16 ? 16 : 8;
    if ((uintptr_t)b->data % align != 0) fail("pointer below the fundamental alignment", b->tag);
    for (size_t i = 0; i < upto; i++)
        if (b->data[i] != pattern(b->tag, i)) fail("block contents changed while live", b->tag);
}

static uint64_t account(const struct block *b) { return b->tag * 0x100000001b3ull ^ ((uint64_t)b->size << 20); }

static void make(struct block *b, uint64_t *rng, uint64_t tag, int how) {
    b->tag = tag;
    b->size = 8 + next(rng) % 993;
    if (how == 1) {
        b->data = calloc(b->size, 1);
        if (!b->data) exit(2);
        for (size_t i = 0; i < b->size; i++)
            if (b->data[i] != 0) fail("calloc memory not zero", tag);
    } else {
        b->data = malloc(b->size);
        if (!b->data) exit(2);
    }
    fill(b, 0);
}

/* Grows or shrinks a live block with realloc; the common prefix must survive. */
static void resize(struct block *b, uint64_t *rng, uint64_t *sum) {
    verify(b, b->size);
    *sum += account(b);
    size_t size = 8 + next(rng) % 993;
    unsigned char *p = realloc(b->data, size);
    if (!p) exit(2);
    b->data = p;
    size_t keep = size < b->size ? size : b->size;
    b->size = size;
    verify(b, keep);
    fill(b, keep);
}

static void *work(void *arg) {
    struct worker *w = arg;
    for (long k = 0; k < w->iters; k++) {
        struct block *b = &w->slots[next(&w->rng) % SLOTS];
        uint64_t tag = ((uint64_t)w->round << 48) ^ ((uint64_t)w->id << 32) ^ (uint64_t)k;
        if (k % 16 == 5) {
            resize(b, &w->rng, &w->sum);
            continue;
        }
        verify(b, b->size);
        w->sum += account(b);
        free(b->data);
        make(b, &w->rng, tag, k % 16 == 11);
    }
    return NULL;
}

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
    if (threads < 1) threads = 1;
    long iters = (long)(BASE_ITERS * scale);
    if (iters < 1) iters = 1;
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    if (!ws || !ts) return 2;
    for (int i = 0; i < threads; i++) {
        ws[i].slots = calloc(SLOTS, sizeof(struct block));
        if (!ws[i].slots) return 2;
        uint64_t r = seed * 1000 + (uint64_t)i;
        for (int k = 0; k < SLOTS; k++) make(&ws[i].slots[k], &r, (99ull << 48) ^ ((uint64_t)i << 32) ^ (uint64_t)k, 0);
    }
    uint64_t sum = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* New threads take over the neighbour's slots: frees cross threads. */
        struct block *first = ws[0].slots;
        for (int i = 0; i < threads; i++) {
            ws[i].slots = i + 1 < threads ? ws[i + 1].slots : first;
            ws[i].rng = seed ^ ((uint64_t)round * 64 + (uint64_t)i) * 0x9e3779b97f4a7c15ull;
            ws[i].iters = iters;
            ws[i].round = round;
            ws[i].id = i;
            if (pthread_create(&ts[i], NULL, work, &ws[i]) != 0) return 2;
        }
        for (int i = 0; i < threads; i++) {
            pthread_join(ts[i], NULL);
            sum += ws[i].sum;
            ws[i].sum = 0;
        }
    }
    for (int i = 0; i < threads; i++) {
        for (int k = 0; k < SLOTS; k++) {
            verify(&ws[i].slots[k], ws[i].slots[k].size);
            sum += account(&ws[i].slots[k]);
            free(ws[i].slots[k].data);
        }
        free(ws[i].slots);
    }
    free(ws);
    free(ts);
    printf("checksum %016llx\n", (unsigned long long)sum);
    return 0;
}
