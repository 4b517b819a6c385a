/*
 * Series TTL with a controllable clock: series not updated for the TTL
 * leave the exposition and are counted; kept handles stay valid (their
 * updates revive the series at the next sweep); a lookup revives an expired
 * series from zero; remove, clear, the cardinality limit and bad options.
 */
#include <sonde.h>

#include "metrics/metrics_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static char *text(sonde_registry *r)
{
    char *s = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    CHECK(s);
    return s;
}

static int has(sonde_registry *r, const char *needle)
{
    char *s = text(r);
    int found = strstr(s, needle) != NULL;
    if (!found && getenv("TTL_DEBUG"))
        fprintf(stderr, "---\n%s---\n", s);
    sonde_free(s);
    return found;
}

int main(void)
{
    sonde__ttl_manual_clock(1);
    sonde__ttl_set_clock(100);
    sonde_registry *r;
    CHECK(sonde_registry_create(NULL, &r) == SONDE_OK);

    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "ttl_requests_total";
    o.help = "Requests.";
    const char *ln[] = {"user"};
    o.label_names = ln;
    o.label_count = 1;
    o.series_ttl_seconds = 9.5; /* rounded up to 10 */
    o.max_series = 3;
    sonde_family *f;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_OK);

    /* Bad TTLs are refused with a reason. */
    sonde_metric_opts bad = o;
    bad.name = "ttl_bad_total";
    bad.series_ttl_seconds = -1;
    sonde_family *bf = NULL;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &bad, &bf) == SONDE_EINVAL);
    CHECK(strstr(sonde_registry_last_error(), "series_ttl_seconds"));
    /* A different TTL is a different definition. */
    bad = o;
    bad.series_ttl_seconds = 20;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &bad, &bf) == SONDE_ECONFLICT);

    sonde_counter *a = sonde_family_counter(f, "alice");
    sonde_counter *b = sonde_family_counter(f, "bob");
    sonde_counter_inc(a);
    sonde_counter_add(b, 5);
    CHECK(sonde_family_series_count(f) == 2);

    /* Nothing expires before the TTL. */
    sonde__ttl_set_clock(105);
    sonde_counter_inc(a); /* a touched at 105, b at 100 */
    sonde__ttl_sweep(109);
    CHECK(sonde_family_series_count(f) == 2);
    CHECK(has(r, "sonde_metrics_series_expired_total{family=\"ttl_requests_total\"} 0"));

    /* At 110 b has been idle for 10 s: gone from view and counted. */
    sonde__ttl_set_clock(110);
    sonde__ttl_sweep(110);
    CHECK(sonde_family_series_count(f) == 1);
    CHECK(has(r, "ttl_requests_total{user=\"alice\"} 2\n"));
    CHECK(!has(r, "user=\"bob\""));
    CHECK(has(r, "sonde_metrics_series_expired_total{family=\"ttl_requests_total\"} 1"));
    /* Removing an expired series: it is already gone. */
    const char *bobv[] = {"bob"};
    CHECK(sonde_family_remove(f, bobv, 1) == SONDE_ENOTFOUND);

    /* The kept handle stays valid: its update is lost (the series is
     * dormant) but marks it, and the next sweep brings it back from zero. */
    sonde__ttl_set_clock(111);
    sonde_counter_inc(b);
    CHECK(sonde_counter_get(b) == 0);
    sonde__ttl_sweep(111);
    CHECK(sonde_family_series_count(f) == 2);
    sonde_counter_inc(b);
    CHECK(has(r, "ttl_requests_total{user=\"bob\"} 1\n"));
    CHECK(sonde_family_counter(f, "bob") == b); /* same handle */

    /* A lookup revives an expired series at once, from zero, same handle. */
    sonde__ttl_set_clock(200);
    sonde__ttl_sweep(200); /* both idle: expire */
    CHECK(sonde_family_series_count(f) == 0);
    CHECK(has(r, "sonde_metrics_series_expired_total{family=\"ttl_requests_total\"} 3"));
    CHECK(!has(r, "ttl_requests_total{"));
    sonde_counter *a2 = sonde_family_counter(f, "alice");
    CHECK(a2 == a);
    CHECK(sonde_family_series_count(f) == 1);
    CHECK(sonde_counter_get(a) == 0);
    sonde_counter_inc(a);
    CHECK(has(r, "ttl_requests_total{user=\"alice\"} 1\n"));
    /* The next sweep only drops it from the dormant list. */
    sonde__ttl_sweep(201);
    CHECK(sonde_family_series_count(f) == 1);
    CHECK(has(r, "ttl_requests_total{user=\"alice\"} 1\n"));

    /* A lookup counts as an update (touch). */
    sonde__ttl_set_clock(209);
    CHECK(sonde_family_counter(f, "alice") == a);
    sonde__ttl_sweep(215);
    CHECK(sonde_family_series_count(f) == 1);

    /* The cardinality limit counts live series only. */
    sonde_counter *c = sonde_family_counter(f, "carol");
    sonde_counter *d = sonde_family_counter(f, "dave");
    CHECK(sonde_family_series_count(f) == 3);
    /* bob is dormant: reviving it would exceed the limit of 3. */
    const char *bv[] = {"bob"};
    void *out = NULL;
    CHECK(sonde_family_get(f, bv, 1, &out) == SONDE_ELIMIT);
    (void)c;
    (void)d;

    /* Clear, then lookups create or revive as usual. */
    sonde_family_clear(f);
    CHECK(sonde_family_series_count(f) == 0);
    CHECK(sonde_family_get(f, bv, 1, &out) == SONDE_OK && out == (void *)b);
    CHECK(sonde_family_series_count(f) == 1);

    /* Histograms, gauges and summaries expire too. */
    sonde_metric_opts ho;
    sonde_metric_opts_init(&ho);
    ho.name = "ttl_latency_seconds";
    ho.label_names = ln;
    ho.label_count = 1;
    ho.series_ttl_seconds = 5;
    sonde_family *hf;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &ho, &hf) == SONDE_OK);
    ho.name = "ttl_queue_depth";
    sonde_family *gf;
    CHECK(sonde_family_create(r, SONDE_GAUGE, &ho, &gf) == SONDE_OK);
    ho.name = "ttl_size_bytes";
    sonde_family *sf;
    CHECK(sonde_family_create(r, SONDE_SUMMARY, &ho, &sf) == SONDE_OK);
    sonde__ttl_set_clock(300);
    sonde_histogram *h = sonde_family_histogram(hf, "x");
    sonde_gauge *g = sonde_family_gauge(gf, "x");
    sonde_summary *su = sonde_family_summary(sf, "x");
    sonde_histogram_observe(h, 0.2);
    sonde_gauge_set(g, 7);
    sonde_summary_observe(su, 3);
    CHECK(has(r, "ttl_latency_seconds_count{user=\"x\"} 1\n"));
    CHECK(has(r, "ttl_queue_depth{user=\"x\"} 7\n"));
    CHECK(has(r, "ttl_size_bytes_count{user=\"x\"} 1\n"));
    sonde__ttl_set_clock(304);
    sonde_gauge_inc(g);
    sonde__ttl_sweep(305);
    CHECK(!has(r, "ttl_latency_seconds_count{"));
    CHECK(!has(r, "ttl_size_bytes_count{"));
    CHECK(has(r, "ttl_queue_depth{user=\"x\"} 8\n"));
    CHECK(has(r, "sonde_metrics_series_expired_total{family=\"ttl_latency_seconds\"} 1"));
    sonde__ttl_sweep(309);
    CHECK(!has(r, "ttl_queue_depth{"));
    /* Updates through kept handles after expiry: revived at the sweep. */
    sonde__ttl_set_clock(310);
    sonde_histogram_observe(h, 1);
    sonde_gauge_set(g, 3);
    sonde_summary_observe(su, 1);
    sonde__ttl_sweep(310);
    sonde_histogram_observe(h, 1);
    sonde_summary_observe(su, 1);
    CHECK(has(r, "ttl_latency_seconds_count{user=\"x\"} 1\n"));
    CHECK(has(r, "ttl_queue_depth{user=\"x\"} 3\n"));
    CHECK(has(r, "ttl_size_bytes_count{user=\"x\"} 1\n"));

    /* Label-less families have no TTL (their one series is the family). */
    sonde_metric_opts lo;
    sonde_metric_opts_init(&lo);
    lo.name = "ttl_single_total";
    lo.series_ttl_seconds = 1;
    sonde_family *lf;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &lo, &lf) == SONDE_OK);
    sonde_counter_inc(sonde_family_as_counter(lf));
    sonde__ttl_sweep(1000);
    CHECK(has(r, "ttl_single_total 1\n"));

    sonde_registry_destroy(r);

    /* Many series expiring and coming back: no leak, no stale entry
     * (run under ASan in make test). */
    CHECK(sonde_registry_create(NULL, &r) == SONDE_OK);
    o.max_series = 0;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_OK);
    for (uint32_t round = 0; round < 20; round++) {
        sonde__ttl_set_clock(1000 + round * 20);
        for (int i = 0; i < 200; i++) {
            char v[16];
            snprintf(v, sizeof v, "u%d", (i * 7 + (int)round * 13) % 300);
            sonde_counter_inc(sonde_family_counter(f, v));
        }
        sonde__ttl_sweep(1000 + round * 20 + 15);
        CHECK(sonde_family_series_count(f) == 0);
    }
    sonde_registry_destroy(r);

    /* The real thing: the runtime worker advances the clock and sweeps
     * about once a second (polled for up to 20 s; no timing asserted). */
    sonde__ttl_manual_clock(0);
    sonde__ttl_set_clock(0);
    CHECK(sonde_registry_create(NULL, &r) == SONDE_OK);
    o.series_ttl_seconds = 1;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_OK);
    sonde_counter *w = sonde_family_counter(f, "worker");
    sonde_counter_inc(w);
    CHECK(sonde_family_series_count(f) == 1);
    for (int i = 0; i < 200 && sonde_family_series_count(f) != 0; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(sonde_family_series_count(f) == 0);
    CHECK(has(r, "sonde_metrics_series_expired_total{family=\"ttl_requests_total\"} 1"));
    sonde_registry_destroy(r);
    printf("test_metrics_ttl: ok\n");
    return 0;
}
