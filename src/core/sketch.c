/* Relative-error quantile sketch; see sketch.h for the guarantees. */
#include "sketch.h"
#include "internal.h"
#include "text.h"

#include <math.h>
#include <string.h>

/* ln(gamma) for gamma = (1 + a) / (1 - a). */
#define LN_GAMMA 0.020000666706669543 /* log(1.01 / 0.99) */
/* Values at or below this are counted as zero. */
#define MIN_INDEXABLE 1e-9

int32_t sonde__sketch_index(double v)
{
    return (int32_t)ceil(log(v) / LN_GAMMA);
}

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
    for (int32_t i = s->lo; i < new_off && i <= s->hi; i++)
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

void sonde__sketch_add(sonde__sketch *s, double v)
{
    sonde__sketch_add_n(s, v, 1);
}

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

/* ---- serialization (see sketch.h for the format) ---- */

/* Largest and smallest bin index whose value is finite and above
 * MIN_INDEXABLE; decoding refuses indexes outside. */
#define CODEC_INDEX_MIN (-1037)
#define CODEC_INDEX_MAX 35480

static size_t put_f64(uint8_t *p, double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(b >> (8 * i));
    return 8;
}

static double get_f64(const uint8_t *p)
{
    uint64_t b = 0;
    for (int i = 0; i < 8; i++)
        b |= (uint64_t)p[i] << (8 * i);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

int sonde__sketch_encode(const sonde__sketch *s, sonde_buf *out)
{
    size_t nonempty = 0;
    if (s->npos)
        for (int32_t i = s->lo; i <= s->hi; i++)
            nonempty += s->bins[i - s->offset] != 0;
    size_t max = SONDE_SKETCH_ENCODED_MAX(nonempty);
    int rc = sonde__buf_reserve(out, max);
    if (rc != SONDE_OK)
        return rc;
    uint8_t *p = (uint8_t *)out->data + out->len;
    size_t n = 0;
    p[n++] = SONDE_SKETCH_CODEC_VERSION;
    n += sonde__put_varint(p + n, s->count);
    n += sonde__put_varint(p + n, s->zero);
    n += put_f64(p + n, s->sum);
    n += put_f64(p + n, s->min);
    n += put_f64(p + n, s->max);
    n += sonde__put_varint(p + n, nonempty);
    int first = 1;
    int32_t prev = 0;
    if (s->npos) {
        for (int32_t i = s->lo; i <= s->hi; i++) {
            uint64_t c = s->bins[i - s->offset];
            if (!c)
                continue;
            uint64_t step;
            if (first)
                step = i < 0 ? ((uint64_t)(-(int64_t)i) << 1) - 1 : (uint64_t)i << 1;
            else
                step = (uint64_t)(i - prev - 1);
            first = 0;
            prev = i;
            n += sonde__put_varint(p + n, step);
            n += sonde__put_varint(p + n, c);
        }
    }
    out->len += n;
    out->data[out->len] = '\0';
    return SONDE_OK;
}

/* Walk the bins of an encoding, calling fn for each (when fn is non-NULL).
 * Returns 0 when the encoding is valid, -1 otherwise. */
static int walk_bins(const uint8_t *p, size_t n, uint64_t k, uint64_t expect,
                     void (*fn)(sonde__sketch *, int32_t, uint64_t), sonde__sketch *s)
{
    size_t at = 0;
    int64_t idx = 0;
    uint64_t total = 0;
    for (uint64_t b = 0; b < k; b++) {
        uint64_t step, c;
        size_t r = sonde__get_varint(p + at, n - at, &step);
        if (!r)
            return -1;
        at += r;
        r = sonde__get_varint(p + at, n - at, &c);
        if (!r || c == 0)
            return -1;
        at += r;
        if (b == 0) {
            if (step > 2 * (uint64_t)CODEC_INDEX_MAX + 2)
                return -1;
            idx = (step & 1) ? -(int64_t)((step + 1) >> 1) : (int64_t)(step >> 1);
        } else {
            if (step > (uint64_t)(CODEC_INDEX_MAX - CODEC_INDEX_MIN))
                return -1;
            idx += (int64_t)step + 1;
        }
        if (idx < CODEC_INDEX_MIN || idx > CODEC_INDEX_MAX)
            return -1;
        if (c > expect - total)
            return -1;
        total += c;
        if (fn)
            fn(s, (int32_t)idx, c);
    }
    if (at != n || total != expect)
        return -1;
    return 0;
}

static void add_bin(sonde__sketch *s, int32_t i, uint64_t c)
{
    uint32_t pos = make_room(s, i);
    s->bins[pos] += c;
    s->npos += c;
}

int sonde__sketch_decode(sonde__sketch *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t at = 0, r;
    uint64_t count, zero, k;
    if (n < 1 || p[0] != SONDE_SKETCH_CODEC_VERSION)
        return SONDE_EPARSE;
    at = 1;
    if (!(r = sonde__get_varint(p + at, n - at, &count)))
        return SONDE_EPARSE;
    at += r;
    if (!(r = sonde__get_varint(p + at, n - at, &zero)))
        return SONDE_EPARSE;
    at += r;
    if (n - at < 24)
        return SONDE_EPARSE;
    double sum = get_f64(p + at), mn = get_f64(p + at + 8), mx = get_f64(p + at + 16);
    at += 24;
    if (!(r = sonde__get_varint(p + at, n - at, &k)))
        return SONDE_EPARSE;
    at += r;
    if (zero > count || k > (n - at) / 2 || k > count - zero)
        return SONDE_EPARSE;
    if (isnan(sum) || isnan(mn) || isnan(mx))
        return SONDE_EPARSE;
    if (count == 0) {
        if (sum != 0 || k != 0)
            return SONDE_EPARSE;
    } else if (!(mn <= mx)) {
        return SONDE_EPARSE;
    }
    /* A merge must not overflow the destination's counters. */
    if (count > UINT64_MAX - s->count)
        return SONDE_EPARSE;
    if (walk_bins(p + at, n - at, k, count - zero, NULL, NULL) != 0)
        return SONDE_EPARSE;
    if (count == 0)
        return SONDE_OK;
    walk_bins(p + at, n - at, k, count - zero, add_bin, s);
    s->count += count;
    s->zero += zero;
    s->sum += sum;
    if (mn < s->min)
        s->min = mn;
    if (mx > s->max)
        s->max = mx;
    return SONDE_OK;
}
