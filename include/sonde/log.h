/*
 * sonde/log.h - structured logging: levels, named loggers, typed fields,
 * per-thread context frames with correlation IDs, credential masking, sinks
 * (stderr, rotating file, journal, syslog, callback) and an asynchronous mode.
 *
 * Logging needs no initialisation: the first call reads the environment
 * (SONDE_LOG_LEVEL, SONDE_LOG_FORMAT, SONDE_LOG_CONSOLE_LEVEL, SONDE_LOG_FILE,
 * ...; see docs/logging.md) and logs synchronously to stderr.
 *
 *     static sonde_logger *lg;
 *     lg = sonde_logger_get("mgit.operations");
 *     SONDE_LOG(lg, INFO, "Starting clone", SONDE_STR("repository", "repo1"),
 *               SONDE_STR("provider", "github"));
 *     SONDE_LOGF(lg, WARNING, "retry %d of %d", n, max);
 *
 * produces one JSON line per call:
 *
 *     {"timestamp":"2024-05-01T12:00:00.123456Z","level":"INFO",
 *      "logger":"mgit.operations","message":"Starting clone",
 *      "correlation":{"correlation_id":"4bf92f3577b34da6a3ce929d0e0e4736",
 *      "operation":"clone_all"},"fields":{"repository":"repo1",
 *      "provider":"github"},"source":"clone.c:42:clone_all","pid":7,"tid":9}
 *
 * Cost: a call below the logger's level is an inline load and compare; its
 * arguments are not evaluated. Threading rule: every function may be called
 * from any thread unless its comment says otherwise. Nothing here writes to
 * stdout; sinks write where they are told.
 */
#ifndef SONDE_LOG_H
#define SONDE_LOG_H

#include "common.h"

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Levels                                                                   */

/** Log levels, in increasing severity. 0 means "unset / default" in options
 * and "inherit" for a logger. Values are ABI. */
typedef enum sonde_log_level {
    SONDE_LOG_TRACE = 1,
    SONDE_LOG_DEBUG = 2,
    SONDE_LOG_INFO = 3,
    SONDE_LOG_WARNING = 4,
    SONDE_LOG_ERROR = 5,
    SONDE_LOG_CRITICAL = 6,
    /** Above every level: nothing passes. */
    SONDE_LOG_OFF = 7
} sonde_log_level;

/** Upper-case name ("WARNING"); "UNSET" for 0, "?" when out of range.
 * Static text. Any thread, lock-free. */
SONDE_API const char *sonde_log_level_name(int level);

/** Parse a level name, case-insensitive: trace, debug, info, warning (or
 * warn), error, critical (or fatal), off, or a digit 1..7. Returns the level
 * or 0 when s is NULL or not a level. Any thread, lock-free. */
SONDE_API int sonde_log_level_parse(const char *s);

/* ------------------------------------------------------------------------ */
/* Loggers                                                                  */

/** A named logger. Loggers live until the process exits; handles never
 * become invalid. */
typedef struct sonde_logger sonde_logger;

/**
 * The logger with this name, created at first use (names are dotted paths:
 * "mgit.operations" inherits the level of "mgit" unless it has its own).
 * NULL or "" is the root logger, named "root". Names longer than 127 bytes
 * are cut. Never returns NULL: past 4096 loggers it returns the root logger.
 * Any thread; takes a lock and may allocate: look loggers up once and keep
 * the handle.
 */
SONDE_API sonde_logger *sonde_logger_get(const char *name);

/** The logger's name (borrowed, valid forever). lg NULL: root. */
SONDE_API const char *sonde_logger_name(const sonde_logger *lg);

/**
 * Set the logger's own level (0: inherit from its dotted parent, finally the
 * root). Setting the root's level to 0 restores the default (INFO). lg NULL:
 * root. Any thread; takes the configuration lock.
 */
SONDE_API void sonde_logger_set_level(sonde_logger *lg, int level);

/** The level the logger applies (its own, else inherited). lg NULL: root. */
SONDE_API int sonde_logger_level(const sonde_logger *lg);

/**
 * Apply a level specification: a comma-separated list of LEVEL (the root)
 * and name=LEVEL items, e.g. "info,mgit.net=debug,sonde.http=warning", the
 * syntax of SONDE_LOG_LEVEL. Returns SONDE_OK, or SONDE_EPARSE (nothing
 * applied) when an item is not understood. Any thread.
 */
SONDE_API int sonde_log_set_levels(const char *spec);

/* Implementation detail of the inline level check: the first member of every
 * logger is its threshold (the lowest level that reaches at least one sink),
 * and this is the root logger's. Do not use directly. */
SONDE_API extern int sonde__log_root_threshold;

/**
 * Whether a message of this level from lg (NULL: root) would be written by
 * at least one sink. The macros below call it before evaluating any
 * argument. Any thread, lock-free, no call.
 */
static inline int sonde_log_enabled(const sonde_logger *lg, int level)
{
#if defined(SONDE_DISABLE)
    (void)lg;
    (void)level;
    return 0;
#elif defined(__GNUC__)
    const int *t = lg ? (const int *)(const void *)lg : &sonde__log_root_threshold;
    return level >= __atomic_load_n(t, __ATOMIC_RELAXED);
#else
    const volatile int *t =
        lg ? (const volatile int *)(const void *)lg : &sonde__log_root_threshold;
    return level >= *t;
#endif
}

/* ------------------------------------------------------------------------ */
/* Fields                                                                   */

/** Field types. OBJECT and LIST open a nested value that the matching CLOSE
 * ends; keys inside a LIST are ignored. Values are ABI. */
typedef enum sonde_field_type {
    SONDE_FIELD_END = 0, /* terminator used by the macros; never written */
    SONDE_FIELD_STR = 1,
    SONDE_FIELD_INT = 2,
    SONDE_FIELD_UINT = 3,
    SONDE_FIELD_DOUBLE = 4,
    SONDE_FIELD_BOOL = 5,
    SONDE_FIELD_NULL = 6,
    SONDE_FIELD_OBJECT = 7,
    SONDE_FIELD_LIST = 8,
    SONDE_FIELD_CLOSE = 9,
    /** errno value: written as "errno":<n> and "error":"<strerror text>". */
    SONDE_FIELD_ERRNO = 10,
    /** Capture the calling thread's stack: written as "backtrace":[...]
     * at the top level of the line. Allocates (glibc backtrace_symbols). */
    SONDE_FIELD_BACKTRACE = 11
} sonde_field_type;

/** Length value meaning "NUL-terminated" for string fields. */
#define SONDE_FIELD_NTS ((size_t)-1)

/**
 * One key/value pair. Build them with the SONDE_STR, SONDE_INT... macros.
 * Keys and string values are borrowed for the duration of the call only
 * (they are copied). A NULL string value is written as null. Strings may
 * hold any bytes, including NUL (with SONDE_STRN): invalid UTF-8 is
 * replaced by U+FFFD and control characters are escaped.
 */
typedef struct sonde_field {
    const char *key;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        int b;
    } v;
    size_t len;
    int type;
} sonde_field;

static inline sonde_field sonde__field(const char *key, int type)
{
    sonde_field f;
    f.key = key;
    f.v.u = 0;
    f.len = 0;
    f.type = type;
    return f;
}
static inline sonde_field sonde_field_strn(const char *key, const char *s, size_t len)
{
    sonde_field f = sonde__field(key, SONDE_FIELD_STR);
    f.v.s = s;
    f.len = len;
    return f;
}
static inline sonde_field sonde_field_int(const char *key, int64_t v)
{
    sonde_field f = sonde__field(key, SONDE_FIELD_INT);
    f.v.i = v;
    return f;
}
static inline sonde_field sonde_field_uint(const char *key, uint64_t v)
{
    sonde_field f = sonde__field(key, SONDE_FIELD_UINT);
    f.v.u = v;
    return f;
}
static inline sonde_field sonde_field_double(const char *key, double v)
{
    sonde_field f = sonde__field(key, SONDE_FIELD_DOUBLE);
    f.v.d = v;
    return f;
}
static inline sonde_field sonde_field_bool(const char *key, int v)
{
    sonde_field f = sonde__field(key, SONDE_FIELD_BOOL);
    f.v.b = v ? 1 : 0;
    return f;
}
static inline sonde_field sonde_field_errno(int err)
{
    sonde_field f = sonde__field("errno", SONDE_FIELD_ERRNO);
    f.v.i = err;
    return f;
}

/** A string field (NUL-terminated value; NULL is written as null). */
#define SONDE_STR(key, value) sonde_field_strn((key), (value), SONDE_FIELD_NTS)
/** A string field of len bytes (may contain NUL). */
#define SONDE_STRN(key, value, len) sonde_field_strn((key), (value), (len))
/** Signed and unsigned 64-bit integers, doubles (NaN and infinities are
 * written as the strings "NaN", "+Inf", "-Inf"), booleans, null. */
#define SONDE_INT(key, value) sonde_field_int((key), (int64_t)(value))
#define SONDE_UINT(key, value) sonde_field_uint((key), (uint64_t)(value))
#define SONDE_DOUBLE(key, value) sonde_field_double((key), (double)(value))
#define SONDE_BOOL(key, value) sonde_field_bool((key), (value))
#define SONDE_NULL(key) sonde__field((key), SONDE_FIELD_NULL)
/** Open a nested object or list; SONDE_CLOSE() ends it. Unclosed ones are
 * closed at the end of the call, extra closes are ignored. */
#define SONDE_OBJECT(key) sonde__field((key), SONDE_FIELD_OBJECT)
#define SONDE_LIST(key) sonde__field((key), SONDE_FIELD_LIST)
#define SONDE_CLOSE() sonde__field(NULL, SONDE_FIELD_CLOSE)
/** "errno":e and "error":"<strerror(e)>". */
#define SONDE_ERRNUM(e) sonde_field_errno(e)
/** Attach the calling thread's backtrace. */
#define SONDE_BACKTRACE() sonde__field("backtrace", SONDE_FIELD_BACKTRACE)

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

/**
 * Write one message: level, message (NUL-terminated; NULL is ""), fields
 * [0..n) (fields may be NULL when n is 0), and the source location (file
 * and func may be NULL; they must be string literals or otherwise live for
 * the whole process, as __FILE__ and __func__ do). Prefer the macros, which
 * skip the call (and their arguments) below the level.
 *
 * Synchronous mode: formats and writes on the calling thread, under the
 * sinks lock. Asynchronous mode: copies the message into the queue and
 * returns; no allocation, except for SONDE_BACKTRACE. CRITICAL messages
 * flush every sink before returning (at most 1 s in asynchronous mode).
 * Any thread. A call made from inside a callback sink is dropped (counted).
 */
SONDE_API void sonde_log_write(sonde_logger *lg, int level, const char *file, int line,
                               const char *func, const char *message, const sonde_field *fields,
                               size_t n);

/** As sonde_log_write, with a printf-style message (checked by the
 * compiler). Formats on the calling thread. */
SONDE_API void sonde_log_writef(sonde_logger *lg, int level, const char *file, int line,
                                const char *func, const char *fmt, ...) SONDE_PRINTF(6, 7);
SONDE_API void sonde_log_writev(sonde_logger *lg, int level, const char *file, int line,
                                const char *func, const sonde_field *fields, size_t n,
                                const char *fmt, va_list ap) SONDE_PRINTF(8, 0);

#if defined(__GNUC__) && !defined(__cplusplus)
#define SONDE__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define SONDE__UNLIKELY(x) (x)
#endif

#define SONDE__FIELD_SENTINEL sonde__field(NULL, SONDE_FIELD_END)
#define SONDE__LOG_FIELDS(lg, level, msg, ...)                                                     \
    do {                                                                                           \
        sonde_logger *sonde__lg = (lg);                                                            \
        int sonde__lv = (level);                                                                   \
        if (SONDE__UNLIKELY(sonde_log_enabled(sonde__lg, sonde__lv))) {                            \
            const sonde_field sonde__f[] = {__VA_ARGS__};                                          \
            sonde_log_write(sonde__lg, sonde__lv, __FILE__, __LINE__, __func__, (msg), sonde__f,   \
                            sizeof sonde__f / sizeof sonde__f[0] - 1);                             \
        }                                                                                          \
    } while (0)

/**
 * SONDE_LOG(lg, LEVEL, message, fields...): log at TRACE, DEBUG, INFO,
 * WARNING, ERROR or CRITICAL (the bare word) through logger lg (NULL: root).
 *     SONDE_LOG(lg, ERROR, "open failed", SONDE_STR("path", p), SONDE_ERRNUM(errno));
 * SONDE_LOG_AT takes the level as a value instead.
 */
#define SONDE_LOG(lg, LEVEL, ...) SONDE_LOG_AT(lg, SONDE_LOG_##LEVEL, __VA_ARGS__)
#define SONDE_LOG_AT(lg, level, ...)                                                               \
    SONDE__LOG_FIELDS(lg, level, __VA_ARGS__, SONDE__FIELD_SENTINEL)

/** SONDE_LOGF(lg, LEVEL, fmt, args...): printf-style message, no fields. */
#define SONDE_LOGF(lg, LEVEL, ...) SONDE_LOGF_AT(lg, SONDE_LOG_##LEVEL, __VA_ARGS__)
#define SONDE_LOGF_AT(lg, level, ...)                                                              \
    do {                                                                                           \
        sonde_logger *sonde__lg = (lg);                                                            \
        int sonde__lv = (level);                                                                   \
        if (SONDE__UNLIKELY(sonde_log_enabled(sonde__lg, sonde__lv)))                              \
            sonde_log_writef(sonde__lg, sonde__lv, __FILE__, __LINE__, __func__, __VA_ARGS__);     \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Context frames and correlation IDs                                       */

/** Longest correlation ID accepted from outside (X-Request-ID), in bytes. */
#define SONDE_CORRELATION_ID_MAX 128
/** Deepest context stack per thread; deeper pushes fail with SONDE_ELIMIT. */
#define SONDE_LOG_MAX_DEPTH 32

/**
 * Push a context frame on the calling thread. Every line the thread writes
 * until the frame is popped carries, under "correlation", the correlation ID
 * and the fields of every frame on the stack (an inner frame's key hides the
 * same key of an outer one).
 *
 * correlation_id: NULL to inherit the enclosing frame's ID; the outermost
 * frame then gets a new random 128-bit ID (32 lowercase hex digits). A
 * non-NULL ID (as from sonde_log_correlation_from_headers) starts a new
 * correlation for this frame and the frames inside it; an ID that is not a
 * valid request ID (see sonde_log_request_id_valid) is replaced by a new one.
 * fields [0..n): copied, masked once here; string values are cut at 512
 * bytes and the whole context at 4 KiB.
 *
 * Returns a token (> 0) for sonde_log_context_pop, or SONDE_ELIMIT (stack
 * deeper than SONDE_LOG_MAX_DEPTH) or SONDE_ENOMEM; popping a negative
 * token does nothing. The calling thread only; allocates the thread's
 * context storage at its first push.
 */
SONDE_API int sonde_log_context_push(const char *correlation_id, const sonde_field *fields,
                                     size_t n);

/** Pop the frame with this token and every frame pushed after it. Tokens
 * <= 0 and stale tokens are ignored. The calling thread only. */
SONDE_API void sonde_log_context_pop(int token);

/** Copy the calling thread's current correlation ID into out (NUL-terminated,
 * cut to size). Returns its length, 0 when the thread has no context. */
SONDE_API size_t sonde_log_correlation_id(char *out, size_t size);

/** Write a new random 128-bit ID as 32 lowercase hex digits and a NUL.
 * Any thread, lock-free, no allocation. */
SONDE_API void sonde_log_new_correlation_id(char out[33]);

/**
 * Parse a W3C traceparent header value ("00-<32 hex trace-id>-<16 hex
 * parent-id>-<2 hex flags>"; surrounding spaces and tabs allowed; future
 * versions may append "-..." fields). trace_id and parent_id (either may be
 * NULL) receive the lowercase hex and a NUL. Returns SONDE_OK or SONDE_EPARSE
 * (bad syntax, uppercase hex, version ff, all-zero IDs). Pure function.
 */
SONDE_API int sonde_log_traceparent_parse(const char *s, size_t n, char trace_id[33],
                                          char parent_id[17]);

/** Whether s[0..n) is acceptable as a correlation ID from outside: 1 to 128
 * bytes of [A-Za-z0-9._:+/=@-] (surrounding spaces are not trimmed here).
 * Rejecting everything else keeps log injection out. Pure function. */
SONDE_API int sonde_log_request_id_valid(const char *s, size_t n);

/**
 * Choose the correlation ID of an incoming request: the trace-id of a valid
 * traceparent, else a valid X-Request-ID (trimmed), else a new random ID.
 * Either header may be NULL. Writes a NUL-terminated ID into out. Returns 1
 * (traceparent), 2 (X-Request-ID) or 0 (generated). Any thread.
 */
SONDE_API int sonde_log_correlation_from_headers(const char *traceparent, const char *x_request_id,
                                                 char out[SONDE_CORRELATION_ID_MAX + 1]);

/** A captured context, to adopt on another thread. Immutable. */
typedef struct sonde_log_context sonde_log_context;

/**
 * Capture the calling thread's context (ID and fields). Returns NULL when
 * the thread has no context or memory is short. The caller frees it with
 * sonde_log_context_release once every adopter has returned from
 * sonde_log_context_adopt (adopting copies it). Any thread; allocates.
 */
SONDE_API sonde_log_context *sonde_log_context_capture(void);

/** Push ctx as one frame on the calling thread (NULL pushes an empty frame
 * that inherits as sonde_log_context_push(NULL, NULL, 0) would). Returns a
 * token as sonde_log_context_push. */
SONDE_API int sonde_log_context_adopt(const sonde_log_context *ctx);

/** Free a captured context; accepts NULL. */
SONDE_API void sonde_log_context_release(sonde_log_context *ctx);

/* Scope macros (GNU C: the cleanup attribute): the frame is popped when the
 * enclosing block exits, by any path. */
static inline void sonde__log_scope_end(int *token)
{
    sonde_log_context_pop(*token);
}
#if defined(__COUNTER__)
#define SONDE__UNIQ(p) SONDE__CAT(p, __COUNTER__)
#else
#define SONDE__UNIQ(p) SONDE__CAT(p, __LINE__)
#endif
#define SONDE__CAT(a, b) SONDE__CAT2(a, b)
#define SONDE__CAT2(a, b) a##b
#define SONDE__SCOPE(var, ...) SONDE__SCOPE_(var, __VA_ARGS__)
#define SONDE__SCOPE_(var, id, ...)                                                                \
    const sonde_field var##_f[] = {__VA_ARGS__};                                                   \
    __attribute__((cleanup(sonde__log_scope_end))) int var =                                       \
        sonde_log_context_push((id), var##_f, sizeof var##_f / sizeof var##_f[0] - 1)
/** SONDE_LOG_CONTEXT(fields...): push a frame with at least one field for
 * the rest of the block; inherits the correlation ID (new if outermost). */
#define SONDE_LOG_CONTEXT(...)                                                                     \
    SONDE__SCOPE(SONDE__UNIQ(sonde__scope_), NULL, __VA_ARGS__, SONDE__FIELD_SENTINEL)
/** SONDE_LOG_REQUEST_CONTEXT(id, fields...): a frame starting the correlation
 * id (NULL: new random ID) for the rest of the block. */
#define SONDE_LOG_REQUEST_CONTEXT(...)                                                             \
    SONDE__SCOPE(SONDE__UNIQ(sonde__scope_), __VA_ARGS__, SONDE__FIELD_SENTINEL)
/** SONDE_LOG_ADOPT_CONTEXT(ctx): adopt a captured context for the block. */
#define SONDE_LOG_ADOPT_CONTEXT(ctx)                                                               \
    __attribute__((cleanup(sonde__log_scope_end))) int SONDE__UNIQ(sonde__adopt_) =                \
        sonde_log_context_adopt(ctx)

/* ------------------------------------------------------------------------ */
/* Operations                                                               */

/** State of an operation between start and end; lives on the caller's
 * stack. Fields are private. */
typedef struct sonde_log_op {
    sonde_logger *logger;
    uint64_t start_ns;
    int token;
    char name[64];
} sonde_log_op;

/**
 * Start an operation: log "<name> started" at INFO with "event":
 * "operation_start", "operation" and fields [0..n), and push a context frame
 * holding "operation":name and the same fields, so every line until
 * sonde_log_operation_end carries them. name is copied (cut at 63 bytes).
 * The calling thread only (end it on the same thread).
 */
SONDE_API void sonde_log_operation_start(sonde_log_op *op, sonde_logger *lg, const char *name,
                                         const sonde_field *fields, size_t n);

/**
 * End it: pop the frame and log "<name> completed" (INFO) or "<name>
 * failed" (ERROR) with "event":"operation_end", "operation", "success" and
 * "duration_seconds", plus fields [0..n). Returns the duration in seconds.
 */
SONDE_API double sonde_log_operation_end(sonde_log_op *op, int success, const sonde_field *fields,
                                         size_t n);

/** SONDE_LOG_OP_START(&op, lg, "clone", fields...): start with fields. */
#define SONDE_LOG_OP_START(op, lg, ...) SONDE__OP_START(op, lg, __VA_ARGS__, SONDE__FIELD_SENTINEL)
#define SONDE__OP_START(op, lg, name, ...)                                                         \
    do {                                                                                           \
        const sonde_field sonde__f[] = {__VA_ARGS__};                                              \
        sonde_log_operation_start((op), (lg), (name), sonde__f,                                    \
                                  sizeof sonde__f / sizeof sonde__f[0] - 1);                       \
    } while (0)
/** SONDE_LOG_OP_END(&op, success, fields...): end with extra fields. */
#define SONDE_LOG_OP_END(...) SONDE__OP_END(__VA_ARGS__, SONDE__FIELD_SENTINEL)
#define SONDE__OP_END(op, success, ...)                                                            \
    do {                                                                                           \
        const sonde_field sonde__f[] = {__VA_ARGS__};                                              \
        sonde_log_operation_end((op), (success), sonde__f,                                         \
                                sizeof sonde__f / sizeof sonde__f[0] - 1);                         \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Masking                                                                  */

/**
 * Masking (on by default) replaces with "***": the value of any field whose
 * key names a secret (password, passwd, pwd, secret, token, api_key, apikey,
 * authorization, cookie, session, private_key, credentials, passphrase;
 * case and separator insensitive, also as the last word: "db_password",
 * "X-Api-Key", "githubToken"), and in every string value and message: Bearer
 * and Basic credentials, GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_,
 * github_pat_), AWS access key IDs, JWTs, passwords in URLs
 * ("https://user:***@host") and key=value pairs whose key names a secret
 * ("password=***;"). See docs/logging.md for the exact rules.
 */

/** Add a key (normalised: lowercase, separators dropped) to the secret keys.
 * Returns SONDE_OK, SONDE_EINVAL (empty), SONDE_ELIMIT (64 extra keys) or
 * SONDE_ENOMEM. Any thread; lines already queued may use the old rules. */
SONDE_API int sonde_log_mask_add_key(const char *key);

/** Mask tokens that start with prefix (at a word start) followed by at least
 * min_len characters of [A-Za-z0-9_-] ("sk_live_", 16). The prefix is kept:
 * "sk_live_***". Returns as sonde_log_mask_add_key. */
SONDE_API int sonde_log_mask_add_prefix(const char *prefix, size_t min_len);

/** Mask every match of a POSIX extended regular expression (slower: applied
 * to every string after the built-in rules). Returns SONDE_OK, SONDE_EPARSE,
 * SONDE_ELIMIT (16 expressions) or SONDE_ENOMEM. */
SONDE_API int sonde_log_mask_add_regex(const char *ere);

/** Whether key names a secret under the current rules. */
SONDE_API int sonde_log_mask_key_is_secret(const char *key, size_t n);

/** Append s[0..n) with every secret pattern masked to out. Returns 1 when
 * something was masked, 0 when not, or a negative SONDE_E* code. */
SONDE_API int sonde_log_mask(const char *s, size_t n, struct sonde_buf *out);

/* ------------------------------------------------------------------------ */
/* Sinks                                                                    */

/** Line formats. */
typedef enum sonde_log_format {
    SONDE_LOG_FORMAT_AUTO = 0,   /* console on a terminal, JSON otherwise */
    SONDE_LOG_FORMAT_JSON = 1,   /* one JSON object per line (JSON Lines) */
    SONDE_LOG_FORMAT_CONSOLE = 2 /* human-readable, colour on a terminal */
} sonde_log_format;

typedef enum sonde_log_sink_type {
    SONDE_LOG_SINK_STDERR = 1,
    SONDE_LOG_SINK_STDOUT = 2,
    SONDE_LOG_SINK_FILE = 3,
    /** systemd-journald native protocol (structured fields). */
    SONDE_LOG_SINK_JOURNAL = 4,
    /** RFC 3164 datagrams to the local syslog socket. */
    SONDE_LOG_SINK_SYSLOG = 5,
    SONDE_LOG_SINK_CALLBACK = 6
} sonde_log_sink_type;

/** What a callback sink receives besides the formatted line. All pointers
 * are borrowed for the duration of the callback. */
typedef struct sonde_log_record {
    int level;
    const char *logger;
    /** Masked message (not NUL-terminated inside; use message_len). */
    const char *message;
    size_t message_len;
    /** "" when the line has no context. */
    const char *correlation_id;
    /** Wall-clock time, microseconds since the epoch. */
    int64_t timestamp_us;
    const char *file; /* basename, may be NULL */
    int line;
    const char *function; /* may be NULL */
    long tid;
} sonde_log_record;

/** A callback sink: line[0..len) is the line in the sink's format with its
 * trailing newline. Runs on the logging thread (synchronous mode) or the
 * writer thread (asynchronous mode) with the sinks lock held: do not block.
 * Log calls made from inside are dropped (counted); configuration calls
 * (sonde_log_configure, sink add/remove, levels, flush, shutdown) return
 * SONDE_ESTATE or do nothing. */
typedef void (*sonde_log_sink_fn)(const sonde_log_record *rec, const char *line, size_t len,
                                  void *userdata);

/** Sink options; zero means default for every field. */
typedef struct sonde_log_sink_opts {
    /** Lowest level written. Default (0): every level the logger passes. */
    int level;
    /** Line format. Default: AUTO (console for a terminal stderr/stdout,
     * JSON for everything else). The journal ignores it. */
    sonde_log_format format;
    /** Colour in the console format: 0 auto (terminal, TERM not "dumb",
     * NO_COLOR unset), 1 always, -1 never. */
    int color;
    /** FILE: the path (required). JOURNAL: the socket (default
     * /run/systemd/journal/socket). SYSLOG: the socket (default /dev/log). */
    const char *path;
    /** FILE: rotate before a write would make the file larger than this
     * many bytes; rotated files are path.1 (newest) .. path.<keep>.
     * Default 0: no size rotation (use logrotate). */
    uint64_t max_bytes;
    /** FILE: rotated files kept. Default 0: 5. At most 1000. */
    unsigned keep;
    /** FILE: how often (ms) to check that path still names the open file
     * (external rotation, deletion), and to retry opening after a failure.
     * Default 0: 1000 ms. */
    unsigned check_interval_ms;
    /** FILE: permission bits for a new file. Default 0: 0640. */
    unsigned file_mode;
    /** JOURNAL, SYSLOG: identifier. Default: the program's short name. */
    const char *ident;
    /** SYSLOG: facility number (LOG_USER is 1). Default 0: user (1). */
    int facility;
    /** CALLBACK: the function (required) and its borrowed userdata. */
    sonde_log_sink_fn fn;
    void *userdata;
} sonde_log_sink_opts;

/** Zero the options. */
SONDE_API void sonde_log_sink_opts_init(sonde_log_sink_opts *opts);

/**
 * Add a sink. opts may be NULL for STDERR and STDOUT. FILE opens (creating)
 * the file now; JOURNAL and SYSLOG check that the socket exists. On success
 * *id (may be NULL) receives an ID for sonde_log_sink_remove. Returns
 * SONDE_OK, SONDE_EINVAL, SONDE_EIO (cannot open: the reason is in
 * sonde_last_error), SONDE_ELIMIT (16 sinks), SONDE_ENOMEM. Any
 * thread; allocates; waits for the sinks lock.
 */
SONDE_API int sonde_log_sink_add(sonde_log_sink_type type, const sonde_log_sink_opts *opts,
                                 int *id);

/** Remove a sink (flushing it, closing its file). Returns SONDE_OK or
 * SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_log_sink_remove(int id);

/** Remove every sink, including the default ones: nothing is written until
 * a sink is added (and every level check fails fast). */
SONDE_API void sonde_log_sink_remove_all(void);

/**
 * Ask every file sink to reopen its file (after logrotate moved it) before
 * its next write. Async-signal-safe: call it from your own SIGHUP handler.
 * sonde installs one itself when a file sink is added and SIGHUP has its
 * default disposition or is ignored (see sonde_log_opts.no_sighup).
 */
SONDE_API void sonde_log_reopen(void);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

/** Logging options; zero means default for every field. Environment
 * variables override them unless no_env is set. */
typedef struct sonde_log_opts {
    /** Level specification for loggers, as sonde_log_set_levels ("info" or
     * "info,mgit.net=debug"). NULL: "info". Env SONDE_LOG_LEVEL. */
    const char *level;
    /** Console (stderr) sink: -1 none, 0 stderr (default). */
    int console;
    /** Console sink level (0: all the loggers pass). Env
     * SONDE_LOG_CONSOLE_LEVEL. */
    int console_level;
    /** Console sink format (0: auto). Env SONDE_LOG_FORMAT=json|console. */
    sonde_log_format console_format;
    /** Colour, as sonde_log_sink_opts.color. Env NO_COLOR disables it. */
    int color;
    /** Log file (NULL: none). Env SONDE_LOG_FILE. Failure to open it is
     * returned by sonde_log_configure (SONDE_EIO). */
    const char *file;
    /** File sink level (0: all). Env SONDE_LOG_FILE_LEVEL. */
    int file_level;
    /** File rotation size and kept files, as in sonde_log_sink_opts. Env
     * SONDE_LOG_FILE_MAX_BYTES, SONDE_LOG_FILE_KEEP. */
    uint64_t file_max_bytes;
    unsigned file_keep;
    /** 1: asynchronous mode (a writer thread; env SONDE_LOG_ASYNC=1). */
    int async;
    /** Queue capacity in 256-byte slots (a short line takes 1 or 2). Default
     * 0: 16384 (4 MiB). Power of two between 64 and 2^22; fixed after the
     * first asynchronous start. Env SONDE_LOG_QUEUE_SLOTS. */
    size_t queue_slots;
    /** 1: a full queue blocks the caller until there is room; default 0:
     * the message is dropped and counted in sonde_log_dropped_total. */
    int block_when_full;
    /** Longest line in bytes; longer lines are cut with "...[truncated]"
     * inside the cut strings and "truncated":true. Default 0: 16384.
     * Between 4096 and 16 MiB. Env SONDE_LOG_MAX_LINE. */
    size_t max_line_bytes;
    /** -1: masking off (not recommended). Default 0: on. */
    int masking;
    /** 1: ignore the environment. */
    int no_env;
    /** 1: never install a SIGHUP handler. */
    int no_sighup;
} sonde_log_opts;

/** Zero the options (all defaults). */
SONDE_API void sonde_log_opts_init(sonde_log_opts *opts);

/**
 * (Re)configure logging: levels, masking, line size, the console and file
 * sinks (replacing the ones made by an earlier sonde_log_configure or from
 * the environment; sinks added with sonde_log_sink_add stay) and the mode.
 * opts NULL: defaults. Switching to asynchronous mode starts the writer
 * thread (stopped by sonde_log_shutdown or at exit). Returns SONDE_OK,
 * SONDE_EINVAL (out-of-range option: nothing changed), SONDE_EPARSE (bad
 * level spec), SONDE_EIO (the file cannot be opened: everything else is
 * applied), SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_log_configure(const sonde_log_opts *opts);

/**
 * Write everything queued and flush every sink's buffer to the operating
 * system (no fsync). Returns SONDE_OK or SONDE_ETIMEOUT when the writer did
 * not get there within timeout_ms (0: do not wait, just wake the writer).
 * Any thread except a callback sink.
 */
SONDE_API int sonde_log_flush(unsigned timeout_ms);

/**
 * Flush (within timeout_ms), stop the writer thread and return to
 * synchronous mode; sinks stay open and logging keeps working. For
 * sonde_stop(). Registered with atexit() as well. Returns SONDE_OK or
 * SONDE_ETIMEOUT (the writer was stopped anyway; what it had not written
 * is written synchronously by the next log call or flush).
 */
SONDE_API int sonde_log_shutdown(unsigned timeout_ms);

/** Counters since the start of the process (also exported as the metrics
 * sonde_log_messages_total{level}, sonde_log_dropped_total and
 * sonde_log_write_errors_total). */
typedef struct sonde_log_stats {
    /** Messages accepted, by level (index = level, 1..6). */
    uint64_t messages[8];
    /** Messages lost before any sink: queue full, calls from a callback
     * sink, no memory. */
    uint64_t dropped;
    /** Lines a sink failed to write (full disk, removed directory, closed
     * socket...), counted per sink. */
    uint64_t write_errors;
} sonde_log_stats;

/** Fill *out. Any thread. */
SONDE_API void sonde_log_get_stats(sonde_log_stats *out);

#ifdef __cplusplus
}
#endif
#endif
