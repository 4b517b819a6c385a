/*
 * SQL collector benchmarks: what ten cached SQL queries add to a scrape.
 *
 * Three registries hold the same service metrics (2,000 counter series in
 * 20 families and 10 histogram series, about 2,200 exposition lines):
 *   base      those alone;
 *   sql10     plus a sonde_sql collector whose ten SQLite queries (5 rows
 *             and 2 metrics each) have run and are cached;
 *   sql10_busy as sql10, plus an eleventh query on its own database that is
 *             running (an endless statement with a 1-hour timeout) during
 *             every scrape.
 * Each case scrapes (Prometheus text, sonde_registry_write into a reused
 * buffer) in 101 short rounds, the cases interleaved in every round so
 * they share the machine's noise. Printed per case: the median time of a
 * scrape and the minimum (the round the machine disturbed least); the
 * ratios are sql10 / base and sql10_busy / base of each. On a loaded
 * machine trust the minimum ratios, or count instructions instead with
 * bench/callgrind_sql.sh.
 */
#include "bench.h"

#include <sonde.h>

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "sonde-bench: sql: %s: %s\n", what, sonde_strerror(rc));
    exit(1);
}

static sonde_registry *service_registry(void)
{
    sonde_registry *reg = NULL;
    int rc = sonde_registry_create(NULL, &reg);
    if (rc)
        die("registry", rc);
    static const char *const lbl[] = {"path", "code"};
    char name[64], path[32];
    for (int f = 0; f < 20; f++) {
        snprintf(name, sizeof name, "app_requests_%02d_total", f);
        sonde_metric_opts o;
        sonde_metric_opts_init(&o);
        o.name = name;
        o.help = "Requests";
        o.label_names = lbl;
        o.label_count = 2;
        sonde_family *fam = NULL;
        if ((rc = sonde_family_create(reg, SONDE_COUNTER, &o, &fam)))
            die("family", rc);
        for (int s = 0; s < 100; s++) {
            snprintf(path, sizeof path, "/api/items/%d", s);
            sonde_counter_add(sonde_family_counter(fam, path, s % 2 ? "200" : "500"), s);
        }
    }
    static const char *const hl[] = {"route"};
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "app_request_duration_seconds";
    o.help = "Latency";
    o.label_names = hl;
    o.label_count = 1;
    sonde_family *h = NULL;
    if ((rc = sonde_family_create(reg, SONDE_HISTOGRAM, &o, &h)))
        die("histogram", rc);
    for (int s = 0; s < 10; s++) {
        snprintf(path, sizeof path, "/r%d", s);
        sonde_histogram_observe(sonde_family_histogram(h, path), 0.01 * s);
    }
    return reg;
}

static char dbpath[96], slowpath[96];

static void make_db(void)
{
    char dir[] = "/tmp/sonde-bench-sql-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(dbpath, sizeof dbpath, "%s/bench.sqlite", dir);
    snprintf(slowpath, sizeof slowpath, "%s/slow.sqlite", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK ||
        sqlite3_exec(
            db,
            "CREATE TABLE t(k TEXT, a REAL, b REAL);"
            "INSERT INTO t VALUES ('x1',1,2),('x2',3,4),('x3',5,6),('x4',7,8),('x5',9,10);",
            NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "sonde-bench: sql: cannot make %s\n", dbpath);
        exit(1);
    }
    sqlite3_close(db);
    if (sqlite3_open(slowpath, &db) != SQLITE_OK) {
        fprintf(stderr, "sonde-bench: sql: cannot make %s\n", slowpath);
        exit(1);
    }
    sqlite3_exec(db, "CREATE TABLE u(v);", NULL, NULL, NULL);
    sqlite3_close(db);
}

static sonde_sql *add_queries(sonde_registry *reg, bool busy)
{
    sonde_sql_opts so;
    sonde_sql_opts_init(&so);
    so.registry = reg;
    sonde_sql *sql = NULL;
    int rc = sonde_sql_create(&so, &sql);
    if (rc)
        die("create", rc);
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "bench";
    d.dsn = dbpath;
    if ((rc = sonde_sql_add_database(sql, &d)))
        die("database", rc);
    static const char *const labels[] = {"k"};
    char qn[16], m1[48], m2[48];
    for (int i = 0; i < 10; i++) {
        snprintf(qn, sizeof qn, "q%d", i);
        snprintf(m1, sizeof m1, "bench_sql_%d_a", i);
        snprintf(m2, sizeof m2, "bench_sql_%d_b", i);
        sonde_sql_metric m[2] = {{0}};
        m[0].name = m1;
        m[0].value_column = "a";
        m[1].name = m2;
        m[1].value_column = "b";
        for (int j = 0; j < 2; j++) {
            m[j].label_columns = labels;
            m[j].label_count = 1;
        }
        sonde_sql_query_opts q;
        sonde_sql_query_opts_init(&q);
        q.name = qn;
        q.database = "bench";
        q.sql = "SELECT k, a, b FROM t";
        q.interval_seconds = 3600;
        q.metrics = m;
        q.metric_count = 2;
        if ((rc = sonde_sql_add_query(sql, &q)))
            die("query", rc);
    }
    if (busy) {
        d.name = "slow";
        d.dsn = slowpath;
        if ((rc = sonde_sql_add_database(sql, &d)))
            die("database", rc);
        sonde_sql_metric m = {0};
        m.name = "bench_sql_slow";
        m.value_column = "n";
        sonde_sql_query_opts q;
        sonde_sql_query_opts_init(&q);
        q.name = "slow";
        q.database = "slow";
        q.sql = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
                "SELECT count(*) AS n FROM c";
        q.interval_seconds = 3600;
        q.timeout_seconds = 3600;
        q.metrics = &m;
        q.metric_count = 1;
        if ((rc = sonde_sql_add_query(sql, &q)))
            die("query", rc);
    }
    if ((rc = sonde_sql_start(sql)))
        die("start", rc);
    for (int i = 0; i < 10; i++) {
        snprintf(qn, sizeof qn, "q%d", i);
        sonde_sql_query_stats st;
        for (int k = 0; k < 2000; k++) {
            sonde_sql_get_query_stats(sql, qn, &st);
            if (st.runs >= 1)
                break;
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        if (st.series != 10) {
            fprintf(stderr, "sonde-bench: sql: query %s has %zu series\n", qn, st.series);
            exit(1);
        }
    }
    if (busy) {
        sonde_sql_query_stats st;
        sonde_sql_get_query_stats(sql, "slow", &st);
        if (!st.running) {
            fprintf(stderr, "sonde-bench: sql: the slow query is not running\n");
            exit(1);
        }
    }
    return sql;
}

typedef struct scrape_arg {
    sonde_registry *reg;
    sonde_buf buf;
} scrape_arg;

static void scrape_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)tid;
    scrape_arg *a = arg;
    for (uint64_t i = 0; i < iters; i++) {
        sonde_buf_reset(&a->buf);
        if (sonde_registry_write(a->reg, SONDE_FORMAT_PROMETHEUS, NULL, &a->buf) != SONDE_OK) {
            fprintf(stderr, "sonde-bench: sql: scrape failed\n");
            exit(1);
        }
    }
    BENCH_CLOBBER(a->buf.data);
}

/* One function per case, so bench/callgrind_sql.sh can count each case's
 * instructions (callgrind's inclusive cost per function). */
__attribute__((noinline)) static void scrape_case_base(void *arg, unsigned tid, uint64_t iters)
{
    scrape_body(arg, tid, iters);
}
__attribute__((noinline)) static void scrape_case_sql10(void *arg, unsigned tid, uint64_t iters)
{
    scrape_body(arg, tid, iters);
}
__attribute__((noinline)) static void scrape_case_sql10_busy(void *arg, unsigned tid,
                                                             uint64_t iters)
{
    scrape_body(arg, tid, iters);
}

void sonde_bench_sql(void)
{
    sonde_logger_set_level(sonde_logger_get("sonde.sql"), SONDE_LOG_OFF);
    make_db();
    scrape_arg a[3];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 3; i++)
        a[i].reg = service_registry();
    sonde_sql *s1 = add_queries(a[1].reg, false);
    sonde_sql *s2 = add_queries(a[2].reg, true);
    for (int i = 0; i < 3; i++)
        scrape_body(&a[i], 0, 3); /* grow the buffers */
    /* Many short rounds, the three cases interleaved in each: on a busy
     * machine the median mostly measures the scheduler, the minimum the
     * scrape itself (a round the machine left alone). Both are printed. */
    enum { NCASE = 3 };
    static const bench_body_fn bodies[NCASE] = {scrape_case_base, scrape_case_sql10,
                                                scrape_case_sql10_busy};
    uint64_t iters = bench_iters(10) < 2 ? 2 : bench_iters(10);
    unsigned rounds = bench_quick ? 11 : 101;
    double v[NCASE][101], med[NCASE], min[NCASE];
    for (unsigned r = 0; r < rounds; r++)
        for (int c = 0; c < NCASE; c++)
            v[c][r] = bench_run_1t(bodies[c], &a[c], iters);
    for (int c = 0; c < NCASE; c++) {
        min[c] = v[c][0];
        for (unsigned r = 1; r < rounds; r++)
            if (v[c][r] < min[c])
                min[c] = v[c][r];
        med[c] = bench_median(v[c], rounds);
    }
    bench_print("sql_scrape_base_us", med[0] / 1e3, "us");
    bench_print("sql_scrape_sql10_us", med[1] / 1e3, "us");
    bench_print("sql_scrape_sql10_busy_us", med[2] / 1e3, "us");
    bench_print("sql_scrape_ratio", med[1] / med[0], "x");
    bench_print("sql_scrape_busy_ratio", med[2] / med[0], "x");
    bench_print("sql_scrape_base_min_us", min[0] / 1e3, "us");
    bench_print("sql_scrape_sql10_min_us", min[1] / 1e3, "us");
    bench_print("sql_scrape_sql10_busy_min_us", min[2] / 1e3, "us");
    bench_print("sql_scrape_min_ratio", min[1] / min[0], "x");
    bench_print("sql_scrape_busy_min_ratio", min[2] / min[0], "x");
    bench_print("sql_scrape_base_bytes", (double)a[0].buf.len, "bytes");
    bench_print("sql_scrape_sql10_bytes", (double)a[1].buf.len, "bytes");
    sonde_sql_destroy(s1);
    sonde_sql_destroy(s2);
    for (int i = 0; i < 3; i++) {
        sonde_buf_free(&a[i].buf);
        sonde_registry_destroy(a[i].reg);
    }
    unlink(dbpath);
    unlink(slowpath);
    char *slash = strrchr(dbpath, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dbpath);
    }
}
