/*
 * The history store: per-minute operation aggregates, baselines, error
 * groups and alert history. All of sonde's persistence is here: no SQL or
 * Redis command outside src/store/ (scripts/check_layers.py checks it).
 *
 * Two layers:
 *  - a backend (sonde__store_type, a table of functions in the manner of a
 *    Redis dictType) owns one connection and is used by one thread at a
 *    time: SQLite (sqlite.c) and Redis (redis.c);
 *  - the store (store.c) wraps a backend with a bounded queue of rows
 *    waiting to be written, retries with backoff, reconnection, and the
 *    sonde_store_* self-metrics. Producers (the tracing flush, baseline
 *    changes) only append to the queue; sonde__store_flush, on the
 *    background thread, writes it.
 *
 * Rows are deltas: a minute of an operation may have several rows (late
 * data, several processes); readers merge every row of a minute. A row's
 * id makes a retried write idempotent where the backend needs it (Redis).
 */
#ifndef SONDE_STORE_H
#define SONDE_STORE_H

#include "core/internal.h"

#include <sonde/metrics.h>

/* One per-minute aggregate of one operation. In callbacks every pointer is
 * borrowed for the duration of the call. */
typedef struct sonde__op_row {
    const char *op;
    size_t op_len;
    int64_t minute;        /* minutes since the Unix epoch, UTC */
    uint64_t errors;       /* failed operations among count */
    uint64_t id;           /* unique per written row */
    const uint8_t *sketch; /* core/sketch.h encoding: count, sum, min, max, bins */
    size_t sketch_len;
    /* Denormalised from the sketch header by sonde__row_fill_summary. */
    uint64_t count;
    double sum, min, max;
} sonde__op_row;

/* A stored baseline (see sonde_baseline). */
typedef struct sonde__baseline_row {
    const char *op;
    double avg, p95, factor;
    uint32_t window_minutes;
    uint64_t min_count;
} sonde__baseline_row;

/* An error group (src/errors/persist.c). On write, count is the number of
 * occurrences since the last write (added to the stored count); first_ms is
 * kept at its minimum, last_ms, message and data follow the latest write,
 * the severity its maximum. On read, count is the stored total and
 * message is not filled. */
typedef struct sonde__group_row {
    const char *fp;            /* 16 lowercase hex digits, NUL-terminated */
    int64_t first_ms, last_ms; /* milliseconds since the epoch */
    uint64_t count;
    int rank;          /* severity: 1 low, 2 medium, 3 high, 4 critical */
    const char *level; /* its name ("low"...); writes only */
    const char *message;
    size_t message_len;
    const char *data; /* a JSON object: {"type":...,"title",...} */
    size_t data_len;
} sonde__group_row;

/* One alert of the alert history. */
typedef struct sonde__alert_row {
    /* SQLite: the row's id; 0 on write inserts a row and the backend sets
     * it (reset to 0 again when the write fails). Unused by Redis. */
    int64_t row_id;
    const char *key;                 /* Redis: the alert's unique key; unused by SQLite */
    const char *rule;                /* NUL-terminated */
    const char *state;               /* "firing" or "resolved" */
    int64_t started_ms, resolved_ms; /* resolved_ms 0: not resolved */
    const char *data;                /* a JSON object: {"severity",...} */
    size_t data_len;
} sonde__alert_row;

/* A stored alert silence (src/errors/silences.c). The store keeps the
 * silence as an opaque document (`data`, the silence's JSON as
 * silences.c encodes it) keyed by id, with its end time for pruning. */
typedef struct sonde__silence_row {
    const char *id; /* NUL-terminated, at most 64 bytes */
    int64_t ends_ms;
    int64_t updated_ms; /* a save with an older updated_ms than the stored row's is ignored */
    const char *data;
    size_t data_len;
} sonde__silence_row;

/* Row, baseline, group, alert and silence visitors: return 0 to continue,
 * non-zero to stop. */
typedef int (*sonde__row_fn)(const sonde__op_row *row, void *ud);
typedef int (*sonde__baseline_fn)(const sonde__baseline_row *b, void *ud);
typedef int (*sonde__group_fn)(const sonde__group_row *g, void *ud);
typedef int (*sonde__alert_fn)(const sonde__alert_row *a, void *ud);
typedef int (*sonde__silence_fn)(const sonde__silence_row *s, void *ud);

/* ---- store addresses ---- */

enum { SONDE__STORE_OFF = 0, SONDE__STORE_SQLITE = 1, SONDE__STORE_REDIS = 2 };

typedef struct sonde__store_spec {
    int kind;
    char *path; /* SQLite: file path or ":memory:" */
    char *host; /* Redis */
    int port;
    int db;
    char *user, *password; /* may be NULL */
    char *prefix;          /* key prefix, default "sonde:" */
    unsigned timeout_ms;   /* connect and command timeout */
} sonde__store_spec;

/*
 * Parse a store address: "off"/"none", ":memory:", "sqlite:PATH", a path,
 * "redis://[[user]:password@]host[:port][/db]" or "valkey://...". On error
 * returns SONDE_EINVAL with the reason in err. Free with
 * sonde__store_spec_free (also after an error).
 */
int sonde__store_spec_parse(const char *s, sonde__store_spec *out, char *err, size_t errlen);
void sonde__store_spec_free(sonde__store_spec *s);

/* ---- backends ---- */

typedef struct sonde__store_type {
    const char *name;
    /* Connect/open and prepare (migrations unless readonly). Returns
     * SONDE_OK, SONDE_EIO, SONDE_EUNREACHABLE or SONDE_ENOMEM with a reason
     * in err. */
    int (*open)(const sonde__store_spec *spec, int readonly, void **ctx, char *err, size_t errlen);
    void (*close)(void *ctx);
    /* Write rows atomically (all or none). SONDE_EUNREACHABLE means the
     * connection is broken and must be reopened. */
    int (*write_rows)(void *ctx, const sonde__op_row *const *rows, size_t n, char *err,
                      size_t errlen);
    /* Visit rows with from <= minute <= to (op NULL: every operation), by
     * operation then minute. Rows are visited as stored; the caller
     * validates their sketches. */
    int (*read_rows)(void *ctx, const char *op, int64_t from, int64_t to, sonde__row_fn fn,
                     void *ud, char *err, size_t errlen);
    /* Delete rows with minute < before, a bounded number per call (it
     * runs on the runtime worker): *more is set when rows remain. */
    int (*prune)(void *ctx, int64_t before, int *more, char *err, size_t errlen);
    /* Save (b non-NULL) or delete (b NULL) the baseline of op. */
    int (*put_baseline)(void *ctx, const char *op, const sonde__baseline_row *b, char *err,
                        size_t errlen);
    int (*read_baselines)(void *ctx, sonde__baseline_fn fn, void *ud, char *err, size_t errlen);
    /* Error groups and alert history (store/sqlite_errors.c,
     * store/redis_errors.c). write_errors merges groups and saves alerts
     * (inserted or updated), all or none on SQLite, idempotent per key on
     * Redis. prune_errors deletes groups last seen before groups_before_ms
     * and alerts that are not firing and ended (or started, unresolved)
     * before alerts_before_ms, a bounded number per call on Redis.
     * read_groups sets *total to every stored group and visits those last
     * seen at or after since_ms, latest first; read_alerts visits the
     * limit latest alerts, latest first. */
    int (*write_errors)(void *ctx, const sonde__group_row *groups, size_t ngroups,
                        sonde__alert_row *alerts, size_t nalerts, char *err, size_t errlen);
    int (*prune_errors)(void *ctx, int64_t groups_before_ms, int64_t alerts_before_ms, char *err,
                        size_t errlen);
    int (*read_groups)(void *ctx, int64_t since_ms, uint64_t *total, sonde__group_fn fn, void *ud,
                       char *err, size_t errlen);
    int (*read_alerts)(void *ctx, size_t limit, sonde__alert_fn fn, void *ud, char *err,
                       size_t errlen);
    /* Silences: save (insert or replace by id, unless the stored row was
     * updated later: expiring one is saving it with its new end), visit
     * every stored one, and delete those that ended before ended_before_ms
     * (at most 1000 per call). */
    int (*save_silence)(void *ctx, const sonde__silence_row *s, char *err, size_t errlen);
    int (*read_silences)(void *ctx, sonde__silence_fn fn, void *ud, char *err, size_t errlen);
    int (*prune_silences)(void *ctx, int64_t ended_before_ms, char *err, size_t errlen);
} sonde__store_type;

extern const sonde__store_type sonde__store_sqlite;
extern const sonde__store_type sonde__store_redis;

/* ---- row codec (rowcodec.c): Redis members, fuzzed ----
 * u8 version (1), varint zigzag minute, varint errors, varint id, then the
 * sketch encoding to the end. */
int sonde__row_encode(const sonde__op_row *row, sonde_buf *out);
/* Decode p[0..n) into row (op fields untouched; sketch points into p).
 * Checks the sketch header (errors <= count). SONDE_OK or SONDE_EPARSE. */
int sonde__row_decode(const uint8_t *p, size_t n, sonde__op_row *row);
/* Fill count, sum, min, max of row from its sketch header. SONDE_OK or
 * SONDE_EPARSE. */
int sonde__row_fill_summary(sonde__op_row *row);

/* ---- the store ---- */

typedef struct sonde__store sonde__store;

typedef struct sonde__store_opts {
    /* Self-metrics go here; NULL: none. */
    sonde_registry *registry;
    /* Most queued rows and bytes. 0: 10000 rows, 16 MiB. */
    size_t max_pending;
    size_t max_pending_bytes;
    /* Backoff after a failure: doubles from min to max. 0: 1 s and 30 s. */
    unsigned retry_min_ms, retry_max_ms;
    /* Redis key prefix and timeout; NULL/0: from the address, else
     * "sonde:" and 250 ms. */
    const char *redis_prefix;
    unsigned redis_timeout_ms;
} sonde__store_opts;

/*
 * Create a store for an address. The backend is opened here once and, when
 * that fails, again by later flushes (counted in
 * sonde_store_errors_total{stage="open"}); create itself only fails for a bad
 * address (SONDE_EINVAL, reason in err) or no memory. *out is NULL for
 * "off". Any thread.
 */
int sonde__store_create(const char *spec, const sonde__store_opts *opts, sonde__store **out,
                        char *err, size_t errlen);
/* Open an existing store read-only for a reader program. SONDE_EINVAL,
 * SONDE_EIO, SONDE_EUNREACHABLE with the reason in err. */
int sonde__store_open_readonly(const char *spec, sonde__store **out, char *err, size_t errlen);
/* Close; pending rows that were not written are dropped (counted). */
void sonde__store_destroy(sonde__store *st);

/* The backend kind (SONDE__STORE_SQLITE or _REDIS). */
int sonde__store_kind(const sonde__store *st);

/* Queue a row (copied; row->id assigned here). Never blocks on I/O. Past
 * the bounds the oldest rows are dropped and counted. Any thread. */
void sonde__store_enqueue(sonde__store *st, const sonde__op_row *row);
/* Queue a baseline change (b NULL: delete). Any thread. */
void sonde__store_enqueue_baseline(sonde__store *st, const char *op, const sonde__baseline_row *b);

/* Write what is queued, reopening the backend if needed, unless in
 * backoff (then returns at once). Returns SONDE_OK when the queue is
 * empty afterwards. Blocks up to the backend's timeouts: background thread
 * only. */
int sonde__store_flush(sonde__store *st);
/* As flush, ignoring the backoff (shutdown). */
int sonde__store_flush_now(sonde__store *st);

/* Visit rows (see sonde__store_type.read_rows). Fails fast with
 * SONDE_EUNREACHABLE while in backoff. Any thread (serialised). */
int sonde__store_read(sonde__store *st, const char *op, int64_t from, int64_t to, sonde__row_fn fn,
                      void *ud);
int sonde__store_read_baselines(sonde__store *st, sonde__baseline_fn fn, void *ud);
/* Delete rows older than `before` (minutes), a bounded number per call;
 * *more (may be NULL) is set when rows remain: call again. Background
 * thread. */
int sonde__store_prune(sonde__store *st, int64_t before, int *more);

/* Queued rows now; rows dropped so far (every reason). */
size_t sonde__store_pending(sonde__store *st);
uint64_t sonde__store_dropped(sonde__store *st);
/* Errors counted so far (every stage). */
uint64_t sonde__store_errors(sonde__store *st);
/* Record a decode failure of a row read from the store (counted under
 * stage "decode"). */
void sonde__store_count_decode_error(sonde__store *st);

#endif
