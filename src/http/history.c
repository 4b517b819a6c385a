/*
 * The dashboard's in-process history (history.h). Tracks are found by the
 * hash of "name\x01labels-json" with a linear probe table; a sample walks
 * the registry under its read lock and each family under its lock (as a
 * scrape does), so it never blocks the hot path.
 */
#include "http/history.h"

#include "metrics/metrics_int.h"
#include "core/worker.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum field { F_VALUE, F_COUNT, F_SUM, F_P50, F_P95, F_P99, F_NFIELDS };
static const char *const field_names[F_NFIELDS] = {"value", "count", "sum", "p50", "p95", "p99"};

typedef struct track {
    char *key;    /* name \x01 labels JSON \x01 field */
    char *name;   /* family name (points into key's copy) */
    char *labels; /* JSON object text */
    const char *type;
    int field;
    uint64_t hash;
    uint64_t *prev; /* histograms' p50 track: previous cumulative buckets */
    size_t nprev;
    double values[SONDE__HISTORY_POINTS];
} track;

#define TABLE_SLOTS 2048 /* > 2 * SONDE__HISTORY_TRACKS: probes stay short */

struct sonde__history {
    sonde_registry *reg;
    uint32_t interval_ms;
    uint64_t timer;
    pthread_mutex_t lock;
    double ts[SONDE__HISTORY_POINTS];
    size_t head;  /* next point to write */
    size_t count; /* points held */
    uint32_t seq; /* samples taken */
    track *tracks[SONDE__HISTORY_TRACKS];
    size_t ntracks;
    int16_t table[TABLE_SLOTS]; /* track index + 1; 0 empty */
    sonde_counter *dropped;
    _Atomic uint64_t ndropped;
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *type_name(sonde_metric_type t)
{
    switch (t) {
    case SONDE_COUNTER:
        return "counter";
    case SONDE_GAUGE:
        return "gauge";
    case SONDE_HISTOGRAM:
        return "histogram";
    case SONDE_SUMMARY:
        return "summary";
    case SONDE_STATESET:
        return "stateset";
    default:
        return "untyped";
    }
}

/* The labels of series s of family f as a JSON object, into b. */
static int labels_json(sonde_buf *b, const struct sonde_family *f, const sonde_series *s)
{
    int rc = sonde__buf_putc(b, '{');
    bool first = true;
    for (size_t i = 0; i < f->nconst && rc == SONDE_OK; i++, first = false) {
        if (!first)
            rc = sonde__buf_putc(b, ',');
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(b, f->const_kv[2 * i]);
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(b, ':');
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(b, f->const_kv[2 * i + 1]);
    }
    const char *p = s->data;
    for (size_t i = 0; i < f->nlabels && rc == SONDE_OK; i++, first = false) {
        if (!first)
            rc = sonde__buf_putc(b, ',');
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(b, f->label_names[i]);
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(b, ':');
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(b, p);
        p += strlen(p) + 1;
    }
    if (rc == SONDE_OK)
        rc = sonde__buf_putc(b, '}');
    return rc;
}

/* Find or create the track of (name, labels, field); NULL when the table
 * is full (counted) or memory ran out. Under h->lock. */
static track *track_get(sonde__history *h, const char *name, const char *labels, int field,
                        const char *type, sonde_buf *kb)
{
    kb->len = 0;
    if (sonde__buf_puts(kb, name) || sonde__buf_putc(kb, '\x01') || sonde__buf_puts(kb, labels) ||
        sonde__buf_putc(kb, '\x01') || sonde__buf_puts(kb, field_names[field]))
        return NULL;
    uint64_t hv = fnv(kb->data, kb->len);
    size_t i = (size_t)hv & (TABLE_SLOTS - 1);
    for (;;) {
        int16_t e = h->table[i];
        if (!e)
            break;
        track *t = h->tracks[e - 1];
        if (t->hash == hv && strlen(t->key) == kb->len && memcmp(t->key, kb->data, kb->len) == 0)
            return t;
        i = (i + 1) & (TABLE_SLOTS - 1);
    }
    if (h->ntracks >= SONDE__HISTORY_TRACKS) {
        atomic_fetch_add(&h->ndropped, 1);
        if (h->dropped)
            sonde_counter_inc(h->dropped);
        return NULL;
    }
    track *t = sonde__calloc(1, sizeof *t);
    size_t nl = strlen(name), ll = strlen(labels);
    char *key = sonde__malloc(kb->len + 1 + nl + 1 + ll + 1);
    if (!t || !key) {
        sonde__free(t);
        sonde__free(key);
        return NULL;
    }
    memcpy(key, kb->data, kb->len);
    key[kb->len] = '\0';
    t->key = key;
    t->name = key + kb->len + 1;
    memcpy(t->name, name, nl + 1);
    t->labels = t->name + nl + 1;
    memcpy(t->labels, labels, ll + 1);
    t->type = type;
    t->field = field;
    t->hash = hv;
    for (size_t k = 0; k < SONDE__HISTORY_POINTS; k++)
        t->values[k] = NAN;
    h->tracks[h->ntracks++] = t;
    h->table[i] = (int16_t)h->ntracks;
    return t;
}

static void put(track *t, size_t slot, double v)
{
    if (t)
        t->values[slot] = v;
}

/* Quantile q of the observations between two cumulative bucket snapshots,
 * interpolated linearly inside the bucket as Prometheus'
 * histogram_quantile does; NaN when nothing was observed. */
static double bucket_quantile(double q, const double *bounds, size_t nb, const uint64_t *now,
                              const uint64_t *prev)
{
    uint64_t total = now[nb] - prev[nb];
    if (total == 0 || now[nb] < prev[nb])
        return NAN;
    double rank = q * (double)total;
    for (size_t i = 0; i <= nb; i++) {
        double c = (double)(now[i] - prev[i]);
        if (c >= rank) {
            if (i == nb)
                return nb ? bounds[nb - 1] : NAN;
            double lo = i ? bounds[i - 1] : (bounds[0] > 0 ? 0 : bounds[0]);
            double below = i ? (double)(now[i - 1] - prev[i - 1]) : 0;
            double in = c - below;
            return in > 0 ? lo + (bounds[i] - lo) * (rank - below) / in : bounds[i];
        }
    }
    return NAN;
}

static void sample_series(sonde__history *h, struct sonde_family *f, sonde_series *s, size_t slot,
                          sonde_buf *lb, sonde_buf *kb)
{
    lb->len = 0;
    if (labels_json(lb, f, s) != SONDE_OK)
        return;
    const char *ty = type_name(f->type);
    switch (f->type) {
    case SONDE_COUNTER:
        put(track_get(h, f->name, lb->data, F_VALUE, ty, kb), slot, sonde__counter_value(s));
        break;
    case SONDE_GAUGE:
    case SONDE_UNTYPED:
        put(track_get(h, f->name, lb->data, F_VALUE, ty, kb), slot,
            sonde_gauge_get((const sonde_gauge *)(const void *)s));
        break;
    case SONDE_STATESET:
        put(track_get(h, f->name, lb->data, F_VALUE, ty, kb), slot,
            (double)atomic_load_explicit(&s->u.gauge, memory_order_relaxed));
        break;
    case SONDE_SUMMARY: {
        const sonde_summary *sm = (const sonde_summary *)(const void *)s;
        put(track_get(h, f->name, lb->data, F_COUNT, ty, kb), slot,
            (double)sonde_summary_get_count(sm));
        put(track_get(h, f->name, lb->data, F_SUM, ty, kb), slot, sonde_summary_get_sum(sm));
        break;
    }
    case SONDE_HISTOGRAM: {
        uint64_t cum[SONDE_MAX_BUCKETS + 1];
        if (f->native && f->nb == 0) {
            /* Native only: count and sum (no classic buckets to read). */
            const sonde_histogram *nh = (const sonde_histogram *)(const void *)s;
            put(track_get(h, f->name, lb->data, F_COUNT, ty, kb), slot,
                (double)sonde_histogram_get_count(nh));
            put(track_get(h, f->name, lb->data, F_SUM, ty, kb), slot, sonde_histogram_get_sum(nh));
            break;
        }
        sonde__cells_sum_u64_n(s->slot, (uint32_t)f->nb + 1, cum);
        for (size_t i = 1; i <= f->nb; i++)
            cum[i] += cum[i - 1];
        double sum = sonde__cells_sum_f64(s->slot + (uint32_t)f->nb + 1);
        put(track_get(h, f->name, lb->data, F_COUNT, ty, kb), slot, (double)cum[f->nb]);
        put(track_get(h, f->name, lb->data, F_SUM, ty, kb), slot, sum);
        track *p50 = track_get(h, f->name, lb->data, F_P50, ty, kb);
        track *p95 = track_get(h, f->name, lb->data, F_P95, ty, kb);
        track *p99 = track_get(h, f->name, lb->data, F_P99, ty, kb);
        if (!p50)
            break;
        if (p50->nprev != f->nb + 1) {
            sonde__free(p50->prev);
            p50->prev = sonde__calloc(f->nb + 1, sizeof *p50->prev);
            p50->nprev = p50->prev ? f->nb + 1 : 0;
            if (p50->prev)
                memcpy(p50->prev, cum, (f->nb + 1) * sizeof *cum);
            break; /* no interval yet */
        }
        /* Percentiles over the interval since the series' previous sample. */
        put(p50, slot, bucket_quantile(0.50, f->bounds, f->nb, cum, p50->prev));
        put(p95, slot, bucket_quantile(0.95, f->bounds, f->nb, cum, p50->prev));
        put(p99, slot, bucket_quantile(0.99, f->bounds, f->nb, cum, p50->prev));
        memcpy(p50->prev, cum, (f->nb + 1) * sizeof *cum);
        break;
    }
    default:
        break;
    }
}

void sonde__history_sample(sonde__history *h)
{
    if (!h || !sonde_enabled())
        return;
    sonde_buf lb, kb;
    sonde_buf_init(&lb);
    sonde_buf_init(&kb);
    pthread_mutex_lock(&h->lock);
    size_t slot = h->head;
    h->seq++;
    h->ts[slot] = sonde__now_wall();
    /* The slot is reused: a series not seen in this sample has no point. */
    for (size_t i = 0; i < h->ntracks; i++)
        h->tracks[i]->values[slot] = NAN;
    struct sonde_registry *reg = h->reg;
    pthread_rwlock_rdlock(&reg->lock);
    for (struct sonde_family *f = reg->head; f; f = f->next) {
        if (f->cb || f->is_info || f->type == SONDE_INFO)
            continue;
        pthread_mutex_lock(&f->lock);
        for (sonde_series *s = f->head; s; s = s->next)
            sample_series(h, f, s, slot, &lb, &kb);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_rwlock_unlock(&reg->lock);
    h->head = (slot + 1) % SONDE__HISTORY_POINTS;
    if (h->count < SONDE__HISTORY_POINTS)
        h->count++;
    pthread_mutex_unlock(&h->lock);
    sonde_buf_free(&lb);
    sonde_buf_free(&kb);
}

static void on_timer(void *ud, uint64_t now_ns)
{
    SONDE_UNUSED(now_ns);
    sonde__history_sample(ud);
}

int sonde__history_create(sonde_registry *reg, uint32_t interval_ms, sonde__history **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    if (interval_ms == 0)
        interval_ms = 5000;
    if (interval_ms < 100 || interval_ms > 60000)
        return SONDE_EINVAL;
    sonde__history *h = sonde__calloc(1, sizeof *h);
    if (!h)
        return SONDE_ENOMEM;
    h->reg = reg ? reg : sonde_registry_default();
    h->interval_ms = interval_ms;
    pthread_mutex_init(&h->lock, NULL);
    if (!sonde_enabled()) { /* off: an empty history, no timer, no thread */
        *out = h;
        return SONDE_OK;
    }
    sonde_family *fam = NULL;
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "sonde_dashboard_series_dropped_total";
    mo.help = "Series the dashboard history did not keep (its track table was full)";
    if (sonde_family_create(sonde_registry_default(), SONDE_COUNTER, &mo, &fam) == SONDE_OK)
        h->dropped = sonde_family_as_counter(fam);
    /* The worker runs a new timer at once: the first point is now. */
    int rc = sonde__runtime_every(interval_ms, on_timer, h, &h->timer);
    if (rc) {
        sonde__history_destroy(h);
        return rc;
    }
    *out = h;
    return SONDE_OK;
}

void sonde__history_destroy(sonde__history *h)
{
    if (!h)
        return;
    if (h->timer)
        sonde__runtime_cancel(h->timer);
    for (size_t i = 0; i < h->ntracks; i++) {
        sonde__free(h->tracks[i]->prev);
        sonde__free(h->tracks[i]->key);
        sonde__free(h->tracks[i]);
    }
    pthread_mutex_destroy(&h->lock);
    sonde__free(h);
}

int sonde__history_write_json(sonde__history *h, double since, const char *match, sonde_buf *out)
{
    if (!h || !out)
        return SONDE_EINVAL;
    pthread_mutex_lock(&h->lock);
    size_t start = (h->head + SONDE__HISTORY_POINTS - h->count) % SONDE__HISTORY_POINTS;
    size_t idx[SONDE__HISTORY_POINTS];
    size_t n = 0;
    /* Compared in milliseconds, the resolution the timestamps are written
     * with: since= a timestamp the client read excludes exactly that point. */
    double since_ms = floor(since * 1000 + 0.5);
    for (size_t k = 0; k < h->count; k++) {
        size_t slot = (start + k) % SONDE__HISTORY_POINTS;
        if (floor(h->ts[slot] * 1000 + 0.5) > since_ms)
            idx[n++] = slot;
    }
    int rc = sonde__buf_printf(out, "{\"interval_seconds\":%g,\"capacity\":%d,\"timestamps\":[",
                               h->interval_ms / 1000.0, SONDE__HISTORY_POINTS);
    for (size_t k = 0; k < n && rc == SONDE_OK; k++)
        rc = sonde__buf_printf(out, "%s%.3f", k ? "," : "", h->ts[idx[k]]);
    if (rc == SONDE_OK)
        rc = sonde__buf_puts(out, "],\"series\":[");
    bool first = true;
    for (size_t i = 0; i < h->ntracks && rc == SONDE_OK; i++) {
        track *t = h->tracks[i];
        if (match && *match && !strstr(t->name, match))
            continue;
        rc = sonde__buf_puts(out, first ? "\n{\"name\":" : ",\n{\"name\":");
        first = false;
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(out, t->name);
        if (rc == SONDE_OK)
            rc = sonde__buf_printf(out,
                                   ",\"labels\":%s,\"type\":\"%s\",\"field\":\"%s\",\"values\":[",
                                   t->labels, t->type, field_names[t->field]);
        for (size_t k = 0; k < n && rc == SONDE_OK; k++) {
            double v = t->values[idx[k]];
            if (k)
                rc = sonde__buf_putc(out, ',');
            if (rc == SONDE_OK)
                rc = isfinite(v) ? sonde__buf_json_double(out, v) : sonde__buf_puts(out, "null");
        }
        if (rc == SONDE_OK)
            rc = sonde__buf_puts(out, "]}");
    }
    if (rc == SONDE_OK)
        rc = sonde__buf_printf(out, "\n],\"dropped\":%llu}\n",
                               (unsigned long long)atomic_load(&h->ndropped));
    pthread_mutex_unlock(&h->lock);
    return rc;
}
