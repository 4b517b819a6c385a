/*
 * sonde/errors.h - error tracking and alerting: capture errors with a
 * severity, type, message and context; group them by fingerprint; evaluate
 * alert rules; deliver alerts to notifiers (log, webhook, Slack-compatible
 * webhook, Prometheus Alertmanager, command).
 *
 *     SONDE_CAPTURE(SONDE_SEVERITY_HIGH, "DatabaseError",
 *                   "query failed on shard %d: %s", shard, msg);
 *
 * An error tracker (sonde_errors) owns everything below. Most programs use
 * the process-wide default tracker (pass NULL), which sonde_start starts and
 * serves on /errors and /alerts; tests and libraries may create their own.
 *
 * Capture path. sonde_error_capture copies the error into one slot of a
 * bounded lock-free queue, normalises the message and hashes the
 * fingerprint, and counts it in sonde_errors_total{severity,type}. It never
 * blocks, never allocates (except for the optional backtrace's first use in
 * glibc) and never fails: when the queue is full the error is counted in
 * sonde_errors_dropped_total and otherwise discarded. The runtime worker
 * drains the queue: it updates the groups, feeds the rules, and logs the
 * error (ERROR, or CRITICAL for critical errors) through the "sonde.errors"
 * logger, at most 100 lines a second (the rest are counted in a summary
 * line).
 *
 * Fingerprint. Errors with the same type, the same normalised message and
 * the same location (file name without directories, function, line) are
 * one group. Normalisation replaces, in the message, UUIDs by <uuid>,
 * 0x-prefixed numbers and hex strings of 8 or more characters containing a
 * digit by <hex>, numbers by <n>, and any other word (run of ASCII letters
 * and digits) containing a digit by <id>; so "user 4711 not found" and
 * "user 42 not found" are one group, and the group's title shows "user <n>
 * not found". An explicit sonde_error_info.fingerprint replaces the
 * computed one. A group keeps its count, first and last time seen, highest
 * severity and the last sample (message, context, correlation ID, errno,
 * backtrace).
 *
 * Rules and alerts. A rule is evaluated every eval_interval (1 s): error
 * threshold (at least N errors of severity >= S, optionally of one type or
 * operation, within a window), failure rate of an operation above X% over a
 * window with a minimum count, no success of an operation within a window,
 * baseline anomaly of an operation (from tracing), health percentage below
 * X. A rule whose condition holds is "pending"; once it has held for the
 * rule's `for` duration it is "firing" and its notifiers are told; when the
 * condition clears it is resolved and the notifiers are told again. One
 * rule is one alert (deduplication): while it fires, notifiers are told
 * again only every repeat interval (the Alertmanager notifier re-sends every
 * resend interval, as Prometheus does, so that Alertmanager keeps the alert
 * active). Silences suppress notifications of matching alerts.
 *
 * Notifiers run on the runtime worker, never on the caller: each has a
 * bounded queue, a timeout per attempt, and retries with exponential
 * backoff and jitter for 5xx answers, 408, 429, timeouts and connection
 * failures (never for other 4xx). Deliveries that are given up or dropped
 * from a full queue are counted in
 * sonde_alert_notifications_failed_total{notifier} and logged once.
 *
 * Threads: sonde_errors_start registers the tracker's timer on the runtime
 * worker (started by it if needed); sonde_errors_stop cancels it after a
 * last drain and a bounded attempt to deliver what is queued
 * (stop_timeout). Command notifiers run as child processes.
 *
 * Off means off: with sonde disabled every capture is a no-op and
 * sonde_errors_start starts nothing.
 */
#ifndef SONDE_ERRORS_H
#define SONDE_ERRORS_H

#include "common.h"
#include "health.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Error (and alert) severities, increasing. Values are ABI. */
typedef enum sonde_severity {
    SONDE_SEVERITY_LOW = 1,
    SONDE_SEVERITY_MEDIUM = 2,
    SONDE_SEVERITY_HIGH = 3,
    SONDE_SEVERITY_CRITICAL = 4
} sonde_severity;

/** "low", "medium", "high", "critical"; "unknown" otherwise. Static text.
 * Any thread, lock-free. */
SONDE_API const char *sonde_severity_name(int severity);

/** Parse a severity name (case-insensitive; also "1".."4", "warning" for
 * medium, "error" for high). Returns 1..4 or SONDE_EINVAL. Pure. */
SONDE_API int sonde_severity_parse(const char *s);

/** An error tracker: capture queue, groups, rules, alerts, notifiers. */
typedef struct sonde_errors sonde_errors;

/* ------------------------------------------------------------------------ */
/* Trackers                                                                 */

/** Wall clock for a tracker, in seconds since the epoch (tests). */
typedef double (*sonde_clock_fn)(void *userdata);

/** Options of a tracker; zero means default for every field. Strings are
 * copied. */
typedef struct sonde_errors_opts {
    /** Registry receiving sonde_errors_total, sonde_errors_dropped_total,
     * sonde_error_groups, sonde_alerts_firing and the notifier metrics.
     * NULL: the default registry. Borrowed; must outlive the tracker. One
     * tracker per registry. */
    sonde_registry *registry;
    /** Capture queue slots, rounded up to a power of two. Each slot holds
     * one error of up to 1 KiB (type 64 bytes, message 512, operation 64,
     * context pairs in what is left); longer fields are cut. 0: 1024.
     * Bounds: 16 to 1048576. */
    size_t queue_size;
    /** Most groups kept in memory; past it the group seen least recently is
     * forgotten. 0: 10000. */
    size_t max_groups;
    /** Groups not seen for this long are forgotten. 0: 720 (30 days). */
    double group_retention_hours;
    /** Alert history kept this long. 0: 168 (7 days). */
    double alert_retention_hours;
    /** Most entries of alert history in memory. 0: 1000. */
    size_t max_history;
    /** Period of the worker's drain of the capture queue (and of notifier
     * progress), in milliseconds. 0: 50. Bounds: 1 to 10000. The queue
     * also wakes the worker when it is a quarter full. */
    unsigned tick_ms;
    /** Period of rule evaluation in milliseconds. 0: 1000. Bounds: 10 to
     * 3600000. */
    unsigned eval_interval_ms;
    /** Wall clock used for error timestamps, windows, `for`, repeat
     * intervals, silences and alert times. NULL: the real clock. Must be
     * callable from any thread. */
    sonde_clock_fn clock;
    void *clock_userdata;
    /** Value of the "service" label of alerts. NULL: $SONDE_SERVICE_NAME,
     * else the program name. */
    const char *service_name;
    /** Base URL of this service's sonde endpoints, used for the
     * Alertmanager generatorURL (base + "/alerts"). NULL:
     * $SONDE_EXTERNAL_URL, else http://<listen address> when sonde_start
     * serves this tracker, else no generatorURL. */
    const char *external_url;
    /** Non-zero: do not add notifiers from $SONDE_ALERTMANAGER_URL,
     * $SONDE_WEBHOOK_URL and $SONDE_SLACK_WEBHOOK_URL at start. */
    int no_env_notifiers;
    /** Non-zero: do not log captured errors. */
    int no_log;
    /** Longest sonde_errors_stop spends delivering queued notifications,
     * in milliseconds. 0: 2000. */
    unsigned stop_timeout_ms;
    /** Store keeping error groups and alert history across restarts (read
     * by `sonde errors --store`): a SQLite file path (or "sqlite:PATH"),
     * "redis://[[user]:password@]host[:port][/db]" (also "valkey://"), or
     * "off". NULL: $SONDE_STORE, else none. ":memory:" keeps nothing. The
     * same store as tracing's (other tables, other keys). Written on the
     * runtime worker every store_flush_ms; a failing store is retried with
     * backoff, counted in sonde_errors_store_errors_total and logged once. */
    const char *store;
    /** Period of store writes in milliseconds. 0: 2000. Bounds: 10 to
     * 600000. */
    unsigned store_flush_ms;
} sonde_errors_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_errors_opts_init(sonde_errors_opts *opts);

/**
 * Create a tracker (opts NULL: defaults). On success *out is owned by the
 * caller and freed with sonde_errors_destroy. Returns SONDE_OK,
 * SONDE_EINVAL (out-of-bounds option), SONDE_ECONFLICT (the registry
 * already has a tracker) or SONDE_ENOMEM. Allocates the capture queue.
 * Any thread.
 */
SONDE_API int sonde_errors_create(const sonde_errors_opts *opts, sonde_errors **out);

/**
 * Stop (as sonde_errors_stop) and free a tracker, its groups, rules,
 * notifiers and history. Accepts NULL; the default tracker is never
 * destroyed. No other thread may use the tracker during or after the call.
 */
SONDE_API void sonde_errors_destroy(sonde_errors *t);

/** The process-wide default tracker (default registry), created at first
 * use. NULL only when memory is short. Any thread. */
SONDE_API sonde_errors *sonde_errors_default(void);

/**
 * Run the tracker on the runtime worker (sonde_start does this for the
 * tracker it serves): drains captures, evaluates rules, delivers
 * notifications; adds the environment's notifiers at the first start.
 * Reference-counted with sonde_errors_stop. Returns SONDE_OK or
 * SONDE_ENOMEM. t NULL: the default tracker. Any thread.
 */
SONDE_API int sonde_errors_start(sonde_errors *t);

/**
 * Drop a reference; the last one cancels the timer, drains the queue,
 * evaluates the rules once more, and tries to deliver queued notifications
 * for at most stop_timeout_ms before abandoning them (counted as failed).
 * Any thread except sonde's own.
 */
SONDE_API void sonde_errors_stop(sonde_errors *t);

/* ------------------------------------------------------------------------ */
/* Capture                                                                  */

/** Longest kept type, operation (bytes); longer ones are cut. */
#define SONDE_ERROR_TYPE_MAX 64
/** Longest kept message (bytes). */
#define SONDE_ERROR_MESSAGE_MAX 512
/** Most backtrace frames kept. */
#define SONDE_ERROR_MAX_FRAMES 16

/** One error to capture. Every pointer is borrowed for the call only. */
typedef struct sonde_error_info {
    /** SONDE_SEVERITY_*. 0 (or out of range): MEDIUM. */
    int severity;
    /** Error class ("DatabaseError", "timeout"). NULL or "": "error". */
    const char *type;
    /** Message (NULL: ""). */
    const char *message;
    /** Operation during which it happened; used by rules with an
     * operation filter. NULL: none. */
    const char *operation;
    /** Context pairs: context[2i] = key, context[2i+1] = value (NULL values
     * are ""), context_count pairs. Kept as the group's last sample as far
     * as the slot has room. */
    const char *const *context;
    size_t context_count;
    /** Source location (SONDE_ERROR_HERE fills it). NULL/0: unknown. */
    const char *file;
    int line;
    const char *func;
    /** errno value, 0 for none. */
    int errnum;
    /** Non-zero: capture the calling thread's backtrace (costs a few
     * microseconds). */
    int backtrace;
    /** Explicit grouping key replacing the computed fingerprint. NULL:
     * computed. */
    const char *fingerprint;
} sonde_error_info;

/** Zero an info (severity MEDIUM, no fields). Any thread. */
SONDE_API void sonde_error_info_init(sonde_error_info *info);

/** Set the location fields of an info to the calling line. */
#define SONDE_ERROR_HERE(info)                                                                     \
    ((info)->file = __FILE__, (info)->line = __LINE__, (info)->func = __func__)

/**
 * Capture an error into t (NULL: the default tracker). The correlation ID
 * and context fields of the calling thread's logging context are attached
 * when logging is in use. Any thread, lock-free; never blocks, never fails:
 * a full queue counts the error in sonde_errors_dropped_total. Does not
 * allocate (a backtrace may, inside glibc, on its first use).
 */
SONDE_API void sonde_error_capture(sonde_errors *t, const sonde_error_info *info);

/**
 * Capture with a printf-style message (formatted on the calling thread,
 * cut at SONDE_ERROR_MESSAGE_MAX bytes). file and func may be NULL.
 * Same guarantees as sonde_error_capture.
 */
SONDE_API void sonde_error_capturef(sonde_errors *t, int severity, const char *type,
                                    const char *file, int line, const char *func, const char *fmt,
                                    ...) SONDE_PRINTF(7, 8);

/** Capture into the default tracker at the calling line:
 * SONDE_CAPTURE(SONDE_SEVERITY_HIGH, "DatabaseError", "fmt", ...). */
#define SONDE_CAPTURE(severity, type, ...)                                                         \
    sonde_error_capturef(NULL, (severity), (type), __FILE__, __LINE__, __func__, __VA_ARGS__)

/**
 * Drain the capture queue into the groups and evaluate the rules now, on
 * the calling thread (the worker does this periodically). Notifications
 * that become due are queued for the worker. t NULL: the default tracker.
 * Any thread but the runtime worker.
 */
SONDE_API void sonde_errors_process(sonde_errors *t);

/* ------------------------------------------------------------------------ */
/* Groups                                                                   */

/** Filter of sonde_errors_get_groups and sonde_errors_write_json; zero
 * means no filter. */
typedef struct sonde_errors_filter {
    /** Only groups whose highest severity is at least this. 0: all. */
    int min_severity;
    /** Only groups seen at or after this time (seconds since the epoch).
     * 0: all. */
    double since;
    /** Only groups of this type (exact). NULL: all. */
    const char *type;
    /** Most groups returned, most recently seen first. 0: 100. */
    size_t limit;
} sonde_errors_filter;

/** One error group. Strings point into the same allocation as the array. */
typedef struct sonde_error_group {
    /** 16 lowercase hex digits. */
    const char *fingerprint;
    const char *type;
    /** "<type>: <normalised message>". */
    const char *title;
    /** The last sample's message, operation ("" if none), correlation ID
     * ("" if none). */
    const char *message;
    const char *operation;
    const char *correlation_id;
    /** Location of the group ("" / 0 when unknown). */
    const char *file;
    const char *func;
    int line;
    /** Highest severity seen and severity of the last sample. */
    int severity;
    int last_severity;
    /** Errors in the group (since first_seen; survives restarts with a
     * store). */
    uint64_t count;
    /** Seconds since the epoch. */
    double first_seen;
    double last_seen;
    /** errno of the last sample (0 none). */
    int errnum;
} sonde_error_group;

/**
 * Copy the groups matching f (NULL: no filter), most recently seen first.
 * On SONDE_OK *out is an array of *count groups that the caller frees with
 * sonde_free (NULL when *count is 0). Returns SONDE_OK, SONDE_EINVAL or
 * SONDE_ENOMEM. Does not drain the queue (see sonde_errors_process). Any
 * thread; allocates.
 */
SONDE_API int sonde_errors_get_groups(sonde_errors *t, const sonde_errors_filter *f,
                                      sonde_error_group **out, size_t *count);

/**
 * Append the groups matching f as the JSON document of the /errors
 * endpoint: {"timestamp":..., "total_groups":N, "dropped":N,
 * "groups":[{fingerprint, type, title, severity, count, first_seen,
 * last_seen, location:{file,function,line}, last:{message, severity,
 * timestamp, operation, correlation_id, errno, error, context:{...},
 * backtrace:[...]}}]}. Returns SONDE_OK, SONDE_ENOMEM, SONDE_ETOOBIG (out
 * is then left as it was). Any thread.
 */
SONDE_API int sonde_errors_write_json(sonde_errors *t, const sonde_errors_filter *f,
                                      sonde_buf *out);

/**
 * The /errors document as a separate program sees it, read from a store
 * (the `sonde errors --store` command): groups written by every process
 * using the store, with their counts added up, most recently seen first,
 * filtered as by sonde_errors_write_json. The store is opened read-only and
 * closed before returning. Returns SONDE_OK, SONDE_EINVAL (bad address, or
 * one that keeps nothing), SONDE_EIO (cannot open or read; the reason in
 * sonde_last_error), SONDE_EUNREACHABLE (Redis), SONDE_ENOMEM.
 * Any thread; allocates; blocks up to the store's timeouts.
 */
SONDE_API int sonde_errors_read_store(const char *store, const sonde_errors_filter *f,
                                      sonde_buf *out);

/* ------------------------------------------------------------------------ */
/* Rules                                                                    */

/** Rule kinds. Values are ABI. */
typedef enum sonde_rule_kind {
    /** At least `threshold` errors of severity >= min_severity (of `type`
     * and `operation` when set) within window_seconds. */
    SONDE_RULE_ERRORS = 1,
    /** Failure percentage of `operation` above `percent` over
     * window_seconds, with at least min_count operations (tracing). */
    SONDE_RULE_FAILURE_RATE = 2,
    /** No successful `operation` within window_seconds (tracing); with
     * min_count > 0 only when at least that many were attempted. Not
     * before window_seconds have passed since the rule was added. */
    SONDE_RULE_NO_SUCCESS = 3,
    /** `operation` breaks its tracing baseline (sonde_trace_set_baseline). */
    SONDE_RULE_ANOMALY = 4,
    /** Health percentage of `health` below `percent`. */
    SONDE_RULE_HEALTH = 5,
    /* Rules over any metric of the tracker's registry (metric rules):
     * `metric` selects the series, every evaluation samples them, and
     * each matching series (or each group of `by`) is one alert, its
     * labels carried into the alert's labels. The alert is active while
     * `value <op> threshold_value` holds. See docs/alerting.md. */
    /** The series' current value (gauge, counter, untyped). */
    SONDE_RULE_VALUE = 6,
    /** Per-second rate of a counter over window_seconds. */
    SONDE_RULE_RATE = 7,
    /** Increase of a counter over window_seconds. */
    SONDE_RULE_INCREASE = 8,
    /** Increase of `metric` divided by the increase of `denominator` over
     * window_seconds (failures / total); no value when the denominator
     * did not increase. */
    SONDE_RULE_RATIO = 9,
    /** The `quantile` of a histogram's observations within window_seconds,
     * from its bucket increases (as PromQL's histogram_quantile). */
    SONDE_RULE_QUANTILE = 10
} sonde_rule_kind;

/** Comparisons of metric rules. Values are ABI. */
typedef enum sonde_rule_op {
    SONDE_OP_GT = 1, /* > (the default) */
    SONDE_OP_GE = 2, /* >= */
    SONDE_OP_LT = 3, /* < */
    SONDE_OP_LE = 4, /* <= */
    SONDE_OP_EQ = 5, /* == */
    SONDE_OP_NE = 6  /* != */
} sonde_rule_op;

/** ">", ">=", "<", "<=", "==", "!="; "?" otherwise. Static text. */
SONDE_API const char *sonde_rule_op_name(int op);
/** Parse a comparison (also "gt", "ge", "lt", "le", "eq", "ne");
 * returns the op or SONDE_EINVAL. Pure. */
SONDE_API int sonde_rule_op_parse(const char *s);

/** "errors", "failure_rate", "no_success", "anomaly", "health", "value",
 * "rate", "increase", "ratio", "quantile"; "unknown".
 * Static text. */
SONDE_API const char *sonde_rule_kind_name(int kind);
/** Parse a kind name; returns the kind or SONDE_EINVAL. Pure. */
SONDE_API int sonde_rule_kind_parse(const char *s);

/** A rule; zero means default for every field. Strings are copied. */
typedef struct sonde_rule_opts {
    /** Required: unique in the tracker, [a-zA-Z_][a-zA-Z0-9_]{0,63}; the
     * alert's alertname label. */
    const char *name;
    /** SONDE_RULE_*. Required. */
    int kind;
    /** Severity of the alert (label "severity"). 0: min_severity for
     * ERRORS rules when set, else HIGH. */
    int severity;
    /** ERRORS: least severity counted. 0: LOW (all). */
    int min_severity;
    /** ERRORS: errors needed to fire. 0: 1. Bound: 100000 (the rule keeps
     * that many timestamps: 8 bytes each). */
    uint64_t threshold;
    /** ERRORS: only this type (exact). NULL: any. */
    const char *type;
    /** ERRORS: only errors captured with this operation; required for
     * FAILURE_RATE, NO_SUCCESS and ANOMALY. */
    const char *operation;
    /** Window in seconds. 0: 300. Bounds: 1 to 2592000 (30 days). Tracing
     * windows are whole minutes: the window is rounded up to minutes. */
    double window_seconds;
    /** FAILURE_RATE: fire above this failure percentage (0..100);
     * HEALTH: fire below this health percentage. Required for both. */
    double percent;
    /** FAILURE_RATE: least operations in the window (0: 10). NO_SUCCESS:
     * least attempts (0: none needed). */
    uint64_t min_count;
    /** Health set of HEALTH rules. NULL: the default set. Borrowed; must
     * outlive the rule. */
    sonde_health *health;
    /** How long the condition must hold before firing. 0: at once. */
    double for_seconds;
    /** Re-notify a still-firing alert this often. 0: 3600. Negative:
     * never. */
    double repeat_seconds;
    /** Annotations. Placeholders {value}, {threshold}, {window},
     * {operation}, {type}, {rule} are replaced. NULL: a generated
     * summary; no description. */
    const char *summary;
    const char *description;
    /** Extra alert labels: labels[2i] = name, labels[2i+1] = value,
     * label_count pairs (at most 32). Names as Prometheus label names;
     * alertname and names starting with __ are reserved. */
    const char *const *labels;
    size_t label_count;
    /* ---- metric rules (VALUE, RATE, INCREASE, RATIO, QUANTILE) ---- */
    /** Required: the series, as a PromQL instant selector: a metric name
     * (the full name as exposed, a counter with its _total) and optional
     * matchers on labels: `http_requests_total{route=~"/api/.*",code!="200"}`
     * (=, !=, =~, !~; regexes are POSIX extended and anchored; a missing
     * label is the empty value). QUANTILE: a histogram family. */
    const char *metric;
    /** RATIO: the denominator's selector, required. */
    const char *denominator;
    /** Sum the series by these label names: one alert per combination of
     * their values, with these labels. NULL/0: one alert per series
     * (RATIO: per label set, numerator and denominator matched on equal
     * label sets; QUANTILE: per series, `le` aside). At most 16. */
    const char *const *by;
    size_t by_count;
    /** SONDE_OP_*; 0: SONDE_OP_GT. */
    int op;
    /** The alert is active while `value <op> threshold_value`. */
    double threshold_value;
    /** QUANTILE: the quantile, in (0, 1]. Required. */
    double quantile;
    /** Sample the registry and evaluate this often, in seconds. 0: every
     * evaluation of the tracker (eval_interval_ms). Bounds: 0 to 3600. */
    double interval_seconds;
} sonde_rule_opts;

/** At most this many rules and notifiers per tracker (SONDE_ELIMIT beyond). */
#define SONDE_ALERTS_MAX_RULES 256
#define SONDE_ALERTS_MAX_NOTIFIERS 32

/** Zero the options. Any thread. */
SONDE_API void sonde_rule_opts_init(sonde_rule_opts *opts);

/**
 * Validate a rule's options as sonde_alerts_add_rule would, without adding
 * it (for configuration checkers). Returns SONDE_OK or the error
 * sonde_alerts_add_rule would return, the reason in sonde_last_error.
 * Works the same when sonde is disabled. Any thread.
 */
SONDE_API int sonde_rule_opts_check(const sonde_rule_opts *opts);

/**
 * Validate a metric rule selector (sonde_rule_opts.metric, .denominator).
 * Returns SONDE_OK or SONDE_EINVAL with the reason (and byte offset) in
 * sonde_registry_last_error. Pure apart from that. Any thread.
 */
SONDE_API int sonde_rule_selector_check(const char *selector);

/**
 * Add a rule to t (NULL: default tracker). Returns SONDE_OK, SONDE_EINVAL
 * (bad name, kind, missing operation or percent, out-of-bounds value; the
 * reason in sonde_last_error), SONDE_ECONFLICT (name taken),
 * SONDE_ELIMIT (more than 256 rules) or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_alerts_add_rule(sonde_errors *t, const sonde_rule_opts *opts);

/** Remove a rule; a firing alert of it is resolved (and notified). Returns
 * SONDE_OK or SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_alerts_remove_rule(sonde_errors *t, const char *name);

/**
 * Replace every rule of t (NULL: default tracker) by rules[0..n), as one
 * change (configuration reloads): a rule whose name and definition did not
 * change keeps its state (a firing alert stays firing and nothing is
 * sent); a rule no longer listed, or changed, is removed and its alert
 * resolved; new rules start inactive. When one entry is invalid nothing
 * changes: SONDE_EINVAL or SONDE_ECONFLICT (a name listed twice) with the
 * reason in sonde_last_error. Returns SONDE_OK, SONDE_EINVAL,
 * SONDE_ECONFLICT, SONDE_ELIMIT or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_alerts_set_rules(sonde_errors *t, const sonde_rule_opts *rules, size_t n);

/* ------------------------------------------------------------------------ */
/* Notifiers                                                                */

/** Notifier kinds. Values are ABI. */
typedef enum sonde_notifier_kind {
    /** A line through the "sonde.alerts" logger: ERROR when a high or
     * critical alert fires, WARNING for the others, INFO when resolved. */
    SONDE_NOTIFY_LOG = 1,
    /** POST url with a JSON document (see docs/alerting.md). */
    SONDE_NOTIFY_WEBHOOK = 2,
    /** POST url with a Slack incoming-webhook payload (text and an
     * attachment with fields). */
    SONDE_NOTIFY_SLACK = 3,
    /** POST url + "/api/v2/alerts" (url is the Alertmanager base URL) with
     * the alerts in Alertmanager's format; firing alerts are re-sent every
     * resend interval with endsAt four intervals ahead. */
    SONDE_NOTIFY_ALERTMANAGER = 4,
    /** Run argv; the alert is in the environment (SONDE_ALERT_NAME,
     * SONDE_ALERT_STATUS, SONDE_ALERT_SEVERITY, SONDE_ALERT_SUMMARY,
     * SONDE_ALERT_VALUE, SONDE_ALERT_JSON). Exit status 0 is success. */
    SONDE_NOTIFY_COMMAND = 5
} sonde_notifier_kind;

/** "log", "webhook", "slack", "alertmanager", "command"; "unknown". */
SONDE_API const char *sonde_notifier_kind_name(int kind);
/** Parse a kind name; returns the kind or SONDE_EINVAL. Pure. */
SONDE_API int sonde_notifier_kind_parse(const char *s);

/** A notifier; zero means default for every field. Strings are copied. */
typedef struct sonde_notifier_opts {
    /** Unique in the tracker, [a-zA-Z0-9_.:-]{1,64}; the value of the
     * notifier label. NULL: the kind's name. */
    const char *name;
    /** SONDE_NOTIFY_*. Required. */
    int kind;
    /** http:// or https:// URL (webhook, Slack, Alertmanager). */
    const char *url;
    /** Extra HTTP headers, "Name: value" each, header_count of them. */
    const char *const *headers;
    size_t header_count;
    /** COMMAND: program and arguments, NULL-terminated (argv[0] is looked
     * up in PATH). */
    const char *const *argv;
    /** Only alerts of at least this severity. 0: all. */
    int min_severity;
    /** Non-zero: do not send resolutions. */
    int no_resolved;
    /** Longest one attempt may take. 0: 5 s. Bounds: 0.01 to 300. */
    double timeout_seconds;
    /** Attempts per notification (first one included). 0: 5. Max 100. */
    unsigned max_attempts;
    /** Delay before the first retry; doubles at each retry up to
     * retry_max_seconds, with up to 50% random jitter subtracted. 0: 0.5 s
     * and 30 s. */
    double retry_initial_seconds;
    double retry_max_seconds;
    /** Notifications waiting for delivery; past it the oldest is dropped
     * and counted as failed. 0: 256. */
    size_t queue_size;
    /** ALERTMANAGER: re-send firing alerts this often. 0: 60 s. */
    double resend_seconds;
} sonde_notifier_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_notifier_opts_init(sonde_notifier_opts *opts);

/**
 * Validate a notifier's options as sonde_alerts_add_notifier would, without
 * adding it. Returns SONDE_OK or the error sonde_alerts_add_notifier would
 * return, the reason in sonde_last_error. Works the same when sonde is
 * disabled. Any thread.
 */
SONDE_API int sonde_notifier_opts_check(const sonde_notifier_opts *opts);

/**
 * Add a notifier to t (NULL: default tracker). Every alert transition from
 * then on is queued for it. Returns SONDE_OK, SONDE_EINVAL (bad kind,
 * name, URL, header, empty argv; the reason in sonde_last_error),
 * SONDE_ECONFLICT (name taken), SONDE_ELIMIT (more than 32 notifiers) or
 * SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_alerts_add_notifier(sonde_errors *t, const sonde_notifier_opts *opts);

/** Remove a notifier; its queued notifications are dropped (not counted)
 * and a delivery in progress is abandoned. Returns SONDE_OK or
 * SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_alerts_remove_notifier(sonde_errors *t, const char *name);

/**
 * Replace every notifier of t by list[0..count), as one change: a notifier
 * whose name and definition did not change keeps its queue; the others
 * are removed as by sonde_alerts_remove_notifier. Notifiers added from the
 * environment stay unless the list has one of the same name. Nothing
 * changes when an entry is invalid. Returns as sonde_alerts_set_rules.
 * Any thread.
 */
SONDE_API int sonde_alerts_set_notifiers(sonde_errors *t, const sonde_notifier_opts *list,
                                         size_t count);

/** Delivery figures of one notifier. */
typedef struct sonde_notifier_stats {
    uint64_t sent;     /* notifications delivered */
    uint64_t failed;   /* given up after retries, refused (4xx), or dropped */
    uint64_t attempts; /* HTTP requests or command runs, retries included */
    size_t queued;     /* waiting now, the one in flight included */
} sonde_notifier_stats;

/** Read a notifier's figures. Returns SONDE_OK or SONDE_ENOTFOUND. Any
 * thread. */
SONDE_API int sonde_alerts_get_notifier_stats(sonde_errors *t, const char *name,
                                              sonde_notifier_stats *out);

/**
 * Wait until every notifier's queue is empty (delivered or given up), at
 * most timeout_ms. Needs the tracker to be started. Returns SONDE_OK,
 * SONDE_ETIMEOUT or SONDE_ESTATE (not started). Any thread but the
 * runtime worker.
 */
SONDE_API int sonde_alerts_wait_idle(sonde_errors *t, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Silences                                                                 */

/*
 * Silences as an operator uses Alertmanager's: matchers on alert labels
 * (alertname, severity, service and the rule's labels; a missing label is
 * ""), a time range, a comment and an author. A silenced alert still
 * changes state and shows in /alerts with "silenced":true, but nothing is
 * sent for it; if it still fires when the silence ends, notifiers are told
 * then. A silence is pending before its start, active until its end,
 * expired afterwards; expired silences are listed for a retention (5 days
 * by default) and then forgotten. With a store (sonde_errors_opts.store)
 * silences are saved there and read back at start, so they survive a
 * restart. Ids are 64-bit; HTTP and the command show them as 16 hex digits.
 * Over HTTP: POST/GET /alerts/silences, DELETE /alerts/silences/ID.
 */

/** One matcher: the label `name` equals `value` (is_regex: matches the
 * anchored POSIX extended expression `value`); is_equal 0 negates it. */
typedef struct sonde_silence_matcher {
    const char *name;
    const char *value;
    int is_regex;
    int is_equal;
} sonde_silence_matcher;

/** Options of a silence. Zero means default; strings are copied. */
typedef struct sonde_silence_opts {
    /** 1 to 32 matchers; at least one must not match the empty string. */
    const sonde_silence_matcher *matchers;
    size_t matcher_count;
    /** Seconds since the epoch. starts 0: now. ends 0: starts + duration. */
    double starts, ends;
    /** Seconds (used when ends is 0). */
    double duration;
    /** Free text, at most 1024 and 256 bytes. NULL: "". */
    const char *comment;
    const char *created_by;
    /** Room for options added later without breaking the ABI; keep zero. */
    void *reserved[4];
} sonde_silence_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_silence_opts_init(sonde_silence_opts *o);

/**
 * Add a silence. *id_out (may be NULL) receives its id. Returns SONDE_OK;
 * SONDE_EINVAL (bad matcher, times, lengths: sonde_registry_last_error
 * says which);
 * SONDE_ELIMIT (1024 silences pending or active); SONDE_ENOMEM. Disabled
 * (SONDE_ENABLED=0): SONDE_OK, nothing is kept and *id_out is 0. Any
 * thread.
 */
SONDE_API int sonde_alerts_silence(sonde_errors *t, const sonde_silence_opts *o, uint64_t *id_out);

/** Expire a silence now (it stays listed as expired for the retention).
 * Returns SONDE_OK (also when it had already expired) or SONDE_ENOTFOUND;
 * disabled: SONDE_OK. Any thread. */
SONDE_API int sonde_alerts_expire_silence(sonde_errors *t, uint64_t id);

/** How long expired silences are kept, in seconds (memory and store).
 * 0: SONDE_SILENCE_RETENTION from the environment (a duration such as
 * "5d"), else 5 days. Returns SONDE_OK or SONDE_EINVAL (negative or not
 * finite). Any thread. */
SONDE_API int sonde_alerts_set_silence_retention(sonde_errors *t, double seconds);

/**
 * Append the silences as a JSON array, as Alertmanager's GET
 * /api/v2/silences: [{"id","status":{"state"},"matchers":[{"name","value",
 * "isRegex","isEqual"}],"startsAt","endsAt","updatedAt","comment",
 * "createdBy"}], active first (soonest end first), then pending, then
 * expired (latest end first). Returns SONDE_OK or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_alerts_silences_json(sonde_errors *t, sonde_buf *out);

/**
 * Silence alerts whose labels equal every pair of matchers (matchers[2i] =
 * label name, matchers[2i+1] = value; n pairs, at least one) between
 * starts and ends (seconds since the epoch; starts 0: now): a shorthand of
 * sonde_alerts_silence. Returns as sonde_alerts_silence.
 */
SONDE_API int sonde_alerts_add_silence(sonde_errors *t, const char *const *matchers, size_t n,
                                       double starts, double ends, const char *comment,
                                       uint64_t *id_out);

/** Remove a silence at once (not kept as expired). Returns SONDE_OK or
 * SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_alerts_remove_silence(sonde_errors *t, uint64_t id);

/* ------------------------------------------------------------------------ */
/* Alerts                                                                   */

/** Alert states. Values are ABI. */
typedef enum sonde_alert_state {
    SONDE_ALERT_INACTIVE = 0,
    SONDE_ALERT_PENDING = 1,
    SONDE_ALERT_FIRING = 2,
    SONDE_ALERT_RESOLVED = 3
} sonde_alert_state;

/** "inactive", "pending", "firing", "resolved". Static text. */
SONDE_API const char *sonde_alert_state_name(int state);

/** One alert: the current state of a rule, or an entry of the history. */
typedef struct sonde_alert {
    const char *rule;
    const char *summary;
    int state;
    int severity;
    /** The rule's measured value at the last evaluation (errors in the
     * window, failure percentage, health percentage, 1 for anomaly/no
     * success); NaN when unknown. */
    double value;
    /** When the condition started to hold, fired, resolved (seconds since
     * the epoch; 0 when not applicable). */
    double active_since;
    double fired_at;
    double resolved_at;
    /** Whether a silence covers it now. */
    int silenced;
    /** Times notifiers were told about it (firing, repeats, resolution). */
    uint64_t notifications;
    /** Metric rules: the labels of the alert's series or group, as
     * {name="value",...} ("{}" for none); "" for the other rules and for
     * history entries. */
    const char *series;
} sonde_alert;

/**
 * Copy the current state of every alert (history 0: one per rule, and
 * for a metric rule one per series or group it watches, or one inactive
 * entry while it has none) or the alert history,
 * most recent first (history non-zero: every firing episode kept, resolved
 * or not). *out is freed by the caller with sonde_free (NULL when *count is
 * 0). Returns SONDE_OK, SONDE_EINVAL or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_alerts_get(sonde_errors *t, int history, sonde_alert **out, size_t *count);

/**
 * Append the JSON document of the /alerts endpoint: {"timestamp",
 * "firing":[...], "pending":[...], "recent":[...], "rules":[...],
 * "silences":[...], "notifiers":[...]}. Returns SONDE_OK, SONDE_ENOMEM,
 * SONDE_ETOOBIG (out left as it was). Any thread.
 */
SONDE_API int sonde_alerts_write_json(sonde_errors *t, sonde_buf *out);

/**
 * The alert history kept in a store, as the /alerts document ("firing":
 * episodes whose last recorded state is firing; "recent": the last 200
 * episodes, newest first; no rules, silences or notifiers). Returns as
 * sonde_errors_read_store. Any thread; blocks up to the store's timeouts.
 */
SONDE_API int sonde_alerts_read_store(const char *store, sonde_buf *out);

#ifdef __cplusplus
}
#endif
#endif
