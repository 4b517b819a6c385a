/*
 * The SQL collector: databases, queries, executors and the cached
 * snapshots a scrape serves.
 *
 * Threads and locks:
 *  - the runtime worker runs one timer per query; its callback only marks
 *    the query due under the database's mutex and signals the executor;
 *  - one executor thread per database takes due queries one at a time and
 *    runs them on the database's connection without holding any lock; it
 *    builds the new snapshot privately and takes snap_lock (write) only to
 *    swap the query's snapshot pointer and copy its last error;
 *  - scrapes take snap_lock (read) while copying the snapshots, so they
 *    never wait for a query: at worst for a pointer swap.
 * Counters read by scrapes are atomics written by the executor.
 *
 * Scrape cost: a snapshot is encoded once per exposition format (Prometheus
 * text and OpenMetrics by the executor when the run finishes, the others by
 * the first scrape that asks) and every scrape copies the bytes. The
 * self-metrics change only when a run finishes, so they are encoded once
 * per change (self_gen) and per format, under cache_mu. Scrapes with a name
 * filter, and the remote writer's structured walk, emit family by family.
 */
#include "sql/sql_int.h"

#include "metrics/metrics_int.h"
#include "core/worker.h"
#include "expose/visit.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_METRICS 64
#define DEFAULT_INTERVAL_S 60.0
#define DEFAULT_TIMEOUT_S 10.0
#define DEFAULT_MAX_SERIES 1000
#define DEFAULT_CONNECT_TIMEOUT_S 5.0
#define DEFAULT_BACKOFF_S 0.5
#define DEFAULT_BACKOFF_MAX_S 30.0

static const char *const reason_names[SQLR_NREASONS] = {"connect", "timeout",   "query",  "column",
                                                        "value",   "duplicate", "stopped"};
#define NCOUNTED 6 /* reasons exported: connect .. duplicate */

typedef struct metric_def {
    char *name, *help, *value_col;
    sonde_metric_type type;
    char **label_cols;
    size_t nlabels;
    char **const_kv; /* 2 * nconst */
    size_t nconst;
    /* Column indexes, resolved when a run's columns are known. */
    int value_idx;
    int label_idx[SONDE_MAX_LABELS];
} metric_def;

typedef struct sample {
    double v;
    uint32_t off; /* label values in the arena, NUL-separated */
} sample;

/* Exposition formats a collector's output is cached for. */
#define NFMT (SONDE_FORMAT_OPENMETRICS_0_0_1 + 1)

/* Bytes of one snapshot in one format, as sonde__emit_render wrote them. */
typedef struct enc_block {
    size_t len;
    char data[];
} enc_block;

typedef struct snapshot {
    uint64_t mono_ns; /* when the run that made it finished */
    size_t series;
    size_t *count;    /* per metric */
    sample **samples; /* per metric */
    char *arena;
    /* Encoded once per format (NULL: not yet); set by compare-and-swap. */
    _Atomic(enc_block *) enc[NFMT];
} snapshot;

/* The self-metrics of every query, encoded in one format. */
typedef struct self_cache {
    bool valid;
    uint64_t gen;             /* sonde_sql.self_gen it was encoded at */
    unsigned char stale[256]; /* the staleness it was encoded with */
    sonde_buf buf;
} self_cache;

typedef struct database database;

typedef struct query {
    sonde_sql *sql;
    database *db;
    char *name, *text;
    double interval_s, timeout_s, max_age_s;
    size_t max_series;
    metric_def *metrics;
    size_t nmetrics;
    uint64_t timer_id;
    /* Scheduling, under db->mu. */
    int due;
    uint64_t started_gen, done_gen;
    /* Published state. */
    atomic_uint_fast64_t runs, successes, dropped;
    atomic_uint_fast64_t errors[NCOUNTED];
    atomic_uint_fast64_t last_duration_bits, last_success_bits, series;
    atomic_int last_ok, running, ever_ran;
    /* Under sql->snap_lock. */
    snapshot *snap;
    char last_error[256];
} query;

struct database {
    sonde_sql *sql;
    char *name, *dsn, *password, *masked;
    int driver;
    const sql_driver *drv;
    double connect_timeout_s, backoff_initial_s, backoff_max_s, backoff_s;
    uint64_t next_connect_ns;
    char connect_error[256];
    sql_conn *conn;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    atomic_int stop, up, failing_logged;
    atomic_uint_fast64_t connects_ok, connects_fail;
    query **queries;
    size_t nqueries;
    size_t next_pick;
};

struct sonde_sql {
    sonde_registry *reg;
    char *collector;
    sonde_logger *log;
    database **dbs;
    size_t ndbs;
    query **queries;
    size_t nqueries;
    pthread_rwlock_t snap_lock;
    bool started, runtime_ref;
    /* Bumped after anything the self-metrics show has changed. */
    atomic_uint_fast64_t self_gen;
    pthread_mutex_t cache_mu;
    self_cache self[NFMT];
};

/* ---- small helpers ---- */

static uint64_t dbl_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double bits_dbl(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static bool valid_ident(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        sonde__free(v[i]);
    sonde__free(v);
}

static char **dup_strv(const char *const *v, size_t n, bool *ok)
{
    *ok = true;
    if (n == 0)
        return NULL;
    char **out = sonde__calloc(n, sizeof *out);
    if (!out) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = sonde__strdup(v[i] ? v[i] : "");
        if (!out[i]) {
            free_strv(out, n);
            *ok = false;
            return NULL;
        }
    }
    return out;
}

static void snapshot_free(snapshot *s)
{
    if (!s)
        return;
    sonde__free(s->count);
    if (s->samples) {
        /* samples[0] owns the one allocation of every metric's samples */
        sonde__free(s->samples[0]);
    }
    sonde__free(s->samples);
    sonde__free(s->arena);
    for (int f = 0; f < NFMT; f++)
        sonde__free(atomic_load(&s->enc[f]));
    sonde__free(s);
}

/* ---- options ---- */

void sonde_sql_opts_init(sonde_sql_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

void sonde_sql_db_opts_init(sonde_sql_db_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

void sonde_sql_query_opts_init(sonde_sql_query_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

/* ---- create / destroy ---- */

int sonde_sql_create(const sonde_sql_opts *opts, sonde_sql **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_sql *s = sonde__calloc(1, sizeof *s);
    if (!s)
        return SONDE_ENOMEM;
    s->reg = opts && opts->registry ? opts->registry : sonde_registry_default();
    s->collector = sonde__strdup(opts && opts->collector_name ? opts->collector_name : "sonde_sql");
    s->log = opts && opts->logger ? opts->logger : sonde_logger_get("sonde.sql");
    if (!s->collector || pthread_rwlock_init(&s->snap_lock, NULL) != 0) {
        sonde__free(s->collector);
        sonde__free(s);
        return SONDE_ENOMEM;
    }
    if (pthread_mutex_init(&s->cache_mu, NULL) != 0) {
        pthread_rwlock_destroy(&s->snap_lock);
        sonde__free(s->collector);
        sonde__free(s);
        return SONDE_ENOMEM;
    }
    for (int f = 0; f < NFMT; f++)
        sonde_buf_init(&s->self[f].buf);
    *out = s;
    return SONDE_OK;
}

static void metric_free(metric_def *m)
{
    sonde__free(m->name);
    sonde__free(m->help);
    sonde__free(m->value_col);
    free_strv(m->label_cols, m->nlabels);
    free_strv(m->const_kv, 2 * m->nconst);
}

static void query_free(query *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nmetrics; i++)
        metric_free(&q->metrics[i]);
    sonde__free(q->metrics);
    sonde__free(q->name);
    sonde__free(q->text);
    snapshot_free(q->snap);
    sonde__free(q);
}

static void wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        sonde__free(s);
    }
}

static void database_free(database *d)
{
    if (!d)
        return;
    sonde__free(d->name);
    wipe_free(d->dsn);
    wipe_free(d->password);
    sonde__free(d->masked);
    sonde__free(d->queries);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->done_cv);
    sonde__free(d);
}

void sonde_sql_destroy(sonde_sql *s)
{
    if (!s)
        return;
    sonde_sql_stop(s);
    for (size_t i = 0; i < s->nqueries; i++)
        query_free(s->queries[i]);
    for (size_t i = 0; i < s->ndbs; i++)
        database_free(s->dbs[i]);
    sonde__free(s->queries);
    sonde__free(s->dbs);
    pthread_rwlock_destroy(&s->snap_lock);
    pthread_mutex_destroy(&s->cache_mu);
    for (int f = 0; f < NFMT; f++)
        sonde_buf_free(&s->self[f].buf);
    sonde__free(s->collector);
    sonde__free(s);
}

/* ---- databases ---- */

static database *find_db(sonde_sql *s, const char *name)
{
    for (size_t i = 0; i < s->ndbs; i++)
        if (strcmp(s->dbs[i]->name, name) == 0)
            return s->dbs[i];
    return NULL;
}

static int guess_driver(const char *dsn)
{
    if (strncasecmp(dsn, "postgres://", 11) == 0 || strncasecmp(dsn, "postgresql://", 13) == 0)
        return SONDE_SQL_POSTGRES;
    /* keyword=value: a word, optional spaces, '=' */
    const char *p = dsn;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *k = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')
        p++;
    if (p > k) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '=')
            return SONDE_SQL_POSTGRES;
    }
    return SONDE_SQL_SQLITE;
}

int sonde_sql_add_database(sonde_sql *s, const sonde_sql_db_opts *o)
{
    sonde__clear_error();
    if (!s || !o)
        return SONDE_EINVAL;
    if (s->started) {
        sonde__set_error("sql: databases are added before sonde_sql_start");
        return SONDE_ESTATE;
    }
    if (!valid_ident(o->name)) {
        sonde__set_error("sql: database name \"%s\" must be 1 to 63 bytes of [A-Za-z0-9_.-]",
                         o->name ? o->name : "");
        return SONDE_EINVAL;
    }
    if (find_db(s, o->name)) {
        sonde__set_error("sql: database \"%s\" is already defined", o->name);
        return SONDE_ECONFLICT;
    }
    if (o->driver != SONDE_SQL_AUTO && o->driver != SONDE_SQL_SQLITE &&
        o->driver != SONDE_SQL_POSTGRES) {
        sonde__set_error("sql: database \"%s\": unknown driver %d", o->name, (int)o->driver);
        return SONDE_EINVAL;
    }
    double ct = o->connect_timeout_seconds, bi = o->backoff_initial_seconds,
           bm = o->backoff_max_seconds;
    if (!(ct >= 0 && ct <= 300) || !(bi >= 0 && bi <= 3600) || !(bm >= 0 && bm <= 86400)) {
        sonde__set_error("sql: database \"%s\": connect_timeout must be 0 to 300 s, backoff 0 to "
                         "3600 s, backoff_max 0 to 86400 s",
                         o->name);
        return SONDE_EINVAL;
    }
    char why[400], what[96];
    snprintf(what, sizeof what, "database \"%s\": dsn", o->name);
    char *dsn = NULL, *pw = NULL;
    int rc = sonde__sql_secret(what, o->dsn, o->dsn_file, o->dsn_env, true, &dsn, why, sizeof why);
    if (rc == SONDE_OK) {
        snprintf(what, sizeof what, "database \"%s\": password", o->name);
        rc = sonde__sql_secret(what, o->password, o->password_file, o->password_env, false, &pw,
                               why, sizeof why);
    }
    if (rc != SONDE_OK) {
        sonde__set_error("sql: %s", why);
        wipe_free(dsn);
        return rc;
    }
    database *d = sonde__calloc(1, sizeof *d);
    database **grown = d ? sonde__realloc(s->dbs, (s->ndbs + 1) * sizeof *grown) : NULL;
    if (!grown) {
        sonde__free(d);
        wipe_free(dsn);
        wipe_free(pw);
        return SONDE_ENOMEM;
    }
    s->dbs = grown;
    d->sql = s;
    d->dsn = dsn;
    d->password = pw;
    d->name = sonde__strdup(o->name);
    d->driver = o->driver == SONDE_SQL_AUTO ? guess_driver(dsn) : (int)o->driver;
    d->drv = d->driver == SONDE_SQL_POSTGRES ? &sonde__sql_pg : &sonde__sql_sqlite;
    d->connect_timeout_s = ct > 0 ? ct : DEFAULT_CONNECT_TIMEOUT_S;
    d->backoff_initial_s = bi > 0 ? bi : DEFAULT_BACKOFF_S;
    d->backoff_max_s = bm > 0 ? bm : DEFAULT_BACKOFF_MAX_S;
    if (d->backoff_max_s < d->backoff_initial_s)
        d->backoff_max_s = d->backoff_initial_s;
    d->backoff_s = d->backoff_initial_s;
    sonde_buf mb;
    sonde_buf_init(&mb);
    if (sonde_sql_mask_dsn(dsn, strlen(dsn), &mb) >= 0 && mb.data)
        d->masked = sonde__strdup(mb.data);
    sonde_buf_free(&mb);
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_cond_init(&d->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->dbs[s->ndbs++] = d;
    if (!d->name || !d->masked)
        return SONDE_ENOMEM; /* freed with the collector */
    return SONDE_OK;
}

/* ---- queries ---- */

static bool metric_name_taken(sonde_sql *s, const char *name)
{
    for (size_t i = 0; i < s->nqueries; i++)
        for (size_t j = 0; j < s->queries[i]->nmetrics; j++)
            if (strcmp(s->queries[i]->metrics[j].name, name) == 0)
                return true;
    return false;
}

static int check_metric(sonde_sql *s, const char *qname, const sonde_sql_metric *m,
                        const sonde_sql_metric *all, size_t idx)
{
    if (!m->name || !sonde__valid_metric_name(m->name)) {
        sonde__set_error("sql: query \"%s\": metric %zu: invalid metric name \"%s\"", qname,
                         idx + 1, m->name ? m->name : "");
        return SONDE_EBADNAME;
    }
    if (strncmp(m->name, "sonde_sql_", 10) == 0) {
        sonde__set_error("sql: query \"%s\": metric \"%s\": the sonde_sql_ prefix is reserved",
                         qname, m->name);
        return SONDE_EBADNAME;
    }
    if (m->type != 0 && m->type != SONDE_GAUGE && m->type != SONDE_COUNTER) {
        sonde__set_error("sql: query \"%s\": metric \"%s\": type must be gauge or counter", qname,
                         m->name);
        return SONDE_EINVAL;
    }
    if (!m->value_column || !m->value_column[0]) {
        sonde__set_error("sql: query \"%s\": metric \"%s\": value column is required", qname,
                         m->name);
        return SONDE_EINVAL;
    }
    if (metric_name_taken(s, m->name)) {
        sonde__set_error("sql: query \"%s\": metric \"%s\" is already yielded by another query",
                         qname, m->name);
        return SONDE_ECONFLICT;
    }
    for (size_t j = 0; j < idx; j++)
        if (strcmp(all[j].name, m->name) == 0) {
            sonde__set_error("sql: query \"%s\": metric \"%s\" is declared twice", qname, m->name);
            return SONDE_ECONFLICT;
        }
    if (m->label_count + m->const_label_count > SONDE_MAX_LABELS ||
        (m->label_count && !m->label_columns) || (m->const_label_count && !m->const_labels)) {
        sonde__set_error("sql: query \"%s\": metric \"%s\": at most %d labels", qname, m->name,
                         SONDE_MAX_LABELS);
        return SONDE_EINVAL;
    }
    size_t nall = m->label_count + m->const_label_count;
    for (size_t i = 0; i < nall; i++) {
        const char *ln =
            i < m->label_count ? m->label_columns[i] : m->const_labels[2 * (i - m->label_count)];
        if (!ln || !sonde__valid_label_name(ln) || (ln[0] == '_' && ln[1] == '_')) {
            sonde__set_error("sql: query \"%s\": metric \"%s\": invalid label name \"%s\"", qname,
                             m->name, ln ? ln : "");
            return SONDE_EBADLABEL;
        }
        for (size_t j = 0; j < i; j++) {
            const char *o = j < m->label_count ? m->label_columns[j]
                                               : m->const_labels[2 * (j - m->label_count)];
            if (strcmp(o, ln) == 0) {
                sonde__set_error("sql: query \"%s\": metric \"%s\": label \"%s\" appears twice",
                                 qname, m->name, ln);
                return SONDE_EBADLABEL;
            }
        }
    }
    return SONDE_OK;
}

int sonde_sql_add_query(sonde_sql *s, const sonde_sql_query_opts *o)
{
    sonde__clear_error();
    if (!s || !o)
        return SONDE_EINVAL;
    if (s->started) {
        sonde__set_error("sql: queries are added before sonde_sql_start");
        return SONDE_ESTATE;
    }
    if (!valid_ident(o->name)) {
        sonde__set_error("sql: query name \"%s\" must be 1 to 63 bytes of [A-Za-z0-9_.-]",
                         o->name ? o->name : "");
        return SONDE_EINVAL;
    }
    if (s->nqueries >= 256) {
        sonde__set_error("sql: at most 256 queries per collector");
        return SONDE_ELIMIT;
    }
    for (size_t i = 0; i < s->nqueries; i++)
        if (strcmp(s->queries[i]->name, o->name) == 0) {
            sonde__set_error("sql: query \"%s\" is already defined", o->name);
            return SONDE_ECONFLICT;
        }
    database *d = NULL;
    if (o->database) {
        d = find_db(s, o->database);
        if (!d) {
            sonde__set_error("sql: query \"%s\": no database named \"%s\"", o->name, o->database);
            return SONDE_ENOTFOUND;
        }
    } else if (s->ndbs == 1) {
        d = s->dbs[0];
    } else {
        sonde__set_error("sql: query \"%s\": name its database (there are %zu)", o->name, s->ndbs);
        return s->ndbs ? SONDE_EINVAL : SONDE_ENOTFOUND;
    }
    if (!o->sql || !o->sql[0]) {
        sonde__set_error("sql: query \"%s\": the SQL text is required", o->name);
        return SONDE_EINVAL;
    }
    double iv = o->interval_seconds > 0 ? o->interval_seconds : DEFAULT_INTERVAL_S;
    double to = o->timeout_seconds > 0 ? o->timeout_seconds : DEFAULT_TIMEOUT_S;
    if (!(iv >= 0.05 && iv <= 86400) || o->interval_seconds < 0) {
        sonde__set_error("sql: query \"%s\": interval must be 0.05 to 86400 s", o->name);
        return SONDE_EINVAL;
    }
    if (!(to >= 0.01 && to <= 3600) || o->timeout_seconds < 0) {
        sonde__set_error("sql: query \"%s\": timeout must be 0.01 to 3600 s", o->name);
        return SONDE_EINVAL;
    }
    double age = o->max_age_seconds > 0 ? o->max_age_seconds : 3 * iv + to;
    if (!(age >= iv) || o->max_age_seconds < 0 || !isfinite(age)) {
        sonde__set_error("sql: query \"%s\": max_age must be at least the interval (%g s)", o->name,
                         iv);
        return SONDE_EINVAL;
    }
    if (o->max_series > SONDE_DEFAULT_MAX_SERIES) {
        sonde__set_error("sql: query \"%s\": max_series must be at most %d", o->name,
                         SONDE_DEFAULT_MAX_SERIES);
        return SONDE_EINVAL;
    }
    if (o->metric_count == 0 || o->metric_count > MAX_METRICS || !o->metrics) {
        sonde__set_error("sql: query \"%s\": declare 1 to %d metrics", o->name, MAX_METRICS);
        return SONDE_EINVAL;
    }
    for (size_t i = 0; i < o->metric_count; i++) {
        int rc = check_metric(s, o->name, &o->metrics[i], o->metrics, i);
        if (rc)
            return rc;
    }

    query *q = sonde__calloc(1, sizeof *q);
    if (!q)
        return SONDE_ENOMEM;
    q->sql = s;
    q->db = d;
    q->name = sonde__strdup(o->name);
    q->text = sonde__strdup(o->sql);
    q->interval_s = iv;
    q->timeout_s = to;
    q->max_age_s = age;
    q->max_series = o->max_series ? o->max_series : DEFAULT_MAX_SERIES;
    q->metrics = sonde__calloc(o->metric_count, sizeof *q->metrics);
    bool ok = q->name && q->text && q->metrics;
    if (q->metrics) {
        q->nmetrics = o->metric_count;
        for (size_t i = 0; i < o->metric_count && ok; i++) {
            const sonde_sql_metric *in = &o->metrics[i];
            metric_def *m = &q->metrics[i];
            char help[160];
            snprintf(help, sizeof help, "Metric from the SQL query %s", o->name);
            m->name = sonde__strdup(in->name);
            m->help = sonde__strdup(in->help ? in->help : help);
            m->value_col = sonde__strdup(in->value_column);
            m->type = in->type == SONDE_COUNTER ? SONDE_COUNTER : SONDE_GAUGE;
            bool ok1, ok2;
            m->label_cols = dup_strv(in->label_columns, in->label_count, &ok1);
            m->nlabels = ok1 ? in->label_count : 0;
            m->const_kv = dup_strv(in->const_labels, 2 * in->const_label_count, &ok2);
            m->nconst = ok2 ? in->const_label_count : 0;
            ok = m->name && m->help && m->value_col && ok1 && ok2;
        }
    }
    query **gq = ok ? sonde__realloc(s->queries, (s->nqueries + 1) * sizeof *gq) : NULL;
    query **dq = gq ? sonde__realloc(d->queries, (d->nqueries + 1) * sizeof *dq) : NULL;
    if (gq)
        s->queries = gq;
    if (!dq) {
        query_free(q);
        return SONDE_ENOMEM;
    }
    d->queries = dq;
    s->queries[s->nqueries++] = q;
    d->queries[d->nqueries++] = q;
    return SONDE_OK;
}

/* ---- one run ---- */

typedef struct run {
    query *q;
    sonde_buf arena;
    sample **per;    /* per metric */
    size_t *n, *cap; /* per metric */
    uint32_t *table; /* duplicate detection: (metric << 20 | index) + 1 */
    size_t table_mask;
    size_t series;
    uint64_t dropped, value_errs, dup_errs;
    bool oom;
} run;

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int run_cols(void *ud, const char *const *names, int n)
{
    run *r = ud;
    for (size_t i = 0; i < r->q->nmetrics; i++) {
        metric_def *m = &r->q->metrics[i];
        m->value_idx = -1;
        for (size_t l = 0; l < m->nlabels; l++)
            m->label_idx[l] = -1;
        for (int pass = 0; pass < 2; pass++)
            for (int c = 0; c < n; c++) {
                int (*cmp)(const char *, const char *) = pass == 0 ? strcmp : strcasecmp;
                if (m->value_idx < 0 && cmp(names[c], m->value_col) == 0)
                    m->value_idx = c;
                for (size_t l = 0; l < m->nlabels; l++)
                    if (m->label_idx[l] < 0 && cmp(names[c], m->label_cols[l]) == 0)
                        m->label_idx[l] = c;
            }
        if (m->value_idx < 0)
            return SQLR_COLUMN;
        for (size_t l = 0; l < m->nlabels; l++)
            if (m->label_idx[l] < 0)
                return SQLR_COLUMN;
    }
    return SQLR_OK;
}

/* Whether sample (mi, si) has the same label values as the row's. */
static bool same_labels(run *r, size_t mi, uint32_t si, const metric_def *m, const sql_cell *cells)
{
    const char *p = r->arena.data + r->per[mi][si].off;
    for (size_t l = 0; l < m->nlabels; l++) {
        const char *v = cells[m->label_idx[l]].text ? cells[m->label_idx[l]].text : "";
        if (strcmp(p, v) != 0)
            return false;
        p += strlen(p) + 1;
    }
    return true;
}

static int run_row(void *ud, const sql_cell *cells, int n)
{
    SONDE_UNUSED(n);
    run *r = ud;
    for (size_t mi = 0; mi < r->q->nmetrics; mi++) {
        const metric_def *m = &r->q->metrics[mi];
        double v;
        if (!sonde__sql_cell_value(&cells[m->value_idx], &v)) {
            r->value_errs++;
            continue;
        }
        uint64_t h = 0xcbf29ce484222325ull ^ mi;
        for (size_t l = 0; l < m->nlabels; l++) {
            const char *t = cells[m->label_idx[l]].text ? cells[m->label_idx[l]].text : "";
            h = hash_bytes(h, t, strlen(t) + 1);
        }
        size_t slot = (size_t)h & r->table_mask;
        bool dup = false;
        while (r->table[slot]) {
            uint32_t e = r->table[slot] - 1;
            if ((e >> 20) == mi && same_labels(r, mi, e & 0xfffff, m, cells)) {
                dup = true;
                break;
            }
            slot = (slot + 1) & r->table_mask;
        }
        if (dup) {
            r->dup_errs++;
            continue;
        }
        if (r->series >= r->q->max_series) {
            r->dropped++;
            continue;
        }
        if (r->n[mi] == r->cap[mi]) {
            size_t nc = r->cap[mi] ? 2 * r->cap[mi] : 16;
            sample *g = sonde__realloc(r->per[mi], nc * sizeof *g);
            if (!g) {
                r->oom = true;
                return SQLR_QUERY;
            }
            r->per[mi] = g;
            r->cap[mi] = nc;
        }
        sample *sp = &r->per[mi][r->n[mi]];
        sp->v = v;
        sp->off = (uint32_t)r->arena.len;
        int rc = SONDE_OK;
        for (size_t l = 0; l < m->nlabels && rc == SONDE_OK; l++) {
            const char *t = cells[m->label_idx[l]].text ? cells[m->label_idx[l]].text : "";
            rc = sonde__buf_append(&r->arena, t, strlen(t) + 1);
        }
        if (rc != SONDE_OK || r->arena.len > UINT32_MAX) {
            r->oom = true;
            return SQLR_QUERY;
        }
        r->table[slot] = (uint32_t)(((uint32_t)mi << 20) | (uint32_t)r->n[mi]) + 1;
        r->n[mi]++;
        r->series++;
    }
    return SQLR_OK;
}

static void run_free(run *r)
{
    if (r->per)
        for (size_t i = 0; i < r->q->nmetrics; i++)
            sonde__free(r->per[i]);
    sonde__free(r->per);
    sonde__free(r->n);
    sonde__free(r->cap);
    sonde__free(r->table);
    sonde_buf_free(&r->arena);
}

/* Turn a finished run into a snapshot (taking its memory). */
static snapshot *run_snapshot(run *r)
{
    size_t nm = r->q->nmetrics;
    snapshot *s = sonde__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->count = sonde__calloc(nm, sizeof *s->count);
    s->samples = sonde__calloc(nm, sizeof *s->samples);
    sample *all = sonde__malloc((r->series ? r->series : 1) * sizeof *all);
    if (!s->count || !s->samples || !all) {
        sonde__free(all);
        snapshot_free(s);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        s->samples[i] = all + k;
        s->count[i] = r->n[i];
        if (r->n[i])
            memcpy(all + k, r->per[i], r->n[i] * sizeof *all);
        k += r->n[i];
    }
    s->series = r->series;
    s->arena = r->arena.data;
    r->arena.data = NULL;
    r->arena.len = r->arena.cap = 0;
    s->mono_ns = sonde__now_mono_ns();
    return s;
}

static void log_state(database *d, query *q, int reason, const char *err, bool was_ok)
{
    sonde_sql *s = d->sql;
    if (reason == SQLR_OK) {
        if (!was_ok && atomic_load(&q->ever_ran))
            SONDE_LOGF(s->log, INFO, "sql query %s on %s succeeds again", q->name, d->name);
        return;
    }
    if (was_ok)
        SONDE_LOGF(s->log, WARNING, "sql query %s on %s failed (%s): %s", q->name, d->name,
                   reason_names[reason - 1], err);
}

static const enc_block *snapshot_block(sonde_sql *s, const query *q, snapshot *sn, int fmt);

static void run_query(database *d, query *q)
{
    sonde_sql *s = d->sql;
    char err[256] = "";
    uint64_t t0 = sonde__now_mono_ns();
    int reason = SQLR_OK;
    if (!d->conn) {
        if (t0 < d->next_connect_ns) {
            reason = SQLR_CONNECT;
            snprintf(err, sizeof err, "not connected (next attempt in %.1f s): %.180s",
                     (double)(d->next_connect_ns - t0) / 1e9, d->connect_error);
        } else {
            reason = d->drv->open(d->dsn, d->password, d->connect_timeout_s, &d->stop, &d->conn,
                                  err, sizeof err);
            if (reason == SQLR_OK) {
                atomic_fetch_add(&d->connects_ok, 1);
                atomic_store(&d->up, 1);
                d->backoff_s = d->backoff_initial_s;
                if (atomic_exchange(&d->failing_logged, 0))
                    SONDE_LOGF(s->log, INFO, "sql database %s connected (%s)", d->name, d->masked);
            } else if (reason != SQLR_STOPPED) {
                atomic_fetch_add(&d->connects_fail, 1);
                snprintf(d->connect_error, sizeof d->connect_error, "%s", err);
                d->next_connect_ns = sonde__now_mono_ns() + (uint64_t)(d->backoff_s * 1e9);
                d->backoff_s = fmin(2 * d->backoff_s, d->backoff_max_s);
                if (!atomic_exchange(&d->failing_logged, 1))
                    SONDE_LOGF(s->log, WARNING, "sql database %s (%s): %s; retrying with backoff",
                               d->name, d->masked, err);
            }
        }
    }
    run r;
    memset(&r, 0, sizeof r);
    r.q = q;
    sonde_buf_init(&r.arena);
    if (reason == SQLR_OK) {
        size_t tsize = 64;
        while (tsize < 2 * q->max_series + 2)
            tsize *= 2;
        r.per = sonde__calloc(q->nmetrics, sizeof *r.per);
        r.n = sonde__calloc(q->nmetrics, sizeof *r.n);
        r.cap = sonde__calloc(q->nmetrics, sizeof *r.cap);
        r.table = sonde__calloc(tsize, sizeof *r.table);
        r.table_mask = tsize - 1;
        if (!r.per || !r.n || !r.cap || !r.table) {
            reason = SQLR_QUERY;
            snprintf(err, sizeof err, "out of memory");
        } else {
            sql_sink sink = {run_cols, run_row, &r};
            reason = d->drv->exec(d->conn, q->text, q->timeout_s, &sink, err, sizeof err);
            if (r.oom) {
                reason = SQLR_QUERY;
                snprintf(err, sizeof err, "out of memory");
            }
            if (reason == SQLR_CONNECT || reason == SQLR_STOPPED) {
                d->drv->close(d->conn);
                d->conn = NULL;
                atomic_store(&d->up, 0);
                /* Reconnect at the next run; failures then back off. */
                d->next_connect_ns = 0;
                snprintf(d->connect_error, sizeof d->connect_error, "%s", err);
            }
        }
    }
    double dur = (double)(sonde__now_mono_ns() - t0) / 1e9;
    if (reason == SQLR_STOPPED) {
        run_free(&r);
        return;
    }
    snapshot *fresh = NULL;
    if (reason == SQLR_OK) {
        fresh = run_snapshot(&r);
        if (!fresh) {
            reason = SQLR_QUERY;
            snprintf(err, sizeof err, "out of memory");
        } else {
            /* The formats Prometheus scrapes in, ready before the swap. */
            snapshot_block(s, q, fresh, SONDE_FORMAT_PROMETHEUS);
            snapshot_block(s, q, fresh, SONDE_FORMAT_OPENMETRICS);
        }
    }
    if (r.value_errs)
        atomic_fetch_add(&q->errors[SQLR_VALUE - 1], r.value_errs);
    if (r.dup_errs)
        atomic_fetch_add(&q->errors[SQLR_DUP - 1], r.dup_errs);
    if (r.dropped)
        atomic_fetch_add(&q->dropped, r.dropped);
    run_free(&r);
    bool was_ok = atomic_load(&q->last_ok) || !atomic_load(&q->ever_ran);
    snapshot *old = NULL;
    pthread_rwlock_wrlock(&s->snap_lock);
    if (fresh) {
        old = q->snap;
        q->snap = fresh;
        q->last_error[0] = '\0';
    } else {
        snprintf(q->last_error, sizeof q->last_error, "%s", err);
    }
    pthread_rwlock_unlock(&s->snap_lock);
    snapshot_free(old);
    atomic_store(&q->last_duration_bits, dbl_bits(dur));
    if (reason == SQLR_OK) {
        atomic_store(&q->series, fresh->series);
        atomic_store(&q->last_success_bits, dbl_bits(sonde__now_wall()));
        atomic_fetch_add(&q->successes, 1);
        atomic_store(&q->last_ok, 1);
    } else {
        atomic_fetch_add(&q->errors[reason - 1], 1);
        atomic_store(&q->last_ok, 0);
    }
    log_state(d, q, reason, err, was_ok);
    atomic_store(&q->ever_ran, 1);
    atomic_fetch_add(&q->runs, 1);
}

/* ---- executor and scheduling ---- */

static void *executor(void *arg)
{
    database *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!atomic_load(&d->stop)) {
        query *q = NULL;
        /* Round-robin over due queries so a query due at every turn cannot
         * starve the others. */
        for (size_t k = 0; k < d->nqueries; k++) {
            size_t i = (d->next_pick + k) % d->nqueries;
            if (d->queries[i]->due) {
                q = d->queries[i];
                d->next_pick = i + 1;
                break;
            }
        }
        if (!q) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        q->due = 0;
        uint64_t gen = ++q->started_gen;
        atomic_store(&q->running, 1);
        pthread_mutex_unlock(&d->mu);
        run_query(d, q);
        atomic_fetch_add(&d->sql->self_gen, 1);
        pthread_mutex_lock(&d->mu);
        atomic_store(&q->running, 0);
        q->done_gen = gen;
        pthread_cond_broadcast(&d->done_cv);
    }
    pthread_mutex_unlock(&d->mu);
    if (d->conn) {
        d->drv->close(d->conn);
        d->conn = NULL;
    }
    atomic_store(&d->up, 0);
    atomic_fetch_add(&d->sql->self_gen, 1);
    return NULL;
}

/* Runtime worker timer: mark the query due; the executor runs it. */
static void tick(void *ud, uint64_t now_ns)
{
    SONDE_UNUSED(now_ns);
    query *q = ud;
    pthread_mutex_lock(&q->db->mu);
    q->due = 1;
    pthread_cond_signal(&q->db->cv);
    pthread_mutex_unlock(&q->db->mu);
}

static void collect(sonde_emitter *em, void *ud);

int sonde_sql_start(sonde_sql *s)
{
    if (!s)
        return SONDE_EINVAL;
    if (s->started)
        return SONDE_ESTATE;
    if (!sonde_enabled())
        return SONDE_OK;
    int rc = sonde_registry_add_collector(s->reg, s->collector, collect, s);
    if (rc)
        return rc;
    s->started = true;
    for (size_t i = 0; i < s->ndbs; i++) {
        database *d = s->dbs[i];
        atomic_store(&d->stop, 0);
        d->next_connect_ns = 0;
        if (pthread_create(&d->thread, NULL, executor, d) != 0) {
            sonde_sql_stop(s);
            return SONDE_ENOMEM;
        }
        d->thread_started = true;
    }
    rc = sonde__runtime_start();
    if (rc) {
        sonde_sql_stop(s);
        return rc;
    }
    s->runtime_ref = true;
    for (size_t i = 0; i < s->nqueries; i++) {
        query *q = s->queries[i];
        double ms = q->interval_s * 1000;
        rc = sonde__runtime_every((uint32_t)(ms < 1 ? 1 : ms), tick, q, &q->timer_id);
        if (rc) {
            sonde_sql_stop(s);
            return rc;
        }
    }
    return SONDE_OK;
}

void sonde_sql_stop(sonde_sql *s)
{
    if (!s || !s->started)
        return;
    for (size_t i = 0; i < s->nqueries; i++) {
        if (s->queries[i]->timer_id)
            sonde__runtime_cancel(s->queries[i]->timer_id);
        s->queries[i]->timer_id = 0;
    }
    if (s->runtime_ref)
        sonde__runtime_stop();
    s->runtime_ref = false;
    for (size_t i = 0; i < s->ndbs; i++) {
        database *d = s->dbs[i];
        pthread_mutex_lock(&d->mu);
        atomic_store(&d->stop, 1);
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    for (size_t i = 0; i < s->ndbs; i++) {
        database *d = s->dbs[i];
        if (d->thread_started)
            pthread_join(d->thread, NULL);
        d->thread_started = false;
        pthread_mutex_lock(&d->mu);
        for (size_t k = 0; k < d->nqueries; k++) {
            d->queries[k]->due = 0;
            d->queries[k]->done_gen = d->queries[k]->started_gen;
        }
        pthread_cond_broadcast(&d->done_cv);
        pthread_mutex_unlock(&d->mu);
    }
    sonde_registry_remove_collector(s->reg, s->collector);
    s->started = false;
}

static query *find_query(sonde_sql *s, const char *name)
{
    for (size_t i = 0; i < s->nqueries; i++)
        if (strcmp(s->queries[i]->name, name) == 0)
            return s->queries[i];
    return NULL;
}

int sonde_sql_run_now(sonde_sql *s, const char *name, int timeout_ms)
{
    if (!s)
        return SONDE_EINVAL;
    query *only = NULL;
    if (name && !(only = find_query(s, name)))
        return SONDE_ENOTFOUND;
    if (!s->started)
        return SONDE_ESTATE;
    uint64_t *target = sonde__calloc(s->nqueries ? s->nqueries : 1, sizeof *target);
    if (!target)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < s->nqueries; i++) {
        query *q = s->queries[i];
        if (only && q != only)
            continue;
        pthread_mutex_lock(&q->db->mu);
        target[i] = q->started_gen + 1;
        q->due = 1;
        pthread_cond_signal(&q->db->cv);
        pthread_mutex_unlock(&q->db->mu);
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    long long ns = (long long)dl.tv_nsec + (long long)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    dl.tv_sec += (time_t)(ns / 1000000000);
    dl.tv_nsec = (long)(ns % 1000000000);
    int rc = SONDE_OK;
    for (size_t i = 0; i < s->nqueries && rc == SONDE_OK; i++) {
        query *q = s->queries[i];
        if (only && q != only)
            continue;
        pthread_mutex_lock(&q->db->mu);
        while (q->done_gen < target[i] && !atomic_load(&q->db->stop)) {
            if (pthread_cond_timedwait(&q->db->done_cv, &q->db->mu, &dl) == ETIMEDOUT) {
                rc = q->done_gen < target[i] ? SONDE_ETIMEOUT : SONDE_OK;
                break;
            }
        }
        pthread_mutex_unlock(&q->db->mu);
    }
    sonde__free(target);
    return rc;
}

/* ---- stats, JSON ---- */

int sonde_sql_get_query_stats(sonde_sql *s, const char *name, sonde_sql_query_stats *out)
{
    if (!s || !name || !out)
        return SONDE_EINVAL;
    query *q = find_query(s, name);
    if (!q)
        return SONDE_ENOTFOUND;
    memset(out, 0, sizeof *out);
    out->runs = atomic_load(&q->runs);
    out->successes = atomic_load(&q->successes);
    out->errors_connect = atomic_load(&q->errors[0]);
    out->errors_timeout = atomic_load(&q->errors[1]);
    out->errors_query = atomic_load(&q->errors[2]);
    out->errors_column = atomic_load(&q->errors[3]);
    out->errors_value = atomic_load(&q->errors[4]);
    out->errors_duplicate = atomic_load(&q->errors[5]);
    out->series_dropped = atomic_load(&q->dropped);
    out->series = (size_t)atomic_load(&q->series);
    out->last_success = atomic_load(&q->last_ok);
    out->running = atomic_load(&q->running);
    out->last_duration_seconds = bits_dbl(atomic_load(&q->last_duration_bits));
    out->last_success_time = bits_dbl(atomic_load(&q->last_success_bits));
    pthread_rwlock_rdlock(&s->snap_lock);
    snprintf(out->last_error, sizeof out->last_error, "%s", q->last_error);
    pthread_rwlock_unlock(&s->snap_lock);
    return SONDE_OK;
}

int sonde_sql_write_json(sonde_sql *s, sonde_buf *b)
{
    if (!s || !b)
        return SONDE_EINVAL;
    int rc = sonde__buf_puts(b, "{\"databases\":[");
    for (size_t i = 0; i < s->ndbs && rc == SONDE_OK; i++) {
        database *d = s->dbs[i];
        rc = sonde__buf_printf(b, "%s{\"name\":", i ? "," : "");
        rc = rc ? rc : sonde__buf_json_str(b, d->name);
        rc = rc ? rc
                : sonde__buf_printf(b, ",\"driver\":\"%s\",\"dsn\":",
                                    d->driver == SONDE_SQL_POSTGRES ? "postgres" : "sqlite");
        rc = rc ? rc : sonde__buf_json_str(b, d->masked);
        rc = rc ? rc : sonde__buf_printf(b, ",\"up\":%s}", atomic_load(&d->up) ? "true" : "false");
    }
    rc = rc ? rc : sonde__buf_puts(b, "],\"queries\":[");
    pthread_rwlock_rdlock(&s->snap_lock);
    for (size_t i = 0; i < s->nqueries && rc == SONDE_OK; i++) {
        query *q = s->queries[i];
        rc = sonde__buf_printf(b, "%s{\"name\":", i ? "," : "");
        rc = rc ? rc : sonde__buf_json_str(b, q->name);
        rc = rc ? rc : sonde__buf_puts(b, ",\"database\":");
        rc = rc ? rc : sonde__buf_json_str(b, q->db->name);
        rc = rc ? rc
                : sonde__buf_printf(b,
                                    ",\"interval_seconds\":%g,\"timeout_seconds\":%g,"
                                    "\"max_age_seconds\":%g,\"max_series\":%zu,\"success\":%s,"
                                    "\"series\":%zu,\"last_error\":",
                                    q->interval_s, q->timeout_s, q->max_age_s, q->max_series,
                                    atomic_load(&q->last_ok) ? "true" : "false",
                                    (size_t)atomic_load(&q->series));
        rc = rc ? rc : sonde__buf_json_str(b, q->last_error);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    pthread_rwlock_unlock(&s->snap_lock);
    return rc ? rc : sonde__buf_puts(b, "]}");
}

/* ---- scrape ---- */

static void emit_snapshot(sonde_emitter *em, const query *q, const snapshot *sn)
{
    const char *kv[2 * SONDE_MAX_LABELS];
    for (size_t mi = 0; mi < q->nmetrics; mi++) {
        const metric_def *m = &q->metrics[mi];
        if (sonde_emit_family(em, m->type, m->name, m->help, NULL) != SONDE_OK)
            continue;
        for (size_t l = 0; l < m->nlabels; l++)
            kv[2 * l] = m->label_cols[l];
        for (size_t c = 0; c < m->nconst; c++) {
            kv[2 * (m->nlabels + c)] = m->const_kv[2 * c];
            kv[2 * (m->nlabels + c) + 1] = m->const_kv[2 * c + 1];
        }
        for (size_t si = 0; si < sn->count[mi]; si++) {
            const sample *sp = &sn->samples[mi][si];
            const char *p = sn->arena ? sn->arena + sp->off : "";
            for (size_t l = 0; l < m->nlabels; l++) {
                kv[2 * l + 1] = p;
                p += strlen(p) + 1;
            }
            sonde_emit_sample(em, kv, m->nlabels + m->nconst, sp->v);
        }
    }
}

/* A snapshot in format fmt, encoded by the first caller (the executor for
 * the text formats); NULL when out of memory. Under snap_lock (read or
 * write) or before the snapshot is published. */
typedef struct snap_ctx {
    const query *q;
    const snapshot *sn;
} snap_ctx;

static void render_snapshot(sonde_emitter *em, void *ud)
{
    const snap_ctx *c = ud;
    emit_snapshot(em, c->q, c->sn);
}

static const enc_block *snapshot_block(sonde_sql *s, const query *q, snapshot *sn, int fmt)
{
    enc_block *e = atomic_load_explicit(&sn->enc[fmt], memory_order_acquire);
    if (e)
        return e;
    snap_ctx c = {q, sn};
    sonde_buf b;
    sonde_buf_init(&b);
    if (sonde__emit_render(s->reg, (sonde_format)fmt, render_snapshot, &c, &b) == SONDE_OK &&
        (e = sonde__malloc(sizeof *e + b.len + 1)) != NULL) {
        e->len = b.len;
        if (b.len)
            memcpy(e->data, b.data, b.len);
        e->data[b.len] = '\0';
    }
    sonde_buf_free(&b);
    if (!e)
        return NULL;
    enc_block *prev = NULL;
    if (!atomic_compare_exchange_strong_explicit(&sn->enc[fmt], &prev, e, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        sonde__free(e); /* a concurrent scrape encoded it first */
        return prev;
    }
    return e;
}

enum { F_SUCCESS, F_DURATION, F_LAST, F_RUNS, F_SERIES, F_DROPPED, F_STALE, F_COUNT };

typedef struct self_ctx {
    sonde_sql *s;
    const unsigned char *stale; /* per query (the first 256) */
} self_ctx;

/* The collector's own families: per query and per database. */
static void emit_self_metrics(sonde_emitter *em, void *ud)
{
    const self_ctx *c = ud;
    sonde_sql *s = c->s;
    const unsigned char *stale = c->stale;
    size_t nq = s->nqueries;
    static const struct {
        sonde_metric_type type;
        const char *name, *help;
    } fams[F_COUNT] = {
        {SONDE_GAUGE, "sonde_sql_query_success",
         "Whether the last run of the SQL query succeeded (1) or not (0)"},
        {SONDE_GAUGE, "sonde_sql_query_duration_seconds", "Duration of the last run of the query"},
        {SONDE_GAUGE, "sonde_sql_query_last_success_timestamp_seconds",
         "Time of the last successful run of the query (0: never)"},
        {SONDE_COUNTER, "sonde_sql_query_runs_total", "Finished runs of the query"},
        {SONDE_GAUGE, "sonde_sql_query_series", "Series in the query's cached result"},
        {SONDE_COUNTER, "sonde_sql_query_series_dropped_total",
         "Series the query yielded past its max_series, dropped"},
        {SONDE_GAUGE, "sonde_sql_query_stale",
         "Whether the cached result is older than max_age and withheld (1) or not (0)"},
    };
    for (int f = 0; f < F_COUNT; f++) {
        if (nq == 0 || sonde_emit_family(em, fams[f].type, fams[f].name, fams[f].help, NULL))
            continue;
        for (size_t i = 0; i < nq; i++) {
            query *q = s->queries[i];
            double v = 0;
            switch (f) {
            case F_SUCCESS:
                v = atomic_load(&q->last_ok);
                break;
            case F_DURATION:
                v = bits_dbl(atomic_load(&q->last_duration_bits));
                break;
            case F_LAST:
                v = bits_dbl(atomic_load(&q->last_success_bits));
                break;
            case F_RUNS:
                v = (double)atomic_load(&q->runs);
                break;
            case F_SERIES:
                v = (double)atomic_load(&q->series);
                break;
            case F_DROPPED:
                v = (double)atomic_load(&q->dropped);
                break;
            default:
                v = i < 256 && stale[i];
                break;
            }
            const char *kv[2] = {"query", q->name};
            sonde_emit_sample(em, kv, 1, v);
        }
    }
    if (nq &&
        sonde_emit_family(em, SONDE_COUNTER, "sonde_sql_query_errors_total",
                          "Failed runs and skipped rows of the query, by reason", NULL) == SONDE_OK)
        for (size_t i = 0; i < nq; i++)
            for (int r = 0; r < NCOUNTED; r++) {
                /* A reason shows once it has happened: six mostly-zero
                 * series per query would cost every scrape. */
                uint64_t v = atomic_load(&s->queries[i]->errors[r]);
                if (v == 0 && r != SQLR_TIMEOUT - 1)
                    continue;
                const char *kv[4] = {"query", s->queries[i]->name, "reason", reason_names[r]};
                sonde_emit_sample(em, kv, 2, (double)v);
            }
    if (s->ndbs && sonde_emit_family(em, SONDE_GAUGE, "sonde_sql_database_up",
                                     "Whether the collector's connection to the database is open",
                                     NULL) == SONDE_OK)
        for (size_t i = 0; i < s->ndbs; i++) {
            const char *kv[2] = {"database", s->dbs[i]->name};
            sonde_emit_sample(em, kv, 1, atomic_load(&s->dbs[i]->up));
        }
    if (s->ndbs &&
        sonde_emit_family(em, SONDE_COUNTER, "sonde_sql_database_connects_total",
                          "Connection attempts to the database, by result", NULL) == SONDE_OK)
        for (size_t i = 0; i < s->ndbs; i++) {
            const char *kv[4] = {"database", s->dbs[i]->name, "result", "success"};
            sonde_emit_sample(em, kv, 2, (double)atomic_load(&s->dbs[i]->connects_ok));
            kv[3] = "failure";
            sonde_emit_sample(em, kv, 2, (double)atomic_load(&s->dbs[i]->connects_fail));
        }
}

static void collect(sonde_emitter *em, void *ud)
{
    sonde_sql *s = ud;
    unsigned char stale[256];
    size_t nq = s->nqueries;
    int fmt = sonde__emit_raw_format(em);
    pthread_rwlock_rdlock(&s->snap_lock);
    /* Read the clock under the lock: a snapshot swapped in just before is
     * never "older" than a time read before it was made. */
    uint64_t now = sonde__now_mono_ns();
    for (size_t i = 0; i < nq; i++) {
        const query *q = s->queries[i];
        snapshot *sn = q->snap;
        bool fresh =
            sn && (sn->mono_ns >= now || (double)(now - sn->mono_ns) / 1e9 <= q->max_age_s);
        if (i < 256)
            stale[i] = sn && !fresh;
        if (!fresh)
            continue;
        const enc_block *e = fmt >= 0 ? snapshot_block(s, q, sn, fmt) : NULL;
        if (e)
            sonde__emit_raw(em, e->data, e->len);
        else
            emit_snapshot(em, q, sn);
    }
    pthread_rwlock_unlock(&s->snap_lock);

    size_t ns = nq < 256 ? nq : 256;
    self_ctx c = {s, stale};
    if (fmt < 0) {
        emit_self_metrics(em, &c);
        return;
    }
    /* Read the generation before the values: an encoding made from values
     * newer than its tag is only redone once more. */
    uint64_t gen = atomic_load(&s->self_gen);
    pthread_mutex_lock(&s->cache_mu);
    self_cache *sc = &s->self[fmt];
    if (!sc->valid || sc->gen != gen || memcmp(sc->stale, stale, ns) != 0) {
        sonde_buf_reset(&sc->buf);
        sc->valid = sonde__emit_render(s->reg, (sonde_format)fmt, emit_self_metrics, &c,
                                       &sc->buf) == SONDE_OK;
        sc->gen = gen;
        memcpy(sc->stale, stale, ns);
    }
    bool valid = sc->valid;
    if (valid)
        sonde__emit_raw(em, sc->buf.data, sc->buf.len);
    pthread_mutex_unlock(&s->cache_mu);
    if (!valid)
        emit_self_metrics(em, &c);
}

size_t sonde_sql_database_count(const sonde_sql *s)
{
    return s ? s->ndbs : 0;
}

int sonde_sql_database_info(const sonde_sql *s, size_t i, const char **name,
                            const char **masked_dsn)
{
    if (!s || i >= s->ndbs)
        return SONDE_ENOTFOUND;
    if (name)
        *name = s->dbs[i]->name;
    if (masked_dsn)
        *masked_dsn = s->dbs[i]->masked;
    return SONDE_OK;
}
