/*
 * Persistence of error groups and alert history in the history store
 * (src/store), over a connection of its own opened through the store's
 * backends (which create the tables), so that a reader program (`sonde
 * errors --store`) sees what a service recorded, across restarts.
 *
 * SQLite: the tables reserved for us, times in milliseconds since the epoch:
 *   error_groups(fingerprint PK, first_seen, last_seen, count, level,
 *                message, data)    data: {"type","title","location","last"}
 *   alerts(id PK, rule, state, fingerprint, started, resolved, data)
 *                                  data: {"severity","summary","value","service"}
 * Redis (prefix "sonde:" by default):
 *   <p>errors:groups        ZSET fingerprint by last_seen
 *   <p>errors:group:<fp>    HASH first_seen last_seen count rank message data
 *   <p>alerts:history       ZSET alert id by started
 *   <p>alerts:alert:<id>    HASH rule state started resolved data
 *
 * Counts are written as deltas, so several processes (or restarts) add up.
 * Writes run on the runtime worker every store flush interval, bounded by
 * the backend's timeouts; a failing store is retried with backoff and
 * counted, and only loses what memory cannot hold.
 */
#include "errors/errors_int.h"

#include "health/health.h"
#include "store/store.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_MAX_GROUPS 512
#define PRUNE_BATCH 500

struct err_store {
    const sonde__store_type *type;
    void *ctx; /* the backend context: owns the connection */
    sqlite3 *db;
    redisContext *rc;
    const char *prefix;
    sqlite3_stmt *up_group, *ins_alert, *upd_alert;
};

static const char up_group_sql[] =
    "INSERT INTO error_groups(fingerprint, first_seen, last_seen, count, level, message, data) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(fingerprint) DO UPDATE SET "
    "first_seen = min(first_seen, excluded.first_seen), "
    "count = count + excluded.count, "
    "level = CASE WHEN (CASE excluded.level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 "
    "WHEN 'high' THEN 3 WHEN 'critical' THEN 4 ELSE 0 END) > (CASE level WHEN 'low' THEN 1 "
    "WHEN 'medium' THEN 2 WHEN 'high' THEN 3 WHEN 'critical' THEN 4 ELSE 0 END) "
    "THEN excluded.level ELSE level END, "
    "message = CASE WHEN excluded.last_seen >= last_seen THEN excluded.message ELSE message END, "
    "data = CASE WHEN excluded.last_seen >= last_seen THEN excluded.data ELSE data END, "
    "last_seen = max(last_seen, excluded.last_seen)";

/* Merge one group into a Redis hash: KEYS[1] the hash, KEYS[2] the index;
 * ARGV first_seen, last_seen, count delta, rank, message, data, fp. */
static const char up_group_lua[] =
    "local k = KEYS[1] "
    "redis.call('HINCRBY', k, 'count', ARGV[3]) "
    "local f = tonumber(redis.call('HGET', k, 'first_seen')) "
    "if not f or tonumber(ARGV[1]) < f then redis.call('HSET', k, 'first_seen', ARGV[1]) end "
    "local l = tonumber(redis.call('HGET', k, 'last_seen')) "
    "if not l or tonumber(ARGV[2]) >= l then "
    "redis.call('HSET', k, 'last_seen', ARGV[2], 'message', ARGV[5], 'data', ARGV[6]) end "
    "local r = tonumber(redis.call('HGET', k, 'rank')) "
    "if not r or tonumber(ARGV[4]) > r then redis.call('HSET', k, 'rank', ARGV[4]) end "
    "redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[7]) "
    "return 1";

void sonde__errstore_close(err_store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->up_group);
    sqlite3_finalize(s->ins_alert);
    sqlite3_finalize(s->upd_alert);
    if (s->type && s->ctx)
        s->type->close(s->ctx);
    sonde__free(s);
}

/* Open a store address; *out NULL (and SONDE_OK) for "off", ":memory:"
 * or nothing. */
int sonde__errstore_open(const char *spec_text, int readonly, err_store **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!spec_text || !spec_text[0])
        return SONDE_OK;
    sonde__store_spec spec;
    int rc = sonde__store_spec_parse(spec_text, &spec, err, errlen);
    if (rc) {
        sonde__store_spec_free(&spec);
        return rc;
    }
    if (spec.kind == SONDE__STORE_OFF ||
        (spec.kind == SONDE__STORE_SQLITE && spec.path && strcmp(spec.path, ":memory:") == 0)) {
        sonde__store_spec_free(&spec);
        return SONDE_OK;
    }
    err_store *s = sonde__calloc(1, sizeof *s);
    if (!s) {
        sonde__store_spec_free(&spec);
        return SONDE_ENOMEM;
    }
    s->type = spec.kind == SONDE__STORE_REDIS ? &sonde__store_redis : &sonde__store_sqlite;
    rc = s->type->open(&spec, readonly, &s->ctx, err, errlen);
    sonde__store_spec_free(&spec);
    if (rc) {
        s->ctx = NULL;
        sonde__errstore_close(s);
        return rc;
    }
    if (s->type == &sonde__store_redis) {
        s->rc = sonde__store_redis_handle(s->ctx);
        s->prefix = sonde__store_redis_prefix(s->ctx);
    } else {
        s->db = sonde__store_sqlite_handle(s->ctx);
        if (!readonly &&
            (sqlite3_prepare_v2(s->db, up_group_sql, -1, &s->up_group, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(s->db,
                                "INSERT INTO alerts(rule, state, fingerprint, started, "
                                "resolved, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                -1, &s->ins_alert, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(s->db,
                                "UPDATE alerts SET state = ?2, resolved = ?3, data = ?4 "
                                "WHERE id = ?1",
                                -1, &s->upd_alert, NULL) != SQLITE_OK)) {
            snprintf(err, errlen, "sqlite: prepare: %s", sqlite3_errmsg(s->db));
            sonde__errstore_close(s);
            return SONDE_EIO;
        }
    }
    *out = s;
    return SONDE_OK;
}

/* ---- writing ---- */

static void fp_hex(uint64_t fp, char out[17])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, fp >>= 4)
        out[i] = hx[fp & 15];
    out[16] = '\0';
}

static int alert_data(sonde_buf *b, const sonde_errors *t, const history_entry *h)
{
    int rc =
        sonde__buf_printf(b, "{\"severity\":\"%s\",\"summary\":", sonde_severity_name(h->severity));
    rc = rc ? rc : sonde__buf_json_str(b, h->summary ? h->summary : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"value\":");
    rc = rc ? rc
            : (isnan(h->value) ? sonde__buf_puts(b, "null") : sonde__buf_json_double(b, h->value));
    rc = rc ? rc : sonde__buf_puts(b, ",\"service\":");
    rc = rc ? rc : sonde__buf_json_str(b, t->service ? t->service : "");
    return rc ? rc : sonde__buf_putc(b, '}');
}

static int64_t ms(double s)
{
    return (int64_t)llround(s * 1000.0);
}

/* The dirty groups to write now, at most FLUSH_MAX_GROUPS. */
static size_t dirty_groups(sonde_errors *t, uint32_t *out)
{
    size_t n = 0;
    for (uint32_t s = t->groups.head; s != GROUP_NONE && n < FLUSH_MAX_GROUPS;
         s = t->groups.g[s].next)
        if (t->groups.g[s].dirty)
            out[n++] = s;
    return n;
}

static int sqlite_flush(sonde_errors *t, err_store *s, const uint32_t *gs, size_t ng, char *err,
                        size_t errlen)
{
    sqlite3 *db = s->db;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: begin: %s", sqlite3_errmsg(db));
        return SONDE_EIO;
    }
    int rc = SONDE_OK;
    sonde_buf data = {0};
    /* Entries inserted by this transaction, forgotten again on rollback. */
    history_entry **inserted = sonde__calloc(t->hist_n ? t->hist_n : 1, sizeof *inserted);
    size_t ninserted = 0;
    if (!inserted)
        rc = SONDE_ENOMEM;
    for (size_t i = 0; i < ng && !rc; i++) {
        group *g = &t->groups.g[gs[i]];
        char hex[17];
        fp_hex(g->fp, hex);
        sonde_buf_reset(&data);
        const err_rec *r = (const err_rec *)(const void *)g->sample.data;
        err_view v;
        sonde__err_view(r, &v);
        if (sonde__errors_json_group_data(&data, g)) {
            rc = SONDE_ENOMEM;
            break;
        }
        sqlite3_stmt *st = s->up_group;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, hex, 16, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, g->first_ns / 1000000);
        sqlite3_bind_int64(st, 3, g->last_ns / 1000000);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)(g->count - g->persisted));
        sqlite3_bind_text(st, 5, sonde_severity_name(g->max_sev), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, v.msg, (int)r->msg_len, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, data.data, (int)data.len, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            snprintf(err, errlen, "sqlite: write group: %s", sqlite3_errmsg(db));
            rc = SONDE_EIO;
        }
    }
    for (size_t k = 0; k < t->hist_n && !rc; k++) {
        history_entry *h = &t->history[(t->hist_pos + t->hist_max - t->hist_n + k) % t->hist_max];
        if (!h->dirty)
            continue;
        sonde_buf_reset(&data);
        if (alert_data(&data, t, h)) {
            rc = SONDE_ENOMEM;
            break;
        }
        const char *state = h->state == SONDE_ALERT_RESOLVED ? "resolved" : "firing";
        sqlite3_stmt *st = h->store_id ? s->upd_alert : s->ins_alert;
        sqlite3_reset(st);
        if (h->store_id) {
            sqlite3_bind_int64(st, 1, h->store_id);
            sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
            if (h->resolved_at > 0)
                sqlite3_bind_int64(st, 3, ms(h->resolved_at));
            else
                sqlite3_bind_null(st, 3);
            sqlite3_bind_text(st, 4, data.data, (int)data.len, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_text(st, 1, h->rule ? h->rule : "", -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
            sqlite3_bind_null(st, 3);
            sqlite3_bind_int64(st, 4, ms(h->fired_at));
            if (h->resolved_at > 0)
                sqlite3_bind_int64(st, 5, ms(h->resolved_at));
            else
                sqlite3_bind_null(st, 5);
            sqlite3_bind_text(st, 6, data.data, (int)data.len, SQLITE_TRANSIENT);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            snprintf(err, errlen, "sqlite: write alert: %s", sqlite3_errmsg(db));
            rc = SONDE_EIO;
        } else if (!h->store_id) {
            h->store_id = sqlite3_last_insert_rowid(db);
            inserted[ninserted++] = h;
        }
    }
    sonde_buf_free(&data);
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: commit: %s", sqlite3_errmsg(db));
        rc = SONDE_EIO;
    }
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        /* Rows inserted in the rolled-back transaction do not exist. */
        for (size_t k = 0; k < ninserted; k++)
            inserted[k]->store_id = 0;
    }
    sonde__free(inserted);
    return rc;
}

/* Send a pipeline of commands and check every reply; SONDE_EUNREACHABLE on
 * a broken connection (reopened by the caller's backoff). */
static int redis_replies(redisContext *c, size_t n, char *err, size_t errlen)
{
    int rc = SONDE_OK;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            snprintf(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
            return SONDE_EUNREACHABLE;
        }
        if (rep->type == REDIS_REPLY_ERROR && !rc) {
            snprintf(err, errlen, "redis: %s", rep->str);
            rc = SONDE_EIO;
        }
        freeReplyObject(rep);
    }
    return rc;
}

static int redis_flush(sonde_errors *t, err_store *s, const uint32_t *gs, size_t ng, char *err,
                       size_t errlen)
{
    redisContext *c = s->rc;
    char key[256], idx[192];
    snprintf(idx, sizeof idx, "%serrors:groups", s->prefix);
    size_t sent = 0;
    sonde_buf data = {0};
    int rc = SONDE_OK;
    for (size_t i = 0; i < ng && !rc; i++) {
        group *g = &t->groups.g[gs[i]];
        char hex[17], a1[24], a2[24], a3[24], a4[4];
        fp_hex(g->fp, hex);
        snprintf(key, sizeof key, "%serrors:group:%s", s->prefix, hex);
        snprintf(a1, sizeof a1, "%lld", (long long)(g->first_ns / 1000000));
        snprintf(a2, sizeof a2, "%lld", (long long)(g->last_ns / 1000000));
        snprintf(a3, sizeof a3, "%llu", (unsigned long long)(g->count - g->persisted));
        snprintf(a4, sizeof a4, "%d", g->max_sev);
        const err_rec *r = (const err_rec *)(const void *)g->sample.data;
        err_view v;
        sonde__err_view(r, &v);
        sonde_buf_reset(&data);
        if (sonde__errors_json_group_data(&data, g)) {
            rc = SONDE_ENOMEM;
            break;
        }
        const char *argv[12] = {"EVAL", up_group_lua, "2", key,   idx,       a1,
                                a2,     a3,           a4,  v.msg, data.data, hex};
        size_t lens[12] = {4,           strlen(up_group_lua), 1,          strlen(key),
                           strlen(idx), strlen(a1),           strlen(a2), strlen(a3),
                           strlen(a4),  r->msg_len,           data.len,   16};
        if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK)
            rc = SONDE_ENOMEM;
        sent++;
    }
    char token[64];
    snprintf(token, sizeof token, "%016llx", (unsigned long long)t->store_token);
    snprintf(idx, sizeof idx, "%salerts:history", s->prefix);
    for (size_t k = 0; k < t->hist_n && !rc; k++) {
        history_entry *h = &t->history[(t->hist_pos + t->hist_max - t->hist_n + k) % t->hist_max];
        if (!h->dirty)
            continue;
        char id[96], started[24], resolved[24];
        snprintf(id, sizeof id, "%s-%llu", token, (unsigned long long)h->id);
        snprintf(key, sizeof key, "%salerts:alert:%s", s->prefix, id);
        snprintf(started, sizeof started, "%lld", (long long)ms(h->fired_at));
        snprintf(resolved, sizeof resolved, "%lld",
                 (long long)(h->resolved_at > 0 ? ms(h->resolved_at) : 0));
        sonde_buf_reset(&data);
        if (alert_data(&data, t, h)) {
            rc = SONDE_ENOMEM;
            break;
        }
        const char *state = h->state == SONDE_ALERT_RESOLVED ? "resolved" : "firing";
        const char *rname = h->rule ? h->rule : "";
        const char *argv[12] = {"HSET",    key,     "rule",     rname,    "state", state,
                                "started", started, "resolved", resolved, "data",  data.data};
        size_t lens[12] = {4, strlen(key),     4, strlen(rname),    5, strlen(state),
                           7, strlen(started), 8, strlen(resolved), 4, data.len};
        const char *zargv[4] = {"ZADD", idx, started, id};
        size_t zlens[4] = {4, strlen(idx), strlen(started), strlen(id)};
        if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK ||
            redisAppendCommandArgv(c, 4, zargv, zlens) != REDIS_OK)
            rc = SONDE_ENOMEM;
        sent += 2;
    }
    sonde_buf_free(&data);
    int r2 = redis_replies(c, sent, err, errlen);
    return rc ? rc : r2;
}

int sonde__errstore_flush(sonde_errors *t, char *err, size_t errlen)
{
    err_store *s = t->store;
    if (!s)
        return SONDE_OK;
    uint32_t *gs = sonde__malloc(FLUSH_MAX_GROUPS * sizeof *gs);
    if (!gs)
        return SONDE_ENOMEM;
    size_t ng = dirty_groups(t, gs);
    bool any_alert = false;
    for (size_t k = 0; k < t->hist_n && !any_alert; k++)
        any_alert = t->history[k].dirty;
    int rc = SONDE_OK;
    if (ng || any_alert)
        rc = s->db ? sqlite_flush(t, s, gs, ng, err, errlen)
                   : redis_flush(t, s, gs, ng, err, errlen);
    if (!rc) {
        for (size_t i = 0; i < ng; i++) {
            group *g = &t->groups.g[gs[i]];
            g->persisted = g->count;
            g->dirty = false;
        }
        for (size_t k = 0; k < t->hist_max && t->history; k++)
            t->history[k].dirty = false;
    }
    sonde__free(gs);
    return rc;
}

int sonde__errstore_prune(sonde_errors *t, double groups_before, double alerts_before, char *err,
                          size_t errlen)
{
    err_store *s = t->store;
    if (!s)
        return SONDE_OK;
    if (s->db) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "DELETE FROM error_groups WHERE last_seen < %lld; DELETE FROM alerts WHERE "
                 "coalesce(resolved, started) < %lld AND state != 'firing'",
                 (long long)ms(groups_before), (long long)ms(alerts_before));
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "sqlite: prune: %s", sqlite3_errmsg(s->db));
            return SONDE_EIO;
        }
        return SONDE_OK;
    }
    /* Redis: old members of each index, a batch at a time. */
    static const char *const idx_names[2] = {"errors:groups", "alerts:history"};
    static const char *const key_names[2] = {"errors:group:", "alerts:alert:"};
    for (int i = 0; i < 2; i++) {
        char idx[192], cut[32];
        snprintf(idx, sizeof idx, "%s%s", s->prefix, idx_names[i]);
        snprintf(cut, sizeof cut, "(%lld", (long long)ms(i ? alerts_before : groups_before));
        redisReply *rep =
            redisCommand(s->rc, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", idx, cut, PRUNE_BATCH);
        if (!rep) {
            snprintf(err, errlen, "redis: %s", s->rc->errstr);
            return SONDE_EUNREACHABLE;
        }
        size_t sent = 0;
        if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < rep->elements; k++) {
                const char *m = rep->element[k]->str;
                redisAppendCommand(s->rc, "DEL %s%s%s", s->prefix, key_names[i], m ? m : "");
                redisAppendCommand(s->rc, "ZREM %s %s", idx, m ? m : "");
                sent += 2;
            }
        }
        freeReplyObject(rep);
        int rc = redis_replies(s->rc, sent, err, errlen);
        if (rc)
            return rc;
    }
    return SONDE_OK;
}

/* ---- the tracker's use of it (worker; t->lock held) ---- */

void sonde__errstore_tick(sonde_errors *t, bool final)
{
    if (!t->store_spec)
        return;
    uint64_t now = sonde__now_mono_ns();
    if (!final && now < t->store_next_ns)
        return;
    char err[512] = "";
    int rc = SONDE_OK;
    if (!t->store)
        rc = sonde__errstore_open(t->store_spec, 0, &t->store, err, sizeof err);
    if (!rc && t->store) {
        rc = sonde__errstore_flush(t, err, sizeof err);
        double wall = sonde__errors_now(t);
        if (!rc && (wall - t->last_store_prune >= 3600 || wall < t->last_store_prune)) {
            rc = sonde__errstore_prune(t, wall - t->group_retention_s, wall - t->alert_retention_s,
                                       err, sizeof err);
            if (!rc)
                t->last_store_prune = wall;
        }
    }
    if (rc) {
        atomic_fetch_add(&t->store_errors, 1);
        if (!t->store_failing)
            sonde__alerts_log(4,
                              "error store %s: %s; retrying with backoff (counted in "
                              "sonde_errors_store_errors_total)",
                              t->store_spec, err[0] ? err : sonde_strerror(rc));
        t->store_failing = true;
        /* A broken connection is reopened at the next attempt. */
        if (rc == SONDE_EUNREACHABLE || rc == SONDE_EIO) {
            sonde__errstore_close(t->store);
            t->store = NULL;
        }
        t->store_backoff_ms = t->store_backoff_ms ? t->store_backoff_ms * 2 : 1000;
        if (t->store_backoff_ms > 60000)
            t->store_backoff_ms = 60000;
        t->store_next_ns = now + (uint64_t)t->store_backoff_ms * 1000000u;
        return;
    }
    if (t->store_failing)
        sonde__alerts_log(3, "error store %s: writing again", t->store_spec);
    t->store_failing = false;
    t->store_backoff_ms = 0;
    t->store_next_ns = now + (uint64_t)t->store_flush_ms * 1000000u;
}

/* ---- reading (another program) ---- */

static int read_open(const char *spec, err_store **out)
{
    char err[512] = "";
    if (!spec)
        return SONDE_EINVAL;
    int rc = sonde__errstore_open(spec, 1, out, err, sizeof err);
    if (!rc && !*out) {
        sonde__set_error("store \"%s\" keeps nothing (off or in memory)", spec);
        return SONDE_EINVAL;
    }
    if (rc)
        sonde__set_error("%s", err[0] ? err : sonde_strerror(rc));
    return rc;
}

static int sev_rank(const char *s)
{
    int v = s ? sonde_severity_parse(s) : SONDE_EINVAL;
    return v > 0 ? v : 0;
}

/* One element of /errors from stored columns; data must be an object. */
static int put_stored_group(sonde_buf *b, bool *first, const char *fp, int sev, uint64_t count,
                            double first_seen, double last_seen, const char *data, size_t dlen)
{
    if (!fp || strlen(fp) != 16 || dlen < 2 || data[0] != '{' || data[dlen - 1] != '}')
        return SONDE_OK; /* not ours or damaged: skipped */
    int rc = *first ? SONDE_OK : sonde__buf_putc(b, ',');
    *first = false;
    rc = rc ? rc : sonde__errors_json_group_head(b, fp, sev, count, first_seen, last_seen);
    if (dlen > 2) {
        rc = rc ? rc : sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_append(b, data + 1, dlen - 1);
    } else {
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    return rc;
}

/* Whether a stored data object's type is t: it starts {"type":<t as JSON>. */
static bool data_type_is(const char *data, size_t dlen, const char *type)
{
    if (!type)
        return true;
    sonde_buf want = {0};
    bool ok = sonde__buf_puts(&want, "{\"type\":") == SONDE_OK &&
              sonde__buf_json_str(&want, type) == SONDE_OK;
    bool match = ok && dlen >= want.len && memcmp(data, want.data, want.len) == 0 &&
                 (dlen == want.len || data[want.len] == ',' || data[want.len] == '}');
    sonde_buf_free(&want);
    return match;
}

static int read_groups_sqlite(err_store *s, const sonde_errors_filter *f, size_t limit,
                              sonde_buf *b, size_t *total)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM error_groups", -1, &st, NULL) !=
        SQLITE_OK) {
        sonde__set_error("sqlite: %s (no error groups in this store?)", sqlite3_errmsg(s->db));
        return SONDE_EIO;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        *total = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    const char *sql = "SELECT fingerprint, first_seen, last_seen, count, level, data FROM "
                      "error_groups WHERE last_seen >= ?1 ORDER BY last_seen DESC";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sonde__set_error("sqlite: %s", sqlite3_errmsg(s->db));
        return SONDE_EIO;
    }
    sqlite3_bind_int64(st, 1, f && f->since > 0 ? ms(f->since) : INT64_MIN);
    bool first = true;
    size_t shown = 0;
    int rc = SONDE_OK, step;
    while (!rc && shown < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        int sev = sev_rank((const char *)sqlite3_column_text(st, 4));
        const char *data = (const char *)sqlite3_column_text(st, 5);
        size_t dlen = (size_t)sqlite3_column_bytes(st, 5);
        if ((f && f->min_severity && sev < f->min_severity) || !data ||
            !data_type_is(data, dlen, f ? f->type : NULL))
            continue;
        rc = put_stored_group(b, &first, fp, sev, (uint64_t)sqlite3_column_int64(st, 3),
                              (double)sqlite3_column_int64(st, 1) / 1000.0,
                              (double)sqlite3_column_int64(st, 2) / 1000.0, data, dlen);
        shown++;
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *hget(const redisReply *h, const char *field, size_t *len)
{
    if (!h || h->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->str && strcmp(h->element[i]->str, field) == 0) {
            if (len)
                *len = h->element[i + 1]->len;
            return h->element[i + 1]->str;
        }
    return NULL;
}

static double num_of(const char *s)
{
    return s ? sonde__strtod(s, NULL) : 0;
}

static int read_groups_redis(err_store *s, const sonde_errors_filter *f, size_t limit, sonde_buf *b,
                             size_t *total)
{
    char idx[192], from[32];
    snprintf(idx, sizeof idx, "%serrors:groups", s->prefix);
    snprintf(from, sizeof from, "%lld", (long long)(f && f->since > 0 ? ms(f->since) : 0));
    redisReply *cnt = redisCommand(s->rc, "ZCARD %s", idx);
    if (!cnt) {
        sonde__set_error("redis: %s", s->rc->errstr);
        return SONDE_EUNREACHABLE;
    }
    *total = cnt->type == REDIS_REPLY_INTEGER ? (size_t)cnt->integer : 0;
    freeReplyObject(cnt);
    redisReply *ids = redisCommand(s->rc, "ZREVRANGEBYSCORE %s +inf %s", idx, from);
    if (!ids) {
        sonde__set_error("redis: %s", s->rc->errstr);
        return SONDE_EUNREACHABLE;
    }
    bool first = true;
    size_t shown = 0;
    int rc = SONDE_OK;
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements && shown < limit && !rc;
         i++) {
        const char *fp = ids->element[i]->str;
        redisReply *h = redisCommand(s->rc, "HGETALL %serrors:group:%s", s->prefix, fp ? fp : "");
        if (!h) {
            sonde__set_error("redis: %s", s->rc->errstr);
            rc = SONDE_EUNREACHABLE;
            break;
        }
        size_t dlen = 0;
        const char *data = hget(h, "data", &dlen);
        int sev = (int)num_of(hget(h, "rank", NULL));
        if (data && !(f && f->min_severity && sev < f->min_severity) &&
            data_type_is(data, dlen, f ? f->type : NULL)) {
            rc = put_stored_group(b, &first, fp, sev, (uint64_t)num_of(hget(h, "count", NULL)),
                                  num_of(hget(h, "first_seen", NULL)) / 1000.0,
                                  num_of(hget(h, "last_seen", NULL)) / 1000.0, data, dlen);
            shown++;
        }
        freeReplyObject(h);
    }
    freeReplyObject(ids);
    return rc;
}

int sonde_errors_read_store(const char *store, const sonde_errors_filter *f, sonde_buf *out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    err_store *s = NULL;
    int rc = read_open(store, &s);
    if (rc)
        return rc;
    size_t limit = f && f->limit ? f->limit : 100, total = 0;
    size_t mark = out->len;
    sonde_buf groups = {0};
    rc = s->db ? read_groups_sqlite(s, f, limit, &groups, &total)
               : read_groups_redis(s, f, limit, &groups, &total);
    sonde__errstore_close(s);
    rc = rc ? rc : sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, sonde__now_wall());
    rc =
        rc ? rc : sonde__buf_printf(out, ",\"total_groups\":%zu,\"dropped\":0,\"groups\":[", total);
    rc = rc ? rc : sonde__buf_append(out, groups.data ? groups.data : "", groups.len);
    rc = rc ? rc : sonde__buf_puts(out, "]}");
    sonde_buf_free(&groups);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

/* One history element from stored columns. */
static int put_stored_alert(sonde_buf *b, bool *first, const char *rname, const char *state,
                            int64_t started, int64_t resolved, const char *data, size_t dlen)
{
    int rc = *first ? SONDE_OK : sonde__buf_putc(b, ',');
    *first = false;
    rc = rc ? rc : sonde__buf_puts(b, "{\"rule\":");
    rc = rc ? rc : sonde__buf_json_str(b, rname ? rname : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"state\":");
    rc = rc ? rc : sonde__buf_json_str(b, state ? state : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"fired_at\":");
    rc = rc ? rc : sonde__buf_json_time(b, (double)started / 1000.0);
    rc = rc ? rc : sonde__buf_puts(b, ",\"resolved_at\":");
    rc = rc ? rc
            : (resolved > 0 ? sonde__buf_json_time(b, (double)resolved / 1000.0)
                            : sonde__buf_puts(b, "null"));
    if (data && dlen > 2 && data[0] == '{' && data[dlen - 1] == '}') {
        rc = rc ? rc : sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_append(b, data + 1, dlen - 1);
    } else {
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    return rc;
}

#define ALERTS_READ_MAX 200

int sonde_alerts_read_store(const char *store, sonde_buf *out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    err_store *s = NULL;
    int rc = read_open(store, &s);
    if (rc)
        return rc;
    sonde_buf firing = {0}, recent = {0};
    bool ff = true, rf = true;
    if (s->db) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "SELECT rule, state, started, resolved, data FROM alerts "
                               "ORDER BY started DESC, id DESC LIMIT ?1",
                               -1, &st, NULL) != SQLITE_OK) {
            sonde__set_error("sqlite: %s (no alert history in this store?)", sqlite3_errmsg(s->db));
            rc = SONDE_EIO;
        } else {
            sqlite3_bind_int(st, 1, ALERTS_READ_MAX);
            while (!rc && sqlite3_step(st) == SQLITE_ROW) {
                const char *rname = (const char *)sqlite3_column_text(st, 0);
                const char *state = (const char *)sqlite3_column_text(st, 1);
                int64_t started = sqlite3_column_int64(st, 2);
                int64_t resolved =
                    sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 3);
                const char *data = (const char *)sqlite3_column_text(st, 4);
                size_t dlen = (size_t)sqlite3_column_bytes(st, 4);
                rc = put_stored_alert(&recent, &rf, rname, state, started, resolved, data, dlen);
                if (!rc && state && strcmp(state, "firing") == 0)
                    rc =
                        put_stored_alert(&firing, &ff, rname, state, started, resolved, data, dlen);
            }
            sqlite3_finalize(st);
        }
    } else {
        char idx[192];
        snprintf(idx, sizeof idx, "%salerts:history", s->prefix);
        redisReply *ids = redisCommand(s->rc, "ZREVRANGE %s 0 %d", idx, ALERTS_READ_MAX - 1);
        if (!ids) {
            sonde__set_error("redis: %s", s->rc->errstr);
            rc = SONDE_EUNREACHABLE;
        }
        for (size_t i = 0; !rc && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
            const char *id = ids->element[i]->str;
            redisReply *h =
                redisCommand(s->rc, "HGETALL %salerts:alert:%s", s->prefix, id ? id : "");
            if (!h) {
                sonde__set_error("redis: %s", s->rc->errstr);
                rc = SONDE_EUNREACHABLE;
                break;
            }
            size_t dlen = 0;
            const char *data = hget(h, "data", &dlen);
            const char *state = hget(h, "state", NULL);
            const char *rname = hget(h, "rule", NULL);
            int64_t started = (int64_t)num_of(hget(h, "started", NULL));
            int64_t resolved = (int64_t)num_of(hget(h, "resolved", NULL));
            if (rname) {
                rc = put_stored_alert(&recent, &rf, rname, state, started, resolved, data, dlen);
                if (!rc && state && strcmp(state, "firing") == 0)
                    rc =
                        put_stored_alert(&firing, &ff, rname, state, started, resolved, data, dlen);
            }
            freeReplyObject(h);
        }
        if (ids)
            freeReplyObject(ids);
    }
    sonde__errstore_close(s);
    size_t mark = out->len;
    rc = rc ? rc : sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, sonde__now_wall());
    rc = rc ? rc : sonde__buf_puts(out, ",\"firing\":[");
    rc = rc ? rc : sonde__buf_append(out, firing.data ? firing.data : "", firing.len);
    rc = rc ? rc : sonde__buf_puts(out, "],\"pending\":[],\"recent\":[");
    rc = rc ? rc : sonde__buf_append(out, recent.data ? recent.data : "", recent.len);
    rc = rc ? rc : sonde__buf_puts(out, "],\"rules\":[],\"silences\":[],\"notifiers\":[]}");
    sonde_buf_free(&firing);
    sonde_buf_free(&recent);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}
