/* Shared benchmark helpers; see bench.h. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_quick;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print(const char *name, double value, const char *unit)
{
    if (value >= 1 || value <= -1 || value == 0)
        printf("%s %.2f %s\n", name, value, unit);
    else
        printf("%s %.3g %s\n", name, value, unit);
    fflush(stdout);
}

uint64_t bench_iters(uint64_t full)
{
    if (!bench_quick)
        return full;
    return full / 10 ? full / 10 : 1;
}

unsigned bench_runs(unsigned full)
{
    if (full == 0)
        return 1;
    if (bench_quick && full > 3)
        return 3;
    return full;
}

double bench_run_1t(bench_body_fn body, void *arg, uint64_t iters)
{
    uint64_t t0 = bench_now_ns();
    body(arg, 0, iters);
    uint64_t t1 = bench_now_ns();
    return iters ? (double)(t1 - t0) / (double)iters : 0;
}

double bench_median_1t(bench_body_fn body, void *arg, uint64_t iters, unsigned runs)
{
    double v[64];
    if (runs == 0)
        runs = 1;
    if (runs > 64)
        runs = 64;
    for (unsigned r = 0; r < runs; r++)
        v[r] = bench_run_1t(body, arg, iters);
    return bench_median(v, runs);
}

/* ---- threads ---- */

struct thread_ctx {
    pthread_barrier_t *barrier;
    bench_body_fn body;
    void *arg;
    unsigned tid;
    uint64_t iters;
    double ns_per_op;
};

static void *thread_main(void *p)
{
    struct thread_ctx *c = p;
    /* Every thread starts its clock when the last one arrives, so the
     * timed parts overlap as much as the scheduler allows. */
    pthread_barrier_wait(c->barrier);
    uint64_t t0 = bench_now_ns();
    c->body(c->arg, c->tid, c->iters);
    uint64_t t1 = bench_now_ns();
    c->ns_per_op = c->iters ? (double)(t1 - t0) / (double)c->iters : 0;
    return NULL;
}

double bench_threads(unsigned k, bench_body_fn body, void *arg, uint64_t iters, double *ns_per_op)
{
    if (k == 0 || k > 64)
        return -1;
    pthread_t th[64];
    struct thread_ctx ctx[64];
    pthread_barrier_t barrier;
    if (pthread_barrier_init(&barrier, NULL, k) != 0)
        return -1;
    unsigned started = 0;
    for (unsigned i = 0; i < k; i++) {
        ctx[i] = (struct thread_ctx){&barrier, body, arg, i, iters, 0};
        if (pthread_create(&th[i], NULL, thread_main, &ctx[i]) != 0)
            break;
        started++;
    }
    if (started < k) {
        /* The started threads wait at the barrier forever; nothing sane is
         * left to measure. */
        fprintf(stderr, "sonde-bench: could not start %u threads\n", k);
        exit(1);
    }
    double sum = 0;
    for (unsigned i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        if (ns_per_op)
            ns_per_op[i] = ctx[i].ns_per_op;
        sum += ctx[i].ns_per_op;
    }
    pthread_barrier_destroy(&barrier);
    return sum / k;
}

double bench_median_threads(unsigned k, bench_body_fn body, void *arg, uint64_t iters,
                            unsigned runs)
{
    double v[64];
    if (runs == 0)
        runs = 1;
    if (runs > 64)
        runs = 64;
    for (unsigned r = 0; r < runs; r++)
        v[r] = bench_threads(k, body, arg, iters, NULL);
    return bench_median(v, runs);
}

void bench_cases_run(bench_case *cases, size_t n, unsigned rounds)
{
    if (rounds == 0)
        rounds = 1;
    if (rounds > 64)
        rounds = 64;
    double *v = calloc(n * rounds, sizeof *v);
    if (!v) {
        fprintf(stderr, "sonde-bench: out of memory\n");
        exit(1);
    }
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            bench_case *c = &cases[i];
            v[i * rounds + r] = c->threads <= 1
                                    ? bench_run_1t(c->body, c->arg, c->iters)
                                    : bench_threads(c->threads, c->body, c->arg, c->iters, NULL);
        }
    }
    for (size_t i = 0; i < n; i++)
        cases[i].result = bench_median(v + i * rounds, rounds);
    free(v);
}

uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end = NULL;
            kb = strtoull(line + 6, &end, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}
