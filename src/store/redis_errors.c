/*
 * Error groups and alert history in the Redis backend (prefix "sonde:" by
 * default), times in milliseconds since the epoch:
 *   <p>errors:groups        ZSET fingerprint by last_seen
 *   <p>errors:group:<fp>    HASH first_seen last_seen count rank message data
 *   <p>alerts:history       ZSET alert key by started
 *   <p>alerts:alert:<key>   HASH rule state started resolved data
 * Group counts are merged as deltas by a script, so several processes (or
 * restarts) add up; an alert is saved whole under its key, so a retried
 * write changes nothing.
 */
#include "store/backend.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define PRUNE_BATCH 500

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

static int unreachable(redisContext *c, char *err, size_t errlen)
{
    snprintf(err, errlen, "redis: %s", c && c->errstr[0] ? c->errstr : "no reply");
    return SONDE_EUNREACHABLE;
}

/* Read the replies of n pipelined commands and check every one;
 * SONDE_EUNREACHABLE on a broken connection. */
static int replies(redisContext *c, size_t n, char *err, size_t errlen)
{
    int rc = SONDE_OK;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep)
            return unreachable(c, err, errlen);
        if (rep->type == REDIS_REPLY_ERROR && !rc) {
            snprintf(err, errlen, "redis: %s", rep->str);
            rc = SONDE_EIO;
        }
        freeReplyObject(rep);
    }
    return rc;
}

int sonde__rd_write_errors(void *ctx, const sonde__group_row *groups, size_t ngroups,
                           sonde__alert_row *alerts, size_t nalerts, char *err, size_t errlen)
{
    redisContext *c = sonde__rd_conn(ctx);
    const char *prefix = sonde__rd_prefix(ctx);
    char key[256], idx[192];
    snprintf(idx, sizeof idx, "%serrors:groups", prefix);
    size_t sent = 0;
    int rc = SONDE_OK;
    for (size_t i = 0; i < ngroups && !rc; i++) {
        const sonde__group_row *g = &groups[i];
        char a1[24], a2[24], a3[24], a4[12];
        snprintf(key, sizeof key, "%serrors:group:%s", prefix, g->fp);
        snprintf(a1, sizeof a1, "%lld", (long long)g->first_ms);
        snprintf(a2, sizeof a2, "%lld", (long long)g->last_ms);
        snprintf(a3, sizeof a3, "%llu", (unsigned long long)g->count);
        snprintf(a4, sizeof a4, "%d", g->rank);
        const char *msg = g->message ? g->message : "";
        const char *data = g->data ? g->data : "{}";
        const char *argv[12] = {"EVAL", up_group_lua, "2", key, idx,  a1,
                                a2,     a3,           a4,  msg, data, g->fp};
        size_t lens[12] = {4,
                           strlen(up_group_lua),
                           1,
                           strlen(key),
                           strlen(idx),
                           strlen(a1),
                           strlen(a2),
                           strlen(a3),
                           strlen(a4),
                           g->message_len,
                           g->data ? g->data_len : 2,
                           strlen(g->fp)};
        if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK)
            rc = SONDE_ENOMEM;
        else
            sent++;
    }
    snprintf(idx, sizeof idx, "%salerts:history", prefix);
    for (size_t k = 0; k < nalerts && !rc; k++) {
        const sonde__alert_row *a = &alerts[k];
        char started[24], resolved[24];
        snprintf(key, sizeof key, "%salerts:alert:%s", prefix, a->key);
        snprintf(started, sizeof started, "%lld", (long long)a->started_ms);
        snprintf(resolved, sizeof resolved, "%lld", (long long)a->resolved_ms);
        const char *rname = a->rule ? a->rule : "";
        const char *argv[12] = {"HSET",    key,     "rule",     rname,    "state", a->state,
                                "started", started, "resolved", resolved, "data",  a->data};
        size_t lens[12] = {4, strlen(key),     4, strlen(rname),    5, strlen(a->state),
                           7, strlen(started), 8, strlen(resolved), 4, a->data_len};
        const char *zargv[4] = {"ZADD", idx, started, a->key};
        size_t zlens[4] = {4, strlen(idx), strlen(started), strlen(a->key)};
        if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK)
            rc = SONDE_ENOMEM;
        else if (sent++, redisAppendCommandArgv(c, 4, zargv, zlens) != REDIS_OK)
            rc = SONDE_ENOMEM;
        else
            sent++;
    }
    int r2 = replies(c, sent, err, errlen);
    return rc ? rc : r2;
}

int sonde__rd_prune_errors(void *ctx, int64_t groups_before_ms, int64_t alerts_before_ms, char *err,
                           size_t errlen)
{
    redisContext *c = sonde__rd_conn(ctx);
    const char *prefix = sonde__rd_prefix(ctx);
    /* Old members of each index, a batch at a time. */
    static const char *const idx_names[2] = {"errors:groups", "alerts:history"};
    static const char *const key_names[2] = {"errors:group:", "alerts:alert:"};
    for (int i = 0; i < 2; i++) {
        char idx[192], cut[32];
        snprintf(idx, sizeof idx, "%s%s", prefix, idx_names[i]);
        snprintf(cut, sizeof cut, "(%lld", (long long)(i ? alerts_before_ms : groups_before_ms));
        redisReply *rep =
            redisCommand(c, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", idx, cut, PRUNE_BATCH);
        if (!rep)
            return unreachable(c, err, errlen);
        size_t sent = 0;
        if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < rep->elements; k++) {
                const char *m = rep->element[k]->str;
                redisAppendCommand(c, "DEL %s%s%s", prefix, key_names[i], m ? m : "");
                redisAppendCommand(c, "ZREM %s %s", idx, m ? m : "");
                sent += 2;
            }
        }
        freeReplyObject(rep);
        int rc = replies(c, sent, err, errlen);
        if (rc)
            return rc;
    }
    return SONDE_OK;
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

static int64_t int_of(const char *s)
{
    return s ? (int64_t)sonde__strtod(s, NULL) : 0;
}

int sonde__rd_read_groups(void *ctx, int64_t since_ms, uint64_t *total, sonde__group_fn fn,
                          void *ud, char *err, size_t errlen)
{
    redisContext *c = sonde__rd_conn(ctx);
    const char *prefix = sonde__rd_prefix(ctx);
    char idx[192], from[32];
    snprintf(idx, sizeof idx, "%serrors:groups", prefix);
    snprintf(from, sizeof from, "%lld", (long long)(since_ms > 0 ? since_ms : 0));
    redisReply *cnt = redisCommand(c, "ZCARD %s", idx);
    if (!cnt)
        return unreachable(c, err, errlen);
    *total = cnt->type == REDIS_REPLY_INTEGER && cnt->integer > 0 ? (uint64_t)cnt->integer : 0;
    freeReplyObject(cnt);
    redisReply *ids = redisCommand(c, "ZREVRANGEBYSCORE %s +inf %s", idx, from);
    if (!ids)
        return unreachable(c, err, errlen);
    int rc = SONDE_OK;
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        const char *fp = ids->element[i]->str;
        if (!fp)
            continue;
        redisReply *h = redisCommand(c, "HGETALL %serrors:group:%s", prefix, fp);
        if (!h) {
            rc = unreachable(c, err, errlen);
            break;
        }
        sonde__group_row g = {0};
        g.fp = fp;
        g.data = hget(h, "data", &g.data_len);
        g.rank = (int)int_of(hget(h, "rank", NULL));
        int64_t n = int_of(hget(h, "count", NULL));
        g.count = n < 0 ? 0 : (uint64_t)n;
        g.first_ms = int_of(hget(h, "first_seen", NULL));
        g.last_ms = int_of(hget(h, "last_seen", NULL));
        int stop = g.data ? fn(&g, ud) : 0;
        freeReplyObject(h);
        if (stop)
            break;
    }
    freeReplyObject(ids);
    return rc;
}

int sonde__rd_read_alerts(void *ctx, size_t limit, sonde__alert_fn fn, void *ud, char *err,
                          size_t errlen)
{
    redisContext *c = sonde__rd_conn(ctx);
    const char *prefix = sonde__rd_prefix(ctx);
    if (limit == 0)
        return SONDE_OK;
    char idx[192];
    snprintf(idx, sizeof idx, "%salerts:history", prefix);
    redisReply *ids = redisCommand(c, "ZREVRANGE %s 0 %lld", idx, (long long)limit - 1);
    if (!ids)
        return unreachable(c, err, errlen);
    int rc = SONDE_OK;
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        const char *id = ids->element[i]->str;
        redisReply *h = redisCommand(c, "HGETALL %salerts:alert:%s", prefix, id ? id : "");
        if (!h) {
            rc = unreachable(c, err, errlen);
            break;
        }
        sonde__alert_row a = {0};
        a.key = id;
        a.rule = hget(h, "rule", NULL);
        a.state = hget(h, "state", NULL);
        a.started_ms = int_of(hget(h, "started", NULL));
        a.resolved_ms = int_of(hget(h, "resolved", NULL));
        a.data = hget(h, "data", &a.data_len);
        int stop = a.rule ? fn(&a, ud) : 0;
        freeReplyObject(h);
        if (stop)
            break;
    }
    freeReplyObject(ids);
    return rc;
}
