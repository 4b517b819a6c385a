/* 8 threads update counters, histograms, gauges and labelled children while
 * another thread scrapes continuously: totals are exact at the end, and no
 * scrape ever sees a counter go backwards. Runs under TSan in make test. */
#include "test.h"

#include <sonde.h>

#include "metrics/metrics_int.h"

#include <pthread.h>
#include <unistd.h>
#include <stdatomic.h>

TEST_MAIN()

#define THREADS 8
#define ITERS 200000

static sonde_registry *reg;
static sonde_counter *counter;
static sonde_histogram *hist;
static sonde_family *labelled;
static atomic_int stop;

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char mine[16];
    snprintf(mine, sizeof mine, "t%d", id);
    sonde_counter *kept = sonde_family_counter(labelled, mine);
    for (int i = 0; i < ITERS; i++) {
        sonde_counter_inc(counter);
        sonde_histogram_observe(hist, (double)(i % 10));
        sonde_counter_inc(kept);
        /* lookups by value, creating new children concurrently */
        char v[16];
        snprintf(v, sizeof v, "shared%d", i % 16);
        sonde_counter_inc(sonde_family_counter(labelled, v));
    }
    return NULL;
}

static double parse_value(const char *txt, const char *prefix)
{
    const char *p = strstr(txt, prefix);
    return p ? strtod(p + strlen(prefix), NULL) : -1;
}

static void *scraper(void *arg)
{
    (void)arg;
    double last = 0;
    long scrapes = 0;
    while (!atomic_load(&stop)) {
        char *txt = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
        double v = parse_value(txt, "\nconc_ops_total ");
        if (v < last) {
            fprintf(stderr, "counter went backwards: %f after %f\n", v, last);
            abort();
        }
        last = v;
        sonde_free(txt);
        scrapes++;
    }
    return (void *)(intptr_t)scrapes;
}

TEST(test_concurrent_updates_and_scrapes_give_exact_totals)
{
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    ASSERT_OK(sonde_counter_create(reg, "conc_ops_total", "Ops.", &counter));
    const double b[] = {1, 5, 8};
    ASSERT_OK(sonde_histogram_create(reg, "conc_values", "Values.", b, 3, &hist));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"who"};
    o.name = "conc_labelled_total";
    o.label_names = ln;
    o.label_count = 1;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &labelled));

    pthread_t w[THREADS], s;
    pthread_create(&s, NULL, scraper, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop, 1);
    void *scrapes;
    pthread_join(s, &scrapes);
    ASSERT_GT((intptr_t)scrapes, 0);

    ASSERT_DBL_EQ(sonde_counter_get(counter), (double)THREADS * ITERS);
    ASSERT_U64_EQ(sonde_histogram_get_count(hist), (uint64_t)THREADS * ITERS);
    /* sum of i%10 over ITERS, per thread */
    double per = 0;
    for (int i = 0; i < ITERS; i++)
        per += i % 10;
    ASSERT_DBL_EQ(sonde_histogram_get_sum(hist), per * THREADS);
    double shared = 0;
    for (int k = 0; k < 16; k++) {
        char v[16];
        snprintf(v, sizeof v, "shared%d", k);
        shared += sonde_counter_get(sonde_family_counter(labelled, v));
    }
    ASSERT_DBL_EQ(shared, (double)THREADS * ITERS);
    ASSERT_EQ(sonde_family_series_count(labelled), 16 + THREADS);
    char *txt = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "conc_ops_total 1600000\n");
    ASSERT_CONTAINS(txt, "conc_values_bucket{le=\"1\"} 320000\n");
    ASSERT_CONTAINS(txt, "conc_labelled_total{who=\"t3\"} 200000\n");
    sonde_free(txt);
    sonde_registry_destroy(reg);
}

static void *gauge_adder(void *arg)
{
    for (int i = 0; i < 100000; i++)
        sonde_gauge_add((sonde_gauge *)arg, 1);
    return NULL;
}

static void *summary_observer(void *arg)
{
    for (int i = 0; i < 50000; i++)
        sonde_summary_observe((sonde_summary *)arg, 1 + i % 100);
    return NULL;
}

TEST(test_concurrent_gauge_adds_and_summary_observes_are_exact)
{
    sonde_registry *r;
    ASSERT_OK(sonde_registry_create(NULL, &r));
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(r, "conc_gauge", "", &g));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const double q[] = {0.5};
    o.name = "conc_summary";
    o.quantiles = q;
    o.quantile_count = 1;
    sonde_family *sf;
    ASSERT_OK(sonde_family_create(r, SONDE_SUMMARY, &o, &sf));
    sonde_summary *sm = sonde_family_as_summary(sf);
    pthread_t t[8];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, gauge_adder, g);
    for (int i = 4; i < 8; i++)
        pthread_create(&t[i], NULL, summary_observer, sm);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    ASSERT_DBL_EQ(sonde_gauge_get(g), 400000);
    ASSERT_U64_EQ(sonde_summary_get_count(sm), 200000);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(sm, 0.5), 50, 50 * 0.02);
    sonde_registry_destroy(r);
}

static sonde_family *churn;
static atomic_int churn_stop;

static void *churn_reader(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load(&churn_stop)) {
        char v[16];
        snprintf(v, sizeof v, "k%ld", n % 64);
        sonde_counter_inc(sonde_family_counter(churn, v));
        n++;
    }
    return NULL;
}

TEST(test_removal_during_lookups_reclaims_memory_safely)
{
    sonde_registry *r;
    ASSERT_OK(sonde_registry_create(NULL, &r));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"k"};
    o.name = "churn_total";
    o.label_names = ln;
    o.label_count = 1;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &churn));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churn_reader, NULL);
    for (int round = 0; round < 2000; round++) {
        char v[16];
        snprintf(v, sizeof v, "k%d", round % 64);
        const char *vals[] = {v};
        int rc = sonde_family_remove(churn, vals, 1);
        ASSERT(rc == SONDE_OK || rc == SONDE_ENOTFOUND);
        if (round % 500 == 0)
            sonde_family_clear(churn);
    }
    /* Series retired over a second ago are freed at the next removals. */
    usleep(1100 * 1000);
    for (int round = 0; round < 200; round++) {
        char v[16];
        snprintf(v, sizeof v, "k%d", round % 64);
        const char *vals[] = {v};
        sonde_family_remove(churn, vals, 1);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    /* Removed series were freed along the way, not kept until destroy. */
    ASSERT_LT(churn->nretired, 1000);
    ASSERT_LE(sonde_family_series_count(churn), 64);
    sonde_registry_destroy(r);
}
