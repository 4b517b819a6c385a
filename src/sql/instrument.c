/*
 * Instrumentation of the application's own database calls: a begin/end
 * pair around each call counts it by kind and result, observes its
 * duration, joins the logging context and captures failures as errors;
 * pool gauges and waits are set by the application's pool.
 *
 * Every series a sonde_db can touch is resolved in sonde_db_create, so the
 * calls themselves do no label lookup: begin reads the clock and pushes a
 * context frame, end updates pre-resolved handles (lock-free, no
 * allocation) and, on failure only, masks and captures the message.
 */
#include "sql/sql_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const kinds[] = {"select", "insert",   "update", "delete", "begin",
                                    "commit", "rollback", "ddl",    "other"};
#define NKINDS (sizeof kinds / sizeof kinds[0])
#define KIND_OTHER (NKINDS - 1)
static const char *const results[] = {"ok", "error", "timeout"};
#define NRESULTS 3

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct sonde_db {
    char name[64];
    sonde_errors *errors;
    int no_capture;
    sonde_counter *calls[NKINDS][NRESULTS];
    sonde_histogram *durations[NKINDS];
    sonde_gauge *in_use, *idle;
    sonde_counter *waits, *wait_seconds;
};

void sonde_db_opts_init(sonde_db_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

static int family(sonde_registry *reg, sonde_metric_type type, const char *name, const char *help,
                  const char *const *labels, size_t n, const double *b, size_t nb,
                  sonde_family **out)
{
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = help;
    o.label_names = labels;
    o.label_count = n;
    o.buckets = b;
    o.bucket_count = nb;
    return sonde_family_create(reg, type, &o, out);
}

int sonde_db_create(const sonde_db_opts *opts, sonde_db **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_db_opts o;
    if (opts)
        o = *opts;
    else
        sonde_db_opts_init(&o);
    const char *name = o.name && o.name[0] ? o.name : "default";
    if (strlen(name) >= 64) {
        sonde__set_error("db: name longer than 63 bytes");
        return SONDE_EINVAL;
    }
    sonde_db *db = sonde__calloc(1, sizeof *db);
    if (!db)
        return SONDE_ENOMEM;
    memcpy(db->name, name, strlen(name) + 1);
    db->errors = o.errors;
    db->no_capture = o.no_capture;
    static const char *const l_calls[] = {"db", "kind", "result"};
    static const char *const l_dur[] = {"db", "kind"};
    static const char *const l_pool[] = {"db", "state"};
    static const char *const l_db[] = {"db"};
    sonde_family *fc, *fd, *fp, *fw, *fws;
    int rc =
        family(o.registry, SONDE_COUNTER, "sonde_db_queries_total",
               "Database calls of the application, by kind and result", l_calls, 3, NULL, 0, &fc);
    if (rc == SONDE_OK)
        rc = family(o.registry, SONDE_HISTOGRAM, "sonde_db_query_duration_seconds",
                    "Duration of the application's database calls", l_dur, 2,
                    o.buckets ? o.buckets : default_buckets,
                    o.buckets ? o.bucket_count : SONDE_ARRAY_LEN(default_buckets), &fd);
    if (rc == SONDE_OK)
        rc = family(o.registry, SONDE_GAUGE, "sonde_db_pool_connections",
                    "Connections of the application's pool, by state", l_pool, 2, NULL, 0, &fp);
    if (rc == SONDE_OK)
        rc = family(o.registry, SONDE_COUNTER, "sonde_db_pool_waits_total",
                    "Waits for a free pooled connection", l_db, 1, NULL, 0, &fw);
    if (rc == SONDE_OK)
        rc = family(o.registry, SONDE_COUNTER, "sonde_db_pool_wait_seconds_total",
                    "Time spent waiting for a free pooled connection", l_db, 1, NULL, 0, &fws);
    if (rc != SONDE_OK) {
        sonde__free(db);
        return rc;
    }
    for (size_t k = 0; k < NKINDS; k++) {
        for (size_t r = 0; r < NRESULTS; r++)
            db->calls[k][r] = sonde_family_counter(fc, db->name, kinds[k], results[r]);
        db->durations[k] = sonde_family_histogram(fd, db->name, kinds[k]);
    }
    db->in_use = sonde_family_gauge(fp, db->name, "in_use");
    db->idle = sonde_family_gauge(fp, db->name, "idle");
    db->waits = sonde_family_counter(fw, db->name);
    db->wait_seconds = sonde_family_counter(fws, db->name);
    *out = db;
    return SONDE_OK;
}

void sonde_db_destroy(sonde_db *db)
{
    sonde__free(db);
}

static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static size_t kind_index(const char *sql)
{
    if (!sql)
        return KIND_OTHER;
    const char *p = sql;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '(')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (!e)
                return KIND_OTHER;
            p = e + 2;
        } else {
            break;
        }
    }
    size_t n = 0;
    while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z'))
        n++;
    static const struct {
        const char *word;
        size_t kind;
    } map[] = {{"select", 0}, {"with", 0},     {"show", 0},   {"explain", 0}, {"values", 0},
               {"pragma", 0}, {"table", 0},    {"insert", 1}, {"copy", 1},    {"replace", 1},
               {"update", 2}, {"delete", 3},   {"begin", 4},  {"start", 4},   {"commit", 5},
               {"end", 5},    {"rollback", 6}, {"abort", 6},  {"create", 7},  {"alter", 7},
               {"drop", 7},   {"truncate", 7}, {"comment", 7}};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(map); i++)
        if (word_is(p, n, map[i].word))
            return map[i].kind;
    return KIND_OTHER;
}

const char *sonde_db_kind(const char *sql)
{
    return kinds[kind_index(sql)];
}

void sonde_db_begin(sonde_db *db, sonde_db_call *call, const char *kind, const char *sql)
{
    if (!call)
        return;
    call->db = db;
    call->token = 0;
    size_t k = KIND_OTHER;
    if (kind) {
        for (size_t i = 0; i < NKINDS; i++)
            if (strcmp(kind, kinds[i]) == 0)
                k = i;
    } else {
        k = kind_index(sql);
    }
    call->kind = (int)k;
    if (db) {
        sonde_field f[2] = {sonde_field_strn("db", db->name, SONDE_FIELD_NTS),
                            sonde_field_strn("db_kind", kinds[k], SONDE_FIELD_NTS)};
        call->token = sonde_log_context_push(NULL, f, 2);
    }
    call->start_ns = sonde__now_mono_ns();
}

double sonde_db_end(sonde_db_call *call, sonde_db_result result, const char *message)
{
    if (!call)
        return 0;
    double secs = (double)(sonde__now_mono_ns() - call->start_ns) / 1e9;
    sonde_db *db = call->db;
    if (!db)
        return secs;
    size_t k = call->kind >= 0 && (size_t)call->kind < NKINDS ? (size_t)call->kind : KIND_OTHER;
    size_t r = result == SONDE_DB_TIMEOUT ? 2 : result == SONDE_DB_ERROR ? 1 : 0;
    sonde_counter_inc(db->calls[k][r]);
    sonde_histogram_observe(db->durations[k], secs);
    if (r != 0 && !db->no_capture) {
        /* The message may quote a DSN or a statement with a secret. */
        sonde_buf b;
        sonde_buf_init(&b);
        b.max = 4096;
        const char *m = message && message[0] ? message : "database call failed";
        if (sonde_log_mask(m, strlen(m), &b) >= 0 && b.data)
            m = b.data;
        char op[80];
        snprintf(op, sizeof op, "db.%s", kinds[k]);
        const char *ctx[4] = {"db", db->name, "db_kind", kinds[k]};
        sonde_error_info info;
        sonde_error_info_init(&info);
        info.severity = SONDE_SEVERITY_HIGH;
        info.type = r == 2 ? "DatabaseTimeout" : "DatabaseError";
        info.message = m;
        info.operation = op;
        info.context = ctx;
        info.context_count = 2;
        /* Captured before the frame is popped: the error carries the
         * caller's correlation ID and context. */
        sonde_error_capture(db->errors, &info);
        sonde_buf_free(&b);
    }
    sonde_log_context_pop(call->token);
    call->token = 0;
    return secs;
}

void sonde_db_pool_set(sonde_db *db, double in_use, double idle)
{
    if (!db)
        return;
    sonde_gauge_set(db->in_use, in_use);
    sonde_gauge_set(db->idle, idle);
}

void sonde_db_pool_wait(sonde_db *db, double seconds)
{
    if (!db)
        return;
    sonde_counter_inc(db->waits);
    if (seconds > 0)
        sonde_counter_add(db->wait_seconds, seconds);
}
