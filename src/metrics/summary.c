/*
 * Summaries: _sum and _count in per-thread cells like counters, quantiles
 * from a ring of relative-error sketches covering the sliding window
 * max_age, split into age_buckets parts. Observing takes a per-series
 * spinlock (no allocation); a scrape merges the live parts.
 */
#include "metrics_int.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Each summary sketch keeps 512 bins: values within a factor of 2.7e4 of
 * each other keep the 1% bound (e.g. 50 us to 1.3 s). */
#define SUMMARY_BINS 512

struct summary_state {
    sonde__spin lock;
    unsigned n;        /* age buckets */
    uint64_t width_ns; /* time each bucket covers */
    uint64_t epoch;    /* index of the bucket period currently written */
    sonde__sketch parts[];
};

static uint64_t coarse_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

summary_state *sonde__summary_new(const struct sonde_family *f)
{
    unsigned n = f->nq ? f->age_buckets : 0;
    summary_state *st = sonde__calloc(1, sizeof *st + n * sizeof(sonde__sketch));
    if (!st)
        return NULL;
    st->n = n;
    double w = f->max_age / (n ? n : 1) * 1e9;
    st->width_ns = w < 1e6 ? 1000000u : (uint64_t)w;
    st->epoch = coarse_now_ns() / st->width_ns;
    for (unsigned i = 0; i < n; i++) {
        if (sonde__sketch_init(&st->parts[i], SUMMARY_BINS) != SONDE_OK) {
            for (unsigned j = 0; j < i; j++)
                sonde__sketch_free(&st->parts[j]);
            sonde__free(st);
            return NULL;
        }
    }
    return st;
}

void sonde__summary_free(summary_state *st)
{
    if (!st)
        return;
    for (unsigned i = 0; i < st->n; i++)
        sonde__sketch_free(&st->parts[i]);
    sonde__free(st);
}

/* Under the lock: clear the parts whose period has passed. */
static void rotate(summary_state *st, uint64_t now_epoch)
{
    if (now_epoch <= st->epoch)
        return;
    uint64_t gap = now_epoch - st->epoch;
    if (gap >= st->n) {
        for (unsigned i = 0; i < st->n; i++)
            sonde__sketch_reset(&st->parts[i]);
    } else {
        for (uint64_t e = st->epoch + 1; e <= now_epoch; e++)
            sonde__sketch_reset(&st->parts[e % st->n]);
    }
    st->epoch = now_epoch;
}

void sonde_summary_observe(sonde_summary *h, double v)
{
    sonde_series *s = (sonde_series *)(void *)h;
    uint64_t *cells = sonde__tls_cells;
    if (SONDE_UNLIKELY(!cells)) {
        cells = sonde__cells_acquire();
        if (!cells)
            return;
    }
    uint32_t slot = __atomic_load_n(&s->slot, __ATOMIC_RELAXED);
    SONDE__CELL_ADD_U64(&cells[slot], 1);
    SONDE__CELL_ADD_F64(&cells[slot + 1], v);
    SONDE__TOUCH(s);
    summary_state *st = s->u.summary;
    if (!st || st->n == 0)
        return;
    uint64_t e = coarse_now_ns() / st->width_ns;
    sonde__spin_lock(&st->lock);
    rotate(st, e);
    sonde__sketch_add(&st->parts[e % st->n], v);
    sonde__spin_unlock(&st->lock);
}

void sonde__summary_snapshot(summary_state *st, const struct sonde_family *f, double *out,
                             uint64_t *count, double *sum)
{
    SONDE_UNUSED(count);
    SONDE_UNUSED(sum);
    for (size_t i = 0; i < f->nq; i++)
        out[i] = NAN;
    if (!st || st->n == 0 || f->nq == 0)
        return;
    sonde__sketch merged;
    if (sonde__sketch_init(&merged, SUMMARY_BINS * 2) != SONDE_OK)
        return;
    sonde__spin_lock(&st->lock);
    rotate(st, coarse_now_ns() / st->width_ns);
    for (unsigned i = 0; i < st->n; i++)
        sonde__sketch_merge(&merged, &st->parts[i]);
    sonde__spin_unlock(&st->lock);
    for (size_t i = 0; i < f->nq; i++)
        out[i] = sonde__sketch_quantile(&merged, f->quantiles[i]);
    sonde__sketch_free(&merged);
}

uint64_t sonde_summary_get_count(const sonde_summary *h)
{
    const sonde_series *s = (const sonde_series *)(const void *)h;
    uint32_t slot = s ? __atomic_load_n(&s->slot, __ATOMIC_RELAXED) : 0;
    return slot >= SONDE__SINK_SLOTS ? sonde__cells_sum_u64(slot) : 0;
}

double sonde_summary_get_sum(const sonde_summary *h)
{
    const sonde_series *s = (const sonde_series *)(const void *)h;
    uint32_t slot = s ? __atomic_load_n(&s->slot, __ATOMIC_RELAXED) : 0;
    return slot >= SONDE__SINK_SLOTS ? sonde__cells_sum_f64(slot + 1) : 0;
}

double sonde_summary_get_quantile(const sonde_summary *h, double q)
{
    const sonde_series *s = (const sonde_series *)(const void *)h;
    if (!s || !s->u.summary || s->u.summary->n == 0)
        return NAN;
    summary_state *st = s->u.summary;
    sonde__sketch merged;
    if (sonde__sketch_init(&merged, SUMMARY_BINS * 2) != SONDE_OK)
        return NAN;
    sonde__spin_lock(&st->lock);
    rotate(st, coarse_now_ns() / st->width_ns);
    for (unsigned i = 0; i < st->n; i++)
        sonde__sketch_merge(&merged, &st->parts[i]);
    sonde__spin_unlock(&st->lock);
    double v = sonde__sketch_quantile(&merged, q);
    sonde__sketch_free(&merged);
    return v;
}
