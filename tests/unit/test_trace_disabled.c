/* With SONDE_ENABLED=0 tracing is a no-op: no operation, no thread. */
#include "test.h"

#include <sonde.h>

#include <dirent.h>
#include <stdlib.h>

#include "core/worker.h"

TEST_MAIN()

__attribute__((constructor)) static void disable(void)
{
    setenv("SONDE_ENABLED", "0", 1);
}

static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

TEST(test_disabled_tracing_does_nothing_and_starts_nothing)
{
    ASSERT_EQ(sonde_enabled(), 0);
    int before = threads();
    sonde_op_token t = sonde_op_begin("x");
    ASSERT(t.op == NULL);
    ASSERT_DBL_EQ(sonde_op_end(t, 1), 0);
    ASSERT(sonde_op_get("x") == NULL);
    ASSERT_EQ(SONDE_OP_RUN("y", 3), 3);
    ASSERT_EQ(SONDE_OP_CHECK("z", 1), 1);
    sonde_op *op;
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = "x";
    ASSERT_OK(sonde_op_create(&o, &op)); /* off: succeeds with a NULL operation */
    ASSERT(op == NULL);
    ASSERT_OK(sonde_trace_start(NULL));
    ASSERT(!sonde__runtime_running());
    ASSERT_EQ(threads(), before);
    sonde_op_stats st;
    ASSERT_OK(sonde_trace_get_stats("x", 5, &st));
    ASSERT_U64_EQ(st.count, 0);
    sonde_op_stats *v;
    size_t n;
    ASSERT_OK(sonde_trace_list_stats(5, &v, &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(sonde_trace_set_baseline("x", NULL));
    sonde_trace_stop();
    char *text = sonde_registry_render(NULL, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_NOT_CONTAINS(text, "operation");
    sonde_free(text);
}
