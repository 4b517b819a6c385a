/*
 * A registry with every metric type, tricky label values and known values,
 * shared by the golden-file unit test and the promtool / Python parser
 * integration test. Creation timestamps are pinned so output is stable.
 */
#ifndef SONDE_TEST_EXPOSE_FIXTURE_H
#define SONDE_TEST_EXPOSE_FIXTURE_H

#include <sonde.h>

#include "metrics/metrics_int.h"

#include <math.h>
#include <stdlib.h>

static double fixture_ratio(void *ud)
{
    (void)ud;
    return 0.16;
}

static void fixture_collector(sonde_emitter *em, void *ud)
{
    (void)ud;
    sonde_emit_family(em, SONDE_GAUGE, "fixture_table_rows", "Rows per table.", NULL);
    const char *a[] = {"table", "artifacts"};
    sonde_emit_sample(em, a, 1, 1234);
    sonde_emit_family(em, SONDE_HISTOGRAM, "fixture_batch_size", "Batch sizes.", NULL);
    const double bounds[] = {10, 100};
    const uint64_t cum[] = {1, 3, 4};
    sonde_emit_histogram(em, NULL, 0, bounds, cum, 2, 250);
}

static void pin_created(sonde_family *f)
{
    pthread_mutex_lock(&f->lock);
    for (sonde_series *s = f->head; s; s = s->next)
        s->created_ms = 1700000000123ULL;
    pthread_mutex_unlock(&f->lock);
}

/* Builds the fixture; every value is listed in tests/data/expose.expected. */
static sonde_registry *fixture_build(void)
{
    sonde_registry *r;
    if (sonde_registry_create(NULL, &r))
        abort();
    sonde_metric_opts o;
    sonde_family *f;

    sonde_metric_opts_init(&o);
    const char *req_l[] = {"method", "path"};
    const char *cl[] = {"service", "fixture"};
    o.name = "fixture_requests_total";
    o.help = "Requests with \"quotes\", a back\\slash\nand a newline.";
    o.label_names = req_l;
    o.label_count = 2;
    o.const_labels = cl;
    o.const_label_count = 1;
    if (sonde_family_create(r, SONDE_COUNTER, &o, &f))
        abort();
    sonde_counter_add(sonde_family_counter(f, "GET", "/a"), 3);
    sonde_counter_add(sonde_family_counter(f, "POST", "quote\" back\\ nl\n end"), 2.5);
    sonde_counter_add(sonde_family_counter(f, "GET", "bad\xff\xfeutf8 \xc3\xa9t\xc3\xa9"), 1);
    sonde_counter_add(sonde_family_counter(f, "GET", "} 999\nfake_metric 1"), 7);
    pin_created(f);

    sonde_metric_opts_init(&o);
    o.name = "fixture_temperature_celsius";
    o.help = "A gauge.";
    o.unit = "celsius";
    if (sonde_family_create(r, SONDE_GAUGE, &o, &f))
        abort();
    sonde_gauge_set(sonde_family_as_gauge(f), -3.25);

    sonde_metric_opts_init(&o);
    const char *gl[] = {"kind"};
    o.name = "fixture_special";
    o.help = "Special values.";
    o.label_names = gl;
    o.label_count = 1;
    if (sonde_family_create(r, SONDE_GAUGE, &o, &f))
        abort();
    sonde_gauge_set(sonde_family_gauge(f, "nan"), NAN);
    sonde_gauge_set(sonde_family_gauge(f, "pinf"), INFINITY);
    sonde_gauge_set(sonde_family_gauge(f, "ninf"), -INFINITY);
    sonde_gauge_set(sonde_family_gauge(f, "tiny"), 1.5e-7);
    sonde_gauge_set(sonde_family_gauge(f, "big"), 1e21);
    sonde_gauge_set(sonde_family_gauge(f, "third"), 1.0 / 3.0);

    sonde_metric_opts_init(&o);
    const double b[] = {0.005, 0.1, 1, 2.5};
    o.name = "fixture_latency_seconds";
    o.help = "Latency.";
    o.unit = "seconds";
    o.buckets = b;
    o.bucket_count = 4;
    if (sonde_family_create(r, SONDE_HISTOGRAM, &o, &f))
        abort();
    sonde_histogram *h = sonde_family_as_histogram(f);
    sonde_histogram_observe(h, 0.001);
    sonde_histogram_observe(h, 0.05);
    sonde_histogram_observe(h, 0.5);
    sonde_histogram_observe(h, 1);
    sonde_histogram_observe(h, 3);
    pin_created(f);

    sonde_metric_opts_init(&o);
    const double q[] = {0.5, 0.9, 0.99};
    o.name = "fixture_payload_bytes";
    o.help = "Payload sizes.";
    o.unit = "bytes";
    o.quantiles = q;
    o.quantile_count = 3;
    if (sonde_family_create(r, SONDE_SUMMARY, &o, &f))
        abort();
    for (int i = 0; i < 4; i++)
        sonde_summary_observe(sonde_family_as_summary(f), 100);
    pin_created(f);

    sonde_metric_opts_init(&o);
    o.name = "fixture_cache_hit_ratio";
    o.help = "Computed at scrape.";
    if (sonde_callback_create(r, SONDE_GAUGE, &o, fixture_ratio, NULL, &f))
        abort();

    sonde_metric_opts_init(&o);
    const char *states[] = {"closed", "open", "half_open"};
    o.name = "fixture_breaker";
    o.help = "Breaker.";
    o.states = states;
    o.state_count = 3;
    sonde_stateset *ss;
    if (sonde_stateset_create(r, &o, &ss))
        abort();
    sonde_stateset_set(ss, 2);

    const char *kv[] = {"version", "1.2.3"};
    if (sonde_info_create(r, "fixture_build", "Build.", kv, 1))
        abort();
    if (sonde_registry_add_collector(r, "fixture", fixture_collector, NULL))
        abort();
    return r;
}

#endif
