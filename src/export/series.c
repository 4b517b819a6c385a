/*
 * The remote writer's sampler: walks a registry (its families directly,
 * its collectors through the visitor emitter), turns every sample into a
 * sorted label set, and keeps one entry per label set across samplings so
 * the protobuf labels are built once per series and series that vanish
 * get a staleness marker.
 */
#include "export/export_int.h"
#include "expose/visit.h"
#include "metrics/metrics_int.h"

#include <math.h>
#include <string.h>

#define MAX_PAIRS (SONDE_MAX_LABELS + 8 + 32) /* own, const, le/quantile, external */

static uint64_t hash_bytes(const char *p, size_t n)
{
    /* FNV-1a, 64 bits, then a final mix so the low bits used as the bucket
     * index depend on every byte. */
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static void series_free(sonde__rw_series *e)
{
    if (!e)
        return;
    sonde__free(e->key);
    sonde__free(e->labels);
    sonde__free(e->label_ptrs);
    sonde__free(e);
}

int sonde__rw_sampler_init(sonde__rw_sampler *s, sonde_registry *reg, const char *const *external,
                           size_t nexternal, const char *const *keep, size_t nkeep,
                           const char *const *drop, size_t ndrop)
{
    memset(s, 0, sizeof *s);
    s->reg = reg ? reg : sonde_registry_default();
    sonde_buf_init(&s->key);
    if (nexternal > 32) {
        sonde__set_error("remote write: at most 32 external labels");
        return SONDE_EINVAL;
    }
    if ((nexternal && !external) || (nkeep && !keep) || (ndrop && !drop)) {
        sonde__set_error("remote write: NULL array with a non-zero count");
        return SONDE_EINVAL;
    }
    s->external = sonde__calloc(2 * nexternal + 1, sizeof(char *));
    s->keep = sonde__calloc(nkeep + 1, sizeof(regex_t));
    s->drop = sonde__calloc(ndrop + 1, sizeof(regex_t));
    s->mask = 1023;
    s->buckets = sonde__calloc(s->mask + 1, sizeof *s->buckets);
    if (!s->external || !s->keep || !s->drop || !s->buckets)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < nexternal; i++) {
        const char *n = external[2 * i], *v = external[2 * i + 1];
        if (!n || !sonde__valid_label_name(n) || (n[0] == '_' && n[1] == '_') || !v) {
            sonde__set_error("remote write: invalid external label name '%s'", n ? n : "(null)");
            return SONDE_EINVAL;
        }
        s->external[2 * i] = sonde__strdup(n);
        s->external[2 * i + 1] = sonde__strdup(v);
        s->nexternal = i + 1;
        if (!s->external[2 * i] || !s->external[2 * i + 1])
            return SONDE_ENOMEM;
    }
    for (int which = 0; which < 2; which++) {
        const char *const *pat = which ? drop : keep;
        size_t np = which ? ndrop : nkeep;
        regex_t *out = which ? s->drop : s->keep;
        for (size_t i = 0; i < np; i++) {
            if (!pat[i]) {
                sonde__set_error("remote write: NULL pattern");
                return SONDE_EINVAL;
            }
            /* Anchored like Prometheus relabelling: the whole name must match. */
            sonde_buf b;
            sonde_buf_init(&b);
            if (sonde__buf_printf(&b, "^(%s)$", pat[i]) != SONDE_OK) {
                sonde_buf_free(&b);
                return SONDE_ENOMEM;
            }
            int rc = regcomp(&out[i], b.data, REG_EXTENDED | REG_NOSUB);
            sonde_buf_free(&b);
            if (rc != 0) {
                char msg[128];
                regerror(rc, &out[i], msg, sizeof msg);
                sonde__set_error("remote write: bad %s pattern '%s': %s", which ? "drop" : "keep",
                                 pat[i], msg);
                return SONDE_EINVAL;
            }
            if (which)
                s->ndrop = i + 1;
            else
                s->nkeep = i + 1;
        }
    }
    return SONDE_OK;
}

void sonde__rw_sampler_free(sonde__rw_sampler *s)
{
    if (s->buckets)
        for (size_t i = 0; i <= s->mask; i++) {
            sonde__rw_series *e = s->buckets[i];
            while (e) {
                sonde__rw_series *n = e->next;
                series_free(e);
                e = n;
            }
        }
    while (s->graveyard) {
        sonde__rw_series *n = s->graveyard->next;
        series_free(s->graveyard);
        s->graveyard = n;
    }
    sonde__free(s->buckets);
    for (size_t i = 0; i < 2 * s->nexternal; i++)
        sonde__free(s->external[i]);
    sonde__free(s->external);
    for (size_t i = 0; i < s->nkeep; i++)
        regfree(&s->keep[i]);
    for (size_t i = 0; i < s->ndrop; i++)
        regfree(&s->drop[i]);
    sonde__free(s->keep);
    sonde__free(s->drop);
    sonde__free(s->pending);
    sonde_buf_free(&s->key);
    memset(s, 0, sizeof *s);
}

static int name_wanted(const sonde__rw_sampler *s, const char *name)
{
    if (s->nkeep) {
        size_t i;
        for (i = 0; i < s->nkeep; i++)
            if (regexec(&s->keep[i], name, 0, NULL, 0) == 0)
                break;
        if (i == s->nkeep)
            return 0;
    }
    for (size_t i = 0; i < s->ndrop; i++)
        if (regexec(&s->drop[i], name, 0, NULL, 0) == 0)
            return 0;
    return 1;
}

static int grow_table(sonde__rw_sampler *s)
{
    size_t nmask = s->mask * 2 + 1;
    sonde__rw_series **nb = sonde__calloc(nmask + 1, sizeof *nb);
    if (!nb)
        return SONDE_ENOMEM;
    for (size_t i = 0; i <= s->mask; i++) {
        sonde__rw_series *e = s->buckets[i];
        while (e) {
            sonde__rw_series *n = e->next;
            e->next = nb[e->hash & nmask];
            nb[e->hash & nmask] = e;
            e = n;
        }
    }
    sonde__free(s->buckets);
    s->buckets = nb;
    s->mask = nmask;
    return SONDE_OK;
}

static int push_pending(sonde__rw_sampler *s, sonde__rw_series *e, double v, int64_t ts,
                        uint64_t now_ns)
{
    if (s->npending == s->cap_pending) {
        size_t nc = s->cap_pending ? s->cap_pending * 2 : 1024;
        sonde__rw_pending *np = sonde__realloc(s->pending, nc * sizeof *np);
        if (!np)
            return SONDE_ENOMEM;
        s->pending = np;
        s->cap_pending = nc;
    }
    if (s->npending == 0)
        s->first_pending_ns = now_ns;
    s->pending[s->npending++] = (sonde__rw_pending){e, v, ts};
    s->added++;
    return SONDE_OK;
}

typedef struct pair {
    const char *n, *v;
} pair;

/* Sort by name (insertion sort: label sets are small and usually almost
 * sorted already). */
static void sort_pairs(pair *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        pair x = p[i];
        size_t j = i;
        while (j > 0 && strcmp(p[j - 1].n, x.n) > 0) {
            p[j] = p[j - 1];
            j--;
        }
        p[j] = x;
    }
}

/* Core of one sample: the label set is pairs[0..n) (without externals and
 * __name__), unsorted. */
static int add_sample(sonde__rw_sampler *s, const char *name, pair *p, size_t n, double v,
                      uint64_t now_ns)
{
    p[n++] = (pair){"__name__", name};
    sort_pairs(p, n);
    /* External labels fill in names the series does not have. */
    size_t own = n;
    for (size_t i = 0; i < s->nexternal && n < MAX_PAIRS; i++) {
        const char *en = s->external[2 * i];
        size_t j;
        for (j = 0; j < own; j++)
            if (strcmp(p[j].n, en) == 0)
                break;
        if (j == own)
            p[n++] = (pair){en, s->external[2 * i + 1]};
    }
    if (n != own)
        sort_pairs(p, n);
    sonde_buf *k = &s->key;
    sonde_buf_reset(k);
    for (size_t i = 0; i < n; i++) {
        if (sonde__buf_append(k, p[i].n, strlen(p[i].n) + 1) ||
            sonde__buf_append(k, p[i].v, strlen(p[i].v) + 1))
            return SONDE_ENOMEM;
    }
    uint64_t h = hash_bytes(k->data, k->len);
    sonde__rw_series *e = s->buckets[h & s->mask];
    while (e && !(e->hash == h && e->keylen == k->len && memcmp(e->key, k->data, k->len) == 0))
        e = e->next;
    if (!e) {
        e = sonde__calloc(1, sizeof *e);
        if (!e)
            return SONDE_ENOMEM;
        e->hash = h;
        e->keylen = k->len;
        e->nlabels = (uint32_t)n;
        e->key = sonde__malloc(k->len);
        e->labels = sonde__calloc(n, sizeof *e->labels);
        e->label_ptrs = sonde__calloc(n, sizeof *e->label_ptrs);
        if (!e->key || !e->labels || !e->label_ptrs) {
            series_free(e);
            return SONDE_ENOMEM;
        }
        memcpy(e->key, k->data, k->len);
        char *q = e->key;
        for (size_t i = 0; i < n; i++) {
            sonde_rw__label__init(&e->labels[i]);
            e->labels[i].name = q;
            q += strlen(q) + 1;
            e->labels[i].value = q;
            q += strlen(q) + 1;
            e->label_ptrs[i] = &e->labels[i];
        }
        e->next = s->buckets[h & s->mask];
        s->buckets[h & s->mask] = e;
        s->count++;
        if (s->count > s->mask && grow_table(s) != SONDE_OK)
            return SONDE_ENOMEM;
    } else if (e->gen == s->gen) {
        s->duplicates++;
        return SONDE_OK;
    }
    e->gen = s->gen;
    return push_pending(s, e, v, s->now_ms, now_ns);
}

/* ---- native families ---- */

typedef struct walk {
    sonde__rw_sampler *s;
    uint64_t now_ns;
    int rc;
} walk;

static void emit(walk *w, const char *name, pair *p, size_t n, double v)
{
    if (w->rc == SONDE_OK)
        w->rc = add_sample(w->s, name, p, n, v, w->now_ns);
}

static void walk_family(walk *w, struct sonde_family *f)
{
    pair base[MAX_PAIRS];
    size_t nb = 0;
    for (size_t i = 0; i < f->nconst && nb < SONDE_MAX_LABELS + 4; i++)
        base[nb++] = (pair){f->const_kv[2 * i], f->const_kv[2 * i + 1]};
    char name[300];
    size_t nl = strlen(f->name);
    if (nl + 8 >= sizeof name)
        return;
    memcpy(name, f->name, nl + 1);
    if (f->cb) {
        pair p[MAX_PAIRS];
        memcpy(p, base, nb * sizeof *p);
        emit(w, name, p, nb, f->cb(f->cb_ud));
        return;
    }
    pthread_mutex_lock(&f->lock);
    for (sonde_series *s = f->head; s && w->rc == SONDE_OK; s = s->next) {
        pair p[MAX_PAIRS];
        size_t n = nb;
        memcpy(p, base, nb * sizeof *p);
        const char *val = s->data;
        for (size_t i = 0; i < f->nlabels; i++) {
            p[n++] = (pair){f->label_names[i], val};
            val += strlen(val) + 1;
        }
        switch (f->type) {
        case SONDE_COUNTER:
            name[nl] = '\0';
            emit(w, name, p, n, sonde__counter_value(s));
            break;
        case SONDE_GAUGE:
        case SONDE_UNTYPED:
            name[nl] = '\0';
            emit(w, name, p, n, sonde_gauge_get((const sonde_gauge *)(const void *)s));
            break;
        case SONDE_HISTOGRAM: {
            uint64_t cum[SONDE_MAX_BUCKETS + 1];
            double sum;
            if (f->native && f->nb == 0) {
                /* Native only: remote write 1.0 carries count and sum. */
                cum[0] = sonde_histogram_get_count((const sonde_histogram *)(const void *)s);
                sum = sonde_histogram_get_sum((const sonde_histogram *)(const void *)s);
            } else {
                sonde__cells_sum_u64_n(s->slot, (uint32_t)f->nb + 1, cum);
                for (size_t i = 1; i <= f->nb; i++)
                    cum[i] += cum[i - 1];
                sum = sonde__cells_sum_f64(s->slot + (uint32_t)f->nb + 1);
            }
            memcpy(name + nl, "_bucket", 8);
            for (size_t i = 0; i <= f->nb && !(f->native && f->nb == 0); i++) {
                p[n] = (pair){"le", f->le_text[i]};
                emit(w, name, p, n + 1, (double)cum[i]);
            }
            memcpy(name + nl, "_count", 7);
            emit(w, name, p, n, (double)cum[f->nb]);
            memcpy(name + nl, "_sum", 5);
            emit(w, name, p, n, sum);
            break;
        }
        case SONDE_SUMMARY: {
            double qv[SONDE_MAX_QUANTILES];
            sonde__summary_snapshot(s->u.summary, f, qv, NULL, NULL);
            uint64_t count = sonde__cells_sum_u64(s->slot);
            double sum = sonde__cells_sum_f64(s->slot + 1);
            name[nl] = '\0';
            for (size_t i = 0; i < f->nq; i++) {
                p[n] = (pair){"quantile", f->q_text[i]};
                emit(w, name, p, n + 1, qv[i]);
            }
            memcpy(name + nl, "_count", 7);
            emit(w, name, p, n, (double)count);
            memcpy(name + nl, "_sum", 5);
            emit(w, name, p, n, sum);
            break;
        }
        case SONDE_STATESET: {
            size_t cur = (size_t)atomic_load_explicit(&s->u.gauge, memory_order_relaxed);
            name[nl] = '\0';
            for (size_t i = 0; i < f->nstates; i++) {
                p[n] = (pair){f->name, f->states[i]};
                emit(w, name, p, n + 1, i == cur ? 1 : 0);
            }
            break;
        }
        case SONDE_INFO:
            name[nl] = '\0';
            emit(w, name, p, n, 1);
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---- collectors ---- */

static int visit_family(void *ud, sonde_metric_type type, const char *name)
{
    (void)type;
    walk *w = ud;
    return name_wanted(w->s, name);
}

static void visit_sample(void *ud, const char *name, const char *const *kv, size_t npairs, double v)
{
    walk *w = ud;
    pair p[MAX_PAIRS];
    if (npairs > SONDE_MAX_LABELS + 1)
        return;
    for (size_t i = 0; i < npairs; i++)
        p[i] = (pair){kv[2 * i], kv[2 * i + 1]};
    emit(w, name, p, npairs, v);
}

long sonde__rw_sample(sonde__rw_sampler *s, int64_t now_ms, uint64_t now_ns)
{
    s->gen++;
    s->now_ms = now_ms;
    s->added = 0;
    walk w = {s, now_ns, SONDE_OK};
    sonde_registry *reg = s->reg;
    pthread_rwlock_rdlock(&reg->lock);
    for (struct sonde_family *f = reg->head; f && w.rc == SONDE_OK; f = f->next)
        if (name_wanted(s, f->name))
            walk_family(&w, f);
    pthread_rwlock_unlock(&reg->lock);
    if (w.rc == SONDE_OK) {
        sonde__visitor v = {visit_family, visit_sample, &w};
        sonde__registry_visit_collectors(reg, &v);
    }
    if (w.rc != SONDE_OK)
        return w.rc;
    /* Series not seen this time: one staleness marker, then forget them
     * (they move to the graveyard until their pending samples are sent). */
    double stale;
    uint64_t bits = SONDE__STALE_NAN_BITS;
    memcpy(&stale, &bits, sizeof stale);
    for (size_t i = 0; i <= s->mask; i++) {
        sonde__rw_series **pp = &s->buckets[i];
        while (*pp) {
            sonde__rw_series *e = *pp;
            if (e->gen == s->gen) {
                pp = &e->next;
                continue;
            }
            if (push_pending(s, e, stale, now_ms, now_ns) != SONDE_OK)
                return SONDE_ENOMEM;
            *pp = e->next;
            e->next = s->graveyard;
            s->graveyard = e;
            s->count--;
        }
    }
    return (long)s->added;
}

int sonde__rw_add(sonde__rw_sampler *s, const char *name, const char *const *kv, size_t npairs,
                  double v)
{
    pair p[MAX_PAIRS];
    if (npairs > SONDE_MAX_LABELS + 1)
        return SONDE_EINVAL;
    for (size_t i = 0; i < npairs; i++)
        p[i] = (pair){kv[2 * i], kv[2 * i + 1]};
    /* Each hand-added sample is its own sampling generation so the same
     * series can be added repeatedly. */
    s->gen++;
    if (s->now_ms == 0)
        s->now_ms = (int64_t)(sonde__now_wall() * 1000);
    return add_sample(s, name, p, npairs, v, sonde__now_mono_ns());
}

void sonde__rw_consume(sonde__rw_sampler *s, size_t n)
{
    if (n > s->npending)
        n = s->npending;
    if (n && s->npending > n) /* pending is NULL until the first sample */
        memmove(s->pending, s->pending + n, (s->npending - n) * sizeof *s->pending);
    s->npending -= n;
    if (s->npending == 0)
        while (s->graveyard) {
            sonde__rw_series *e = s->graveyard->next;
            series_free(s->graveyard);
            s->graveyard = e;
        }
}
