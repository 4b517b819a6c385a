/*
 * Redis (and Valkey) backend over hiredis, blocking with timeouts: it runs
 * on the background thread only, and every call is bounded by the connect
 * and command timeout. Keys (prefix "sonde:" by default):
 *
 *   <prefix>perf:ops              SET of operation names
 *   <prefix>perf:op:<name>        ZSET, score = minute, member = a row
 *                                 (rowcodec.c: minute, errors, id, sketch)
 *   <prefix>perf:baselines        HASH name -> "avg p95 factor window min_count"
 *   <prefix>errors:*, alerts:*    error groups and alert history (redis_errors.c)
 *   <prefix>alerts:silences       HASH id -> "updated_ms ends_ms data"
 *   <prefix>alerts:silences:ends  ZSET, score = ends_ms, member = id (pruning)
 *
 * A member carries its row id, so a write retried after a timeout that
 * actually succeeded adds the same member again: ZADD makes that a no-op.
 */
#include "store/backend.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct rd {
    redisContext *c;
    char *prefix;
    size_t prefix_len;
};

static int set_err(char *err, size_t errlen, const char *what, const char *detail)
{
    if (err && errlen)
        snprintf(err, errlen, "redis: %s: %s", what, detail ? detail : "error");
    return SONDE_EIO;
}

/* A broken connection is reported as SONDE_EUNREACHABLE so store.c reopens. */
static int ctx_err(struct rd *r, char *err, size_t errlen, const char *what)
{
    set_err(err, errlen, what, r->c ? r->c->errstr : "no connection");
    return SONDE_EUNREACHABLE;
}

/* key = prefix + a + b[0..blen) in buf; returns its length or 0 (no memory). */
static size_t make_key(struct rd *r, sonde_buf *buf, const char *a, const char *b, size_t blen)
{
    sonde_buf_reset(buf);
    if (sonde__buf_append(buf, r->prefix, r->prefix_len) != SONDE_OK ||
        sonde__buf_puts(buf, a) != SONDE_OK || (b && sonde__buf_append(buf, b, blen) != SONDE_OK))
        return 0;
    return buf->len;
}

/* Run one command given as argv; the caller frees the reply. NULL on a
 * connection error. */
static redisReply *cmd(struct rd *r, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(r->c, argc, argv, lens);
}

static void rd_close(void *ctx)
{
    struct rd *r = ctx;
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    sonde__free(r->prefix);
    sonde__free(r);
}

static int rd_open(const sonde__store_spec *spec, int readonly, void **ctx, char *err,
                   size_t errlen)
{
    (void)readonly;
    struct rd *r = sonde__calloc(1, sizeof *r);
    if (!r)
        return SONDE_ENOMEM;
    r->prefix = sonde__strdup(spec->prefix ? spec->prefix : "sonde:");
    if (!r->prefix) {
        rd_close(r);
        return SONDE_ENOMEM;
    }
    r->prefix_len = strlen(r->prefix);
    unsigned ms = spec->timeout_ms ? spec->timeout_ms : 250;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    r->c = redisConnectWithTimeout(spec->host, spec->port, tv);
    if (!r->c || r->c->err) {
        char where[300];
        snprintf(where, sizeof where, "connect %s:%d", spec->host, spec->port);
        set_err(err, errlen, where, r->c ? r->c->errstr : "out of memory");
        rd_close(r);
        return SONDE_EUNREACHABLE;
    }
    redisSetTimeout(r->c, tv);
    if (spec->password) {
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (spec->user) {
            argv[argc] = spec->user;
            lens[argc++] = strlen(spec->user);
        }
        argv[argc] = spec->password;
        lens[argc++] = strlen(spec->password);
        redisReply *rep = cmd(r, argc, argv, lens);
        if (!rep) {
            int rc = ctx_err(r, err, errlen, "auth");
            rd_close(r);
            return rc;
        }
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            set_err(err, errlen, "auth", rep->str);
        freeReplyObject(rep);
        if (bad) {
            rd_close(r);
            return SONDE_EIO;
        }
    }
    if (spec->db) {
        redisReply *rep = redisCommand(r->c, "SELECT %d", spec->db);
        if (!rep) {
            int rc = ctx_err(r, err, errlen, "select");
            rd_close(r);
            return rc;
        }
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            set_err(err, errlen, "select", rep->str);
        freeReplyObject(rep);
        if (bad) {
            rd_close(r);
            return SONDE_EIO;
        }
    }
    *ctx = r;
    return SONDE_OK;
}

static int rd_write_rows(void *ctx, const sonde__op_row *const *rows, size_t n, char *err,
                         size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf key = {0}, member = {0}, opskey = {0};
    int rc = SONDE_OK;
    size_t appended = 0;
    if (!make_key(r, &opskey, "perf:ops", NULL, 0))
        rc = SONDE_ENOMEM;
    /* Pipeline: MULTI, every ZADD and SADD, EXEC; then read the replies.
     * MULTI/EXEC makes the batch all-or-nothing on the server. */
    if (rc == SONDE_OK) {
        if (redisAppendCommand(r->c, "MULTI") != REDIS_OK)
            rc = SONDE_ENOMEM;
        else
            appended++;
    }
    for (size_t i = 0; i < n && rc == SONDE_OK; i++) {
        const sonde__op_row *row = rows[i];
        char score[24];
        int sl = snprintf(score, sizeof score, "%lld", (long long)row->minute);
        if (sl < 0 || (size_t)sl >= sizeof score) {
            rc = SONDE_EINVAL;
            break;
        }
        sonde_buf_reset(&member);
        if (!make_key(r, &key, "perf:op:", row->op, row->op_len) ||
            sonde__row_encode(row, &member) != SONDE_OK) {
            rc = SONDE_ENOMEM;
            break;
        }
        const char *zargv[4] = {"ZADD", key.data, score, member.data};
        size_t zlens[4] = {4, key.len, (size_t)sl, member.len};
        const char *sargv[3] = {"SADD", opskey.data, row->op};
        size_t slens[3] = {4, opskey.len, row->op_len};
        if (redisAppendCommandArgv(r->c, 4, zargv, zlens) != REDIS_OK ||
            redisAppendCommandArgv(r->c, 3, sargv, slens) != REDIS_OK) {
            rc = SONDE_ENOMEM;
            break;
        }
        appended += 2;
    }
    if (rc == SONDE_OK) {
        if (redisAppendCommand(r->c, "EXEC") != REDIS_OK)
            rc = SONDE_ENOMEM;
        else
            appended++;
    }
    /* Read every reply that was appended, even after a failure, so the
     * connection stays in step (or report it broken). */
    int broken = 0, failed = 0;
    for (size_t i = 0; i < appended; i++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK) {
            broken = 1;
            break;
        }
        redisReply *rr = rep;
        if (rr->type == REDIS_REPLY_ERROR) {
            if (!failed)
                set_err(err, errlen, "write", rr->str);
            failed = 1;
        } else if (i == appended - 1 && rc == SONDE_OK && rr->type != REDIS_REPLY_ARRAY) {
            /* EXEC answers nil when the transaction was aborted. */
            if (!failed)
                set_err(err, errlen, "write", "transaction aborted");
            failed = 1;
        }
        freeReplyObject(rr);
    }
    sonde_buf_free(&key);
    sonde_buf_free(&member);
    sonde_buf_free(&opskey);
    if (broken)
        return ctx_err(r, err, errlen, "write");
    if (rc != SONDE_OK) {
        /* Commands were appended after MULTI but no EXEC: the server holds
         * a queued transaction; drop the connection rather than reuse it. */
        set_err(err, errlen, "write", sonde_strerror(rc));
        return SONDE_EUNREACHABLE;
    }
    return failed ? SONDE_EIO : SONDE_OK;
}

static int cmp_reply_str(const void *a, const void *b)
{
    const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Visit the rows of one operation. */
static int read_op(struct rd *r, const char *op, size_t op_len, int64_t from, int64_t to,
                   sonde__row_fn fn, void *ud, int *stop, char *err, size_t errlen)
{
    sonde_buf key = {0};
    if (!make_key(r, &key, "perf:op:", op, op_len))
        return SONDE_ENOMEM;
    char lo[24], hi[24];
    int ll = snprintf(lo, sizeof lo, "%lld", (long long)from);
    int hl = snprintf(hi, sizeof hi, "%lld", (long long)to);
    if (ll < 0 || hl < 0 || (size_t)ll >= sizeof lo || (size_t)hl >= sizeof hi) {
        sonde_buf_free(&key);
        return SONDE_EINVAL;
    }
    const char *argv[4] = {"ZRANGEBYSCORE", key.data, lo, hi};
    size_t lens[4] = {13, key.len, (size_t)ll, (size_t)hl};
    redisReply *rep = cmd(r, 4, argv, lens);
    sonde_buf_free(&key);
    if (!rep)
        return ctx_err(r, err, errlen, "read");
    int rc = SONDE_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = set_err(err, errlen, "read", rep->str);
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements && !*stop; i++) {
            redisReply *e = rep->element[i];
            sonde__op_row row;
            memset(&row, 0, sizeof row);
            row.op = op;
            row.op_len = op_len;
            if (e->type != REDIS_REPLY_STRING ||
                sonde__row_decode((const uint8_t *)e->str, e->len, &row) != SONDE_OK) {
                /* Handed on as an empty row with an invalid sketch, so the
                 * caller counts it as a decode error. */
                row.sketch = NULL;
                row.sketch_len = 0;
            }
            if (fn(&row, ud) != 0)
                *stop = 1;
        }
    }
    freeReplyObject(rep);
    return rc;
}

static int rd_read_rows(void *ctx, const char *op, int64_t from, int64_t to, sonde__row_fn fn,
                        void *ud, char *err, size_t errlen)
{
    struct rd *r = ctx;
    int stop = 0;
    if (op)
        return read_op(r, op, strlen(op), from, to, fn, ud, &stop, err, errlen);
    sonde_buf key = {0};
    if (!make_key(r, &key, "perf:ops", NULL, 0))
        return SONDE_ENOMEM;
    const char *argv[2] = {"SMEMBERS", key.data};
    size_t lens[2] = {8, key.len};
    redisReply *rep = cmd(r, 2, argv, lens);
    sonde_buf_free(&key);
    if (!rep)
        return ctx_err(r, err, errlen, "read");
    int rc = SONDE_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = set_err(err, errlen, "read", rep->str);
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        /* Sorted by name, like the SQLite backend. */
        qsort(rep->element, rep->elements, sizeof *rep->element, cmp_reply_str);
        for (size_t i = 0; i < rep->elements && !stop && rc == SONDE_OK; i++) {
            redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 4096)
                continue;
            /* Operation names are NUL-free; a member with a NUL is not ours. */
            if (memchr(e->str, '\0', e->len))
                continue;
            rc = read_op(r, e->str, e->len, from, to, fn, ud, &stop, err, errlen);
        }
    }
    freeReplyObject(rep);
    return rc;
}

static int rd_prune(void *ctx, int64_t before, int *more, char *err, size_t errlen)
{
    struct rd *r = ctx;
    *more = 0; /* ZREMRANGEBYSCORE per operation: one call does it all */
    sonde_buf key = {0};
    if (!make_key(r, &key, "perf:ops", NULL, 0))
        return SONDE_ENOMEM;
    const char *argv[2] = {"SMEMBERS", key.data};
    size_t lens[2] = {8, key.len};
    redisReply *rep = cmd(r, 2, argv, lens);
    if (!rep) {
        sonde_buf_free(&key);
        return ctx_err(r, err, errlen, "prune");
    }
    int rc = SONDE_OK;
    char hi[24];
    int hl = snprintf(hi, sizeof hi, "(%lld", (long long)before);
    if (hl < 0 || (size_t)hl >= sizeof hi)
        rc = SONDE_EINVAL;
    if (rc == SONDE_OK && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            if (!make_key(r, &key, "perf:op:", e->str, e->len)) {
                rc = SONDE_ENOMEM;
                break;
            }
            const char *zargv[4] = {"ZREMRANGEBYSCORE", key.data, "-inf", hi};
            size_t zlens[4] = {16, key.len, 4, (size_t)hl};
            redisReply *z = cmd(r, 4, zargv, zlens);
            if (!z) {
                rc = ctx_err(r, err, errlen, "prune");
                break;
            }
            if (z->type == REDIS_REPLY_ERROR)
                rc = set_err(err, errlen, "prune", z->str);
            freeReplyObject(z);
            if (rc != SONDE_OK)
                break;
        }
    } else if (rep->type == REDIS_REPLY_ERROR) {
        rc = set_err(err, errlen, "prune", rep->str);
    }
    freeReplyObject(rep);
    sonde_buf_free(&key);
    return rc;
}

static int rd_put_baseline(void *ctx, const char *op, const sonde__baseline_row *b, char *err,
                           size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf key = {0};
    if (!make_key(r, &key, "perf:baselines", NULL, 0))
        return SONDE_ENOMEM;
    redisReply *rep;
    if (b) {
        char v[160];
        int vl = snprintf(v, sizeof v, "%.17g %.17g %.17g %u %llu", b->avg, b->p95, b->factor,
                          (unsigned)b->window_minutes, (unsigned long long)b->min_count);
        if (vl < 0 || (size_t)vl >= sizeof v) {
            sonde_buf_free(&key);
            return SONDE_EINVAL;
        }
        const char *argv[4] = {"HSET", key.data, op, v};
        size_t lens[4] = {4, key.len, strlen(op), (size_t)vl};
        rep = cmd(r, 4, argv, lens);
    } else {
        const char *argv[3] = {"HDEL", key.data, op};
        size_t lens[3] = {4, key.len, strlen(op)};
        rep = cmd(r, 3, argv, lens);
    }
    sonde_buf_free(&key);
    if (!rep)
        return ctx_err(r, err, errlen, "baseline");
    int rc = rep->type == REDIS_REPLY_ERROR ? set_err(err, errlen, "baseline", rep->str) : SONDE_OK;
    freeReplyObject(rep);
    return rc;
}

/* Parse "avg p95 factor window min_count"; 0 on success. */
static int parse_baseline(const char *s, size_t n, sonde__baseline_row *b)
{
    char tmp[160];
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    double v[3];
    const char *p = tmp;
    for (int i = 0; i < 3; i++) {
        v[i] = sonde__strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
    }
    unsigned long long w = strtoull(p, &end, 10);
    if (end == p || w > 1000000)
        return -1;
    p = end;
    unsigned long long m = strtoull(p, &end, 10);
    if (end == p || *end != '\0')
        return -1;
    b->avg = v[0];
    b->p95 = v[1];
    b->factor = v[2];
    b->window_minutes = (uint32_t)w;
    b->min_count = m;
    return 0;
}

static int rd_read_baselines(void *ctx, sonde__baseline_fn fn, void *ud, char *err, size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf key = {0};
    if (!make_key(r, &key, "perf:baselines", NULL, 0))
        return SONDE_ENOMEM;
    const char *argv[2] = {"HGETALL", key.data};
    size_t lens[2] = {7, key.len};
    redisReply *rep = cmd(r, 2, argv, lens);
    sonde_buf_free(&key);
    if (!rep)
        return ctx_err(r, err, errlen, "read baselines");
    int rc = SONDE_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = set_err(err, errlen, "read baselines", rep->str);
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            redisReply *k = rep->element[i], *v = rep->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (memchr(k->str, '\0', k->len))
                continue;
            sonde__baseline_row b;
            if (parse_baseline(v->str, v->len, &b) != 0)
                continue;
            b.op = k->str;
            if (fn(&b, ud) != 0)
                break;
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* KEYS: the hash, the ends index; ARGV: id, updated, ends, data. An older
 * save than the stored one is ignored. */
static const char save_silence_lua[] =
    "local old = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if old then local u = tonumber(string.match(old, '^(-?%d+) ')) "
    "if u and u > tonumber(ARGV[2]) then return 0 end end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4]) "
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) "
    "return 1";

/* KEYS: the hash, the ends index; ARGV: ended before (ms). */
static const char prune_silences_lua[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000) "
    "for _, id in ipairs(ids) do redis.call('HDEL', KEYS[1], id) "
    "redis.call('ZREM', KEYS[2], id) end "
    "return #ids";

static int silence_keys(struct rd *r, sonde_buf *h, sonde_buf *z)
{
    return make_key(r, h, "alerts:silences", NULL, 0) &&
                   make_key(r, z, "alerts:silences:ends", NULL, 0)
               ? SONDE_OK
               : SONDE_ENOMEM;
}

static int rd_save_silence(void *ctx, const sonde__silence_row *s, char *err, size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf h = {0}, z = {0};
    int rc = silence_keys(r, &h, &z);
    if (rc) {
        sonde_buf_free(&h);
        sonde_buf_free(&z);
        return rc;
    }
    char upd[24], ends[24];
    snprintf(upd, sizeof upd, "%lld", (long long)s->updated_ms);
    snprintf(ends, sizeof ends, "%lld", (long long)s->ends_ms);
    const char *argv[9] = {"EVAL", save_silence_lua, "2", h.data, z.data, s->id, upd,
                           ends,   s->data};
    size_t lens[9] = {4,           strlen(save_silence_lua),
                      1,           h.len,
                      z.len,       strlen(s->id),
                      strlen(upd), strlen(ends),
                      s->data_len};
    redisReply *rep = cmd(r, 9, argv, lens);
    sonde_buf_free(&h);
    sonde_buf_free(&z);
    if (!rep)
        return ctx_err(r, err, errlen, "save silence");
    rc = rep->type == REDIS_REPLY_ERROR ? set_err(err, errlen, "save silence", rep->str) : SONDE_OK;
    freeReplyObject(rep);
    return rc;
}

/* Parse "updated ends data" into s (data points into v). 0 on success. */
static int parse_silence(const char *v, size_t n, sonde__silence_row *s)
{
    char num[24];
    const char *p = v, *end = v + n;
    int64_t vals[2];
    for (int i = 0; i < 2; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp || sp == p || (size_t)(sp - p) >= sizeof num)
            return -1;
        memcpy(num, p, (size_t)(sp - p));
        num[sp - p] = '\0';
        char *e;
        long long x = strtoll(num, &e, 10);
        if (*e != '\0')
            return -1;
        vals[i] = x;
        p = sp + 1;
    }
    s->updated_ms = vals[0];
    s->ends_ms = vals[1];
    s->data = p;
    s->data_len = (size_t)(end - p);
    return 0;
}

static int rd_read_silences(void *ctx, sonde__silence_fn fn, void *ud, char *err, size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf key = {0};
    if (!make_key(r, &key, "alerts:silences", NULL, 0))
        return SONDE_ENOMEM;
    const char *argv[2] = {"HGETALL", key.data};
    size_t lens[2] = {7, key.len};
    redisReply *rep = cmd(r, 2, argv, lens);
    sonde_buf_free(&key);
    if (!rep)
        return ctx_err(r, err, errlen, "read silences");
    int rc = SONDE_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = set_err(err, errlen, "read silences", rep->str);
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            redisReply *k = rep->element[i], *v = rep->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                memchr(k->str, '\0', k->len))
                continue;
            sonde__silence_row s;
            if (parse_silence(v->str, v->len, &s) != 0)
                continue;
            s.id = k->str;
            if (fn(&s, ud) != 0)
                break;
        }
    }
    freeReplyObject(rep);
    return rc;
}

static int rd_prune_silences(void *ctx, int64_t ended_before_ms, char *err, size_t errlen)
{
    struct rd *r = ctx;
    sonde_buf h = {0}, z = {0};
    int rc = silence_keys(r, &h, &z);
    if (rc) {
        sonde_buf_free(&h);
        sonde_buf_free(&z);
        return rc;
    }
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)ended_before_ms);
    const char *argv[6] = {"EVAL", prune_silences_lua, "2", h.data, z.data, before};
    size_t lens[6] = {4, strlen(prune_silences_lua), 1, h.len, z.len, strlen(before)};
    redisReply *rep = cmd(r, 6, argv, lens);
    sonde_buf_free(&h);
    sonde_buf_free(&z);
    if (!rep)
        return ctx_err(r, err, errlen, "prune silences");
    rc = rep->type == REDIS_REPLY_ERROR ? set_err(err, errlen, "prune silences", rep->str)
                                        : SONDE_OK;
    freeReplyObject(rep);
    return rc;
}

const sonde__store_type sonde__store_redis = {
    .name = "redis",
    .open = rd_open,
    .close = rd_close,
    .write_rows = rd_write_rows,
    .read_rows = rd_read_rows,
    .prune = rd_prune,
    .put_baseline = rd_put_baseline,
    .read_baselines = rd_read_baselines,
    .write_errors = sonde__rd_write_errors,
    .prune_errors = sonde__rd_prune_errors,
    .read_groups = sonde__rd_read_groups,
    .read_alerts = sonde__rd_read_alerts,
    .save_silence = rd_save_silence,
    .read_silences = rd_read_silences,
    .prune_silences = rd_prune_silences,
};

void *sonde__rd_conn(void *ctx)
{
    return ctx ? ((struct rd *)ctx)->c : NULL;
}

const char *sonde__rd_prefix(void *ctx)
{
    return ctx ? ((struct rd *)ctx)->prefix : "sonde:";
}
