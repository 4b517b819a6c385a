/*
 * The same SQL through Debian's prometheus-sql-exporter and through
 * sonde's collector, against one real PostgreSQL started here: the series
 * must be the same, value for value.
 *
 * The exporter names every series sql_<query> and puts the value column
 * in a "col" label, adding its connection labels (driver, host, database,
 * user, sql_job). sonde gives each value column its own metric, named
 * here sql_<query>_<column>. The comparison maps one onto the other and
 * drops the exporter's connection labels; everything else (label names
 * and values, sample values, the set of series) must be equal.
 */
#include "http_client.h"
#include "proc.h"
#include "test.h"

#include <sonde.h>

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

TEST_MAIN()

static char dir[64];
static int pg_port;
static int pg_up;
static pid_t exporter = -1;

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

static void cleanup(void)
{
    if (exporter > 0)
        proc_stop(exporter);
    exporter = -1;
    if (pg_up)
        sh("%s postgres stop %s/pg", script(), dir);
    pg_up = 0;
    if (dir[0])
        sh("rm -rf %s", dir);
    dir[0] = '\0';
}

/* The queries both sides run, byte for byte. */
static const char runs_sql[] =
    "SELECT roaster, status, COUNT(*) AS run_count,"
    " AVG(EXTRACT(EPOCH FROM (finished_at - started_at)))::float8 AS avg_duration"
    " FROM scrape_runs GROUP BY roaster, status";
static const char prices_sql[] = "SELECT COUNT(*) AS price_changes, AVG(price)::float8 AS "
                                 "avg_price, COUNT(DISTINCT variant_id) AS variants_updated"
                                 " FROM prices";

/* One sample as "name{k="v",...} value" with the labels sorted and the
 * value printed as %.17g; exporter connection labels dropped and its col
 * label folded into the name. Returns false for lines to skip. */
static bool normalise(const char *line, char *out, size_t n, bool from_exporter)
{
    char name[128], labels[16][2][128];
    size_t nl = 0, i = 0;
    while (line[i] && line[i] != '{' && line[i] != ' ' && i < sizeof name - 1) {
        name[i] = line[i];
        i++;
    }
    name[i] = '\0';
    if (strncmp(name, "sql_", 4) != 0 || strncmp(name, "sql_exporter_", 13) == 0)
        return false;
    const char *p = line + i;
    char col[128] = "";
    if (*p == '{') {
        p++;
        while (*p && *p != '}') {
            size_t k = 0;
            char key[128], val[128];
            while (*p && *p != '=' && k < sizeof key - 1)
                key[k++] = *p++;
            key[k] = '\0';
            if (*p != '=' || p[1] != '"')
                return false;
            p += 2;
            k = 0;
            while (*p && *p != '"' && k < sizeof val - 1) {
                if (*p == '\\' && p[1])
                    p++;
                val[k++] = *p++;
            }
            val[k] = '\0';
            if (*p != '"')
                return false;
            p++;
            if (*p == ',')
                p++;
            if (from_exporter &&
                (!strcmp(key, "driver") || !strcmp(key, "host") || !strcmp(key, "database") ||
                 !strcmp(key, "user") || !strcmp(key, "sql_job")))
                continue;
            if (from_exporter && !strcmp(key, "col")) {
                snprintf(col, sizeof col, "%s", val);
                continue;
            }
            if (nl < 16) {
                snprintf(labels[nl][0], 128, "%s", key);
                snprintf(labels[nl][1], 128, "%s", val);
                nl++;
            }
        }
        if (*p == '}')
            p++;
    }
    while (*p == ' ')
        p++;
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p)
        return false;
    /* sort labels by name */
    for (size_t a = 1; a < nl; a++)
        for (size_t b = a; b > 0 && strcmp(labels[b - 1][0], labels[b][0]) > 0; b--) {
            char t[2][128];
            memcpy(t, labels[b], sizeof t);
            memcpy(labels[b], labels[b - 1], sizeof t);
            memcpy(labels[b - 1], t, sizeof t);
        }
    int w = snprintf(out, n, "%s%s%s{", name, col[0] ? "_" : "", col);
    for (size_t a = 0; a < nl && w > 0 && (size_t)w < n; a++)
        w += snprintf(out + w, n - (size_t)w, "%s%s=\"%s\"", a ? "," : "", labels[a][0],
                      labels[a][1]);
    if (w > 0 && (size_t)w < n)
        snprintf(out + w, n - (size_t)w, "} %.17g", v);
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Normalised, sorted samples of an exposition; returns the count. */
static size_t collect(const char *text, bool from_exporter, char **out, size_t max)
{
    size_t n = 0;
    const char *p = text;
    while (p && *p && n < max) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        if (len < sizeof line && *p != '#') {
            memcpy(line, p, len);
            line[len] = '\0';
            char norm[1024];
            if (normalise(line, norm, sizeof norm, from_exporter))
                out[n++] = strdup(norm);
        }
        p = e ? e + 1 : NULL;
    }
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

static const char *run_labels[] = {"roaster", "status"};

TEST(test_sql_series_match_prometheus_sql_exporter)
{
    snprintf(dir, sizeof dir, "/tmp/sonde-sqlexp-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    atexit(cleanup);
    pg_port = proc_free_port();
    ASSERT(pg_port > 0);
    ASSERT_EQ(sh("%s postgres start %s/pg %d", script(), dir, pg_port), 0);
    pg_up = 1;
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=postgres user=sonde",
             pg_port);
    PGconn *c = PQconnectdb(conninfo);
    ASSERT_EQ(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(
        c, "CREATE TABLE scrape_runs(roaster text, status text, started_at timestamptz,"
           " finished_at timestamptz);"
           "INSERT INTO scrape_runs VALUES"
           " ('blue', 'ok', '2026-01-01 10:00', '2026-01-01 10:00:30'),"
           " ('blue', 'ok', '2026-01-01 11:00', '2026-01-01 11:00:10'),"
           " ('blue', 'fail', '2026-01-01 12:00', '2026-01-01 12:01:00'),"
           " ('red', 'ok', '2026-01-01 10:00', '2026-01-01 10:00:05'),"
           " ('green', 'timeout', '2026-01-01 10:00', '2026-01-01 10:00:02.5');"
           "CREATE TABLE prices(variant_id int, price numeric(10,2));"
           "INSERT INTO prices SELECT i % 700, 10 + i / 100.0 FROM generate_series(1, 3000) i;");
    ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);

    /* The exporter, on loopback, running both queries every second. */
    char cfg[160];
    snprintf(cfg, sizeof cfg, "%s/sql_exporter.yml", dir);
    FILE *f = fopen(cfg, "w");
    ASSERT(f != NULL);
    fprintf(f,
            "jobs:\n"
            "- name: pipeline\n"
            "  interval: '1s'\n"
            "  connections:\n"
            "  - 'postgres://sonde@127.0.0.1:%d/postgres?sslmode=disable'\n"
            "  queries:\n"
            "  - name: runs\n"
            "    help: Scrape runs\n"
            "    labels: [roaster, status]\n"
            "    values: [run_count, avg_duration]\n"
            "    query: \"%s\"\n"
            "  - name: prices\n"
            "    help: Price changes\n"
            "    values: [price_changes, avg_price, variants_updated]\n"
            "    query: \"%s\"\n",
            pg_port, runs_sql, prices_sql);
    fclose(f);
    int port = proc_free_port();
    char listen[64], log[160];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/sql_exporter.log", dir);
    /* It logs on stdout and stderr: both into its log file. */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "exec prometheus-sql-exporter -config.file %s -web.listen-address %s >%s 2>&1", cfg,
             listen, log);
    char *argv[] = {"sh", "-c", cmd, NULL};
    exporter = proc_spawn(argv, NULL, NULL);
    ASSERT(exporter > 0);
    char url[128];
    snprintf(url, sizeof url, "http://%s/metrics", listen);
    char *exp_text = NULL;
    for (int i = 0; i < 300 && !exp_text; i++) {
        http_resp hr = http_get(url);
        if (hr.status == 200 && strstr(hr.body, "sql_runs{") && strstr(hr.body, "sql_prices{"))
            exp_text = strdup(hr.body);
        http_free(&hr);
        if (!exp_text)
            proc_sleep_ms(100);
    }
    if (!exp_text) {
        sh("cat %s >&2", log);
        TEST_FAIL_AT("prometheus-sql-exporter gave no sql_ series");
    }

    /* sonde, with the same SQL: one metric per value column. */
    sonde_logger_set_level(sonde_logger_get("sonde.sql"), SONDE_LOG_OFF);
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_sql_opts so;
    sonde_sql_opts_init(&so);
    so.registry = reg;
    sonde_sql *sql = NULL;
    ASSERT_OK(sonde_sql_create(&so, &sql));
    sonde_sql_db_opts d;
    sonde_sql_db_opts_init(&d);
    d.name = "pipeline";
    d.dsn = conninfo;
    ASSERT_OK(sonde_sql_add_database(sql, &d));
    sonde_sql_metric rm[2] = {{0}};
    rm[0].name = "sql_runs_run_count";
    rm[0].value_column = "run_count";
    rm[1].name = "sql_runs_avg_duration";
    rm[1].value_column = "avg_duration";
    for (int i = 0; i < 2; i++) {
        rm[i].label_columns = run_labels;
        rm[i].label_count = 2;
    }
    sonde_sql_query_opts q;
    sonde_sql_query_opts_init(&q);
    q.name = "runs";
    q.sql = runs_sql;
    q.interval_seconds = 3600;
    q.metrics = rm;
    q.metric_count = 2;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    sonde_sql_metric pm[3] = {{0}};
    pm[0].name = "sql_prices_price_changes";
    pm[0].value_column = "price_changes";
    pm[1].name = "sql_prices_avg_price";
    pm[1].value_column = "avg_price";
    pm[2].name = "sql_prices_variants_updated";
    pm[2].value_column = "variants_updated";
    q.name = "prices";
    q.sql = prices_sql;
    q.metrics = pm;
    q.metric_count = 3;
    ASSERT_OK(sonde_sql_add_query(sql, &q));
    ASSERT_OK(sonde_sql_start(sql));
    ASSERT_OK(sonde_sql_run_now(sql, NULL, 20000));
    char *mine = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(mine != NULL);

    char *a[64], *b[64];
    size_t na = collect(exp_text, true, a, 64), nb = collect(mine, false, b, 64);
    bool same = na == nb && na > 0;
    for (size_t i = 0; same && i < na; i++)
        same = strcmp(a[i], b[i]) == 0;
    if (!same) {
        fprintf(stderr, "  prometheus-sql-exporter (%zu):\n", na);
        for (size_t i = 0; i < na; i++)
            fprintf(stderr, "    %s\n", a[i]);
        fprintf(stderr, "  sonde (%zu):\n", nb);
        for (size_t i = 0; i < nb; i++)
            fprintf(stderr, "    %s\n", b[i]);
    }
    ASSERT(same);
    /* 4 status groups x 2 values + 3 price figures. */
    ASSERT_EQ(na, 11);
    for (size_t i = 0; i < na; i++)
        free(a[i]);
    for (size_t i = 0; i < nb; i++)
        free(b[i]);
    free(exp_text);
    sonde_free(mine);
    sonde_sql_destroy(sql);
    sonde_registry_destroy(reg);
}
