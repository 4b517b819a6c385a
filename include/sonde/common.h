/*
 * sonde/common.h - error codes, the last error's reason, version, the
 * output buffer, symbol visibility.
 *
 * Threading rule for the whole API: unless a function's comment says
 * otherwise it may be called from any thread. Hot-path calls (counter inc,
 * gauge set, histogram observe) are lock-free and never allocate after the
 * calling thread's first metric update.
 */
#ifndef SONDE_COMMON_H
#define SONDE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SONDE_STATIC_DEFINE)
#define SONDE_API
#elif defined(__GNUC__)
#define SONDE_API __attribute__((visibility("default")))
#else
#define SONDE_API
#endif

#if defined(__GNUC__)
#define SONDE_PRINTF(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))
#else
#define SONDE_PRINTF(fmt_idx, first_arg)
#endif

#if defined(__GNUC__)
#define SONDE_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define SONDE_DEPRECATED(msg)
#endif

#define SONDE_VERSION_MAJOR 0
#define SONDE_VERSION_MINOR 1
#define SONDE_VERSION_PATCH 0
#define SONDE_VERSION_STRING "0.1.0"

/*
 * Every error sonde can return: XX(NAME, value, message). Values are ABI:
 * never renumber, never reuse; add new codes at the end.
 */
#define SONDE_ERRNO_MAP(XX)                                                                        \
    XX(OK, 0, "success")                                                                           \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(EBADNAME, -3, "invalid metric name")                                                        \
    XX(EBADLABEL, -4, "invalid or reserved label name")                                            \
    XX(ECONFLICT, -5, "metric already registered with a different definition")                     \
    XX(ELIMIT, -6, "limit reached")                                                                \
    XX(ENOTFOUND, -7, "not found")                                                                 \
    XX(ELABELCOUNT, -8, "wrong number of label values")                                            \
    XX(EBUCKETS, -9, "invalid histogram buckets")                                                  \
    XX(EOBJECTIVES, -10, "invalid summary objectives")                                             \
    XX(EDISABLED, -11, "sonde is disabled")                                                        \
    XX(EIO, -12, "input/output error")                                                             \
    XX(EBIND, -13, "cannot bind listening address")                                                \
    XX(ESTATE, -14, "operation not valid in the current state")                                    \
    XX(EPARSE, -15, "parse error")                                                                 \
    XX(ETIMEOUT, -16, "timed out")                                                                 \
    XX(ETOOBIG, -17, "size limit exceeded")                                                        \
    XX(EUNREACHABLE, -18, "peer unreachable")                                                      \
    XX(ETYPE, -19, "wrong metric type for this operation")

/** Error codes; SONDE_OK is 0, errors are negative. */
typedef enum sonde_err {
#define SONDE__ERR_ENUM(name, value, msg) SONDE_##name = (value),
    SONDE_ERRNO_MAP(SONDE__ERR_ENUM)
#undef SONDE__ERR_ENUM
} sonde_err;

/**
 * Human-readable message for an error code: static text, never NULL, never
 * allocates; unknown codes give "unknown error". Any thread, lock-free,
 * async-signal-safe.
 */
SONDE_API const char *sonde_strerror(int err);

/**
 * The code's symbolic name ("SONDE_EINVAL"): static text, never NULL.
 * Any thread, lock-free, async-signal-safe.
 */
SONDE_API const char *sonde_err_name(int err);

/**
 * Why this thread's last failed sonde call failed, in words naming the
 * problem ("" if none): registration conflicts, invalid options, store and
 * configuration errors. Static per-thread storage, valid until the next
 * sonde call on this thread. Any thread.
 */
SONDE_API const char *sonde_last_error(void);

/**
 * A growable output buffer. Zero-initialise (or sonde_buf_init), pass to
 * writers, read data[0..len), free with sonde_buf_free. data is always
 * NUL-terminated when non-NULL. max bounds growth (0: 1 GiB); a write past
 * it fails with SONDE_ETOOBIG and leaves len unchanged. Not thread-safe.
 */
typedef struct sonde_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
} sonde_buf;

SONDE_API void sonde_buf_init(sonde_buf *b);
/** Free the buffer's memory; accepts NULL; the buffer can be reused. */
SONDE_API void sonde_buf_free(sonde_buf *b);
/** Empty the buffer, keeping its memory for reuse. */
SONDE_API void sonde_buf_reset(sonde_buf *b);
/** Append n bytes. Returns SONDE_OK, SONDE_EINVAL, SONDE_ENOMEM or
 * SONDE_ETOOBIG (past b->max when set). Owner thread of the buffer. */
SONDE_API int sonde_buf_append(sonde_buf *b, const void *data, size_t n);
/** Append formatted text (see sonde_buf_append). */
SONDE_API int sonde_buf_printf(sonde_buf *b, const char *fmt, ...) SONDE_PRINTF(2, 3);
/** Append s as a JSON string literal, quotes included (NULL: null). */
SONDE_API int sonde_buf_json_string(sonde_buf *b, const char *s);

/** Free memory that a sonde function returned for the caller to free. */
SONDE_API void sonde_free(void *p);

/** The library's version string at run time ("0.1.0"). Any thread. */
SONDE_API const char *sonde_version(void);

/**
 * Whether sonde is enabled in this process: false when built with
 * SONDE_DISABLE or when the environment has SONDE_ENABLED=0 (read once, at
 * the first call). When disabled every call of every component succeeds and
 * does nothing (values stay 0, nothing is written, served or stored) and no
 * thread is started; invalid arguments are still refused. Any thread,
 * lock-free.
 */
SONDE_API int sonde_enabled(void);

/**
 * Turn sonde off for this process, as SONDE_ENABLED=0 does, from the
 * application's own configuration (a feature flag such as "metrics off by
 * default"). Call it before any other sonde call: returns SONDE_OK when
 * sonde is off (also when it already was), SONDE_ESTATE when an earlier
 * call has already found sonde enabled (what that call set up would stay
 * on: the switch is not changed). There is no way back on. Any thread,
 * lock-free.
 */
SONDE_API int sonde_disable(void);

#ifdef __cplusplus
}
#endif
#endif
