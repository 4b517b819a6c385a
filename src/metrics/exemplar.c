/*
 * Exemplars: the latest trace or correlation ID attached to a counter or a
 * histogram bucket. A slot is written by one thread at a time, without a
 * lock: the writer takes the slot by moving its sequence to odd with one
 * compare-and-swap (a writer finding it odd gives up and counts a drop),
 * stores the words and makes the sequence even again; a scrape copies the
 * words and retries when the sequence moved. Exemplars are best-effort by
 * nature (the latest one wins), so a lost race is a drop, never a wait.
 */
#include "metrics_int.h"

#include <time.h>

_Atomic uint64_t sonde__exemplars_dropped;

static uint32_t slots_for(const struct sonde_family *f)
{
    if (f->type == SONDE_COUNTER)
        return 1;
    if (f->type == SONDE_HISTOGRAM)
        return f->nb ? (uint32_t)f->nb + 1 : 1;
    return 0;
}

struct sonde__exemplars *sonde__exemplars_new(const struct sonde_family *f)
{
    uint32_t n = slots_for(f);
    if (!f->exemplars || n == 0)
        return NULL;
    struct sonde__exemplars *ex = sonde__calloc(1, sizeof *ex + n * sizeof(struct sonde__exemplar));
    if (!ex)
        return NULL;
    ex->from_log = f->exemplars == SONDE_EXEMPLARS_FROM_LOG;
    ex->n = n;
    return ex;
}

static int legacy_label(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (p != s && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

static size_t runes(const char *s, size_t n)
{
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += ((unsigned char)s[i] & 0xc0) != 0x80;
    return r;
}

int sonde__exemplar_put(struct sonde__exemplar *e, double v, const char *const *kv, size_t npairs)
{
    union {
        char c[SONDE__EX_WORDS * 8];
        uint64_t w[SONDE__EX_WORDS];
    } blob;
    size_t len = 0, bytes = 0;
    for (size_t i = 0; i < npairs; i++) {
        const char *k = kv[2 * i], *val = kv[2 * i + 1];
        if (!legacy_label(k) || !val)
            goto drop;
        size_t kl = strlen(k), vl = strlen(val);
        bytes += kl + vl;
        if (len + kl + vl + 2 > sizeof blob.c)
            goto drop;
        memcpy(blob.c + len, k, kl + 1);
        len += kl + 1;
        memcpy(blob.c + len, val, vl + 1);
        len += vl + 1;
    }
    /* Bytes bound characters from above: count only when it matters. */
    if (bytes > SONDE_EXEMPLAR_MAX_RUNES &&
        runes(blob.c, len) - 2 * npairs > SONDE_EXEMPLAR_MAX_RUNES)
        goto drop;
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if ((seq & 1) || !atomic_compare_exchange_strong_explicit(
                         &e->seq, &seq, seq + 1, memory_order_acquire, memory_order_relaxed))
        goto drop;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    uint64_t bits;
    memcpy(&bits, &v, 8);
    atomic_store_explicit(&e->value, bits, memory_order_relaxed);
    atomic_store_explicit(&e->ts_ms, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                          memory_order_relaxed);
    atomic_store_explicit(&e->len, len, memory_order_relaxed);
    for (size_t i = 0; i < (len + 7) / 8; i++)
        atomic_store_explicit(&e->w[i], blob.w[i], memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    return 0;
drop:
    atomic_fetch_add_explicit(&sonde__exemplars_dropped, 1, memory_order_relaxed);
    return -1;
}

void sonde__exemplar_from_log(struct sonde__exemplars *ex, uint32_t slot, double v)
{
    if (!ex->from_log || slot >= ex->n)
        return;
    char id[SONDE__CORRELATION_MAX + 1];
    if (sonde__correlation_id(id, sizeof id) == 0)
        return;
    const char *kv[2] = {"trace_id", id};
    sonde__exemplar_put(&ex->slot[slot], v, kv, 1);
}

int sonde__exemplar_read(const struct sonde__exemplar *e0, char *buf, size_t cap, size_t *len,
                         double *v, uint64_t *ts_ms)
{
    struct sonde__exemplar *e = (struct sonde__exemplar *)e0;
    for (int tries = 0; tries < 8; tries++) {
        uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 == 0)
            return 0;
        if (s1 & 1)
            continue;
        size_t n = (size_t)atomic_load_explicit(&e->len, memory_order_relaxed);
        if (n > cap || n > SONDE__EX_WORDS * 8)
            continue;
        for (size_t i = 0; i < (n + 7) / 8; i++) {
            uint64_t w = atomic_load_explicit(&e->w[i], memory_order_relaxed);
            size_t k = n - i * 8 < 8 ? n - i * 8 : 8;
            memcpy(buf + i * 8, &w, k);
        }
        uint64_t bits = atomic_load_explicit(&e->value, memory_order_relaxed);
        uint64_t t = atomic_load_explicit(&e->ts_ms, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1)
            continue;
        memcpy(v, &bits, 8);
        *ts_ms = t;
        *len = n;
        return 1;
    }
    return 0;
}
