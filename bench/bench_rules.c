/*
 * Metric alert rules: the cost of one evaluation of a rule over a counter
 * family of 1,000 series, per series, for a `value` rule and a `rate` rule
 * (ring update and window lookup included), on the calling thread.
 * Baseline in the same run: rendering the same registry as a Prometheus
 * scrape, per series.
 */
#include "bench.h"

#include <sonde.h>

#include <stdio.h>

#define SERIES 1000

static sonde_errors *T;
static sonde_registry *R;

static void eval_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++)
        sonde_errors_process(T);
}

static void scrape_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)tid;
    sonde_buf *b = arg;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_buf_reset(b);
        sonde_registry_write_prometheus(R, b);
        BENCH_CLOBBER(b->data);
    }
}

static double per_series(bench_body_fn body, void *arg)
{
    return bench_median_1t(body, arg, bench_iters(200), bench_runs(7)) / SERIES;
}

void sonde_bench_rules(void)
{
    if (sonde_registry_create(NULL, &R) != SONDE_OK)
        return;
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "bench_requests_total";
    mo.help = "requests";
    const char *ln[] = {"route", "status"};
    mo.label_names = ln;
    mo.label_count = 2;
    mo.max_series = 2 * SERIES;
    sonde_family *f;
    if (sonde_family_create(R, SONDE_COUNTER, &mo, &f) != SONDE_OK)
        return;
    for (int i = 0; i < SERIES; i++) {
        char route[32], status[8];
        snprintf(route, sizeof route, "/api/v1/item/%d", i / 5);
        snprintf(status, sizeof status, "%d", 200 + 100 * (i % 5));
        sonde_counter_add(sonde_family_counter(f, route, status), i);
    }
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = R;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    if (sonde_errors_create(&eo, &T) != SONDE_OK)
        return;
    sonde_buf b = {0};
    double scrape = per_series(scrape_body, &b);
    sonde_buf_free(&b);

    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Value";
    r.kind = SONDE_RULE_VALUE;
    r.metric = "bench_requests_total";
    r.threshold_value = 1e18;
    sonde_alerts_set_rules(T, &r, 1);
    double value = per_series(eval_body, NULL);

    r.name = "Rate";
    r.kind = SONDE_RULE_RATE;
    r.metric = "bench_requests_total{status=~\"5..\"}";
    sonde_alerts_set_rules(T, &r, 1);
    double rate_sel = per_series(eval_body, NULL);
    r.metric = "bench_requests_total";
    sonde_alerts_set_rules(T, &r, 1);
    double rate = per_series(eval_body, NULL);

    bench_print("rules_scrape_ns_per_series", scrape, "ns");
    bench_print("rules_value_eval_ns_per_series", value, "ns");
    bench_print("rules_rate_eval_ns_per_series", rate, "ns");
    bench_print("rules_rate_regex_fifth_eval_ns_per_series", rate_sel, "ns");
    bench_print("rules_rate_eval_vs_scrape_ratio", rate / scrape, "x");
    sonde_errors_destroy(T);
    sonde_registry_destroy(R);
}
