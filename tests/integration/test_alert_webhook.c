/*
 * Alert delivery to real loopback receivers (tests/integration/
 * webhook_receiver.py): retries of 503 with backoff and a single delivery,
 * no retry of 400, a receiver that never answers neither blocks capture nor
 * grows the queue, Slack payloads, command notifiers, notifiers from the
 * environment. Rules run on a controllable clock; deliveries in real time.
 */
#include "test.h"

#include "http_client.h"
#include "proc.h"

#include <sonde.h>

#include <pthread.h>

TEST_MAIN()

/* No log lines on stderr: the test output stays readable. */
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

typedef struct receiver {
    pid_t pid;
    int port;
    char url[128];
} receiver;

static receiver start_receiver(const char *mode, const char *arg)
{
    receiver r = {0};
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/integration/webhook_receiver.py",
             getenv("SONDE_SOURCE_DIR") ? getenv("SONDE_SOURCE_DIR") : ".");
    char *argv[] = {"/usr/bin/python3", script, (char *)mode, (char *)arg, NULL};
    int fd = -1;
    r.pid = proc_spawn(argv, &fd, NULL);
    ASSERT_GT(r.pid, 0);
    char line[32];
    ASSERT_GT(proc_read_line(fd, line, sizeof line, 10000), 0);
    close(fd);
    r.port = (int)strtol(line, NULL, 10);
    ASSERT_GT(r.port, 0);
    snprintf(r.url, sizeof r.url, "http://127.0.0.1:%d/hook", r.port);
    return r;
}

/* The receiver's request log; caller frees. */
static char *requests(const receiver *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/requests", r->port);
    http_resp h = http_get(url);
    ASSERT_EQ(h.status, 200);
    return h.body;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char *line = strndup(p, l);
        if (!needle || strstr(line, needle))
            n++;
        free(line);
        p = e ? e + 1 : NULL;
    }
    return n;
}

/* Arrival times of the requests, in order. */
static int times(const char *s, double *out, int max)
{
    int n = 0;
    for (const char *p = s; p && *p && n < max;) {
        if (sscanf(p, "t=%lf", &out[n]) == 1)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

static sonde_errors *tracker(sonde_registry **reg)
{
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = *reg;
    o.clock = fake_clock;
    o.tick_ms = 10;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.service_name = "webhook-test";
    o.external_url = "http://127.0.0.1:9464";
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    return t;
}

static void add_rule(sonde_errors *t, const char *name, double window)
{
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = name;
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_HIGH;
    r.window_seconds = window;
    r.repeat_seconds = -1;
    r.description = "see the runbook";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
}

static void capture(sonde_errors *t)
{
    sonde_error_capturef(t, SONDE_SEVERITY_CRITICAL, "PaymentError", __FILE__, __LINE__, __func__,
                         "charge %d declined", 42);
}

TEST(test_webhook_retries_503_with_backoff_and_delivers_once)
{
    receiver rc = start_receiver("fail", "2");
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_WEBHOOK;
    no.name = "hook";
    no.url = rc.url;
    const char *hdr[] = {"Authorization: Bearer s3cret"};
    no.headers = hdr;
    no.header_count = 1;
    no.retry_initial_seconds = 0.2;
    no.max_attempts = 5;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    add_rule(t, "PaymentsFailing", 60);
    ASSERT_OK(sonde_errors_start(t));
    capture(t);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    char *log = requests(&rc);
    ASSERT_EQ(count_lines(log, NULL), 3);
    ASSERT_EQ(count_lines(log, "status=503"), 2);
    ASSERT_EQ(count_lines(log, "status=200"), 1);
    ASSERT_EQ(count_lines(log, "json=1"), 3);
    ASSERT_EQ(count_lines(log, "auth=Bearer_s3cret"), 3);
    ASSERT_CONTAINS(log, "\"status\":\"firing\"");
    ASSERT_CONTAINS(log, "\"name\":\"PaymentsFailing\"");
    ASSERT_CONTAINS(log, "\"service\":\"webhook-test\"");
    ASSERT_CONTAINS(log, "\"generatorURL\":\"http://127.0.0.1:9464/alerts\"");
    ASSERT_CONTAINS(log, "\"description\":\"see the runbook\"");
    double ts[8];
    ASSERT_EQ(times(log, ts, 8), 3);
    double g1 = ts[1] - ts[0], g2 = ts[2] - ts[1];
    printf("  retry gaps: %.3f s, %.3f s\n", g1, g2);
    /* 0.2 s then 0.4 s, each minus up to half of it as jitter: at least
     * 0.1 s then at least 0.2 s (the upper bounds leave room for a loaded
     * machine). */
    ASSERT(g1 >= 0.095 && g1 <= 2.0);
    ASSERT(g2 >= 0.195 && g2 <= 2.0);
    free(log);
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "hook", &st));
    ASSERT_EQ(st.sent, 1);
    ASSERT_EQ(st.failed, 0);
    ASSERT_EQ(st.attempts, 3);

    /* The condition clears: the resolution is delivered (first try). */
    advance(61);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    log = requests(&rc);
    ASSERT_EQ(count_lines(log, NULL), 4);
    ASSERT_EQ(count_lines(log, "\"status\":\"resolved\""), 1);
    free(log);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_alert_notifications_total{notifier=\"hook\"} 2");
    ASSERT_CONTAINS(text, "sonde_alert_notification_retries_total{notifier=\"hook\"} 2");
    ASSERT_CONTAINS(text, "sonde_alert_notifications_failed_total{notifier=\"hook\"} 0");
    sonde_free(text);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    proc_stop(rc.pid);
}

TEST(test_webhook_answering_400_is_not_retried)
{
    receiver rc = start_receiver("status", "400");
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_WEBHOOK;
    no.url = rc.url;
    no.retry_initial_seconds = 0.05;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    add_rule(t, "Refused", 60);
    ASSERT_OK(sonde_errors_start(t));
    capture(t);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    proc_sleep_ms(300); /* a retry, if any, would come within 0.05 s */
    char *log = requests(&rc);
    ASSERT_EQ(count_lines(log, NULL), 1);
    free(log);
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ASSERT_EQ(st.sent, 0);
    ASSERT_EQ(st.failed, 1);
    ASSERT_EQ(st.attempts, 1);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_alert_notifications_failed_total{notifier=\"webhook\"} 1");
    sonde_free(text);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    proc_stop(rc.pid);
}

TEST(test_hanging_webhook_neither_blocks_capture_nor_grows_the_queue)
{
    receiver rc = start_receiver("hang", NULL);
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_WEBHOOK;
    no.url = rc.url;
    no.timeout_seconds = 0.3;
    no.max_attempts = 2;
    no.retry_initial_seconds = 0.05;
    no.queue_size = 4;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "Rule%d", i);
        add_rule(t, name, 60);
    }
    ASSERT_OK(sonde_errors_start(t));
    /* 40 alerts fire at once: 40 notifications for a queue of 4. */
    capture(t);
    sonde_errors_process(t);
    double t0 = proc_now();
    size_t max_queued = 0;
    for (int i = 0; i < 20000; i++) {
        capture(t);
        if (i % 1000 == 0) {
            sonde_errors_process(t);
            sonde_notifier_stats st;
            ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
            if (st.queued > max_queued)
                max_queued = st.queued;
        }
    }
    double spent = proc_now() - t0;
    printf("  20000 captures while the receiver hangs: %.3f s; max queued %zu\n", spent,
           max_queued);
    ASSERT(spent < 2.0);
    ASSERT_LE(max_queued, 4);
    /* The in-flight request times out (0.3 s) and is retried once. */
    proc_sleep_ms(1200);
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ASSERT_GE(st.failed, 36); /* dropped from the full queue, or timed out */
    ASSERT_EQ(st.sent, 0);
    ASSERT_LE(st.queued, 4);
    /* Stopping abandons what is left within the stop timeout. */
    t0 = proc_now();
    sonde_errors_stop(t);
    spent = proc_now() - t0;
    printf("  stop with a hanging receiver: %.3f s\n", spent);
    ASSERT(spent < 3.0);
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.failed, 40);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    proc_stop(rc.pid);
}

TEST(test_slack_payload_has_text_and_attachment)
{
    receiver rc = start_receiver("ok", NULL);
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_SLACK;
    no.url = rc.url;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    add_rule(t, "SlackMe", 60);
    ASSERT_OK(sonde_errors_start(t));
    capture(t);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    char *log = requests(&rc);
    ASSERT_EQ(count_lines(log, "json=1"), 1);
    ASSERT_CONTAINS(
        log, "{\"text\":\":rotating_light: [FIRING] SlackMe: 1 errors of severity &gt;= high");
    ASSERT_CONTAINS(log, "\"attachments\":[{\"color\":\"danger\"");
    ASSERT_CONTAINS(log, "{\"title\":\"Service\",\"value\":\"webhook-test\",\"short\":true}");
    free(log);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    proc_stop(rc.pid);
}

TEST(test_command_notifier_gets_the_alert_and_is_killed_at_its_timeout)
{
    char dir[] = "/tmp/sonde-cmd-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char out[256], script[512];
    snprintf(out, sizeof out, "%s/alerts.txt", dir);
    snprintf(script, sizeof script,
             "printf '%%s %%s %%s\\n' \"$SONDE_ALERT_NAME\" \"$SONDE_ALERT_STATUS\" "
             "\"$SONDE_ALERT_SEVERITY\" >> %s",
             out);
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_COMMAND;
    no.name = "script";
    const char *argv[] = {"sh", "-c", script, NULL};
    no.argv = argv;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    const char *slow_argv[] = {"sleep", "30", NULL};
    no.name = "slow";
    no.argv = slow_argv;
    no.timeout_seconds = 0.2;
    no.max_attempts = 1;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    add_rule(t, "RunScript", 60);
    ASSERT_OK(sonde_errors_start(t));
    capture(t);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    advance(61);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    FILE *f = fopen(out, "r");
    ASSERT(f != NULL);
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ASSERT_STR_EQ(buf, "RunScript firing high\nRunScript resolved high\n");
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "script", &st));
    ASSERT_EQ(st.sent, 2);
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "slow", &st));
    ASSERT_EQ(st.sent, 0);
    ASSERT_EQ(st.failed, 2);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    unlink(out);
    rmdir(dir);
}

TEST(test_notifiers_from_the_environment)
{
    receiver rc = start_receiver("ok", NULL);
    setenv("SONDE_WEBHOOK_URL", rc.url, 1);
    setenv("SONDE_SLACK_WEBHOOK_URL", "not a url", 1);
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    o.clock = fake_clock;
    o.tick_ms = 10;
    o.no_log = 1;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    add_rule(t, "FromEnv", 60);
    ASSERT_OK(sonde_errors_start(t));
    unsetenv("SONDE_WEBHOOK_URL");
    unsetenv("SONDE_SLACK_WEBHOOK_URL");
    sonde_notifier_stats st;
    /* The bad URL is ignored (and logged), the good one used. */
    ASSERT_EQ(sonde_alerts_get_notifier_stats(t, "slack", &st), SONDE_ENOTFOUND);
    capture(t);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ASSERT_EQ(st.sent, 1);
    char *log = requests(&rc);
    ASSERT_EQ(count_lines(log, "\"name\":\"FromEnv\""), 1);
    free(log);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    proc_stop(rc.pid);
}
