/*
 * Concurrent capture while the runtime worker drains, evaluates and
 * delivers, with readers of the JSON documents and the metrics, and
 * configuration changing underneath. Run under TSan (label concurrency).
 * Every capture must end up counted exactly once: in a group or as
 * dropped.
 */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <stdatomic.h>

TEST_MAIN()

/* Keep the test output readable: no log lines on stderr (tests that look
 * at log lines add their own sink). */
__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

#define WRITERS 4
#define PER_WRITER 20000

static sonde_errors *T;
static sonde_registry *R;
static atomic_int writers_done;

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    const char *ctx[] = {"worker", "w", "attempt", "1"};
    for (int i = 0; i < PER_WRITER; i++) {
        sonde_error_info e;
        sonde_error_info_init(&e);
        e.severity = 1 + (i % 4);
        e.type = (i % 3) ? "DatabaseError" : "TimeoutError";
        char msg[64];
        snprintf(msg, sizeof msg, "request %d of writer %d failed", i, id);
        e.message = msg;
        e.context = ctx;
        e.context_count = 2;
        e.file = "worker.c";
        e.line = 10 + (i % 5);
        e.func = "work";
        sonde_error_capture(T, &e);
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (atomic_load(&writers_done) < WRITERS) {
        sonde_buf b = {0};
        sonde_errors_filter f = {.min_severity = SONDE_SEVERITY_HIGH};
        if (sonde_errors_write_json(T, &f, &b) != SONDE_OK)
            abort();
        sonde_buf_reset(&b);
        if (sonde_alerts_write_json(T, &b) != SONDE_OK)
            abort();
        sonde_buf_free(&b);
        sonde_error_group *g;
        size_t n;
        if (sonde_errors_get_groups(T, NULL, &g, &n) == SONDE_OK)
            sonde_free(g);
        char *text = sonde_registry_render(R, SONDE_FORMAT_PROMETHEUS, NULL);
        sonde_free(text);
    }
    return NULL;
}

static void *configurer(void *arg)
{
    (void)arg;
    int k = 0;
    while (atomic_load(&writers_done) < WRITERS) {
        const char *m[] = {"alertname", "Burst"};
        uint64_t id;
        if (sonde_alerts_add_silence(T, m, 1, 0, 4e9, "x", &id) == SONDE_OK)
            sonde_alerts_remove_silence(T, id);
        sonde_notifier_opts no;
        sonde_notifier_opts_init(&no);
        no.kind = SONDE_NOTIFY_LOG;
        no.name = "log2";
        if (sonde_alerts_add_notifier(T, &no) == SONDE_OK)
            sonde_alerts_remove_notifier(T, "log2");
        /* Stop and start the tracker while captures continue. */
        if (++k % 50 == 0) {
            sonde_errors_stop(T);
            sonde_errors_start(T);
        }
    }
    return NULL;
}

TEST(test_concurrent_capture_with_worker_draining_counts_every_error_once)
{
    ASSERT_OK(sonde_registry_create(NULL, &R));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = R;
    o.tick_ms = 1;
    o.eval_interval_ms = 10;
    o.queue_size = 4096;
    o.no_env_notifiers = 1;
    ASSERT_OK(sonde_errors_create(&o, &T));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Burst";
    r.kind = SONDE_RULE_ERRORS;
    r.threshold = 100;
    r.window_seconds = 60;
    ASSERT_OK(sonde_alerts_add_rule(T, &r));
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_LOG;
    ASSERT_OK(sonde_alerts_add_notifier(T, &no));
    ASSERT_OK(sonde_errors_start(T));

    pthread_t w[WRITERS], rd, cf;
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    pthread_create(&rd, NULL, reader, NULL);
    pthread_create(&cf, NULL, configurer, NULL);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    pthread_join(rd, NULL);
    pthread_join(cf, NULL);

    sonde_errors_process(T);
    sonde_errors_filter f = {.limit = 100000};
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(T, &f, &g, &n));
    /* Two types x five lines; the message normalises to one text. */
    ASSERT_EQ(n, 10);
    uint64_t grouped = 0;
    for (size_t i = 0; i < n; i++)
        grouped += g[i].count;
    sonde_free(g);
    char *text = sonde_registry_render(R, SONDE_FORMAT_PROMETHEUS, NULL);
    const char *p = strstr(text, "\nsonde_errors_dropped_total ");
    ASSERT(p != NULL);
    uint64_t dropped = strtoull(p + strlen("\nsonde_errors_dropped_total "), NULL, 10);
    sonde_free(text);
    ASSERT_U64_EQ(grouped + dropped, (uint64_t)WRITERS * PER_WRITER);
    ASSERT_GT(grouped, 0);

    sonde_alert *a;
    ASSERT_OK(sonde_alerts_get(T, 0, &a, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(a[0].state, SONDE_ALERT_FIRING);
    sonde_free(a);
    sonde_errors_stop(T);
    sonde_errors_destroy(T);
    sonde_registry_destroy(R);
}
