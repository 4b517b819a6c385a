/*
 * SQLite backend. One connection per store, used by one thread at a time
 * (store.c serialises), opened with SQLITE_OPEN_NOMUTEX.
 *
 * Durability: WAL journal with synchronous=NORMAL. A transaction that
 * COMMIT returned for survives the process being killed at any point (the
 * WAL is replayed or ignored atomically at the next open); only a power
 * loss may drop the last transactions, never corrupt the file.
 *
 * Schema versions live in PRAGMA user_version; migrations[i] takes the
 * database from version i to i + 1 inside one IMMEDIATE transaction, so two
 * processes opening the same new file do not both migrate it.
 */
#include "store/backend.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* Migration i goes from user_version i to i + 1. Never edit a released
 * entry: append a new one. */
static const char *const migrations[] = {
    /* 0 -> 1: operation minutes, baselines; error groups and alerts are
     * reserved for error tracking and alerting. */
    "CREATE TABLE op_minutes ("
    "  id INTEGER PRIMARY KEY,"
    "  op TEXT NOT NULL,"
    "  minute INTEGER NOT NULL," /* minutes since the Unix epoch, UTC */
    "  count INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  sum REAL NOT NULL," /* seconds */
    "  min REAL,"
    "  max REAL,"
    "  sketch BLOB NOT NULL);" /* core/sketch.h encoding */
    "CREATE INDEX op_minutes_by_minute ON op_minutes(minute);"
    "CREATE INDEX op_minutes_by_op ON op_minutes(op, minute);"
    "CREATE TABLE baselines ("
    "  op TEXT PRIMARY KEY,"
    "  avg REAL NOT NULL,"
    "  p95 REAL NOT NULL,"
    "  factor REAL NOT NULL,"
    "  window_minutes INTEGER NOT NULL,"
    "  min_count INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE error_groups ("
    "  fingerprint TEXT PRIMARY KEY,"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  level TEXT,"
    "  message TEXT,"
    "  data TEXT);"
    "CREATE TABLE alerts ("
    "  id INTEGER PRIMARY KEY,"
    "  rule TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  fingerprint TEXT,"
    "  started INTEGER NOT NULL,"
    "  resolved INTEGER,"
    "  data TEXT);"
    "CREATE INDEX alerts_by_started ON alerts(started);",
    /* 1 -> 2: alert silences (src/errors/silences.c), times in ms. */
    "CREATE TABLE silences ("
    "  id TEXT PRIMARY KEY,"
    "  ends INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX silences_by_ends ON silences(ends);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Writers wait this long for a lock held by another process; readers
 * (a reader program) longer. */
#define WRITER_BUSY_MS 250
#define READER_BUSY_MS 2000

struct sq {
    sqlite3 *db;
    sqlite3_stmt *insert;
    int readonly;
};

static int set_err(char *err, size_t errlen, const char *what, sqlite3 *db)
{
    if (err && errlen)
        snprintf(err, errlen, "sqlite: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return SONDE_EIO;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen, const char *what)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return set_err(err, errlen, what, db);
    return SONDE_OK;
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    for (;;) {
        int v;
        if (user_version(db, &v) != 0)
            return set_err(err, errlen, "read schema version", db);
        if (v == SCHEMA_VERSION)
            return SONDE_OK;
        if (v > SCHEMA_VERSION) {
            if (err && errlen)
                snprintf(err, errlen, "sqlite: schema version %d is newer than this sonde (%d)", v,
                         SCHEMA_VERSION);
            return SONDE_EIO;
        }
        int rc = exec(db, "BEGIN IMMEDIATE", err, errlen, "begin migration");
        if (rc != SONDE_OK)
            return rc;
        /* Another process may have migrated between the read and BEGIN. */
        int v2;
        if (user_version(db, &v2) != 0 || v2 != v) {
            exec(db, "ROLLBACK", NULL, 0, "");
            continue;
        }
        char set[64];
        snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
        rc = exec(db, migrations[v], err, errlen, "migrate");
        if (rc == SONDE_OK)
            rc = exec(db, set, err, errlen, "set schema version");
        if (rc == SONDE_OK)
            rc = exec(db, "COMMIT", err, errlen, "commit migration");
        if (rc != SONDE_OK) {
            exec(db, "ROLLBACK", NULL, 0, "");
            return rc;
        }
    }
}

static void sq_close(void *ctx)
{
    struct sq *q = ctx;
    if (!q)
        return;
    sqlite3_finalize(q->insert);
    sqlite3_close_v2(q->db);
    sonde__free(q);
}

static int sq_open(const sonde__store_spec *spec, int readonly, void **ctx, char *err,
                   size_t errlen)
{
    struct sq *q = sonde__calloc(1, sizeof *q);
    if (!q)
        return SONDE_ENOMEM;
    q->readonly = readonly;
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(spec->path, &q->db, flags, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "open", q->db);
        sq_close(q);
        return SONDE_EIO;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, readonly ? READER_BUSY_MS : WRITER_BUSY_MS);
    if (readonly) {
        int v = 0;
        if (user_version(q->db, &v) != 0) {
            set_err(err, errlen, "read schema version", q->db);
            sq_close(q);
            return SONDE_EIO;
        }
        if (v < 1 || v > SCHEMA_VERSION) {
            if (err && errlen)
                snprintf(err, errlen, "sqlite: %s is not a sonde store (schema version %d)",
                         spec->path, v);
            sq_close(q);
            return SONDE_EIO;
        }
        *ctx = q;
        return SONDE_OK;
    }
    int r = exec(q->db, "PRAGMA journal_mode=WAL", err, errlen, "enable WAL");
    if (r == SONDE_OK)
        r = exec(q->db, "PRAGMA synchronous=NORMAL", err, errlen, "set synchronous");
    if (r == SONDE_OK)
        r = migrate(q->db, err, errlen);
    if (r == SONDE_OK &&
        sqlite3_prepare_v2(
            q->db,
            "INSERT INTO op_minutes(op, minute, count, errors, sum, min, max, sketch)"
            " VALUES(?,?,?,?,?,?,?,?)",
            -1, &q->insert, NULL) != SQLITE_OK)
        r = set_err(err, errlen, "prepare insert", q->db);
    if (r != SONDE_OK) {
        sq_close(q);
        return r;
    }
    *ctx = q;
    return SONDE_OK;
}

static int sq_write_rows(void *ctx, const sonde__op_row *const *rows, size_t n, char *err,
                         size_t errlen)
{
    struct sq *q = ctx;
    int rc = exec(q->db, "BEGIN IMMEDIATE", err, errlen, "begin");
    if (rc != SONDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const sonde__op_row *r = rows[i];
        sqlite3_stmt *st = q->insert;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, r->op, (int)r->op_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r->minute);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->count);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->errors);
        sqlite3_bind_double(st, 5, r->sum);
        sqlite3_bind_double(st, 6, r->min);
        sqlite3_bind_double(st, 7, r->max);
        sqlite3_bind_blob(st, 8, r->sketch, (int)r->sketch_len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            set_err(err, errlen, "insert", q->db);
            sqlite3_reset(st);
            exec(q->db, "ROLLBACK", NULL, 0, "");
            return SONDE_EIO;
        }
    }
    sqlite3_reset(q->insert);
    sqlite3_clear_bindings(q->insert);
    rc = exec(q->db, "COMMIT", err, errlen, "commit");
    if (rc != SONDE_OK)
        exec(q->db, "ROLLBACK", NULL, 0, "");
    return rc;
}

static int sq_read_rows(void *ctx, const char *op, int64_t from, int64_t to, sonde__row_fn fn,
                        void *ud, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    const char *sql = op ? "SELECT op, minute, errors, sketch FROM op_minutes"
                           " WHERE op = ?3 AND minute >= ?1 AND minute <= ?2 ORDER BY minute, id"
                         : "SELECT op, minute, errors, sketch FROM op_minutes"
                           " WHERE minute >= ?1 AND minute <= ?2 ORDER BY op, minute, id";
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare select", q->db);
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    if (op)
        sqlite3_bind_text(st, 3, op, -1, SQLITE_STATIC);
    int rc;
    int result = SONDE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sonde__op_row row;
        memset(&row, 0, sizeof row);
        row.op = (const char *)sqlite3_column_text(st, 0);
        row.op_len = (size_t)sqlite3_column_bytes(st, 0);
        row.minute = sqlite3_column_int64(st, 1);
        sqlite3_int64 e = sqlite3_column_int64(st, 2);
        row.errors = e < 0 ? UINT64_MAX : (uint64_t)e; /* negative: corrupt, refused later */
        row.sketch = sqlite3_column_blob(st, 3);
        row.sketch_len = (size_t)sqlite3_column_bytes(st, 3);
        if (!row.op)
            row.op = "";
        if (fn(&row, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = set_err(err, errlen, "select", q->db);
    sqlite3_finalize(st);
    return result;
}

/* Rows deleted per transaction, and transactions per call: a call stays
 * in the tens of milliseconds, and readers or another writer never wait
 * long for the lock. */
#define PRUNE_CHUNK 5000
#define PRUNE_CHUNKS_PER_CALL 4

static int sq_prune(void *ctx, int64_t before, int *more, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db,
                           "DELETE FROM op_minutes WHERE id IN"
                           " (SELECT id FROM op_minutes WHERE minute < ? LIMIT 5000)",
                           -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare prune", q->db);
    int result = SONDE_OK;
    *more = 1;
    for (int i = 0; i < PRUNE_CHUNKS_PER_CALL; i++) {
        sqlite3_bind_int64(st, 1, before);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            result = set_err(err, errlen, "prune", q->db);
            *more = 0;
            break;
        }
        if (sqlite3_changes(q->db) < PRUNE_CHUNK) {
            *more = 0;
            break;
        }
    }
    sqlite3_finalize(st);
    return result;
}

static int sq_put_baseline(void *ctx, const char *op, const sonde__baseline_row *b, char *err,
                           size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    const char *sql = b ? "INSERT OR REPLACE INTO baselines(op, avg, p95, factor, window_minutes,"
                          " min_count, updated) VALUES(?,?,?,?,?,?,strftime('%s','now'))"
                        : "DELETE FROM baselines WHERE op = ?";
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare baseline", q->db);
    sqlite3_bind_text(st, 1, op, -1, SQLITE_STATIC);
    if (b) {
        sqlite3_bind_double(st, 2, b->avg);
        sqlite3_bind_double(st, 3, b->p95);
        sqlite3_bind_double(st, 4, b->factor);
        sqlite3_bind_int64(st, 5, b->window_minutes);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)b->min_count);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SONDE_OK : set_err(err, errlen, "save baseline", q->db);
}

static int sq_read_baselines(void *ctx, sonde__baseline_fn fn, void *ud, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT op, avg, p95, factor, window_minutes, min_count FROM baselines"
                           " ORDER BY op",
                           -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare baselines", q->db);
    int rc, result = SONDE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sonde__baseline_row b;
        b.op = (const char *)sqlite3_column_text(st, 0);
        b.avg = sqlite3_column_double(st, 1);
        b.p95 = sqlite3_column_double(st, 2);
        b.factor = sqlite3_column_double(st, 3);
        sqlite3_int64 w = sqlite3_column_int64(st, 4), m = sqlite3_column_int64(st, 5);
        b.window_minutes = w < 0 ? 0 : w > 1000000 ? 1000000 : (uint32_t)w;
        b.min_count = m < 0 ? 0 : (uint64_t)m;
        if (!b.op)
            continue;
        if (fn(&b, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = set_err(err, errlen, "read baselines", q->db);
    sqlite3_finalize(st);
    return result;
}

static int sq_save_silence(void *ctx, const sonde__silence_row *s, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO silences(id, ends, updated, data) VALUES(?1,?2,?3,?4)"
                           " ON CONFLICT(id) DO UPDATE SET ends = excluded.ends,"
                           " updated = excluded.updated, data = excluded.data"
                           " WHERE excluded.updated >= silences.updated",
                           -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare silence", q->db);
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s->ends_ms);
    sqlite3_bind_int64(st, 3, s->updated_ms);
    sqlite3_bind_text(st, 4, s->data, (int)s->data_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SONDE_OK : set_err(err, errlen, "save silence", q->db);
}

static int sq_read_silences(void *ctx, sonde__silence_fn fn, void *ud, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db, "SELECT id, ends, updated, data FROM silences ORDER BY id", -1,
                           &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare silences", q->db);
    int rc, result = SONDE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sonde__silence_row s;
        s.id = (const char *)sqlite3_column_text(st, 0);
        s.ends_ms = sqlite3_column_int64(st, 1);
        s.updated_ms = sqlite3_column_int64(st, 2);
        s.data = (const char *)sqlite3_column_text(st, 3);
        s.data_len = (size_t)sqlite3_column_bytes(st, 3);
        if (!s.id || !s.data)
            continue;
        if (fn(&s, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        result = set_err(err, errlen, "read silences", q->db);
    sqlite3_finalize(st);
    return result;
}

static int sq_prune_silences(void *ctx, int64_t ended_before_ms, char *err, size_t errlen)
{
    struct sq *q = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db,
                           "DELETE FROM silences WHERE id IN"
                           " (SELECT id FROM silences WHERE ends < ? LIMIT 1000)",
                           -1, &st, NULL) != SQLITE_OK)
        return set_err(err, errlen, "prepare silence prune", q->db);
    sqlite3_bind_int64(st, 1, ended_before_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SONDE_OK : set_err(err, errlen, "prune silences", q->db);
}

const sonde__store_type sonde__store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .write_rows = sq_write_rows,
    .read_rows = sq_read_rows,
    .prune = sq_prune,
    .put_baseline = sq_put_baseline,
    .read_baselines = sq_read_baselines,
    .write_errors = sonde__sq_write_errors,
    .prune_errors = sonde__sq_prune_errors,
    .read_groups = sonde__sq_read_groups,
    .read_alerts = sonde__sq_read_alerts,
    .save_silence = sq_save_silence,
    .read_silences = sq_read_silences,
    .prune_silences = sq_prune_silences,
};

void *sonde__sq_db(void *ctx)
{
    return ctx ? ((struct sq *)ctx)->db : NULL;
}
