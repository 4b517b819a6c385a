/*
 * Alert rules over registry metrics (value, rate, increase, ratio,
 * quantile) with a controllable clock: `for`, resolution, one alert per
 * matching series with its labels, label matchers, `by` groups, counter
 * resets, a ratio with a zero denominator, quantile accuracy, validation,
 * reloads. Deliveries to a real receiver are in
 * tests/integration/test_metric_rule_webhook.c.
 */
#include "test.h"

#include <sonde.h>

#include "errors/errors_int.h"

#include <math.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static double fake_now_v = 1700000000.0;
static double now_fake(void)
{
    double v;
    __atomic_load(&fake_now_v, &v, __ATOMIC_SEQ_CST);
    return v;
}
static double fake_clock(void *ud)
{
    (void)ud;
    return now_fake();
}
static void advance(double s)
{
    double v = now_fake() + s;
    __atomic_store(&fake_now_v, &v, __ATOMIC_SEQ_CST);
}

static sonde_errors *tracker(sonde_registry **reg)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = *reg;
    o.clock = fake_clock;
    o.no_env_notifiers = 1;
    o.service_name = "unit";
    sonde_errors *t = NULL;
    ASSERT_OK(sonde_errors_create(&o, &t));
    return t;
}

static void done(sonde_errors *t, sonde_registry *reg)
{
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}

/* The alerts of rule `name` after one evaluation, sorted by series. */
typedef struct seen {
    int n;
    int state[16];
    double value[16];
    uint64_t notes[16];
    char series[16][160];
    char summary[16][200];
} seen;

static void eval(sonde_errors *t, const char *name, seen *out)
{
    sonde_errors_process(t);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].rule, name) != 0 || out->n >= 16)
            continue;
        /* insertion by series text */
        int k = out->n++;
        while (k > 0 && strcmp(out->series[k - 1], a[i].series) > 0) {
            out->state[k] = out->state[k - 1];
            out->value[k] = out->value[k - 1];
            out->notes[k] = out->notes[k - 1];
            memcpy(out->series[k], out->series[k - 1], sizeof out->series[k]);
            memcpy(out->summary[k], out->summary[k - 1], sizeof out->summary[k]);
            k--;
        }
        out->state[k] = a[i].state;
        out->value[k] = a[i].value;
        out->notes[k] = a[i].notifications;
        snprintf(out->series[k], sizeof out->series[k], "%s", a[i].series);
        snprintf(out->summary[k], sizeof out->summary[k], "%s", a[i].summary);
    }
    sonde_free(a);
}

static sonde_family *family(sonde_registry *reg, sonde_metric_type type, const char *name,
                            const char *l1, const char *l2)
{
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = "test";
    const char *ln[2] = {l1, l2};
    o.label_names = ln;
    o.label_count = l2 ? 2 : l1 ? 1 : 0;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, type, &o, &f));
    return f;
}

static void rule_init(sonde_rule_opts *r, const char *name, int kind, const char *metric, int op,
                      double thr)
{
    sonde_rule_opts_init(r);
    r->name = name;
    r->kind = kind;
    r->metric = metric;
    r->op = op;
    r->threshold_value = thr;
}

TEST(test_value_rule_one_alert_per_series_with_labels_for_and_resolution)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_GAUGE, "queue_depth", "queue", NULL);
    sonde_gauge_set(sonde_family_gauge(f, "a"), 5);
    sonde_gauge_set(sonde_family_gauge(f, "b"), 50);
    sonde_gauge_set(sonde_family_gauge(f, "c"), 70);
    sonde_rule_opts r;
    rule_init(&r, "QueueDeep", SONDE_RULE_VALUE, "queue_depth", SONDE_OP_GE, 50);
    r.for_seconds = 30;
    const char *labels[] = {"team", "ops"};
    r.labels = labels;
    r.label_count = 1;
    r.summary = "queue {labels.queue} holds {value} (limit {threshold})";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "QueueDeep", &s);
    ASSERT_EQ(s.n, 3);
    ASSERT_STR_EQ(s.series[0], "{queue=\"a\"}");
    ASSERT_STR_EQ(s.series[1], "{queue=\"b\"}");
    ASSERT_EQ(s.state[0], SONDE_ALERT_INACTIVE);
    ASSERT_EQ(s.state[1], SONDE_ALERT_PENDING);
    ASSERT_EQ(s.state[2], SONDE_ALERT_PENDING);
    ASSERT_DBL_EQ(s.value[2], 70);
    advance(29);
    eval(t, "QueueDeep", &s);
    ASSERT_EQ(s.state[1], SONDE_ALERT_PENDING);
    advance(1);
    eval(t, "QueueDeep", &s);
    ASSERT_EQ(s.state[1], SONDE_ALERT_FIRING);
    ASSERT_EQ(s.state[2], SONDE_ALERT_FIRING);
    ASSERT_STR_EQ(s.summary[2], "queue c holds 70 (limit 50)");
    /* The /alerts document carries each series' labels. */
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_write_json(t, &b));
    ASSERT_CONTAINS(b.data, "\"labels\":{\"alertname\":\"QueueDeep\",\"severity\":\"high\","
                            "\"service\":\"unit\",\"team\":\"ops\",\"queue\":\"c\"}");
    ASSERT_CONTAINS(b.data, "\"kind\":\"value\"");
    ASSERT_CONTAINS(b.data, "\"metric\":\"queue_depth\",\"op\":\">=\",\"threshold\":50");
    sonde_buf_free(&b);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &a, &n));
    ASSERT_EQ(n, 2); /* two firing episodes in the history */
    sonde_free(a);
    /* b drops below: it resolves, c keeps firing. */
    sonde_gauge_set(sonde_family_gauge(f, "b"), 10);
    advance(1);
    eval(t, "QueueDeep", &s);
    ASSERT_EQ(s.state[1], SONDE_ALERT_RESOLVED);
    ASSERT_EQ(s.state[2], SONDE_ALERT_FIRING);
    /* A series that disappears has no value: its alert resolves. */
    const char *cv[] = {"c"};
    ASSERT_OK(sonde_family_remove(f, cv, 1));
    advance(1);
    eval(t, "QueueDeep", &s);
    ASSERT_EQ(s.n, 3);
    ASSERT_EQ(s.state[2], SONDE_ALERT_RESOLVED);
    ASSERT(isnan(s.value[2]));
    done(t, reg);
}

static int count_series(sonde_errors *t, sonde_registry *reg, const char *name, const char *sel)
{
    (void)reg;
    sonde_rule_opts r;
    rule_init(&r, name, SONDE_RULE_VALUE, sel, SONDE_OP_GE, 0);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, name, &s);
    int firing = 0;
    for (int i = 0; i < s.n; i++)
        firing += s.state[i] == SONDE_ALERT_FIRING;
    return firing;
}

TEST(test_matchers_of_each_operator_select_series)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_COUNTER, "api_requests_total", "route", "status");
    const char *rows[][2] = {{"/a", "200"}, {"/a", "500"}, {"/b", "503"}, {"/c", "404"}};
    for (size_t i = 0; i < 4; i++)
        sonde_counter_inc(sonde_family_counter(f, rows[i][0], rows[i][1]));
    ASSERT_EQ(count_series(t, reg, "All", "api_requests_total"), 4);
    ASSERT_EQ(count_series(t, reg, "Eq", "api_requests_total{route=\"/a\"}"), 2);
    ASSERT_EQ(count_series(t, reg, "Ne", "api_requests_total{route!=\"/a\"}"), 2);
    ASSERT_EQ(count_series(t, reg, "Re", "api_requests_total{status=~\"5..\"}"), 2);
    ASSERT_EQ(count_series(t, reg, "Nre", "api_requests_total{status!~\"5..|404\"}"), 1);
    ASSERT_EQ(
        count_series(t, reg, "Both", "api_requests_total{ route = \"/a\" , status=~\"5.*\" }"), 1);
    /* Regexes are anchored: "5" alone matches no status. */
    ASSERT_EQ(count_series(t, reg, "Anchored", "api_requests_total{status=~\"5\"}"), 0);
    /* A missing label is the empty value. */
    ASSERT_EQ(count_series(t, reg, "Missing", "api_requests_total{zone=\"\"}"), 4);
    ASSERT_EQ(count_series(t, reg, "Other", "no_such_metric"), 0);
    done(t, reg);
}

TEST(test_rate_rule_fires_after_for_and_resolves_when_the_rate_drops)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_COUNTER, "ratelimit_hits_total", "provider", NULL);
    sonde_counter *gh = sonde_family_counter(f, "github");
    sonde_counter *gl = sonde_family_counter(f, "gitlab");
    sonde_rule_opts r;
    rule_init(&r, "RateLimitHit", SONDE_RULE_RATE, "ratelimit_hits_total", SONDE_OP_GT, 0.5);
    r.window_seconds = 60;
    r.for_seconds = 20;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "RateLimitHit", &s); /* first sampling: no rate yet */
    ASSERT_EQ(s.n, 0 + 1);       /* the rule itself, no series yet */
    ASSERT_STR_EQ(s.series[0], "{}");
    for (int i = 0; i < 6; i++) {
        advance(10);
        sonde_counter_add(gh, 10); /* 1/s */
        sonde_counter_add(gl, 1);  /* 0.1/s */
        eval(t, "RateLimitHit", &s);
    }
    ASSERT_EQ(s.n, 2);
    ASSERT_STR_EQ(s.series[0], "{provider=\"github\"}");
    ASSERT_DBL_NEAR(s.value[0], 1.0, 1e-9);
    ASSERT_DBL_NEAR(s.value[1], 0.1, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_EQ(s.state[1], SONDE_ALERT_INACTIVE);
    ASSERT_EQ(s.notes[0], 1);
    ASSERT_CONTAINS(
        s.summary[0],
        "rate of ratelimit_hits_total{provider=\"github\"} over 1m is 1 (threshold > 0.5)");
    /* No more hits: once the window has slid past them the rate is 0. */
    for (int i = 0; i < 7; i++) {
        advance(10);
        eval(t, "RateLimitHit", &s);
    }
    ASSERT_DBL_NEAR(s.value[0], 0, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_RESOLVED);
    ASSERT_EQ(s.notes[0], 2);
    done(t, reg);
}

TEST(test_increase_handles_counter_resets_and_new_series_count_from_zero)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_COUNTER, "jobs_total", "kind", NULL);
    sonde_counter *c = sonde_family_counter(f, "a");
    sonde_counter_add(c, 100);
    sonde_rule_opts r;
    rule_init(&r, "Jobs", SONDE_RULE_INCREASE, "jobs_total", SONDE_OP_GE, 10);
    r.window_seconds = 300;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "Jobs", &s);
    advance(10);
    sonde_counter_add(c, 5); /* 105 */
    eval(t, "Jobs", &s);
    ASSERT_DBL_NEAR(s.value[0], 5, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_INACTIVE);
    /* The counter restarts (series removed and created again: 0, then 7):
     * 105 -> 7 is a reset, the increase is 5 + 7 = 12. */
    const char *av[] = {"a"};
    ASSERT_OK(sonde_family_remove(f, av, 1));
    c = sonde_family_counter(f, "a");
    sonde_counter_add(c, 7);
    advance(10);
    eval(t, "Jobs", &s);
    ASSERT_DBL_NEAR(s.value[0], 12, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    /* A series first seen now was 0 at the previous sampling: its first
     * three increments count. */
    sonde_counter_add(sonde_family_counter(f, "b"), 3);
    advance(10);
    eval(t, "Jobs", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_STR_EQ(s.series[1], "{kind=\"b\"}");
    ASSERT_DBL_NEAR(s.value[1], 3, 1e-9);
    done(t, reg);
}

TEST(test_increase_counter_reset_between_samples_of_one_series)
{
    /* The reset seen on the raw values without removing the series: a
     * collector-style counter going 50 -> 20 (restarted, then 20 more). */
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_gauge *g; /* untyped-like value driven by the test */
    sonde_family *f = family(reg, SONDE_GAUGE, "restarts_seen", NULL, NULL);
    g = sonde_family_as_gauge(f);
    sonde_gauge_set(g, 40);
    sonde_rule_opts r;
    rule_init(&r, "Inc", SONDE_RULE_INCREASE, "restarts_seen", SONDE_OP_GT, 25);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "Inc", &s);
    advance(5);
    sonde_gauge_set(g, 50);
    eval(t, "Inc", &s);
    ASSERT_DBL_NEAR(s.value[0], 10, 1e-9);
    advance(5);
    sonde_gauge_set(g, 20);
    eval(t, "Inc", &s);
    ASSERT_DBL_NEAR(s.value[0], 30, 1e-9); /* 10, then 20 after the reset */
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    done(t, reg);
}

TEST(test_ratio_per_label_set_and_zero_denominator_has_no_value)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *fail = family(reg, SONDE_COUNTER, "ops_failure_total", "op", NULL);
    sonde_family *all = family(reg, SONDE_COUNTER, "ops_total", "op", NULL);
    sonde_counter *cf = sonde_family_counter(fail, "clone");
    sonde_counter *ca = sonde_family_counter(all, "clone");
    sonde_counter *pa = sonde_family_counter(all, "pull");
    sonde_rule_opts r;
    rule_init(&r, "HighFailureRate", SONDE_RULE_RATIO, "ops_failure_total", SONDE_OP_GT, 0.1);
    r.denominator = "ops_total";
    r.window_seconds = 300;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "HighFailureRate", &s);
    advance(10);
    sonde_counter_add(ca, 10);
    sonde_counter_add(cf, 3);
    sonde_counter_add(pa, 10); /* pull never failed: its failure series does not exist */
    eval(t, "HighFailureRate", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_STR_EQ(s.series[0], "{op=\"clone\"}");
    ASSERT_DBL_NEAR(s.value[0], 0.3, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_DBL_NEAR(s.value[1], 0, 1e-9);
    ASSERT_EQ(s.state[1], SONDE_ALERT_INACTIVE);
    /* Nothing happens for a window: 0 / 0 has no value, the alert
     * resolves (as a PromQL ratio returning nothing). */
    advance(301);
    eval(t, "HighFailureRate", &s);
    ASSERT(isnan(s.value[0]));
    ASSERT_EQ(s.state[0], SONDE_ALERT_RESOLVED);
    done(t, reg);
}

TEST(test_ratio_and_rate_summed_by_labels)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *api = family(reg, SONDE_COUNTER, "api_calls_total", "provider", "status");
    sonde_rule_opts r;
    rule_init(&r, "APIErrors", SONDE_RULE_RATIO, "api_calls_total{status=~\"5..\"}", SONDE_OP_GT,
              0.05);
    r.denominator = "api_calls_total";
    const char *by[] = {"provider"};
    r.by = by;
    r.by_count = 1;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    sonde_rule_opts q;
    rule_init(&q, "AllCalls", SONDE_RULE_RATE, "api_calls_total", SONDE_OP_GT, 0);
    ASSERT_OK(sonde_alerts_add_rule(t, &q));
    seen s;
    eval(t, "APIErrors", &s);
    advance(10);
    sonde_counter_add(sonde_family_counter(api, "github", "200"), 80);
    sonde_counter_add(sonde_family_counter(api, "github", "500"), 10);
    sonde_counter_add(sonde_family_counter(api, "github", "503"), 10);
    sonde_counter_add(sonde_family_counter(api, "gitlab", "200"), 100);
    sonde_counter_add(sonde_family_counter(api, "gitlab", "502"), 1);
    eval(t, "APIErrors", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_STR_EQ(s.series[0], "{provider=\"github\"}");
    ASSERT_DBL_NEAR(s.value[0], 0.2, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_DBL_NEAR(s.value[1], 1.0 / 101, 1e-9);
    ASSERT_EQ(s.state[1], SONDE_ALERT_INACTIVE);
    /* The rate rule without `by`: one alert per series (5). */
    eval(t, "AllCalls", &s);
    ASSERT_EQ(s.n, 5);
    done(t, reg);
}

TEST(test_quantile_of_a_histogram_over_the_window)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "op_duration_seconds";
    o.help = "t";
    const double buckets[] = {0.1, 0.5, 1, 2, 5};
    o.buckets = buckets;
    o.bucket_count = 5;
    const char *ln[] = {"op"};
    o.label_names = ln;
    o.label_count = 1;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, SONDE_HISTOGRAM, &o, &f));
    sonde_histogram *h = sonde_family_histogram(f, "clone");
    /* Old observations, before the rule: they must not count. */
    for (int i = 0; i < 1000; i++)
        sonde_histogram_observe(h, 0.05);
    sonde_rule_opts r;
    rule_init(&r, "SlowOperations", SONDE_RULE_QUANTILE, "op_duration_seconds", SONDE_OP_GT, 1.5);
    r.quantile = 0.95;
    r.window_seconds = 300;
    r.for_seconds = 60;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "SlowOperations", &s);
    advance(30);
    /* 100 observations: 50 in (0.1,0.5], 30 in (0.5,1], 20 in (1,2]. */
    for (int i = 0; i < 50; i++)
        sonde_histogram_observe(h, 0.3);
    for (int i = 0; i < 30; i++)
        sonde_histogram_observe(h, 0.7);
    for (int i = 0; i < 20; i++)
        sonde_histogram_observe(h, 1.5);
    eval(t, "SlowOperations", &s);
    ASSERT_EQ(s.n, 1);
    ASSERT_STR_EQ(s.series[0], "{op=\"clone\"}");
    /* rank 95 falls in (1,2] holding ranks 80..100: 1 + 1 * 15/20. */
    ASSERT_DBL_NEAR(s.value[0], 1.75, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_PENDING);
    advance(60);
    eval(t, "SlowOperations", &s);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_CONTAINS(s.summary[0], "p95 of op_duration_seconds{op=\"clone\"} over 5m is 1.75");
    /* The window slides past them: no observation, no quantile. */
    advance(300);
    eval(t, "SlowOperations", &s);
    ASSERT(isnan(s.value[0]));
    ASSERT_EQ(s.state[0], SONDE_ALERT_RESOLVED);
    /* A rank beyond the last finite bucket reports its bound (5). */
    sonde_rule_opts r2;
    rule_init(&r2, "P99", SONDE_RULE_QUANTILE, "op_duration_seconds{op=\"clone\"}", SONDE_OP_GT, 0);
    r2.quantile = 0.99;
    ASSERT_OK(sonde_alerts_add_rule(t, &r2));
    eval(t, "P99", &s);
    advance(5);
    for (int i = 0; i < 10; i++)
        sonde_histogram_observe(h, 100);
    eval(t, "P99", &s);
    ASSERT_DBL_NEAR(s.value[0], 5, 1e-9);
    done(t, reg);
}

TEST(test_rate_of_a_histogram_count)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_HISTOGRAM, "req_seconds", NULL, NULL);
    sonde_histogram *h = sonde_family_as_histogram(f);
    sonde_rule_opts r;
    rule_init(&r, "Busy", SONDE_RULE_RATE, "req_seconds_count", SONDE_OP_GE, 2);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "Busy", &s);
    advance(5);
    for (int i = 0; i < 10; i++)
        sonde_histogram_observe(h, 0.2);
    eval(t, "Busy", &s);
    ASSERT_DBL_NEAR(s.value[0], 2, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    done(t, reg);
}

TEST(test_interval_seconds_samples_less_often)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_GAUGE, "temp", NULL, NULL);
    sonde_gauge_set(sonde_family_as_gauge(f), 1);
    sonde_rule_opts r;
    rule_init(&r, "Hot", SONDE_RULE_VALUE, "temp", SONDE_OP_GT, 5);
    r.interval_seconds = 30;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "Hot", &s);
    sonde_gauge_set(sonde_family_as_gauge(f), 10);
    advance(10);
    eval(t, "Hot", &s);
    ASSERT_EQ(s.state[0], SONDE_ALERT_INACTIVE); /* not sampled again yet */
    advance(20);
    eval(t, "Hot", &s);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    done(t, reg);
}

TEST(test_metric_rule_validation_reports_reasons)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_rule_opts r;
    rule_init(&r, "R", SONDE_RULE_RATE, NULL, 0, 1);
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "needs a metric");
    r.metric = "x_total{code=~\"5(\"}";
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "bad regex");
    r.metric = "x_total{code=5}";
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "expected a quoted value at offset 13");
    r.metric = "x_total{code=\"5\"";
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    r.metric = "9x";
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "expected a metric name");
    r.metric = "x_total";
    r.op = 9;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "unknown comparison");
    r.op = 0;
    r.kind = SONDE_RULE_RATIO;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "needs a denominator");
    r.kind = SONDE_RULE_QUANTILE;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "quantile in (0, 1]");
    r.kind = SONDE_RULE_RATE;
    const char *by[] = {"__x"};
    r.by = by;
    r.by_count = 1;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "in by");
    r.by_count = 0;
    r.threshold_value = NAN;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    r.threshold_value = 1;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    /* Names and comparisons round-trip. */
    for (int k = SONDE_RULE_VALUE; k <= SONDE_RULE_QUANTILE; k++)
        ASSERT_EQ(sonde_rule_kind_parse(sonde_rule_kind_name(k)), k);
    for (int op = SONDE_OP_GT; op <= SONDE_OP_NE; op++)
        ASSERT_EQ(sonde_rule_op_parse(sonde_rule_op_name(op)), op);
    ASSERT_EQ(sonde_rule_op_parse("ge"), SONDE_OP_GE);
    ASSERT_EQ(sonde_rule_op_parse("=>"), SONDE_EINVAL);
    done(t, reg);
}

TEST(test_removed_and_reloaded_metric_rules)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_GAUGE, "load", "cpu", NULL);
    sonde_gauge_set(sonde_family_gauge(f, "0"), 9);
    sonde_gauge_set(sonde_family_gauge(f, "1"), 9);
    sonde_rule_opts r;
    rule_init(&r, "Load", SONDE_RULE_VALUE, "load", SONDE_OP_GT, 5);
    ASSERT_OK(sonde_alerts_set_rules(t, &r, 1));
    seen s;
    eval(t, "Load", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    /* The same definition again keeps the alerts (nothing resolves). */
    ASSERT_OK(sonde_alerts_set_rules(t, &r, 1));
    advance(1);
    eval(t, "Load", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_EQ(s.notes[0], 1);
    /* A changed matcher is a new rule. */
    r.metric = "load{cpu=\"0\"}";
    ASSERT_OK(sonde_alerts_set_rules(t, &r, 1));
    advance(1);
    eval(t, "Load", &s);
    ASSERT_EQ(s.n, 1);
    ASSERT_STR_EQ(s.series[0], "{cpu=\"0\"}");
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    /* Removing the rule resolves its alerts (two from the first version,
     * one from the second: three episodes, all resolved). */
    ASSERT_OK(sonde_alerts_remove_rule(t, "Load"));
    advance(1);
    eval(t, "Load", &s);
    ASSERT_EQ(s.n, 0);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &a, &n));
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(a[i].state, SONDE_ALERT_RESOLVED);
    sonde_free(a);
    done(t, reg);
}

TEST(test_silence_matches_a_series_label)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_family *f = family(reg, SONDE_GAUGE, "disk_full_ratio", "mount", NULL);
    sonde_gauge_set(sonde_family_gauge(f, "/"), 0.99);
    sonde_gauge_set(sonde_family_gauge(f, "/data"), 0.99);
    const char *m[] = {"mount", "/data"};
    ASSERT_OK(sonde_alerts_add_silence(t, m, 1, 0, now_fake() + 3600, "maintenance", NULL));
    sonde_rule_opts r;
    rule_init(&r, "DiskFull", SONDE_RULE_VALUE, "disk_full_ratio", SONDE_OP_GT, 0.9);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "DiskFull", &s);
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    ASSERT_EQ(s.notes[0], 1); /* "/" told */
    ASSERT_EQ(s.state[1], SONDE_ALERT_FIRING);
    ASSERT_EQ(s.notes[1], 0); /* "/data" silenced */
    done(t, reg);
}

static double collected_total = 0;
static void collect_db(sonde_emitter *em, void *ud)
{
    (void)ud;
    sonde_emit_family(em, SONDE_COUNTER, "db_errors_total", "errors", NULL);
    const char *kv[] = {"db", "main"};
    sonde_emit_sample(em, kv, 1, collected_total);
}

static double cb_value = 3;
static double read_cb(void *ud)
{
    (void)ud;
    return cb_value;
}

TEST(test_collector_and_callback_metrics_are_sampled_too)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    ASSERT_OK(sonde_registry_add_collector(reg, "db", collect_db, NULL));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "pool_free";
    o.help = "h";
    sonde_family *f;
    ASSERT_OK(sonde_callback_create(reg, SONDE_GAUGE, &o, read_cb, NULL, &f));
    sonde_rule_opts r;
    rule_init(&r, "DBErrors", SONDE_RULE_INCREASE, "db_errors_total{db=\"main\"}", SONDE_OP_GT, 4);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    rule_init(&r, "PoolLow", SONDE_RULE_VALUE, "pool_free", SONDE_OP_LT, 2);
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    seen s;
    eval(t, "DBErrors", &s);
    advance(10);
    collected_total = 5;
    eval(t, "DBErrors", &s);
    ASSERT_EQ(s.n, 1);
    ASSERT_STR_EQ(s.series[0], "{db=\"main\"}");
    ASSERT_DBL_NEAR(s.value[0], 5, 1e-9);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    eval(t, "PoolLow", &s);
    ASSERT_EQ(s.state[0], SONDE_ALERT_INACTIVE);
    cb_value = 1;
    advance(1);
    eval(t, "PoolLow", &s);
    ASSERT_DBL_EQ(s.value[0], 1);
    ASSERT_EQ(s.state[0], SONDE_ALERT_FIRING);
    done(t, reg);
}

/* ---- the agent's YAML ---- */

static char *read_docs_example(void)
{
    const char *src = getenv("SONDE_SOURCE_DIR");
    ASSERT(src != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/docs/alerting.md", src);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    char *b = strstr(doc, "<!-- mgit-alerts: begin -->\n```yaml\n");
    char *e = strstr(doc, "```\n<!-- mgit-alerts: end -->");
    ASSERT(b && e && e > b);
    b += strlen("<!-- mgit-alerts: begin -->\n```yaml\n");
    *e = '\0';
    return b;
}

TEST(test_docs_mgit_example_loads_and_every_alert_fires)
{
    const char *yaml = read_docs_example();
    sonde_config *cfg = NULL;
    sonde_config_error errs[8];
    size_t nerr = 0;
    int rc = sonde_config_load_string(yaml, strlen(yaml), &cfg, errs, 8, &nerr);
    for (size_t i = 0; i < nerr && i < 8; i++)
        fprintf(stderr, "  %d:%d: %s\n", errs[i].line, errs[i].column, errs[i].message);
    ASSERT_OK(rc);
    ASSERT_EQ(sonde_config_rule_count(cfg), 7);

    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    ASSERT_OK(sonde_config_apply_alerts(cfg, t));
    sonde_config_destroy(cfg);

    sonde_gauge *health;
    ASSERT_OK(sonde_gauge_create(reg, "mgit_health_overall", "health %", &health));
    sonde_gauge_set(health, 100);
    sonde_family *ops = family(reg, SONDE_COUNTER, "mgit_operations_total", "operation", NULL);
    sonde_family *fails =
        family(reg, SONDE_COUNTER, "mgit_operations_failure_total", "operation", NULL);
    sonde_family *api = family(reg, SONDE_COUNTER, "mgit_api_requests_total", "provider", "status");
    sonde_family *auth =
        family(reg, SONDE_COUNTER, "mgit_auth_attempts_total", "provider", "success");
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "mgit_git_clone_duration_seconds";
    o.help = "clone time";
    const double b[] = {1, 5, 10, 30, 60, 120, 300};
    o.buckets = b;
    o.bucket_count = 7;
    sonde_family *clone;
    ASSERT_OK(sonde_family_create(reg, SONDE_HISTOGRAM, &o, &clone));

    /* Healthy and quiet: nothing fires. */
    sonde_counter_add(sonde_family_counter(ops, "clone"), 100);
    sonde_counter_add(sonde_family_counter(api, "github", "200"), 100);
    sonde_errors_process(t);
    advance(30);
    sonde_errors_process(t);
    size_t n;
    sonde_alert *a;
    ASSERT_OK(sonde_alerts_get(t, 1, &a, &n));
    ASSERT_EQ(n, 0);
    sonde_free(a);

    /* Then everything goes wrong for five and a half minutes. */
    sonde_gauge_set(health, 40);
    for (int step = 0; step < 11; step++) {
        advance(30);
        sonde_counter_add(sonde_family_counter(ops, "clone"), 4);
        sonde_counter_add(sonde_family_counter(fails, "clone"), 1); /* 25% */
        sonde_counter_add(sonde_family_counter(api, "github", "200"), 20);
        sonde_counter_add(sonde_family_counter(api, "github", "502"), 2); /* 2/23 */
        sonde_counter_inc(sonde_family_counter(api, "github", "429"));
        sonde_counter_add(sonde_family_counter(auth, "github", "false"), 2);
        sonde_counter_add(sonde_family_counter(auth, "github", "true"), 9);
        for (int i = 0; i < 4; i++)
            sonde_histogram_observe(sonde_family_as_histogram(clone), 90);
        sonde_errors_process(t);
    }
    static const char *const want[][2] = {
        {"MgitUnhealthy", "{}"},
        {"MgitHealthDegraded", "{}"},
        {"MgitHighFailureRate", "{operation=\"clone\"}"},
        {"MgitAPIErrors", "{provider=\"github\"}"},
        {"MgitRateLimitHit", "{provider=\"github\"}"},
        {"MgitSlowOperations", "{}"},
        {"MgitAuthenticationFailures", "{provider=\"github\"}"},
    };
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    ASSERT_EQ(n, 7);
    for (size_t k = 0; k < 7; k++) {
        const sonde_alert *x = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(a[i].rule, want[k][0]) == 0)
                x = &a[i];
        ASSERT(x != NULL);
        fprintf(stderr, "  %s%s: %s (%s)\n", x->rule, x->series, sonde_alert_state_name(x->state),
                x->summary);
        ASSERT_EQ(x->state, SONDE_ALERT_FIRING);
        ASSERT_STR_EQ(x->series, want[k][1]);
    }
    sonde_free(a);
    sonde_buf j = {0};
    ASSERT_OK(sonde_alerts_write_json(t, &j));
    ASSERT_CONTAINS(j.data, "\"summary\":\"github rate limit hit 10 times in 5m\"");
    ASSERT_CONTAINS(j.data, "\"labels\":{\"alertname\":\"MgitAuthenticationFailures\","
                            "\"severity\":\"high\",\"service\":\"unit\",\"team\":\"platform\","
                            "\"provider\":\"github\"}");
    ASSERT_CONTAINS(j.data, "\"summary\":\"p95 clone time is 117s\"");
    sonde_buf_free(&j);
    done(t, reg);
}

TEST(test_yaml_metric_rules_errors_name_line_and_column)
{
    const char *yaml = "alerts:\n"
                       "  rules:\n"
                       "    - name: A\n"
                       "      kind: rates\n"
                       "    - name: B\n"
                       "      kind: rate\n"
                       "      metric: 'x_total{code=~\"5(\"}'\n"
                       "    - name: C\n"
                       "      kind: ratio\n"
                       "    - name: D\n"
                       "      kind: value\n"
                       "      metric: x\n"
                       "      op: \"=>\"\n"
                       "    - name: E\n"
                       "      kind: quantile\n"
                       "      metric: h\n"
                       "      quantile: 0.9\n"
                       "      threshold: fast\n"
                       "    - name: F\n"
                       "      kind: ratio\n"
                       "      metric: a_total\n"
                       "      denominator: 'b_total{x=\"1\" y=\"2\"}'\n"
                       "    - name: G\n"
                       "      kind: rate\n"
                       "      metric: ok_total\n"
                       "      by: [le, 9bad]\n";
    sonde_config *cfg = NULL;
    sonde_config_error e[16];
    size_t n = 0;
    ASSERT_EQ(sonde_config_load_string(yaml, strlen(yaml), &cfg, e, 16, &n), SONDE_EPARSE);
    for (size_t i = 0; i < n && i < 16; i++)
        fprintf(stderr, "  %d:%d: %s\n", e[i].line, e[i].column, e[i].message);
    ASSERT_EQ(n, 7);
    ASSERT_EQ(e[0].line, 4);
    ASSERT_EQ(e[0].column, 13);
    ASSERT_CONTAINS(e[0].message, "unknown rule kind \"rates\"");
    ASSERT_CONTAINS(e[0].message, "quantile");
    ASSERT_EQ(e[1].line, 7);
    ASSERT_EQ(e[1].column, 15);
    ASSERT_CONTAINS(e[1].message, "bad regex \"5(\" for label code");
    ASSERT_EQ(e[2].line, 8);
    ASSERT_EQ(e[2].column, 7);
    ASSERT_CONTAINS(e[2].message, "has no metric");
    ASSERT_EQ(e[3].line, 13);
    ASSERT_EQ(e[3].column, 11);
    ASSERT_CONTAINS(e[3].message, "unknown op \"=>\"");
    ASSERT_EQ(e[4].line, 18);
    ASSERT_EQ(e[4].column, 18);
    ASSERT_CONTAINS(e[4].message, "threshold");
    ASSERT_EQ(e[5].line, 22);
    ASSERT_EQ(e[5].column, 20);
    ASSERT_CONTAINS(e[5].message, "expected , or } at offset 14");
    ASSERT_EQ(e[6].line, 23);
    ASSERT_CONTAINS(e[6].message, "invalid label name \"9bad\" in by");
}
