/* Silences from several threads while the runtime worker evaluates rules
 * against them: adds, expiries and lists never race (run under TSan), and
 * every add and expiry is accounted for in the final list. */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

#define THREADS 4
#define PER_THREAD 100

static sonde_errors *tracker;

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void *worker(void *arg)
{
    int k = (int)(intptr_t)arg;
    char value[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(value, sizeof value, "rule_%d_%d", k, i);
        sonde_silence_matcher m[] = {{"alertname", value, 0, 1}, {"team", "db|ops", 1, 1}};
        sonde_silence_opts o;
        sonde_silence_opts_init(&o);
        o.matchers = m;
        o.matcher_count = 2;
        o.duration = 3600;
        uint64_t id = 0;
        if (sonde_alerts_silence(tracker, &o, &id) != SONDE_OK)
            return (void *)1;
        if (i % 2 == 0 && sonde_alerts_expire_silence(tracker, id) != SONDE_OK)
            return (void *)1;
        if (i % 10 == 0) {
            sonde_buf b = {0};
            if (sonde_alerts_silences_json(tracker, &b) != SONDE_OK)
                return (void *)1;
            sonde_buf_free(&b);
            if (sonde_alerts_write_json(tracker, &b) != SONDE_OK)
                return (void *)1;
            sonde_buf_free(&b);
        }
        sonde_error_capturef(tracker, SONDE_SEVERITY_HIGH, "E", "f.c", 1, "fn", "boom %d", i);
    }
    return NULL;
}

TEST(test_silences_from_many_threads_while_the_worker_evaluates)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    eo.tick_ms = 1;
    eo.eval_interval_ms = 10;
    ASSERT_OK(sonde_errors_create(&eo, &tracker));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "rule_0_1";
    r.kind = SONDE_RULE_ERRORS;
    r.threshold = 1;
    r.window_seconds = 600;
    ASSERT_OK(sonde_alerts_add_rule(tracker, &r));
    ASSERT_OK(sonde_errors_start(tracker));
    pthread_t th[THREADS];
    for (int k = 0; k < THREADS; k++)
        ASSERT_EQ(pthread_create(&th[k], NULL, worker, (void *)(intptr_t)k), 0);
    for (int k = 0; k < THREADS; k++) {
        void *ret;
        ASSERT_EQ(pthread_join(th[k], &ret), 0);
        ASSERT(ret == NULL);
    }
    sonde_errors_process(tracker);
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_silences_json(tracker, &b));
    ASSERT_EQ(count(b.data, "\"state\":\"active\""), THREADS * PER_THREAD / 2);
    ASSERT_EQ(count(b.data, "\"state\":\"expired\""), THREADS * PER_THREAD / 2);
    sonde_buf_free(&b);
    /* rule_0_1 fires and is silenced (odd i: not expired). */
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(tracker, 0, &a, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(a[0].state, SONDE_ALERT_FIRING);
    ASSERT_EQ(a[0].silenced, 0); /* team=~db|ops: the rule has no team label */
    sonde_free(a);
    sonde_errors_stop(tracker);
    sonde_errors_destroy(tracker);
    sonde_registry_destroy(reg);
}
