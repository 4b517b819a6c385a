/*
 * The SQL collector's cached encodings under concurrent scrapes: three
 * threads scrape in every format (some with a name filter, which emits
 * family by family) while the query reruns 40 times over a value that only
 * grows. Every scrape holds the query's families, no Prometheus-text scrape
 * ever sees the value go backwards, and the last one shows the final value.
 * Runs under TSan in make test.
 */
#define _GNU_SOURCE /* memmem */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

TEST_MAIN()

#define RUNS 40
#define SCRAPERS 3

static char dir[64], dbpath[128];
static sonde_registry *reg;
static sonde_sql *sql;
static atomic_int stop;
static atomic_int failures;

static void exec_db(const char *q)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_AT("%s: %s", q, err ? err : "?");
    sqlite3_close(db);
}

/* The value of `conc_value{k="a"} ` in a Prometheus-text scrape; -1 when
 * absent. */
static long value_in(const char *text)
{
    const char *p = strstr(text, "\nconc_value{k=\"a\"} ");
    return p ? strtol(p + strlen("\nconc_value{k=\"a\"} "), NULL, 10) : -1;
}

static void *scraper(void *arg)
{
    int id = (int)(intptr_t)arg;
    static const char *const names[] = {"conc_value", "sonde_sql_query_success"};
    sonde_write_opts filter;
    memset(&filter, 0, sizeof filter);
    filter.names = names;
    filter.name_count = 2;
    long last = 0;
    sonde_buf b;
    sonde_buf_init(&b);
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        sonde_format f = (sonde_format)((i + (unsigned)id) % (SONDE_FORMAT_OPENMETRICS_0_0_1 + 1));
        sonde_buf_reset(&b);
        int rc = sonde_registry_write(reg, f, i % 4 == 3 ? &filter : NULL, &b);
        /* Names are plain text in every format, protobuf included. */
        if (rc != SONDE_OK || !b.data || !memmem(b.data, b.len, "conc_value", 10) ||
            !memmem(b.data, b.len, "sonde_sql_query_success", 23)) {
            fprintf(stderr, "scraper %d: format %d%s: rc %d, %zu bytes:\n%.*s\n", id, (int)f,
                    i % 4 == 3 ? " (filtered)" : "", rc, b.len, (int)b.len, b.data ? b.data : "");
            atomic_fetch_add(&failures, 1);
            continue;
        }
        if (f == SONDE_FORMAT_PROMETHEUS) {
            long v = value_in(b.data);
            if (v < last) {
                fprintf(stderr, "scraper %d: value went from %ld to %ld\n", id, last, v);
                atomic_fetch_add(&failures, 1);
            }
            last = v;
        }
    }
    sonde_buf_free(&b);
    return NULL;
}

TEST(test_sql_scrapes_in_every_format_while_the_query_reruns)
{
    sonde_logger_set_level(sonde_logger_get("sonde.sql"), SONDE_LOG_OFF);
    snprintf(dir, sizeof dir, "/tmp/sonde-sqlc-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(dbpath, sizeof dbpath, "%s/c.sqlite", dir);
    exec_db("CREATE TABLE t(k TEXT, v INTEGER); INSERT INTO t VALUES ('a', 1), ('b', 1);");

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
    static const char *const lk[] = {"k"};
    sonde_sql_metric m = {0};
    m.name = "conc_value";
    m.value_column = "v";
    m.label_columns = lk;
    m.label_count = 1;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "conc";
    q.sql = "SELECT k, v FROM t";
    q.interval_seconds = 3600;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 30000));

    pthread_t th[SCRAPERS];
    for (int i = 0; i < SCRAPERS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, scraper, (void *)(intptr_t)i), 0);
    for (int r = 0; r < RUNS; r++) {
        exec_db("UPDATE t SET v = v + 1");
        ASSERT_OK(sonde_sql_run_now(sql, NULL, 30000));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < SCRAPERS; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(atomic_load(&failures), 0);

    char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(value_in(t), 1 + RUNS);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "conc", &st));
    ASSERT(st.runs >= RUNS + 1);
    char want[64];
    snprintf(want, sizeof want, "sonde_sql_query_runs_total{query=\"conc\"} %llu\n",
             (unsigned long long)st.runs);
    ASSERT_CONTAINS(t, want);
    sonde_free(t);
    sonde_sql_destroy(sql);
    sonde_registry_destroy(reg);
    unlink(dbpath);
    rmdir(dir);
}
