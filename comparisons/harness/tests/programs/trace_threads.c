/* A small threaded program for the trace tests: every call of the malloc family, blocks
 * handed between threads through a mutex-guarded queue (so frees cross threads), and an
 * optional fork whose child allocates too. Prints a checksum of what it stored. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 3
#define PER_THREAD 4000
#define QUEUE 64

static void *queue[QUEUE];
static int queued;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t sums[THREADS];
/* Made by the main thread, freed by the workers: cross-thread frees whatever the schedule. */
#define HANDED 300
static char *handed[HANDED];

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t sum = 0;
    void *keep[16] = {0};
    for (int i = id; i < HANDED; i += THREADS) {
        sum += (unsigned char)handed[i][0];
        free(handed[i]);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = 8 + (size_t)((i * 37 + id * 11) % 600);
        unsigned char *p;
        switch (i % 5) {
        case 0: p = malloc(n); break;
        case 1: p = calloc(1, n); break;
        case 2: if (posix_memalign((void **)&p, 64, n)) p = NULL; break;
        case 3: p = aligned_alloc(32, 32 * ((n + 31) / 32)); break;
        default: p = realloc(NULL, n); break;
        }
        if (!p) { fprintf(stderr, "allocation failed\n"); exit(1); }
        memset(p, id + 1, n);
        if (i % 3 == 0) {
            p = realloc(p, n * 2);
            if (!p) { fprintf(stderr, "realloc failed\n"); exit(1); }
        }
        sum += p[0] + n;
        /* Hand every other block to whichever thread takes it next. */
        pthread_mutex_lock(&lock);
        void *other = NULL;
        if (queued == QUEUE || (i % 2 == 0 && queued > 0)) other = queue[--queued];
        if (i % 2 == 1 && queued < QUEUE) { queue[queued++] = p; p = NULL; }
        pthread_mutex_unlock(&lock);
        free(other);
        if (p) {
            int k = i % 16;
            free(keep[k]);
            keep[k] = p;
        }
    }
    for (int k = 0; k < 16; k++) free(keep[k]);
    sums[id] = sum;
    return NULL;
}

int main(int argc, char **argv) {
    int do_fork = argc > 1 && strcmp(argv[1], "fork") == 0;
    pthread_t t[THREADS];
    for (int i = 0; i < HANDED; i++) {
        handed[i] = malloc(16 + i);
        if (!handed[i]) return 1;
        handed[i][0] = (char)i;
    }
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    while (queued > 0) free(queue[--queued]);
    if (do_fork) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *s[100];
            for (int i = 0; i < 100; i++) s[i] = malloc(100 + i);
            for (int i = 0; i < 100; i++) free(s[i]);
            exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "child failed\n"); return 1; }
    }
    uint64_t total = 0;
    for (int i = 0; i < THREADS; i++) total += sums[i];
    printf("checksum %llu\n", (unsigned long long)total);
    return 0;
}
