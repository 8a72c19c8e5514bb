// fork while threads come and go (issue 16, item 1): every child must finish.
//
// Three "spawner" threads keep creating and joining short-lived threads that allocate and
// free (small and large blocks, some freed by another thread), so that thread-exit work
// (a strategy flushing a thread cache, from a TLS destructor, outside any malloc call) is
// always in flight. Meanwhile the main thread forks FORKS times (default 1000, argv[1]
// overrides); each child allocates and frees small and large blocks, then `_exit(0)`s.
// The parent polls each child with WNOHANG for up to CHILD_TIMEOUT_MS; a child still
// running then is killed and counted as hung. A child that exits non-zero or by a signal
// counts as failed.
//
// Prints one line, `fork_stress: N forks, H hung, F failed`, and exits 0 only if H and F
// are 0. Compile: gcc -O1 -pthread fork_stress.c -o fork_stress
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPAWNERS 3
#define CHILD_TIMEOUT_MS 10000

static atomic_int stop;
// A block handed from one short-lived thread to the next, freed by a thread that did not
// allocate it (cross-thread frees).
static _Atomic(void *) handoff[SPAWNERS];

static void *worker(void *arg) {
    int who = (int)(long)arg;
    enum { N = 96 };
    void *p[N];
    // Sizes over many size classes, so that the thread's exit has many spans to give back
    // (each under a central lock, some to the page heap under its lock).
    for (int i = 0; i < N; i++) {
        size_t n = (i % 16 == 15) ? 40000 + (size_t)i * 1000 : 8 + (size_t)i * (size_t)i * 3;
        p[i] = malloc(n);
        if (p[i]) memset(p[i], i, n < 64 ? n : 64);
    }
    for (int i = 0; i < N; i += 2) free(p[i]);
    void *old = atomic_exchange(&handoff[who], p[1]);
    free(old);
    for (int i = 3; i < N; i += 2) free(p[i]);
    return NULL;
}

static void *spawner(void *arg) {
    while (!atomic_load(&stop)) {
        pthread_t t[2];
        int made = 0;
        for (int i = 0; i < 2; i++)
            if (pthread_create(&t[i], NULL, worker, arg) == 0) made++;
        for (int i = 0; i < made; i++) pthread_join(t[i], NULL);
    }
    return NULL;
}

static int child_work(void) {
    // Small blocks of many size classes (refills reach the central lists and the page
    // heap), and large ones (the page heap).
    enum { SMALL = 64, LARGE = 4 };
    void *small[SMALL], *large[LARGE];
    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc(16 + (size_t)i * (size_t)i * 7);
        if (!small[i]) return 1;
        memset(small[i], 0xab, 16);
    }
    for (int i = 0; i < LARGE; i++) {
        large[i] = malloc(100000 + (size_t)i * 65536);
        if (!large[i]) return 2;
        memset(large[i], 0xcd, 4096);
    }
    void *r = realloc(small[0], 5000);
    if (!r) return 3;
    small[0] = r;
    for (int i = 0; i < SMALL; i++) free(small[i]);
    for (int i = 0; i < LARGE; i++) free(large[i]);
    return 0;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 1000;
    pthread_t sp[SPAWNERS];
    for (long i = 0; i < SPAWNERS; i++)
        if (pthread_create(&sp[i], NULL, spawner, (void *)i) != 0) {
            printf("fork_stress: cannot create spawner threads\n");
            return 2;
        }
    int hung = 0, failed = 0;
    for (int f = 0; f < forks; f++) {
        // The parent allocates too, between forks.
        void *keep = malloc(64 + (size_t)(f % 100) * 8);
        pid_t pid = fork();
        if (pid == 0) _exit(child_work());
        free(keep);
        if (pid < 0) {
            if (errno == EAGAIN) {
                f--;
                usleep(1000);
                continue;
            }
            failed++;
            continue;
        }
        long deadline = now_ms() + CHILD_TIMEOUT_MS;
        int status = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    failed++;
                    fprintf(stderr, "fork %d: child status %#x\n", f, status);
                }
                break;
            }
            if (r < 0 && errno != EINTR) {
                failed++;
                break;
            }
            if (now_ms() > deadline) {
                hung++;
                fprintf(stderr, "fork %d: child %d hung, killed\n", f, (int)pid);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                break;
            }
            usleep(200);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < SPAWNERS; i++) pthread_join(sp[i], NULL);
    for (int i = 0; i < SPAWNERS; i++) free(atomic_exchange(&handoff[i], NULL));
    printf("fork_stress: %d forks, %d hung, %d failed\n", forks, hung, failed);
    return hung == 0 && failed == 0 ? 0 : 1;
}
