/*
 * A real Prometheus Alertmanager (Debian's prometheus-alertmanager),
 * started here on a loopback port with a temporary configuration and
 * storage, receives a firing alert and then its resolution, checked through
 * its own API (GET /api/v2/alerts). An alert Alertmanager would refuse is
 * held back so that the rest of the batch is accepted.
 */
#include "test.h"

#include "http_client.h"
#include "proc.h"

#include <sonde.h>

#include <sys/stat.h>

TEST_MAIN()

/* No log lines on stderr: the test output stays readable. */
__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

#define AM_BIN "/usr/bin/prometheus-alertmanager"

typedef struct am {
    pid_t pid;
    int port;
    char dir[64];
    char base[64];
} am;

static am am_start(void)
{
    am a = {0};
    snprintf(a.dir, sizeof a.dir, "/tmp/sonde-am-XXXXXX");
    ASSERT(mkdtemp(a.dir) != NULL);
    char cfg[128], data[128], listen[64], log[128];
    snprintf(cfg, sizeof cfg, "%s/am.yml", a.dir);
    snprintf(data, sizeof data, "%s/data", a.dir);
    snprintf(log, sizeof log, "%s/am.log", a.dir);
    mkdir(data, 0700);
    FILE *f = fopen(cfg, "w");
    ASSERT(f != NULL);
    fputs("route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n"
          "receivers:\n  - name: blackhole\n",
          f);
    fclose(f);
    a.port = proc_free_port();
    ASSERT_GT(a.port, 0);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", a.port);
    char cfg_arg[160], data_arg[160];
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", cfg);
    snprintf(data_arg, sizeof data_arg, "--storage.path=%s", data);
    char *argv[] = {AM_BIN, cfg_arg, data_arg, listen, "--cluster.listen-address=", NULL};
    a.pid = proc_spawn(argv, NULL, log);
    ASSERT_GT(a.pid, 0);
    snprintf(a.base, sizeof a.base, "http://127.0.0.1:%d", a.port);
    char url[128];
    snprintf(url, sizeof url, "%s/-/ready", a.base);
    for (int i = 0; i < 200; i++) {
        http_resp r = http_get(url);
        long st = r.status;
        http_free(&r);
        if (st == 200)
            return a;
        proc_sleep_ms(50);
    }
    TEST_FAIL_AT("alertmanager did not become ready on port %d (see %s)", a.port, log);
    return a;
}

static void am_stop(am *a)
{
    proc_stop(a->pid);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", a->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", a->dir);
}

/* Alertmanager's current alerts (JSON); caller frees. */
static char *am_alerts(const am *a)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v2/alerts", a->base);
    http_resp r = http_get(url);
    ASSERT_EQ(r.status, 200);
    return r.body;
}

/* Wait until predicate(contains needle) holds on the alert list. */
static char *am_wait(const am *a, const char *needle, int want_present, int timeout_ms)
{
    double end = proc_now() + timeout_ms / 1000.0;
    for (;;) {
        char *body = am_alerts(a);
        int present = strstr(body, needle) != NULL;
        if (present == want_present || proc_now() > end)
            return body;
        free(body);
        proc_sleep_ms(100);
    }
}

TEST(test_alertmanager_receives_firing_alert_then_its_resolution)
{
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    am a = am_start();
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    o.tick_ms = 10;
    /* Rules are evaluated only when the test says so (sonde_errors_process),
     * so a slow machine cannot resolve the alert early. */
    o.eval_interval_ms = 3600000;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.service_name = "checkout";
    o.external_url = "http://127.0.0.1:9464/";
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_ALERTMANAGER;
    no.url = a.base;
    no.resend_seconds = 1;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "CheckoutErrors";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_HIGH;
    r.threshold = 2;
    r.window_seconds = 2;
    r.summary = "{value} checkout errors in {window}";
    const char *labels[] = {"team", "payments"};
    r.labels = labels;
    r.label_count = 1;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_errors_start(t));

    for (int i = 0; i < 3; i++)
        sonde_error_capturef(t, SONDE_SEVERITY_HIGH, "CardDeclined", __FILE__, __LINE__, __func__,
                             "card %d declined", i);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "alertmanager", &st));
    ASSERT_EQ(st.failed, 0);
    ASSERT_EQ(st.sent, 1);

    char *body = am_wait(&a, "\"alertname\":\"CheckoutErrors\"", 1, 5000);
    ASSERT_CONTAINS(body, "\"alertname\":\"CheckoutErrors\"");
    ASSERT_CONTAINS(body, "\"severity\":\"high\"");
    ASSERT_CONTAINS(body, "\"service\":\"checkout\"");
    ASSERT_CONTAINS(body, "\"team\":\"payments\"");
    ASSERT_CONTAINS(body, "\"summary\":\"3 checkout errors in 2s\"");
    ASSERT_CONTAINS(body, "\"generatorURL\":\"http://127.0.0.1:9464/alerts\"");
    ASSERT_CONTAINS(body, "\"state\":\"active\"");
    free(body);

    /* While it fires it is re-sent (resend interval 1 s). */
    proc_sleep_ms(1300);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "alertmanager", &st));
    ASSERT_GE(st.sent, 2);
    ASSERT_EQ(st.failed, 0);

    /* The window slides past the errors: resolved, and Alertmanager drops
     * the alert from its active list. */
    proc_sleep_ms(2100);
    sonde_errors_process(t);
    sonde_alert *al;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 0, &al, &n));
    ASSERT_EQ(al[0].state, SONDE_ALERT_RESOLVED);
    sonde_free(al);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    body = am_wait(&a, "\"alertname\":\"CheckoutErrors\"", 0, 5000);
    ASSERT_NOT_CONTAINS(body, "\"alertname\":\"CheckoutErrors\"");
    free(body);
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "alertmanager", &st));
    ASSERT_EQ(st.failed, 0);
    ASSERT_GE(st.sent, 3);

    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    am_stop(&a);
}

TEST(test_alert_alertmanager_would_refuse_is_held_back_and_the_batch_delivered)
{
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    am a = am_start();
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    o.tick_ms = 10;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_ALERTMANAGER;
    no.name = "am";
    no.url = a.base;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.kind = SONDE_RULE_ERRORS;
    r.window_seconds = 60;
    r.name = "GoodAlert";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    r.name = "BadAlert";
    r.summary = "broken \xff\xfe summary"; /* not UTF-8: Alertmanager says 400 */
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_errors_start(t));
    sonde_error_capturef(t, SONDE_SEVERITY_HIGH, "E", __FILE__, __LINE__, __func__, "boom");
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "am", &st));
    ASSERT_EQ(st.sent, 1);
    ASSERT_EQ(st.failed, 1);
    char *body = am_wait(&a, "\"alertname\":\"GoodAlert\"", 1, 5000);
    ASSERT_CONTAINS(body, "\"alertname\":\"GoodAlert\"");
    ASSERT_NOT_CONTAINS(body, "BadAlert");
    free(body);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    am_stop(&a);
}
