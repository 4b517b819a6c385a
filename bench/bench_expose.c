/*
 * Benchmark group "expose": exposition formats and the newer hot-path
 * options, each against a baseline measured in the same run.
 *
 *   render_{text,openmetrics,protobuf}_{10k,100k}  ms to render a registry
 *       of one labelled counter family with that many series (text is the
 *       baseline)
 *   observe_classic / observe_native       ns per histogram observation,
 *       default classic buckets vs a native histogram (factor 1.1, schema 3)
 *   native_vs_classic                      the ratio (target <= 1.5)
 *   inc_plain / inc_exemplar               ns per counter increment, plain vs
 *       sonde_counter_add_exemplar with a {trace_id} exemplar
 *   exemplar_extra                         the difference (target <= 10 ns)
 *   inc_ttl                                ns per increment of a series in a
 *       family with a series TTL (vs inc_plain: the touch of the coarse clock)
 */
#include "bench.h"

#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>

static void check(int rc, const char *what)
{
    if (rc != SONDE_OK) {
        fprintf(stderr, "sonde-bench expose: %s failed: %s (%s)\n", what, sonde_strerror(rc),
                sonde_registry_last_error());
        exit(1);
    }
}

static sonde_registry *build(size_t n)
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
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &fam), "sonde_family_create");
    char path[48];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/api/v1/items/%06zu", i);
        sonde_counter_add(sonde_family_counter(fam, path), (double)(i % 1000));
    }
    return reg;
}

static double time_render(sonde_registry *reg, sonde_format fmt, unsigned runs)
{
    sonde_buf buf;
    sonde_buf_init(&buf);
    check(sonde_registry_write(reg, fmt, NULL, &buf), "sonde_registry_write");
    double ms[64];
    if (runs > 64)
        runs = 64;
    for (unsigned r = 0; r < runs; r++) {
        sonde_buf_reset(&buf);
        uint64_t t0 = bench_now_ns();
        check(sonde_registry_write(reg, fmt, NULL, &buf), "sonde_registry_write");
        ms[r] = (double)(bench_now_ns() - t0) / 1e6;
    }
    sonde_buf_free(&buf);
    return bench_median(ms, runs);
}

static void render(size_t n, const char *tag, unsigned runs)
{
    sonde_registry *reg = build(n);
    static const struct {
        sonde_format f;
        const char *name;
    } fmts[] = {{SONDE_FORMAT_PROMETHEUS, "text"},
                {SONDE_FORMAT_OPENMETRICS, "openmetrics"},
                {SONDE_FORMAT_PROTOBUF, "protobuf"}};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "render_%s_%s", fmts[i].name, tag);
        bench_print(name, time_render(reg, fmts[i].f, bench_runs(runs)), "ms");
    }
    sonde_registry_destroy(reg);
}

static void body_observe(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_histogram *h = arg;
    double v = 0.0001;
    for (uint64_t i = 0; i < n; i++) {
        sonde_histogram_observe(h, v);
        v = v < 50 ? v * 1.37 : 0.0001; /* spread over many buckets */
    }
}

static void body_inc(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_counter *c = arg;
    for (uint64_t i = 0; i < n; i++)
        sonde_counter_inc(c);
}

static void body_inc_exemplar(void *arg, unsigned tid, uint64_t n)
{
    (void)tid;
    sonde_counter *c = arg;
    const char *kv[2] = {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"};
    for (uint64_t i = 0; i < n; i++)
        sonde_counter_add_exemplar(c, 1, kv, 1);
}

void sonde_bench_expose(void)
{
    render(10000, "10k", 11);
    render(100000, "100k", 7);

    sonde_registry *reg;
    check(sonde_registry_create(NULL, &reg), "sonde_registry_create");
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "bench_classic_seconds";
    sonde_family *cf, *nf, *pf, *ef, *tf;
    check(sonde_family_create(reg, SONDE_HISTOGRAM, &o, &cf), "classic histogram");
    o.name = "bench_native_seconds";
    o.native_bucket_factor = 1.1;
    check(sonde_family_create(reg, SONDE_HISTOGRAM, &o, &nf), "native histogram");
    sonde_metric_opts_init(&o);
    o.name = "bench_plain_total";
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &pf), "counter");
    o.name = "bench_exemplar_total";
    o.exemplars = SONDE_EXEMPLARS_ON;
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &ef), "exemplar counter");
    sonde_metric_opts_init(&o);
    const char *ln[1] = {"k"};
    o.name = "bench_ttl_total";
    o.label_names = ln;
    o.label_count = 1;
    o.series_ttl_seconds = 3600;
    check(sonde_family_create(reg, SONDE_COUNTER, &o, &tf), "ttl counter");
    sonde_histogram *ch = sonde_family_as_histogram(cf), *nh = sonde_family_as_histogram(nf);
    sonde_counter *pc = sonde_family_as_counter(pf), *ec = sonde_family_as_counter(ef);
    sonde_counter *tc = sonde_family_counter(tf, "x");
    sonde_counter_inc(pc); /* attach this thread's cells */

    uint64_t n = bench_iters(20000000);
    unsigned runs = bench_runs(9);
    double classic = bench_median_1t(body_observe, ch, n, runs);
    double native = bench_median_1t(body_observe, nh, n, runs);
    bench_print("observe_classic", classic, "ns/op");
    bench_print("observe_native", native, "ns/op");
    bench_print("native_vs_classic", native / classic, "x");
    double inc = bench_median_1t(body_inc, pc, n, runs);
    double ex = bench_median_1t(body_inc_exemplar, ec, n, runs);
    double ttl = bench_median_1t(body_inc, tc, n, runs);
    bench_print("inc_plain", inc, "ns/op");
    bench_print("inc_exemplar", ex, "ns/op");
    bench_print("exemplar_extra", ex - inc, "ns/op");
    bench_print("inc_ttl", ttl, "ns/op");
    sonde_registry_destroy(reg);
}
