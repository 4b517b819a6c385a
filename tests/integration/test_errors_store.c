/*
 * Error groups and alert history in the store, as a later reader sees
 * them: a SQLite file and a real redis-server started here on a loopback
 * port. Two trackers (two "processes") add up their counts; a firing
 * episode is recorded, then its resolution; an unreachable Redis neither
 * blocks capture nor stops the tracker, and is counted.
 */
#include "test.h"

#include "proc.h"

#include <sonde.h>

#include <sys/stat.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static double fake_now_v = 1700000000.0;
static double fake_clock(void *ud)
{
    (void)ud;
    double v;
    __atomic_load(&fake_now_v, &v, __ATOMIC_SEQ_CST);
    return v;
}
static void advance(double s)
{
    double v = fake_clock(NULL) + s;
    __atomic_store(&fake_now_v, &v, __ATOMIC_SEQ_CST);
}

static sonde_errors *tracker(const char *store, sonde_registry **reg)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = *reg;
    o.store = store;
    o.store_flush_ms = 50;
    o.clock = fake_clock;
    o.tick_ms = 10;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.service_name = "store-test";
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Failures";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_HIGH;
    r.window_seconds = 60;
    r.summary = "{value} failures";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_errors_start(t));
    return t;
}

static void capture(sonde_errors *t, int sev, const char *type, int id)
{
    const char *ctx[] = {"tenant", "acme"};
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = sev;
    e.type = type;
    char msg[64];
    snprintf(msg, sizeof msg, "payment %d declined", id);
    e.message = msg;
    e.context = ctx;
    e.context_count = 1;
    e.file = "pay.c";
    e.line = 77;
    e.func = "charge";
    sonde_error_capture(t, &e);
}

/* Two trackers one after the other on the same store, then a reader. */
static void check_store(const char *store)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(store, &reg);
    for (int i = 0; i < 3; i++)
        capture(t, SONDE_SEVERITY_HIGH, "PaymentError", 1000 + i);
    capture(t, SONDE_SEVERITY_LOW, "Notice", 1);
    sonde_errors_process(t);
    sonde_errors_stop(t); /* the last write happens here */
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);

    /* A second process: the same group again, critical this time, and the
     * alert resolves. */
    advance(30);
    t = tracker(store, &reg);
    capture(t, SONDE_SEVERITY_CRITICAL, "PaymentError", 4711);
    capture(t, SONDE_SEVERITY_HIGH, "PaymentError", 4712);
    sonde_errors_process(t);
    advance(61);
    sonde_errors_process(t);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);

    sonde_buf b = {0};
    ASSERT_OK(sonde_errors_read_store(store, NULL, &b));
    ASSERT_CONTAINS(b.data, "\"total_groups\":2");
    ASSERT_CONTAINS(
        b.data, "\"severity\":\"critical\",\"count\":5,\"first_seen\":\"2023-11-14T22:13:20.000Z\","
                "\"last_seen\":\"2023-11-14T22:13:50.000Z\",\"type\":\"PaymentError\","
                "\"title\":\"PaymentError: payment <n> declined\"");
    ASSERT_CONTAINS(b.data, "\"message\":\"payment 4712 declined\"");
    ASSERT_CONTAINS(b.data, "\"context\":{\"tenant\":\"acme\"}");
    ASSERT_CONTAINS(b.data,
                    "\"location\":{\"file\":\"pay.c\",\"function\":\"charge\",\"line\":77}");
    ASSERT_CONTAINS(b.data, "\"type\":\"Notice\"");
    sonde_buf_reset(&b);
    sonde_errors_filter f = {.min_severity = SONDE_SEVERITY_HIGH};
    ASSERT_OK(sonde_errors_read_store(store, &f, &b));
    ASSERT_NOT_CONTAINS(b.data, "Notice");
    ASSERT_CONTAINS(b.data, "PaymentError");
    sonde_buf_reset(&b);
    f = (sonde_errors_filter){.type = "Notice"};
    ASSERT_OK(sonde_errors_read_store(store, &f, &b));
    ASSERT_NOT_CONTAINS(b.data, "PaymentError");
    ASSERT_CONTAINS(b.data, "\"count\":1");
    sonde_buf_reset(&b);
    f = (sonde_errors_filter){.since = 1700000000.0 + 20};
    ASSERT_OK(sonde_errors_read_store(store, &f, &b));
    ASSERT_NOT_CONTAINS(b.data, "Notice");
    sonde_buf_reset(&b);

    /* Alert history: the first process's episode stays firing as it left
     * it; the second fired and resolved. */
    ASSERT_OK(sonde_alerts_read_store(store, &b));
    ASSERT_CONTAINS(b.data, "\"recent\":[{\"rule\":\"Failures\",\"state\":\"resolved\","
                            "\"fired_at\":\"2023-11-14T22:13:50.000Z\","
                            "\"resolved_at\":\"2023-11-14T22:14:51.000Z\",\"severity\":\"high\","
                            "\"summary\":\"2 failures\"");
    ASSERT_CONTAINS(b.data, "\"firing\":[{\"rule\":\"Failures\",\"state\":\"firing\","
                            "\"fired_at\":\"2023-11-14T22:13:20.000Z\"");
    ASSERT_CONTAINS(b.data, "\"service\":\"store-test\"");
    sonde_buf_free(&b);
}

TEST(test_sqlite_store_keeps_groups_and_alerts_across_processes)
{
    char dir[] = "/tmp/sonde-errstore-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", dir);
    __atomic_store(&fake_now_v, &(double){1700000000.0}, __ATOMIC_SEQ_CST);
    check_store(path);
    /* Readers of a store that keeps nothing, or of no file, say so. */
    sonde_buf b = {0};
    ASSERT_EQ(sonde_errors_read_store(":memory:", NULL, &b), SONDE_EINVAL);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    ASSERT_NE(sonde_errors_read_store(missing, NULL, &b), SONDE_OK);
    sonde_buf_free(&b);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

static pid_t start_redis(int *port_out, char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "/tmp/sonde-errredis-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    int port = proc_free_port();
    char portstr[16], log[160];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    char *argv[] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no",     "--dir", dir,      "--logfile", log,      NULL};
    pid_t pid = proc_spawn(argv, NULL, log);
    ASSERT_GT(pid, 0);
    /* Ready when it accepts a connection. */
    for (int i = 0; i < 200; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok) {
            *port_out = port;
            return pid;
        }
        proc_sleep_ms(25);
    }
    TEST_FAIL_AT("redis-server did not answer on port %d (see %s)", port, log);
    return -1;
}

TEST(test_redis_store_keeps_groups_and_alerts_across_processes)
{
    char dir[64];
    int port;
    pid_t pid = start_redis(&port, dir, sizeof dir);
    char spec[96];
    snprintf(spec, sizeof spec, "redis://127.0.0.1:%d/2", port);
    __atomic_store(&fake_now_v, &(double){1700000000.0}, __ATOMIC_SEQ_CST);
    check_store(spec);
    proc_stop(pid);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(test_unreachable_store_is_counted_and_never_blocks_capture)
{
    int port = proc_free_port(); /* nothing listens there */
    char spec[96];
    snprintf(spec, sizeof spec, "redis://127.0.0.1:%d", port);
    sonde_registry *reg;
    sonde_errors *t = tracker(spec, &reg);
    double t0 = proc_now();
    for (int i = 0; i < 20000; i++)
        capture(t, SONDE_SEVERITY_HIGH, "PaymentError", i);
    double spent = proc_now() - t0;
    printf("  20000 captures with the store down: %.3f s\n", spent);
    ASSERT(spent < 2.0);
    proc_sleep_ms(300);
    sonde_errors_process(t);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    const char *p = strstr(text, "\nsonde_errors_store_errors_total ");
    ASSERT(p != NULL);
    ASSERT_GE(strtoull(p + strlen("\nsonde_errors_store_errors_total "), NULL, 10), 1);
    sonde_free(text);
    /* Queries still answer from memory. */
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 1);
    sonde_free(g);
    t0 = proc_now();
    sonde_errors_stop(t);
    printf("  stop with the store down: %.3f s\n", proc_now() - t0);
    ASSERT(proc_now() - t0 < 3.0);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
