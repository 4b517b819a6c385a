/*
 * PostgreSQL driver for the SQL collector (libpq).
 *
 * The timeout is the server's: statement_timeout is set on the session
 * before a query whose timeout differs from the session's current one, and
 * the server cancels the statement (SQLSTATE 57014). The client only waits
 * asynchronously (poll on the socket) so that a server that stops answering
 * altogether, or sonde_sql_stop, cannot hold the executor: past the
 * timeout plus a grace period it sends a cancel request, and past a second
 * grace period it drops the connection.
 *
 * Rows are read in single-row mode, so a query returning many rows costs
 * one row of memory at a time, not the whole result set.
 */
#include "sql/sql_int.h"

#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define GRACE_S 2.0

struct sql_conn {
    PGconn *pg;
    int timeout_ms; /* the session's statement_timeout; -1 unknown */
    const atomic_int *stop;
};

static void pg_err(char *err, size_t errn, const char *prefix, PGconn *pg)
{
    char msg[512];
    int k = snprintf(msg, sizeof msg, "%s%s", prefix, pg ? PQerrorMessage(pg) : "out of memory");
    SONDE_UNUSED(k);
    sonde__sql_set_err(err, errn, msg);
}

static int pg_run(sql_conn *c, const char *sql, double timeout_s, const sql_sink *sink, char *err,
                  size_t errn);

static void ignore_notice(void *ud, const char *msg)
{
    SONDE_UNUSED(ud);
    SONDE_UNUSED(msg);
}

/* Connect without blocking past the timeout or a stop request. */
static PGconn *pg_connect(const char *const *keys, const char *const *vals, int secs,
                          const atomic_int *stop)
{
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (!pg || PQstatus(pg) == CONNECTION_BAD)
        return pg;
    uint64_t deadline = sonde__now_mono_ns() + (uint64_t)secs * 1000000000u;
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
        if (atomic_load(stop) || sonde__now_mono_ns() >= deadline) {
            PQfinish(pg);
            return NULL;
        }
        struct pollfd p = {.fd = PQsocket(pg),
                           .events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (p.fd < 0)
            break;
        if (poll(&p, 1, 100) == 0)
            continue;
        ps = PQconnectPoll(pg);
    }
    return pg;
}

static int pg_open(const char *dsn, const char *password, double connect_timeout_s,
                   const atomic_int *stop, sql_conn **out, char *err, size_t errn)
{
    *out = NULL;
    char ct[16];
    int secs = (int)ceil(connect_timeout_s > 0 ? connect_timeout_s : 5);
    if (secs < 2)
        secs = 2;
    snprintf(ct, sizeof ct, "%d", secs);
    /* Keywords before dbname are defaults the DSN may override; the
     * password after it wins over one in the DSN. */
    const char *keys[6], *vals[6];
    int n = 0;
    keys[n] = "application_name", vals[n++] = "sonde";
    keys[n] = "connect_timeout", vals[n++] = ct;
    keys[n] = "dbname", vals[n++] = dsn;
    if (password)
        keys[n] = "password", vals[n++] = password;
    keys[n] = NULL, vals[n] = NULL;
    PGconn *pg = pg_connect(keys, vals, secs, stop);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        if (pg)
            pg_err(err, errn, "connect: ", pg);
        else
            sonde__sql_set_err(err, errn, "connect: timed out");
        PQfinish(pg);
        return SQLR_CONNECT;
    }
    sql_conn *c = sonde__calloc(1, sizeof *c);
    if (!c || PQsetnonblocking(pg, 1) != 0) {
        sonde__free(c);
        PQfinish(pg);
        sonde__sql_set_err(err, errn, "connect: cannot set up the connection");
        return SQLR_CONNECT;
    }
    /* Server notices (a shutdown warning, ...) would go to stderr by
     * default; the library never prints. */
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    c->pg = pg;
    c->timeout_ms = -1;
    c->stop = stop;
    /* Read-only for every transaction of the session. */
    int r =
        pg_run(c, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", secs, NULL, err, errn);
    if (r != SQLR_OK) {
        PQfinish(pg);
        sonde__free(c);
        return r == SQLR_STOPPED ? r : SQLR_CONNECT;
    }
    *out = c;
    return SQLR_OK;
}

static void pg_close(sql_conn *c)
{
    if (!c)
        return;
    PQfinish(c->pg);
    sonde__free(c);
}

static void pg_cancel(PGconn *pg)
{
    PGcancel *cn = PQgetCancel(pg);
    if (cn) {
        char buf[256];
        PQcancel(cn, buf, sizeof buf);
        PQfreeCancel(cn);
    }
}

/* Wait until a result is ready without blocking past the deadlines.
 * Returns SQLR_OK when PQgetResult will not block, SQLR_CONNECT when the
 * connection failed or the server stayed silent past every deadline, or
 * SQLR_STOPPED. */
static int pg_wait(sql_conn *c, uint64_t cancel_at, uint64_t give_up_at, bool *cancelled)
{
    PGconn *pg = c->pg;
    for (;;) {
        if (PQflush(pg) < 0)
            return SQLR_CONNECT;
        if (!PQisBusy(pg))
            return SQLR_OK;
        uint64_t now = sonde__now_mono_ns();
        if (atomic_load(c->stop)) {
            if (!*cancelled)
                pg_cancel(pg);
            return SQLR_STOPPED;
        }
        if (now >= give_up_at)
            return SQLR_CONNECT;
        if (now >= cancel_at && !*cancelled) {
            pg_cancel(pg);
            *cancelled = true;
        }
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        if (p.fd < 0)
            return SQLR_CONNECT;
        /* Short slices so a stop request is seen within 100 ms. */
        int r = poll(&p, 1, 100);
        if (r < 0)
            continue;
        if (r > 0 && !PQconsumeInput(pg))
            return SQLR_CONNECT;
    }
}

static bool is_timeout(const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st && strcmp(st, "57014") == 0;
}

/* Send one statement and drain its results into sink (NULL for a command).
 * Returns an SQLR_* reason. */
static int pg_run(sql_conn *c, const char *sql, double timeout_s, const sql_sink *sink, char *err,
                  size_t errn)
{
    PGconn *pg = c->pg;
    if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        pg_err(err, errn, "", pg);
        return PQstatus(pg) == CONNECTION_BAD ? SQLR_CONNECT : SQLR_QUERY;
    }
    if (sink)
        PQsetSingleRowMode(pg);
    uint64_t start = sonde__now_mono_ns();
    uint64_t cancel_at = start + (uint64_t)((timeout_s + GRACE_S) * 1e9);
    uint64_t give_up_at = cancel_at + (uint64_t)(GRACE_S * 1e9);
    bool cancelled = false, cols_done = false;
    int reason = SQLR_OK;
    for (;;) {
        int w = pg_wait(c, cancel_at, give_up_at, &cancelled);
        if (w != SQLR_OK) {
            if (w == SQLR_CONNECT)
                sonde__sql_set_err(err, errn,
                                   PQstatus(pg) == CONNECTION_BAD
                                       ? "connection lost"
                                       : "no answer from the server past the timeout");
            else
                sonde__sql_set_err(err, errn, "stopped");
            /* The connection is in an unknown state: the caller drops it. */
            return w == SQLR_STOPPED ? SQLR_STOPPED : SQLR_CONNECT;
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (reason == SQLR_OK && sink && (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK)) {
            int nf = PQnfields(r);
            if (!cols_done) {
                const char *names[256];
                if (nf > 256)
                    nf = 256;
                for (int i = 0; i < nf; i++)
                    names[i] = PQfname(r, i);
                cols_done = true;
                reason = sink->cols(sink->ud, names, nf);
                if (reason)
                    sonde__sql_set_err(err, errn, "a declared column is missing from the result");
            }
            if (reason == SQLR_OK && st == PGRES_SINGLE_TUPLE) {
                sql_cell cells[256];
                if (nf > 256)
                    nf = 256;
                for (int i = 0; i < nf; i++) {
                    cells[i].is_null = PQgetisnull(r, 0, i);
                    cells[i].text = cells[i].is_null ? NULL : PQgetvalue(r, 0, i);
                    cells[i].has_num = 0;
                    cells[i].num = 0;
                }
                reason = sink->row(sink->ud, cells, nf);
            }
        } else if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
                   st == PGRES_NONFATAL_ERROR) {
            if (reason == SQLR_OK) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
                sonde__sql_set_err(err, errn, msg);
                reason = is_timeout(r) ? SQLR_TIMEOUT : SQLR_QUERY;
                if (PQstatus(pg) == CONNECTION_BAD)
                    reason = SQLR_CONNECT;
            }
        } else if (!sink && st != PGRES_COMMAND_OK && reason == SQLR_OK) {
            sonde__sql_set_err(err, errn, "unexpected result");
            reason = SQLR_QUERY;
        } else if (sink && st == PGRES_COMMAND_OK && reason == SQLR_OK) {
            sonde__sql_set_err(err, errn, "the statement returns no rows");
            reason = SQLR_QUERY;
        }
        PQclear(r);
    }
    if (PQstatus(pg) == CONNECTION_BAD) {
        if (reason == SQLR_OK || reason == SQLR_QUERY)
            sonde__sql_set_err(err, errn, "connection lost");
        return SQLR_CONNECT;
    }
    return reason;
}

static int pg_exec(sql_conn *c, const char *sql, double timeout_s, const sql_sink *sink, char *err,
                   size_t errn)
{
    int ms = (int)ceil(timeout_s * 1000);
    if (ms < 1)
        ms = 1;
    if (ms != c->timeout_ms) {
        char set[64];
        snprintf(set, sizeof set, "SET statement_timeout = %d", ms);
        int r = pg_run(c, set, timeout_s, NULL, err, errn);
        if (r != SQLR_OK)
            return r;
        c->timeout_ms = ms;
    }
    return pg_run(c, sql, timeout_s, sink, err, errn);
}

const sql_driver sonde__sql_pg = {pg_open, pg_exec, pg_close};
