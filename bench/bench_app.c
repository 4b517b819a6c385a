/*
 * Benchmarks of request instrumentation (group "app"):
 *   app_clock_pair_1t           two monotonic clock reads (baseline: the
 *                               floor of any timed request)
 *   app_metrics_only_1t         what the Prometheus part costs by hand:
 *                               gauge inc/dec, counter inc, histogram
 *                               observe (baseline)
 *   app_begin_end_1t            sonde_http_begin + sonde_http_end with a
 *                               resolved route, no tracing (target <= 150 ns)
 *   app_begin_end_traced_1t     the same with tracing (operation = route)
 */
#include "bench.h"

#include <sonde.h>
#include <sonde/app.h>

#include <stdio.h>
#include <time.h>

static sonde_histogram *hist;
static sonde_counter *ctr;
static sonde_gauge *gauge;

static void body_clock_pair(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    uint64_t x = 0;
    for (uint64_t i = 0; i < iters; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        x += (uint64_t)(b.tv_nsec - a.tv_nsec);
        BENCH_OPAQUE(x);
    }
}

static void body_metrics_only(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_gauge_inc(gauge);
        sonde_counter_inc(ctr);
        sonde_histogram_observe(hist, 0.000001);
        sonde_gauge_dec(gauge);
    }
}

typedef struct {
    sonde_http_instr *in;
    sonde_http_route *r;
} bargs;

static void body_begin_end(void *arg, unsigned tid, uint64_t iters)
{
    (void)tid;
    bargs *a = arg;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_http_req q;
        sonde_http_begin(a->in, &q, a->r, SONDE_HTTP_GET, NULL);
        BENCH_CLOBBER(&q);
        sonde_http_end(&q, 200, 512);
    }
}

void sonde_bench_app(void)
{
    sonde_registry *reg = NULL;
    if (sonde_registry_create(NULL, &reg) != SONDE_OK)
        return;
    sonde_family *f;
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "bench_base_seconds";
    mo.help = "baseline";
    sonde_family_create(reg, SONDE_HISTOGRAM, &mo, &f);
    hist = sonde_family_as_histogram(f);
    mo.name = "bench_base_total";
    sonde_family_create(reg, SONDE_COUNTER, &mo, &f);
    ctr = sonde_family_as_counter(f);
    mo.name = "bench_base_in_flight";
    sonde_family_create(reg, SONDE_GAUGE, &mo, &f);
    gauge = sonde_family_as_gauge(f);

    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.registry = reg;
    o.metric_namespace = "bench";
    o.no_trace = 1;
    sonde_http_instr *plain = NULL, *traced = NULL;
    if (sonde_http_instr_create(&o, &plain) != SONDE_OK)
        return;
    o.metric_namespace = "bench_traced";
    o.no_trace = 0;
    sonde_trace_opts to;
    sonde_trace_opts_init(&to);
    to.store = "off";
    int trace_ok = sonde_trace_start(&to) == SONDE_OK;
    if (sonde_http_instr_create(&o, &traced) != SONDE_OK)
        traced = NULL;
    uint64_t n = bench_iters(2000000);
    unsigned runs = bench_runs(7);
    bench_print("app_clock_pair_1t", bench_median_1t(body_clock_pair, NULL, n, runs), "ns/op");
    bench_print("app_metrics_only_1t", bench_median_1t(body_metrics_only, NULL, n, runs), "ns/op");
    bargs a = {plain, sonde_http_instr_route(plain, "/items/{id}")};
    double ns = bench_median_1t(body_begin_end, &a, n, runs);
    bench_print("app_begin_end_1t", ns, "ns/op");
    bench_print("app_begin_end_1t_ops", 1e9 / ns, "ops/s");
    if (traced) {
        bargs b = {traced, sonde_http_instr_route(traced, "/items/{id}")};
        bench_print("app_begin_end_traced_1t", bench_median_1t(body_begin_end, &b, n, runs),
                    "ns/op");
    }
    sonde_http_instr_destroy(plain);
    sonde_http_instr_destroy(traced);
    if (trace_ok)
        sonde_trace_stop();
    sonde_registry_destroy(reg);
}
