/*
 * Metrics benchmarks: the hot path (counter, gauge, histogram, summary,
 * labelled lookups) against plain thread-local and atomic baselines measured
 * in the same run, exposition time for 10k/100k/1M series, and resident
 * memory per series.
 *
 * Every hot-path body calls the library through its public functions, which
 * live in another translation unit (no LTO), so the compiler cannot drop or
 * merge the calls; after the timed runs the counters' totals are checked
 * against the number of operations performed.
 */
#include "bench.h"

#include <sonde/metrics.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ~10M operations per run for the cheap figures. */
#define HOT_ITERS 10000000u
#define HOT_RUNS 11

/* Report a failed setup step and end the program: a benchmark built on a
 * sink series would measure nothing. */
static void check(int rc, const char *what)
{
    if (rc != SONDE_OK) {
        fprintf(stderr, "sonde-bench: %s failed: %s (%s)\n", what, sonde_strerror(rc),
                sonde_last_error());
        exit(1);
    }
}

static void verify_counter(const sonde_counter *c, uint64_t want, const char *what)
{
    double got = sonde_counter_get(c);
    if (got != (double)want)
        fprintf(stderr, "sonde-bench: %s: counter is %.0f, expected %llu\n", what, got,
                (unsigned long long)want);
}

/* ------------------------------------------------------------------------ */
/* Baselines                                                                */

static __thread uint64_t tls_word;

/* One add to a thread-local word per operation. The clobber makes the
 * compiler load and store the word on every iteration, as the library
 * must, instead of adding n once. */
static void body_tls_inc(void *arg, unsigned tid, uint64_t n)
{
    (void)arg;
    (void)tid;
    uint64_t *p = &tls_word;
    for (uint64_t i = 0; i < n; i++) {
        (*p)++;
        BENCH_CLOBBER(p);
    }
}

static __thread double tls_sum;

/* One double added to a thread-local word per operation: the floor of a
 * histogram observation, which must add v to its series' sum cell (a
 * load, an FP add and a store that the next observation waits for). */
static void body_tls_f64_add(void *arg, unsigned tid, uint64_t n)
{
    (void)arg;
    (void)tid;
    double *p = &tls_sum;
    for (uint64_t i = 0; i < n; i++) {
        *p += 0.25;
        BENCH_CLOBBER(p);
    }
}

struct padded_word {
    _Alignas(64) _Atomic uint64_t v;
    char pad[64 - sizeof(uint64_t)];
};
static struct padded_word atomic_words[2];

static void body_atomic_shared(void *arg, unsigned tid, uint64_t n)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < n; i++)
        atomic_fetch_add_explicit(&atomic_words[0].v, 1, memory_order_relaxed);
}

static void body_atomic_separate(void *arg, unsigned tid, uint64_t n)
{
    (void)arg;
    _Atomic uint64_t *w = &atomic_words[tid & 1].v;
    for (uint64_t i = 0; i < n; i++)
        atomic_fetch_add_explicit(w, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Hot path                                                                 */

static void body_counter_inc(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_counter *c = arg;
    for (uint64_t i = 0; i < n; i++)
        sonde_counter_inc(c);
}

/* Ten label combinations, looked up by value on every operation. */
static const char *const lab_method[10] = {"GET", "POST", "PUT", "DELETE", "PATCH",
                                           "GET", "POST", "PUT", "DELETE", "PATCH"};
static const char *const lab_code[10] = {"200", "200", "200", "200", "200",
                                         "500", "500", "500", "500", "500"};

static void body_counter_labels(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_family *fam = arg;
    unsigned j = 0;
    for (uint64_t i = 0; i < n; i++) {
        sonde_counter_inc(sonde_family_counter(fam, lab_method[j], lab_code[j]));
        if (++j == 10)
            j = 0;
    }
}

static void body_gauge_set(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_gauge *g = arg;
    for (uint64_t i = 0; i < n; i++)
        sonde_gauge_set(g, (double)i);
}

/* Sixteen values spanning the default buckets (.005 ... 10) and +Inf, so
 * every bucket is hit and the bucket search is not always the same. */
static const double obs_values[16] = {0.003, 0.008, 0.02, 0.04, 0.07,  0.2, 0.4, 0.8,
                                      2,     4,     8,    20,   0.001, 0.3, 1.5, 6};

static void body_histogram(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_histogram *h = arg;
    for (uint64_t i = 0; i < n; i++)
        sonde_histogram_observe(h, obs_values[i & 15]);
}

static void body_summary(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_summary *s = arg;
    for (uint64_t i = 0; i < n; i++)
        sonde_summary_observe(s, obs_values[i & 15]);
}

/* Indexes into the case table of bench_hot_path, in run and print order. */
enum {
    C_TLS,
    C_TLS_F64,
    C_ATOMIC_1T,
    C_ATOMIC_2T_SHARED,
    C_ATOMIC_2T_SEPARATE,
    C_INC_1T,
    C_INC_2T,
    C_LABELS,
    C_KEPT,
    C_GAUGE,
    C_HIST_1T,
    C_HIST_2T,
    C_SUMMARY,
    C_COUNT
};

/* Baselines and hot-path figures, run round-robin (bench_cases_run) so
 * that every figure and its baseline see the same machine conditions. */
static void bench_hot_path(void)
{
    uint64_t n = bench_iters(HOT_ITERS);
    unsigned runs = bench_runs(HOT_RUNS);
    sonde_registry *reg;
    check(sonde_registry_create(NULL, &reg), "sonde_registry_create");

    sonde_counter *c;
    check(sonde_counter_create(reg, "bench_counter_total", "Benchmark counter.", &c),
          "sonde_counter_create");
    sonde_counter_inc(c); /* attach this thread's cells outside the timing */

    /* Labelled counter: lookup by value each time, and a kept child. */
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *names[2] = {"method", "code"};
    o.name = "bench_requests_total";
    o.help = "Benchmark labelled counter.";
    o.label_names = names;
    o.label_count = 2;
    sonde_family *fam;
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &fam), "sonde_family_create(counter)");
    body_counter_labels(fam, 0, 10); /* create the ten series */
    /* The kept child is an eleventh series, so the lookups above never
     * touch it and its total can be checked. */
    sonde_counter *kept = sonde_family_counter(fam, "HEAD", "204");
    double kept_before = sonde_counter_get(kept);

    sonde_gauge *g;
    check(sonde_gauge_create(reg, "bench_gauge", "Benchmark gauge.", &g), "sonde_gauge_create");

    sonde_histogram *h;
    check(
        sonde_histogram_create(reg, "bench_histogram_seconds", "Benchmark histogram.", NULL, 0, &h),
        "sonde_histogram_create");

    static const double objectives[3] = {0.5, 0.9, 0.99};
    sonde_metric_opts_init(&o);
    o.name = "bench_summary_seconds";
    o.help = "Benchmark summary.";
    o.quantiles = objectives;
    o.quantile_count = 3;
    sonde_family *sfam;
    check(sonde_family_create(reg, SONDE_SUMMARY, &o, &sfam), "sonde_family_create(summary)");
    sonde_summary *s = sonde_family_as_summary(sfam);

    /* The lookups and the summary cost tens of ns: fewer operations. */
    uint64_t nl = bench_iters(HOT_ITERS / 2), ns = bench_iters(HOT_ITERS / 5);
    bench_case cs[C_COUNT] = {
        [C_TLS] = {1, body_tls_inc, NULL, n, 0},
        [C_TLS_F64] = {1, body_tls_f64_add, NULL, n, 0},
        [C_ATOMIC_1T] = {1, body_atomic_shared, NULL, n, 0},
        [C_ATOMIC_2T_SHARED] = {2, body_atomic_shared, NULL, n, 0},
        [C_ATOMIC_2T_SEPARATE] = {2, body_atomic_separate, NULL, n, 0},
        [C_INC_1T] = {1, body_counter_inc, c, n, 0},
        [C_INC_2T] = {2, body_counter_inc, c, n, 0},
        [C_LABELS] = {1, body_counter_labels, fam, nl, 0},
        [C_KEPT] = {1, body_counter_inc, kept, n, 0},
        [C_GAUGE] = {1, body_gauge_set, g, n, 0},
        [C_HIST_1T] = {1, body_histogram, h, n, 0},
        [C_HIST_2T] = {2, body_histogram, h, n, 0},
        [C_SUMMARY] = {1, body_summary, s, ns, 0},
    };
    tls_word = 0;
    bench_cases_run(cs, C_COUNT, runs);

    bench_print("baseline_tls_inc_1t", cs[C_TLS].result, "ns/op");
    bench_print("baseline_tls_f64_add_1t", cs[C_TLS_F64].result, "ns/op");
    bench_print("baseline_atomic_add_1t", cs[C_ATOMIC_1T].result, "ns/op");
    bench_print("baseline_atomic_add_2t_shared", cs[C_ATOMIC_2T_SHARED].result, "ns/op");
    bench_print("baseline_atomic_add_2t_separate", cs[C_ATOMIC_2T_SEPARATE].result, "ns/op");
    bench_print("counter_inc_1t", cs[C_INC_1T].result, "ns/op");
    bench_print("counter_inc_2t_same", cs[C_INC_2T].result, "ns/op");
    /* Throughput of 2 threads (2 / per-thread ns) over that of 1. */
    bench_print("counter_inc_2t_scaling", 2 * cs[C_INC_1T].result / cs[C_INC_2T].result, "x");
    bench_print("counter_inc_labels_2", cs[C_LABELS].result, "ns/op");
    bench_print("counter_inc_kept_child", cs[C_KEPT].result, "ns/op");
    bench_print("gauge_set", cs[C_GAUGE].result, "ns/op");
    bench_print("histogram_observe_1t", cs[C_HIST_1T].result, "ns/op");
    bench_print("histogram_observe_2t", cs[C_HIST_2T].result, "ns/op");
    bench_print("histogram_observe_2t_scaling", 2 * cs[C_HIST_1T].result / cs[C_HIST_2T].result,
                "x");
    bench_print("summary_observe", cs[C_SUMMARY].result, "ns/op");

    /* The work was really done: every operation is in the totals. */
    if (tls_word != n * runs)
        fprintf(stderr, "sonde-bench: baseline_tls_inc_1t: %llu increments, expected %llu\n",
                (unsigned long long)tls_word, (unsigned long long)(n * runs));
    verify_counter(c, 1 + 3 * n * runs, "counter_inc");
    if (sonde_counter_get(kept) - kept_before != (double)(n * runs))
        fprintf(stderr, "sonde-bench: counter_inc_kept_child: total does not match\n");
    if (sonde_family_series_count(fam) != 11)
        fprintf(stderr, "sonde-bench: counter_inc_labels_2: %zu series, expected 11\n",
                sonde_family_series_count(fam));
    if (sonde_histogram_get_count(h) != 3 * n * runs)
        fprintf(stderr, "sonde-bench: histogram_observe: count %llu, expected %llu\n",
                (unsigned long long)sonde_histogram_get_count(h),
                (unsigned long long)(3 * n * runs));
    if (sonde_summary_get_count(s) != ns * runs)
        fprintf(stderr, "sonde-bench: summary_observe: count does not match\n");

    sonde_registry_destroy(reg);
}

/* ------------------------------------------------------------------------ */
/* Exposition                                                               */

/* A registry with one counter family, label `path`, and n series each
 * incremented once. max_series is raised to n. */
static sonde_registry *build_paths(size_t n, sonde_family **fam_out)
{
    sonde_registry *reg;
    check(sonde_registry_create(NULL, &reg), "sonde_registry_create");
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *names[1] = {"path"};
    o.name = "http_requests_total";
    o.help = "Requests served, by path.";
    o.label_names = names;
    o.label_count = 1;
    o.max_series = n;
    sonde_family *fam;
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &fam), "sonde_family_create(paths)");
    char path[48];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(path, sizeof path, "/api/v1/items/%06zu", i);
        if (len < 0 || (size_t)len >= sizeof path) {
            fprintf(stderr, "sonde-bench: path label truncated\n");
            exit(1);
        }
        sonde_counter_inc(sonde_family_counter(fam, path));
    }
    if (sonde_family_series_count(fam) != n) {
        fprintf(stderr, "sonde-bench: built %zu series, expected %zu\n",
                sonde_family_series_count(fam), n);
        exit(1);
    }
    *fam_out = fam;
    return reg;
}

/* Median ms of rendering reg in fmt into a reused buffer; *bytes gets the
 * exposition's size. */
static double time_render(sonde_registry *reg, sonde_format fmt, unsigned runs, size_t *bytes)
{
    sonde_buf buf;
    sonde_buf_init(&buf);
    /* One untimed render grows the buffer to its final size. */
    check(sonde_registry_write(reg, fmt, NULL, &buf), "sonde_registry_write");
    double ms[64];
    if (runs > 64)
        runs = 64;
    for (unsigned r = 0; r < runs; r++) {
        sonde_buf_reset(&buf);
        uint64_t t0 = bench_now_ns();
        int rc = sonde_registry_write(reg, fmt, NULL, &buf);
        uint64_t t1 = bench_now_ns();
        check(rc, "sonde_registry_write");
        ms[r] = (double)(t1 - t0) / 1e6;
    }
    *bytes = buf.len;
    sonde_buf_free(&buf);
    return bench_median(ms, runs);
}

static void bench_render(size_t n, const char *tag, unsigned runs)
{
    char name[64];
    sonde_family *fam;
    sonde_registry *reg = build_paths(n, &fam);
    size_t bytes = 0;
    double ms = time_render(reg, SONDE_FORMAT_PROMETHEUS, bench_runs(runs), &bytes);
    if (bytes < n * 40)
        fprintf(stderr, "sonde-bench: render %s: only %zu bytes\n", tag, bytes);
    int len = snprintf(name, sizeof name, "render_prometheus_%s", tag);
    if (len > 0 && (size_t)len < sizeof name)
        bench_print(name, ms, "ms");
    len = snprintf(name, sizeof name, "render_prometheus_%s_mbps", tag);
    if (len > 0 && (size_t)len < sizeof name)
        bench_print(name, (double)bytes / 1e6 / (ms / 1e3), "MB/s");
    if (n == 100000) {
        ms = time_render(reg, SONDE_FORMAT_OPENMETRICS, bench_runs(runs), &bytes);
        bench_print("render_openmetrics_100k", ms, "ms");
    }
    sonde_registry_destroy(reg);
}

static void bench_exposition(void)
{
    bench_render(10000, "10k", 11);
    bench_render(100000, "100k", 7);
    bench_render(1000000, "1m", 5);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */

/*
 * Resident bytes per counter series with one label (100k series, values
 * like /api/v1/items/000123): RSS after creating and incrementing them minus
 * RSS before, in a fresh registry whose family already exists. Includes the
 * series, its label text, the lookup table and the calling thread's cells
 * (one thread; every further updating thread adds 16 B per series).
 * Measured first, before other benchmarks free memory the allocator would
 * reuse without growing the RSS.
 */
static double measure_bytes_per_series(void)
{
    const size_t n = 100000;
    sonde_registry *reg;
    check(sonde_registry_create(NULL, &reg), "sonde_registry_create");
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *names[1] = {"path"};
    o.name = "http_requests_total";
    o.help = "Requests served, by path.";
    o.label_names = names;
    o.label_count = 1;
    o.max_series = n + 1;
    sonde_family *fam;
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &fam), "sonde_family_create(memory)");
    /* Attach this thread's cell block before the first reading. */
    sonde_counter_inc(sonde_family_counter(fam, "/warm-up"));
    uint64_t before = bench_rss_bytes();
    char path[48];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(path, sizeof path, "/api/v1/items/%06zu", i);
        if (len < 0 || (size_t)len >= sizeof path)
            exit(1);
        sonde_counter_inc(sonde_family_counter(fam, path));
    }
    uint64_t after = bench_rss_bytes();
    size_t created = sonde_family_series_count(fam) - 1;
    sonde_registry_destroy(reg);
    if (created != n || before == 0 || after < before)
        return -1;
    return (double)(after - before) / (double)n;
}

void sonde_bench_metrics(void)
{
    double bps = measure_bytes_per_series();
    bench_hot_path();
    bench_exposition();
    bench_print("bytes_per_series", bps, "B");
}
