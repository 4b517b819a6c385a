/*
 * The SQL collector against a real PostgreSQL started here (initdb in a
 * temp directory, loopback port; scripts/services.sh): exact series from
 * tables, statement_timeout cutting a slow query while /metrics (served by
 * sonde's HTTP server) answers from the cache, rows capped past
 * max_series, the server stopped and started again with the collector
 * reconnecting on its own, the session read-only, and the password never
 * shown. The server is stopped at exit whatever happens.
 */
#include "http_client.h"
#include "test.h"

#include <sonde.h>

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

TEST_MAIN()

static char dir[64];
static int pg_port;
static int pg_up;

static int sh(const char *fmt, ...) SONDE_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static const char *script(void)
{
    static char path[512];
    const char *src = getenv("SONDE_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/scripts/services.sh", src ? src : ".");
    return path;
}

static int free_port(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s free-port", script());
    FILE *p = popen(cmd, "r");
    int port = 0;
    if (p) {
        if (fscanf(p, "%d", &port) != 1)
            port = 0;
        pclose(p);
    }
    return port;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void stop_pg(void)
{
    if (pg_up)
        sh("%s postgres stop %s/pg", script(), dir);
    pg_up = 0;
}

static void cleanup(void)
{
    stop_pg();
    if (dir[0])
        sh("rm -rf %s", dir);
    dir[0] = '\0';
}

static void start_pg(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/sonde-sqlpg-XXXXXX");
        ASSERT(mkdtemp(dir) != NULL);
        atexit(cleanup);
        pg_port = free_port();
        ASSERT(pg_port > 0);
    }
    if (!pg_up) {
        ASSERT_EQ(sh("%s postgres start %s/pg %d", script(), dir, pg_port), 0);
        pg_up = 1;
    }
}

static char conninfo[256];

/* Run setup SQL on a writable connection of the test's own. */
static void admin(const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    ASSERT_EQ(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        TEST_FAIL_AT("setup SQL failed: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void setup_db(void)
{
    start_pg();
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=postgres user=sonde",
             pg_port);
    admin("SET client_min_messages = warning;"
          "DROP TABLE IF EXISTS scrape_runs, prices;"
          "CREATE TABLE scrape_runs(id serial, roaster text, status text,"
          "  started_at timestamptz, finished_at timestamptz);"
          "INSERT INTO scrape_runs(roaster, status, started_at, finished_at) VALUES"
          " ('blue', 'ok', '2026-01-01 10:00', '2026-01-01 10:00:30'),"
          " ('blue', 'ok', '2026-01-01 11:00', '2026-01-01 11:00:10'),"
          " ('blue', 'fail', '2026-01-01 12:00', '2026-01-01 12:01:00'),"
          " ('red', 'ok', '2026-01-01 10:00', '2026-01-01 10:00:05');"
          "CREATE TABLE prices(variant_id int, price numeric(10,2));"
          "INSERT INTO prices SELECT i, 10 + i / 100.0 FROM generate_series(1, 5000) i;");
}

static void quiet(void)
{
    sonde_logger_set_level(sonde_logger_get("sonde.sql"), SONDE_LOG_OFF);
}

static sonde_registry *reg;
static sonde_sql *sql;

static void make_collector(const char *password_file)
{
    quiet();
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_sql_opts o;
    sonde_sql_opts_init(&o);
    o.registry = reg;
    ASSERT_OK(sonde_sql_create(&o, &sql));
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "pipeline";
    d.dsn = conninfo;
    d.password_file = password_file;
    d.backoff_initial_seconds = 0.2;
    d.backoff_max_seconds = 0.5;
    d.connect_timeout_seconds = 2;
    ASSERT_OK(sonde_sql_add_database(sql, &d));
}

static void destroy_collector(void)
{
    sonde_sql_destroy(sql);
    sql = NULL;
    sonde_registry_destroy(reg);
    reg = NULL;
}

static void wait_runs(const char *name, uint64_t n)
{
    sonde_sql_query_stats st;
    for (int i = 0; i < 4000; i++) {
        ASSERT_OK(sonde_sql_get_query_stats(sql, name, &st));
        if (st.runs >= n)
            return;
        sleep_ms(5);
    }
    TEST_FAIL_AT("query %s: %llu runs, want %llu", name, (unsigned long long)st.runs,
                 (unsigned long long)n);
}

static char *render(void)
{
    char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(t != NULL);
    return t;
}

static const char *status_labels[] = {"roaster", "status"};
static const char *job_const[] = {"job_kind", "scrape"};

static void add_runs_query(double timeout)
{
    sonde_sql_metric m[2] = {{0}};
    m[0].name = "pipeline_runs";
    m[0].help = "Scrape runs by roaster and status";
    m[0].value_column = "run_count";
    m[0].label_columns = status_labels;
    m[0].label_count = 2;
    m[0].const_labels = job_const;
    m[0].const_label_count = 1;
    m[1].name = "pipeline_run_avg_duration_seconds";
    m[1].help = "Average run duration";
    m[1].value_column = "avg_duration";
    m[1].label_columns = status_labels;
    m[1].label_count = 2;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "runs";
    q.sql = "SELECT roaster, status, COUNT(*) AS run_count,"
            " AVG(EXTRACT(EPOCH FROM (finished_at - started_at))) AS avg_duration"
            " FROM scrape_runs GROUP BY roaster, status ORDER BY roaster, status";
    q.interval_seconds = 3600;
    q.timeout_seconds = timeout;
    q.metrics = m;
    q.metric_count = 2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
}

TEST(test_sql_postgres_exports_exact_values_and_labels)
{
    setup_db();
    char pwfile[128];
    snprintf(pwfile, sizeof pwfile, "%s/pgpass", dir);
    FILE *f = fopen(pwfile, "w");
    ASSERT(f != NULL);
    fputs("hunter2-not-shown\n", f);
    fclose(f);
    make_collector(pwfile);
    add_runs_query(5);
    sonde_sql_metric pm = {0};
    pm.name = "pipeline_price_changes";
    pm.value_column = "price_changes";
    sonde_sql_metric pm2 = {0};
    sonde_sql_metric both[2];
    pm2.name = "pipeline_avg_price";
    pm2.value_column = "avg_price";
    both[0] = pm;
    both[1] = pm2;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "prices";
    q.sql = "SELECT COUNT(*) AS price_changes, AVG(price) AS avg_price FROM prices";
    q.interval_seconds = 3600;
    q.metrics = both;
    q.metric_count = 2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("runs", 1);
    wait_runs("prices", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "# HELP pipeline_runs Scrape runs by roaster and status\n"
                       "# TYPE pipeline_runs gauge\n"
                       "pipeline_runs{roaster=\"blue\",status=\"fail\",job_kind=\"scrape\"} 1\n"
                       "pipeline_runs{roaster=\"blue\",status=\"ok\",job_kind=\"scrape\"} 2\n"
                       "pipeline_runs{roaster=\"red\",status=\"ok\",job_kind=\"scrape\"} 1\n");
    ASSERT_CONTAINS(t, "pipeline_run_avg_duration_seconds{roaster=\"blue\",status=\"fail\"} 60\n"
                       "pipeline_run_avg_duration_seconds{roaster=\"blue\",status=\"ok\"} 20\n"
                       "pipeline_run_avg_duration_seconds{roaster=\"red\",status=\"ok\"} 5\n");
    ASSERT_CONTAINS(t, "pipeline_price_changes 5000\n");
    ASSERT_CONTAINS(t, "pipeline_avg_price 35.005\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"runs\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_sql_database_up{database=\"pipeline\"} 1\n");
    ASSERT_NOT_CONTAINS(t, "hunter2");
    sonde_free(t);
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde_sql_write_json(sql, &b));
    ASSERT_NOT_CONTAINS(b.data, "hunter2");
    ASSERT_CONTAINS(b.data, "\"driver\":\"postgres\"");
    sonde_buf_free(&b);
    destroy_collector();
}

TEST(test_sql_postgres_session_is_read_only)
{
    setup_db();
    make_collector(NULL);
    sonde_sql_metric m = {0};
    m.name = "sneaky_value";
    m.value_column = "id";
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "write";
    q.sql = "DELETE FROM scrape_runs RETURNING id";
    q.interval_seconds = 3600;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("write", 1);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "write", &st));
    ASSERT_U64_EQ(st.errors_query, 1);
    ASSERT_CONTAINS(st.last_error, "read-only transaction");
    destroy_collector();
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQexec(c, "SELECT count(*) FROM scrape_runs");
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "4");
    PQclear(r);
    PQfinish(c);
}

TEST(test_sql_postgres_timeout_is_cut_while_metrics_answer_from_cache)
{
    setup_db();
    make_collector(NULL);
    add_runs_query(5);
    sonde_sql_metric m = {0};
    m.name = "slow_value";
    m.value_column = "v";
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "slow";
    q.sql = "SELECT 1 AS v FROM pg_sleep(30)";
    q.interval_seconds = 3600;
    q.timeout_seconds = 2;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));

    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    so.registry = reg;
    ASSERT_OK(sonde_start(&so));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("runs", 1);
    /* The first run of "slow" is in progress or about to be. */
    sonde_sql_query_stats st;
    for (int i = 0; i < 2000; i++) {
        ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
        if (st.running)
            break;
        sleep_ms(5);
    }
    ASSERT_EQ(st.running, 1);
    char url[128];
    url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), "/metrics");
    http_resp r = http_get(url);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "pipeline_runs{roaster=\"red\",status=\"ok\",job_kind=\"scrape\"} 1\n");
    http_free(&r);
    /* /metrics answered while the slow statement was still on the server. */
    ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
    ASSERT_EQ(st.running, 1);
    ASSERT_U64_EQ(st.runs, 0);

    wait_runs("slow", 1);
    ASSERT_OK(sonde_sql_get_query_stats(sql, "slow", &st));
    ASSERT_U64_EQ(st.errors_timeout, 1);
    ASSERT_CONTAINS(st.last_error, "statement timeout");
    ASSERT(st.last_duration_seconds >= 1.9 && st.last_duration_seconds < 10);
    r = http_get(url);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "sonde_sql_query_errors_total{query=\"slow\",reason=\"timeout\"} 1\n");
    ASSERT_CONTAINS(r.body, "sonde_sql_query_success{query=\"slow\"} 0\n");
    ASSERT_NOT_CONTAINS(r.body, "slow_value");
    http_free(&r);
    /* The connection is still good for the other query. */
    ASSERT_OK(sonde_sql_run_now(sql, "runs", 10000));
    ASSERT_OK(sonde_sql_get_query_stats(sql, "runs", &st));
    ASSERT_EQ(st.last_success, 1);
    sonde_stop();
    destroy_collector();
}

TEST(test_sql_postgres_caps_rows_past_max_series)
{
    setup_db();
    make_collector(NULL);
    const char *labels[] = {"variant_id"};
    sonde_sql_metric m = {0};
    m.name = "variant_price";
    m.value_column = "price";
    m.label_columns = labels;
    m.label_count = 1;
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "variants";
    q.sql = "SELECT variant_id, price FROM prices ORDER BY variant_id";
    q.interval_seconds = 3600;
    q.max_series = 100;
    q.metrics = &m;
    q.metric_count = 1;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("variants", 1);
    char *t = render();
    ASSERT_CONTAINS(t, "variant_price{variant_id=\"100\"} 11\n");
    ASSERT_NOT_CONTAINS(t, "variant_price{variant_id=\"101\"}");
    ASSERT_CONTAINS(t, "sonde_sql_query_series{query=\"variants\"} 100\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_series_dropped_total{query=\"variants\"} 4900\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"variants\"} 1\n");
    sonde_free(t);
    destroy_collector();
}

TEST(test_sql_postgres_recovers_after_the_server_restarts)
{
    setup_db();
    make_collector(NULL);
    add_runs_query(5);
    ASSERT_OK(sonde_sql_start(sql));
    wait_runs("runs", 1);
    sonde_sql_query_stats st;
    ASSERT_OK(sonde_sql_get_query_stats(sql, "runs", &st));
    ASSERT_EQ(st.last_success, 1);

    stop_pg();
    ASSERT_OK(sonde_sql_run_now(sql, "runs", 20000));
    ASSERT_OK(sonde_sql_get_query_stats(sql, "runs", &st));
    ASSERT_EQ(st.last_success, 0);
    ASSERT(st.errors_connect >= 1);
    char *t = render();
    ASSERT_CONTAINS(t, "sonde_sql_database_up{database=\"pipeline\"} 0\n");
    ASSERT_CONTAINS(t, "sonde_sql_query_success{query=\"runs\"} 0\n");
    sonde_free(t);
    /* A few more failing runs: the backoff spaces the connection attempts. */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(sonde_sql_run_now(sql, "runs", 20000));

    start_pg();
    /* Nobody calls anything but run_now: the collector reconnects by
     * itself once the backoff (at most 0.5 s here) has passed. */
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(sonde_sql_run_now(sql, "runs", 20000));
        ASSERT_OK(sonde_sql_get_query_stats(sql, "runs", &st));
        if (st.last_success)
            break;
        sleep_ms(100);
    }
    ASSERT_EQ(st.last_success, 1);
    t = render();
    ASSERT_CONTAINS(t, "sonde_sql_database_up{database=\"pipeline\"} 1\n");
    ASSERT_CONTAINS(t, "pipeline_runs{roaster=\"blue\",status=\"ok\",job_kind=\"scrape\"} 2\n");
    ASSERT_CONTAINS(
        t, "sonde_sql_database_connects_total{database=\"pipeline\",result=\"success\"} 2\n");
    sonde_free(t);
    destroy_collector();
}

/* The application's libpq wrapper: a begin/end pair per statement, with
 * the server's statement timeout reported as a timeout. */
static int app_pg_exec(sonde_db *d, PGconn *c, const char *q)
{
    sonde_db_call call;
    sonde_db_begin(d, &call, NULL, q);
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    sonde_db_result res = ok                                   ? SONDE_DB_OK
                          : code && strcmp(code, "57014") == 0 ? SONDE_DB_TIMEOUT
                                                               : SONDE_DB_ERROR;
    sonde_db_end(&call, res, ok ? NULL : PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

TEST(test_db_instrumentation_counts_libpq_calls_and_captures_failures)
{
    setup_db();
    quiet();
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
    o.name = "pipeline";
    o.errors = errs;
    sonde_db *d = NULL;
    ASSERT_OK(sonde_db_create(&o, &d));
    PGconn *c = PQconnectdb(conninfo);
    ASSERT_EQ(PQstatus(c), CONNECTION_OK);
    {
        SONDE_LOG_REQUEST_CONTEXT("job-7", sonde_field_strn("job", "prices", SONDE_FIELD_NTS));
        ASSERT_EQ(app_pg_exec(d, c, "BEGIN"), 0);
        ASSERT_EQ(app_pg_exec(d, c, "INSERT INTO prices VALUES (9001, 1.5)"), 0);
        ASSERT_EQ(app_pg_exec(d, c, "COMMIT"), 0);
        ASSERT_EQ(app_pg_exec(d, c, "SELECT count(*) FROM prices"), 0);
        ASSERT_EQ(app_pg_exec(d, c, "SELECT * FROM missing_table"), -1);
        ASSERT_EQ(app_pg_exec(d, c, "SET statement_timeout = 200"), 0);
        ASSERT_EQ(app_pg_exec(d, c, "SELECT pg_sleep(5)"), -1);
    }
    PQfinish(c);
    sonde_db_pool_set(d, 1, 0);
    char *t = render();
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"pipeline\",kind=\"begin\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"pipeline\",kind=\"insert\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"pipeline\",kind=\"commit\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"pipeline\",kind=\"select\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t,
                    "sonde_db_queries_total{db=\"pipeline\",kind=\"select\",result=\"error\"} 1\n");
    ASSERT_CONTAINS(
        t, "sonde_db_queries_total{db=\"pipeline\",kind=\"select\",result=\"timeout\"} 1\n");
    ASSERT_CONTAINS(t, "sonde_db_queries_total{db=\"pipeline\",kind=\"other\",result=\"ok\"} 1\n");
    ASSERT_CONTAINS(t,
                    "sonde_db_query_duration_seconds_count{db=\"pipeline\",kind=\"select\"} 3\n");
    ASSERT_CONTAINS(t, "sonde_db_pool_connections{db=\"pipeline\",state=\"in_use\"} 1\n");
    sonde_free(t);
    sonde_errors_process(errs);
    sonde_error_group *g = NULL;
    size_t n = 0;
    ASSERT_OK(sonde_errors_get_groups(errs, NULL, &g, &n));
    ASSERT_EQ(n, 2);
    int seen_timeout = 0, seen_error = 0;
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(g[i].correlation_id, "job-7");
        ASSERT_STR_EQ(g[i].operation, "db.select");
        if (strcmp(g[i].type, "DatabaseTimeout") == 0) {
            seen_timeout = 1;
            ASSERT_CONTAINS(g[i].message, "statement timeout");
        } else if (strcmp(g[i].type, "DatabaseError") == 0) {
            seen_error = 1;
            ASSERT_CONTAINS(g[i].message, "missing_table");
        }
    }
    ASSERT(seen_timeout && seen_error);
    sonde_free(g);
    sonde_db_destroy(d);
    sonde_errors_destroy(errs);
    sonde_registry_destroy(reg);
    reg = NULL;
}
