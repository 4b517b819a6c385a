/*
 * Alert rules that read tracing: failure rate, no success, baseline
 * anomaly. Tracing and the tracker share one controllable clock, so each
 * rule fires and resolves as minutes pass.
 */
#include "test.h"

#include <sonde.h>
#include <sonde/trace.h>

#include "trace/trace_int.h"

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

#define SEC UINT64_C(1000000000)
#define MIN_NS (60 * SEC)
/* 2025-01-01T12:00:00Z */
#define T0 (UINT64_C(28928880) * MIN_NS)

static uint64_t now_ns = T0;
static uint64_t trace_clock(void)
{
    return __atomic_load_n(&now_ns, __ATOMIC_RELAXED);
}
static double errors_clock(void *ud)
{
    (void)ud;
    return (double)trace_clock() / 1e9;
}
static void set_time(uint64_t ns)
{
    __atomic_store_n(&now_ns, ns, __ATOMIC_RELAXED);
}

static sonde_errors *T;
static sonde_registry *R;

/* Tracing (no store) and a tracker on the shared clock, once. */
static void setup(void)
{
    if (T)
        return;
    sonde__trace_set_clock(trace_clock);
    set_time(T0 + 10 * SEC);
    ASSERT_OK(sonde_registry_create(NULL, &R));
    sonde_trace_opts to;
    sonde_trace_opts_init(&to);
    to.registry = R;
    to.store = "off";
    ASSERT_OK(sonde_trace_start(&to));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = R;
    eo.clock = errors_clock;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    ASSERT_OK(sonde_errors_create(&eo, &T));
}

static void run(const char *op, double seconds, int ok)
{
    sonde_op_token t = sonde_op_begin(op);
    set_time(trace_clock() + (uint64_t)(seconds * 1e9));
    sonde_op_end(t, ok);
}

static int state(const char *rule, double *value)
{
    sonde_errors_process(T);
    sonde_alert *a;
    size_t n;
    if (sonde_alerts_get(T, 0, &a, &n) != SONDE_OK)
        return -1;
    int s = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].rule, rule) == 0) {
            s = a[i].state;
            if (value)
                *value = a[i].value;
        }
    sonde_free(a);
    return s;
}

TEST(test_failure_rate_rule_fires_above_the_percentage_and_resolves)
{
    setup();
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "CloneFailing";
    r.kind = SONDE_RULE_FAILURE_RATE;
    r.operation = "clone";
    r.percent = 10;
    r.min_count = 10;
    r.window_seconds = 60;
    ASSERT_OK(sonde_alerts_add_rule(T, &r));
    set_time(T0 + 10 * MIN_NS + 5 * SEC);
    /* Too few operations: no alert, whatever the rate. */
    for (int i = 0; i < 5; i++)
        run("clone", 0.01, 0);
    double v = 0;
    ASSERT_EQ(state("CloneFailing", &v), SONDE_ALERT_INACTIVE);
    ASSERT_DBL_EQ(v, 100);
    for (int i = 0; i < 15; i++)
        run("clone", 0.01, 1);
    ASSERT_EQ(state("CloneFailing", &v), SONDE_ALERT_FIRING);
    ASSERT_DBL_EQ(v, 25);
    /* Many successes bring it under 10%: resolved. */
    for (int i = 0; i < 40; i++)
        run("clone", 0.01, 1);
    ASSERT_EQ(state("CloneFailing", &v), SONDE_ALERT_RESOLVED);
    ASSERT_DBL_NEAR(v, 100.0 * 5 / 60, 1e-9);
    /* Failures again, then the minutes pass and the window empties. */
    for (int i = 0; i < 30; i++)
        run("clone", 0.01, 0);
    ASSERT_EQ(state("CloneFailing", NULL), SONDE_ALERT_FIRING);
    set_time(T0 + 13 * MIN_NS + 5 * SEC);
    ASSERT_EQ(state("CloneFailing", &v), SONDE_ALERT_RESOLVED);
    ASSERT_OK(sonde_alerts_remove_rule(T, "CloneFailing"));
}

TEST(test_no_success_rule_fires_after_a_window_without_success)
{
    setup();
    set_time(T0 + 20 * MIN_NS + 5 * SEC);
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "NoSync";
    r.kind = SONDE_RULE_NO_SUCCESS;
    r.operation = "sync";
    r.window_seconds = 120;
    ASSERT_OK(sonde_alerts_add_rule(T, &r));
    /* Not before a whole window has passed since the rule was added. */
    ASSERT_EQ(state("NoSync", NULL), SONDE_ALERT_INACTIVE);
    set_time(T0 + 21 * MIN_NS + 5 * SEC);
    run("sync", 0.2, 0);
    ASSERT_EQ(state("NoSync", NULL), SONDE_ALERT_INACTIVE);
    set_time(T0 + 22 * MIN_NS + 10 * SEC);
    run("sync", 0.2, 0);
    double v = -1;
    ASSERT_EQ(state("NoSync", &v), SONDE_ALERT_FIRING);
    ASSERT_DBL_EQ(v, 0);
    run("sync", 0.2, 1);
    ASSERT_EQ(state("NoSync", &v), SONDE_ALERT_RESOLVED);
    ASSERT_DBL_EQ(v, 1);
    /* The success slides out of the window: firing again. */
    set_time(T0 + 26 * MIN_NS);
    ASSERT_EQ(state("NoSync", NULL), SONDE_ALERT_FIRING);
    ASSERT_OK(sonde_alerts_remove_rule(T, "NoSync"));
}

TEST(test_anomaly_rule_follows_the_tracing_baseline)
{
    setup();
    set_time(T0 + 40 * MIN_NS + 5 * SEC);
    sonde_baseline b = {.avg_seconds = 0.1, .factor = 2, .window_minutes = 5, .min_count = 10};
    ASSERT_OK(sonde_trace_set_baseline("fetch", &b));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "FetchSlow";
    r.kind = SONDE_RULE_ANOMALY;
    r.operation = "fetch";
    r.window_seconds = 300;
    ASSERT_OK(sonde_alerts_add_rule(T, &r));
    for (int i = 0; i < 12; i++)
        run("fetch", 0.1, 1);
    ASSERT_EQ(state("FetchSlow", NULL), SONDE_ALERT_INACTIVE);
    for (int i = 0; i < 30; i++)
        run("fetch", 0.6, 1);
    ASSERT_EQ(state("FetchSlow", NULL), SONDE_ALERT_FIRING);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(T, 0, &a, &n));
    ASSERT_STR_EQ(a[n - 1].summary, "fetch is slower than its baseline");
    sonde_free(a);
    /* Ten minutes later the slow minutes are out of the window. */
    set_time(T0 + 50 * MIN_NS + 5 * SEC);
    for (int i = 0; i < 12; i++)
        run("fetch", 0.1, 1);
    ASSERT_EQ(state("FetchSlow", NULL), SONDE_ALERT_RESOLVED);
}

TEST(test_unknown_operation_leaves_the_rule_as_it_is)
{
    setup();
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Ghost";
    r.kind = SONDE_RULE_FAILURE_RATE;
    r.operation = "never-traced";
    r.percent = 1;
    ASSERT_OK(sonde_alerts_add_rule(T, &r));
    double v = 0;
    ASSERT_EQ(state("Ghost", &v), SONDE_ALERT_INACTIVE);
    ASSERT(isnan(v));
    sonde_errors_destroy(T);
    T = NULL;
    sonde_trace_stop();
    sonde__trace_set_clock(NULL);
    sonde_registry_destroy(R);
}
