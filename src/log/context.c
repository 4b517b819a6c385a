/*
 * Per-thread state: the context stack, correlation IDs, the thread id and a
 * small random generator; and the parsers for incoming IDs (W3C
 * traceparent, X-Request-ID).
 *
 * Frames are kept as field blobs (already masked) in one per-thread buffer,
 * outermost first. After every push and pop the combined context (every
 * frame's top-level items, an inner key hiding the same key further out) is
 * rebuilt once, so a log call only copies one contiguous byte range.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* initial-exec: one word of static TLS, no __tls_get_addr call on the hot
 * path (the library is built position-independent). */
static __attribute__((tls_model("initial-exec"))) _Thread_local log_tls *tls_state;
static pthread_key_t tls_key;
static pthread_once_t tls_key_once = PTHREAD_ONCE_INIT;

static void tls_destroy(void *p)
{
    log_tls *t = p;
    if (!t)
        return;
    sonde_buf_free(&t->rec);
    sonde_buf_free(&t->msg);
    sonde_buf_free(&t->fblob);
    sonde_buf_free(&t->ctx);
    sonde__free(t->key_cache);
    if (tls_state == t)
        tls_state = NULL;
    sonde__free(t);
}

static void tls_key_create(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

log_tls *sonde__tls(void)
{
    log_tls *t = tls_state;
    if (SONDE_LIKELY(t != NULL))
        return t;
    pthread_once(&tls_key_once, tls_key_create);
    t = sonde__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    tls_state = t;
    pthread_setspecific(tls_key, t);
    return t;
}

int sonde__log_in_sink(void)
{
    log_tls *t = tls_state;
    return t && t->in_emit;
}

int sonde__log_tid(void)
{
    log_tls *t = sonde__tls();
    if (!t)
        return (int)syscall(SYS_gettid);
    if (!t->tid)
        t->tid = (int)syscall(SYS_gettid);
    return t->tid;
}

void sonde__ctx_atfork_child(void)
{
    log_tls *t = tls_state;
    if (t) {
        t->tid = 0;
        t->rng_seeded = 0; /* the child must not repeat the parent's IDs */
    }
}

/* ---- random IDs: xorshift128+ per thread, seeded from getrandom ---- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t s[2])
{
    uint64_t seed[2] = {0, 0};
    if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
        seed[1] = (uint64_t)syscall(SYS_gettid) ^ (uint64_t)(uintptr_t)s ^ sonde__now_mono_ns();
    }
    uint64_t x = seed[0] ^ (seed[1] * 0x2545f4914f6cdd1dull);
    s[0] = splitmix(&x);
    s[1] = splitmix(&x);
    if (!s[0] && !s[1])
        s[1] = 1;
}

static uint64_t rng_next(uint64_t s[2])
{
    uint64_t a = s[0];
    const uint64_t b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}

static void hex64(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
}

SONDE_API void sonde_log_new_correlation_id(char out[33])
{
    uint64_t local[2];
    log_tls *t = sonde__tls();
    uint64_t *s = local;
    if (t) {
        if (!t->rng_seeded) {
            rng_seed(t->rng);
            t->rng_seeded = 1;
        }
        s = t->rng;
    } else {
        rng_seed(local);
    }
    uint64_t hi = rng_next(s), lo = rng_next(s);
    if (!hi && !lo)
        lo = 1; /* all zeros is not a valid W3C trace-id */
    hex64(out, hi);
    hex64(out + 16, lo);
    out[32] = '\0';
}

/* ---- incoming IDs ---- */

static int is_lhex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int all_lhex(const char *s, size_t n, int *nonzero)
{
    *nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_lhex((unsigned char)s[i]))
            return 0;
        if (s[i] != '0')
            *nonzero = 1;
    }
    return 1;
}

static void trim(const char **s, size_t *n)
{
    while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

SONDE_API int sonde_log_traceparent_parse(const char *s, size_t n, char trace_id[33],
                                          char parent_id[17])
{
    if (!s)
        return SONDE_EPARSE;
    trim(&s, &n);
    if (n < 55)
        return SONDE_EPARSE;
    int nz;
    if (!all_lhex(s, 2, &nz) || (s[0] == 'f' && s[1] == 'f'))
        return SONDE_EPARSE;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return SONDE_EPARSE;
    int tnz, pnz;
    if (!all_lhex(s + 3, 32, &tnz) || !tnz)
        return SONDE_EPARSE;
    if (!all_lhex(s + 36, 16, &pnz) || !pnz)
        return SONDE_EPARSE;
    if (!all_lhex(s + 53, 2, &nz))
        return SONDE_EPARSE;
    if (s[0] == '0' && s[1] == '0') {
        if (n != 55)
            return SONDE_EPARSE;
    } else if (n > 55 && s[55] != '-') {
        return SONDE_EPARSE;
    }
    if (trace_id) {
        memcpy(trace_id, s + 3, 32);
        trace_id[32] = '\0';
    }
    if (parent_id) {
        memcpy(parent_id, s + 36, 16);
        parent_id[16] = '\0';
    }
    return SONDE_OK;
}

SONDE_API int sonde_log_request_id_valid(const char *s, size_t n)
{
    if (!s || n == 0 || n > SONDE_CORRELATION_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '+' || c == '/' || c == '=' || c == '@' ||
                 c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

SONDE_API int sonde_log_correlation_from_headers(const char *traceparent, const char *x_request_id,
                                                 char out[SONDE_CORRELATION_ID_MAX + 1])
{
    if (traceparent &&
        sonde_log_traceparent_parse(traceparent, strnlen(traceparent, 512), out, NULL) == SONDE_OK)
        return 1;
    if (x_request_id) {
        const char *s = x_request_id;
        size_t n = strnlen(s, SONDE_CORRELATION_ID_MAX + 64);
        trim(&s, &n);
        if (sonde_log_request_id_valid(s, n)) {
            memcpy(out, s, n);
            out[n] = '\0';
            return 2;
        }
    }
    sonde_log_new_correlation_id(out);
    return 0;
}

/* ---- the stack ---- */

typedef struct {
    size_t start, end; /* byte range in fblob */
    const char *key;
    size_t klen;
} ctx_entry;

/* Rebuild t->ctx and the effective ID from the frames. */
static void rebuild(log_tls *t)
{
    sonde_buf_reset(&t->ctx);
    t->cid = NULL;
    t->cid_len = 0;
    for (int k = t->depth - 1; k >= 0; k--) {
        if (t->frames[k].id_len) {
            t->cid = t->frames[k].id;
            t->cid_len = t->frames[k].id_len;
            break;
        }
    }
    ctx_entry e[256];
    size_t ne = 0;
    for (int k = 0; k < t->depth; k++) {
        size_t len = t->frames[k].len, off = 0;
        if (len == 0)
            continue; /* also: fblob.data may still be NULL */
        const char *blob = t->fblob.data + t->frames[k].off;
        int nest = 0;
        long cur = -1; /* entry being delimited */
        fb_item it;
        while (1) {
            size_t start = off;
            if (!sonde__fb_next(blob, len, &off, &it))
                break;
            if (nest == 0 && it.type != SONDE_FIELD_CLOSE) {
                cur = -1;
                if (ne < SONDE_ARRAY_LEN(e)) {
                    cur = (long)ne;
                    e[ne].start = t->frames[k].off + start;
                    e[ne].end = e[ne].start;
                    e[ne].key = it.key;
                    e[ne].klen = it.klen;
                    ne++;
                }
            }
            if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST)
                nest++;
            else if (it.type == SONDE_FIELD_CLOSE && nest > 0)
                nest--;
            if (nest == 0 && cur >= 0) {
                e[cur].end = t->frames[k].off + off;
                cur = -1;
            }
        }
    }
    for (size_t i = 0; i < ne; i++) {
        int hidden = 0;
        for (size_t j = i + 1; j < ne && !hidden; j++)
            hidden = e[j].klen == e[i].klen && memcmp(e[j].key, e[i].key, e[i].klen) == 0;
        if (!hidden && e[i].end > e[i].start)
            sonde__buf_append(&t->ctx, t->fblob.data + e[i].start, e[i].end - e[i].start);
    }
}

_Static_assert(SONDE__CORRELATION_MAX == SONDE_CORRELATION_ID_MAX, "core's copy of the limit");

/* Exemplars read the correlation ID through core (metrics sit below log). */
static atomic_bool correlation_hooked;

static int push_frame(log_tls *t, const char *id, size_t id_len, const sonde_field *fields,
                      size_t n, const char *blob, size_t blob_len)
{
    if (!atomic_load_explicit(&correlation_hooked, memory_order_relaxed)) {
        sonde__set_correlation_hook(sonde_log_correlation_id);
        atomic_store_explicit(&correlation_hooked, true, memory_order_relaxed);
    }
    if (t->depth >= SONDE_LOG_MAX_DEPTH)
        return SONDE_ELIMIT;
    log_frame *f = &t->frames[t->depth];
    f->off = t->fblob.len;
    f->id_len = 0;
    if (id) {
        if (!sonde_log_request_id_valid(id, id_len)) {
            sonde_log_new_correlation_id(f->id);
            id_len = 32;
        } else {
            memcpy(f->id, id, id_len);
        }
        f->id[id_len] = '\0';
        f->id_len = (unsigned char)id_len;
    } else if (t->depth == 0) {
        sonde_log_new_correlation_id(f->id);
        f->id_len = 32;
    }
    if (blob) {
        if (sonde__buf_append(&t->fblob, blob, blob_len))
            return SONDE_ENOMEM;
    } else if (n) {
        size_t used = t->fblob.len;
        size_t budget = used < LOG_CTX_MAX ? LOG_CTX_MAX - used : 0;
        int kinds = 0;
        if (sonde__fb_encode(&t->fblob, fields, n, budget, LOG_CTX_VALUE_MAX, 1, &kinds) < 0) {
            t->fblob.len = f->off;
            return SONDE_ENOMEM;
        }
    }
    f->len = t->fblob.len - f->off;
    t->depth++;
    rebuild(t);
    return t->depth;
}

SONDE_API int sonde_log_context_push(const char *correlation_id, const sonde_field *fields,
                                     size_t n)
{
    log_tls *t = sonde__tls();
    if (!t)
        return SONDE_ENOMEM;
    size_t idl = correlation_id ? strnlen(correlation_id, SONDE_CORRELATION_ID_MAX + 1) : 0;
    return push_frame(t, correlation_id, idl, fields, fields ? n : 0, NULL, 0);
}

SONDE_API void sonde_log_context_pop(int token)
{
    log_tls *t = tls_state;
    if (!t || token <= 0 || token > t->depth)
        return;
    t->depth = token - 1;
    t->fblob.len = t->frames[t->depth].off;
    if (t->fblob.data)
        t->fblob.data[t->fblob.len] = '\0';
    rebuild(t);
}

int sonde__ctx_current(const char **cid, size_t *cid_len, const char **blob, size_t *blob_len)
{
    log_tls *t = tls_state;
    if (!t || t->depth == 0) {
        *cid = NULL;
        *cid_len = 0;
        *blob = NULL;
        *blob_len = 0;
        return 0;
    }
    *cid = t->cid;
    *cid_len = t->cid_len;
    *blob = t->ctx.data;
    *blob_len = t->ctx.len;
    return 1;
}

SONDE_API size_t sonde_log_correlation_id(char *out, size_t size)
{
    log_tls *t = tls_state;
    size_t n = (t && t->depth && t->cid) ? t->cid_len : 0;
    if (out && size) {
        size_t c = n < size - 1 ? n : size - 1;
        if (c)
            memcpy(out, t->cid, c);
        out[c] = '\0';
    }
    return n;
}

struct sonde_log_context {
    size_t cid_len;
    char cid[SONDE_CORRELATION_ID_MAX + 1];
    size_t len;
    char blob[];
};

SONDE_API sonde_log_context *sonde_log_context_capture(void)
{
    log_tls *t = tls_state;
    if (!t || t->depth == 0)
        return NULL;
    sonde_log_context *c = sonde__malloc(sizeof *c + t->ctx.len + 1);
    if (!c)
        return NULL;
    c->cid_len = t->cid ? t->cid_len : 0;
    if (c->cid_len)
        memcpy(c->cid, t->cid, c->cid_len);
    c->cid[c->cid_len] = '\0';
    c->len = t->ctx.len;
    if (c->len)
        memcpy(c->blob, t->ctx.data, c->len);
    return c;
}

SONDE_API int sonde_log_context_adopt(const sonde_log_context *ctx)
{
    log_tls *t = sonde__tls();
    if (!t)
        return SONDE_ENOMEM;
    if (!ctx)
        return push_frame(t, NULL, 0, NULL, 0, NULL, 0);
    return push_frame(t, ctx->cid_len ? ctx->cid : NULL, ctx->cid_len, NULL, 0, ctx->blob,
                      ctx->len);
}

SONDE_API void sonde_log_context_release(sonde_log_context *ctx)
{
    sonde__free(ctx);
}
