/* Bad frees under the preloaded library: a double free (of 8 B, 16 B, 4 KiB, 20000 B,
 * 32 KiB, 1 MiB, a calloc and a memalign block), an interior pointer, p + 1 GiB, a stack
 * pointer, a static pointer, the first byte of an mmap, and realloc of a freed or interior
 * pointer. Each case runs in a forked child, which then checks that the heap is sound:
 * 20000 mallocs are pairwise disjoint and writable (each stamped at both ends, every stamp
 * checked once all are live), and the blocks live across the bad call kept their contents.
 * Besides: malloc_usable_size is at least the request, all of it writable without touching
 * another block, and a realloc within it keeps the block; realloc keeps contents.
 *
 *   cc -O1 -pthread -o bad_frees bad_frees.c
 *   LD_PRELOAD=.../libstratalloc_preload.so STRATALLOC_STRATEGY=tiered \
 *       EXPECT_STRATEGY=tiered ./bad_frees
 *
 * The program runs itself once per STRATALLOC_BAD_FREE mode (report, abort, ignore; the
 * library reads it at start-up) and expects, from each bad case's child:
 *   report  exit 0; on stderr exactly one line "stratalloc: CALL(PTR): ...; ignored"
 *   abort   killed by SIGABRT; on stderr exactly one line "stratalloc: CALL(PTR): ...; aborting"
 *   ignore  exit 0; nothing on stderr
 * Without the library (EXPECT_STRATEGY unset: glibc, to check the test itself) only the
 * sound cases run. The last line is "bad_frees (stratalloc|glibc): N passed, 0 failed";
 * exit status 1 if any check failed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static long passed, failed; /* in the process that checks (a case's child, or the parent) */

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            printf("%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);           \
            printf(__VA_ARGS__);                                                      \
            putchar('\n');                                                            \
            fflush(stdout);                                                           \
        }                                                                             \
    } while (0)

static int aligned_to(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 131);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 131)) return 0;
    return 1;
}

/* ---- heap soundness after a bad call ----------------------------------------------- */

struct blk {
    unsigned char *p;
    size_t n;
};

static int by_addr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct blk *)a)->p, y = (uintptr_t)((const struct blk *)b)->p;
    return x < y ? -1 : x > y;
}

static void stamp(unsigned char *p, size_t n, uint64_t v) {
    memcpy(p, &v, n < 8 ? n : 8);
    if (n >= 16) memcpy(p + n - 8, &v, 8);
}

static int stamped(const unsigned char *p, size_t n, uint64_t v) {
    uint64_t a = 0, b = 0;
    memcpy(&a, p, n < 8 ? n : 8);
    if (n < 8) return memcmp(&a, &v, n) == 0;
    if (n >= 16) memcpy(&b, p + n - 8, 8); else b = v;
    return a == v && b == v;
}

#define SOUND_COUNT 20000

/* 20000 mallocs, a quarter of them of `size` (at most 256 MiB of them in all), are pairwise
 * disjoint and writable; then all are freed. */
static void check_sound(size_t size) {
    static struct blk b[SOUND_COUNT];
    static const size_t mix[] = {8, 16, 24, 48, 100, 256, 1000, 4096, 20000};
    size_t big_left = size ? (256u << 20) / size : 0;
    int ok = 1;
    for (size_t i = 0; i < SOUND_COUNT; i++) {
        size_t n = mix[i % (sizeof mix / sizeof *mix)];
        if (i % 4 == 0 && big_left > 0) {
            n = size;
            big_left--;
        }
        b[i].n = n;
        b[i].p = malloc(n);
        if (!b[i].p) {
            CHECK(0, "malloc(%zu) = NULL after a bad call", n);
            ok = 0;
            b[i].n = 0;
            continue;
        }
        stamp(b[i].p, n, 0x5eed0000u + i);
    }
    for (size_t i = 0; i < SOUND_COUNT && ok; i++)
        if (b[i].p && !stamped(b[i].p, b[i].n, 0x5eed0000u + i)) {
            CHECK(0, "block %zu (%p, %zu B) overwritten by another block", i, (void *)b[i].p, b[i].n);
            ok = 0;
        }
    qsort(b, SOUND_COUNT, sizeof *b, by_addr);
    for (size_t i = 1; i < SOUND_COUNT && ok; i++)
        if (b[i - 1].p && b[i].p && b[i - 1].p + b[i - 1].n > b[i].p) {
            CHECK(0, "blocks %p (%zu B) and %p overlap", (void *)b[i - 1].p, b[i - 1].n, (void *)b[i].p);
            ok = 0;
        }
    CHECK(ok, "%d mallocs after a bad call are disjoint and writable", SOUND_COUNT);
    for (size_t i = 0; i < SOUND_COUNT; i++) free(b[i].p);
}

/* ---- the bad cases ------------------------------------------------------------------ */

/* Every case allocates, makes its bad call (its pointer and call name in *bad, *call), and
 * leaves in keep/keep_n a live block whose contents (seed 7) must survive. */
struct outcome {
    const char *call;
    void *bad;
    unsigned char *keep;
    size_t keep_n;
    size_t sound_size;
};

typedef void (*bad_case)(struct outcome *);

/* The pipe on which a case's child tells the parent what the bad call's line must name
 * ("CALL(PTR)", before the call, as abort mode never returns) and then its check counts. */
static int info_fd = -1;

static void bad_then(struct outcome *o, const char *call, void *p) {
    o->call = call;
    o->bad = p;
    char line[64];
    int len = snprintf(line, sizeof line, "%s(%p)\n", call, p);
    (void)!write(info_fd, line, (size_t)len);
    fflush(stdout);
    if (call[0] == 'f') {
        free(p);
    } else {
        errno = 0;
        void *q = realloc(p, 200);
        CHECK(q == NULL && errno == ENOMEM, "realloc of a bad pointer = %p errno %d", q, errno);
    }
}

static void keep_block(struct outcome *o, size_t n) {
    o->keep = malloc(n);
    o->keep_n = n;
    fill(o->keep, n, 7);
}

static size_t double_size;
static void double_free(struct outcome *o) {
    size_t n = double_size;
    keep_block(o, n);
    unsigned char *p = malloc(n);
    fill(p, n, 3);
    free(p);
    o->sound_size = n;
    bad_then(o, "free", p);
}

static void double_free_calloc(struct outcome *o) {
    keep_block(o, 300);
    void *p = calloc(10, 30);
    free(p);
    o->sound_size = 300;
    bad_then(o, "free", p);
}

static void double_free_memalign(struct outcome *o) {
    keep_block(o, 100);
    void *p = memalign(4096, 100);
    free(p);
    o->sound_size = 100;
    bad_then(o, "free", p);
}

static size_t interior_size, interior_offset;
static void interior(struct outcome *o) {
    unsigned char *p = malloc(interior_size);
    fill(p, interior_size, 7);
    o->keep = p;
    o->keep_n = interior_size;
    o->sound_size = interior_size;
    bad_then(o, "free", p + interior_offset);
}

static void plus_1gib(struct outcome *o) {
    keep_block(o, 64);
    o->sound_size = 64;
    bad_then(o, "free", o->keep + (1ul << 30));
}

static void stack_pointer(struct outcome *o) {
    _Alignas(64) unsigned char buf[256];
    memset(buf, 0x11, sizeof buf);
    keep_block(o, 64);
    o->sound_size = 64;
    bad_then(o, "free", buf + 64);
    for (size_t i = 0; i < sizeof buf; i++) CHECK(buf[i] == 0x11, "the stack was written at %zu", i);
}

static _Alignas(64) unsigned char static_buf[256];
static void static_pointer(struct outcome *o) {
    keep_block(o, 64);
    o->sound_size = 64;
    bad_then(o, "free", static_buf + 64);
}

static void mmap_first_byte(struct outcome *o) {
    unsigned char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    keep_block(o, 64);
    o->sound_size = 64;
    bad_then(o, "free", m);
    CHECK(m[0] == 0 && m[(1 << 16) - 1] == 0, "the mapping was written");
}

static void realloc_freed(struct outcome *o) {
    keep_block(o, 100);
    void *p = malloc(100);
    free(p);
    o->sound_size = 100;
    bad_then(o, "realloc", p);
}

static void realloc_interior(struct outcome *o) {
    unsigned char *p = malloc(5000);
    fill(p, 5000, 7);
    o->keep = p;
    o->keep_n = 5000;
    o->sound_size = 5000;
    bad_then(o, "realloc", p + 48);
}

/* ---- running a case in a child ------------------------------------------------------ */

static int stratalloc; /* 1 when the preloaded library is in use */

enum mode { REPORT, ABORT, IGNORE };
static enum mode mode;

/* Reads all of fd into buf (NUL-terminated). */
static size_t slurp(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
        if (len == cap - 1) break;
    }
    buf[len] = 0;
    return len;
}

/* Runs `c` in a child; the child reports its checks (pass/fail counts and the bad call's
 * expected text) through a pipe, its stderr through another. */
static void run_case(const char *name, bad_case c) {
    int err[2], info[2];
    if (pipe(err) || pipe(info)) {
        CHECK(0, "pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(err[0]);
        close(info[0]);
        dup2(err[1], 2);
        alarm(60);
        passed = failed = 0;
        info_fd = info[1];
        struct outcome o = {0};
        c(&o);
        if (mode == ABORT) {
            CHECK(0, "%s: returned from a bad %s in abort mode", name, o.call);
        }
        CHECK(o.keep == NULL || intact(o.keep, o.keep_n, 7), "%s: a live block changed", name);
        check_sound(o.sound_size);
        char line[160];
        int len = snprintf(line, sizeof line, "%ld %ld\n", passed, failed);
        (void)!write(info[1], line, (size_t)len);
        fflush(stdout);
        _exit(0);
    }
    close(err[1]);
    close(info[1]);
    char errs[4096], infos[256];
    slurp(err[0], errs, sizeof errs);
    slurp(info[0], infos, sizeof infos);
    close(err[0]);
    close(info[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    long cp = 0, cf = 0;
    char expect[128] = "";
    int got = sscanf(infos, "%127s %ld %ld", expect, &cp, &cf);
    passed += cp;
    failed += cf;
    CHECK(got >= 1, "%s: the child made no bad call (status %#x)", name, status);
    char want[160];
    snprintf(want, sizeof want, "stratalloc: %s: ", expect);
    int lines = 0;
    for (const char *s = errs; *s; s++) lines += *s == '\n';
    if (mode == ABORT) {
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: child status %#x, not SIGABRT", name, status);
        CHECK(lines == 1 && strncmp(errs, want, strlen(want)) == 0 && strstr(errs, "; aborting\n"),
              "%s: stderr \"%s\", want one line \"%s...; aborting\"", name, errs, want);
        return;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#x (stderr: %s)", name, status, errs);
    if (mode == IGNORE) {
        CHECK(lines == 0, "%s: stderr in ignore mode: %s", name, errs);
    } else {
        CHECK(lines == 1 && strncmp(errs, want, strlen(want)) == 0 && strstr(errs, "; ignored\n"),
              "%s: stderr \"%s\", want one line \"%s...; ignored\"", name, errs, want);
    }
}

/* ---- checks without a bad call ------------------------------------------------------ */

static void usable_sizes_exact(void) {
    static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 48, 100, 128, 255, 500,
                                   1000, 1024, 2000, 4095, 4096, 5000, 10000, 20000, 32768, 40000,
                                   100000, 1 << 20, (1 << 20) + 1, 3 << 20};
    enum { N = sizeof sizes / sizeof *sizes, R = 4 };
    struct blk b[N * R];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < N; i++) {
            size_t n = sizes[i];
            unsigned char *p = r == 3 ? memalign(64 << i % 7, n) : r == 2 ? calloc(1, n) : malloc(n);
            size_t u = malloc_usable_size(p);
            CHECK(p != NULL && aligned_to(p, 16) && u >= n && u >= 1, "alloc(%zu) = %p, usable %zu", n,
                  (void *)p, u);
            b[r * N + i].p = p;
            b[r * N + i].n = u;
            if (p) fill(p, u, (unsigned)(r * N + i));
        }
    for (int i = 0; i < N * R; i++) {
        CHECK(intact(b[i].p, b[i].n, (unsigned)i), "usable bytes of block %d (%zu) overwritten", i, b[i].n);
        /* The block holds its whole usable size: under the library a realloc to it keeps the
         * block (glibc may move an mmapped one). */
        unsigned char *q = realloc(b[i].p, b[i].n);
        CHECK(q != NULL && intact(q, b[i].n, (unsigned)i), "realloc to the usable size %zu", b[i].n);
        if (stratalloc) {
            CHECK(q == b[i].p, "realloc to the usable size %zu moved", b[i].n);
            CHECK(malloc_usable_size(q) == b[i].n, "usable size changed by a realloc within it");
        }
        if (q) b[i].p = q;
    }
    qsort(b, N * R, sizeof *b, by_addr);
    for (int i = 1; i < N * R; i++)
        CHECK(b[i - 1].p + b[i - 1].n <= b[i].p, "usable ranges of %p (%zu) and %p overlap", (void *)b[i - 1].p,
              b[i - 1].n, (void *)b[i].p);
    for (int i = 0; i < N * R; i++) free(b[i].p);
}

static void realloc_keeps_contents(void) {
    static const size_t chain[] = {1, 10, 100, 16, 5000, 40000, 3 << 20, 300, 17, 70000, 8, 1 << 20, 64};
    for (int aligned = 0; aligned < 2; aligned++) {
        unsigned char *p = aligned ? memalign(4096, 1) : malloc(1);
        size_t have = 1;
        fill(p, 1, 5);
        for (size_t i = 1; i < sizeof chain / sizeof *chain; i++) {
            size_t n = chain[i];
            unsigned char *q = realloc(p, n);
            CHECK(q != NULL && aligned_to(q, 16), "realloc to %zu = %p", n, (void *)q);
            if (!q) break;
            size_t keep = have < n ? have : n;
            CHECK(intact(q, keep, 5), "realloc %zu -> %zu lost contents", have, n);
            CHECK(malloc_usable_size(q) >= n, "usable %zu < %zu after realloc", malloc_usable_size(q), n);
            fill(q, n, 5);
            p = q;
            have = n;
        }
        free(p);
    }
}

static void run_sound(const char *name, void (*f)(void)) {
    int info[2];
    if (pipe(info)) {
        CHECK(0, "pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(info[0]);
        alarm(60);
        passed = failed = 0;
        f();
        char line[64];
        int len = snprintf(line, sizeof line, "%ld %ld\n", passed, failed);
        (void)!write(info[1], line, (size_t)len);
        fflush(stdout);
        _exit(0);
    }
    close(info[1]);
    char infos[64];
    slurp(info[0], infos, sizeof infos);
    close(info[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    long cp = 0, cf = 0;
    sscanf(infos, "%ld %ld", &cp, &cf);
    passed += cp;
    failed += cf;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#x", name, status);
}

/* ---- main --------------------------------------------------------------------------- */

static int run_mode(void) {
    run_sound("usable sizes", usable_sizes_exact);
    run_sound("realloc contents", realloc_keeps_contents);
    if (stratalloc) {
        static const size_t doubles[] = {8, 16, 4096, 20000, 32768, 1 << 20};
        for (size_t i = 0; i < sizeof doubles / sizeof *doubles; i++) {
            char name[64];
            snprintf(name, sizeof name, "double free of %zu B", doubles[i]);
            double_size = doubles[i];
            run_case(name, double_free);
        }
        run_case("double free of a calloc block", double_free_calloc);
        run_case("double free of a memalign(4096) block", double_free_memalign);
        static const size_t interiors[][2] = {{100, 16}, {20000, 8192}, {1 << 20, 4096}, {64, 8}};
        for (size_t i = 0; i < sizeof interiors / sizeof *interiors; i++) {
            char name[64];
            snprintf(name, sizeof name, "interior pointer %zu B + %zu", interiors[i][0], interiors[i][1]);
            interior_size = interiors[i][0];
            interior_offset = interiors[i][1];
            run_case(name, interior);
        }
        run_case("p + 1 GiB", plus_1gib);
        run_case("stack pointer", stack_pointer);
        run_case("static pointer", static_pointer);
        run_case("first byte of an mmap", mmap_first_byte);
        run_case("realloc of a freed block", realloc_freed);
        run_case("realloc of an interior pointer", realloc_interior);
    }
    return failed != 0;
}

int main(int argc, char **argv) {
    const char *expect = getenv("EXPECT_STRATEGY");
    stratalloc = expect != NULL && *expect;
    if (stratalloc) {
        const char *(*name)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "stratalloc_strategy_name");
        if (!name || strcmp(name(), expect) != 0) {
            printf("bad_frees: the library is not loaded or serves %s, not %s\n", name ? name() : "(none)", expect);
            return 1;
        }
    }
    if (argc == 3 && strcmp(argv[1], "--mode") == 0) {
        /* One mode, as STRATALLOC_BAD_FREE says (the library read it at start-up). */
        mode = strcmp(argv[2], "abort") == 0 ? ABORT : strcmp(argv[2], "ignore") == 0 ? IGNORE : REPORT;
        int bad = run_mode();
        printf("%s: %ld passed, %ld failed\n", argv[2], passed, failed);
        return bad;
    }
    /* Every mode, each in a process of its own started with the mode in its environment;
     * "report" also without the variable (the default). */
    static const char *modes[] = {"default", "report", "abort", "ignore"};
    long total_passed = 0, total_failed = 0;
    for (size_t m = 0; m < (stratalloc ? 4 : 1); m++) {
        int out[2];
        if (pipe(out)) return 1;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(out[0]);
            dup2(out[1], 1);
            if (m == 0) unsetenv("STRATALLOC_BAD_FREE"); else setenv("STRATALLOC_BAD_FREE", modes[m], 1);
            const char *arg = m == 0 ? "report" : modes[m];
            execl("/proc/self/exe", argv[0], "--mode", arg, (char *)NULL);
            _exit(127);
        }
        close(out[1]);
        static char text[1 << 16];
        slurp(out[0], text, sizeof text);
        close(out[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        long p = 0, f = 0;
        const char *last = strrchr(text, ':');
        if (last) sscanf(last, ": %ld passed, %ld failed", &p, &f);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || f != 0 || p == 0) {
            printf("mode %s (status %#x):\n%s", modes[m], status, text);
            f += f == 0;
        }
        total_passed += p;
        total_failed += f;
    }
    printf("bad_frees (%s): %ld passed, %ld failed\n", stratalloc ? "stratalloc" : "glibc", total_passed,
           total_failed);
    return total_failed != 0;
}
