/* Metrics core: registration rules, label vectors, values, limits. */
#include "test.h"

#include <sonde.h>

#include "metrics/metrics_int.h"

#include <pthread.h>

TEST_MAIN()

static sonde_registry *new_reg(void)
{
    sonde_registry *r = NULL;
    if (sonde_registry_create(NULL, &r) != SONDE_OK)
        abort();
    return r;
}

TEST(test_counter_counts_inc_and_add_exactly)
{
    sonde_registry *r = new_reg();
    sonde_counter *c;
    ASSERT_OK(sonde_counter_create(r, "jobs_total", "Jobs.", &c));
    for (int i = 0; i < 1000; i++)
        sonde_counter_inc(c);
    sonde_counter_add(c, 2.5);
    sonde_counter_add(c, 10);
    sonde_counter_add(c, -5);  /* ignored */
    sonde_counter_add(c, NAN); /* ignored */
    ASSERT_DBL_EQ(sonde_counter_get(c), 1012.5);
    sonde_registry_destroy(r);
}

TEST(test_gauge_set_inc_dec_add_sub)
{
    sonde_registry *r = new_reg();
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(r, "queue_depth", "Depth.", &g));
    sonde_gauge_set(g, 10);
    sonde_gauge_inc(g);
    sonde_gauge_dec(g);
    sonde_gauge_dec(g);
    sonde_gauge_add(g, 0.5);
    sonde_gauge_sub(g, 2);
    ASSERT_DBL_EQ(sonde_gauge_get(g), 7.5);
    double before = sonde__now_wall();
    sonde_gauge_set_to_current_time(g);
    ASSERT(sonde_gauge_get(g) >= before && sonde_gauge_get(g) < before + 5);
    sonde_registry_destroy(r);
}

TEST(test_histogram_buckets_are_upper_inclusive_and_nan_goes_to_inf)
{
    sonde_registry *r = new_reg();
    sonde_histogram *h;
    const double b[] = {1, 2, 5};
    ASSERT_OK(sonde_histogram_create(r, "size_bytes", "Sizes.", b, 3, &h));
    sonde_histogram_observe(h, 0.5);
    sonde_histogram_observe(h, 1); /* le="1" */
    sonde_histogram_observe(h, 1.5);
    sonde_histogram_observe(h, 5);
    sonde_histogram_observe(h, 7);
    sonde_histogram_observe(h, NAN);
    ASSERT_U64_EQ(sonde_histogram_get_count(h), 6);
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "size_bytes_bucket{le=\"1\"} 2\n");
    ASSERT_CONTAINS(txt, "size_bytes_bucket{le=\"2\"} 3\n");
    ASSERT_CONTAINS(txt, "size_bytes_bucket{le=\"5\"} 4\n");
    ASSERT_CONTAINS(txt, "size_bytes_bucket{le=\"+Inf\"} 6\n");
    ASSERT_CONTAINS(txt, "size_bytes_count 6\n");
    ASSERT_CONTAINS(txt, "size_bytes_sum NaN\n");
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_bucket_helpers_fill_linear_and_exponential)
{
    double b[4];
    ASSERT_OK(sonde_buckets_linear(1, 2, 4, b));
    ASSERT_DBL_EQ(b[3], 7);
    ASSERT_OK(sonde_buckets_exponential(1, 10, 4, b));
    ASSERT_DBL_EQ(b[3], 1000);
    ASSERT_EQ(sonde_buckets_exponential(0, 10, 4, b), SONDE_EINVAL);
    ASSERT_EQ(sonde_buckets_linear(1, 0, 4, b), SONDE_EINVAL);
    ASSERT_EQ(sonde_buckets_linear(1, 1, 0, b), SONDE_EINVAL);
}

TEST(test_registry_returns_existing_family_for_identical_definition)
{
    sonde_registry *r = new_reg();
    sonde_counter *a, *b;
    ASSERT_OK(sonde_counter_create(r, "x_total", "X.", &a));
    ASSERT_OK(sonde_counter_create(r, "x_total", "X.", &b));
    ASSERT(a == b);
    sonde_registry_destroy(r);
}

TEST(test_registry_rejects_duplicate_with_other_type)
{
    sonde_registry *r = new_reg();
    sonde_counter *a;
    sonde_gauge *g;
    ASSERT_OK(sonde_counter_create(r, "x_total", "X.", &a));
    ASSERT_EQ(sonde_gauge_create(r, "x_total", "X.", &g), SONDE_ECONFLICT);
    /* The message names both definitions. */
    ASSERT_CONTAINS(sonde_last_error(), "counter x_total");
    ASSERT_CONTAINS(sonde_last_error(), "gauge x_total");
    /* The deprecated names still answer the same message. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    ASSERT_STR_EQ(sonde_registry_last_error(), sonde_last_error());
    ASSERT_STR_EQ(sonde_last_error_message(), sonde_last_error());
#pragma GCC diagnostic pop
    sonde_registry_destroy(r);
}

TEST(test_registry_rejects_duplicate_with_other_labels_or_buckets)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *l1[] = {"a"}, *l2[] = {"b"};
    o.name = "y_total";
    o.label_names = l1;
    o.label_count = 1;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    o.label_names = l2;
    ASSERT_EQ(sonde_family_create(r, SONDE_COUNTER, &o, &f), SONDE_ECONFLICT);
    sonde_histogram *h;
    const double b1[] = {1, 2}, b2[] = {1, 3};
    ASSERT_OK(sonde_histogram_create(r, "h_seconds", "H.", b1, 2, &h));
    ASSERT_EQ(sonde_histogram_create(r, "h_seconds", "H.", b2, 2, &h), SONDE_ECONFLICT);
    ASSERT_CONTAINS(sonde_last_error(), "buckets differ");
    sonde_registry_destroy(r);
}

TEST(test_registration_refuses_invalid_and_reserved_names)
{
    sonde_registry *r = new_reg();
    sonde_counter *c;
    ASSERT_EQ(sonde_counter_create(r, "1bad", "", &c), SONDE_EBADNAME);
    ASSERT_EQ(sonde_counter_create(r, "bad-name", "", &c), SONDE_EBADNAME);
    ASSERT_EQ(sonde_counter_create(r, "", "", &c), SONDE_EBADNAME);
    ASSERT_CONTAINS(sonde_last_error(), "invalid metric name");
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    sonde_family *f;
    const char *reserved[] = {"__name"};
    o.name = "ok_total";
    o.label_names = reserved;
    o.label_count = 1;
    ASSERT_EQ(sonde_family_create(r, SONDE_COUNTER, &o, &f), SONDE_EBADLABEL);
    ASSERT_CONTAINS(sonde_last_error(), "reserved");
    const char *le[] = {"le"};
    o.name = "h_seconds";
    o.label_names = le;
    ASSERT_EQ(sonde_family_create(r, SONDE_HISTOGRAM, &o, &f), SONDE_EBADLABEL);
    const char *q[] = {"quantile"};
    o.name = "s_seconds";
    o.label_names = q;
    ASSERT_EQ(sonde_family_create(r, SONDE_SUMMARY, &o, &f), SONDE_EBADLABEL);
    const char *badl[] = {"a-b"};
    o.name = "z_total";
    o.label_names = badl;
    ASSERT_EQ(sonde_family_create(r, SONDE_COUNTER, &o, &f), SONDE_EBADLABEL);
    const char *dup[] = {"a", "a"};
    o.label_names = dup;
    o.label_count = 2;
    ASSERT_EQ(sonde_family_create(r, SONDE_COUNTER, &o, &f), SONDE_EBADLABEL);
    /* le is fine on a counter */
    o.label_names = le;
    o.label_count = 1;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    /* bad buckets */
    sonde_histogram *h;
    const double nonmono[] = {1, 1};
    ASSERT_EQ(sonde_histogram_create(r, "hh", "", nonmono, 2, &h), SONDE_EBUCKETS);
    /* unit must be a suffix */
    sonde_metric_opts_init(&o);
    o.name = "latency_ms";
    o.unit = "seconds";
    ASSERT_EQ(sonde_family_create(r, SONDE_GAUGE, &o, &f), SONDE_EBADNAME);
    o.name = "latency_seconds";
    ASSERT_OK(sonde_family_create(r, SONDE_GAUGE, &o, &f));
    sonde_registry_destroy(r);
}

TEST(test_namespace_and_subsystem_prefix_the_name)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.ns = "mgit";
    o.subsystem = "git";
    o.name = "operations_total";
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    ASSERT_STR_EQ(sonde_family_name(f), "mgit_git_operations_total");
    sonde_registry_destroy(r);
}

TEST(test_label_lookup_returns_same_child_and_variadic_matches_array)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"method", "code"};
    o.name = "http_requests_total";
    o.label_names = ln;
    o.label_count = 2;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    sonde_counter *a = sonde_family_counter(f, "GET", "200");
    sonde_counter *b = sonde_family_counter(f, "GET", "200");
    sonde_counter *c = sonde_family_counter(f, "GET", "500");
    ASSERT(a == b);
    ASSERT(a != c);
    const char *vals[] = {"GET", "200"};
    void *d = NULL;
    ASSERT_OK(sonde_family_get(f, vals, 2, &d));
    ASSERT(d == (void *)a);
    ASSERT_EQ(sonde_family_get(f, vals, 1, &d), SONDE_ELABELCOUNT);
    sonde_counter_inc(a);
    sonde_counter_inc(b);
    ASSERT_DBL_EQ(sonde_counter_get(a), 2);
    ASSERT_DBL_EQ(sonde_counter_get(c), 0);
    ASSERT_EQ(sonde_family_series_count(f), 2);
    /* many children force table growth; all stay findable */
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        sonde_counter_add(sonde_family_counter(f, "POST", buf), i);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(buf, sizeof buf, "v%d", i);
        ASSERT_DBL_EQ(sonde_counter_get(sonde_family_counter(f, "POST", buf)), i);
    }
    ASSERT_EQ(sonde_family_series_count(f), 5002);
    sonde_registry_destroy(r);
}

TEST(test_removed_child_is_recreated_from_zero)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"k"};
    o.name = "removals_total";
    o.label_names = ln;
    o.label_count = 1;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    sonde_counter_add(sonde_family_counter(f, "a"), 5);
    sonde_counter_add(sonde_family_counter(f, "b"), 7);
    const char *va[] = {"a"};
    ASSERT_OK(sonde_family_remove(f, va, 1));
    ASSERT_EQ(sonde_family_remove(f, va, 1), SONDE_ENOTFOUND);
    ASSERT_EQ(sonde_family_series_count(f), 1);
    ASSERT_DBL_EQ(sonde_counter_get(sonde_family_counter(f, "a")), 0);
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "removals_total{k=\"a\"} 0\n");
    ASSERT_CONTAINS(txt, "removals_total{k=\"b\"} 7\n");
    sonde_free(txt);
    sonde_family_clear(f);
    ASSERT_EQ(sonde_family_series_count(f), 0);
    ASSERT_DBL_EQ(sonde_counter_get(sonde_family_counter(f, "b")), 0);
    sonde_registry_destroy(r);
}

TEST(test_cardinality_limit_refuses_new_series_and_counts_drops)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"user"};
    o.name = "logins_total";
    o.label_names = ln;
    o.label_count = 1;
    o.max_series = 3;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    const char *v[1];
    void *s;
    char buf[16];
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "u%d", i);
        v[0] = buf;
        ASSERT_OK(sonde_family_get(f, v, 1, &s));
    }
    v[0] = "u3";
    ASSERT_EQ(sonde_family_get(f, v, 1, &s), SONDE_ELIMIT);
    ASSERT_CONTAINS(sonde_last_error(), "limit of 3 series");
    /* The variadic form never returns NULL: updates go to a sink. */
    sonde_counter *sink = sonde_family_counter(f, "u4");
    ASSERT(sink != NULL);
    sonde_counter_inc(sink);
    ASSERT_EQ(sonde_family_series_count(f), 3);
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "sonde_metrics_dropped_series_total{family=\"logins_total\"} 2\n");
    ASSERT_NOT_CONTAINS(txt, "u4");
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_summary_reports_quantiles_sum_and_count)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const double q[] = {0.5, 0.9, 0.99};
    o.name = "rpc_seconds";
    o.quantiles = q;
    o.quantile_count = 3;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_SUMMARY, &o, &f));
    sonde_summary *s = sonde_family_as_summary(f);
    for (int i = 1; i <= 1000; i++)
        sonde_summary_observe(s, i / 1000.0);
    ASSERT_U64_EQ(sonde_summary_get_count(s), 1000);
    ASSERT_DBL_NEAR(sonde_summary_get_sum(s), 500.5, 1e-9);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(s, 0.5), 0.5, 0.5 * 0.011);
    ASSERT_DBL_NEAR(sonde_summary_get_quantile(s, 0.99), 0.99, 0.99 * 0.011);
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "# TYPE rpc_seconds summary\n");
    ASSERT_CONTAINS(txt, "rpc_seconds{quantile=\"0.5\"} ");
    ASSERT_CONTAINS(txt, "rpc_seconds{quantile=\"0.99\"} ");
    ASSERT_CONTAINS(txt, "rpc_seconds_count 1000\n");
    sonde_free(txt);
    sonde_registry_destroy(r);
}

static double ratio_cb(void *ud)
{
    return *(double *)ud;
}

static void db_collector(sonde_emitter *em, void *ud)
{
    (void)ud;
    sonde_emit_family(em, SONDE_GAUGE, "db_table_rows", "Rows per table.", NULL);
    const char *a[] = {"table", "artifacts"}, *b[] = {"table", "runs"};
    sonde_emit_sample(em, a, 1, 1234);
    sonde_emit_sample(em, b, 1, 56);
    sonde_emit_family(em, SONDE_GAUGE, "bad-name", "", NULL); /* refused, counted */
    sonde_emit_sample(em, NULL, 0, 1);
}

TEST(test_callback_and_collector_values_are_computed_at_scrape)
{
    sonde_registry *r = new_reg();
    double ratio = 0.25;
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "cache_hit_ratio";
    o.help = "Hit ratio.";
    sonde_family *f;
    ASSERT_OK(sonde_callback_create(r, SONDE_GAUGE, &o, ratio_cb, &ratio, &f));
    ASSERT_OK(sonde_registry_add_collector(r, "db", db_collector, NULL));
    ASSERT_EQ(sonde_registry_add_collector(r, "db", db_collector, NULL), SONDE_ECONFLICT);
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "cache_hit_ratio 0.25\n");
    ASSERT_CONTAINS(txt, "db_table_rows{table=\"artifacts\"} 1234\n");
    ASSERT_CONTAINS(txt, "sonde_metrics_collector_errors_total 1\n");
    ASSERT_NOT_CONTAINS(txt, "bad-name");
    sonde_free(txt);
    ratio = 0.75;
    txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "cache_hit_ratio 0.75\n");
    sonde_free(txt);
    ASSERT_OK(sonde_registry_remove_collector(r, "db"));
    ASSERT_EQ(sonde_registry_remove_collector(r, "db"), SONDE_ENOTFOUND);
    sonde_registry_destroy(r);
}

TEST(test_stateset_and_info_render_in_both_text_formats)
{
    sonde_registry *r = new_reg();
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *states[] = {"closed", "open", "half_open"};
    o.name = "circuit_breaker_state";
    o.help = "Breaker state.";
    o.states = states;
    o.state_count = 3;
    sonde_stateset *ss;
    ASSERT_OK(sonde_stateset_create(r, &o, &ss));
    sonde_stateset_set(ss, 1);
    sonde_stateset_set(ss, 7); /* ignored */
    ASSERT_EQ(sonde_stateset_get(ss), 1);
    const char *kv[] = {"version", "1.2.3", "commit", "abc"};
    ASSERT_OK(sonde_info_create(r, "build", "Build information.", kv, 2));
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "# TYPE circuit_breaker_state gauge\n");
    ASSERT_CONTAINS(txt, "circuit_breaker_state{circuit_breaker_state=\"open\"} 1\n");
    ASSERT_CONTAINS(txt, "circuit_breaker_state{circuit_breaker_state=\"closed\"} 0\n");
    ASSERT_CONTAINS(txt, "build_info{version=\"1.2.3\",commit=\"abc\"} 1\n");
    sonde_free(txt);
    txt = sonde_registry_render(r, SONDE_FORMAT_OPENMETRICS, NULL);
    ASSERT_CONTAINS(txt, "# TYPE circuit_breaker_state stateset\n");
    ASSERT_CONTAINS(txt, "# TYPE build info\n");
    ASSERT_CONTAINS(txt, "build_info{version=\"1.2.3\",commit=\"abc\"} 1\n");
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_proc_stat_parser_handles_spaces_and_parens_in_name)
{
    const char *line =
        "1234 (my (weird) proc name) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 "
        "4242 123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    uint64_t cpu, thr, vs, rss, st;
    ASSERT_EQ(sonde__parse_proc_stat(line, &cpu, &thr, &vs, &rss, &st), 0);
    ASSERT_U64_EQ(cpu, 300);
    ASSERT_U64_EQ(thr, 7);
    ASSERT_U64_EQ(st, 4242);
    ASSERT_U64_EQ(vs, 123456789);
    ASSERT_U64_EQ(rss, 300);
    ASSERT_EQ(sonde__parse_proc_stat("garbage", &cpu, &thr, &vs, &rss, &st), -1);
    ASSERT_EQ(sonde__parse_proc_stat("1 (x) S 1 2", &cpu, &thr, &vs, &rss, &st), -1);
}

TEST(test_default_registry_has_process_metrics)
{
    char *txt = sonde_registry_render(NULL, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(txt, "process_cpu_seconds_total ");
    ASSERT_CONTAINS(txt, "process_resident_memory_bytes ");
    ASSERT_CONTAINS(txt, "process_virtual_memory_bytes ");
    ASSERT_CONTAINS(txt, "process_open_fds ");
    ASSERT_CONTAINS(txt, "process_max_fds ");
    ASSERT_CONTAINS(txt, "process_start_time_seconds ");
    ASSERT_CONTAINS(txt, "process_threads ");
    /* start time is epoch seconds: after 2020, not in the future */
    const char *p = strstr(txt, "\nprocess_start_time_seconds ");
    ASSERT(p != NULL);
    double st = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    ASSERT(st > 1577836800.0);
    ASSERT(st <= sonde__now_wall() + 1);
    sonde_free(txt);
}

static void *exit_thread(void *arg)
{
    sonde_counter_add((sonde_counter *)arg, 100);
    return NULL;
}

TEST(test_thread_contributions_survive_thread_exit)
{
    sonde_registry *r = new_reg();
    sonde_counter *c;
    ASSERT_OK(sonde_counter_create(r, "exits_total", "", &c));
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        pthread_create(&t, NULL, exit_thread, c);
        pthread_join(t, NULL);
    }
    ASSERT_DBL_EQ(sonde_counter_get(c), 2000);
    sonde_registry_destroy(r);
}
