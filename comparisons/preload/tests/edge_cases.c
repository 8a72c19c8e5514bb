/* Edge cases of the C allocation API, checked from several threads, under the preloaded
 * library (or plain glibc, to check the test itself: `EXPECT_STRATEGY` unset).
 *
 *   cc -O1 -pthread -o edge_cases edge_cases.c
 *   LD_PRELOAD=.../libstratalloc_preload.so STRATALLOC_STRATEGY=best-fit \
 *       EXPECT_STRATEGY=best-fit ./edge_cases
 *
 * Every check is counted; a failure prints where and what, and the exit status is 1.
 * The last line is "edge_cases: N passed, 0 failed".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* glibc's internal names, which the library also exports. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long passed, failed;
static int stratalloc; /* 1 when the preloaded library is in use */

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            atomic_fetch_add(&passed, 1);                                             \
        } else {                                                                      \
            atomic_fetch_add(&failed, 1);                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static int aligned_to(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 131);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 131)) return 0;
    return 1;
}

static void check_library(void) {
    const char *(*name)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "stratalloc_strategy_name");
    const char *expect = getenv("EXPECT_STRATEGY");
    stratalloc = name != NULL;
    if (expect && *expect) {
        CHECK(name != NULL, "EXPECT_STRATEGY=%s but the library is not loaded", expect);
        if (name) CHECK(strcmp(name(), expect) == 0, "strategy in use %s, expected %s", name(), expect);
    }
}

static void check_malloc(void) {
    void *zero[64];
    for (int i = 0; i < 64; i++) {
        zero[i] = malloc(0);
        CHECK(zero[i] != NULL, "malloc(0) #%d returned NULL", i);
        CHECK(aligned_to(zero[i], 16), "malloc(0) = %p not 16-aligned", zero[i]);
        for (int j = 0; j < i; j++) CHECK(zero[i] != zero[j], "malloc(0) returned %p twice", zero[i]);
    }
    for (int i = 0; i < 64; i++) free(zero[i]);

    for (size_t n = 1; n <= 5000; n += n < 64 ? 1 : 37) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL && aligned_to(p, 16), "malloc(%zu) = %p", n, (void *)p);
        if (!p) continue;
        CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
        fill(p, n, (unsigned)n);
        CHECK(intact(p, n, (unsigned)n), "malloc(%zu) block not kept", n);
        free(p);
    }

    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)1 << 62};
    for (int i = 0; i < 4; i++) {
        errno = 0;
        void *p = malloc(huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "malloc(%zu) = %p errno %d", huge[i], p, errno);
    }
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
}

static void check_calloc(void) {
    for (size_t n = 1; n < 40000; n = n * 3 + 1) {
        unsigned char *dirty = malloc(n);
        if (dirty) memset(dirty, 0xAA, n);
        free(dirty);
        unsigned char *p = calloc(n, 1);
        CHECK(p != NULL, "calloc(%zu, 1) = NULL", n);
        if (!p) continue;
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero += p[i] != 0;
        CHECK(nonzero == 0, "calloc(%zu, 1) has %zu non-zero bytes", n, nonzero);
        free(p);
    }
    void *p = calloc(0, 16);
    CHECK(p != NULL, "calloc(0, 16) = NULL");
    free(p);
    errno = 0;
    p = calloc(SIZE_MAX / 2, 3);
    CHECK(p == NULL && errno == ENOMEM, "calloc overflow = %p errno %d", p, errno);
    errno = 0;
    p = calloc((size_t)1 << 33, (size_t)1 << 33);
    CHECK(p == NULL && errno == ENOMEM, "calloc 2^66 = %p errno %d", p, errno);
}

static void check_realloc(void) {
    unsigned char *p = realloc(NULL, 100);
    CHECK(p != NULL && aligned_to(p, 16), "realloc(NULL, 100) = %p", (void *)p);
    fill(p, 100, 7);
    size_t sizes[] = {200, 5000, 100000, 3000000, 50, 17, 1, 70000};
    size_t kept = 100;
    for (int i = 0; i < 8; i++) {
        unsigned char *q = realloc(p, sizes[i]);
        CHECK(q != NULL && aligned_to(q, 16), "realloc to %zu = %p", sizes[i], (void *)q);
        if (!q) return;
        size_t check = kept < sizes[i] ? kept : sizes[i];
        CHECK(intact(q, check, 7), "realloc to %zu lost contents", sizes[i]);
        p = q;
        fill(p, sizes[i], 7);
        kept = sizes[i];
    }
    /* The whole usable size belongs to the program and survives realloc. */
    size_t usable = malloc_usable_size(p);
    CHECK(usable >= kept, "usable %zu < %zu", usable, kept);
    fill(p, usable, 9);
    unsigned char *q = realloc(p, usable * 4);
    CHECK(q != NULL && intact(q, usable, 9), "realloc lost bytes of the usable size (%zu)", usable);
    p = q ? q : p;

    errno = 0;
    q = realloc(p, SIZE_MAX - 64);
    CHECK(q == NULL && errno == ENOMEM, "realloc huge = %p errno %d", (void *)q, errno);
    CHECK(intact(p, usable, 9), "failed realloc changed the block");

    /* glibc: realloc(p, 0) frees p and returns NULL. */
    errno = 0;
    q = realloc(p, 0);
    CHECK(q == NULL, "realloc(p, 0) = %p (glibc returns NULL)", (void *)q);
    CHECK(errno == 0, "realloc(p, 0) set errno %d", errno);

    p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL, "reallocarray(NULL, 10, 10) = NULL");
    fill(p, 100, 3);
    errno = 0;
    q = reallocarray(p, SIZE_MAX / 4, 8);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray overflow = %p errno %d", (void *)q, errno);
    CHECK(intact(p, 100, 3), "failed reallocarray changed the block");
    q = reallocarray(p, 1000, 10);
    CHECK(q != NULL && intact(q, 100, 3), "reallocarray grow = %p", (void *)q);
    free(q ? q : p);
}

static void check_aligned(void) {
    /* posix_memalign */
    size_t bad[] = {0, 1, 2, 4, 12, 24, 40, 48, 96, 4097};
    for (int i = 0; i < 10; i++) {
        void *sentinel = (void *)0x1234;
        void *p = sentinel;
        errno = 4321;
        int r = posix_memalign(&p, bad[i], 64);
        CHECK(r == EINVAL, "posix_memalign(align %zu) = %d", bad[i], r);
        CHECK(p == sentinel, "posix_memalign(align %zu) wrote *memptr", bad[i]);
        CHECK(errno == 4321, "posix_memalign(align %zu) changed errno to %d", bad[i], errno);
    }
    for (size_t align = 8; align <= ((size_t)1 << 20); align <<= 1) {
        size_t sizes[] = {0, 1, align, 3 * align + 5};
        for (int i = 0; i < 4; i++) {
            unsigned char *p = NULL;
            int r = posix_memalign((void **)&p, align, sizes[i]);
            CHECK(r == 0 && p != NULL && aligned_to(p, align), "posix_memalign(%zu, %zu) = %d %p", align,
                  sizes[i], r, (void *)p);
            if (!p) continue;
            CHECK(malloc_usable_size(p) >= sizes[i], "usable %zu < %zu", malloc_usable_size(p), sizes[i]);
            fill(p, sizes[i], 5);
            unsigned char *q = realloc(p, sizes[i] + 1000);
            CHECK(q != NULL && intact(q, sizes[i], 5), "realloc of an aligned block lost contents");
            free(q ? q : p);
        }
    }
    void *p = (void *)0x1234;
    errno = 0;
    int r = posix_memalign(&p, 64, SIZE_MAX - 100);
    CHECK(r == ENOMEM && p == (void *)0x1234, "posix_memalign huge = %d %p", r, p);

    /* aligned_alloc */
    for (size_t align = 1; align <= 65536; align <<= 1) {
        size_t n = align * 3;
        void *q = aligned_alloc(align, n);
        CHECK(q != NULL && aligned_to(q, align < 16 ? 16 : align), "aligned_alloc(%zu) = %p", align, q);
        CHECK(q == NULL || malloc_usable_size(q) >= n, "aligned_alloc usable too small");
        free(q);
    }
    void *q = aligned_alloc(64, 100); /* size not a multiple of the alignment: accepted */
    CHECK(q != NULL && aligned_to(q, 64), "aligned_alloc(64, 100) = %p", q);
    free(q);
    if (stratalloc) { /* glibc 2.38+ and C17: a non-power-of-two alignment is EINVAL */
        errno = 0;
        q = aligned_alloc(24, 48);
        CHECK(q == NULL && errno == EINVAL, "aligned_alloc(24, 48) = %p errno %d", q, errno);
        errno = 0;
        q = aligned_alloc(0, 48);
        CHECK(q == NULL && errno == EINVAL, "aligned_alloc(0, 48) = %p errno %d", q, errno);
    }

    /* memalign: a non-power-of-two alignment is rounded up */
    q = memalign(48, 100);
    CHECK(q != NULL && aligned_to(q, 64), "memalign(48, 100) = %p", q);
    free(q);
    q = memalign(0, 10);
    CHECK(q != NULL && aligned_to(q, 16), "memalign(0, 10) = %p", q);
    free(q);
    errno = 0;
    q = memalign(SIZE_MAX / 2 + 2, 10);
    CHECK(q == NULL && errno == EINVAL, "memalign(huge align) = %p errno %d", q, errno);

    /* valloc, pvalloc */
    long page = sysconf(_SC_PAGESIZE);
    q = valloc(10);
    CHECK(q != NULL && aligned_to(q, (size_t)page), "valloc(10) = %p", q);
    free(q);
    q = pvalloc(page + 1);
    CHECK(q != NULL && aligned_to(q, (size_t)page), "pvalloc = %p", q);
    CHECK(q == NULL || malloc_usable_size(q) >= 2 * (size_t)page, "pvalloc usable %zu",
          q ? malloc_usable_size(q) : 0);
    free(q);
    errno = 0;
    q = pvalloc(SIZE_MAX - 10);
    CHECK(q == NULL && errno == ENOMEM, "pvalloc(huge) = %p errno %d", q, errno);
}

static void check_libc_aliases(void) {
    unsigned char *p = __libc_malloc(40);
    CHECK(p != NULL, "__libc_malloc = NULL");
    fill(p, 40, 1);
    p = __libc_realloc(p, 4000);
    CHECK(p != NULL && intact(p, 40, 1), "__libc_realloc lost contents");
    free(p); /* a block from __libc_* goes back through free */
    p = __libc_calloc(10, 10);
    CHECK(p != NULL && p[0] == 0 && p[99] == 0, "__libc_calloc");
    __libc_free(p);
    p = __libc_memalign(256, 10);
    CHECK(p != NULL && aligned_to(p, 256), "__libc_memalign = %p", (void *)p);
    p = realloc(p, 300);
    CHECK(p != NULL, "realloc of a __libc_memalign block");
    __libc_free(p);
    p = malloc(10);
    __libc_free(p);
}

/* free() leaves errno alone (POSIX.1-2024; glibc does too). */
static void check_free_errno(void) {
    for (size_t n = 1; n < (1 << 22); n *= 4) {
        void *p = malloc(n);
        errno = 777;
        free(p);
        CHECK(errno == 777, "free of a %zu-byte block changed errno to %d", n, errno);
    }
}

/* Pointers that are not ours are ignored (reported once on stderr), never handed to a
 * strategy. Under glibc this would be undefined, so only under the library. */
static _Alignas(64) unsigned char not_ours[256];

static void check_foreign(void) {
    if (!stratalloc) return;
    void *p = not_ours + 64;
    free(p);
    CHECK(malloc_usable_size(p) == 0, "usable size of a foreign pointer %zu", malloc_usable_size(p));
    errno = 0;
    void *q = realloc(p, 100);
    CHECK(q == NULL && errno == ENOMEM, "realloc of a foreign pointer = %p errno %d", q, errno);
    int zero = 1;
    for (size_t i = 0; i < sizeof not_ours; i++) zero &= not_ours[i] == 0;
    CHECK(zero, "a foreign pointer's memory was written");
}

/* A signal handler that allocates while the interrupted thread may be inside malloc: the
 * library serves it from its fallback instead of deadlocking (glibc may deadlock: only under
 * the library). */
static volatile sig_atomic_t handler_runs, handler_bad;

static void allocating_handler(int sig) {
    (void)sig;
    int saved = errno;
    unsigned char *p = malloc(24 + handler_runs % 200);
    if (!p) { handler_bad = 1; } else {
        fill(p, 24, 99);
        if (!intact(p, 24, 99)) handler_bad = 1;
        p = realloc(p, 5000);
        if (!p || !intact(p, 24, 99)) handler_bad = 1;
        free(p);
    }
    handler_runs++;
    errno = saved;
}

static void check_signal_reentry(void) {
    if (!stratalloc) return;
    struct sigaction sa = {0};
    sa.sa_handler = allocating_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every = {{0, 200}, {0, 200}};
    setitimer(ITIMER_PROF, &every, NULL);
    unsigned s = 5;
    void *keep[32] = {0};
    /* The timer interrupts malloc at whatever point the scheduler chooses; raise() also runs
     * the handler at a known point every 6000 iterations, so that the count checked below
     * does not depend on timing. */
    int raised = 0;
    for (int i = 0; i < 300000; i++) {
        int k = next_rand(&s) % 32;
        free(keep[k]);
        keep[k] = (i & 1) ? malloc(next_rand(&s) % 2000) : realloc(NULL, next_rand(&s) % 100);
        if (i % 6000 == 0) {
            raise(SIGPROF);
            raised++;
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    signal(SIGPROF, SIG_DFL);
    for (int k = 0; k < 32; k++) free(keep[k]);
    CHECK(handler_runs >= raised, "the allocating signal handler ran %d times for %d raise() calls",
          (int)handler_runs, raised);
    CHECK(!handler_bad, "a block allocated in a signal handler was bad");
}

/* ---- threads ---- */

#define THREADS 6
#define SLOTS 512
#define ROUNDS 20000

/* Blocks handed from one thread to be freed by another. */
static void *_Atomic exchange[SLOTS];


struct live {
    unsigned char *p;
    size_t n;
    unsigned seed;
};

static void *worker(void *arg) {
    unsigned s = (unsigned)(uintptr_t)arg * 7919u + 1;
    struct live live[64] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        int i = next_rand(&s) % 64;
        struct live *l = &live[i];
        if (l->p) {
            CHECK(intact(l->p, l->n, l->seed), "thread block %p (%zu bytes) corrupted", (void *)l->p, l->n);
            switch (next_rand(&s) % 4) {
            case 0: free(l->p); l->p = NULL; continue;
            case 1: { /* realloc, keeping the contents */
                size_t n = next_rand(&s) % 3000;
                unsigned char *q = realloc(l->p, n + 1);
                CHECK(q != NULL, "realloc(%zu) = NULL", n + 1);
                if (!q) continue;
                size_t keep = l->n < n + 1 ? l->n : n + 1;
                CHECK(intact(q, keep, l->seed), "realloc lost contents");
                l->p = q; l->n = keep;
                continue;
            }
            case 2: { /* hand it to another thread */
                void *old = atomic_exchange(&exchange[next_rand(&s) % SLOTS], (void *)l->p);
                free(old);
                l->p = NULL;
                continue;
            }
            default: free(l->p); l->p = NULL; break;
            }
        }
        size_t n = next_rand(&s) % (next_rand(&s) % 16 == 0 ? 70000 : 300);
        unsigned kind = next_rand(&s) % 6;
        unsigned char *p = NULL;
        if (kind == 0) p = malloc(n);
        else if (kind == 1) p = calloc(n ? n : 1, 1);
        else if (kind == 2) { if (posix_memalign((void **)&p, (size_t)64 << (next_rand(&s) % 8), n)) p = NULL; }
        else if (kind == 3) p = aligned_alloc((size_t)32 << (next_rand(&s) % 6), n);
        else if (kind == 4) p = memalign(4096, n);
        else p = realloc(NULL, n);
        CHECK(p != NULL && aligned_to(p, 16), "alloc kind %u of %zu = %p", kind, n, (void *)p);
        if (!p) continue;
        if (kind == 1) CHECK(n == 0 || (p[0] == 0 && p[n - 1] == 0), "calloc not zeroed");
        CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
        l->p = p; l->n = n; l->seed = next_rand(&s);
        fill(p, n, l->seed);
    }
    for (int i = 0; i < 64; i++) free(live[i].p);
    return NULL;
}

/* A thread that allocates, hands blocks over and exits at once. */
static void *short_lived(void *arg) {
    unsigned s = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 50; i++) {
        void *p = malloc(next_rand(&s) % 500);
        void *old = atomic_exchange(&exchange[next_rand(&s) % SLOTS], p);
        free(old);
    }
    return malloc(100); /* freed by the joining thread */
}

static void *forker(void *arg) {
    (void)arg;
    for (int i = 0; i < 8; i++) {
        pid_t pid = fork();
        if (pid == 0) { /* child: the allocator must work, other threads are gone */
            int ok = 1;
            for (int j = 0; j < 2000; j++) {
                unsigned char *p = malloc(j % 700 + 1);
                if (!p) { ok = 0; break; }
                fill(p, j % 700 + 1, j);
                if (!intact(p, j % 700 + 1, j)) ok = 0;
                p = realloc(p, j % 5000 + 1);
                free(p);
            }
            _exit(ok ? 0 : 3);
        }
        CHECK(pid > 0, "fork failed");
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked child status %d", status);
    }
    return NULL;
}

static void check_threads(void) {
    pthread_t t[THREADS], f;
    for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "create");
    CHECK(pthread_create(&f, NULL, forker, NULL) == 0, "create forker");
    for (long round = 0; round < 40; round++) { /* threads that come and go meanwhile */
        pthread_t s[4];
        for (long i = 0; i < 4; i++) pthread_create(&s[i], NULL, short_lived, (void *)(round * 4 + i + 1));
        for (long i = 0; i < 4; i++) {
            void *left = NULL;
            pthread_join(s[i], &left);
            CHECK(left != NULL, "short-lived thread's malloc failed");
            free(left);
        }
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    pthread_join(f, NULL);
    for (int i = 0; i < SLOTS; i++) free(atomic_exchange(&exchange[i], NULL));
}

/* The single-thread checks again, from several threads at once. */
static void *all_single(void *arg) {
    (void)arg;
    check_malloc();
    check_calloc();
    check_realloc();
    check_aligned();
    check_libc_aliases();
    return NULL;
}

int main(void) {
    check_library();
    all_single(NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, all_single, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    check_threads();
    check_free_errno();
    check_foreign();
    check_signal_reentry();
    long p = atomic_load(&passed), f = atomic_load(&failed);
    printf("edge_cases (%s): %ld passed, %ld failed\n", stratalloc ? "stratalloc" : "glibc", p, f);
    return f == 0 ? 0 : 1;
}
