/*
 * sonde/sql.h - metrics from SQL queries (SQLite, PostgreSQL), and
 * instrumentation of the application's own database calls.
 *
 * SQL collector. A sonde_sql holds databases and queries. Each query says
 * which metrics its rows yield (name, gauge or counter, help, value column,
 * label columns, constant labels; several metrics per query). Queries run
 * in the background at their own interval, never on the scrape path: the
 * runtime worker marks a query due, one executor thread per database runs
 * it on that database's reused connection, and the result replaces the
 * query's cached snapshot. A scrape only copies the cached snapshots (a
 * read lock held while encoding; the executor takes the write lock only to
 * swap a pointer), so a scrape never waits for a query, and a query running
 * while a scrape comes in is simply not visible until it finishes.
 *
 * Timeouts are enforced by the database: PostgreSQL's statement_timeout
 * (set per query on the session), SQLite's progress handler interrupting
 * the statement. Connections are opened read-only (SQLite
 * SQLITE_OPEN_READONLY and statements refused unless read-only; PostgreSQL
 * default_transaction_read_only), reused across runs, and reopened with
 * exponential backoff after a failure.
 *
 * Self-metrics, one series per query ({query}) or database ({database}):
 *   sonde_sql_query_success              1 if the last run succeeded, else 0
 *   sonde_sql_query_duration_seconds     duration of the last run
 *   sonde_sql_query_last_success_timestamp_seconds
 *   sonde_sql_query_runs_total
 *   sonde_sql_query_errors_total{query,reason}  reason: connect, timeout,
 *       query (refused or failed by the database), column (a declared
 *       column is missing), value (NULL or non-numeric value, sample
 *       skipped), duplicate (two rows with the same labels, second skipped)
 *   sonde_sql_query_series               series in the cached result
 *   sonde_sql_query_series_dropped_total series past max_series, dropped
 *   sonde_sql_query_stale                1 while the cached result is older
 *       than max_age and therefore withheld from /metrics
 *   sonde_sql_database_up{database}      1 while the connection is open
 *   sonde_sql_database_connects_total{database,result}
 *
 * DSNs and passwords may come from files or the environment; they are
 * never shown unmasked: error messages, logs and sonde_sql_write_json use
 * sonde_sql_mask_dsn.
 */
#ifndef SONDE_SQL_H
#define SONDE_SQL_H

#include "common.h"
#include "errors.h"
#include "log.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sonde_sql sonde_sql;

/** Database drivers. Values are ABI. */
typedef enum sonde_sql_driver {
    /** 0: guessed from the DSN: "postgres://", "postgresql://" or a
     * keyword=value string mean PostgreSQL; anything else is an SQLite
     * path or "file:" URI. */
    SONDE_SQL_AUTO = 0,
    SONDE_SQL_SQLITE = 1,
    SONDE_SQL_POSTGRES = 2
} sonde_sql_driver;

/** Collector options; zero means default for every field. */
typedef struct sonde_sql_opts {
    /** Registry the collector is added to at sonde_sql_start. NULL: the
     * default registry. Borrowed; must outlive the sonde_sql. */
    sonde_registry *registry;
    /** Collector name in the registry (unique). NULL: "sonde_sql". */
    const char *collector_name;
    /** Logger for connection changes and failed runs (one line per state
     * change, not per run). NULL: the logger named "sonde.sql". */
    sonde_logger *logger;
} sonde_sql_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_sql_opts_init(sonde_sql_opts *opts);

/** A database; zero means default for every field. Strings are copied. */
typedef struct sonde_sql_db_opts {
    /** Required, unique: [A-Za-z0-9_.-], 1 to 63 bytes. The "database"
     * label of the self-metrics. */
    const char *name;
    sonde_sql_driver driver;
    /** The DSN, exactly one of: the text, a file holding it (trailing
     * newline removed), or an environment variable holding it. PostgreSQL:
     * a libpq connection string or URI; SQLite: a path or "file:" URI. */
    const char *dsn;
    const char *dsn_file;
    const char *dsn_env;
    /** PostgreSQL password, at most one of: text, file, environment
     * variable. Passed to libpq apart from the DSN. NULL: none (the DSN,
     * PGPASSWORD or ~/.pgpass may still give one). */
    const char *password;
    const char *password_file;
    const char *password_env;
    /** Connection timeout in seconds. 0: 5. PostgreSQL rounds up to whole
     * seconds (at least 2, libpq's minimum). */
    double connect_timeout_seconds;
    /** First wait before reconnecting after a failed connection, doubled
     * after each further failure up to backoff_max_seconds. 0: 0.5 s and
     * 30 s. */
    double backoff_initial_seconds;
    double backoff_max_seconds;
} sonde_sql_db_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_sql_db_opts_init(sonde_sql_db_opts *opts);

/** One metric that a query's rows yield: every row gives one series. */
typedef struct sonde_sql_metric {
    /** Required. A valid metric name (counters conventionally end in
     * _total); declared by one query only. */
    const char *name;
    /** SONDE_GAUGE (0 means gauge) or SONDE_COUNTER. */
    sonde_metric_type type;
    /** Help text. NULL: "Metric from the SQL query <query>". */
    const char *help;
    /** Required: the column holding the value (a number, or a boolean
     * t/f/true/false). NULL values and non-numeric text skip the sample
     * (counted, reason "value"). */
    const char *value_column;
    /** Columns whose text becomes a label each, named as the column
     * (must be a valid label name); label_count of them, at most
     * SONDE_MAX_LABELS together with the constant labels. NULL label
     * values are "". */
    const char *const *label_columns;
    size_t label_count;
    /** Constant labels: pairs [2i] = name, [2i+1] = value. */
    const char *const *const_labels;
    size_t const_label_count;
} sonde_sql_metric;

/** A query; zero means default for every field. Strings are copied. */
typedef struct sonde_sql_query_opts {
    /** Required, unique: [A-Za-z0-9_.-], 1 to 63 bytes; the "query" label
     * of the self-metrics. */
    const char *name;
    /** Name of the database it runs on. NULL: the only database (an
     * error when there are several). */
    const char *database;
    /** Required: one read-only statement. */
    const char *sql;
    /** Run every interval_seconds. 0: 60. Bounds: 0.05 to 86400. */
    double interval_seconds;
    /** Cut by the database after this long (counted, reason "timeout").
     * 0: 10. Bounds: 0.01 to 3600. */
    double timeout_seconds;
    /** Cached values older than this (since the last successful run) are
     * withheld from /metrics instead of being served stale. 0: three
     * intervals plus the timeout. Must be at least the interval. */
    double max_age_seconds;
    /** Most series the query may yield (over all its metrics); rows past
     * it are dropped and counted in sonde_sql_query_series_dropped_total.
     * 0: 1000. Max SONDE_DEFAULT_MAX_SERIES. */
    size_t max_series;
    /** The metrics, metric_count (1 to 64) of them. */
    const sonde_sql_metric *metrics;
    size_t metric_count;
} sonde_sql_query_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_sql_query_opts_init(sonde_sql_query_opts *opts);

/**
 * Create a collector (opts NULL: defaults). *out is freed with
 * sonde_sql_destroy. Returns SONDE_OK, SONDE_EINVAL or SONDE_ENOMEM.
 * Any thread; allocates.
 */
SONDE_API int sonde_sql_create(const sonde_sql_opts *opts, sonde_sql **out);

/**
 * Add a database. Reads the DSN and password from their file or variable
 * now (a missing file or unset variable is SONDE_EINVAL with the reason
 * in sonde_last_error; the reason never contains the secret).
 * Does not connect. Returns SONDE_OK, SONDE_EINVAL, SONDE_ECONFLICT (name
 * taken), SONDE_ESTATE (already started) or SONDE_ENOMEM. Owner thread.
 */
SONDE_API int sonde_sql_add_database(sonde_sql *sql, const sonde_sql_db_opts *opts);

/**
 * Add a query, validating names, bounds and labels (reason in
 * sonde_last_error). Returns SONDE_OK, SONDE_EINVAL,
 * SONDE_EBADNAME, SONDE_EBADLABEL, SONDE_ENOTFOUND (no such database),
 * SONDE_ECONFLICT (query name or metric name taken), SONDE_ESTATE
 * (already started) or SONDE_ENOMEM. Owner thread.
 */
SONDE_API int sonde_sql_add_query(sonde_sql *sql, const sonde_sql_query_opts *opts);

/**
 * Add the collector to the registry, start one executor thread per
 * database and one runtime-worker timer per query (starting the runtime
 * worker if needed). Every query runs once right away. Returns SONDE_OK,
 * SONDE_ESTATE (already started), SONDE_ECONFLICT (collector name taken)
 * or SONDE_ENOMEM. With sonde disabled: SONDE_OK and nothing runs.
 * Owner thread.
 */
SONDE_API int sonde_sql_start(sonde_sql *sql);

/**
 * Stop: cancel the timers, interrupt running queries (PostgreSQL cancel
 * request, SQLite interrupt), join the executors, close the connections
 * and remove the collector. Bounded by about a second. Safe when not
 * started. Owner thread.
 */
SONDE_API void sonde_sql_stop(sonde_sql *sql);

/** Stop if needed and free everything; accepts NULL. Owner thread. */
SONDE_API void sonde_sql_destroy(sonde_sql *sql);

/**
 * Run the query named query (NULL: every query) now, and wait until each
 * has finished a run that started after this call, at most timeout_ms.
 * Returns SONDE_OK, SONDE_ENOTFOUND, SONDE_ESTATE (not started) or
 * SONDE_ETIMEOUT. Any thread but sonde's own.
 */
SONDE_API int sonde_sql_run_now(sonde_sql *sql, const char *query, int timeout_ms);

/** Counters of one query, as the self-metrics show them. */
typedef struct sonde_sql_query_stats {
    uint64_t runs;      /**< finished runs */
    uint64_t successes; /**< runs that succeeded */
    /** errors by reason: connect, timeout, query, column, value, duplicate */
    uint64_t errors_connect, errors_timeout, errors_query, errors_column, errors_value,
        errors_duplicate;
    uint64_t series_dropped; /**< series past max_series */
    size_t series;           /**< series in the cached result */
    int last_success;        /**< 1 when the last run succeeded */
    int running;             /**< 1 while a run is in progress */
    double last_duration_seconds;
    double last_success_time; /**< wall clock, 0 if never */
    /** The last failure's message (masked), "" if none. */
    char last_error[256];
} sonde_sql_query_stats;

/** Copy the stats of the query named query. Returns SONDE_OK or
 * SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_sql_get_query_stats(sonde_sql *sql, const char *query,
                                        sonde_sql_query_stats *out);

/**
 * Append a JSON description of the collector to out: databases (name,
 * driver, masked DSN, up) and queries (name, database, interval, timeout,
 * state, last error). Never contains a password. Returns SONDE_OK or
 * SONDE_ENOMEM/SONDE_ETOOBIG. Any thread.
 */
SONDE_API int sonde_sql_write_json(sonde_sql *sql, sonde_buf *out);

/** Number of databases added. Any thread. */
SONDE_API size_t sonde_sql_database_count(const sonde_sql *sql);

/**
 * Name and masked DSN (passwords shown as "***", see sonde_sql_mask_dsn)
 * of database i; both borrowed from sql, valid until it is destroyed.
 * Returns SONDE_OK or SONDE_ENOTFOUND (i out of range). Any thread.
 */
SONDE_API int sonde_sql_database_info(const sonde_sql *sql, size_t i, const char **name,
                                      const char **masked_dsn);

/**
 * Append dsn[0..n) to out with every password masked as "***": libpq
 * keyword/value strings (password=..., quoted values with escapes),
 * URIs (scheme://user:***@host, ?password=*** and &password=***), and
 * unparsable remainders cut rather than shown. Returns 1 when something
 * was masked, 0 when not, or SONDE_ENOMEM/SONDE_ETOOBIG. Pure function;
 * any thread.
 */
SONDE_API int sonde_sql_mask_dsn(const char *dsn, size_t n, sonde_buf *out);

/* ------------------------------------------------------------------------ */
/* Instrumenting the application's own database calls                       */

typedef struct sonde_db sonde_db;

/** Options of sonde_db_create; zero means default for every field. */
typedef struct sonde_db_opts {
    /** Registry of the metrics. NULL: the default registry. */
    sonde_registry *registry;
    /** The "db" label value ("main", "orders"). NULL: "default". */
    const char *name;
    /** Error tracker failures are captured into. NULL: the default
     * tracker. */
    sonde_errors *errors;
    /** Non-zero: do not capture failures as errors. */
    int no_capture;
    /** Histogram bounds of the durations. NULL: .0005 .001 .0025 .005
     * .01 .025 .05 .1 .25 .5 1 2.5 5 10 seconds. */
    const double *buckets;
    size_t bucket_count;
} sonde_db_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_db_opts_init(sonde_db_opts *opts);

/**
 * Register, in the registry, the families (all labelled db=<name>):
 *   sonde_db_queries_total{db,kind,result}  result: ok, error, timeout
 *   sonde_db_query_duration_seconds{db,kind}    histogram
 *   sonde_db_pool_connections{db,state}         state: in_use, idle
 *   sonde_db_pool_waits_total{db}, sonde_db_pool_wait_seconds_total{db}
 * Several sonde_db with different names share the families. *out is
 * freed with sonde_db_destroy (the series stay in the registry). Returns
 * as sonde_family_create. Any thread; allocates.
 */
SONDE_API int sonde_db_create(const sonde_db_opts *opts, sonde_db **out);

/** Free the handle; accepts NULL. No call may be in progress. */
SONDE_API void sonde_db_destroy(sonde_db *db);

/** Results of a call. */
typedef enum sonde_db_result {
    SONDE_DB_OK = 0,
    SONDE_DB_ERROR = 1,
    SONDE_DB_TIMEOUT = 2
} sonde_db_result;

/** A call between sonde_db_begin and sonde_db_end; lives on the caller's
 * stack. Fields are private. */
typedef struct sonde_db_call {
    sonde_db *db;
    uint64_t start_ns;
    int token;
    int kind;
} sonde_db_call;

/**
 * Begin a call of the given kind: "select", "insert", "update", "delete",
 * "begin", "commit", "rollback", "ddl", "other" (other strings count as
 * "other"); kind NULL: classified from sql (see sonde_db_kind; sql NULL:
 * "other"). Pushes a logging context frame with "db" and "db_kind" so the
 * lines written during the call carry them. The calling thread only (end
 * it on the same thread). No allocation once the thread has a context.
 */
SONDE_API void sonde_db_begin(sonde_db *db, sonde_db_call *call, const char *kind, const char *sql);

/**
 * End the call: count it by kind and result, observe its duration, and on
 * a failure capture it as a "DatabaseError" (or "DatabaseTimeout") error
 * with message (NULL: "database call failed"; masked), operation
 * "db.<kind>" and the logging context; then pop the frame. Returns the
 * duration in seconds. The thread that called sonde_db_begin.
 */
SONDE_API double sonde_db_end(sonde_db_call *call, sonde_db_result result, const char *message);

/** The kind of a statement from its first keyword (after spaces and
 * comments): "select" (also WITH, SHOW, EXPLAIN, VALUES, PRAGMA),
 * "insert", "update", "delete", "begin", "commit", "rollback", "ddl"
 * (CREATE, ALTER, DROP, TRUNCATE), else "other". Static text. Pure. */
SONDE_API const char *sonde_db_kind(const char *sql);

/** Set the pool gauges: connections in use and idle. Any thread,
 * lock-free. */
SONDE_API void sonde_db_pool_set(sonde_db *db, double in_use, double idle);

/** Count a wait for a free pooled connection that took seconds. Any
 * thread, lock-free. */
SONDE_API void sonde_db_pool_wait(sonde_db *db, double seconds);

#ifdef __cplusplus
}
#endif
#endif
