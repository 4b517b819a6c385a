/* The public tracing API on the process's tracer: macros, names, start
 * (flush on the runtime worker), stop (last flush), baselines. */
#include "test.h"

#include <sonde.h>

#include <unistd.h>

#include "core/worker.h"
#include "trace/trace_int.h"

TEST_MAIN()

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    /* Every read advances 1 ms: each operation lasts 1 ms. */
    return __atomic_add_fetch(&fake_ns, 1000000, __ATOMIC_RELAXED);
}

#define SEC UINT64_C(1000000000)
#define MIN_NS (60 * SEC)
#define T0 (UINT64_C(28928880) * MIN_NS)

static int fails_with(int rc)
{
    return rc;
}

static int scoped(int fail)
{
    SONDE_OP_SCOPE(op, "scoped");
    if (fail) {
        SONDE_OP_FAIL(op);
        return -1;
    }
    return 0;
}

static char dir[64], path[128];

TEST(test_macros_names_start_flush_on_the_worker_and_stop)
{
    snprintf(dir, sizeof dir, "/tmp/sonde-api-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/h.db", dir);
    fake_ns = T0 + SEC;
    sonde__trace_set_clock(fake_clock);

    /* Before sonde_trace_start: operations already count. */
    sonde_op_token t = sonde_op_begin("by_name");
    ASSERT(t.op != NULL);
    ASSERT_DBL_NEAR(sonde_op_end(t, 1), 0.001, 1e-12);
    ASSERT(sonde_op_get("by_name") == t.op);
    ASSERT_STR_EQ(sonde_op_name(t.op), "by_name");
    ASSERT(sonde_op_get("") == NULL);
    ASSERT(sonde_op_begin(NULL).op == NULL);

    /* Other metric names once operations exist: refused. */
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.ns = "other";
    ASSERT_EQ(sonde_trace_start(&o), SONDE_ESTATE);
    sonde_trace_opts_init(&o);
    o.flush_interval_ms = 5;
    ASSERT_EQ(sonde_trace_start(&o), SONDE_EINVAL);
    o.flush_interval_ms = 20;
    o.store = "redis://h:0";
    ASSERT_EQ(sonde_trace_start(&o), SONDE_EINVAL);
    o.store = path;
    ASSERT_OK(sonde_trace_start(&o));
    ASSERT_EQ(sonde_trace_start(&o), SONDE_ESTATE);
    ASSERT(sonde__runtime_running());

    ASSERT_EQ(scoped(0), 0);
    ASSERT_EQ(scoped(1), -1);
    ASSERT_EQ(SONDE_OP_RUN("run", fails_with(0)), 0);
    ASSERT_EQ(SONDE_OP_RUN("run", fails_with(7)), 7);
    ASSERT_EQ(SONDE_OP_CHECK("check", 2 + 2 == 4), 1);
    ASSERT_EQ(SONDE_OP_CHECK("check", 2 + 2 == 5), 0);
    for (int i = 0; i < 3; i++)
        sonde_op_end(sonde_op_begin_op(sonde_op_get("by_name")), i != 0);

    sonde_op_stats st;
    ASSERT_OK(sonde_trace_get_stats("scoped", 5, &st));
    ASSERT_U64_EQ(st.count, 2);
    ASSERT_U64_EQ(st.errors, 1);
    ASSERT_DBL_NEAR(st.avg_seconds, 0.001, 1e-12);
    ASSERT_OK(sonde_trace_get_stats("run", 5, &st));
    ASSERT_U64_EQ(st.count, 2);
    ASSERT_U64_EQ(st.errors, 1);
    ASSERT_OK(sonde_trace_get_stats("check", 5, &st));
    ASSERT_U64_EQ(st.errors, 1);
    ASSERT_EQ(sonde_trace_get_stats("missing", 5, &st), SONDE_ENOTFOUND);
    sonde_op_stats *v;
    size_t n;
    ASSERT_OK(sonde_trace_list_stats(5, &v, &n));
    ASSERT_EQ(n, 4);
    ASSERT_STR_EQ(v[0].operation, "by_name");
    ASSERT_U64_EQ(v[0].count, 4);
    sonde_free(v);

    sonde_baseline b = {0.0001, 0, 0, 1, 1};
    ASSERT_OK(sonde_trace_set_baseline("by_name", &b));
    sonde_baseline got;
    ASSERT_OK(sonde_trace_get_baseline("by_name", &got));
    ASSERT_DBL_EQ(got.avg_seconds, 0.0001);
    ASSERT_EQ(sonde_trace_get_baseline("run", &got), SONDE_ENOTFOUND);
    ASSERT_EQ(sonde_trace_get_anomaly("nothing"), SONDE_ENOTFOUND);

    /* The worker flushes: once the minute is over (plus grace), its rows
     * reach the file and the baseline is judged (1 ms > 2 * 0.1 ms). */
    __atomic_store_n(&fake_ns, T0 + MIN_NS + 3 * SEC, __ATOMIC_RELAXED);
    int found = 0;
    for (int i = 0; i < 200 && !found; i++) {
        usleep(10000);
        if (sonde_trace_read_store(path, "scoped", 60, &v, &n) == SONDE_OK) {
            found = n == 1 && v[0].count == 2;
            sonde_free(v);
        }
    }
    ASSERT(found);
    for (int i = 0; i < 200 && sonde_trace_get_anomaly("by_name") != 1; i++)
        usleep(10000);
    ASSERT_EQ(sonde_trace_get_anomaly("by_name"), 1);
    char *text = sonde_registry_render(NULL, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_operation_anomaly{operation=\"by_name\"} 1\n");
    ASSERT_CONTAINS(text, "sonde_operations_total{operation=\"run\",result=\"failure\"} 1\n");
    sonde_free(text);

    /* Operations of the new minute are written by stop. */
    sonde_op_end(sonde_op_begin("after"), 1);
    sonde_trace_stop();
    sonde_trace_stop();
    ASSERT_OK(sonde_trace_read_store(path, "after", 60, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(v[0].count, 1);
    sonde_free(v);
    ASSERT_OK(sonde_trace_read_store(path, NULL, 60, &v, &n));
    ASSERT_EQ(n, 5);
    ASSERT_EQ(v[1].has_baseline, 1); /* by_name: saved with its baseline */
    sonde_free(v);
    /* Started again, on the same file. */
    ASSERT_OK(sonde_trace_start(&o));
    sonde_trace_stop();
    sonde__trace_set_clock(NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}
