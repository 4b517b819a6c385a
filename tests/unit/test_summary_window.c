/* Summaries: the sliding window really forgets old observations, and the
 * 1% relative error holds across the documented value span (a max/min
 * ratio of 25,000 within one age bucket) up to its edges. */
#include "test.h"

#include <sonde.h>

#include <math.h>
#include <unistd.h>

TEST_MAIN()

static sonde_summary *make(sonde_registry *r, const char *name, double max_age, unsigned parts)
{
    static const double q[] = {0.001, 0.01, 0.5, 0.99, 0.999};
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = "h";
    o.quantiles = q;
    o.quantile_count = 5;
    o.max_age_seconds = max_age;
    o.age_buckets = parts;
    sonde_family *f;
    if (sonde_family_create(r, SONDE_SUMMARY, &o, &f) != SONDE_OK)
        return NULL;
    return sonde_family_as_summary(f);
}

TEST(test_summary_window_expires_old_observations)
{
    sonde_registry *r;
    ASSERT_OK(sonde_registry_create(NULL, &r));
    sonde_summary *s = make(r, "w_seconds", 1.0, 2);
    ASSERT(s != NULL);
    for (int i = 0; i < 1000; i++)
        sonde_summary_observe(s, 10);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(s, 0.5), 10, 0.1);
    usleep(1300 * 1000); /* past max_age: both parts rotated out */
    for (int i = 0; i < 10; i++)
        sonde_summary_observe(s, 1000);
    /* Only the new observations are in the window (the old 1000 would
     * keep the median at 10). */
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(s, 0.5), 1000, 10);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(s, 0.001), 1000, 10);
    /* _count and _sum are cumulative, as Prometheus defines them. */
    ASSERT_U64_EQ(sonde_summary_get_count(s), 1010);
    usleep(1300 * 1000);
    ASSERT(isnan(sonde_summary_get_quantile(s, 0.5)));
    sonde_registry_destroy(r);
}

/* n values spread geometrically over [lo, lo * span]; every quantile asked
 * must be within 1% of the exact value of its rank. */
static int check_span(sonde_summary *s, double lo, double span, int n)
{
    double step = pow(span, 1.0 / (n - 1));
    for (int i = 0; i < n; i++)
        sonde_summary_observe(s, lo * pow(step, i));
    static const double qs[] = {0.001, 0.01, 0.5, 0.99, 0.999};
    int bad = 0;
    for (size_t k = 0; k < 5; k++) {
        double exact = lo * pow(step, floor(qs[k] * (n - 1)));
        double got = sonde_summary_get_quantile(s, qs[k]);
        /* 1% from the sketch, plus one rank of rounding (0.1%). */
        if (!(fabs(got - exact) <= exact * 0.0111)) {
            fprintf(stderr, "    q=%g exact=%g got=%g (%.3f%%)\n", qs[k], exact, got,
                    100 * fabs(got - exact) / exact);
            bad++;
        }
    }
    return bad;
}

TEST(test_summary_error_bound_holds_at_the_edges_of_the_span)
{
    sonde_registry *r;
    ASSERT_OK(sonde_registry_create(NULL, &r));
    /* The documented span: 1 ms .. 25 s (ratio 25,000). */
    ASSERT_EQ(check_span(make(r, "a_seconds", 600, 5), 1e-3, 25000, 10001), 0);
    /* Tiny and huge magnitudes with the same ratio. */
    ASSERT_EQ(check_span(make(r, "b_seconds", 600, 5), 1e-9, 25000, 10001), 0);
    ASSERT_EQ(check_span(make(r, "c_bytes", 600, 5), 1e9, 25000, 10001), 0);
    /* Beyond the span the lowest quantiles lose accuracy first (stated in
     * metrics.h); the high ones keep it. */
    sonde_summary *wide = make(r, "d_seconds", 600, 5);
    check_span(wide, 1e-6, 1e8, 10001);
    double step = pow(1e8, 1.0 / 10000);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(wide, 0.99), 1e-6 * pow(step, 9900),
                    1e-6 * pow(step, 9900) * 0.0111);
    sonde_registry_destroy(r);
}
