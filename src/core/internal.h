/*
 * Private declarations shared by every component: allocation, the output
 * buffer, number formatting, time, locks and diagnostics. Nothing here is
 * installed.
 */
#ifndef SONDE_CORE_INTERNAL_H
#define SONDE_CORE_INTERNAL_H

#include <sonde/common.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SONDE_LIKELY(x) __builtin_expect(!!(x), 1)
#define SONDE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SONDE_UNUSED(x) ((void)(x))
#define SONDE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SONDE_CACHE_LINE 64

/* Thread-sanitizer detection for GCC and clang. */
#if defined(__SANITIZE_THREAD__)
#define SONDE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SONDE_TSAN 1
#endif
#endif

/* ---- off means off ---- */
/* 0 unknown, 1 enabled, 2 disabled (see sonde_enabled in core.c). */
extern atomic_int sonde__enabled_state;
/* sonde_enabled() with the common case inlined: one relaxed load. */
static inline int sonde__on(void)
{
#ifdef SONDE_DISABLE
    return 0;
#else
    int s = atomic_load_explicit(&sonde__enabled_state, memory_order_relaxed);
    return SONDE_LIKELY(s == 1) ? 1 : sonde_enabled();
#endif
}

/* ---- allocation: all of sonde allocates through these ---- */
void *sonde__malloc(size_t n);
void *sonde__calloc(size_t count, size_t size);
void *sonde__realloc(void *p, size_t n);
void sonde__free(void *p);
/* Copy of s (NULL gives NULL); caller frees with sonde__free. */
char *sonde__strdup(const char *s);
char *sonde__strndup(const char *s, size_t n);

/* ---- buffer (struct sonde_buf is public, see common.h) ---- */
/* Make room for n more bytes; returns SONDE_OK, SONDE_ENOMEM, SONDE_ETOOBIG. */
int sonde__buf_reserve(sonde_buf *b, size_t n);
int sonde__buf_append(sonde_buf *b, const void *p, size_t n);
int sonde__buf_puts(sonde_buf *b, const char *s);
int sonde__buf_putc(sonde_buf *b, char c);
int sonde__buf_printf(sonde_buf *b, const char *fmt, ...) SONDE_PRINTF(2, 3);
int sonde__buf_vprintf(sonde_buf *b, const char *fmt, va_list ap);
/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is
 * invalid: overlong forms, surrogates and code points above U+10FFFF are
 * refused. */
size_t sonde__utf8_seq_len(const unsigned char *s, size_t n);
/* Append s as a JSON string body (no quotes): escapes quote, backslash and
 * control characters, replaces invalid UTF-8 with U+FFFD. */
int sonde__buf_json_escape(sonde_buf *b, const char *s, size_t n);
/* Append s as a quoted JSON string. */
int sonde__buf_json_str(sonde_buf *b, const char *s);
/* Append a double as JSON: numbers as sonde__fmt_double, NaN/Inf as the
 * strings "NaN", "+Inf", "-Inf". */
int sonde__buf_json_double(sonde_buf *b, double v);

/* ---- numbers ---- */
/* Shortest decimal that reads back as the same double, locale-independent,
 * Go 'g' style ("0.005", "1", "1e+06", "1.5e-07"); "NaN", "+Inf", "-Inf".
 * Writes at most 32 bytes plus NUL into out; returns the length. */
size_t sonde__fmt_double(char out[33], double v);
/* As above, but integral values without exponent get ".0" ("1.0"), the
 * OpenMetrics canonical form for le and quantile labels. */
size_t sonde__fmt_double_om(char out[33], double v);
/* Decimal digits of an unsigned integer; returns the length (max 20). */
size_t sonde__fmt_u64(char out[21], uint64_t v);
/* Locale-independent strtod (C locale). */
double sonde__strtod(const char *s, char **end);

/* ---- time ---- */
/* Wall clock, seconds since the epoch. */
double sonde__now_wall(void);
/* Monotonic clock in nanoseconds. */
uint64_t sonde__now_mono_ns(void);

/* ---- locks ---- */
/* A tiny test-and-test-and-set spinlock for very short critical sections. */
typedef struct {
    atomic_int v;
} sonde__spin;
void sonde__spin_lock(sonde__spin *s);
void sonde__spin_unlock(sonde__spin *s);

/* ---- per-thread error message (sonde_last_error) ---- */
void sonde__set_error(const char *fmt, ...) SONDE_PRINTF(1, 2);
void sonde__clear_error(void);

/* ---- correlation ID ----
 * The calling thread's logging-context correlation ID, for exemplars taken
 * from it: metrics sit below log, so log installs the reader at its first
 * context push. Returns its length (0: none, or logging never used);
 * out holds up to SONDE__CORRELATION_MAX bytes plus NUL. */
#define SONDE__CORRELATION_MAX 128 /* SONDE_CORRELATION_ID_MAX of sonde/log.h */
typedef size_t (*sonde__correlation_fn)(char *out, size_t size);
void sonde__set_correlation_hook(sonde__correlation_fn fn);
size_t sonde__correlation_id(char *out, size_t size);

/* ---- diagnostics ----
 * The library never writes to stdout/stderr on its own. Internal warnings go
 * to this hook, which the logger installs; without a logger they are
 * dropped. level is a SONDE_LOG_* level. */
typedef void (*sonde__diag_fn)(int level, const char *component, const char *msg);
void sonde__set_diag_hook(sonde__diag_fn fn);
void sonde__diag(int level, const char *component, const char *fmt, ...) SONDE_PRINTF(3, 4);

#endif
