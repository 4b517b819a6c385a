/*
 * Silences survive a restart through the store: a SQLite file and a real
 * redis-server started here on a loopback port. A first tracker adds two
 * silences and expires one; a second one (the restarted process) lists
 * both with their states and still holds the alert back; after the
 * retention the expired one is pruned from memory and from the store (its
 * rows counted with the store's own client library).
 */
#include "test.h"

#include "proc.h"

#include <sonde.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>
#include <string.h>

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
    o.service_name = "silence-store";
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Failures";
    r.kind = SONDE_RULE_ERRORS;
    r.threshold = 1;
    r.window_seconds = 100000;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_alerts_set_silence_retention(t, 86400));
    ASSERT_OK(sonde_errors_start(t));
    return t;
}

static void stop(sonde_errors *t, sonde_registry *reg)
{
    sonde_errors_stop(t); /* the last write happens here */
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}

static uint64_t add(sonde_errors *t, const char *rule, double duration)
{
    sonde_silence_matcher m = {"alertname", rule, 0, 1};
    sonde_silence_opts o;
    sonde_silence_opts_init(&o);
    o.matchers = &m;
    o.matcher_count = 1;
    o.duration = duration;
    o.comment = "disk swap";
    o.created_by = "alice";
    uint64_t id = 0;
    ASSERT_OK(sonde_alerts_silence(t, &o, &id));
    return id;
}

/* The list once it contains want (the store is read on the worker). */
static char *list_with(sonde_errors *t, const char *want)
{
    sonde_buf b = {0};
    for (int i = 0; i < 400; i++) {
        sonde_buf_reset(&b);
        ASSERT_OK(sonde_alerts_silences_json(t, &b));
        if (strstr(b.data, want))
            return b.data;
        proc_sleep_ms(10);
    }
    TEST_FAIL_AT("the silences never contained %s: %s", want, b.data);
    return NULL;
}

static void hex(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)id);
}

static void check_store(const char *store, long (*rows)(void *), void *ud)
{
    __atomic_store(&fake_now_v, &(double){1700000000.0}, __ATOMIC_SEQ_CST);
    sonde_registry *reg;
    sonde_errors *t = tracker(store, &reg);
    uint64_t keep = add(t, "Failures", 7200);
    uint64_t gone = add(t, "Other", 7200);
    ASSERT_OK(sonde_alerts_expire_silence(t, gone));
    stop(t, reg);
    ASSERT_EQ(rows(ud), 2);

    /* The restarted process. */
    advance(60);
    t = tracker(store, &reg);
    char k[17], g[17];
    hex(keep, k);
    hex(gone, g);
    char want[64];
    snprintf(want, sizeof want, "\"id\":\"%s\",\"status\":{\"state\":\"active\"}", k);
    char *list = list_with(t, want);
    snprintf(want, sizeof want, "\"id\":\"%s\",\"status\":{\"state\":\"expired\"}", g);
    ASSERT_CONTAINS(list, want);
    ASSERT_CONTAINS(list, "\"comment\":\"disk swap\",\"createdBy\":\"alice\"");
    sonde_free(list);
    /* It still silences: the alert fires without a notification. */
    sonde_error_capturef(t, SONDE_SEVERITY_HIGH, "E", "f.c", 1, "fn", "boom");
    sonde_errors_process(t);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(a[0].state, SONDE_ALERT_FIRING);
    ASSERT_EQ(a[0].silenced, 1);
    ASSERT_EQ(a[0].notifications, 0);
    sonde_free(a);
    /* Expired in this process: the next one sees it expired. */
    ASSERT_OK(sonde_alerts_expire_silence(t, keep));
    stop(t, reg);

    advance(60);
    t = tracker(store, &reg);
    snprintf(want, sizeof want, "\"id\":\"%s\",\"status\":{\"state\":\"expired\"}", k);
    list = list_with(t, want);
    sonde_free(list);
    stop(t, reg);

    /* Past the retention (a day): pruned from the store and not listed. */
    advance(86400 + 100);
    t = tracker(store, &reg);
    uint64_t fresh = add(t, "Fresh", 600);
    char f[17];
    hex(fresh, f);
    /* The store is read, then pruned, on the worker; then an evaluation
     * forgets what was read past the retention. */
    for (int i = 0; i < 400 && rows(ud) != 1; i++)
        proc_sleep_ms(10);
    ASSERT_EQ(rows(ud), 1);
    sonde_errors_process(t);
    list = list_with(t, f);
    ASSERT_NOT_CONTAINS(list, k);
    ASSERT_NOT_CONTAINS(list, g);
    sonde_free(list);
    stop(t, reg);
    ASSERT_EQ(rows(ud), 1);
}

static long sqlite_rows(void *ud)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(ud, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM silences", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

TEST(test_sqlite_store_keeps_silences_across_restarts)
{
    char dir[] = "/tmp/sonde-silences-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/store.db", dir);
    check_store(path, sqlite_rows, path);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

static int redis_port;

static long redis_rows(void *ud)
{
    (void)ud;
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    ASSERT(c != NULL && !c->err);
    redisReply *r = redisCommand(c, "SELECT 3");
    ASSERT(r != NULL);
    freeReplyObject(r);
    /* Both counts at once: the worker may be writing meanwhile. */
    r = redisCommand(c, "EVAL %s 2 sonde:alerts:silences sonde:alerts:silences:ends",
                     "return {redis.call('HLEN', KEYS[1]), redis.call('ZCARD', KEYS[2])}");
    ASSERT(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long n = (long)r->element[0]->integer;
    /* The index of end times has the same members as the hash. */
    ASSERT_EQ(r->element[1]->integer, n);
    freeReplyObject(r);
    redisFree(c);
    return n;
}

TEST(test_redis_store_keeps_silences_across_restarts)
{
    char dir[] = "/tmp/sonde-silredis-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    redis_port = proc_free_port();
    char portstr[16], log[160];
    snprintf(portstr, sizeof portstr, "%d", redis_port);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    char *argv[] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no",     "--dir", dir,      "--logfile", log,      NULL};
    pid_t pid = proc_spawn(argv, NULL, log);
    ASSERT_GT(pid, 0);
    int up = 0;
    for (int i = 0; i < 200 && !up; i++) {
        redisContext *c = redisConnect("127.0.0.1", redis_port);
        up = c && !c->err;
        if (c)
            redisFree(c);
        if (!up)
            proc_sleep_ms(25);
    }
    if (!up)
        TEST_FAIL_AT("redis-server did not answer on port %d (see %s)", redis_port, log);
    char spec[96];
    snprintf(spec, sizeof spec, "redis://127.0.0.1:%d/3", redis_port);
    check_store(spec, redis_rows, NULL);
    proc_stop(pid);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}
