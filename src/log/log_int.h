/*
 * Private declarations of the logger: loggers, the serialized field blob,
 * records, formatting, masking, the queue and sinks.
 *
 * Data flow. A log call on the application's thread encodes a *record* (a
 * flat byte string: header, message, correlation ID, context blob, fields
 * blob) into a per-thread buffer. Synchronous mode formats it and writes it
 * to the sinks under the sinks lock; asynchronous mode copies it into the
 * bounded queue (queue.c) and the writer thread does the rest. Formatting,
 * masking and truncation happen only in format.c, from records, so both
 * modes produce byte-identical lines.
 *
 * Locks, in the order they may be taken: cfg_lock (loggers, levels, sink
 * list changes, configuration), then sinks_lock (the sinks themselves and
 * the consumer side of the queue: whoever holds it may pop records).
 */
#ifndef SONDE_LOG_INT_H
#define SONDE_LOG_INT_H

#include "core/internal.h"

#include <sonde/log.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define LOG_NAME_MAX 127
#define LOG_MAX_LOGGERS 4096
#define LOG_MAX_SINKS 16
#define LOG_KEY_MAX 128       /* keys are cut to this many bytes */
#define LOG_CTX_VALUE_MAX 512 /* context string values are cut to this */
#define LOG_CTX_MAX 4096      /* whole context blob */
#define LOG_DEFAULT_MAX_LINE 16384
#define LOG_MIN_MAX_LINE 4096
#define LOG_MAX_MAX_LINE ((size_t)16 << 20)
#define LOG_MAX_NEST 16 /* nesting depth of objects/lists */
#define LOG_MAX_BACKTRACE 32
#define LOG_TRUNC_MARK "...[truncated]"

struct sonde_logger {
    /* Must stay first: sonde_log_enabled reads it (atomically, relaxed). */
    int threshold;
    int level;     /* own level, 0 = inherit; cfg_lock */
    int effective; /* resolved level; cfg_lock */
    unsigned name_len;
    int plain_name; /* no JSON escaping needed */
    char name[LOG_NAME_MAX + 1];
    /* Append-only list: published with release, read lock-free. */
    struct sonde_logger *_Atomic next;
};

/* ---- field blob --------------------------------------------------------
 * Items back to back, unaligned: [u8 type][u8 flags][u16 key_len][key]
 * then the value: STR [u32 len][bytes]; INT/UINT/DOUBLE 8 bytes; BOOL 1;
 * ERRNO 4 (int32); BACKTRACE [u16 n][n pointers]; NULL/OBJECT/LIST/CLOSE
 * nothing. */
enum {
    FB_PREMASKED = 1, /* value already masked (context): skip masking */
    FB_TRUNCATED = 2  /* the string was cut when it was copied */
};

typedef struct fb_item {
    int type;
    int flags;
    const char *key;
    size_t klen;
    const char *s; /* STR */
    size_t slen;
    union {
        int64_t i;
        uint64_t u;
        double d;
        int b;
    } v;
    void *bt[LOG_MAX_BACKTRACE];
    size_t bt_n;
} fb_item;

/* Encode fields[0..n) into out. string bytes copied in total are bounded by
 * budget (longer strings are cut and flagged). premask: apply key and value
 * masking now and flag the items (context frames). value_max bounds each
 * string. Unbalanced CLOSE items are dropped, missing ones appended.
 * *kinds gets REC_HAS_FIELDS / REC_HAS_BT or'ed in.
 * Returns 1 if something was cut, 0 if not, negative on no memory. */
int sonde__fb_encode(sonde_buf *out, const sonde_field *fields, size_t n, size_t budget,
                     size_t value_max, int premask, int *kinds);
/* Decode the item at p[*off]; advances *off. Returns 0 at the end (or on a
 * malformed blob), 1 otherwise. */
int sonde__fb_next(const char *p, size_t len, size_t *off, fb_item *it);

/* ---- records ---------------------------------------------------------- */
enum {
    REC_TRUNCATED = 1,  /* something was cut when the record was encoded */
    REC_MSG_CUT = 2,    /* the message itself was cut */
    REC_HAS_FIELDS = 4, /* at least one field other than a backtrace */
    REC_HAS_BT = 8      /* a backtrace field */
};

typedef struct rec_hdr {
    uint32_t size; /* whole record, header included */
    uint8_t level;
    uint8_t flags;
    uint16_t cid_len;
    int32_t line;
    int32_t tid;
    int64_t ts_us;
    const struct sonde_logger *lg;
    const char *file;
    const char *func;
    uint32_t msg_len;
    uint32_t ctx_len;
    uint32_t fields_len;
    uint32_t pad_;
} rec_hdr;

typedef struct rec_view {
    rec_hdr h;
    const char *msg;
    const char *cid;
    const char *ctx;
    const char *fields;
} rec_view;

void sonde__rec_view(const void *rec, rec_view *v);

/* ---- formatting ------------------------------------------------------- */
/* Per-consumer scratch: the lines of one record in each format, built on
 * demand, and the masking buffer. */
typedef struct fmt_cache {
    const rec_view *v;
    sonde_buf json, console, console_color, msg, tmp, tmp2;
    int have_json, have_console, have_console_color, have_msg;
    void *src_cache; /* rendered "source" of recent call sites */
    int pt_pid, pt_tid;
    size_t pt_len;
    char pt[64]; /* rendered ,"pid":P,"tid":T */
} fmt_cache;

/* Whether a name needs no JSON escaping. */
int sonde__log_name_is_plain(const char *s, size_t n);

void sonde__fc_reset(fmt_cache *fc, const rec_view *v);
void sonde__fc_free(fmt_cache *fc);
/* The line in JSON or console format, with its newline. */
const sonde_buf *sonde__fc_json(fmt_cache *fc);
const sonde_buf *sonde__fc_console(fmt_cache *fc, int color);
/* The masked message. */
const sonde_buf *sonde__fc_message(fmt_cache *fc);
/* Append a value masked and JSON-escaped (no quotes) to out. */
void sonde__fmt_masked_json(fmt_cache *fc, sonde_buf *out, const char *s, size_t n, int premasked);
/* The basename of a path. */
const char *sonde__log_basename(const char *path);
/* RFC 3339 UTC with microseconds: 27 bytes + NUL. */
void sonde__fmt_rfc3339(int64_t ts_us, char out[32]);

/* ---- masking ---------------------------------------------------------- */
/* 1 when masking is on (default). */
int sonde__mask_enabled(void);
/* Whether the key names a secret. */
int sonde__mask_key(const char *k, size_t n);
/* Mask s[0..n) into out (appended). Returns 1 when something was masked
 * (out holds the result), 0 when nothing was (out unchanged). */
int sonde__mask_value(const char *s, size_t n, sonde_buf *out);

/* ---- global state (log.c) --------------------------------------------- */
typedef struct log_global {
    pthread_mutex_t cfg_lock;
    pthread_mutex_t sinks_lock;
    struct sonde_logger *loggers; /* list, root first; cfg_lock */
    size_t logger_count;
    _Atomic int masking;
    _Atomic size_t max_line;
    atomic_int reopen_gen; /* bumped by SIGHUP / sonde_log_reopen */
    int pid;
} log_global;

extern log_global sonde__lg;
extern struct sonde_logger sonde__root_logger;

void sonde__log_init(void);
/* Count a dropped message. */
void sonde__log_count_drop(void);
/* Count lines a sink could not write. */
void sonde__log_count_write_errors(uint64_t n);
/* Recompute every logger's threshold; cfg_lock held. */
void sonde__log_recompute_locked(void);

/* ---- per-thread state (context.c) -------------------------------------- */
typedef struct log_frame {
    size_t off, len; /* this frame's items in fblob */
    unsigned char id_len;
    char id[SONDE_CORRELATION_ID_MAX + 1];
} log_frame;

typedef struct log_tls {
    int tid;
    int in_emit; /* a log call is in progress on this thread */
    uint64_t rng[2];
    int rng_seeded;
    sonde_buf rec; /* the record being encoded */
    sonde_buf msg; /* printf-formatted message */
    int depth;
    log_frame frames[SONDE_LOG_MAX_DEPTH];
    sonde_buf fblob; /* every frame's items, outermost first */
    sonde_buf ctx;   /* combined items, an inner key hiding an outer one */
    const char *cid; /* effective correlation ID (in frames[]), or NULL */
    size_t cid_len;
    void *key_cache; /* mask.c: recent secret-key answers */
} log_tls;

/* The calling thread's state, created at first use; NULL if out of memory. */
log_tls *sonde__tls(void);
/* Whether the calling thread is inside a log call or a sink (a callback
 * sink runs there): configuration calls would deadlock and are refused. */
int sonde__log_in_sink(void);

/* ---- context (context.c) ---------------------------------------------- */
/* The calling thread's context: correlation ID and combined blob. Returns
 * 0 when there is no context (*cid_len 0). Pointers valid until the next
 * push/pop on this thread. */
int sonde__ctx_current(const char **cid, size_t *cid_len, const char **blob, size_t *blob_len);
/* Thread id (cached). */
int sonde__log_tid(void);
/* Reset per-thread caches in a forked child. */
void sonde__ctx_atfork_child(void);

/* ---- sinks (sink.c) ----------------------------------------------------- */
/* Lowest level any sink accepts (SONDE_LOG_OFF when there is none). */
int sonde__sinks_min_level(void);
/* Write one record to every sink that takes its level; sinks_lock held.
 * flush: push buffered bytes to the OS afterwards. */
void sonde__sinks_write(fmt_cache *fc, const rec_view *v, int flush);
/* Flush every sink's buffer; sinks_lock held. */
void sonde__sinks_flush(void);
/* Report sink state changes (file unwritable, recovered) as log lines;
 * call without any lock. */
void sonde__sinks_report(void);
/* Add / remove default sinks (made by configure or the environment). */
int sonde__sink_add(sonde_log_sink_type type, const sonde_log_sink_opts *opts, int is_default,
                    int *id);
void sonde__sinks_remove_defaults(void);
void sonde__sink_install_sighup(void);
extern _Atomic int sonde__no_sighup;

/* ---- queue (queue.c) ---------------------------------------------------- */
typedef struct log_queue log_queue;
log_queue *sonde__lq_create(size_t slots);
/* Producer side, any thread: returns 0 when queued, -1 when full. */
int sonde__lq_push(log_queue *q, const void *rec, size_t len);
/* Consumer side (sinks_lock holder): copy the next record into out.
 * Returns 1 with a record, 0 when none is ready, -1 when a malformed
 * record was skipped (counted as dropped). */
int sonde__lq_pop(log_queue *q, sonde_buf *out);
/* Positions: records claimed so far / consumed so far. */
uint64_t sonde__lq_tail(log_queue *q);
uint64_t sonde__lq_head(log_queue *q);
size_t sonde__lq_max_record(log_queue *q);

/* ---- async writer (async.c) --------------------------------------------- */
/* Dispatch one encoded record: queue it (asynchronous mode) or write it
 * now. */
void sonde__log_dispatch(const void *rec, size_t len, int level);
int sonde__async_start(size_t slots, int block);
void sonde__async_atfork_prepare(void);
void sonde__async_atfork_parent(void);
void sonde__async_atfork_child(void);
int sonde__async_running(void);
/* Drain whatever is queued, on the calling thread; sinks_lock held. */
void sonde__async_drain_locked(fmt_cache *fc);

#endif
