/*
 * sonde/trace.h - performance tracing: timed operations, rolling windows
 * with percentiles and success rates, baselines with anomaly flags, and the
 * history store that keeps them across restarts.
 *
 *     sonde_op_token t = sonde_op_begin("clone");
 *     int rc = git_clone(url, dst);
 *     double seconds = sonde_op_end(t, rc == 0);
 *
 * or, timing a whole scope (GCC and clang):
 *
 *     SONDE_OP_SCOPE(op, "clone");
 *     if (git_clone(url, dst) != 0) {
 *         SONDE_OP_FAIL(op);
 *         return -1;
 *     }
 *
 * Every operation feeds, in the registry given to sonde_trace_start (the
 * default registry otherwise):
 *   <ns>_operation_duration_seconds{operation}  histogram
 *   <ns>_operations_total{operation,result}      counter, result "success"
 *                                                 or "failure"
 *   <ns>_operation_anomaly{operation}            gauge, 1 while flagged
 * with <ns> "sonde" by default; the names are options, and one operation
 * can have a histogram of its own (sonde_op_create), so a service keeps the
 * metric names it already publishes (mgit_git_clone_duration_seconds).
 *
 * Windows. Each operation also lands in a per-minute aggregate: count,
 * failures, sum, exact min and max, and a quantile sketch with a relative
 * error of at most 1% (SONDE_TRACE_RELATIVE_ERROR): a reported p95 of 2.00 s
 * means the exact p95 of the window lies within 1.98 s .. 2.02 s. Minutes
 * merge without losing accuracy, so a window of any length (1 minute to the
 * store's retention) is as accurate as one minute. A window of N minutes is
 * every calendar minute (UTC) that overlaps the last N minutes: the current
 * minute so far plus the N previous ones.
 *
 * Store. Closed minutes are written, off the calling thread and batched, to
 * the store: SQLite by default ($SONDE_STORE=PATH; an in-memory database
 * when unset), or Redis/Valkey ($SONDE_STORE=redis://host:port/db). The
 * last hour is also kept in memory, so short windows never wait for the
 * store, and a failing store (unreachable Redis, read-only directory, full
 * disk) only loses older history: failures are retried, buffered rows are
 * bounded, and what is dropped is counted in sonde_store_dropped_total and
 * sonde_store_errors_total.
 *
 * Threads: sonde_trace_start schedules the flush (minute aggregation,
 * baselines, store writes, retention) on sonde's runtime worker, starting
 * the worker if sonde_start has not; sonde_trace_stop cancels it. Without
 * sonde_trace_start operations are still counted and the windows of the
 * last two minutes answer, but nothing older is aggregated.
 *
 * Hot path: sonde_op_begin/sonde_op_end with a handle (the macros cache
 * it) take no lock, make no system call and, after a thread's first use of
 * an operation, never allocate; they write only memory that the calling
 * thread owns. sonde_op_begin(name) looks the name up in a lock-free table.
 *
 * Off means off: when sonde is disabled (SONDE_ENABLED=0) every call here
 * is a no-op that returns at once, sonde_op_end returns 0 and
 * sonde_trace_start starts nothing; queries succeed as if nothing had been
 * recorded (count 0, empty lists, no baseline, never anomalous).
 */
#ifndef SONDE_TRACE_H
#define SONDE_TRACE_H

#include "common.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An operation: a name with its metrics and windows. Created at first use
 * and valid until the process exits. */
typedef struct sonde_op sonde_op;

/** Longest operation name in bytes; longer names are refused. */
#define SONDE_OP_NAME_MAX 127
/** Relative error bound of every reported quantile. */
#define SONDE_TRACE_RELATIVE_ERROR 0.01

/**
 * A started operation, returned by value (16 bytes: two registers). Pass it
 * to sonde_op_end exactly once. The fields are private: op is NULL when the
 * operation is not traced (sonde disabled, invalid name, too many
 * operations).
 */
typedef struct sonde_op_token {
    sonde_op *op;
    uint64_t start;
} sonde_op_token;

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

/** Options of sonde_trace_start; zero means default for every field.
 * Strings are copied. */
typedef struct sonde_trace_opts {
    /** Registry receiving the operation metrics and the sonde_trace_* and
     * sonde_store_* self-metrics. NULL: the default registry. Borrowed; must
     * outlive the process's use of tracing. */
    sonde_registry *registry;
    /** Metric namespace: names are ns_name. NULL: "sonde"; "": none. */
    const char *ns;
    /** Histogram name after the namespace. NULL:
     * "operation_duration_seconds". */
    const char *duration_name;
    /** Counter name after the namespace. NULL: "operations_total". */
    const char *total_name;
    /** Anomaly gauge name after the namespace. NULL: "operation_anomaly". */
    const char *anomaly_name;
    /** Label names. NULL: "operation" and "result". */
    const char *operation_label;
    const char *result_label;
    /** Histogram bounds in seconds, strictly increasing. NULL: .001 .005
     * .01 .025 .05 .1 .25 .5 1 2.5 5 10 30 60 120 300. */
    const double *buckets;
    size_t bucket_count;
    /** Most operations (distinct names). 0: 1000; at most 65536. Past it,
     * new names are not traced and are counted in
     * sonde_trace_dropped_total{reason="limit"}. */
    size_t max_operations;

    /** History store: a SQLite file path (or "sqlite:PATH"), ":memory:",
     * "redis://[:password@]host[:port][/db]" (also "valkey://"), or "off".
     * NULL: $SONDE_STORE, else ":memory:". An unusable store is not an
     * error here: it is retried in the background and counted. */
    const char *store;
    /** Rows older than this are pruned, hourly. 0: $SONDE_STORE_RETENTION
     * (hours), else 720 (30 days); 24 for ":memory:". */
    double retention_hours;
    /** Period of the background flush in milliseconds. 0: 1000. Bounds:
     * 10 to 60000. */
    unsigned flush_interval_ms;
    /** Most rows waiting for the store (written every flush, buffered while
     * the store fails). Past it the oldest are dropped and counted in
     * sonde_store_dropped_total{reason="buffer_full"}. 0: 10000. */
    size_t store_max_pending;
    /** Redis key prefix. NULL: "sonde:". */
    const char *redis_prefix;
    /** Redis connect and command timeout in milliseconds. 0: 250 (the
     * flush runs on the runtime worker, which must not block long). */
    unsigned redis_timeout_ms;
    /** Default anomaly factor for baselines that set none. 0: 2.0. */
    double anomaly_factor;
    /** Default baseline window in minutes. 0: 5. */
    unsigned anomaly_window_minutes;
    /** Default least operations in the window before a baseline can flag.
     * 0: 10. */
    uint64_t anomaly_min_count;
    /** Joining the logging context: 0 (default) while the logger
     * "sonde.trace" is at DEBUG (when operations log their start and end),
     * 1 always, -1 never. A joined operation pushes a context frame
     * {"operation": name} for its duration, so every line logged inside
     * carries it and one correlation ID. The frame is popped when the
     * operation ends on the thread that began it; ended elsewhere, it stays
     * until that thread pops an enclosing frame. */
    int log_context;
} sonde_trace_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_trace_opts_init(sonde_trace_opts *opts);

/**
 * Configure tracing and schedule its flush on the runtime worker (opts
 * NULL: defaults and the environment). Also serves /performance from the
 * HTTP server of a later sonde_start. The metric options (registry, names, buckets,
 * limits) must be the same as the defaults when operations were already
 * traced before this call, else SONDE_ESTATE. Returns SONDE_OK,
 * SONDE_EINVAL (bad option or store address; the reason in
 * sonde_last_error), SONDE_EBADNAME, SONDE_ESTATE (already
 * started, or see above), SONDE_ENOMEM. With sonde disabled: SONDE_OK and
 * nothing starts. Any thread; not concurrently with sonde_trace_stop.
 */
SONDE_API int sonde_trace_start(const sonde_trace_opts *opts);

/**
 * Cancel the flush, then flush a last time on the calling thread: every
 * minute, including the current one, is written to the store (bounded by
 * the store's timeouts), then the store is closed. Operations keep being
 * counted in metrics afterwards; those ending in the rest of the current
 * minute are not added to windows (counted in
 * sonde_trace_dropped_total{reason="late"}). Safe when not started. Any
 * thread except sonde's own.
 */
SONDE_API void sonde_trace_stop(void);

/* ------------------------------------------------------------------------ */
/* Operations                                                               */

/** Options for sonde_op_create; zero means default. */
typedef struct sonde_op_opts {
    /** Required: 1 to SONDE_OP_NAME_MAX bytes, any characters but NUL. */
    const char *name;
    /** Full name of a label-less histogram of this operation's own (e.g.
     * "mgit_git_clone_duration_seconds"), fed instead of the shared
     * <ns>_operation_duration_seconds{operation}. NULL: the shared one. */
    const char *duration_metric;
    /** Help of that histogram. NULL: "Duration of <name> in seconds." */
    const char *help;
    /** Its bounds; NULL: the tracing buckets. */
    const double *buckets;
    size_t bucket_count;
} sonde_op_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_op_opts_init(sonde_op_opts *opts);

/**
 * Create an operation with options, or return the existing one when its
 * definition is the same. Returns SONDE_OK, SONDE_EINVAL (no or too long
 * name), SONDE_ECONFLICT (exists with another histogram), SONDE_EBADNAME,
 * SONDE_EBUCKETS, SONDE_ELIMIT, SONDE_ENOMEM. *out is valid until the
 * process exits. When sonde is disabled: SONDE_OK with *out NULL (every
 * sonde_op_* call accepts NULL). Any thread; allocates.
 */
SONDE_API int sonde_op_create(const sonde_op_opts *opts, sonde_op **out);

/**
 * The operation named name, created with default options at first use.
 * NULL when sonde is disabled, the name is invalid or the limit is reached.
 * Existing names: any thread, lock-free, no allocation.
 */
SONDE_API sonde_op *sonde_op_get(const char *name);

/** The operation's name (borrowed, valid forever). */
SONDE_API const char *sonde_op_name(const sonde_op *op);

/**
 * Start timing an operation by name (sonde_op_get, then sonde_op_begin_op).
 * Any thread, lock-free.
 */
SONDE_API sonde_op_token sonde_op_begin(const char *name);

/** Start timing op (NULL: a token that sonde_op_end ignores). Reads the
 * clock. Any thread, lock-free, no allocation, cannot fail. */
SONDE_API sonde_op_token sonde_op_begin_op(sonde_op *op);

/**
 * End an operation: ok non-zero for success. Observes the duration in the
 * histogram, counts it, and adds it to the calling thread's minute
 * aggregate. Returns the duration in seconds (0 for an ignored token). Any
 * thread (not necessarily the one that began it), lock-free; allocates
 * only at the thread's first use of the operation.
 *
 * Logging: with the logger "sonde.trace" at DEBUG, begin logs "operation
 * started" and end "operation finished" (fields event, operation, success,
 * duration_seconds), inside the operation's context frame.
 */
SONDE_API double sonde_op_end(sonde_op_token token, int ok);

#if defined(__GNUC__) || defined(__clang__)
/** State of SONDE_OP_SCOPE; use the macros. */
typedef struct sonde_op_scope {
    sonde_op_token token;
    int ok;
} sonde_op_scope;

/** Used by the macros: begin with a handle cached in *cache. */
SONDE_API sonde_op_token sonde__op_begin_cached(sonde_op **cache, const char *name);
/** Used by SONDE_OP_SCOPE: end the scope's operation. */
SONDE_API void sonde__op_scope_end(sonde_op_scope *s);

/**
 * SONDE_OP_SCOPE(var, "name"): time from here to the end of the enclosing
 * block, however it is left. Success unless SONDE_OP_FAIL(var) ran. The
 * operation handle is looked up once per call site. name must be the same
 * every time the line runs (a string literal).
 */
#define SONDE_OP_SCOPE(var, name)                                                                  \
    static sonde_op *var##_sonde_op_;                                                              \
    sonde_op_scope var __attribute__((cleanup(sonde__op_scope_end))) = {                           \
        sonde__op_begin_cached(&var##_sonde_op_, (name)), 1}
/** Mark the scope's operation as failed. */
#define SONDE_OP_FAIL(var) ((void)((var).ok = 0))

/**
 * SONDE_OP_RUN("name", call): evaluate the int expression call once, timed;
 * success when it is 0 (the C error convention). Yields its value:
 *     int rc = SONDE_OP_RUN("clone", git_clone(url, dst));
 */
#define SONDE_OP_RUN(name, call)                                                                   \
    __extension__({                                                                                \
        static sonde_op *sonde_run_op_;                                                            \
        sonde_op_token sonde_run_t_ = sonde__op_begin_cached(&sonde_run_op_, (name));              \
        int sonde_run_rc_ = (call);                                                                \
        sonde_op_end(sonde_run_t_, sonde_run_rc_ == 0);                                            \
        sonde_run_rc_;                                                                             \
    })

/**
 * SONDE_OP_CHECK("name", expr): evaluate expr once, timed; success when it
 * is true. Yields 1 or 0:
 *     if (!SONDE_OP_CHECK("fetch", fetch(url) != NULL)) ...
 */
#define SONDE_OP_CHECK(name, expr)                                                                 \
    __extension__({                                                                                \
        static sonde_op *sonde_chk_op_;                                                            \
        sonde_op_token sonde_chk_t_ = sonde__op_begin_cached(&sonde_chk_op_, (name));              \
        int sonde_chk_ok_ = !!(expr);                                                              \
        sonde_op_end(sonde_chk_t_, sonde_chk_ok_);                                                 \
        sonde_chk_ok_;                                                                             \
    })
#endif

/* ------------------------------------------------------------------------ */
/* Windows and baselines                                                    */

/** Figures of one operation over one window. Durations in seconds. */
typedef struct sonde_op_stats {
    char operation[SONDE_OP_NAME_MAX + 1];
    /** The window asked for, and the calendar minutes it covers:
     * [from_unix, to_unix) in seconds since the epoch. */
    uint32_t window_minutes;
    int64_t from_unix, to_unix;
    uint64_t count;
    uint64_t errors;
    /** (count - errors) / count; NaN when count is 0. */
    double success_rate;
    /** Exact average, min and max; NaN when count is 0. */
    double avg_seconds, min_seconds, max_seconds;
    /** Quantiles within SONDE_TRACE_RELATIVE_ERROR; NaN when count is 0. */
    double p50_seconds, p90_seconds, p95_seconds, p99_seconds;
    /** The baseline, when one is set (has_baseline). */
    int has_baseline;
    double baseline_avg_seconds, baseline_p95_seconds, baseline_factor;
    /** 1 when this window breaks the baseline: at least its min_count
     * operations, and avg > factor * expected avg or p95 > factor *
     * expected p95. */
    int anomaly;
} sonde_op_stats;

/**
 * Figures of one operation over the last `minutes` minutes (0: 60), from
 * memory and, for what memory no longer holds, from the store. Returns
 * SONDE_OK (count may be 0), SONDE_EINVAL (NULL arguments), SONDE_ENOTFOUND
 * (no such operation in memory or in the store). A store
 * failure is not an error: the figures then cover what memory holds. Any
 * thread; takes the tracing lock (never taken by sonde_op_*); allocates.
 */
SONDE_API int sonde_trace_get_stats(const char *operation, unsigned minutes, sonde_op_stats *out);

/**
 * Figures of every operation known in memory or in the store, sorted by
 * name, over the last `minutes` minutes (0: 60). On SONDE_OK *out is an
 * array of *count entries that the caller frees with sonde_free (NULL when
 * *count is 0). Returns SONDE_OK, SONDE_EINVAL, SONDE_ENOMEM,
 * Any thread; allocates.
 */
SONDE_API int sonde_trace_list_stats(unsigned minutes, sonde_op_stats **out, size_t *count);

/**
 * Figures computed from a store alone, as a separate program sees them
 * (the `sonde performance --store` command): operation NULL for every
 * operation, else only that one; `minutes` 0: 60. The store is opened
 * read-only and closed before returning. On SONDE_OK *out and *count are
 * as for sonde_trace_list_stats. Returns SONDE_OK, SONDE_EINVAL (bad
 * address), SONDE_EIO (cannot open or read; reason in
 * sonde_last_error), SONDE_EUNREACHABLE (Redis), SONDE_ENOMEM.
 * Any thread; allocates; blocks up to the store's timeouts.
 */
SONDE_API int sonde_trace_read_store(const char *store, const char *operation, unsigned minutes,
                                     sonde_op_stats **out, size_t *count);

/**
 * Append stats[0..n) as the JSON document of the /performance endpoint to
 * out: {"window_minutes":N,"relative_error":0.01,"operations":[{...}]} (see
 * docs/tracing.md).
 * Returns SONDE_OK, SONDE_ENOMEM, SONDE_ETOOBIG. Any thread.
 */
SONDE_API int sonde_op_stats_write_json(const sonde_op_stats *stats, size_t n,
                                        unsigned window_minutes, sonde_buf *out);

/** A baseline: expected figures of an operation. */
typedef struct sonde_baseline {
    /** Expected average and p95 in seconds; 0 means "not checked". */
    double avg_seconds;
    double p95_seconds;
    /** Flag when the window exceeds an expectation by this factor (> 1).
     * 0: the tracing default (2.0). */
    double factor;
    /** Window evaluated, in minutes. 0: the tracing default (5). */
    unsigned window_minutes;
    /** Least operations in the window to flag. 0: the default (10). */
    uint64_t min_count;
} sonde_baseline;

/**
 * Set (b non-NULL) or remove (b NULL) the baseline of an operation
 * (created if needed). Saved in the store as well, so that a reader of the
 * store (sonde performance) flags the same anomalies. The flag is evaluated
 * at every background flush; a change sets
 * <ns>_operation_anomaly{operation}, is reported through the diagnostics
 * hook at WARNING, and calls the anomaly hook. Returns SONDE_OK,
 * SONDE_EINVAL (negative or non-finite figure, factor in (0, 1]),
 * SONDE_ELIMIT. Any thread.
 */
SONDE_API int sonde_trace_set_baseline(const char *operation, const sonde_baseline *b);

/** The baseline of an operation: SONDE_OK, or SONDE_ENOTFOUND when none is
 * set. Any thread. */
SONDE_API int sonde_trace_get_baseline(const char *operation, sonde_baseline *out);

/** Whether the operation is flagged now: 1 or 0, or SONDE_ENOTFOUND. Any
 * thread, lock-free. */
SONDE_API int sonde_trace_get_anomaly(const char *operation);

/**
 * Called on the background thread when an operation's flag changes;
 * stats are the figures of its baseline window (borrowed for the call).
 * Must return quickly and must not call sonde_trace_* functions that take
 * the tracing lock (sonde_trace_get_anomaly is fine).
 */
typedef void (*sonde_anomaly_fn)(const sonde_op_stats *stats, int anomalous, void *userdata);

/** Install the anomaly hook (fn NULL: none). userdata is borrowed until
 * replaced. Any thread. */
SONDE_API void sonde_trace_set_anomaly_hook(sonde_anomaly_fn fn, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
