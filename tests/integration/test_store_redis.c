/* The Redis store against a real redis-server that this test starts on a
 * free loopback port (in a temporary directory, without persistence) and
 * stops: the same results as SQLite for the same history, and an outage
 * (server stopped, then restarted) is buffered within bounds, counted, and
 * recovered from. */
#include "test.h"

#include <sonde.h>

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "trace/trace_int.h"

TEST_MAIN()

static char dir[64];
static int port;
static pid_t redis_pid;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int redis_ping(void)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void redis_start(void)
{
    char portstr[16], logf[128];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(logf, sizeof logf, "%s/redis.log", dir);
    fflush(NULL);
    redis_pid = fork();
    ASSERT(redis_pid >= 0);
    if (redis_pid == 0) {
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--logfile", logf,
               (char *)NULL);
        fprintf(stderr, "cannot run redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        if (redis_ping())
            return;
        int status;
        if (waitpid(redis_pid, &status, WNOHANG) == redis_pid)
            TEST_FAIL_AT("redis-server exited (status %d); see %s", status, logf);
        usleep(50000);
    }
    TEST_FAIL_AT("redis-server did not answer on port %d", port);
}

static void redis_stop(void)
{
    if (redis_pid <= 0)
        return;
    kill(redis_pid, SIGTERM);
    int status;
    waitpid(redis_pid, &status, 0);
    redis_pid = 0;
    ASSERT(!redis_ping());
}

static void remove_dir(void)
{
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
}

/* A failed assertion skips a test's teardown: the next setup and the exit
 * still stop the server this program started and remove its directory. */
static void cleanup_at_exit(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    remove_dir();
}

static void setup(void)
{
    static int registered;
    if (!registered) {
        atexit(cleanup_at_exit);
        registered = 1;
    }
    cleanup_at_exit();
    snprintf(dir, sizeof dir, "/tmp/sonde-redis-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    port = free_port();
    ASSERT(port > 0);
    redis_start();
}

static void teardown(void)
{
    redis_stop();
    remove_dir();
}

/* ---- tracing with a fake clock ---- */

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}
#define SEC UINT64_C(1000000000)
#define MS UINT64_C(1000000)
#define MIN_NS (60 * SEC)
#define T0 (UINT64_C(28928880) * MIN_NS)

static sonde__tracer *tracer(sonde_registry *reg, const char *spec, size_t max_pending)
{
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = reg;
    sonde__tracer *tr;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = reg;
    so.max_pending = max_pending;
    so.retry_min_ms = 5;
    so.retry_max_ms = 20;
    so.redis_timeout_ms = 300;
    char err[256];
    ASSERT_OK(sonde__store_create(spec, &so, &tr->store, err, sizeof err));
    tr->retention_hours = 720;
    return tr;
}

static sonde_op *op_of(sonde__tracer *tr, const char *name)
{
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    sonde_op *op;
    ASSERT_OK(sonde__trace_op_create(tr, &o, &op));
    return op;
}

/* Minute i of a deterministic workload for two tracers at once: the same
 * operations and durations, then a flush of each. */
static void workload_minute(sonde__tracer **trs, sonde_op *(*ops)[3], int ntr, int i)
{
    for (int k = 0; k < 3; k++) {
        int n = 1 + (i * 7 + k * 3) % 11;
        for (int j = 0; j < n; j++) {
            uint64_t at = T0 + (uint64_t)i * MIN_NS + (uint64_t)(j + 1) * SEC;
            uint64_t dur = (uint64_t)(1 + (i * 13 + j * 5 + k) % 97) * MS * (k + 1);
            int ok = (i + j + k) % 9 != 0;
            for (int t = 0; t < ntr; t++) {
                fake_ns = at;
                sonde_op_token tok = sonde_op_begin_op(ops[t][k]);
                fake_ns = at + dur;
                sonde_op_end(tok, ok);
            }
        }
    }
    fake_ns = T0 + (uint64_t)(i + 1) * MIN_NS + 3 * SEC;
    for (int t = 0; t < ntr; t++)
        sonde__trace_tick(trs[t], 0);
}

static void assert_same_stats(const sonde_op_stats *a, const sonde_op_stats *b)
{
    ASSERT_STR_EQ(a->operation, b->operation);
    ASSERT_U64_EQ(a->count, b->count);
    ASSERT_U64_EQ(a->errors, b->errors);
    ASSERT_DBL_EQ(a->success_rate, b->success_rate);
    ASSERT_DBL_EQ(a->avg_seconds, b->avg_seconds);
    ASSERT_DBL_EQ(a->min_seconds, b->min_seconds);
    ASSERT_DBL_EQ(a->max_seconds, b->max_seconds);
    ASSERT_DBL_EQ(a->p50_seconds, b->p50_seconds);
    ASSERT_DBL_EQ(a->p90_seconds, b->p90_seconds);
    ASSERT_DBL_EQ(a->p95_seconds, b->p95_seconds);
    ASSERT_DBL_EQ(a->p99_seconds, b->p99_seconds);
    ASSERT_EQ(a->has_baseline, b->has_baseline);
    ASSERT_DBL_EQ(a->baseline_p95_seconds, b->baseline_p95_seconds);
    ASSERT_EQ(a->anomaly, b->anomaly);
}

TEST(test_redis_store_gives_the_same_results_as_sqlite)
{
    setup();
    sonde__trace_set_clock(fake_clock);
    fake_ns = T0;
    char sqlite_path[128], redis_url[64];
    snprintf(sqlite_path, sizeof sqlite_path, "%s/history.db", dir);
    snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d/3", port);
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde__tracer *trs[2] = {tracer(reg, sqlite_path, 0), tracer(reg, redis_url, 0)};
    ASSERT_EQ(sonde__store_kind(trs[1]->store), SONDE__STORE_REDIS);
    sonde_op *ops[2][3];
    const char *names[3] = {"clone", "fetch", "push \"quoted\" name"};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 3; k++)
            ops[t][k] = op_of(trs[t], names[k]);
    sonde_baseline b = {0.030, 0.080, 1.5, 60, 5};
    for (int t = 0; t < 2; t++)
        ASSERT_OK(sonde__trace_set_baseline(trs[t], "fetch", &b));
    for (int i = 0; i < 180; i++)
        workload_minute(trs, ops, 2, i);
    ASSERT_EQ(sonde__store_pending(trs[0]->store), 0);
    ASSERT_EQ(sonde__store_pending(trs[1]->store), 0);
    ASSERT_U64_EQ(sonde__store_errors(trs[1]->store), 0);
    /* Readers of each store alone, several windows. */
    unsigned windows[] = {5, 60, 90, 1440};
    for (size_t w = 0; w < SONDE_ARRAY_LEN(windows); w++) {
        sonde_op_stats *a, *r;
        size_t na, nr;
        ASSERT_OK(sonde_trace_read_store(sqlite_path, NULL, windows[w], &a, &na));
        ASSERT_OK(sonde_trace_read_store(redis_url, NULL, windows[w], &r, &nr));
        ASSERT_EQ(na, 3);
        ASSERT_EQ(nr, 3);
        for (size_t i = 0; i < na; i++)
            assert_same_stats(&a[i], &r[i]);
        if (windows[w] == 1440) {
            ASSERT_STR_EQ(a[0].operation, "clone");
            ASSERT_EQ(a[1].has_baseline, 1);
            ASSERT_GT(a[0].count, 900);
        }
        sonde_free(a);
        sonde_free(r);
        /* One operation. */
        ASSERT_OK(sonde_trace_read_store(redis_url, "fetch", windows[w], &r, &nr));
        ASSERT_EQ(nr, 1);
        ASSERT_STR_EQ(r[0].operation, "fetch");
        sonde_free(r);
    }
    /* In-process windows that reach past memory read each store. */
    for (int k = 0; k < 3; k++) {
        sonde_op_stats a, r;
        ASSERT_OK(sonde__trace_stats(trs[0], names[k], 150, &a));
        ASSERT_OK(sonde__trace_stats(trs[1], names[k], 150, &r));
        assert_same_stats(&a, &r);
    }
    /* Retention on Redis: keep one hour. */
    trs[1]->retention_hours = 1;
    trs[1]->last_prune_minute = TRACE_NO_MINUTE;
    sonde__trace_tick(trs[1], 0);
    sonde_op_stats *r;
    size_t nr;
    ASSERT_OK(sonde_trace_read_store(redis_url, NULL, 1440, &r, &nr));
    uint64_t kept = 0;
    for (size_t i = 0; i < nr; i++)
        kept += r[i].count;
    sonde_free(r);
    sonde_op_stats sq;
    ASSERT_OK(sonde_trace_read_store(sqlite_path, NULL, 60, &r, &nr));
    uint64_t hour = 0;
    for (size_t i = 0; i < nr; i++)
        hour += r[i].count;
    sonde_free(r);
    (void)sq;
    /* The SQLite 60-minute window spans minutes 120..180, which is what
     * Redis kept (minute >= 180 - 60). */
    ASSERT_U64_EQ(kept, hour);
    for (int t = 0; t < 2; t++)
        sonde__tracer_destroy(trs[t]);
    sonde_registry_destroy(reg);
    sonde__trace_set_clock(NULL);
    teardown();
}

static double metric(sonde_registry *reg, const char *prefix)
{
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    /* At the start of a line: the # HELP line names the metric too. */
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s", prefix);
    const char *p = text ? strstr(text, needle) : NULL;
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    sonde_free(text);
    return v;
}

TEST(test_a_redis_outage_is_buffered_bounded_counted_and_recovered)
{
    setup();
    sonde__trace_set_clock(fake_clock);
    fake_ns = T0;
    char redis_url[64];
    snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde__tracer *tr = tracer(reg, redis_url, 30);
    sonde_op *ops[1][3] = {{op_of(tr, "a"), op_of(tr, "b"), op_of(tr, "c")}};
    sonde__tracer *trs[1] = {tr};
    for (int i = 0; i < 10; i++)
        workload_minute(trs, ops, 1, i);
    ASSERT_EQ(sonde__store_pending(tr->store), 0);
    ASSERT_DBL_EQ(metric(reg, "sonde_store_rows_written_total "), 30);

    /* The server goes away for 40 minutes of traffic. */
    redis_stop();
    for (int i = 10; i < 50; i++) {
        workload_minute(trs, ops, 1, i);
        usleep(2000);
        ASSERT_LE(sonde__store_pending(tr->store), 30);
    }
    /* 120 rows produced while down, 30 kept, 90 dropped and counted. */
    ASSERT_EQ(sonde__store_pending(tr->store), 30);
    ASSERT_DBL_EQ(metric(reg, "sonde_store_dropped_total{reason=\"buffer_full\"} "), 90);
    /* Retried with backoff (20 ms at most here): several attempts, far
     * fewer than flushes. */
    double errs = metric(reg, "sonde_store_errors_total{stage=\"open\"} ") +
                  metric(reg, "sonde_store_errors_total{stage=\"write\"} ");
    ASSERT(errs >= 3 && errs <= 40);
    ASSERT_DBL_EQ(metric(reg, "sonde_store_pending_rows "), 30);
    /* Windows in memory are unaffected. */
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(tr, "a", 60, &st));
    uint64_t expect_a = 0;
    for (int i = 0; i < 50; i++)
        expect_a += 1 + (i * 7) % 11;
    ASSERT_U64_EQ(st.count, expect_a);

    /* Back (empty: no persistence): the backlog drains. */
    redis_start();
    for (int tries = 0; tries < 200 && sonde__store_pending(tr->store); tries++) {
        usleep(10000);
        sonde__trace_tick(tr, 0);
    }
    ASSERT_EQ(sonde__store_pending(tr->store), 0);
    ASSERT_DBL_EQ(metric(reg, "sonde_store_rows_written_total "), 60);
    sonde_op_stats *v;
    size_t n;
    ASSERT_OK(sonde_trace_read_store(redis_url, NULL, 1440, &v, &n));
    ASSERT_EQ(n, 3);
    /* The rows kept are the newest: minutes 40..49. */
    uint64_t expect_kept = 0;
    for (int i = 40; i < 50; i++)
        expect_kept += 1 + (i * 7) % 11;
    ASSERT_U64_EQ(v[0].count, expect_kept);
    sonde_free(v);
    /* And new minutes keep flowing. */
    workload_minute(trs, ops, 1, 50);
    ASSERT_EQ(sonde__store_pending(tr->store), 0);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    sonde__trace_set_clock(NULL);
    teardown();
}

TEST(test_an_unreachable_redis_never_blocks_a_reader_for_long)
{
    /* Nothing listens on this port. */
    int p = free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", p);
    sonde_op_stats *v;
    size_t n;
    uint64_t t0 = sonde__now_mono_ns();
    ASSERT_EQ(sonde_trace_read_store(url, NULL, 60, &v, &n), SONDE_EUNREACHABLE);
    ASSERT_LT(sonde__now_mono_ns() - t0, 2000000000u);
    ASSERT_CONTAINS(sonde_last_error(), "redis");
}
