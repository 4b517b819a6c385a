/*
 * Protobuf exposition: the delimited stream of io.prometheus.client
 * MetricFamily messages (each a varint length, then the message), written
 * by hand straight into the output buffer. A nested message reserves one
 * length byte and is shifted in the rare case its length needs more.
 *
 * Field numbers follow the published metrics.proto:
 *   MetricFamily{name=1 help=2 type=3 metric=4 unit=5}
 *   Metric{label=1 gauge=2 counter=3 summary=4 untyped=5 histogram=7}
 *   LabelPair{name=1 value=2}  Gauge/Untyped{value=1}  Counter{value=1}
 *   Summary{sample_count=1 sample_sum=2 quantile=3}  Quantile{quantile=1 value=2}
 *   Histogram{sample_count=1 sample_sum=2 bucket=3 schema=5 zero_threshold=6
 *     zero_count=7 negative_span=9 negative_delta=10 positive_span=12
 *     positive_delta=13}  Bucket{cumulative_count=1 upper_bound=2}
 *   BucketSpan{offset=1 length=2}
 * tests/integration/test_protobuf.sh decodes every message with that schema.
 */
#include "expose_int.h"

#include <math.h>
#include <string.h>

void sonde__pb_raw(sonde__pb *p, const void *d, size_t n)
{
    if (p->rc == SONDE_OK)
        p->rc = sonde__buf_append(p->b, d, n);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void sonde__pb_varint(sonde__pb *p, uint64_t v)
{
    uint8_t tmp[10];
    sonde__pb_raw(p, tmp, sonde__put_varint(tmp, v));
}

static void tag(sonde__pb *p, unsigned field, unsigned wire)
{
    sonde__pb_varint(p, ((uint64_t)field << 3) | wire);
}

void sonde__pb_uint(sonde__pb *p, unsigned field, uint64_t v)
{
    tag(p, field, 0);
    sonde__pb_varint(p, v);
}

void sonde__pb_sint(sonde__pb *p, unsigned field, int64_t v)
{
    tag(p, field, 0);
    sonde__pb_varint(p, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void sonde__pb_double(sonde__pb *p, unsigned field, double v)
{
    uint8_t tmp[9];
    tmp[0] = (uint8_t)((field << 3) | 1);
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++)
        tmp[1 + i] = (uint8_t)(bits >> (8 * i));
    if (field < 16)
        sonde__pb_raw(p, tmp, 9);
    else {
        tag(p, field, 1);
        sonde__pb_raw(p, tmp + 1, 8);
    }
}

void sonde__pb_str(sonde__pb *p, unsigned field, const char *s, size_t n)
{
    tag(p, field, 2);
    sonde__pb_varint(p, n);
    sonde__pb_raw(p, s, n);
}

size_t sonde__pb_open(sonde__pb *p, unsigned field)
{
    if (field)
        tag(p, field, 2);
    sonde__pb_raw(p, "", 1); /* one length byte, fixed up at close */
    return p->rc == SONDE_OK ? p->b->len - 1 : 0;
}

void sonde__pb_close(sonde__pb *p, size_t mark)
{
    if (p->rc != SONDE_OK)
        return;
    size_t len = p->b->len - mark - 1;
    size_t vl = varint_len(len);
    if (vl > 1) {
        if ((p->rc = sonde__buf_reserve(p->b, vl - 1)) != SONDE_OK)
            return;
        memmove(p->b->data + mark + vl, p->b->data + mark + 1, len);
        p->b->len += vl - 1;
        p->b->data[p->b->len] = '\0';
    }
    sonde__put_varint((uint8_t *)p->b->data + mark, len);
}

void sonde__pb_label(sonde__pb *p, const char *name, const char *value, size_t vn)
{
    size_t m = sonde__pb_open(p, 1);
    sonde__pb_str(p, 1, name, strlen(name));
    sonde__pb_str(p, 2, value, vn);
    sonde__pb_close(p, m);
}

/* Labels of series s: constant ones, then the family's. */
static void series_labels(sonde__pb *p, const struct sonde_family *f, const sonde_series *s)
{
    for (size_t i = 0; i < f->nconst; i++)
        sonde__pb_label(p, f->const_kv[2 * i], f->const_kv[2 * i + 1],
                        strlen(f->const_kv[2 * i + 1]));
    if (!s)
        return;
    const char *v = s->data;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t vn = strlen(v);
        sonde__pb_label(p, f->label_names[i], v, vn);
        v += vn + 1;
    }
}

/* An Exemplar message in field `field`, when the slot holds one. */
static void pb_exemplar(sonde__pb *p, unsigned field, const struct sonde__exemplar *e)
{
    char blob[SONDE__EX_WORDS * 8];
    size_t len;
    double v;
    uint64_t ts;
    if (!sonde__exemplar_read(e, blob, sizeof blob, &len, &v, &ts))
        return;
    size_t m = sonde__pb_open(p, field);
    for (size_t i = 0; i < len;) {
        const char *k = blob + i;
        size_t kl = strnlen(k, len - i);
        const char *val = k + kl + 1;
        if (kl + 1 >= len - i)
            break;
        size_t vl = strnlen(val, len - i - kl - 1);
        sonde__pb_label(p, k, val, vl);
        i += kl + vl + 2;
    }
    sonde__pb_double(p, 2, v);
    size_t t = sonde__pb_open(p, 3);
    if (ts / 1000)
        sonde__pb_uint(p, 1, ts / 1000);
    if (ts % 1000)
        sonde__pb_uint(p, 2, (ts % 1000) * 1000000);
    sonde__pb_close(p, t);
    sonde__pb_close(p, m);
}

/* A google.protobuf.Timestamp in `field`: the series' creation time, when
 * created timestamps are on. */
static void pb_created(sonde__pb *p, unsigned field, const sonde_series *s)
{
    if (!p->created || !s)
        return;
    size_t t = sonde__pb_open(p, field);
    sonde__pb_uint(p, 1, s->created_ms / 1000);
    sonde__pb_uint(p, 2, (s->created_ms % 1000) * 1000000u);
    sonde__pb_close(p, t);
}

static void value_metric(sonde__pb *p, const struct sonde_family *f, const sonde_series *s,
                         unsigned field, double v)
{
    size_t m = sonde__pb_open(p, 4);
    series_labels(p, f, s);
    size_t g = sonde__pb_open(p, field);
    sonde__pb_double(p, 1, v);
    if (field == 3 && s && s->ex)
        pb_exemplar(p, 2, &s->ex->slot[0]);
    if (field == 3)
        pb_created(p, 3, s);
    sonde__pb_close(p, g);
    sonde__pb_close(p, m);
}

/* Spans and deltas of one sign. */
static void native_side(sonde__pb *p, unsigned span_field, unsigned delta_field, const int32_t *idx,
                        const uint64_t *cnt, size_t n)
{
    size_t i = 0;
    int32_t prev_end = 0; /* index after the previous span */
    while (i < n) {
        size_t j = i + 1;
        while (j < n && idx[j] == idx[j - 1] + 1)
            j++;
        size_t m = sonde__pb_open(p, span_field);
        sonde__pb_sint(p, 1, i == 0 ? idx[i] : idx[i] - prev_end);
        sonde__pb_uint(p, 2, (uint64_t)(j - i));
        sonde__pb_close(p, m);
        prev_end = idx[j - 1] + 1;
        i = j;
    }
    if (n == 0)
        return;
    size_t m = sonde__pb_open(p, delta_field); /* packed sint64 */
    uint64_t prev = 0;
    for (i = 0; i < n; i++) {
        int64_t d = (int64_t)(cnt[i] - prev);
        sonde__pb_varint(p, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
        prev = cnt[i];
    }
    sonde__pb_close(p, m);
}

static void histogram_metric(sonde__pb *p, const struct sonde_family *f, const sonde_series *s)
{
    size_t m = sonde__pb_open(p, 4);
    series_labels(p, f, s);
    size_t h = sonde__pb_open(p, 7);
    uint64_t cum[SONDE_MAX_BUCKETS + 1];
    uint64_t count = 0;
    double sum = 0;
    if (f->nb) {
        sonde__cells_sum_u64_n(s->slot, (uint32_t)f->nb + 1, cum);
        for (size_t i = 1; i <= f->nb; i++)
            cum[i] += cum[i - 1];
        count = cum[f->nb];
        sum = sonde__cells_sum_f64(s->slot + (uint32_t)f->nb + 1);
    }
    struct sonde__nat_snapshot ns;
    int have_native = 0;
    if (f->native) {
        if (sonde__native_snapshot(f, s, &ns) == SONDE_OK) {
            have_native = 1;
            if (!f->nb) {
                count = ns.count;
                sum = ns.sum;
            }
        } else {
            p->rc = SONDE_ENOMEM;
        }
    }
    sonde__pb_uint(p, 1, count);
    sonde__pb_double(p, 2, sum);
    for (size_t i = 0; i < f->nb; i++) {
        size_t b = sonde__pb_open(p, 3);
        sonde__pb_uint(p, 1, cum[i]);
        sonde__pb_double(p, 2, f->bounds[i]);
        if (s->ex)
            pb_exemplar(p, 3, &s->ex->slot[i]);
        sonde__pb_close(p, b);
    }
    if (f->nb && s->ex && atomic_load_explicit(&s->ex->slot[f->nb].seq, memory_order_relaxed)) {
        /* The +Inf bucket is implicit, unless it carries an exemplar. */
        size_t b = sonde__pb_open(p, 3);
        sonde__pb_uint(p, 1, count);
        sonde__pb_double(p, 2, INFINITY);
        pb_exemplar(p, 3, &s->ex->slot[f->nb]);
        sonde__pb_close(p, b);
    }
    if (have_native) {
        sonde__pb_sint(p, 5, ns.schema);
        sonde__pb_double(p, 6, ns.zero_threshold);
        sonde__pb_uint(p, 7, ns.zero_count);
        native_side(p, 9, 10, ns.neg_idx, ns.neg_cnt, ns.nneg);
        if (ns.npos == 0) {
            /* The no-op span marks a native histogram with no buckets. */
            size_t sp = sonde__pb_open(p, 12);
            sonde__pb_close(p, sp);
        }
        native_side(p, 12, 13, ns.pos_idx, ns.pos_cnt, ns.npos);
        sonde__native_snapshot_free(&ns);
        /* Native exemplars (newer scrapers read these; older ones use
         * the classic buckets' exemplars). */
        for (uint32_t i = 0; s->ex && i < s->ex->n; i++)
            pb_exemplar(p, 16, &s->ex->slot[i]);
    }
    pb_created(p, 15, s);
    sonde__pb_close(p, h);
    sonde__pb_close(p, m);
}

static void summary_metric(sonde__pb *p, const struct sonde_family *f, const sonde_series *s)
{
    double qv[SONDE_MAX_QUANTILES];
    sonde__summary_snapshot(s->u.summary, f, qv, NULL, NULL);
    size_t m = sonde__pb_open(p, 4);
    series_labels(p, f, s);
    size_t sm = sonde__pb_open(p, 4);
    sonde__pb_uint(p, 1, sonde__cells_sum_u64(s->slot));
    sonde__pb_double(p, 2, sonde__cells_sum_f64(s->slot + 1));
    for (size_t i = 0; i < f->nq; i++) {
        size_t q = sonde__pb_open(p, 3);
        sonde__pb_double(p, 1, f->quantiles[i]);
        sonde__pb_double(p, 2, qv[i]);
        sonde__pb_close(p, q);
    }
    pb_created(p, 4, s);
    sonde__pb_close(p, sm);
    sonde__pb_close(p, m);
}

size_t sonde__pb_family_open(sonde__pb *p, const char *name, const char *help, const char *unit,
                             int type)
{
    size_t fam = sonde__pb_open(p, 0);
    sonde__pb_str(p, 1, name, strlen(name));
    if (help && *help)
        sonde__pb_str(p, 2, help, strlen(help));
    sonde__pb_uint(p, 3, (uint64_t)type);
    if (unit && *unit)
        sonde__pb_str(p, 5, unit, strlen(unit));
    return fam;
}

int sonde__pb_type(sonde_metric_type t)
{
    switch (t) {
    case SONDE_COUNTER:
        return SONDE__PB_COUNTER;
    case SONDE_GAUGE:
    case SONDE_INFO:
    case SONDE_STATESET:
        return SONDE__PB_GAUGE;
    case SONDE_SUMMARY:
        return SONDE__PB_SUMMARY;
    case SONDE_HISTOGRAM:
        return SONDE__PB_HISTOGRAM;
    default:
        return SONDE__PB_UNTYPED;
    }
}

void sonde__pb_write_family(sonde__pb *p, struct sonde_family *f)
{
    size_t fam = sonde__pb_family_open(p, f->name, f->help, f->unit, sonde__pb_type(f->type));
    if (f->cb) {
        unsigned field = f->type == SONDE_COUNTER ? 3 : f->type == SONDE_GAUGE ? 2 : 5;
        value_metric(p, f, NULL, field, f->cb(f->cb_ud));
        sonde__pb_close(p, fam);
        return;
    }
    struct sonde_family *real = f->base ? f->base : f; /* views share the series */
    pthread_mutex_lock(&real->lock);
    for (sonde_series *s = real->head; s && p->rc == SONDE_OK; s = s->next) {
        switch (f->type) {
        case SONDE_COUNTER:
            value_metric(p, f, s, 3, sonde__counter_value(s));
            break;
        case SONDE_GAUGE:
            value_metric(p, f, s, 2, sonde_gauge_get((const sonde_gauge *)(const void *)s));
            break;
        case SONDE_UNTYPED:
            value_metric(p, f, s, 5, sonde_gauge_get((const sonde_gauge *)(const void *)s));
            break;
        case SONDE_INFO:
            value_metric(p, f, s, 2, 1);
            break;
        case SONDE_HISTOGRAM:
            histogram_metric(p, f, s);
            break;
        case SONDE_SUMMARY:
            summary_metric(p, f, s);
            break;
        case SONDE_STATESET: {
            size_t cur = (size_t)atomic_load_explicit(&s->u.gauge, memory_order_relaxed);
            for (size_t i = 0; i < f->nstates; i++) {
                size_t m = sonde__pb_open(p, 4);
                series_labels(p, f, s);
                sonde__pb_label(p, f->state_label ? f->state_label : f->name, f->states[i],
                                strlen(f->states[i]));
                size_t g = sonde__pb_open(p, 2);
                sonde__pb_double(p, 1, i == cur ? 1 : 0);
                sonde__pb_close(p, g);
                sonde__pb_close(p, m);
            }
            break;
        }
        }
    }
    pthread_mutex_unlock(&real->lock);
    sonde__pb_close(p, fam);
}
