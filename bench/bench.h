/*
 * bench.h - helpers shared by every benchmark group of sonde-bench.
 *
 * A group is a function `void sonde_bench_<group>(void)` listed in main.c's
 * table. It measures with the helpers below and prints one line per figure
 * with bench_print, in the form `name value unit`, so that scripts can read
 * the output with `awk '$1 == "counter_inc_1t" {print $2}'`. Every figure is
 * the median of several runs; each group measures its own baseline in the
 * same run so figures read as ratios on a noisy machine.
 *
 * Threading: the helpers are called from the main thread; bench_threads
 * starts its own threads and joins them before returning.
 */
#ifndef SONDE_BENCH_H
#define SONDE_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Keep a value or the memory behind a pointer alive: the compiler must
 * assume the asm reads p and may read or write any memory, so a store
 * through p before it cannot be dropped and a load after it is redone. */
#define BENCH_CLOBBER(p) __asm__ __volatile__("" : : "r"(p) : "memory")
/* Make the compiler forget what it knows about v (a register value). */
#define BENCH_OPAQUE(v) __asm__ __volatile__("" : "+r"(v))

/* Set by --quick: groups use fewer runs and iterations (smoke tests). */
extern int bench_quick;

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t bench_now_ns(void);

/* Median of v[0..n) (the mean of the two middle values when n is even).
 * Reorders v. Returns 0 for n == 0. */
double bench_median(double *v, size_t n);

/* Print one figure: `name value unit\n` on stdout, value with 2 decimals
 * (3 significant digits for values below 1), flushed at once so progress
 * shows while later figures run. */
void bench_print(const char *name, double value, const char *unit);

/* Iteration and run counts scaled for --quick: full normally, full / 10
 * (at least 1) under --quick. */
uint64_t bench_iters(uint64_t full);
/* Runs for a median: full normally, 3 under --quick (never below 1; never
 * above full). */
unsigned bench_runs(unsigned full);

/* A measured body: do `iters` operations. tid is the thread's index in
 * [0, nthreads) (0 for single-threaded runs); arg is the caller's. */
typedef void (*bench_body_fn)(void *arg, unsigned tid, uint64_t iters);

/* Run body once on the calling thread; returns ns per operation. */
double bench_run_1t(bench_body_fn body, void *arg, uint64_t iters);

/* Median over `runs` runs of bench_run_1t. */
double bench_median_1t(bench_body_fn body, void *arg, uint64_t iters, unsigned runs);

/*
 * Run body on k new threads (1 <= k <= 64) released together by a barrier;
 * each thread times its own `iters` operations. Writes each thread's ns per
 * operation to ns_per_op[0..k) and returns their mean, or a negative value
 * when a thread could not be started. The calling thread only waits.
 */
double bench_threads(unsigned k, bench_body_fn body, void *arg, uint64_t iters, double *ns_per_op);

/* Median over `runs` runs of the per-thread mean ns/op of bench_threads. */
double bench_median_threads(unsigned k, bench_body_fn body, void *arg, uint64_t iters,
                            unsigned runs);

/*
 * A set of measurements run round-robin: every round runs each case once,
 * in order, so slow drifts of a shared machine (other jobs starting and
 * stopping) hit every case alike and ratios between cases stay meaningful.
 * threads 1 runs on the calling thread; more uses bench_threads. Each
 * case's result is the median over the rounds of its ns per operation (per
 * thread). Nothing is printed.
 */
typedef struct bench_case {
    unsigned threads;
    bench_body_fn body;
    void *arg;
    uint64_t iters;
    double result; /* out: median ns/op */
} bench_case;

void bench_cases_run(bench_case *cases, size_t n, unsigned rounds);

/* Resident set size of the process in bytes (VmRSS of /proc/self/status),
 * or 0 when unavailable. */
uint64_t bench_rss_bytes(void);

/* ---- groups (main.c calls them through its table) ---- */
void sonde_bench_metrics(void); /* bench_metrics.c */
void sonde_bench_log(void);     /* bench_log.c; weak in main.c until it exists */
void sonde_bench_trace(void);   /* bench_trace.c */
void sonde_bench_errors(void);  /* bench_errors.c */
void sonde_bench_sql(void);     /* bench_sql.c */
void sonde_bench_expose(void);  /* bench_expose.c */
void sonde_bench_app(void);     /* bench_app.c */
void sonde_bench_export(void);  /* bench_export.c */
void sonde_bench_rules(void);   /* bench_rules.c */

#endif
