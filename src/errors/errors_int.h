/*
 * Private parts of error tracking and alerting.
 *
 * Data flow:
 *   caller --capture--> ring (bounded, lock-free, fixed 1 KiB slots)
 *   worker --drain----> groups (hash table + LRU), error rules' timestamps
 *   worker --eval-----> rule states -> alert transitions -> history,
 *                       deliveries queued per notifier
 *   worker --pump-----> curl multi transfers, command children, log lines
 *
 * Locks: t->lock protects everything but the ring, the capture counters
 * and the notifier statistics. It is never taken on the capture path.
 * t->stats_lock protects only the notifier list as seen by the metrics
 * collector (order: t->lock, then stats_lock; the collector takes only
 * stats_lock, so a scrape never waits for an evaluation).
 */
#ifndef SONDE_ERRORS_INT_H
#define SONDE_ERRORS_INT_H

#include <sonde/errors.h>

#include "core/internal.h"
#include "core/text.h"

#include <sys/types.h>

/* ---- fingerprints (normalize.c) ---- */

/* Normalise s[0..n) into out (at most cap bytes, not NUL-terminated):
 * UUIDs -> <uuid>, 0x... and long hex -> <hex>, numbers -> <n>, other
 * words with digits -> <id>. Returns the output length. Pure, total. */
size_t sonde__err_normalize(const char *s, size_t n, char *out, size_t cap);
/* The fingerprint of a type, normalised message and location. */
uint64_t sonde__err_fingerprint(const char *type, size_t type_len, const char *norm,
                                size_t norm_len, const char *file, size_t file_len,
                                const char *func, size_t func_len, int line);
/* The part of a path after its last '/'. "" for NULL. */
const char *sonde__path_base(const char *file);

/* ---- capture records (capture.c) ---- */

#define ERR_REC_SIZE 1024
#define ERR_FILE_MAX 128
#define ERR_FUNC_MAX 64
#define ERR_CID_MAX 128
#define ERR_CTX_KEY_MAX 64
#define ERR_CTX_VALUE_MAX 256
#define ERR_NORM_MAX 256

/*
 * One captured error in a ring slot. data holds, in order: the backtrace
 * frames (nframes pointers), type, message, operation, file, function,
 * correlation ID, the context as key NUL value NUL pairs, then the
 * capturing thread's logging context fields in the logger's blob encoding. Strings are
 * not NUL-terminated (lengths in the header) except inside the context.
 * A group's last sample is a byte copy of a record (seq excluded from
 * meaning), so every reader works on err_rec.
 */
typedef struct err_rec {
    _Atomic uint64_t seq;
    uint64_t fp;
    int64_t ts_ns; /* tracker clock, ns since the epoch */
    int32_t line;
    int32_t errnum;
    uint8_t severity;
    uint8_t nframes;
    uint16_t ctx_count;
    uint16_t type_len, msg_len, op_len, file_len, func_len, cid_len, ctx_len;
    uint16_t lctx_len;   /* the logging context's field blob (log/log_int.h) */
    uint16_t fp_pending; /* fp still to compute (by the drain, off the caller's thread) */
    uint16_t pad_;
    char data[ERR_REC_SIZE - 56];
} err_rec;
_Static_assert(sizeof(err_rec) == ERR_REC_SIZE, "err_rec is one slot");
_Static_assert(offsetof(err_rec, data) % 8 == 0, "frames are aligned");

/* Pointers to the fields of a record. */
typedef struct err_view {
    void *const *frames;
    const char *type, *msg, *op, *file, *func, *cid, *ctx, *lctx;
} err_view;
void sonde__err_view(const err_rec *r, err_view *v);
/* Bytes of r in use (header and data). */
size_t sonde__err_rec_used(const err_rec *r);

typedef struct err_ring {
    _Alignas(SONDE_CACHE_LINE) _Atomic uint64_t head; /* next position claimed */
    _Alignas(SONDE_CACHE_LINE) _Atomic uint64_t tail; /* next position read */
    uint64_t mask;
    err_rec *slots;
} err_ring;

/* ---- groups (groups.c) ---- */

#define GROUP_NONE UINT32_MAX

typedef struct group {
    uint64_t fp;
    uint32_t prev, next; /* LRU list: head is the most recently seen */
    uint64_t count;
    int64_t first_ns, last_ns;
    uint8_t max_sev;
    uint64_t persisted; /* count already written to the store */
    bool dirty;         /* changed since last persisted */
    bool live;          /* slot in use */
    sonde_buf sample;   /* bytes of the last record */
} group;

typedef struct group_table {
    group *g;
    size_t count, cap, max;
    uint32_t *index; /* open addressing, slot + 1, 0 empty */
    size_t index_mask;
    uint32_t head, tail, free_head;
} group_table;

int sonde__groups_init(group_table *gt, size_t max_groups);
void sonde__groups_free(group_table *gt);
/* Account a record to its group (creating or evicting as needed). */
void sonde__groups_add(group_table *gt, const err_rec *r);
/* Forget groups last seen before cutoff_ns. */
void sonde__groups_prune(group_table *gt, int64_t cutoff_ns);

/* ---- rules and alerts (rules.c) ---- */

#define MAX_RULES SONDE_ALERTS_MAX_RULES
#define MAX_SILENCES 1024      /* pending or active */
#define MAX_SILENCES_KEPT 4096 /* expired included: the oldest expired go first */
#define MAX_NOTIFIERS SONDE_ALERTS_MAX_NOTIFIERS
#define MAX_THRESHOLD 100000
#define RULE_BUCKETS 256

typedef struct rule {
    char *name;
    int kind;
    int severity;
    int min_sev;
    uint64_t threshold;
    char *type, *op;
    double window;
    double percent;
    uint64_t min_count;
    sonde_health *health;
    double for_s, repeat_s;
    char *summary_tpl, *description_tpl;
    char **labels; /* pairs */
    size_t nlabels;
    double created;
    /* ERRORS: the last `threshold` matching timestamps (ns), a ring: the
     * condition is exact. */
    int64_t *ts;
    size_t ts_n, ts_pos;
    /* ERRORS: counts per bucket of window/RULE_BUCKETS (at least 1 s), to
     * report how many errors the window holds beyond the threshold. */
    uint32_t *bucket_count;
    int64_t *bucket_id;
    int64_t bucket_ns;
    /* FAILURE_RATE, NO_SUCCESS: operations in the window at the last
     * measurement. */
    uint64_t op_count;
    /* alert state */
    int state;
    double value;
    bool known; /* value measured at the last evaluation */
    double active_since, fired_at, resolved_at;
    double last_notified; /* last firing notification (first or repeat) */
    bool told;            /* notifiers were told of the current episode */
    bool silenced;
    uint64_t notifications;
    uint64_t episode; /* history id of the current/last episode, 0 none */
    bool removed;     /* resolve at next evaluation and free */
    char *ident;      /* canonical definition (sonde_alerts_set_rules) */
    /* Metric rules (metric_rules.c): the definition and the per-series
     * alerts; NULL for the other kinds and for per-series alerts. */
    struct metric_rule *metric;
    /* A per-series alert of a metric rule: its series' labels as
     * {a="x",...}; measured by the metric evaluator (ext_*), stepped like
     * any rule. NULL for rules that are one alert. */
    char *series;
    bool ext_known, ext_cond;
    /* Metric rules and their per-series alerts: the definition (owned by
     * the metric rule; per-series alerts are freed first). */
    const struct metric_rule *mdef;
    uint64_t seen_gen; /* per-series alert: last evaluation that saw it */
} rule;

/* ---- silences (silences.c) ---- */

typedef struct silence silence;

/* The value of label `name` of an alert, or NULL when it has none. */
typedef const char *(*sonde__label_fn)(const void *ud, const char *name);

/* Whether an active silence matches the alert whose labels get() reads.
 * t->lock held. */
bool sonde__silenced(const sonde_errors *t, sonde__label_fn get, const void *ud, double now);
/* Append the pending and active silences as a JSON array (the "silences"
 * of /alerts). t->lock held. */
int sonde__silences_json_current(const sonde_errors *t, sonde_buf *out, double now);
/* Forget silences expired longer ago than the retention. t->lock held. */
void sonde__silences_prune(sonde_errors *t, double now);
/* Free every silence (tracker teardown). */
void sonde__silences_free(sonde_errors *t);

typedef struct history_entry {
    uint64_t id;
    char *rule;
    char *summary;
    int severity;
    int state; /* FIRING or RESOLVED */
    double value;
    double fired_at, resolved_at;
    bool dirty;       /* to write to the store */
    int64_t store_id; /* SQLite row id once written */
} history_entry;

/* ---- notifications (notify.c, payload.c) ---- */

/* A snapshot of an alert for the payload builders. Borrowed pointers. */
typedef struct alert_snap {
    const rule *r;
    int state;                 /* FIRING or RESOLVED */
    double starts_at, ends_at; /* ends_at 0: open */
    double value;
    const char *summary;
    const char *description;
    const char *service;
    const char *generator_url; /* NULL: none */
    double now;
} alert_snap;

typedef struct delivery {
    struct delivery *next;
    char *body; /* HTTP body, or the JSON for commands, or the log line */
    size_t len;
    char *name, *status, *severity, *summary, *value; /* command environment */
    unsigned attempts;
    uint64_t next_ns; /* monotonic: not before */
    uint64_t alerts;  /* alert transitions carried */
    int level;        /* log notifier: diagnostics level */
} delivery;

typedef struct notifier {
    char *name;
    int kind;
    char *url; /* full POST URL */
    char **headers;
    size_t nheaders;
    char **argv; /* NULL-terminated */
    int min_sev;
    bool no_resolved;
    double timeout_s, retry_initial_s, retry_max_s, resend_s;
    unsigned max_attempts;
    size_t queue_max;
    /* queue (t->lock) */
    delivery *head, *tail;
    size_t queued;
    /* Alertmanager batch being built during one evaluation. */
    sonde_buf batch;
    uint64_t batch_alerts;
    double last_resend;
    /* in flight (worker only) */
    void *easy;  /* CURL * */
    void *slist; /* struct curl_slist * */
    delivery *inflight;
    pid_t child;
    uint64_t child_deadline_ns;
    bool child_killed;
    char errbuf[256];
    bool failing; /* logged as failing; cleared (and logged) on success */
    bool removed;
    bool from_env; /* added from SONDE_*_URL */
    char *ident;   /* canonical definition (sonde_alerts_set_notifiers) */
    /* statistics, read by the collector */
    _Atomic uint64_t sent, failed, attempts, retries;
    _Atomic size_t queued_stat;
} notifier;

/* ---- persistence (persist.c) ---- */

typedef struct err_store err_store;
/* Open a store address (writer: readonly 0); *out NULL for "off",
 * ":memory:" or an empty address. Reason in err on failure. */
int sonde__errstore_open(const char *spec, int readonly, err_store **out, char *err, size_t errlen);
void sonde__errstore_close(err_store *s);
/* Write what changed (t->lock held). */
int sonde__errstore_flush(sonde_errors *t, char *err, size_t errlen);
int sonde__errstore_prune(sonde_errors *t, double groups_before, double alerts_before, char *err,
                          size_t errlen);
/* Flush when due, opening and retrying with backoff (final: now, once).
 * t->lock held. */
void sonde__errstore_tick(sonde_errors *t, bool final);
struct sonde__store_type;
/* silences.c: read silences back once, save the changed ones, prune the
 * old ones (t->lock held, on the worker, store open). */
int sonde__silences_sync(sonde_errors *t, const struct sonde__store_type *type, void *ctx,
                         char *err, size_t errlen);

/* ---- the tracker (tracker.c) ---- */

struct sonde_errors {
    err_ring ring;
    sonde_family *total; /* sonde_errors_total{severity,type} */
    uint64_t gen;        /* unique per tracker: keys the callers' series caches */
    _Atomic uint64_t dropped;
    _Atomic uint64_t captured;
    _Atomic uint64_t timer_id; /* 0 when not started */
    sonde_clock_fn clock;
    void *clock_ud;
    bool no_log;
    bool is_default;
    sonde_registry *registry;
    char collector[48];

    pthread_mutex_t lock;
    pthread_mutex_t stats_lock;
    group_table groups;
    double group_retention_s, alert_retention_s;
    rule *rules[MAX_RULES];
    size_t nrules;
    silence **silences; /* silences.c */
    size_t nsilences, silences_cap;
    double silence_retention_s; /* 0: default */
    bool silences_loaded;       /* read back from the store */
    bool silences_dirty;        /* some silence waits to be saved */
    double last_silence_prune;
    history_entry *history; /* ring of max_history */
    size_t hist_max, hist_n, hist_pos;
    uint64_t next_episode;
    notifier *notifiers[MAX_NOTIFIERS];
    size_t nnotifiers;
    _Atomic size_t firing;
    _Atomic size_t groups_stat;
    pthread_mutex_t life; /* serialises start and stop */
    unsigned tick_ms, eval_ms, stop_timeout_ms;
    double last_eval; /* tracker clock */
    double last_prune;
    unsigned starts;
    bool env_done;
    bool no_env;
    char *service;
    bool service_explicit; /* set in the tracker's options */
    char *external_url;    /* from options or environment */
    char *served_url;      /* set by sonde_start when serving */
    void *multi;           /* CURLM *, while started */
    uint64_t rng;
    pthread_cond_t idle; /* broadcast when notifier queues may be empty */
    /* store (t->lock) */
    char *store_spec;
    err_store *store;
    uint64_t store_next_ns;
    unsigned store_backoff_ms, store_flush_ms;
    bool store_failing;
    double last_store_prune;
    uint64_t store_token; /* distinguishes this process's alert ids (Redis) */
    _Atomic uint64_t store_errors;
    /* captured-error logging budget (t->lock) */
    uint64_t log_second;
    unsigned log_count;
    uint64_t log_skipped;
};

/* Tracker clock in seconds and nanoseconds. */
double sonde__errors_now(const sonde_errors *t);
sonde_errors *sonde__errors_resolve(sonde_errors *t);

/* Drain the ring into groups and rules. t->lock held. */
void sonde__errors_drain(sonde_errors *t);

/* rules.c: evaluate every rule at now. t->lock held. */
void sonde__rules_eval(sonde_errors *t, double now);
void sonde__rules_feed(sonde_errors *t, const err_rec *r, const err_view *v);
void sonde__rule_free(rule *r);
void sonde__history_prune(sonde_errors *t, double now);
/* One evaluation step of an alert (state machine, notifications). */
void sonde__rule_step(sonde_errors *t, rule *r, double now);
/* Every alert: rules that are one alert, the per-series alerts of metric
 * rules, and metric rules without any series. Start with *i = *j = 0;
 * NULL at the end. t->lock held. */
rule *sonde__alert_next(const sonde_errors *t, size_t *i, size_t *j);

/* metric_rules.c: rules over registry metrics. */
static inline bool sonde__metric_kind(int kind)
{
    return kind >= SONDE_RULE_VALUE && kind <= SONDE_RULE_QUANTILE;
}
/* Validate the metric part of o and attach it to r (r->metric). */
int sonde__metric_rule_build(const sonde_rule_opts *o, rule *r);
/* Append the metric part of a rule's canonical definition. */
int sonde__metric_rule_ident(sonde_buf *b, const sonde_rule_opts *o);
void sonde__metric_rule_free(rule *r);
/* Sample and evaluate a metric rule, stepping its per-series alerts;
 * when r is removed, resolve them all. t->lock held. */
void sonde__metric_rule_eval(sonde_errors *t, rule *r, double now);
/* The i-th per-series alert, or NULL. */
rule *sonde__metric_rule_child(const rule *r, size_t i);
/* Default summary, value, threshold and JSON definition of metric rules. */
int sonde__metric_summary(sonde_buf *b, const rule *r, double v);
int sonde__metric_put_value(sonde_buf *b, const rule *r, double v);
int sonde__metric_put_threshold(sonde_buf *b, const rule *r);
int sonde__metric_json_definition(sonde_buf *b, const rule *r);
/* Parse a selector (metric{label op "value",...}); reason in err. */
typedef struct sonde__selector sonde__selector;
int sonde__selector_parse(const char *s, sonde__selector **out, char *err, size_t errlen);
void sonde__selector_free(sonde__selector *sel);

/* notify.c */
/* Queue a transition of rule r for every notifier that takes it. t->lock
 * held. */
void sonde__notify_alert(sonde_errors *t, rule *r, int state, double now);
/* Close the Alertmanager batches built during an evaluation. */
void sonde__notify_flush_batches(sonde_errors *t, double now);
/* Re-send firing alerts to Alertmanager notifiers when due. */
void sonde__notify_resend(sonde_errors *t, double now);
/* Progress deliveries (worker or stop). t->lock held. */
void sonde__notify_pump(sonde_errors *t);
/* Start (multi handle) and stop (bounded final delivery, then abandon). */
int sonde__notify_start(sonde_errors *t);
void sonde__notify_stop(sonde_errors *t, unsigned timeout_ms);
void sonde__notifier_free(notifier *n);
bool sonde__notify_idle(sonde_errors *t);
/* Add the environment's notifiers (once). t->lock held. */
void sonde__notify_env(sonde_errors *t);

/* payload.c: append one alert in each format. */
int sonde__payload_webhook(sonde_buf *b, const alert_snap *a);
int sonde__payload_slack(sonde_buf *b, const alert_snap *a);
/* One element of the Alertmanager array; SONDE_EINVAL (nothing appended)
 * when Alertmanager would refuse it, with the reason in why. */
int sonde__payload_am(sonde_buf *b, const alert_snap *a, char *why, size_t whylen);
int sonde__payload_log(sonde_buf *b, const alert_snap *a);
/* Expand a summary/description template. */
int sonde__payload_template(sonde_buf *b, const char *tpl, const rule *r, double value);
/* Default summary of a rule. */
int sonde__payload_default_summary(sonde_buf *b, const rule *r, double value);
/* Append the alert's labels as a JSON object. */
int sonde__payload_labels(sonde_buf *b, const alert_snap *a);

/* ---- operations from tracing (opsource.c) ---- */

typedef struct sonde__op_window {
    uint64_t count;  /* operations ended in the window */
    uint64_t errors; /* of which failed */
    int anomaly;     /* 1 flagged by its baseline, 0 not */
} sonde__op_window;

/* Figures of operation op over the last window_seconds ending at now
 * (tracker clock). Returns SONDE_OK or SONDE_ENOTFOUND (unknown operation,
 * or tracing not in this build). */
int sonde__errors_op_window(const char *op, double window_seconds, double now,
                            sonde__op_window *out);

/* ---- logging context (context.c) ---- */

/* The calling thread's logging context: correlation ID and field blob
 * (borrowed until the thread's next context push or pop). Returns 0 and
 * empty values without a context. */
int sonde__errors_context(const char **cid, size_t *cid_len, const char **blob, size_t *blob_len);
/* Append the fields of a context blob as JSON members ("key":value,...)
 * to b; *first tracks the comma. */
int sonde__errors_context_json(sonde_buf *b, const char *blob, size_t len, bool *first);
/* Log a captured error (worker): at most ERRORS_LOG_PER_S lines a
 * second, the rest counted and summarised once a second. t->lock held. */
void sonde__errors_log(sonde_errors *t, const err_rec *r, const err_view *v);
#define ERRORS_LOG_PER_S 100
/* Log a line of the alerting machinery through the "sonde.alerts" logger
 * (level as sonde/log.h). */
void sonde__alerts_log(int level, const char *fmt, ...) SONDE_PRINTF(2, 3);

/* ---- HTTP routes (http.c) ---- */

/* ---- JSON helpers (groups.c) ---- */
/* One /errors element: the head (fingerprint, severity, count, first and
 * last seen) then the data members (type, title, location, last). */
int sonde__errors_json_group(sonde_buf *b, const group *g);
int sonde__errors_json_group_data(sonde_buf *b, const group *g);
/* The head of an element, without the closing brace. */
int sonde__errors_json_group_head(sonde_buf *b, const char *fp_hex16, int severity, uint64_t count,
                                  double first_seen, double last_seen);

#endif
