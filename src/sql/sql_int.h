/*
 * SQL collector internals: the driver interface (one implementation per
 * database in pg.c and sqlite.c), the query and database records, and the
 * cached snapshot a scrape reads.
 */
#ifndef SONDE_SQL_INTERNAL_H
#define SONDE_SQL_INTERNAL_H

#include "core/internal.h"

#include <sonde/sql.h>

/* Outcome of a driver call; maps onto the "reason" label. */
enum {
    SQLR_OK = 0,
    SQLR_CONNECT = 1, /* could not connect, or the connection broke */
    SQLR_TIMEOUT = 2, /* cut by the database's timeout */
    SQLR_QUERY = 3,   /* the database refused or failed the statement */
    SQLR_COLUMN = 4,  /* a declared column is missing from the result */
    SQLR_VALUE = 5,   /* NULL or non-numeric value (sample skipped) */
    SQLR_DUP = 6,     /* two rows with the same labels (second skipped) */
    SQLR_STOPPED = 7, /* interrupted by sonde_sql_stop (not counted) */
    SQLR_NREASONS = 7 /* counted reasons: 1..6 */
};

/* One cell of a result row. text is NUL-terminated (NULL when is_null). */
typedef struct sql_cell {
    const char *text;
    int is_null;
    int has_num; /* num holds the value (SQLite INTEGER/REAL) */
    double num;
} sql_cell;

/* Row sink: cols() once with the column names before the first row (also
 * for an empty result), row() per row. A non-zero return stops the query
 * with that reason. */
typedef struct sql_sink {
    int (*cols)(void *ud, const char *const *names, int n);
    int (*row)(void *ud, const sql_cell *cells, int n);
    void *ud;
} sql_sink;

/* A driver connection; opaque to the collector. */
typedef struct sql_conn sql_conn;

typedef struct sql_driver {
    /* Open a read-only connection. Returns SQLR_OK or SQLR_CONNECT with a
     * message in err (never containing the password). */
    int (*open)(const char *dsn, const char *password, double connect_timeout_s,
                const atomic_int *stop, sql_conn **out, char *err, size_t errn);
    /* Run one statement with a database-enforced timeout, feeding sink.
     * Returns an SQLR_* reason; SQLR_CONNECT means the connection is unusable
     * and must be closed. */
    int (*exec)(sql_conn *c, const char *sql, double timeout_s, const sql_sink *sink, char *err,
                size_t errn);
    void (*close)(sql_conn *c);
} sql_driver;

extern const sql_driver sonde__sql_pg;
extern const sql_driver sonde__sql_sqlite;

/* Parse a cell as a sample value: numbers (C locale, "NaN", "+Inf"),
 * booleans t/f/true/false. Returns false for NULL and other text. */
bool sonde__sql_cell_value(const sql_cell *c, double *out);

/* Copy msg into err[0..errn) with the DSN-style secrets masked and line
 * breaks turned into spaces; trailing spaces dropped. */
void sonde__sql_set_err(char *err, size_t errn, const char *msg);

/* Read a secret from exactly one of text, file (trailing newlines
 * dropped), environment variable. *out is a heap copy (NULL when all three
 * are NULL and !required). Returns SONDE_OK or SONDE_EINVAL with the reason
 * (naming the file or variable, never the value) in why. */
int sonde__sql_secret(const char *what, const char *text, const char *file, const char *env,
                      bool required, char **out, char *why, size_t whyn);

#endif
