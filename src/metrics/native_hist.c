/*
 * Native (exponential) histograms: setup, bucket tables and the scrape
 * snapshot. The hot path is sonde__native_observe in metrics_int.h; it
 * counts into the same per-thread cells as classic histograms (a window of
 * bucket indexes at the family's schema, fixed per series), so an
 * observation is a table lookup and two plain adds on memory only the
 * calling thread writes. The bucket limit is applied when the histogram is
 * read: buckets are merged pairwise (schema - 1) until they fit.
 */
#include "metrics_int.h"

#include <math.h>

/* The window: |v| in [2^-40, 2^40) at full resolution. */
#define NAT_EXP 40
#define NAT_DEFAULT_MAX_BUCKETS 160

static struct sonde__nat_table tables[9];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    for (int s = 1; s <= 8; s++) {
        struct sonde__nat_table *t = &tables[s];
        int nb = 1 << s;
        for (unsigned sl = 0; sl < 1024; sl++) {
            t->cnt[sl] = 0;
            t->bnd[sl] = ~(uint64_t)0;
        }
        /* Boundary k is 2^(k/2^s) in [1,2); its mantissa bits decide the
         * slice. Slices are 1/1024 wide and boundaries at least
         * 2^(1/256)-1 > 1/1024 apart, so a slice holds at most one. */
        uint64_t mants[256];
        for (int k = 0; k < nb; k++) {
            double b = exp2((double)k / nb);
            uint64_t bits;
            memcpy(&bits, &b, 8);
            mants[k] = k == 0 ? 0 : bits & 0xfffffffffffffull;
        }
        for (unsigned sl = 0; sl < 1024; sl++) {
            uint64_t lo = (uint64_t)sl << 42, hi = (uint64_t)(sl + 1) << 42;
            uint16_t below = 0;
            for (int k = 0; k < nb; k++) {
                if (mants[k] < lo)
                    below++;
                else if (mants[k] < hi)
                    t->bnd[sl] = mants[k];
            }
            t->cnt[sl] = below;
        }
    }
}

static int32_t idx_of_exp(int s, int32_t i0)
{
    /* Bucket index at schema s of the power-of-two boundary 2^i0. */
    if (s >= 0)
        return i0 * (1 << s);
    int n = -s;
    return (i0 + (1 << n) - 1) >> n;
}

int sonde__native_setup(struct sonde_family *f, const sonde_metric_opts *o)
{
    double factor = o->native_bucket_factor;
    if (!(factor > 1) || !isfinite(factor)) {
        sonde__set_error("histogram \"%s\": native_bucket_factor must be a finite number > 1",
                         f->name);
        return SONDE_EINVAL;
    }
    if (o->native_zero_threshold < 0 || !isfinite(o->native_zero_threshold)) {
        sonde__set_error("histogram \"%s\": native_zero_threshold must be finite and >= 0",
                         f->name);
        return SONDE_EINVAL;
    }
    /* The coarsest schema whose growth 2^(2^-s) does not exceed the
     * factor (finer ones only cost buckets). */
    int s = -4;
    while (s < 8 && exp2(exp2(-s)) > factor * (1 + 1e-12))
        s++;
    pthread_once(&tables_once, tables_init);
    f->native = 1;
    f->nat_schema = s;
    f->nat_table = s > 0 ? &tables[s] : NULL;
    f->nat_lo = idx_of_exp(s, -NAT_EXP);
    f->nat_hi = idx_of_exp(s, NAT_EXP);
    f->nat_width = (uint32_t)(f->nat_hi - f->nat_lo + 1);
    double zt = o->native_zero_threshold;
    double minzt = exp2(-NAT_EXP);
    f->nat_zero_threshold = zt > minzt ? zt : minzt;
    memcpy(&f->nat_zero_bits, &f->nat_zero_threshold, 8);
    f->nat_max_buckets = o->native_max_buckets ? o->native_max_buckets : NAT_DEFAULT_MAX_BUCKETS;
    /* Cells: [classic buckets nb+1][sum][zero][nan][positive][negative];
     * without classic buckets: [sum][zero][nan][positive][negative]. */
    f->nat_base = f->nb ? (uint32_t)f->nb + 2 : 1;
    f->cells_per_series = f->nat_base + 2 + 2 * f->nat_width;
    return SONDE_OK;
}

/* Collect populated cells of one sign into (index, count) pairs. */
static size_t collect(const uint64_t *cells, uint32_t w, int32_t lo, int32_t *idx, uint64_t *cnt)
{
    size_t n = 0;
    for (uint32_t i = 0; i < w; i++)
        if (cells[i]) {
            idx[n] = lo + (int32_t)i;
            cnt[n++] = cells[i];
        }
    return n;
}

/* One schema down: bucket i becomes ceil(i/2); neighbours merge. */
static size_t halve(int32_t *idx, uint64_t *cnt, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t ni = (idx[i] + 1) >> 1;
        if (o && idx[o - 1] == ni) {
            cnt[o - 1] += cnt[i];
        } else {
            idx[o] = ni;
            cnt[o++] = cnt[i];
        }
    }
    return o;
}

int sonde__native_snapshot(const struct sonde_family *f, const sonde_series *s,
                           struct sonde__nat_snapshot *out)
{
    memset(out, 0, sizeof *out);
    uint32_t w = f->nat_width;
    uint32_t base = __atomic_load_n(&s->slot, __ATOMIC_RELAXED) + f->nat_base;
    uint64_t *cells = sonde__malloc((2 * (size_t)w + 2) * sizeof *cells);
    out->pos_idx = sonde__malloc(w * sizeof(int32_t));
    out->neg_idx = sonde__malloc(w * sizeof(int32_t));
    out->pos_cnt = sonde__malloc(w * sizeof(uint64_t));
    out->neg_cnt = sonde__malloc(w * sizeof(uint64_t));
    if (!cells || !out->pos_idx || !out->neg_idx || !out->pos_cnt || !out->neg_cnt) {
        sonde__free(cells);
        sonde__native_snapshot_free(out);
        return SONDE_ENOMEM;
    }
    sonde__cells_sum_u64_n(base, 2 * w + 2, cells);
    out->sum = sonde__cells_sum_f64(base - 1);
    out->zero_count = cells[0];
    out->count = cells[0] + cells[1];
    for (uint32_t i = 0; i < 2 * w; i++)
        out->count += cells[2 + i];
    out->zero_threshold = f->nat_zero_threshold;
    out->npos = collect(cells + 2, w, f->nat_lo, out->pos_idx, out->pos_cnt);
    out->nneg = collect(cells + 2 + w, w, f->nat_lo, out->neg_idx, out->neg_cnt);
    sonde__free(cells);
    out->schema = f->nat_schema;
    while (out->npos + out->nneg > f->nat_max_buckets && out->schema > -4) {
        out->npos = halve(out->pos_idx, out->pos_cnt, out->npos);
        out->nneg = halve(out->neg_idx, out->neg_cnt, out->nneg);
        out->schema--;
    }
    return SONDE_OK;
}

void sonde__native_snapshot_free(struct sonde__nat_snapshot *snap)
{
    sonde__free(snap->pos_idx);
    sonde__free(snap->neg_idx);
    sonde__free(snap->pos_cnt);
    sonde__free(snap->neg_cnt);
    snap->pos_idx = snap->neg_idx = NULL;
    snap->pos_cnt = snap->neg_cnt = NULL;
}
