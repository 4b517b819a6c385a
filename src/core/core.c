/* Errors, version, enable switch, allocation, time, spinlock, diagnostics. */
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *sonde_strerror(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return msg;
        SONDE_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *sonde_err_name(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return "SONDE_" #name;
        SONDE_ERRNO_MAP(XX)
#undef XX
    default:
        return "SONDE_UNKNOWN";
    }
}

const char *sonde_version(void)
{
    return SONDE_VERSION_STRING;
}

/* 0 unknown, 1 enabled, 2 disabled. Racing first calls compute the same
 * answer, so a relaxed store is enough. */
atomic_int sonde__enabled_state;

int sonde_enabled(void)
{
#ifdef SONDE_DISABLE
    return 0;
#else
    int s = atomic_load_explicit(&sonde__enabled_state, memory_order_relaxed);
    if (SONDE_LIKELY(s != 0))
        return s == 1;
    const char *e = getenv("SONDE_ENABLED");
    int on = 1;
    if (e && (strcmp(e, "0") == 0 || strcasecmp(e, "false") == 0 || strcasecmp(e, "no") == 0 ||
              strcasecmp(e, "off") == 0))
        on = 0;
    atomic_store_explicit(&sonde__enabled_state, on ? 1 : 2, memory_order_relaxed);
    return on;
#endif
}

int sonde_disable(void)
{
#ifdef SONDE_DISABLE
    return SONDE_OK;
#else
    int expected = 0;
    if (atomic_compare_exchange_strong(&sonde__enabled_state, &expected, 2))
        return SONDE_OK;
    return expected == 2 ? SONDE_OK : SONDE_ESTATE;
#endif
}

void *sonde__malloc(size_t n)
{
    return malloc(n ? n : 1);
}
void *sonde__calloc(size_t count, size_t size)
{
    return calloc(count ? count : 1, size ? size : 1);
}
void *sonde__realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}
void sonde__free(void *p)
{
    free(p);
}
void sonde_free(void *p)
{
    free(p);
}

char *sonde__strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = sonde__malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sonde__strdup(const char *s)
{
    return s ? sonde__strndup(s, strlen(s)) : NULL;
}

double sonde__now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t sonde__now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sonde__spin_lock(sonde__spin *s)
{
    for (;;) {
        if (!atomic_exchange_explicit(&s->v, 1, memory_order_acquire))
            return;
        int spins = 0;
        while (atomic_load_explicit(&s->v, memory_order_relaxed)) {
            if (++spins > 100) {
                sched_yield();
                spins = 0;
            } else {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
        }
    }
}

void sonde__spin_unlock(sonde__spin *s)
{
    atomic_store_explicit(&s->v, 0, memory_order_release);
}

static _Thread_local char last_error[512];

void sonde__set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

void sonde__clear_error(void)
{
    last_error[0] = '\0';
}

const char *sonde_last_error(void)
{
    return last_error;
}

const char *sonde_registry_last_error(void)
{
    return last_error;
}

static _Atomic(sonde__correlation_fn) correlation_hook;

void sonde__set_correlation_hook(sonde__correlation_fn fn)
{
    atomic_store_explicit(&correlation_hook, fn, memory_order_release);
}

size_t sonde__correlation_id(char *out, size_t size)
{
    sonde__correlation_fn fn = atomic_load_explicit(&correlation_hook, memory_order_acquire);
    if (!fn) {
        if (size)
            out[0] = '\0';
        return 0;
    }
    return fn(out, size);
}

static _Atomic(sonde__diag_fn) diag_hook;

void sonde__set_diag_hook(sonde__diag_fn fn)
{
    atomic_store(&diag_hook, fn);
}

void sonde__diag(int level, const char *component, const char *fmt, ...)
{
    sonde__diag_fn fn = atomic_load(&diag_hook);
    if (!fn)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(level, component, msg);
}
