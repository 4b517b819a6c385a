/*
 * Benchmarks of performance tracing (group "trace"):
 *   trace_clock_pair_1t      two reads of the tracing clock: the floor of a
 *                            timed operation (baseline)
 *   metrics_only_1t          histogram observe + counter inc: what the
 *                            Prometheus part of an operation costs (baseline)
 *   op_begin_end_1t          sonde_op_begin_op + sonde_op_end with a handle:
 *                            both clock reads, histogram, counter and the
 *                            minute window
 *   op_begin_end_by_name_1t  the same looking the name up every time
 *   op_begin_end_2t          per-thread cost with two threads at once
 *   op_2t_throughput         operations per second of those two threads
 * Tracing runs as in a service: started (store off), its flush collecting
 * minutes on the runtime worker meanwhile.
 */
#include "bench.h"

#include <sonde.h>

#include <stdio.h>

#include "trace/trace_int.h"

static sonde_histogram *hist;
static sonde_counter *ctr;

static void body_clock_pair(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    uint64_t x = 0;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t a = trace_ticks();
        uint64_t b = trace_ticks();
        x += b - a;
        BENCH_OPAQUE(x);
    }
}

static void body_metrics_only(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_histogram_observe(hist, 0.000001);
        sonde_counter_inc(ctr);
    }
}

static void body_begin_end(void *arg, unsigned tid, uint64_t iters)
{
    (void)tid;
    sonde_op *op = arg;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_op_token t = sonde_op_begin_op(op);
        BENCH_CLOBBER(&t);
        sonde_op_end(t, 1);
    }
}

static void body_by_name(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++)
        sonde_op_end(sonde_op_begin("bench_trace_by_name"), 1);
}

void sonde_bench_trace(void)
{
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.store = "off";
    int rc = sonde_trace_start(&o);
    if (rc != SONDE_OK) {
        fprintf(stderr, "bench trace: sonde_trace_start: %s\n", sonde_strerror(rc));
        return;
    }
    sonde_op *op = sonde_op_get("bench_trace");
    sonde_op *op2 = sonde_op_get("bench_trace_2t");
    sonde_op_get("bench_trace_by_name");
    sonde_family *hf, *cf;
    sonde_metric_opts mo;
    const char *l1[] = {"operation"}, *l2[] = {"operation", "result"};
    sonde_metric_opts_init(&mo);
    mo.name = "bench_trace_baseline_seconds";
    mo.help = "Baseline histogram.";
    mo.label_names = l1;
    mo.label_count = 1;
    sonde_family_create(NULL, SONDE_HISTOGRAM, &mo, &hf);
    sonde_metric_opts_init(&mo);
    mo.name = "bench_trace_baseline_total";
    mo.help = "Baseline counter.";
    mo.label_names = l2;
    mo.label_count = 2;
    sonde_family_create(NULL, SONDE_COUNTER, &mo, &cf);
    hist = sonde_family_histogram(hf, "x");
    ctr = sonde_family_counter(cf, "x", "success");
    if (!op || !op2 || !hist || !ctr) {
        fprintf(stderr, "bench trace: setup failed\n");
        sonde_trace_stop();
        return;
    }
    uint64_t n = bench_iters(5000000);
    /* Warm up: first use sets up the thread's cells and accumulator. */
    body_begin_end(op, 0, 1000);
    body_by_name(NULL, 0, 1000);
    body_metrics_only(NULL, 0, 1000);
    bench_case cases[] = {
        {1, body_clock_pair, NULL, n, 0},
        {1, body_metrics_only, NULL, n, 0},
        {1, body_begin_end, op, n, 0},
        {1, body_by_name, NULL, n, 0},
    };
    bench_cases_run(cases, sizeof cases / sizeof cases[0], bench_runs(7));
    bench_print("trace_clock_pair_1t", cases[0].result, "ns/op");
    bench_print("metrics_only_1t", cases[1].result, "ns/op");
    bench_print("op_begin_end_1t", cases[2].result, "ns/op");
    bench_print("op_begin_end_by_name_1t", cases[3].result, "ns/op");
    double per = bench_median_threads(2, body_begin_end, op2, n, bench_runs(5));
    bench_print("op_begin_end_2t", per, "ns/op");
    bench_print("op_2t_throughput", per > 0 ? 2e9 / per : 0, "ops/s");
    sonde_trace_stop();
}
