/*
 * Private to src/store: what the backends' files share. The error-group and
 * alert-history operations (sqlite_errors.c, redis_errors.c) use the
 * connection of the backend context that sqlite.c / redis.c opened.
 */
#ifndef SONDE_STORE_BACKEND_H
#define SONDE_STORE_BACKEND_H

#include "store/store.h"

/* The sqlite3 * of a sonde__store_sqlite context. */
void *sonde__sq_db(void *ctx);
/* The redisContext * of a sonde__store_redis context, and its key prefix. */
void *sonde__rd_conn(void *ctx);
const char *sonde__rd_prefix(void *ctx);

int sonde__sq_write_errors(void *ctx, const sonde__group_row *groups, size_t ngroups,
                           sonde__alert_row *alerts, size_t nalerts, char *err, size_t errlen);
int sonde__sq_prune_errors(void *ctx, int64_t groups_before_ms, int64_t alerts_before_ms, char *err,
                           size_t errlen);
int sonde__sq_read_groups(void *ctx, int64_t since_ms, uint64_t *total, sonde__group_fn fn,
                          void *ud, char *err, size_t errlen);
int sonde__sq_read_alerts(void *ctx, size_t limit, sonde__alert_fn fn, void *ud, char *err,
                          size_t errlen);

int sonde__rd_write_errors(void *ctx, const sonde__group_row *groups, size_t ngroups,
                           sonde__alert_row *alerts, size_t nalerts, char *err, size_t errlen);
int sonde__rd_prune_errors(void *ctx, int64_t groups_before_ms, int64_t alerts_before_ms, char *err,
                           size_t errlen);
int sonde__rd_read_groups(void *ctx, int64_t since_ms, uint64_t *total, sonde__group_fn fn,
                          void *ud, char *err, size_t errlen);
int sonde__rd_read_alerts(void *ctx, size_t limit, sonde__alert_fn fn, void *ud, char *err,
                          size_t errlen);

#endif
