/* Relative-error quantile sketch; see sketch.h for the guarantees. */
#include "sketch.h"
#include "internal.h"

#include <math.h>
#include <string.h>

/* ln(gamma) for gamma = (1 + a) / (1 - a). */
#define LN_GAMMA 0.020000666706669543 /* log(1.01 / 0.99) */
/* Values at or below this are counted as zero. */
#define MIN_INDEXABLE 1e-9

int32_t sonde__sketch_index(double v) { return (int32_t)ceil(log(v) / LN_GAMMA); }

double sonde__sketch_bin_value(int32_t i)
{
    /* Midpoint (in relative terms) of (gamma^(i-1), gamma^i]. */
    double gamma = exp(LN_GAMMA);
    return 2.0 * exp((double)i * LN_GAMMA) / (gamma + 1.0);
}

int sonde__sketch_init(sonde__sketch *s, uint32_t cap)
{
    memset(s, 0, sizeof *s);
    s->cap = cap ? cap : SONDE_SKETCH_DEFAULT_BINS;
    s->bins = sonde__calloc(s->cap, sizeof *s->bins);
    if (!s->bins)
        return SONDE_ENOMEM;
    sonde__sketch_reset(s);
    return SONDE_OK;
}

void sonde__sketch_free(sonde__sketch *s)
{
    if (!s)
        return;
    sonde__free(s->bins);
    s->bins = NULL;
}

void sonde__sketch_reset(sonde__sketch *s)
{
    if (s->npos)
        memset(s->bins, 0, s->cap * sizeof *s->bins);
    s->npos = s->zero = s->count = 0;
    s->sum = 0;
    s->min = INFINITY;
    s->max = -INFINITY;
    s->offset = s->lo = s->hi = 0;
}

/* Make index k representable, sliding the window; collapses the lowest bins
 * when the span exceeds cap. Returns the position of k in bins. */
static uint32_t make_room(sonde__sketch *s, int32_t k)
{
    int32_t cap = (int32_t)s->cap;
    if (s->npos == 0) {
        s->offset = k - cap / 2;
        s->lo = s->hi = k;
        return (uint32_t)(k - s->offset);
    }
    if (k >= s->offset && k < s->offset + cap) {
        if (k < s->lo)
            s->lo = k;
        if (k > s->hi)
            s->hi = k;
        return (uint32_t)(k - s->offset);
    }
    int32_t new_lo = k < s->lo ? k : s->lo;
    int32_t new_hi = k > s->hi ? k : s->hi;
    if (new_hi - new_lo < cap) {
        /* Fits: re-centre the window on the used range. */
        int32_t new_off = new_lo - (cap - (new_hi - new_lo + 1)) / 2;
        uint64_t *tmp = s->bins;
        int32_t shift = new_off - s->offset;
        if (shift > 0) {
            memmove(tmp, tmp + shift, (size_t)(cap - shift) * sizeof *tmp);
            memset(tmp + cap - shift, 0, (size_t)shift * sizeof *tmp);
        } else if (shift < 0) {
            memmove(tmp - shift, tmp, (size_t)(cap + shift) * sizeof *tmp);
            memset(tmp, 0, (size_t)(-shift) * sizeof *tmp);
        }
        s->offset = new_off;
        s->lo = new_lo;
        s->hi = new_hi;
        return (uint32_t)(k - s->offset);
    }
    if (k < s->lo) {
        /* Too low to fit: count it in the lowest bin. */
        return (uint32_t)(s->lo - s->offset);
    }
    /* k is too high: slide the window up so k is the top bin, folding every
     * bin that falls off the bottom into the new lowest bin. */
    int32_t new_off = k - cap + 1;
    uint64_t folded = 0;
    for (int32_t i = s->lo; i < new_off; i++)
        folded += s->bins[i - s->offset];
    int32_t shift = new_off - s->offset;
    if (shift >= cap) {
        memset(s->bins, 0, (size_t)cap * sizeof *s->bins);
    } else {
        memmove(s->bins, s->bins + shift, (size_t)(cap - shift) * sizeof *s->bins);
        memset(s->bins + cap - shift, 0, (size_t)shift * sizeof *s->bins);
    }
    s->offset = new_off;
    s->bins[0] += folded;
    s->lo = new_off;
    s->hi = k;
    return (uint32_t)(k - s->offset);
}

void sonde__sketch_add_n(sonde__sketch *s, double v, uint64_t n)
{
    if (isnan(v) || n == 0)
        return;
    s->count += n;
    s->sum += v * (double)n;
    if (v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    if (v <= MIN_INDEXABLE) {
        s->zero += n;
        return;
    }
    if (isinf(v))
        v = 1.7e308;
    int32_t k = sonde__sketch_index(v);
    uint32_t pos = make_room(s, k);
    s->bins[pos] += n;
    s->npos += n;
}

void sonde__sketch_add(sonde__sketch *s, double v) { sonde__sketch_add_n(s, v, 1); }

void sonde__sketch_merge(sonde__sketch *dst, const sonde__sketch *src)
{
    if (src->count == 0)
        return;
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->zero += src->zero;
    if (!src->npos)
        return;
    for (int32_t i = src->lo; i <= src->hi; i++) {
        uint64_t c = src->bins[i - src->offset];
        if (!c)
            continue;
        uint32_t pos = make_room(dst, i);
        dst->bins[pos] += c;
        dst->npos += c;
    }
}

double sonde__sketch_quantile(const sonde__sketch *s, double q)
{
    if (s->count == 0 || isnan(q))
        return NAN;
    if (q <= 0)
        return s->min;
    if (q >= 1)
        return s->max;
    /* Rank of the lower of the two neighbours, as "nearest rank". */
    uint64_t rank = (uint64_t)(q * (double)(s->count - 1));
    double v;
    if (rank < s->zero) {
        v = s->min < 0 ? s->min : 0;
    } else {
        uint64_t seen = s->zero;
        v = s->max;
        for (int32_t i = s->lo; i <= s->hi; i++) {
            seen += s->bins[i - s->offset];
            if (seen > rank) {
                v = sonde__sketch_bin_value(i);
                break;
            }
        }
    }
    /* Never answer outside the observed range. */
    if (v < s->min)
        v = s->min;
    if (v > s->max)
        v = s->max;
    return v;
}
