/*
 * The SQL collector against SQLite files made by the test: exact series,
 * timeouts cut by SQLite while scrapes go on, capped rows, stale values
 * withheld, skipped values and duplicates counted, read-only refusal,
 * validation messages, DSN masking and secrets from files and the
 * environment.
 */
#include "test.h"

#include <sonde.h>

#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

TEST_MAIN()

static char dir[64];
static char dbpath[128];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A fresh database file with the given SQL run on a writable connection. */
static void make_db(const char *sql)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/sonde-sql-XXXXXX");
        ASSERT(mkdtemp(dir) != NULL);
    }
    static int n;
    snprintf(dbpath, sizeof dbpath, "%s/db%d.sqlite", dir, ++n);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        TEST_FAIL_AT("setup SQL failed: %s", err ? err : "?");
    sqlite3_close(db);
}

static void exec_db(const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    /* The collector may be reading right now. */
    sqlite3_busy_timeout(db, 10000);
    ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static sonde_registry *reg;
static sonde_sql *sql;

/* Wait until the query has finished n runs (the first run starts with
 * sonde_sql_start). */
static void wait_runs(const char *name, uint64_t n)
{
    sonde_sql_query_stats st;
    for (int i = 0; i < 2000; i++) {
        ASSERT_OK(sonde_sql_get_query_stats(sql, name, &st));
        if (st.runs >= n)
            return;
        sleep_ms(5);
    }
    TEST_FAIL_AT("query %s: %llu runs, want %llu", name, (unsigned long long)st.runs,
                 (unsigned long long)n);
}

static void quiet(void)
{
    /* Failures are logged once per state change; keep stderr clean. */
    sonde_logger_set_level(sonde_logger_get("sonde.sql"), SONDE_LOG_OFF);
}

static void setup(void)
{
    quiet();
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_sql_opts o;
    sonde_sql_opts_init(&o);
    o.registry = reg;
    ASSERT_OK(sonde_sql_create(&o, &sql));
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "main";
    d.dsn = dbpath;
    ASSERT_OK(sonde_sql_add_database(sql, &d));
}

static void teardown(void)
{
    sonde_sql_destroy(sql);
    sql = NULL;
    sonde_registry_destroy(reg);
    reg = NULL;
}

static char *render(void)
{
    char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(t != NULL);
    return t;
}

static const char *run_cols[] = {"status"};
static const char *run_const[] = {"source", "scrape_runs"};

TEST(test_sql_sqlite_exports_exact_values_and_labels)
{
    make_db("CREATE TABLE scrape_runs(status TEXT, secs REAL);"
            "INSERT INTO scrape_runs VALUES ('ok', 1.5), ('ok', 2.5), ('fail', 4),"
            " ('ok', 2), ('running', NULL);");
    setup();
    sonde_sql_metric m[2] = {{0}};
    m[0].name = "scrape_runs_total";
    m[0].type = SONDE_COUNTER;
    m[0].help = "Runs by status";
    m[0].value_column = "n";
    m[0].label_columns = run_cols;
    m[0].label_count = 1;
    m[0].const_labels = run_const;
    m[0].const_label_count = 1;
    m[1].name = "scrape_run_avg_duration_seconds";
    m[1].value_column = "avg_secs";
    m[1].label_columns = run_cols;
    m[1].label_count = 1;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "runs";
    q.sql = "SELECT status, COUNT(*) AS n, AVG(secs) AS avg_secs FROM scrape_runs "
            "GROUP BY status ORDER BY status";
    q.interval_seconds = 3600;
    q.metrics = m;
    q.metric_count = 2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("runs", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "# HELP scrape_runs_total Runs by status\n"
                       "# TYPE scrape_runs_total counter\n"
                       "scrape_runs_total{status=\"fail\",source=\"scrape_runs\"} 1\n"
                       "scrape_runs_total{status=\"ok\",source=\"scrape_runs\"} 3\n"
                       "scrape_runs_total{status=\"running\",source=\"scrape_runs\"} 1\n");
    ASSERT_CONTAINS(t, "# TYPE scrape_run_avg_duration_seconds gauge\n"
                       "scrape_run_avg_duration_seconds{status=\"fail\"} 4\n"
                       "scrape_run_avg_duration_seconds{status=\"ok\"} 2\n");
    /* AVG over only NULLs is NULL: that sample is skipped and counted. */
    ASSERT_NOT_CONTAINS(t, "scrape_run_avg_duration_seconds{status=\"running\"}");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"runs\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_series{query=\"runs\"} 5\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_errors_total{query=\"runs\",reason=\"value\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_errors_total{query=\"runs\",reason=\"timeout\"} 0\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_runs_total{query=\"runs\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_stale{query=\"runs\"} 0\n");
    ASSERT_CONTAINS(t, "sonde_sql_database_up{database=\"main\"} 1\n");
    ASSERT_CONTAINS(t,
                    "sonde_sql_database_connects_total{database=\"main\",result=\"success\"} 1\n");
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "runs", &st));
    ASSERT_EQ(st.last_success, 1);
    ASSERT(st.last_success_time > 1e9);
    char want[96];
    snprintf(want, sizeof want, "sonde_sql_query_last_success_timestamp_seconds{query=\"runs\"} ");
    ASSERT_CONTAINS(t, want);
    sonde_free(t);

    /* New rows show at the next run, from the same connection. */
    exec_db("INSERT INTO scrape_runs VALUES ('fail', 6)");
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 10000));
    t = render();
    ASSERT_CONTAINS(t, "scrape_runs_total{status=\"fail\",source=\"scrape_runs\"} 2\n");
    ASSERT_CONTAINS(t, "scrape_run_avg_duration_seconds{status=\"fail\"} 5\n");
    ASSERT_CONTAINS(t,
                    "sonde_sql_database_connects_total{database=\"main\",result=\"success\"} 1\n");
    sonde_free(t);
    teardown();
}

static sonde_sql_metric one_metric(const char *name, const char *value, const char *const *labels,
                                   size_t nl)
{
    sonde_sql_metric m = {0};
    m.name = name;
    m.value_column = value;
    m.label_columns = labels;
    m.label_count = nl;
    return m;
}

TEST(test_sql_sqlite_timeout_cuts_the_query_and_scrapes_do_not_wait)
{
    make_db("CREATE TABLE t(x); INSERT INTO t VALUES (7);");
    setup();
    sonde_sql_metric fast = one_metric("fast_value", "x", NULL, 0);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "fast";
    q.sql = "SELECT x FROM t";
    q.interval_seconds = 3600;
    q.metrics = &fast;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    /* An endless recursive CTE: only the timeout ends it. */
    sonde_sql_metric slow = one_metric("slow_value", "n", NULL, 0);
    q.name = "slow";
    q.sql = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
            "SELECT count(*) AS n FROM c";
    q.timeout_seconds = 1.5;
    q.metrics = &slow;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    ASSERT_OK(sonde_sql_run_now(sql, "fast", 10000));

    /* Both queries share the database's executor; start the slow one and
     * scrape while it runs. */
    sonde_sql_query_stats st;
    uint64_t runs_before;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
    runs_before = st.runs;
    for (int i = 0; i < 2000; i++) {
        ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
        if (st.running && st.runs == runs_before)
            break;
        if (i == 0)
            sonde_sql_run_now(sql, "slow", 0);
        sleep_ms(5);
    }
    ASSERT_EQ(st.running, 1);
    char *t = render();
    ASSERT_CONTAINS(t, "fast_value 7\n");
    sonde_free(t);
    /* The scrape returned while the slow query still ran. */
    ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
    ASSERT_EQ(st.running, 1);
    ASSERT_U64_EQ(st.runs, runs_before);

    ASSERT_OK(sonde_sql_run_now(sql, "slow", 20000));
    ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
    ASSERT(st.errors_timeout >= 1);
    ASSERT_EQ(st.last_success, 0);
    ASSERT(st.last_duration_seconds >= 1.4);
    ASSERT_CONTAINS(st.last_error, "timeout");
    t = render();
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"slow\"} 0\n");
    ASSERT_NOT_CONTAINS(t, "slow_value");
    ASSERT_CONTAINS(t, "fast_value 7\n");
    sonde_free(t);
    /* The connection survives an interrupted statement. */
    ASSERT_OK(sonde_sql_run_now(sql, "fast", 10000));
    ASSERT_OK(sonde_sql_get_query_stats(sql, "fast", &st));
    ASSERT_EQ(st.last_success, 1);
    teardown();
}

TEST(test_sql_sqlite_caps_rows_past_max_series_and_counts_them)
{
    make_db("CREATE TABLE t(k TEXT, v INT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50)"
            " INSERT INTO t SELECT 'k' || i, i FROM c;");
    setup();
    const char *labels[] = {"k"};
    sonde_sql_metric m = one_metric("rows_value", "v", labels, 1);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "many";
    q.sql = "SELECT k, v FROM t ORDER BY v";
    q.interval_seconds = 3600;
    q.max_series = 10;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("many", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "rows_value{k=\"k10\"} 10\n");
    ASSERT_NOT_CONTAINS(t, "rows_value{k=\"k11\"}");
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\nrows_value{")); p++)
        n++;
    ASSERT_EQ(n, 10);
    ASSERT_CONTAINS(t, "sonde_sql_query_series_dropped_total{query=\"many\"} 40\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_series{query=\"many\"} 10\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"many\"} 1\n");
    sonde_free(t);
    teardown();
}

TEST(test_sql_sqlite_counts_duplicates_bad_values_and_missing_columns)
{
    make_db("CREATE TABLE t(k TEXT, v);"
            "INSERT INTO t VALUES ('a', 1), ('a', 2), ('b', 'many'), ('c', '3.25'),"
            " ('d', 'true'), (NULL, 5);");
    setup();
    const char *labels[] = {"k"};
    sonde_sql_metric m = one_metric("dup_value", "v", labels, 1);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "dups";
    q.sql = "SELECT k, v FROM t";
    q.interval_seconds = 3600;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    sonde_sql_metric m2 = one_metric("missing_value", "no_such_column", NULL, 0);
    q.name = "missing";
    q.metrics = &m2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("dups", 1);
    wait_runs("missing", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "dup_value{k=\"a\"} 1\n");
    ASSERT_CONTAINS(t, "dup_value{k=\"c\"} 3.25\n");
    ASSERT_CONTAINS(t, "dup_value{k=\"d\"} 1\n");
    ASSERT_CONTAINS(t, "dup_value{k=\"\"} 5\n");
    ASSERT_NOT_CONTAINS(t, "dup_value{k=\"a\"} 2");
    ASSERT_NOT_CONTAINS(t, "dup_value{k=\"b\"}");
    ASSERT_CONTAINS(t, "sonde_sql_query_errors_total{query=\"dups\",reason=\"duplicate\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_errors_total{query=\"dups\",reason=\"value\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_errors_total{query=\"missing\",reason=\"column\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"missing\"} 0\n");
    sonde_free(t);
    teardown();
}

TEST(test_sql_sqlite_refuses_writes_and_missing_files)
{
    make_db("CREATE TABLE t(v); INSERT INTO t VALUES (1);");
    setup();
    sonde_sql_metric m = one_metric("w_value", "v", NULL, 0);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "write";
    q.sql = "DELETE FROM t RETURNING v";
    q.interval_seconds = 3600;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "gone";
    d.dsn = "/nonexistent/dir/x.sqlite";
    d.backoff_initial_seconds = 60;
    ASSERT_OK(sonde_sql_add_database(sql, &d));
    sonde_sql_metric m2 = one_metric("g_value", "v", NULL, 0);
    q.name = "gone_q";
    q.sql = "SELECT 1 AS v";
    q.database = "gone";
    q.metrics = &m2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("write", 1);
    wait_runs("gone_q", 1);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "write", &st));
    ASSERT_U64_EQ(st.errors_query, 1);
    ASSERT_CONTAINS(st.last_error, "read-only");
    ASSERT_OK(sonde_sql_get_query_stats(sql, "gone_q", &st));
    ASSERT_U64_EQ(st.errors_connect, 1);
    /* Within the backoff the next run does not try again. */
    ASSERT_OK(sonde_sql_run_now(sql, "gone_q", 10000));
    ASSERT_OK(sonde_sql_get_query_stats(sql, "gone_q", &st));
    ASSERT_U64_EQ(st.errors_connect, 2);
    ASSERT_CONTAINS(st.last_error, "next attempt");
    char *t = render();
    ASSERT_CONTAINS(t,
                    "sonde_sql_database_connects_total{database=\"gone\",result=\"failure\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_database_up{database=\"gone\"} 0\n");
    sonde_free(t);
    teardown();
    /* The row is still there. */
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &s, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(s, 0), 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

TEST(test_sql_sqlite_withholds_values_older_than_max_age)
{
    make_db("CREATE TABLE t(v); INSERT INTO t VALUES (42);");
    setup();
    sonde_sql_metric m = one_metric("aging_value", "v", NULL, 0);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "aging";
    q.sql = "SELECT v FROM t";
    q.interval_seconds = 0.1;
    q.max_age_seconds = 0.5;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 10000));
    char *t = render();
    ASSERT_CONTAINS(t, "aging_value 42\n");
    sonde_free(t);
    /* Every later run fails: the last good values age out. */
    exec_db("DROP TABLE t");
    sleep_ms(1500);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "aging", &st));
    ASSERT_EQ(st.last_success, 0);
    ASSERT(st.errors_query >= 1);
    t = render();
    ASSERT_NOT_CONTAINS(t, "aging_value 42");
    ASSERT_CONTAINS(t, "sonde_sql_query_stale{query=\"aging\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"aging\"} 0\n");
    sonde_free(t);
    /* And come back with the table. */
    exec_db("CREATE TABLE t(v); INSERT INTO t VALUES (43);");
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 10000));
    t = render();
    ASSERT_CONTAINS(t, "aging_value 43\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_stale{query=\"aging\"} 0\n");
    sonde_free(t);
    teardown();
}

/* Scrapes copy each snapshot's bytes, encoded once per format; a scrape
 * with a name filter still emits family by family. Both must give the
 * same bytes in every format, before and after the data change, and when
 * a value goes stale. */
static void same_in_every_format(void)
{
    static const char *const names[] = {
        "odd_value",
        "odd_rows_total",
        "sonde_sql_query_success",
        "sonde_sql_query_duration_seconds",
        "sonde_sql_query_last_success_timestamp_seconds",
        "sonde_sql_query_runs_total",
        "sonde_sql_query_series",
        "sonde_sql_query_series_dropped_total",
        "sonde_sql_query_stale",
        "sonde_sql_query_errors_total",
        "sonde_sql_database_up",
        "sonde_sql_database_connects_total",
        "sonde_metrics_collector_errors_total",
    };
    sonde_write_opts all;
    memset(&all, 0, sizeof all);
    all.names = names;
    all.name_count = sizeof names / sizeof names[0];
    for (int f = SONDE_FORMAT_PROMETHEUS; f <= SONDE_FORMAT_OPENMETRICS_0_0_1; f++) {
        for (int round = 0; round < 2; round++) { /* the second copies the cache */
            sonde_buf cached, direct;
            sonde_buf_init(&cached);
            sonde_buf_init(&direct);
            /* The query reruns every 2 s: compare two writes no run
             * finished between. */
            for (int tries = 0;; tries++) {
                sonde_sql_query_stats a, z;
                ASSERT_OK(sonde_sql_get_query_stats(sql, "odd", &a));
                sonde_buf_reset(&cached);
                sonde_buf_reset(&direct);
                ASSERT_OK(sonde_registry_write(reg, (sonde_format)f, NULL, &cached));
                ASSERT_OK(sonde_registry_write(reg, (sonde_format)f, &all, &direct));
                ASSERT_OK(sonde_sql_get_query_stats(sql, "odd", &z));
                if (!a.running && !z.running && a.runs == z.runs)
                    break;
                ASSERT(tries < 1000);
                sleep_ms(10);
            }
            if (cached.len != direct.len || memcmp(cached.data, direct.data, cached.len) != 0)
                TEST_FAIL_AT("format %d: cached output (%zu bytes) differs from the "
                             "family-by-family one (%zu bytes):\n%.*s\n----\n%.*s",
                             f, cached.len, direct.len, (int)cached.len, cached.data,
                             (int)direct.len, direct.data);
            ASSERT(cached.len > 0);
            sonde_buf_free(&cached);
            sonde_buf_free(&direct);
        }
    }
}

TEST(test_sql_cached_encoding_matches_family_by_family_in_every_format)
{
    make_db("CREATE TABLE t(k TEXT, v REAL, n INTEGER);"
            "INSERT INTO t VALUES ('plain', 1.25, 3), ('quo\"te', -0.1, 4),"
            " ('back\\slash', 1e300, 5), ('new\nline', 0.000001, 6);");
    setup();
    static const char *const lk[] = {"k"};
    static const char *const ck[] = {"origin", "t\"able"};
    sonde_sql_metric m[2] = {{0}};
    m[0] = one_metric("odd_value", "v", lk, 1);
    m[0].help = "Values \"with\" \\ escapes\nand lines";
    m[1] = one_metric("odd_rows_total", "n", lk, 1);
    m[1].type = SONDE_COUNTER;
    m[1].const_labels = ck;
    m[1].const_label_count = 1;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "odd";
    q.sql = "SELECT k, v, n FROM t ORDER BY k";
    q.interval_seconds = 2;
    q.max_age_seconds = 2;
    q.metrics = m;
    q.metric_count = 2;
    if (sonde_sql_add_query(sql, &q) != SONDE_OK)
        TEST_FAIL_AT("add_query: %s", sonde_registry_last_error());
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("odd", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "odd_value{k=\"quo\\\"te\"} -0.1\n");
    ASSERT_CONTAINS(t, "odd_rows_total{k=\"new\\nline\",origin=\"t\\\"able\"} 6\n");
    sonde_free(t);
    same_in_every_format();

    exec_db("UPDATE t SET n = n + 10");
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 10000));
    t = render();
    ASSERT_CONTAINS(t, "odd_rows_total{k=\"new\\nline\",origin=\"t\\\"able\"} 16\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_runs_total{query=\"odd\"} 2\n");
    sonde_free(t);
    same_in_every_format();

    /* The runs fail from now on: past max_age the values are withheld and
     * the stale gauge says so. */
    exec_db("DROP TABLE t");
    for (int i = 0;; i++) {
        t = render();
        if (strstr(t, "sonde_sql_query_stale{query=\"odd\"} 1\n"))
            break;
        ASSERT(i < 1500);
        sonde_free(t);
        sleep_ms(10);
    }
    ASSERT_NOT_CONTAINS(t, "odd_rows_total{");
    sonde_free(t);
    same_in_every_format();
    teardown();
}

TEST(test_sql_rejects_bad_definitions_with_reasons)
{
    make_db("CREATE TABLE t(v);");
    setup();
    const char *bad_label[] = {"__x"};
    const char *lbl[] = {"k"};
    const char *dup_const[] = {"k", "v"};
    struct {
        sonde_sql_metric m;
        double interval, max_age;
        const char *db;
        int rc;
        const char *why;
    } cases[] = {
        {{.name = "1bad", .value_column = "v"}, 0, 0, NULL, SONDE_EBADNAME, "invalid metric name"},
        {{.name = "sonde_sql_x", .value_column = "v"}, 0, 0, NULL, SONDE_EBADNAME, "reserved"},
        {{.name = "ok_metric"}, 0, 0, NULL, SONDE_EINVAL, "value column"},
        {{.name = "ok_metric", .value_column = "v", .label_columns = bad_label, .label_count = 1},
         0,
         0,
         NULL,
         SONDE_EBADLABEL,
         "invalid label name"},
        {{.name = "ok_metric",
          .value_column = "v",
          .label_columns = lbl,
          .label_count = 1,
          .const_labels = dup_const,
          .const_label_count = 1},
         0,
         0,
         NULL,
         SONDE_EBADLABEL,
         "appears twice"},
        {{.name = "ok_metric", .value_column = "v", .type = SONDE_HISTOGRAM},
         0,
         0,
         NULL,
         SONDE_EINVAL,
         "gauge or counter"},
        {{.name = "ok_metric", .value_column = "v"}, 10, 5, NULL, SONDE_EINVAL, "max_age"},
        {{.name = "ok_metric", .value_column = "v"}, 0.001, 0, NULL, SONDE_EINVAL, "interval"},
        {{.name = "ok_metric", .value_column = "v"}, 0, 0, "nope", SONDE_ENOTFOUND, "nope"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sonde_sql_query_opts q;
        sonde_sql_query_opts_init(&q);
        q.name = "q";
        q.sql = "SELECT v FROM t";
        q.metrics = &cases[i].m;
        q.metric_count = 1;
        q.interval_seconds = cases[i].interval;
        q.max_age_seconds = cases[i].max_age;
        q.database = cases[i].db;
        ASSERT_EQ(sonde_sql_add_query(sql, &q), cases[i].rc);
        ASSERT_CONTAINS(sonde_last_error(), cases[i].why);
    }
    /* One query per metric name. */
    sonde_sql_metric m = one_metric("shared_name", "v", NULL, 0);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "a";
    q.sql = "SELECT v FROM t";
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    q.name = "b";
    ASSERT_EQ(sonde_sql_add_query(sql, &q), SONDE_ECONFLICT);
    ASSERT_CONTAINS(sonde_last_error(), "another query");
    q.name = "a";
    ASSERT_EQ(sonde_sql_add_query(sql, &q), SONDE_ECONFLICT);
    teardown();
}

TEST(test_sql_secrets_come_from_files_and_environment_and_never_show)
{
    make_db("CREATE TABLE t(v); INSERT INTO t VALUES (1);");
    quiet();
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_sql_opts o;
    sonde_sql_opts_init(&o);
    o.registry = reg;
    ASSERT_OK(sonde_sql_create(&o, &sql));
    char file[160];
    snprintf(file, sizeof file, "%s/dsn", dir);
    FILE *f = fopen(file, "w");
    ASSERT(f != NULL);
    fprintf(f, "%s\n", dbpath);
    fclose(f);
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "fromfile";
    d.dsn_file = file;
    ASSERT_OK(sonde_sql_add_database(sql, &d));
    setenv("SONDE_TEST_SQL_DSN", "postgresql://app:hunter2@127.0.0.1:1/x?sslmode=disable", 1);
    sonde_sql_db_opts_init(&d);
    d.name = "fromenv";
    d.dsn_env = "SONDE_TEST_SQL_DSN";
    ASSERT_OK(sonde_sql_add_database(sql, &d));
    sonde_sql_db_opts_init(&d);
    d.name = "unset";
    d.dsn_env = "SONDE_TEST_SQL_UNSET_VARIABLE";
    ASSERT_EQ(sonde_sql_add_database(sql, &d), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "SONDE_TEST_SQL_UNSET_VARIABLE is not set");
    sonde_sql_db_opts_init(&d);
    d.name = "twice";
    d.dsn = "x";
    d.dsn_env = "SONDE_TEST_SQL_DSN";
    ASSERT_EQ(sonde_sql_add_database(sql, &d), SONDE_EINVAL);
    ASSERT_NOT_CONTAINS(sonde_last_error(), "hunter2");

    sonde_sql_metric m = one_metric("file_value", "v", NULL, 0);
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "viafile";
    q.database = "fromfile";
    q.sql = "SELECT v FROM t";
    q.interval_seconds = 3600;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    sonde_sql_metric m2 = one_metric("env_value", "v", NULL, 0);
    q.name = "viaenv";
    q.database = "fromenv";
    q.metrics = &m2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("viafile", 1);
    wait_runs("viaenv", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "file_value 1\n");
    ASSERT_NOT_CONTAINS(t, "hunter2");
    sonde_free(t);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "viaenv", &st));
    ASSERT_U64_EQ(st.errors_connect, 1);
    ASSERT_NOT_CONTAINS(st.last_error, "hunter2");
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde_sql_write_json(sql, &b));
    ASSERT_CONTAINS(b.data, "\"dsn\":\"postgresql://app:***@127.0.0.1:1/x?sslmode=disable\"");
    ASSERT_NOT_CONTAINS(b.data, "hunter2");
    sonde_buf_free(&b);
    teardown();
    unsetenv("SONDE_TEST_SQL_DSN");
}

static void check_mask(const char *in, const char *want, int masked)
{
    sonde_buf b;
    sonde_buf_init(&b);
    int rc = sonde_sql_mask_dsn(in, strlen(in), &b);
    if (rc != masked)
        TEST_FAIL_AT("mask(%s) returned %d, want %d", in, rc, masked);
    ASSERT_STR_EQ(b.data ? b.data : "", want);
    sonde_buf_free(&b);
}

TEST(test_sql_mask_dsn_hides_passwords_in_every_form)
{
    check_mask("host=db port=5432 user=app password=hunter2 dbname=x",
               "host=db port=5432 user=app password=*** dbname=x", 1);
    check_mask("host=db password = 'a b\\'c' sslmode=require",
               "host=db password = *** sslmode=require", 1);
    check_mask("PASSWORD=x", "PASSWORD=***", 1);
    check_mask("sslpassword=k host=h", "sslpassword=*** host=h", 1);
    check_mask("host=db password='unterminated", "host=db password=***", 1);
    check_mask("host=db oops password=x", "host=db ...", 1);
    check_mask("postgresql://app:hunter2@db:5432/x?sslmode=disable",
               "postgresql://app:***@db:5432/x?sslmode=disable", 1);
    check_mask("postgres://app@db/x?password=s3&application_name=a",
               "postgres://app@db/x?password=***&application_name=a", 1);
    check_mask("postgres://u:p@h1:1,h2:2/db", "postgres://u:***@h1:1,h2:2/db", 1);
    check_mask("postgres://db/x", "postgres://db/x", 0);
    check_mask("file:/var/lib/x.db?mode=ro", "file:/var/lib/x.db?mode=ro", 0);
    check_mask("/var/lib/app/state.db", "/var/lib/app/state.db", 0);
    check_mask("host=db dbname=x", "host=db dbname=x", 0);
    check_mask("", "", 0);
}

/* ---- instrumentation of the application's own calls, with SQLite ---- */

static int step_all(sqlite3 *db, const char *q, const char **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
    sqlite3_finalize(st);
    *err = sqlite3_errmsg(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The application's wrapper: one begin/end pair per statement. */
static int app_exec(sonde_db *d, sqlite3 *db, const char *q)
{
    sonde_db_call call;
    sonde_db_begin(d, &call, NULL, q);
    const char *err = NULL;
    int rc = step_all(db, q, &err);
    sonde_db_end(&call, rc == 0 ? SONDE_DB_OK : SONDE_DB_ERROR, rc == 0 ? NULL : err);
    return rc;
}

TEST(test_db_instrumentation_counts_sqlite_calls_and_captures_failures)
{
    quiet();
    make_db("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);");
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    eo.no_log = 1;
    eo.no_env_notifiers = 1;
    sonde_errors *errs = NULL;
    ASSERT_OK(sonde_errors_create(&eo, &errs));
    sonde_db_opts o;
    sonde_db_opts_init(&o);
    o.registry = reg;
    o.name = "catalog";
    o.errors = errs;
    sonde_db *d = NULL;
    ASSERT_OK(sonde_db_create(&o, &d));

    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    {
        SONDE_LOG_REQUEST_CONTEXT("req-42", sonde_field_strn("route", "/items", SONDE_FIELD_NTS));
        ASSERT_EQ(app_exec(d, db, "INSERT INTO items(name) VALUES ('a')"), 0);
        ASSERT_EQ(app_exec(d, db, "INSERT INTO items(name) VALUES ('b')"), 0);
        ASSERT_EQ(app_exec(d, db, "  -- list\n SELECT * FROM items"), 0);
        ASSERT_EQ(app_exec(d, db, "UPDATE items SET name = 'c' WHERE id = 1"), 0);
        ASSERT_EQ(app_exec(d, db, "SELECT * FROM no_such_table"), -1);
    }
    sonde_db_pool_set(d, 3, 5);
    sonde_db_pool_wait(d, 0.25);
    sonde_db_pool_wait(d, 0.5);
    sqlite3_close(db);

    char *t = render();
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"catalog\",kind=\"insert\",result=\"ok\"} 2\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"catalog\",kind=\"select\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t,
                    "sonde_db_queries_total{db=\"catalog\",kind=\"select\",result=\"error\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"catalog\",kind=\"update\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_query_duration_seconds_count{db=\"catalog\",kind=\"select\"} 2\n");
    ASSERT_CONTAINS(t, "sonde_db_query_duration_seconds_count{db=\"catalog\",kind=\"insert\"} 2\n");
    ASSERT_CONTAINS(t, "sonde_db_pool_connections{db=\"catalog\",state=\"in_use\"} 3\n");
    ASSERT_CONTAINS(t, "sonde_db_pool_connections{db=\"catalog\",state=\"idle\"} 5\n");
    ASSERT_CONTAINS(t, "sonde_db_pool_waits_total{db=\"catalog\"} 2\n");
    ASSERT_CONTAINS(t, "sonde_db_pool_wait_seconds_total{db=\"catalog\"} 0.75\n");
    sonde_free(t);

    sonde_errors_process(errs);
    sonde_error_group *g = NULL;
    size_t n = 0;
    ASSERT_OK(sonde_errors_get_groups(errs, NULL, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(g[0].type, "DatabaseError");
    ASSERT_STR_EQ(g[0].operation, "db.select");
    ASSERT_STR_EQ(g[0].correlation_id, "req-42");
    ASSERT_CONTAINS(g[0].message, "no such table");
    sonde_free(g);
    /* The frame was popped: the thread has no context left. */
    char id[64];
    ASSERT_EQ(sonde_log_correlation_id(id, sizeof id), 0);

    sonde_db_destroy(d);
    sonde_errors_destroy(errs);
    sonde_registry_destroy(reg);
    reg = NULL;
}

TEST(test_db_kind_classifies_statements)
{
    ASSERT_STR_EQ(sonde_db_kind("select 1"), "select");
    ASSERT_STR_EQ(sonde_db_kind("/* c */ WITH x AS (SELECT 1) SELECT * FROM x"), "select");
    ASSERT_STR_EQ(sonde_db_kind("(SELECT 1)"), "select");
    ASSERT_STR_EQ(sonde_db_kind("\n  insert into t values (1)"), "insert");
    ASSERT_STR_EQ(sonde_db_kind("UPDATE t SET a = 1"), "update");
    ASSERT_STR_EQ(sonde_db_kind("delete from t"), "delete");
    ASSERT_STR_EQ(sonde_db_kind("BEGIN"), "begin");
    ASSERT_STR_EQ(sonde_db_kind("COMMIT"), "commit");
    ASSERT_STR_EQ(sonde_db_kind("rollback"), "rollback");
    ASSERT_STR_EQ(sonde_db_kind("CREATE TABLE t(a)"), "ddl");
    ASSERT_STR_EQ(sonde_db_kind("VACUUM"), "other");
    ASSERT_STR_EQ(sonde_db_kind("selectx"), "other");
    ASSERT_STR_EQ(sonde_db_kind(""), "other");
    ASSERT_STR_EQ(sonde_db_kind(NULL), "other");
}
