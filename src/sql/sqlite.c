/*
 * SQLite driver for the SQL collector.
 *
 * The database is opened with SQLITE_OPEN_READONLY (never created), and a
 * statement that would write is refused before it runs
 * (sqlite3_stmt_readonly). The timeout is SQLite's own: a progress handler,
 * called every few thousand virtual-machine steps, interrupts the statement
 * once the deadline has passed (or sonde_sql_stop asked), and the busy
 * timeout bounds waiting for a writer's lock.
 */
#include "sql/sql_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct sql_conn {
    sqlite3 *db;
    const atomic_int *stop;
    uint64_t deadline_ns;
    int timed_out;
};

static int progress(void *ud)
{
    sql_conn *c = ud;
    if (atomic_load(c->stop))
        return 1;
    if (sonde__now_mono_ns() >= c->deadline_ns) {
        c->timed_out = 1;
        return 1;
    }
    return 0;
}

static int lite_open(const char *dsn, const char *password, double connect_timeout_s,
                     const atomic_int *stop, sql_conn **out, char *err, size_t errn)
{
    SONDE_UNUSED(password);
    SONDE_UNUSED(connect_timeout_s);
    *out = NULL;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(dsn, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                             NULL);
    if (rc != SQLITE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "open: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sonde__sql_set_err(err, errn, msg);
        sqlite3_close(db);
        return SQLR_CONNECT;
    }
    sql_conn *c = sonde__calloc(1, sizeof *c);
    if (!c) {
        sqlite3_close(db);
        sonde__sql_set_err(err, errn, "out of memory");
        return SQLR_CONNECT;
    }
    c->db = db;
    c->stop = stop;
    sqlite3_progress_handler(db, 1000, progress, c);
    *out = c;
    return SQLR_OK;
}

static void lite_close(sql_conn *c)
{
    if (!c)
        return;
    sqlite3_close(c->db);
    sonde__free(c);
}

/* Whether only spaces and comments follow the statement. */
static bool only_trailer(const char *s)
{
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';')
            s++;
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (s[0] == '/' && s[1] == '*') {
            const char *e = strstr(s + 2, "*/");
            if (!e)
                return true;
            s = e + 2;
        } else {
            return *s == '\0';
        }
    }
}

static int lite_exec(sql_conn *c, const char *sql, double timeout_s, const sql_sink *sink,
                     char *err, size_t errn)
{
    char msg[512];
    c->timed_out = 0;
    c->deadline_ns = sonde__now_mono_ns() + (uint64_t)(timeout_s * 1e9);
    sqlite3_busy_timeout(c->db, (int)(timeout_s * 1000) + 1);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK || !st) {
        snprintf(msg, sizeof msg, "%s",
                 rc == SQLITE_OK ? "empty statement" : sqlite3_errmsg(c->db));
        sonde__sql_set_err(err, errn, msg);
        sqlite3_finalize(st);
        if (rc == SQLITE_INTERRUPT)
            return atomic_load(c->stop) ? SQLR_STOPPED : SQLR_TIMEOUT;
        /* A database file replaced or removed under us: reopen next time. */
        return rc == SQLITE_CANTOPEN || rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? SQLR_CONNECT
                                                                                    : SQLR_QUERY;
    }
    if (tail && !only_trailer(tail)) {
        sqlite3_finalize(st);
        sonde__sql_set_err(err, errn, "one statement per query");
        return SQLR_QUERY;
    }
    if (!sqlite3_stmt_readonly(st)) {
        sqlite3_finalize(st);
        sonde__sql_set_err(err, errn, "the statement is not read-only");
        return SQLR_QUERY;
    }
    int nf = sqlite3_column_count(st);
    if (nf > 256)
        nf = 256;
    if (nf == 0) {
        sqlite3_finalize(st);
        sonde__sql_set_err(err, errn, "the statement returns no rows");
        return SQLR_QUERY;
    }
    const char *names[256];
    for (int i = 0; i < nf; i++)
        names[i] = sqlite3_column_name(st, i);
    int reason = sink->cols(sink->ud, names, nf);
    if (reason) {
        sqlite3_finalize(st);
        sonde__sql_set_err(err, errn, "a declared column is missing from the result");
        return reason;
    }
    sql_cell cells[256];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < nf; i++) {
            int t = sqlite3_column_type(st, i);
            cells[i].is_null = t == SQLITE_NULL;
            cells[i].has_num = t == SQLITE_INTEGER || t == SQLITE_FLOAT;
            cells[i].num = cells[i].has_num
                               ? (t == SQLITE_INTEGER ? (double)sqlite3_column_int64(st, i)
                                                      : sqlite3_column_double(st, i))
                               : 0;
            cells[i].text = cells[i].is_null ? NULL : (const char *)sqlite3_column_text(st, i);
            if (!cells[i].is_null && !cells[i].text)
                cells[i].text = "";
        }
        reason = sink->row(sink->ud, cells, nf);
        if (reason)
            break;
    }
    if (reason == SQLR_OK && rc != SQLITE_DONE) {
        if (rc == SQLITE_INTERRUPT) {
            reason = atomic_load(c->stop) ? SQLR_STOPPED : SQLR_TIMEOUT;
            snprintf(msg, sizeof msg, "interrupted after %.3g s (timeout)", timeout_s);
        } else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            reason = SQLR_TIMEOUT;
            snprintf(msg, sizeof msg, "database locked past the timeout: %s",
                     sqlite3_errmsg(c->db));
        } else {
            reason = SQLR_QUERY;
            snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(c->db));
        }
        sonde__sql_set_err(err, errn, msg);
    }
    sqlite3_finalize(st);
    return reason;
}

const sql_driver sonde__sql_sqlite = {lite_open, lite_exec, lite_close};
