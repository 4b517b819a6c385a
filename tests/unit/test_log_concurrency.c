/* Many threads logging at once (run under TSan too): asynchronous mode with
 * drops and with blocking, synchronous mode, context handoff through a
 * worker pool, and reconfiguration while logging. Every line must parse
 * (none torn or interleaved) and every line must be either written or
 * counted as dropped. */
#include "test_log_util.h"

#include <stdatomic.h>
#include <time.h>

enum { THREADS = 8 };

static sonde_logger *lg(void)
{
    return sonde_logger_get("conc.test");
}

typedef struct {
    int t, n;
} job;

static void *producer(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->n; i++)
        SONDE_LOG(lg(), INFO, "conc", SONDE_INT("t", j->t), SONDE_INT("i", i),
                  SONDE_STR("payload", "the quick brown fox jumps over the lazy dog"),
                  SONDE_DOUBLE("x", i * 0.5), SONDE_BOOL("even", i % 2 == 0));
    return NULL;
}

static void run_producers(int per_thread)
{
    pthread_t th[THREADS];
    job j[THREADS];
    for (int t = 0; t < THREADS; t++) {
        j[t].t = t;
        j[t].n = per_thread;
        if (pthread_create(&th[t], NULL, producer, &j[t]) != 0)
            abort();
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

/* Configure: only a file sink, given mode. Returns the file path. */
static const char *setup(const char *name, int async, size_t slots, int block)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/%s.log", test_tmpdir(), name);
    unlink(path);
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "info";
    o.file = path;
    o.async = async;
    o.queue_slots = slots;
    o.block_when_full = block;
    if (sonde_log_configure(&o) != SONDE_OK)
        abort();
    return path;
}

static void check_file(const char *path, int total, uint64_t dropped, int expect_no_drops)
{
    ASSERT_EQ(jq_every_line(path), 0);
    int written = atoi(jq_slurp(path, "map(select(.message == \"conc\")) | length"));
    ASSERT_EQ((uint64_t)written + dropped, (uint64_t)total);
    if (expect_no_drops)
        ASSERT_U64_EQ(dropped, 0);
    /* No line twice, each thread's lines in the order it wrote them. */
    ASSERT_EQ(atoi(jq_slurp(path, "map(select(.message == \"conc\") | "
                                  "\"\\(.fields.t)-\\(.fields.i)\") | unique | length")),
              written);
    ASSERT_STR_EQ(jq_slurp(path, "map(select(.message == \"conc\")) | group_by(.fields.t) | "
                                 "map(map(.fields.i) | . == sort) | all"),
                  "true");
}

TEST(test_log_async_8_threads_drop_mode_accounts_for_every_line)
{
    /* A small queue (256 slots) so that drops really happen. */
    const char *path = setup("async_drop", 1, 256, 0);
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    int per = 5000;
    run_producers(per);
    ASSERT_OK(sonde_log_flush(10000));
    sonde_log_get_stats(&b);
    uint64_t dropped = b.dropped - a.dropped;
    ASSERT_U64_EQ(b.messages[SONDE_LOG_INFO] - a.messages[SONDE_LOG_INFO], (uint64_t)THREADS * per);
    ASSERT_OK(sonde_log_shutdown(5000));
    check_file(path, THREADS * per, dropped, 0);
    printf("  (async drop mode: %llu of %d dropped)\n", (unsigned long long)dropped, THREADS * per);
}

TEST(test_log_async_8_threads_block_mode_writes_every_line)
{
    const char *path = setup("async_block", 1, 256, 1);
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    int per = 5000;
    run_producers(per);
    ASSERT_OK(sonde_log_flush(10000));
    sonde_log_get_stats(&b);
    ASSERT_OK(sonde_log_shutdown(5000));
    check_file(path, THREADS * per, b.dropped - a.dropped, 1);
}

TEST(test_log_sync_8_threads_writes_every_line)
{
    const char *path = setup("sync", 0, 0, 0);
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    int per = 2000;
    run_producers(per);
    sonde_log_get_stats(&b);
    check_file(path, THREADS * per, b.dropped - a.dropped, 1);
}

/* A worker pool: the main thread captures a context per "request"; the
 * workers adopt it and log. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sonde_log_context *q[64];
    char ids[64][40];
    int head, tail, done;
} pool;

static void *pool_worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->head == p->tail && !p->done)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->head == p->tail && p->done) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        sonde_log_context *c = p->q[p->head++ % 64];
        pthread_mutex_unlock(&p->mu);
        {
            SONDE_LOG_ADOPT_CONTEXT(c);
            SONDE_LOG_CONTEXT(SONDE_STR("stage", "worker"));
            SONDE_LOG(lg(), INFO, "work");
        }
        sonde_log_context_release(c);
    }
}

TEST(test_log_worker_pool_keeps_each_request_correlation)
{
    const char *path = setup("pool", 1, 0, 1);
    pool p;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, pool_worker, &p);
    for (int r = 0; r < 40; r++) {
        char rid[32];
        snprintf(rid, sizeof rid, "req-%d", r);
        SONDE_LOG_REQUEST_CONTEXT(rid, SONDE_INT("request", r));
        SONDE_LOG(lg(), INFO, "accepted");
        sonde_log_context *c = sonde_log_context_capture();
        ASSERT(c != NULL);
        pthread_mutex_lock(&p.mu);
        p.q[p.tail++ % 64] = c;
        pthread_cond_signal(&p.cv);
        pthread_mutex_unlock(&p.mu);
    }
    pthread_mutex_lock(&p.mu);
    p.done = 1;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_OK(sonde_log_shutdown(5000));
    ASSERT_EQ(jq_every_line(path), 0);
    /* Every request: one line from main and one from a worker, both with
     * the request's ID, and the worker line carries the request number. */
    ASSERT_STR_EQ(
        jq_slurp(
            path,
            "map(select(.message == \"work\") | (.correlation.correlation_id == "
            "\"req-\\(.correlation.request)\")) | [length, all] | map(tostring) | join(\",\")"),
        "40,true");
    ASSERT_STR_EQ(jq_slurp(path, "group_by(.correlation.correlation_id) | map(length) | unique | "
                                 "map(tostring) | join(\",\")"),
                  "2");
}

static atomic_int stop_flag;

static void *reconfigurer(void *arg)
{
    (void)arg;
    sonde_logger *l = lg();
    int i = 0;
    while (!atomic_load(&stop_flag)) {
        sonde_logger_set_level(l, i % 2 ? SONDE_LOG_INFO : SONDE_LOG_WARNING);
        sonde_log_sink_opts so;
        sonde_log_sink_opts_init(&so);
        so.path = "/dev/null";
        int id;
        if (sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id) == SONDE_OK)
            sonde_log_sink_remove(id);
        sonde_logger_get(i % 2 ? "conc.test.a" : "conc.test.b");
        i++;
    }
    sonde_logger_set_level(l, 0);
    return NULL;
}

TEST(test_log_reconfiguration_while_logging_is_safe)
{
    const char *path = setup("reconf", 1, 0, 1);
    atomic_store(&stop_flag, 0);
    pthread_t rc;
    pthread_create(&rc, NULL, reconfigurer, NULL);
    run_producers(1000);
    atomic_store(&stop_flag, 1);
    pthread_join(rc, NULL);
    ASSERT_OK(sonde_log_shutdown(5000));
    ASSERT_EQ(jq_every_line(path), 0);
}

TEST_MAIN()
