/* Operations from several threads (some exiting, some starting) while the
 * flush collects minutes, writes the store and frees accumulators, and a
 * reader queries windows: nothing is lost or counted twice. Run under TSan
 * by `make test`. */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <unistd.h>

#include "trace/trace_int.h"

TEST_MAIN()

#ifdef SONDE_TSAN
#define OPS_PER_THREAD 20000
#else
#define OPS_PER_THREAD 200000
#endif
#define THREADS_PER_WAVE 3
#define WAVES 2
#define NOPS 3

static sonde_op *ops[NOPS];
static atomic_int stop_flag;
static sonde__tracer *tr;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int i = 0; i < OPS_PER_THREAD; i++) {
        sonde_op *op = ops[(i + id) % NOPS];
        sonde_op_token t = sonde_op_begin_op(op);
        sonde_op_end(t, i % 5 != 0);
    }
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        sonde__trace_tick(tr, 0);
        usleep(1000);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        sonde_op_stats st;
        sonde__trace_stats(tr, "op0", 5, &st);
        sonde_op_stats *v;
        size_t n;
        if (sonde__trace_list(tr, 60, &v, &n) == SONDE_OK)
            sonde_free(v);
        usleep(500);
    }
    return NULL;
}

TEST(test_concurrent_operations_flush_and_queries_lose_nothing)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = reg;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    char err[128];
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = reg;
    ASSERT_OK(sonde__store_create(":memory:", &so, &tr->store, err, sizeof err));
    tr->retention_hours = 24;
    for (int i = 0; i < NOPS; i++) {
        char name[16];
        snprintf(name, sizeof name, "op%d", i);
        sonde_op_opts oo;
        sonde_op_opts_init(&oo);
        oo.name = name;
        ASSERT_OK(sonde__trace_op_create(tr, &oo, &ops[i]));
    }
    pthread_t fl, rd, w[THREADS_PER_WAVE * WAVES];
    ASSERT_EQ(pthread_create(&fl, NULL, flusher, NULL), 0);
    ASSERT_EQ(pthread_create(&rd, NULL, reader, NULL), 0);
    /* Wave 1 runs and exits while wave 2 starts: accumulators are pushed
     * and freed concurrently. */
    for (int wv = 0; wv < WAVES; wv++) {
        for (int i = 0; i < THREADS_PER_WAVE; i++)
            ASSERT_EQ(pthread_create(&w[wv * THREADS_PER_WAVE + i], NULL, worker,
                                     (void *)(uintptr_t)(wv * THREADS_PER_WAVE + i)),
                      0);
        if (wv == 0)
            usleep(20000);
    }
    for (int i = 0; i < THREADS_PER_WAVE * WAVES; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop_flag, 1);
    pthread_join(fl, NULL);
    pthread_join(rd, NULL);
    sonde__trace_tick(tr, 1);
    uint64_t total = 0, errors = 0;
    for (int i = 0; i < NOPS; i++) {
        sonde_op_stats st;
        ASSERT_OK(sonde__trace_stats(tr, sonde_op_name(ops[i]), 60, &st));
        total += st.count;
        errors += st.errors;
        ASSERT(st.p99_seconds >= st.p50_seconds);
        ASSERT(st.max_seconds >= st.p99_seconds);
        ASSERT(st.min_seconds <= st.p50_seconds);
    }
    const uint64_t expect = (uint64_t)OPS_PER_THREAD * THREADS_PER_WAVE * WAVES;
    ASSERT_U64_EQ(total, expect);
    ASSERT_U64_EQ(errors, expect / 5);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_trace_dropped_total{reason=\"late\"} 0\n");
    sonde_free(text);
    /* Every exited thread's accumulator was freed. */
    for (int i = 0; i < NOPS; i++)
        ASSERT(ops[i]->accs == NULL);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
}
