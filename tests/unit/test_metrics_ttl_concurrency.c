/*
 * Series TTL under concurrency: writers update kept handles and look series
 * up by value (creating, reviving) while a sweeper thread advances the
 * clock and expires series, and a scraper renders. Run under TSan and ASan
 * in make test: no race, no use after free of a kept handle; afterwards
 * every series expires, and kept handles still work.
 */
#include <sonde.h>

#include "metrics/metrics_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define WRITERS 4
#define ITERS 40000

static sonde_registry *reg;
static sonde_family *cf, *hf, *gf;
static atomic_int stop;
static _Atomic uint32_t clock_now = 1000;

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char mine[16];
    snprintf(mine, sizeof mine, "w%d", id);
    sonde_counter *kc = sonde_family_counter(cf, mine);
    sonde_histogram *kh = sonde_family_histogram(hf, mine);
    sonde_gauge *kg = sonde_family_gauge(gf, mine);
    for (int i = 0; i < ITERS; i++) {
        /* Kept handles, possibly expired under us. */
        sonde_counter_inc(kc);
        sonde_histogram_observe(kh, (double)(i % 7));
        sonde_gauge_set(kg, i);
        /* Lookups: create, hit, or revive. */
        char v[16];
        snprintf(v, sizeof v, "s%d", (i * 31 + id) % 64);
        sonde_counter_inc(sonde_family_counter(cf, v));
        if (i % 5 == 0)
            sonde_histogram_observe(sonde_family_histogram(hf, v), 0.5);
    }
    return NULL;
}

static void *sweeper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        uint32_t now = atomic_fetch_add(&clock_now, 1) + 1;
        sonde__ttl_set_clock(now);
        sonde__ttl_sweep(now);
    }
    return NULL;
}

static void *scraper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
        CHECK(t);
        sonde_free(t);
        char *p = sonde_registry_render(reg, SONDE_FORMAT_PROTOBUF, NULL);
        sonde_free(p);
    }
    return NULL;
}

int main(void)
{
    sonde__ttl_manual_clock(1);
    sonde__ttl_set_clock(1000);
    CHECK(sonde_registry_create(NULL, &reg) == SONDE_OK);
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"k"};
    o.label_names = ln;
    o.label_count = 1;
    o.series_ttl_seconds = 2;
    o.name = "tc_ops_total";
    CHECK(sonde_family_create(reg, SONDE_COUNTER, &o, &cf) == SONDE_OK);
    o.name = "tc_latency_seconds";
    o.exemplars = SONDE_EXEMPLARS_ON;
    CHECK(sonde_family_create(reg, SONDE_HISTOGRAM, &o, &hf) == SONDE_OK);
    o.exemplars = 0;
    o.name = "tc_depth";
    CHECK(sonde_family_create(reg, SONDE_GAUGE, &o, &gf) == SONDE_OK);

    pthread_t w[WRITERS], sw, sc;
    for (int i = 0; i < WRITERS; i++)
        CHECK(pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i) == 0);
    CHECK(pthread_create(&sw, NULL, sweeper, NULL) == 0);
    CHECK(pthread_create(&sc, NULL, scraper, NULL) == 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(sw, NULL);
    pthread_join(sc, NULL);

    /* Quiet: everything expires. */
    uint32_t now = atomic_load(&clock_now) + 10;
    sonde__ttl_set_clock(now);
    sonde__ttl_sweep(now);
    CHECK(sonde_family_series_count(cf) == 0);
    CHECK(sonde_family_series_count(hf) == 0);
    CHECK(sonde_family_series_count(gf) == 0);
    char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    CHECK(t && !strstr(t, "tc_ops_total{"));
    CHECK(strstr(t, "sonde_metrics_series_expired_total{family=\"tc_ops_total\"} "));
    sonde_free(t);

    /* Kept handles from before still work and revive their series. */
    sonde_counter *k0 = sonde_family_counter(cf, "w0");
    sonde_counter_inc(k0);
    sonde__ttl_sweep(now);
    CHECK(sonde_family_series_count(cf) == 1);
    CHECK(sonde_counter_get(k0) == 1);
    sonde_registry_destroy(reg);
    printf("test_metrics_ttl_concurrency: ok\n");
    return 0;
}
