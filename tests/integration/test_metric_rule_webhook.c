/*
 * A rate rule over an application counter fires through a real webhook
 * receiver (tests/integration/webhook_receiver.py on loopback): one
 * delivery per matching series, each carrying the series' labels, and a
 * resolution per series when its rate falls. Rules run on a controllable
 * clock; deliveries in real time on the runtime worker.
 */
#include "test.h"

#include "http_client.h"
#include "proc.h"

#include <sonde.h>

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

static pid_t receiver_pid;
static void stop_receiver(void)
{
    if (receiver_pid > 0)
        proc_stop(receiver_pid);
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

TEST(test_rate_rule_fires_per_series_through_a_real_webhook)
{
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/integration/webhook_receiver.py",
             getenv("SONDE_SOURCE_DIR") ? getenv("SONDE_SOURCE_DIR") : ".");
    char *argv[] = {"/usr/bin/python3", script, "ok", NULL};
    int fd = -1;
    pid_t pid = proc_spawn(argv, &fd, NULL);
    ASSERT_GT(pid, 0);
    receiver_pid = pid;
    atexit(stop_receiver); /* also when an assertion fails */
    char line[32];
    ASSERT_GT(proc_read_line(fd, line, sizeof line, 10000), 0);
    close(fd);
    int port = (int)strtol(line, NULL, 10);
    ASSERT_GT(port, 0);
    char url[128], reqs[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    snprintf(reqs, sizeof reqs, "http://127.0.0.1:%d/requests", port);

    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    o.clock = fake_clock;
    o.tick_ms = 10;
    /* Only the test evaluates (the worker still delivers): an evaluation
     * on the worker at the same fake time could interleave with the
     * counter updates of a step. */
    o.eval_interval_ms = 3600000;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.service_name = "shop";
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_WEBHOOK;
    no.name = "hook";
    no.url = url;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));

    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "shop_http_requests_total";
    mo.help = "requests";
    const char *ln[] = {"route", "status"};
    mo.label_names = ln;
    mo.label_count = 2;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &mo, &f));

    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "ServerErrors";
    r.kind = SONDE_RULE_RATE;
    r.metric = "shop_http_requests_total{status=~\"5..\"}";
    const char *by[] = {"route"};
    r.by = by;
    r.by_count = 1;
    r.op = SONDE_OP_GT;
    r.threshold_value = 0.5;
    r.window_seconds = 60;
    r.for_seconds = 10;
    r.severity = SONDE_SEVERITY_HIGH;
    r.summary = "{labels.route} answers {value} errors/s";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_errors_start(t));

    sonde_errors_process(t);
    /* The worker evaluates too, whenever the clock has moved: update the
     * counters first, then move the clock, so that every evaluation at a
     * given time sees the same values. */
    for (int i = 0; i < 3; i++) {
        sonde_counter_add(sonde_family_counter(f, "/cart", "500"), 10);   /* 1/s */
        sonde_counter_add(sonde_family_counter(f, "/cart", "503"), 5);    /* 0.5/s */
        sonde_counter_add(sonde_family_counter(f, "/pay", "502"), 20);    /* 2/s */
        sonde_counter_add(sonde_family_counter(f, "/home", "500"), 1);    /* 0.1/s */
        sonde_counter_add(sonde_family_counter(f, "/home", "200"), 1000); /* not an error */
        advance(10);
        sonde_errors_process(t);
    }
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    http_resp h = http_get(reqs);
    ASSERT_EQ(h.status, 200);
    printf("%s", h.body);
    ASSERT_EQ(count(h.body, "status=200"), 2);
    ASSERT_EQ(count(h.body, "\"status\":\"firing\",\"kind\":\"rate\""), 2);
    ASSERT_CONTAINS(h.body, "\"labels\":{\"alertname\":\"ServerErrors\",\"severity\":\"high\","
                            "\"service\":\"shop\",\"route\":\"/cart\"}");
    ASSERT_CONTAINS(h.body, "\"route\":\"/pay\"}");
    ASSERT_NOT_CONTAINS(h.body, "/home");
    ASSERT_CONTAINS(h.body, "\"summary\":\"/cart answers 1.5 errors/s\"");
    ASSERT_CONTAINS(h.body, "\"summary\":\"/pay answers 2 errors/s\"");
    free(h.body);

    /* /pay recovers (no more errors for a window): its resolution alone
     * is delivered; /cart keeps firing and is not sent again. */
    for (int i = 0; i < 7; i++) {
        sonde_counter_add(sonde_family_counter(f, "/cart", "500"), 15);
        advance(10);
        sonde_errors_process(t);
    }
    ASSERT_OK(sonde_alerts_wait_idle(t, 10000));
    h = http_get(reqs);
    ASSERT_EQ(h.status, 200);
    ASSERT_EQ(count(h.body, "status=200"), 3);
    ASSERT_EQ(count(h.body, "\"status\":\"resolved\",\"kind\":\"rate\""), 1);
    const char *res = strstr(h.body, "\"status\":\"resolved\",\"kind\"");
    ASSERT(res && strstr(res, "\"route\":\"/pay\"}"));
    free(h.body);

    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    stop_receiver();
    receiver_pid = 0;
}
