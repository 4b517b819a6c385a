/*
 * Error groups and alert history in the SQLite backend, in the tables of
 * migration 1 (sqlite.c), times in milliseconds since the epoch:
 *   error_groups(fingerprint PK, first_seen, last_seen, count, level,
 *                message, data)
 *   alerts(id PK, rule, state, fingerprint, started, resolved, data)
 * Counts are merged as deltas, so several processes (or restarts) add up.
 */
#include "store/backend.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

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

static int fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "sqlite: %s: %s", what, sqlite3_errmsg(db));
    return SONDE_EIO;
}

static int put_group(sqlite3_stmt *st, const sonde__group_row *g)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, g->fp, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, g->first_ms);
    sqlite3_bind_int64(st, 3, g->last_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)g->count);
    sqlite3_bind_text(st, 5, g->level ? g->level : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, g->message ? g->message : "", (int)g->message_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, g->data ? g->data : "{}", g->data ? (int)g->data_len : 2,
                      SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_DONE ? SONDE_OK : SONDE_EIO;
}

static void bind_resolved(sqlite3_stmt *st, int i, int64_t resolved_ms)
{
    if (resolved_ms > 0)
        sqlite3_bind_int64(st, i, resolved_ms);
    else
        sqlite3_bind_null(st, i);
}

static int put_alert(sqlite3_stmt *ins, sqlite3_stmt *upd, const sonde__alert_row *a)
{
    sqlite3_stmt *st = a->row_id ? upd : ins;
    sqlite3_reset(st);
    if (a->row_id) {
        sqlite3_bind_int64(st, 1, a->row_id);
        sqlite3_bind_text(st, 2, a->state, -1, SQLITE_STATIC);
        bind_resolved(st, 3, a->resolved_ms);
        sqlite3_bind_text(st, 4, a->data, (int)a->data_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_text(st, 1, a->rule ? a->rule : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->state, -1, SQLITE_STATIC);
        sqlite3_bind_null(st, 3);
        sqlite3_bind_int64(st, 4, a->started_ms);
        bind_resolved(st, 5, a->resolved_ms);
        sqlite3_bind_text(st, 6, a->data, (int)a->data_len, SQLITE_STATIC);
    }
    return sqlite3_step(st) == SQLITE_DONE ? SONDE_OK : SONDE_EIO;
}

int sonde__sq_write_errors(void *ctx, const sonde__group_row *groups, size_t ngroups,
                           sonde__alert_row *alerts, size_t nalerts, char *err, size_t errlen)
{
    sqlite3 *db = sonde__sq_db(ctx);
    sqlite3_stmt *up = NULL, *ins = NULL, *upd = NULL;
    if (sqlite3_prepare_v2(db, up_group_sql, -1, &up, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO alerts(rule, state, fingerprint, started, resolved, data) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "UPDATE alerts SET state = ?2, resolved = ?3, data = ?4 WHERE id = ?1",
                           -1, &upd, NULL) != SQLITE_OK) {
        int rc = fail(db, err, errlen, "prepare");
        sqlite3_finalize(up);
        sqlite3_finalize(ins);
        sqlite3_finalize(upd);
        return rc;
    }
    /* Alerts this call inserted: their row ids do not exist after a
     * rollback. */
    size_t *inserted = sonde__calloc(nalerts ? nalerts : 1, sizeof *inserted);
    size_t ninserted = 0;
    int rc = inserted ? SONDE_OK : SONDE_ENOMEM;
    if (!rc && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(db, err, errlen, "begin");
    for (size_t i = 0; i < ngroups && !rc; i++)
        if (put_group(up, &groups[i]))
            rc = fail(db, err, errlen, "write group");
    for (size_t i = 0; i < nalerts && !rc; i++) {
        if (put_alert(ins, upd, &alerts[i])) {
            rc = fail(db, err, errlen, "write alert");
        } else if (!alerts[i].row_id) {
            alerts[i].row_id = sqlite3_last_insert_rowid(db);
            inserted[ninserted++] = i;
        }
    }
    sqlite3_finalize(up);
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(db, err, errlen, "commit");
    if (rc && rc != SONDE_ENOMEM) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        for (size_t k = 0; k < ninserted; k++)
            alerts[inserted[k]].row_id = 0;
    }
    sonde__free(inserted);
    return rc;
}

int sonde__sq_prune_errors(void *ctx, int64_t groups_before_ms, int64_t alerts_before_ms, char *err,
                           size_t errlen)
{
    sqlite3 *db = sonde__sq_db(ctx);
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM error_groups WHERE last_seen < %lld; DELETE FROM alerts WHERE "
             "coalesce(resolved, started) < %lld AND state != 'firing'",
             (long long)groups_before_ms, (long long)alerts_before_ms);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(db, err, errlen, "prune errors");
    return SONDE_OK;
}

int sonde__sq_read_groups(void *ctx, int64_t since_ms, uint64_t *total, sonde__group_fn fn,
                          void *ud, char *err, size_t errlen)
{
    sqlite3 *db = sonde__sq_db(ctx);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM error_groups", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s (no error groups in this store?)", sqlite3_errmsg(db));
        return SONDE_EIO;
    }
    *total = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *total = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    const char *sql = "SELECT fingerprint, first_seen, last_seen, count, CASE level WHEN 'low' "
                      "THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 WHEN 'critical' THEN 4 "
                      "ELSE 0 END, data FROM error_groups WHERE last_seen >= ?1 "
                      "ORDER BY last_seen DESC";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(db, err, errlen, "read groups");
    sqlite3_bind_int64(st, 1, since_ms);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        sonde__group_row g = {0};
        g.fp = (const char *)sqlite3_column_text(st, 0);
        g.first_ms = sqlite3_column_int64(st, 1);
        g.last_ms = sqlite3_column_int64(st, 2);
        sqlite3_int64 c = sqlite3_column_int64(st, 3);
        g.count = c < 0 ? 0 : (uint64_t)c;
        g.rank = sqlite3_column_int(st, 4);
        g.data = (const char *)sqlite3_column_text(st, 5);
        g.data_len = (size_t)sqlite3_column_bytes(st, 5);
        if (!g.fp || !g.data)
            continue;
        if (fn(&g, ud) != 0)
            break;
    }
    int rc =
        step == SQLITE_ROW || step == SQLITE_DONE ? SONDE_OK : fail(db, err, errlen, "read groups");
    sqlite3_finalize(st);
    return rc;
}

int sonde__sq_read_alerts(void *ctx, size_t limit, sonde__alert_fn fn, void *ud, char *err,
                          size_t errlen)
{
    sqlite3 *db = sonde__sq_db(ctx);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, rule, state, started, resolved, data FROM alerts "
                           "ORDER BY started DESC, id DESC LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s (no alert history in this store?)", sqlite3_errmsg(db));
        return SONDE_EIO;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        sonde__alert_row a = {0};
        a.row_id = sqlite3_column_int64(st, 0);
        a.rule = (const char *)sqlite3_column_text(st, 1);
        a.state = (const char *)sqlite3_column_text(st, 2);
        a.started_ms = sqlite3_column_int64(st, 3);
        a.resolved_ms = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
        a.data = (const char *)sqlite3_column_text(st, 5);
        a.data_len = (size_t)sqlite3_column_bytes(st, 5);
        if (fn(&a, ud) != 0)
            break;
    }
    int rc =
        step == SQLITE_ROW || step == SQLITE_DONE ? SONDE_OK : fail(db, err, errlen, "read alerts");
    sqlite3_finalize(st);
    return rc;
}
