/* Tracing: metrics fed by operations, window arithmetic with a controllable
 * clock, the store behind long windows, retention, baselines, limits. */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/sketch.h"
#include "trace/trace_int.h"

TEST_MAIN()

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}
static void set_clock(uint64_t ns)
{
    __atomic_store_n(&fake_ns, ns, __ATOMIC_RELAXED);
}

#define SEC UINT64_C(1000000000)
#define MIN_NS (60 * SEC)
#define MS UINT64_C(1000000)
/* 2025-01-01T12:00:00Z. */
#define T0 (UINT64_C(28928880) * MIN_NS)

struct fixture {
    sonde_registry *reg;
    sonde__tracer *tr;
    char dir[64];
    char path[128];
};

static void setup(struct fixture *f, const char *ns, const char *store, uint64_t at)
{
    memset(f, 0, sizeof *f);
    sonde__trace_set_clock(fake_clock);
    set_clock(at);
    ASSERT_OK(sonde_registry_create(NULL, &f->reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = f->reg;
    o.ns = ns;
    ASSERT_OK(sonde__tracer_create(&o, &f->tr));
    if (store) {
        const char *spec = store;
        if (strcmp(store, "file") == 0) {
            snprintf(f->dir, sizeof f->dir, "/tmp/sonde-trace-XXXXXX");
            ASSERT(mkdtemp(f->dir) != NULL);
            snprintf(f->path, sizeof f->path, "%s/history.db", f->dir);
            spec = f->path;
        }
        sonde__store_opts so;
        memset(&so, 0, sizeof so);
        so.registry = f->reg;
        char err[256];
        ASSERT_OK(sonde__store_create(spec, &so, &f->tr->store, err, sizeof err));
        f->tr->retention_hours = 720;
    }
}

static void teardown(struct fixture *f)
{
    sonde__tracer_destroy(f->tr);
    sonde_registry_destroy(f->reg);
    sonde__trace_set_clock(NULL);
    if (f->path[0]) {
        char p[160];
        unlink(f->path);
        snprintf(p, sizeof p, "%s-wal", f->path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", f->path);
        unlink(p);
        rmdir(f->dir);
    }
}

static sonde_op *op_named(struct fixture *f, const char *name, const char *metric)
{
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    o.duration_metric = metric;
    sonde_op *op = NULL;
    ASSERT_OK(sonde__trace_op_create(f->tr, &o, &op));
    return op;
}

static double run_op(sonde_op *op, uint64_t at, uint64_t dur, int ok)
{
    set_clock(at);
    sonde_op_token t = sonde_op_begin_op(op);
    set_clock(at + dur);
    return sonde_op_end(t, ok);
}

static char *render(sonde_registry *reg)
{
    return sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
}

TEST(test_operations_feed_the_histogram_and_counters_under_configured_names)
{
    struct fixture f;
    setup(&f, "mgit", NULL, T0);
    sonde_op *clone = op_named(&f, "clone", "mgit_git_clone_duration_seconds");
    sonde_op *fetch = op_named(&f, "fetch", NULL);
    ASSERT_DBL_NEAR(run_op(clone, T0 + SEC, 2500 * MS, 1), 2.5, 1e-12);
    ASSERT_DBL_NEAR(run_op(clone, T0 + 2 * SEC, 40 * SEC, 0), 40.0, 1e-12);
    ASSERT_DBL_NEAR(run_op(fetch, T0 + 3 * SEC, 3 * MS, 1), 0.003, 1e-12);
    char *text = render(f.reg);
    ASSERT_CONTAINS(text, "# TYPE mgit_git_clone_duration_seconds histogram");
    ASSERT_CONTAINS(text, "mgit_git_clone_duration_seconds_count 2\n");
    ASSERT_CONTAINS(text, "mgit_git_clone_duration_seconds_sum 42.5\n");
    ASSERT_CONTAINS(text, "mgit_git_clone_duration_seconds_bucket{le=\"5\"} 1\n");
    ASSERT_CONTAINS(text, "mgit_operation_duration_seconds_count{operation=\"fetch\"} 1\n");
    ASSERT_CONTAINS(text, "mgit_operations_total{operation=\"clone\",result=\"success\"} 1\n");
    ASSERT_CONTAINS(text, "mgit_operations_total{operation=\"clone\",result=\"failure\"} 1\n");
    ASSERT_CONTAINS(text, "mgit_operations_total{operation=\"fetch\",result=\"success\"} 1\n");
    /* clone has its own histogram: not in the shared one. */
    ASSERT_NOT_CONTAINS(text, "mgit_operation_duration_seconds_count{operation=\"clone\"}");
    sonde_free(text);
    /* The same definition again is the same operation; another is refused. */
    sonde_op *again = op_named(&f, "clone", "mgit_git_clone_duration_seconds");
    ASSERT(again == clone);
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = "clone";
    sonde_op *x;
    ASSERT_EQ(sonde__trace_op_create(f.tr, &o, &x), SONDE_ECONFLICT);
    teardown(&f);
}

TEST(test_operation_names_are_validated_and_limited)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = reg;
    o.max_operations = 3;
    sonde__tracer *tr;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    sonde_op_opts oo;
    sonde_op_opts_init(&oo);
    sonde_op *op;
    oo.name = "";
    ASSERT_EQ(sonde__trace_op_create(tr, &oo, &op), SONDE_EINVAL);
    char longname[SONDE_OP_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname);
    longname[SONDE_OP_NAME_MAX + 1] = '\0';
    oo.name = longname;
    ASSERT_EQ(sonde__trace_op_create(tr, &oo, &op), SONDE_EINVAL);
    longname[SONDE_OP_NAME_MAX] = '\0';
    ASSERT_OK(sonde__trace_op_create(tr, &oo, &op));
    ASSERT_EQ(strlen(sonde_op_name(op)), SONDE_OP_NAME_MAX);
    /* Any bytes are fine in a name (it is a label value). */
    oo.name = "weird \"name\"\n\xff";
    ASSERT_OK(sonde__trace_op_create(tr, &oo, &op));
    oo.name = "third";
    ASSERT_OK(sonde__trace_op_create(tr, &oo, &op));
    oo.name = "fourth";
    ASSERT_EQ(sonde__trace_op_create(tr, &oo, &op), SONDE_ELIMIT);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_trace_dropped_total{reason=\"limit\"} 1\n");
    ASSERT_CONTAINS(text, "sonde_trace_dropped_total{reason=\"invalid\"} 2\n");
    sonde_free(text);
    /* A NULL op token is ignored. */
    ASSERT_DBL_EQ(sonde_op_end(sonde_op_begin_op(NULL), 1), 0);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
}

TEST(test_minute_boundaries_split_windows_exactly)
{
    struct fixture f;
    setup(&f, NULL, NULL, T0);
    sonde_op *op = op_named(&f, "edge", NULL);
    /* Ends at 12:00:59.999999999 and at 12:01:00.000000000. */
    run_op(op, T0 + MIN_NS - 11 * MS - 1, 11 * MS, 1);
    run_op(op, T0 + MIN_NS - 7 * MS, 7 * MS, 0);
    sonde_op_stats st;
    set_clock(T0 + MIN_NS + 30 * SEC);
    /* At 12:01:30 a 1-minute window covers 12:00 and 12:01. */
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 1, &st));
    ASSERT_U64_EQ(st.count, 2);
    ASSERT_EQ(st.from_unix, (int64_t)(T0 / SEC));
    ASSERT_EQ(st.to_unix, (int64_t)(T0 / SEC) + 120);
    /* At 12:02:30 only 12:01 and 12:02: the 7 ms failure. */
    set_clock(T0 + 2 * MIN_NS + 30 * SEC);
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 1, &st));
    ASSERT_U64_EQ(st.count, 1);
    ASSERT_U64_EQ(st.errors, 1);
    ASSERT_DBL_EQ(st.success_rate, 0);
    ASSERT_DBL_NEAR(st.max_seconds, 0.007, 1e-12);
    /* The flush after the grace period moves both minutes to the ring: the
     * answers do not change. */
    sonde__trace_tick(f.tr, 0);
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 1, &st));
    ASSERT_U64_EQ(st.count, 1);
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 2, &st));
    ASSERT_U64_EQ(st.count, 2);
    ASSERT_U64_EQ(st.errors, 1);
    ASSERT_DBL_NEAR(st.success_rate, 0.5, 1e-12);
    ASSERT_DBL_NEAR(st.avg_seconds, 0.009, 1e-12);
    ASSERT_DBL_NEAR(st.min_seconds, 0.007, 1e-12);
    /* Within the grace period a closed minute is still read live; after it,
     * from the ring. Both give the same figures. */
    run_op(op, T0 + 3 * MIN_NS - SEC, 5 * MS, 1);
    set_clock(T0 + 3 * MIN_NS + SEC);
    sonde_op_stats live;
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 1, &live));
    sonde__trace_tick(f.tr, 0); /* within grace: nothing collected */
    set_clock(T0 + 3 * MIN_NS + 3 * SEC);
    sonde__trace_tick(f.tr, 0);
    sonde_op_stats ring;
    ASSERT_OK(sonde__trace_stats(f.tr, "edge", 1, &ring));
    ASSERT_U64_EQ(live.count, 1);
    ASSERT_U64_EQ(ring.count, 1);
    ASSERT_DBL_EQ(live.p50_seconds, ring.p50_seconds);
    ASSERT_EQ(sonde__trace_stats(f.tr, "nope", 1, &st), SONDE_ENOTFOUND);
    teardown(&f);
}

TEST(test_a_24_hour_window_merges_the_store_and_memory)
{
    struct fixture f;
    setup(&f, NULL, "file", T0);
    sonde_op *op = op_named(&f, "sync", NULL);
    /* 25 hours, one operation a minute, minute i lasting (i + 1) ms, every
     * 10th failing. */
    const int minutes = 1500;
    for (int i = 0; i < minutes; i++) {
        run_op(op, T0 + (uint64_t)i * MIN_NS + 10 * SEC, (uint64_t)(i + 1) * MS, i % 10 != 0);
        set_clock(T0 + (uint64_t)(i + 1) * MIN_NS + 3 * SEC);
        sonde__trace_tick(f.tr, 0);
    }
    ASSERT_U64_EQ(sonde__store_pending(f.tr->store), 0);
    sonde_op_stats st;
    /* Now is minute 1500: the 24-hour window is minutes 60..1500. */
    ASSERT_OK(sonde__trace_stats(f.tr, "sync", 1440, &st));
    ASSERT_U64_EQ(st.count, 1440);
    ASSERT_U64_EQ(st.errors, 144);
    ASSERT_DBL_NEAR(st.min_seconds, 0.061, 1e-12);
    ASSERT_DBL_NEAR(st.max_seconds, 1.5, 1e-12);
    ASSERT_DBL_NEAR(st.avg_seconds, (0.061 + 1.5) / 2, 1e-9);
    /* Exact p50 of 61..1500 ms by the rank rule: 61 + floor(0.5 * 1439). */
    ASSERT_DBL_NEAR(st.p50_seconds, 0.780, 0.780 * 0.01);
    ASSERT_DBL_NEAR(st.p99_seconds, 0.061 + 0.001 * 1424, 1.485 * 0.01);
    /* 1 hour: minutes 1440..1500, answered from memory. */
    ASSERT_OK(sonde__trace_stats(f.tr, "sync", 60, &st));
    ASSERT_U64_EQ(st.count, 60);
    ASSERT_DBL_NEAR(st.min_seconds, 1.441, 1e-12);
    /* 5 hours. */
    ASSERT_OK(sonde__trace_stats(f.tr, "sync", 300, &st));
    ASSERT_U64_EQ(st.count, 300);
    /* A reader of the store alone sees the same (every minute is written). */
    sonde_op_stats *v;
    size_t n;
    ASSERT_OK(sonde_trace_read_store(f.path, NULL, 1440, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(v[0].operation, "sync");
    ASSERT_U64_EQ(v[0].count, 1440);
    ASSERT_U64_EQ(v[0].errors, 144);
    ASSERT_DBL_NEAR(v[0].min_seconds, 0.061, 1e-12);
    sonde_free(v);
    ASSERT_OK(sonde_trace_read_store(f.path, "sync", 5, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(v[0].count, 5);
    sonde_free(v);
    ASSERT_OK(sonde_trace_read_store(f.path, "other", 5, &v, &n));
    ASSERT_EQ(n, 0);
    /* List: every operation, sorted. */
    op_named(&f, "alpha", NULL);
    ASSERT_OK(sonde__trace_list(f.tr, 1440, &v, &n));
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(v[0].operation, "alpha");
    ASSERT_U64_EQ(v[0].count, 0);
    ASSERT(isnan(v[0].p95_seconds));
    ASSERT_STR_EQ(v[1].operation, "sync");
    ASSERT_U64_EQ(v[1].count, 1440);
    sonde_buf out = {0};
    ASSERT_OK(sonde_op_stats_write_json(v, n, 1440, &out));
    ASSERT_CONTAINS(out.data, "{\"window_minutes\":1440,\"relative_error\":0.01,\"operations\":[{"
                              "\"operation\":\"alpha\"");
    ASSERT_CONTAINS(out.data, "\"count\":0,\"errors\":0,\"success_rate\":null,"
                              "\"duration_seconds\":{\"avg\":null");
    ASSERT_CONTAINS(out.data, "\"operation\":\"sync\",\"window_minutes\":1440");
    ASSERT_CONTAINS(out.data, "\"count\":1440,\"errors\":144,\"success_rate\":0.9,");
    ASSERT_CONTAINS(out.data, "\"from\":\"2025-01-01T13:00:00Z\",\"to\":\"2025-01-02T13:01:00Z\"");
    ASSERT_CONTAINS(out.data, "\"baseline\":null,\"anomaly\":false}]}");
    sonde_buf_free(&out);
    sonde_free(v);
    teardown(&f);
}

static int64_t scalar(const char *path, const char *sql)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

TEST(test_retention_prunes_old_minutes_from_the_store)
{
    struct fixture f;
    setup(&f, NULL, "file", T0);
    f.tr->retention_hours = 2;
    sonde_op *op = op_named(&f, "prune", NULL);
    for (int i = 0; i < 200; i++) {
        run_op(op, T0 + (uint64_t)i * MIN_NS + 10 * SEC, MS, 1);
        set_clock(T0 + (uint64_t)(i + 1) * MIN_NS + 3 * SEC);
        sonde__trace_tick(f.tr, 0);
    }
    int64_t m0 = (int64_t)(T0 / MIN_NS);
    /* Pruned hourly: at minutes 1, 61, 121 and 181 (keep 120 minutes). */
    ASSERT_EQ(scalar(f.path, "SELECT min(minute) FROM op_minutes"), m0 + 181 - 120);
    ASSERT_EQ(scalar(f.path, "SELECT count(*) FROM op_minutes"), 200 - 61);
    /* Force a prune now (minute 200): keep minutes >= 80. */
    f.tr->last_prune_minute = TRACE_NO_MINUTE;
    sonde__trace_tick(f.tr, 0);
    ASSERT_EQ(scalar(f.path, "SELECT min(minute) FROM op_minutes"), m0 + 80);
    ASSERT_EQ(scalar(f.path, "SELECT count(*) FROM op_minutes"), 120);
    /* A day's window now holds what retention kept. */
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(f.tr, "prune", 1440, &st));
    ASSERT_U64_EQ(st.count, 120);
    teardown(&f);
}

static int hook_calls, hook_last;
static char hook_op[SONDE_OP_NAME_MAX + 1];
static void hook(const sonde_op_stats *st, int anomalous, void *ud)
{
    ASSERT(ud == &hook_calls);
    hook_calls++;
    hook_last = anomalous;
    snprintf(hook_op, sizeof hook_op, "%s", st->operation);
}

TEST(test_baselines_flag_anomalies_set_the_gauge_and_call_the_hook)
{
    struct fixture f;
    setup(&f, NULL, "file", T0);
    sonde_trace_set_anomaly_hook(hook, &hook_calls);
    sonde_op *op = op_named(&f, "clone_operation", NULL);
    sonde_baseline b = {0.010, 0.020, 2.0, 5, 5};
    ASSERT_OK(sonde__trace_set_baseline(f.tr, "clone_operation", &b));
    sonde_baseline bad = {-1, 0, 0, 0, 0};
    ASSERT_EQ(sonde__trace_set_baseline(f.tr, "clone_operation", &bad), SONDE_EINVAL);
    bad.avg_seconds = 1;
    bad.factor = 0.5;
    ASSERT_EQ(sonde__trace_set_baseline(f.tr, "clone_operation", &bad), SONDE_EINVAL);
    /* Normal: 10 ms. */
    for (int i = 0; i < 10; i++)
        run_op(op, T0 + SEC + (uint64_t)i * SEC, 10 * MS, 1);
    set_clock(T0 + MIN_NS + 3 * SEC);
    sonde__trace_tick(f.tr, 0);
    ASSERT_EQ(op->anomalous, 0);
    ASSERT_EQ(hook_calls, 0);
    /* Four slow ones: below min_count 5 in the window? No: 14 in the
     * window, avg (100 + 4 * 300) / 14 = 93 ms > 2 * 10 ms. */
    for (int i = 0; i < 4; i++)
        run_op(op, T0 + MIN_NS + 10 * SEC, 300 * MS, 1);
    set_clock(T0 + MIN_NS + 20 * SEC);
    sonde__trace_tick(f.tr, 0);
    ASSERT_EQ(op->anomalous, 1);
    ASSERT_EQ(hook_calls, 1);
    ASSERT_EQ(hook_last, 1);
    ASSERT_STR_EQ(hook_op, "clone_operation");
    char *text = render(f.reg);
    ASSERT_CONTAINS(text, "sonde_operation_anomaly{operation=\"clone_operation\"} 1\n");
    sonde_free(text);
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(f.tr, "clone_operation", 5, &st));
    ASSERT_EQ(st.anomaly, 1);
    ASSERT_EQ(st.has_baseline, 1);
    ASSERT_DBL_EQ(st.baseline_p95_seconds, 0.020);
    /* Ten minutes later, normal traffic again: the window forgets. */
    for (int i = 0; i < 10; i++)
        run_op(op, T0 + 10 * MIN_NS + SEC, 10 * MS, 1);
    set_clock(T0 + 10 * MIN_NS + 30 * SEC);
    sonde__trace_tick(f.tr, 0);
    ASSERT_EQ(op->anomalous, 0);
    ASSERT_EQ(hook_calls, 2);
    ASSERT_EQ(hook_last, 0);
    text = render(f.reg);
    ASSERT_CONTAINS(text, "sonde_operation_anomaly{operation=\"clone_operation\"} 0\n");
    sonde_free(text);
    /* The baseline was saved in the store: a reader flags the same. */
    ASSERT_EQ(scalar(f.path, "SELECT count(*) FROM baselines WHERE op = 'clone_operation'"
                             " AND p95 = 0.02 AND factor = 2"),
              1);
    sonde_op_stats *v;
    size_t n;
    set_clock(T0 + 2 * MIN_NS);
    ASSERT_OK(sonde_trace_read_store(f.path, NULL, 5, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(v[0].has_baseline, 1);
    ASSERT_EQ(v[0].anomaly, 1);
    ASSERT_DBL_EQ(v[0].baseline_avg_seconds, 0.010);
    sonde_free(v);
    sonde_trace_set_anomaly_hook(NULL, NULL);
    teardown(&f);
}

TEST(test_a_slot_reused_before_its_minute_was_collected_is_counted_late)
{
    struct fixture f;
    setup(&f, NULL, NULL, T0);
    sonde_op *op = op_named(&f, "late", NULL);
    for (int i = 0; i < 7; i++)
        run_op(op, T0 + SEC, MS, 1);
    /* Two minutes later, same slot, no flush in between: 7 lost. */
    run_op(op, T0 + 2 * MIN_NS + SEC, MS, 1);
    /* An operation ending in a minute already collected is late too. */
    set_clock(T0 + 3 * MIN_NS + 3 * SEC);
    sonde__trace_tick(f.tr, 0);
    run_op(op, T0 + 2 * MIN_NS + 30 * SEC, MS, 1);
    sonde__trace_tick(f.tr, 0);
    char *text = render(f.reg);
    ASSERT_CONTAINS(text, "sonde_trace_dropped_total{reason=\"late\"} 8\n");
    /* The histogram still counts every operation. */
    ASSERT_CONTAINS(text, "sonde_operation_duration_seconds_count{operation=\"late\"} 9\n");
    sonde_free(text);
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(f.tr, "late", 10, &st));
    ASSERT_U64_EQ(st.count, 1);
    teardown(&f);
}

struct thr {
    sonde_op *op;
    int n;
};

static void *thread_ops(void *p)
{
    struct thr *t = p;
    for (int i = 0; i < t->n; i++) {
        sonde_op_token tok = sonde_op_begin_op(t->op);
        sonde_op_end(tok, 1);
    }
    return NULL;
}

TEST(test_exited_threads_are_collected_and_their_accumulators_freed)
{
    struct fixture f;
    setup(&f, NULL, NULL, T0 + SEC);
    sonde_op *op = op_named(&f, "threads", NULL);
    pthread_t th[4];
    struct thr t = {op, 1000};
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, thread_ops, &t), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int accs = 0;
    for (struct trace_acc *a = op->accs; a; a = a->next)
        accs++;
    ASSERT_EQ(accs, 4);
    set_clock(T0 + MIN_NS + 3 * SEC);
    sonde__trace_tick(f.tr, 0);
    ASSERT(op->accs == NULL);
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(f.tr, "threads", 5, &st));
    ASSERT_U64_EQ(st.count, 4000);
    ASSERT_DBL_EQ(st.max_seconds, 0);
    teardown(&f);
}
