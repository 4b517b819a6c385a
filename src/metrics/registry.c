/* Registries, families, series lookup and the hot-path updates. */
#define SONDE__BUILDING 1
#include "metrics_int.h"
#include "core/worker.h"

#include <math.h>
#include <stdio.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <time.h>
#include <string.h>

const double sonde_default_buckets[11] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* ------------------------------------------------------------------------ */
/* Hashing: 8 bytes at a time, then a final avalanche.                      */

static inline uint64_t mix64(uint64_t h)
{
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* Reads the tail with at most two (overlapping) loads of fixed size, never
 * byte by byte: assembling a word from byte stores and loading it back
 * stalls on store forwarding, which cost more than the rest of a lookup. */
static inline uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t w;
    h ^= (uint64_t)n << 56;
    if (SONDE_LIKELY(n <= 8)) {
        if (n >= 4)
            w = load32(p) | (load32(p + n - 4) << 32);
        else if (n > 0)
            w = (uint64_t)(unsigned char)p[0] | ((uint64_t)(unsigned char)p[n / 2] << 8) |
                ((uint64_t)(unsigned char)p[n - 1] << 16);
        else
            w = 0;
    } else {
        while (n > 8) {
            h = (h ^ load64(p)) * k;
            h ^= h >> 29;
            p += 8;
            n -= 8;
        }
        w = load64(p + n - 8); /* overlaps the previous word: still content-only */
    }
    h = (h ^ w) * k;
    return h ^ (h >> 29);
}

/* Normalise values (NULL means ""), measure them and hash them, in one
 * pass. */
static inline uint64_t prepare_values(const char *const *values, size_t n, const char **vals,
                                      size_t *lens)
{
    uint64_t h = 0x12345678ULL + n;
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t l = strlen(v);
        vals[i] = v;
        lens[i] = l;
        h = hash_bytes(h, v, l);
    }
    return mix64(h);
}

/* a[0..n) == b[0..n) for short keys without a libc call; reads only inside
 * both ranges. */
static inline int bytes_equal(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        if (n > 16)
            return memcmp(a, b, n) == 0;
        return load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4)
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    /* 1 to 3 bytes: first, middle and last cover them all. */
    return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */

static void family_free(struct sonde_family *f);

void sonde_registry_opts_init(sonde_registry_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

static int registry_init(sonde_registry *reg)
{
    memset(reg, 0, sizeof *reg);
    pthread_rwlock_init(&reg->lock, NULL);
    return SONDE_OK;
}

int sonde_registry_create(const sonde_registry_opts *opts, sonde_registry **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_registry *reg = sonde__malloc(sizeof *reg);
    if (!reg)
        return SONDE_ENOMEM;
    registry_init(reg);
    if (opts && opts->metric_namespace && *opts->metric_namespace) {
        int rc = sonde_registry_set_namespace(reg, opts->metric_namespace);
        if (rc) {
            sonde_registry_destroy(reg);
            return rc;
        }
    }
    if (opts && opts->utf8_names)
        atomic_store(&reg->utf8_names, 1);
    if (opts && opts->created_timestamps)
        atomic_store(&reg->created_timestamps, 1);
    if (opts && opts->process_metrics) {
        int rc = sonde_registry_add_collector(reg, "process", sonde__process_collect, NULL);
        if (rc) {
            sonde_registry_destroy(reg);
            return rc;
        }
    }
    *out = reg;
    return SONDE_OK;
}

void sonde_registry_destroy(sonde_registry *reg)
{
    if (!reg || reg->is_default)
        return;
    struct sonde_family *f = reg->head;
    while (f) {
        struct sonde_family *n = f->next;
        family_free(f);
        f = n;
    }
    struct collector *c = reg->collectors;
    while (c) {
        struct collector *n = c->next;
        sonde__free(c->name);
        sonde__free(c);
        c = n;
    }
    pthread_rwlock_destroy(&reg->lock);
    sonde__free(reg->ns);
    sonde__free(reg);
}

static sonde_registry default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    registry_init(&default_registry);
    default_registry.is_default = 1;
    sonde_registry_add_collector(&default_registry, "process", sonde__process_collect, NULL);
}

sonde_registry *sonde_registry_default(void)
{
    pthread_once(&default_once, default_init);
    return &default_registry;
}

int sonde_registry_add_collector(sonde_registry *reg, const char *name, sonde_collect_fn fn,
                                 void *userdata)
{
    if (!reg)
        reg = sonde_registry_default();
    if (!name || !fn)
        return SONDE_EINVAL;
    if (!sonde_enabled())
        return SONDE_OK; /* off: nothing is ever collected */
    struct collector *c = sonde__calloc(1, sizeof *c);
    if (!c)
        return SONDE_ENOMEM;
    c->name = sonde__strdup(name);
    c->fn = fn;
    c->ud = userdata;
    if (!c->name) {
        sonde__free(c);
        return SONDE_ENOMEM;
    }
    pthread_rwlock_wrlock(&reg->lock);
    for (struct collector *e = reg->collectors; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            pthread_rwlock_unlock(&reg->lock);
            sonde__free(c->name);
            sonde__free(c);
            sonde__set_error("collector \"%s\" is already registered", name);
            return SONDE_ECONFLICT;
        }
    }
    /* Append, so collectors run in registration order. */
    struct collector **pp = &reg->collectors;
    while (*pp)
        pp = &(*pp)->next;
    *pp = c;
    pthread_rwlock_unlock(&reg->lock);
    return SONDE_OK;
}

int sonde_registry_remove_collector(sonde_registry *reg, const char *name)
{
    if (!reg)
        reg = sonde_registry_default();
    if (!name)
        return SONDE_EINVAL;
    if (!sonde_enabled())
        return SONDE_OK;
    pthread_rwlock_wrlock(&reg->lock);
    for (struct collector **pp = &reg->collectors; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct collector *c = *pp;
            *pp = c->next;
            pthread_rwlock_unlock(&reg->lock);
            sonde__free(c->name);
            sonde__free(c);
            return SONDE_OK;
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    return SONDE_ENOTFOUND;
}

/* ------------------------------------------------------------------------ */
/* Series                                                                   */

static uint32_t cells_for(const struct sonde_family *f)
{
    switch (f->type) {
    case SONDE_COUNTER:
    case SONDE_SUMMARY:
        return 2;
    case SONDE_HISTOGRAM:
        return (uint32_t)f->nb + 2;
    default:
        return 0;
    }
}

static uint64_t now_ms(void)
{
    return (uint64_t)(sonde__now_wall() * 1000.0);
}

/* Build a series for values (lens given): raw blob then rendered text. */
static sonde_series *series_new(struct sonde_family *f, const char *const *values,
                                const size_t *lens, uint64_t hash)
{
    /* Only the raw values are kept: the text formats render the label set
     * at scrape time, copying values that need no escaping (flagged here)
     * as they are. */
    size_t raw = 0;
    uint32_t escape = 0;
    for (size_t i = 0; i < f->nlabels; i++) {
        raw += lens[i] + 1;
        for (size_t j = 0; j < lens[i]; j++) {
            unsigned char c = (unsigned char)values[i][j];
            if (c == '\\' || c == '\n' || c == '"' || c >= 0x80)
                escape = SONDE__RAW_ESCAPE;
        }
    }
    if (raw >= SONDE__RAW_ESCAPE)
        return NULL;
    sonde_series *s = sonde__malloc(sizeof *s + raw + 1);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    char *p = s->data;
    for (size_t i = 0; i < f->nlabels; i++) {
        memcpy(p, values[i], lens[i]);
        p[lens[i]] = '\0';
        p += lens[i] + 1;
    }
    *p = '\0';
    s->raw_len = (uint32_t)raw | escape;
    s->fam = f;
    s->hash = hash;
    s->created_ms = now_ms();
    atomic_store_explicit(&s->touched,
                          atomic_load_explicit(&sonde__coarse_now, memory_order_relaxed),
                          memory_order_relaxed);
    s->slot = UINT32_MAX;
    if (f->cells_per_series) {
        s->slot = sonde__slots_alloc(f->cells_per_series);
        if (s->slot == UINT32_MAX) {
            sonde__free(s);
            sonde__set_error("metric \"%s\": out of cell space for new series", f->name);
            return NULL;
        }
    }
    if (f->type == SONDE_SUMMARY) {
        s->u.summary = sonde__summary_new(f);
        if (!s->u.summary) {
            sonde__slots_free(s->slot, f->cells_per_series);
            sonde__free(s);
            return NULL;
        }
    }
    if (f->exemplars) {
        s->ex = sonde__exemplars_new(f);
        if (!s->ex) {
            sonde__slots_free(s->slot, f->cells_per_series);
            sonde__free(s);
            return NULL;
        }
    }
    return s;
}

static void series_free(struct sonde_family *f, sonde_series *s)
{
    if (!s)
        return;
    if (s->slot != UINT32_MAX && s->slot >= SONDE__SINK_SLOTS)
        sonde__slots_free(s->slot, f->cells_per_series);
    if (f->type == SONDE_SUMMARY && s->u.summary)
        sonde__summary_free(s->u.summary);
    sonde__free(s->ex);
    sonde__free(s);
}

/* A sink: updates land in the shared sink cells and are never read. */
static sonde_series *sink_new(struct sonde_family *f)
{
    sonde_series *s = sonde__calloc(1, sizeof *s + 1);
    if (!s)
        return NULL;
    s->fam = f;
    s->slot = 0;
    if (f->type == SONDE_SUMMARY) {
        s->u.summary = sonde__summary_new(f);
        if (!s->u.summary) {
            sonde__free(s);
            return NULL;
        }
    }
    return s;
}

static inline __attribute__((always_inline)) int series_matches(const sonde_series *s,
                                                                uint64_t hash,
                                                                const char *const *values,
                                                                const size_t *lens, size_t n)
{
    if (s->hash != hash)
        return 0;
    const char *p = s->data;
    for (size_t i = 0; i < n; i++) {
        /* The stored value ends at its NUL: check the length first. */
        if (p[lens[i]] != '\0' || !bytes_equal(p, values[i], lens[i]))
            return 0;
        p += lens[i] + 1;
    }
    return 1;
}

#define TOMBSTONE ((sonde_series *)(uintptr_t)1)

static struct series_table *table_new(size_t cap)
{
    struct series_table *t = sonde__calloc(1, sizeof *t + cap * sizeof(t->slots[0]));
    if (!t)
        return NULL;
    t->mask = cap - 1;
    return t;
}

/* Lock-free probe. Readers see a consistent table: entries are published
 * with release stores, and a replaced table is freed only after a grace
 * period (table_insert). */
static inline __attribute__((always_inline)) sonde_series *table_find(struct series_table *t,
                                                                      uint64_t hash,
                                                                      const char *const *values,
                                                                      const size_t *lens, size_t n)
{
    size_t i = (size_t)hash & t->mask;
    for (size_t probes = 0; probes <= t->mask; probes++) {
        sonde_series *s = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s != TOMBSTONE && series_matches(s, hash, values, lens, n))
            return s;
        i = (i + 1) & t->mask;
    }
    return NULL;
}

/* Under the family lock: insert s, first rebuilding the table (dropping
 * tombstones, doubling when needed) when it would be more than half used. */
static int table_insert(struct sonde_family *f, sonde_series *s)
{
    struct series_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    if ((f->table_used + 1) * 2 > t->mask + 1) {
        /* Dormant (expired) series stay in the table. */
        size_t live = atomic_load_explicit(&f->nseries, memory_order_relaxed) + f->ndormant;
        size_t cap = 16;
        while (cap < (live + 1) * 4)
            cap *= 2;
        struct series_table *nt = table_new(cap);
        if (!nt)
            return SONDE_ENOMEM;
        for (size_t i = 0; i <= t->mask; i++) {
            sonde_series *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (!e || e == TOMBSTONE)
                continue;
            size_t j = (size_t)e->hash & nt->mask;
            while (atomic_load_explicit(&nt->slots[j], memory_order_relaxed))
                j = (j + 1) & nt->mask;
            atomic_store_explicit(&nt->slots[j], e, memory_order_relaxed);
        }
        /* Readers may still probe the old tables: free them once a grace
         * period has passed (rebuilds are rare, so the membarrier call is
         * too), else keep them for the next rebuild or destroy. */
        t->retired_next = f->retired_tables;
        f->retired_tables = t;
        atomic_store_explicit(&f->table, nt, memory_order_release);
        if (sonde__grace_period()) {
            for (struct series_table *r = f->retired_tables; r;) {
                struct series_table *next = r->retired_next;
                sonde__free(r);
                r = next;
            }
            f->retired_tables = NULL;
        }
        f->table_used = live;
        t = nt;
    }
    size_t j = (size_t)s->hash & t->mask;
    for (;;) {
        sonde_series *e = atomic_load_explicit(&t->slots[j], memory_order_relaxed);
        if (!e)
            break;
        j = (j + 1) & t->mask;
    }
    atomic_store_explicit(&t->slots[j], s, memory_order_release);
    f->table_used++;
    return SONDE_OK;
}

static void list_append(struct sonde_family *f, sonde_series *s)
{
    s->next = NULL;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
}

/* Under the lock: bring a dormant (expired) series back, starting from
 * zero. It is still in the table; its dormant-list entry is dropped by the
 * next sweep. */
static int revive_locked(struct sonde_family *f, sonde_series *s, int touch)
{
    if (atomic_load_explicit(&f->nseries, memory_order_relaxed) >= f->max_series)
        return SONDE_ELIMIT;
    uint32_t slot = UINT32_MAX;
    if (f->cells_per_series) {
        slot = sonde__slots_alloc(f->cells_per_series);
        if (slot == UINT32_MAX) {
            sonde__set_error("metric \"%s\": out of cell space for new series", f->name);
            return SONDE_ENOMEM;
        }
    }
    s->created_ms = now_ms();
    if (touch)
        SONDE__TOUCH(s);
    __atomic_store_n(&s->slot, slot, __ATOMIC_RELEASE);
    atomic_store_explicit(&s->dormant, 0, memory_order_release);
    f->ndormant--;
    list_append(f, s);
    atomic_fetch_add_explicit(&f->nseries, 1, memory_order_release);
    return SONDE_OK;
}

/* Find or create. Fast path lock-free; creation under the family lock. */
static int family_lookup(struct sonde_family *f, const char *const *values, size_t n,
                         sonde_series **out)
{
    if (n != f->nlabels) {
        sonde__set_error("metric \"%s\" has %zu label(s), %zu value(s) given", f->name, f->nlabels,
                         n);
        return SONDE_ELABELCOUNT;
    }
    if (f->single) {
        *out = f->single;
        return SONDE_OK;
    }
    const char *vals[SONDE_MAX_LABELS];
    size_t lens[SONDE_MAX_LABELS];
    uint64_t h = prepare_values(values, n, vals, lens);
    /* Announce the lock-free probe so removal can tell when the series it
     * unlinked are no longer being looked at (sonde__grace_period). Threads
     * without a block (sonde disabled, no memory) take the lock instead. */
    struct sonde__block *b = sonde__tls_block;
    if (SONDE_UNLIKELY(!b) && sonde__cells_acquire())
        b = sonde__tls_block;
    sonde_series *s = NULL;
    if (SONDE_LIKELY(b != NULL)) {
        uint64_t seq = atomic_load_explicit(&b->lookup_seq, memory_order_relaxed);
        atomic_store_explicit(&b->lookup_seq, seq + 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        s = table_find(atomic_load_explicit(&f->table, memory_order_acquire), h, vals, lens, n);
        atomic_store_explicit(&b->lookup_seq, seq + 2, memory_order_release);
        if (SONDE_LIKELY(s != NULL) &&
            SONDE_LIKELY(!atomic_load_explicit(&s->dormant, memory_order_acquire))) {
            if (f->ttl_s)
                SONDE__TOUCH(s);
            *out = s;
            return SONDE_OK;
        }
    }
    pthread_mutex_lock(&f->lock);
    s = table_find(atomic_load_explicit(&f->table, memory_order_relaxed), h, vals, lens, n);
    if (s) {
        int rc = SONDE_OK;
        if (atomic_load_explicit(&s->dormant, memory_order_relaxed))
            rc = revive_locked(f, s, 1);
        else if (f->ttl_s)
            SONDE__TOUCH(s);
        pthread_mutex_unlock(&f->lock);
        if (rc == SONDE_ELIMIT) {
            atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
            sonde__set_error("metric \"%s\" reached its limit of %zu series; new series dropped",
                             f->name, f->max_series);
        }
        if (rc != SONDE_OK)
            return rc;
        *out = s;
        return SONDE_OK;
    }
    if (atomic_load_explicit(&f->nseries, memory_order_relaxed) >= f->max_series) {
        pthread_mutex_unlock(&f->lock);
        atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
        sonde__set_error("metric \"%s\" reached its limit of %zu series; new series dropped",
                         f->name, f->max_series);
        return SONDE_ELIMIT;
    }
    s = series_new(f, vals, lens, h);
    if (!s || table_insert(f, s) != SONDE_OK) {
        pthread_mutex_unlock(&f->lock);
        if (s)
            series_free(f, s);
        return SONDE_ENOMEM;
    }
    list_append(f, s);
    atomic_fetch_add_explicit(&f->nseries, 1, memory_order_release);
    pthread_mutex_unlock(&f->lock);
    *out = s;
    return SONDE_OK;
}

int sonde_family_get(sonde_family *f, const char *const *values, size_t n, void **out)
{
    if (!f || !out || (n && !values))
        return SONDE_EINVAL;
    sonde_series *s = NULL;
    int rc = family_lookup(f, values, n, &s);
    *out = rc == SONDE_OK ? s : NULL;
    return rc;
}

/* The variadic lookups read their arguments straight into the array form;
 * the type check comes first so a wrong family never reads va_args. */
#define TYPED_LOOKUP(fn, ctype, TYPE)                                                              \
    ctype *fn(sonde_family *f, ...)                                                                \
    {                                                                                              \
        if (SONDE_UNLIKELY(!f))                                                                    \
            return NULL;                                                                           \
        if (SONDE_UNLIKELY(f->type != TYPE)) {                                                     \
            sonde__set_error("metric \"%s\" is not of the requested type", f->name);               \
            return (ctype *)(void *)f->sink;                                                       \
        }                                                                                          \
        const char *vals[SONDE_MAX_LABELS];                                                        \
        size_t n = f->nlabels;                                                                     \
        va_list ap;                                                                                \
        va_start(ap, f);                                                                           \
        for (size_t i = 0; i < n; i++)                                                             \
            vals[i] = va_arg(ap, const char *);                                                    \
        va_end(ap);                                                                                \
        sonde_series *s = NULL;                                                                    \
        if (family_lookup(f, vals, n, &s) != SONDE_OK)                                             \
            return (ctype *)(void *)f->sink;                                                       \
        return (ctype *)(void *)s;                                                                 \
    }
#define TYPED_LOOKUP_N(fn, ctype, TYPE)                                                            \
    ctype *fn(sonde_family *f, const char *const *values, size_t n)                                \
    {                                                                                              \
        if (SONDE_UNLIKELY(!f))                                                                    \
            return NULL;                                                                           \
        if (SONDE_UNLIKELY(f->type != TYPE)) {                                                     \
            sonde__set_error("metric \"%s\" is not of the requested type", f->name);               \
            return (ctype *)(void *)f->sink;                                                       \
        }                                                                                          \
        sonde_series *s = NULL;                                                                    \
        if (SONDE_UNLIKELY(n && !values) || family_lookup(f, values, n, &s) != SONDE_OK)           \
            return (ctype *)(void *)f->sink;                                                       \
        return (ctype *)(void *)s;                                                                 \
    }
TYPED_LOOKUP_N(sonde_family_counter_n, sonde_counter, SONDE_COUNTER)
TYPED_LOOKUP_N(sonde_family_gauge_n, sonde_gauge, SONDE_GAUGE)
TYPED_LOOKUP_N(sonde_family_histogram_n, sonde_histogram, SONDE_HISTOGRAM)
TYPED_LOOKUP_N(sonde_family_summary_n, sonde_summary, SONDE_SUMMARY)

TYPED_LOOKUP(sonde_family_counter, sonde_counter, SONDE_COUNTER)
TYPED_LOOKUP(sonde_family_gauge, sonde_gauge, SONDE_GAUGE)
TYPED_LOOKUP(sonde_family_histogram, sonde_histogram, SONDE_HISTOGRAM)
TYPED_LOOKUP(sonde_family_summary, sonde_summary, SONDE_SUMMARY)

/* Under the lock: unlink s from the table and the list, retire it. Its
 * cells are freed at once; the series itself waits for a grace period,
 * because a lock-free reader may still be comparing its labels. */
static void remove_locked(struct sonde_family *f, sonde_series *s)
{
    struct series_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    size_t i = (size_t)s->hash & t->mask;
    for (size_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
        sonde_series *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (!e)
            break;
        if (e == s) {
            atomic_store_explicit(&t->slots[i], TOMBSTONE, memory_order_release);
            break;
        }
    }
    sonde_series *prev = NULL;
    for (sonde_series *e = f->head; e; prev = e, e = e->next) {
        if (e == s) {
            if (prev)
                prev->next = e->next;
            else
                f->head = e->next;
            if (f->tail == e)
                f->tail = prev;
            break;
        }
    }
    if (s->slot != UINT32_MAX)
        sonde__slots_free(s->slot, f->cells_per_series);
    /* Late updates through a stale handle go to the sink. */
    __atomic_store_n(&s->slot, 0, __ATOMIC_RELAXED);
    s->created_ms = now_ms(); /* from now on: when it was retired */
    s->next = f->retired;
    f->retired = s;
    f->nretired++;
    atomic_fetch_sub_explicit(&f->nseries, 1, memory_order_relaxed);
}

/* Under the lock: free removed series once no lookup can still hold them.
 * Batched, since a grace period costs a membarrier() call. A series must
 * also have been retired for a second: the common "look up, then update"
 * idiom uses the returned handle just after its lookup ends, and a handle
 * used that briefly must still point at valid memory (its updates go to the
 * sink). Handles kept longer than that across a removal are a caller bug. */
#define RETIRE_DELAY_MS 1000
static void reclaim_locked(struct sonde_family *f, size_t batch)
{
    if (f->nretired < batch)
        return;
    uint64_t now = now_ms();
    size_t old = 0;
    for (sonde_series *s = f->retired; s; s = s->next)
        old += now - s->created_ms >= RETIRE_DELAY_MS;
    if (old == 0 || !sonde__grace_period())
        return;
    sonde_series **pp = &f->retired;
    while (*pp) {
        sonde_series *s = *pp;
        if (now - s->created_ms >= RETIRE_DELAY_MS) {
            *pp = s->next;
            f->nretired--;
            s->slot = UINT32_MAX; /* cells were freed at removal */
            series_free(f, s);
        } else {
            pp = &s->next;
        }
    }
}

int sonde_family_remove(sonde_family *f, const char *const *values, size_t n)
{
    if (!f || (n && !values))
        return SONDE_EINVAL;
    if (n != f->nlabels)
        return SONDE_ELABELCOUNT;
    if (f->single)
        return SONDE_EINVAL;
    const char *vals[SONDE_MAX_LABELS];
    size_t lens[SONDE_MAX_LABELS];
    uint64_t h = prepare_values(values, n, vals, lens);
    pthread_mutex_lock(&f->lock);
    sonde_series *s =
        table_find(atomic_load_explicit(&f->table, memory_order_relaxed), h, vals, lens, n);
    if (!s || atomic_load_explicit(&s->dormant, memory_order_relaxed)) {
        pthread_mutex_unlock(&f->lock);
        return SONDE_ENOTFOUND; /* expired series are already gone from view */
    }
    remove_locked(f, s);
    reclaim_locked(f, 64);
    pthread_mutex_unlock(&f->lock);
    return SONDE_OK;
}

void sonde_family_clear(sonde_family *f)
{
    if (!f || f->single)
        return;
    pthread_mutex_lock(&f->lock);
    while (f->head)
        remove_locked(f, f->head);
    reclaim_locked(f, 1);
    pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------------ */
/* Series TTL                                                               */

_Atomic uint32_t sonde__coarse_now;

/* Families with a TTL, swept by one worker timer. ttl_lock guards the list
 * and is held by the sweep; ttl_timer_lock serialises starting and
 * stopping the timer (never held by the sweep, so cancelling the timer
 * under it cannot wait on a sweep that waits on it). */
static pthread_mutex_t ttl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ttl_timer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sonde_family *ttl_head;
static size_t ttl_count;
static uint64_t ttl_timer;
static _Atomic int ttl_manual;

static uint32_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_sec + 1; /* never 0 */
}

/* Under f->lock: take s out of view. It stays in the table (lookups
 * revive it) and allocated (kept handles stay valid). */
static void expire_locked(struct sonde_family *f, sonde_series *s, uint32_t now)
{
    atomic_store_explicit(&s->dormant, 1, memory_order_release);
    uint32_t slot = s->slot;
    /* Updates through a kept handle go to the sink from now on. */
    __atomic_store_n(&s->slot, 0, __ATOMIC_RELEASE);
    if (slot != UINT32_MAX && slot >= SONDE__SINK_SLOTS)
        sonde__slots_free(slot, f->cells_per_series);
    if (f->type == SONDE_GAUGE)
        atomic_store_explicit(&s->u.gauge, 0, memory_order_relaxed);
    s->expired_at = now;
    if (!s->in_dlist) {
        s->dnext = f->dormant;
        f->dormant = s;
        s->in_dlist = 1;
    }
    f->ndormant++;
    atomic_fetch_sub_explicit(&f->nseries, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->expired, 1, memory_order_relaxed);
}

static void ttl_sweep_family(struct sonde_family *f, uint32_t now)
{
    pthread_mutex_lock(&f->lock);
    /* Dormant series: drop the revived ones from the list; revive those
     * updated through a kept handle since they expired. */
    sonde_series **pp = &f->dormant;
    while (*pp) {
        sonde_series *s = *pp;
        if (atomic_load_explicit(&s->dormant, memory_order_relaxed)) {
            /* Updated since it expired, and within the TTL. */
            uint32_t t = atomic_load_explicit(&s->touched, memory_order_relaxed);
            if ((int32_t)(t - s->expired_at) <= 0 || (int32_t)(now - t) >= (int32_t)f->ttl_s ||
                revive_locked(f, s, 0) != SONDE_OK) {
                pp = &s->dnext;
                continue;
            }
        }
        *pp = s->dnext;
        s->in_dlist = 0;
    }
    /* Live series not updated for the TTL. */
    sonde_series *prev = NULL;
    for (sonde_series *s = f->head; s;) {
        sonde_series *next = s->next;
        uint32_t t = atomic_load_explicit(&s->touched, memory_order_relaxed);
        int32_t idle = (int32_t)(now - t);
        if (idle >= 0 && (uint32_t)idle >= f->ttl_s) {
            if (prev)
                prev->next = next;
            else
                f->head = next;
            s->next = NULL;
            expire_locked(f, s, now);
        } else {
            prev = s;
        }
        s = next;
    }
    f->tail = prev;
    pthread_mutex_unlock(&f->lock);
}

void sonde__ttl_sweep(uint32_t now)
{
    pthread_mutex_lock(&ttl_lock);
    for (struct sonde_family *f = ttl_head; f; f = f->ttl_next)
        ttl_sweep_family(f, now);
    pthread_mutex_unlock(&ttl_lock);
}

void sonde__ttl_manual_clock(int manual)
{
    atomic_store(&ttl_manual, manual);
}

void sonde__ttl_set_clock(uint32_t now)
{
    atomic_store_explicit(&sonde__coarse_now, now, memory_order_relaxed);
}

static void ttl_tick(void *ud, uint64_t now_ns)
{
    (void)ud;
    (void)now_ns;
    if (atomic_load(&ttl_manual))
        return;
    uint32_t now = mono_seconds();
    atomic_store_explicit(&sonde__coarse_now, now, memory_order_relaxed);
    sonde__ttl_sweep(now);
}

static void ttl_list(struct sonde_family *f)
{
    pthread_mutex_lock(&ttl_timer_lock);
    pthread_mutex_lock(&ttl_lock);
    if (!atomic_load(&ttl_manual) &&
        atomic_load_explicit(&sonde__coarse_now, memory_order_relaxed) == 0)
        atomic_store_explicit(&sonde__coarse_now, mono_seconds(), memory_order_relaxed);
    f->ttl_next = ttl_head;
    ttl_head = f;
    f->ttl_listed = 1;
    ttl_count++;
    pthread_mutex_unlock(&ttl_lock);
    if (!ttl_timer && sonde__runtime_every(1000, ttl_tick, NULL, &ttl_timer) == SONDE_OK &&
        sonde__runtime_start() != SONDE_OK) {
        sonde__runtime_cancel(ttl_timer);
        ttl_timer = 0;
    }
    pthread_mutex_unlock(&ttl_timer_lock);
}

static void ttl_unlist(struct sonde_family *f)
{
    if (!f->ttl_listed)
        return;
    pthread_mutex_lock(&ttl_timer_lock);
    pthread_mutex_lock(&ttl_lock);
    for (struct sonde_family **pp = &ttl_head; *pp; pp = &(*pp)->ttl_next)
        if (*pp == f) {
            *pp = f->ttl_next;
            break;
        }
    f->ttl_listed = 0;
    size_t left = --ttl_count;
    pthread_mutex_unlock(&ttl_lock);
    if (left == 0 && ttl_timer) {
        sonde__runtime_cancel(ttl_timer);
        ttl_timer = 0;
        sonde__runtime_stop();
    }
    pthread_mutex_unlock(&ttl_timer_lock);
}

size_t sonde_family_series_count(const sonde_family *f)
{
    return f ? atomic_load_explicit(&((struct sonde_family *)f)->nseries, memory_order_acquire) : 0;
}

const char *sonde_family_name(const sonde_family *f)
{
    return f ? f->name : "";
}
sonde_metric_type sonde_family_type(const sonde_family *f)
{
    return f ? f->type : SONDE_UNTYPED;
}

#define AS_SINGLE(fn, ctype, TYPE)                                                                 \
    ctype *fn(sonde_family *f)                                                                     \
    {                                                                                              \
        return (f && f->type == TYPE && f->single) ? (ctype *)(void *)f->single : NULL;            \
    }
AS_SINGLE(sonde_family_as_counter, sonde_counter, SONDE_COUNTER)
AS_SINGLE(sonde_family_as_gauge, sonde_gauge, SONDE_GAUGE)
AS_SINGLE(sonde_family_as_histogram, sonde_histogram, SONDE_HISTOGRAM)
AS_SINGLE(sonde_family_as_summary, sonde_summary, SONDE_SUMMARY)

/* ------------------------------------------------------------------------ */
/* Families                                                                 */

void sonde_metric_opts_init(sonde_metric_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        sonde__free(v[i]);
    sonde__free(v);
}

static void family_free(struct sonde_family *f)
{
    if (!f)
        return;
    ttl_unlist(f);
    for (sonde_series *s = f->head; s;) {
        sonde_series *n = s->next;
        series_free(f, s);
        s = n;
    }
    /* Dormant series: only in the table (the dormant list may miss none
     * but may hold revived ones, which are on the live list). */
    for (sonde_series *s = f->dormant; s;) {
        sonde_series *n = s->dnext;
        if (atomic_load_explicit(&s->dormant, memory_order_relaxed)) {
            s->slot = UINT32_MAX; /* cells freed at expiry */
            series_free(f, s);
        }
        s = n;
    }
    for (sonde_series *s = f->retired; s;) {
        sonde_series *n = s->next;
        s->slot = UINT32_MAX; /* cells already freed */
        series_free(f, s);
        s = n;
    }
    if (f->sink) {
        f->sink->slot = UINT32_MAX;
        series_free(f, f->sink);
    }
    struct series_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    sonde__free(t);
    for (struct series_table *r = f->retired_tables; r;) {
        struct series_table *n = r->retired_next;
        sonde__free(r);
        r = n;
    }
    sonde__free(f->name);
    sonde__free(f->om_name);
    sonde__free(f->help);
    sonde__free(f->unit);
    free_strv(f->label_names, f->nlabels);
    free_strv(f->const_kv, f->nconst * 2);
    sonde__free(f->const_text);
    sonde__free(f->bounds);
    free_strv(f->le_text, f->nb + 1);
    free_strv(f->le_text_om, f->nb + 1);
    sonde__free(f->quantiles);
    free_strv(f->q_text, f->nq);
    free_strv(f->q_text_om, f->nq);
    free_strv(f->states, f->nstates);
    pthread_mutex_destroy(&f->lock);
    sonde__free(f);
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
    case SONDE_INFO:
        return "info";
    case SONDE_STATESET:
        return "stateset";
    default:
        return "untyped";
    }
}

/* Describe a family's definition for conflict messages. */
static void describe(sonde_buf *b, sonde_metric_type type, const char *name, char **labels,
                     size_t nl, const char *help)
{
    sonde__buf_printf(b, "%s %s{", type_name(type), name);
    for (size_t i = 0; i < nl; i++)
        sonde__buf_printf(b, "%s%s", i ? "," : "", labels[i]);
    sonde__buf_printf(b, "} help=\"%s\"", help ? help : "");
}

static int same_strv(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static int same_definition(const struct sonde_family *a, const struct sonde_family *b)
{
    if (a->type != b->type || a->is_info != b->is_info || a->exemplars != b->exemplars ||
        a->ttl_s != b->ttl_s)
        return 0;
    if (strcmp(a->help ? a->help : "", b->help ? b->help : "") != 0)
        return 0;
    if (strcmp(a->unit ? a->unit : "", b->unit ? b->unit : "") != 0)
        return 0;
    if (!same_strv(a->label_names, a->nlabels, b->label_names, b->nlabels))
        return 0;
    if (!same_strv(a->const_kv, a->nconst * 2, b->const_kv, b->nconst * 2))
        return 0;
    if (a->native != b->native ||
        (a->native && (a->nat_schema != b->nat_schema || a->nat_max_buckets != b->nat_max_buckets ||
                       a->nat_zero_threshold != b->nat_zero_threshold)))
        return 0;
    if (a->nb != b->nb || (a->nb && memcmp(a->bounds, b->bounds, a->nb * sizeof(double)) != 0))
        return 0;
    if (a->nq != b->nq || (a->nq && memcmp(a->quantiles, b->quantiles, a->nq * sizeof(double))))
        return 0;
    if (!same_strv(a->states, a->nstates, b->states, b->nstates))
        return 0;
    if (a->cb || b->cb)
        return 0; /* callbacks are never shared */
    return 1;
}

int sonde_registry_set_created_timestamps(sonde_registry *reg, int on)
{
    if (!reg)
        reg = sonde_registry_default();
    atomic_store(&reg->created_timestamps, on != 0);
    return SONDE_OK;
}

int sonde_registry_set_utf8_names(sonde_registry *reg, int allow)
{
    if (!reg)
        reg = sonde_registry_default();
    atomic_store(&reg->utf8_names, allow != 0);
    return SONDE_OK;
}

int sonde_registry_set_namespace(sonde_registry *reg, const char *ns)
{
    sonde__clear_error();
    if (!reg)
        reg = sonde_registry_default();
    char *copy = NULL;
    if (ns && *ns) {
        if (!sonde__valid_metric_name(ns)) {
            sonde__set_error("invalid metric namespace \"%s\": must match "
                             "[a-zA-Z_:][a-zA-Z0-9_:]*",
                             ns);
            return SONDE_EBADNAME;
        }
        if (!(copy = sonde__strdup(ns)))
            return SONDE_ENOMEM;
    }
    pthread_rwlock_wrlock(&reg->lock);
    char *old = reg->ns;
    reg->ns = copy;
    pthread_rwlock_unlock(&reg->lock);
    sonde__free(old);
    return SONDE_OK;
}

static char *join_name(const char *rns, const char *ns, const char *sub, const char *name)
{
    sonde_buf b;
    sonde_buf_init(&b);
    if (rns && *rns) {
        sonde__buf_puts(&b, rns);
        sonde__buf_putc(&b, '_');
    }
    if (ns && *ns) {
        sonde__buf_puts(&b, ns);
        sonde__buf_putc(&b, '_');
    }
    if (sub && *sub) {
        sonde__buf_puts(&b, sub);
        sonde__buf_putc(&b, '_');
    }
    if (sonde__buf_puts(&b, name) != SONDE_OK) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static char **dup_strv(const char *const *v, size_t n)
{
    char **out = sonde__calloc(n ? n : 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = sonde__strdup(v[i] ? v[i] : "");
        if (!out[i]) {
            free_strv(out, i);
            return NULL;
        }
    }
    return out;
}

static char *fmt_dup(double v, int om)
{
    char tmp[40];
    if (om)
        sonde__fmt_double_om(tmp, v);
    else
        sonde__fmt_double(tmp, v);
    return sonde__strdup(tmp);
}

/* Build (not register) a family from options; validates everything. */
static int family_build(sonde_registry *reg, sonde_metric_type type, const sonde_metric_opts *o,
                        struct sonde_family **out)
{
    *out = NULL;
    if (!o || !o->name) {
        sonde__set_error("metric options need a name");
        return SONDE_EINVAL;
    }
    struct sonde_family *f = sonde__calloc(1, sizeof *f);
    if (!f)
        return SONDE_ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    f->type = type;
    f->reg = reg;
    int rc = SONDE_ENOMEM;
    /* The registry-wide namespace, except for families that opt out and
     * sonde's own (sonde_*, process_*: names dashboards and alerts know). */
    bool own = (!o->ns || !*o->ns) && (!o->subsystem || !*o->subsystem) &&
               (strncmp(o->name, "sonde_", 6) == 0 || strncmp(o->name, "process_", 8) == 0);
    char *rns = NULL;
    if (!o->no_namespace && !own) {
        pthread_rwlock_rdlock(&reg->lock);
        if (reg->ns && !(rns = sonde__strdup(reg->ns))) {
            pthread_rwlock_unlock(&reg->lock);
            goto fail;
        }
        pthread_rwlock_unlock(&reg->lock);
    }
    f->name = join_name(rns, o->ns, o->subsystem, o->name);
    sonde__free(rns);
    if (!f->name)
        goto fail;
    int utf8 = atomic_load(&reg->utf8_names);
    if (utf8 ? !sonde__valid_utf8_name(f->name) : !sonde__valid_metric_name(f->name)) {
        if (utf8)
            sonde__set_error("invalid metric name \"%s\": must be non-empty valid UTF-8", f->name);
        else
            sonde__set_error("invalid metric name \"%s\": must match [a-zA-Z_:][a-zA-Z0-9_:]* "
                             "(or allow UTF-8 names in the registry)",
                             f->name);
        rc = SONDE_EBADNAME;
        goto fail;
    }
    f->utf8 = !sonde__valid_metric_name(f->name);
    f->help = sonde__strdup(o->help ? o->help : "");
    if (!f->help)
        goto fail;
    /* OpenMetrics family name: counters drop _total, info drops _info. */
    size_t nl = strlen(f->name);
    if (type == SONDE_COUNTER && ends_with(f->name, "_total") && nl > 6)
        f->om_name = sonde__strndup(f->name, nl - 6);
    else if (type == SONDE_INFO && ends_with(f->name, "_info") && nl > 5)
        f->om_name = sonde__strndup(f->name, nl - 5);
    else
        f->om_name = sonde__strdup(f->name);
    if (!f->om_name)
        goto fail;
    if (o->unit && *o->unit) {
        f->unit = sonde__strdup(o->unit);
        if (!f->unit)
            goto fail;
        char suffix[128];
        int n = snprintf(suffix, sizeof suffix, "_%s", o->unit);
        if (n < 0 || (size_t)n >= sizeof suffix || !sonde__valid_label_name(o->unit) ||
            !ends_with(f->om_name, suffix)) {
            sonde__set_error("metric \"%s\": unit \"%s\" must be a name that the metric name "
                             "ends with (\"..._%s%s\")",
                             f->name, o->unit, o->unit, type == SONDE_COUNTER ? "_total" : "");
            rc = SONDE_EBADNAME;
            goto fail;
        }
    }
    /* Labels. */
    if (o->label_count > SONDE_MAX_LABELS || (o->label_count && !o->label_names)) {
        sonde__set_error("metric \"%s\": at most %d label names", f->name, SONDE_MAX_LABELS);
        rc = SONDE_EBADLABEL;
        goto fail;
    }
    if (o->const_label_count > SONDE_MAX_LABELS || (o->const_label_count && !o->const_labels)) {
        sonde__set_error("metric \"%s\": at most %d constant labels", f->name, SONDE_MAX_LABELS);
        rc = SONDE_EBADLABEL;
        goto fail;
    }
    const char *all[2 * SONDE_MAX_LABELS];
    size_t nall = 0;
    for (size_t i = 0; i < o->label_count; i++)
        all[nall++] = o->label_names[i];
    for (size_t i = 0; i < o->const_label_count; i++)
        all[nall++] = o->const_labels[2 * i];
    for (size_t i = 0; i < nall; i++) {
        const char *ln = all[i];
        if (utf8 ? !sonde__valid_utf8_name(ln) : !sonde__valid_label_name(ln)) {
            sonde__set_error("metric \"%s\": invalid label name \"%s\": must %s", f->name,
                             ln ? ln : "(null)",
                             utf8 ? "be non-empty valid UTF-8" : "match [a-zA-Z_][a-zA-Z0-9_]*");
            rc = SONDE_EBADLABEL;
            goto fail;
        }
        if (!sonde__valid_label_name(ln))
            f->utf8 = 1;
        if (ln[0] == '_' && ln[1] == '_') {
            sonde__set_error("metric \"%s\": label name \"%s\" is reserved (starts with __)",
                             f->name, ln);
            rc = SONDE_EBADLABEL;
            goto fail;
        }
        if ((type == SONDE_HISTOGRAM && strcmp(ln, "le") == 0) ||
            (type == SONDE_SUMMARY && strcmp(ln, "quantile") == 0) ||
            (type == SONDE_STATESET && strcmp(ln, f->name) == 0)) {
            sonde__set_error("metric \"%s\": label name \"%s\" is reserved for %s", f->name, ln,
                             type_name(type));
            rc = SONDE_EBADLABEL;
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(all[j], ln) == 0) {
                sonde__set_error("metric \"%s\": label name \"%s\" given twice", f->name, ln);
                rc = SONDE_EBADLABEL;
                goto fail;
            }
        }
    }
    f->nlabels = o->label_count;
    f->label_names = dup_strv(o->label_names, o->label_count);
    if (!f->label_names)
        goto fail;
    f->nconst = o->const_label_count;
    f->const_kv = dup_strv(o->const_labels, o->const_label_count * 2);
    if (!f->const_kv)
        goto fail;
    {
        sonde_buf b;
        sonde_buf_init(&b);
        for (size_t i = 0; i < f->nconst; i++) {
            if (i)
                sonde__buf_putc(&b, ',');
            sonde__buf_puts(&b, f->const_kv[2 * i]);
            sonde__buf_append(&b, "=\"", 2);
            sonde__buf_label_escape(&b, f->const_kv[2 * i + 1], strlen(f->const_kv[2 * i + 1]));
            if (sonde__buf_putc(&b, '"') != SONDE_OK) {
                sonde_buf_free(&b);
                goto fail;
            }
        }
        f->const_text = b.data ? b.data : sonde__strdup("");
        f->const_text_len = b.len;
        if (!f->const_text)
            goto fail;
    }
    f->max_series = o->max_series ? o->max_series : SONDE_DEFAULT_MAX_SERIES;
    /* Histogram buckets. */
    if (type == SONDE_HISTOGRAM &&
        (o->native_bucket_factor != 0 || o->native_max_buckets || o->native_zero_threshold != 0) &&
        !(o->native_bucket_factor > 1 && isfinite(o->native_bucket_factor))) {
        sonde__set_error("histogram \"%s\": native_bucket_factor must be a finite number > 1",
                         f->name);
        rc = SONDE_EINVAL;
        goto fail;
    }
    if (type == SONDE_HISTOGRAM && o->native_bucket_factor > 1 && !o->buckets) {
        /* Native only: no classic buckets. */
    } else if (type == SONDE_HISTOGRAM) {
        const double *bk = o->buckets ? o->buckets : sonde_default_buckets;
        size_t nb = o->buckets ? o->bucket_count : SONDE_DEFAULT_BUCKET_COUNT;
        if (nb > 0 && isinf(bk[nb - 1]) && bk[nb - 1] > 0)
            nb--; /* an explicit +Inf is implicit anyway */
        if (nb == 0 || nb > SONDE_MAX_BUCKETS) {
            sonde__set_error("histogram \"%s\": needs 1 to %d buckets", f->name, SONDE_MAX_BUCKETS);
            rc = SONDE_EBUCKETS;
            goto fail;
        }
        for (size_t i = 0; i < nb; i++) {
            if (!isfinite(bk[i]) || (i && !(bk[i] > bk[i - 1]))) {
                sonde__set_error("histogram \"%s\": buckets must be finite and strictly "
                                 "increasing (bucket %zu)",
                                 f->name, i);
                rc = SONDE_EBUCKETS;
                goto fail;
            }
        }
        f->nb = nb;
        /* Padded with +Inf to an even count for the two-wide compare. */
        f->bounds = sonde__malloc(((nb + 1) & ~(size_t)1) * sizeof(double));
        f->le_text = sonde__calloc(nb + 1, sizeof(char *));
        f->le_text_om = sonde__calloc(nb + 1, sizeof(char *));
        if (!f->bounds || !f->le_text || !f->le_text_om)
            goto fail;
        memcpy(f->bounds, bk, nb * sizeof(double));
        if (nb & 1)
            f->bounds[nb] = INFINITY;
        for (size_t i = 0; i <= nb; i++) {
            double v = i < nb ? bk[i] : INFINITY;
            f->le_text[i] = fmt_dup(v, 0);
            f->le_text_om[i] = fmt_dup(v, 1);
            if (!f->le_text[i] || !f->le_text_om[i])
                goto fail;
        }
    }
    if (type == SONDE_SUMMARY) {
        if (o->quantile_count > SONDE_MAX_QUANTILES || (o->quantile_count && !o->quantiles)) {
            sonde__set_error("summary \"%s\": at most %d quantiles", f->name, SONDE_MAX_QUANTILES);
            rc = SONDE_EOBJECTIVES;
            goto fail;
        }
        for (size_t i = 0; i < o->quantile_count; i++) {
            double q = o->quantiles[i];
            if (!(q >= 0 && q <= 1) || (i && !(q > o->quantiles[i - 1]))) {
                sonde__set_error("summary \"%s\": quantiles must be in [0,1] and increasing "
                                 "(objective %zu)",
                                 f->name, i);
                rc = SONDE_EOBJECTIVES;
                goto fail;
            }
        }
        if (o->max_age_seconds < 0 || (o->max_age_seconds && !isfinite(o->max_age_seconds))) {
            sonde__set_error("summary \"%s\": max_age_seconds must be positive", f->name);
            rc = SONDE_EINVAL;
            goto fail;
        }
        f->nq = o->quantile_count;
        f->max_age = o->max_age_seconds ? o->max_age_seconds : 600;
        f->age_buckets = o->age_buckets ? o->age_buckets : 5;
        if (f->age_buckets > 60)
            f->age_buckets = 60;
        if (f->nq) {
            f->quantiles = sonde__malloc(f->nq * sizeof(double));
            f->q_text = sonde__calloc(f->nq, sizeof(char *));
            f->q_text_om = sonde__calloc(f->nq, sizeof(char *));
            if (!f->quantiles || !f->q_text || !f->q_text_om)
                goto fail;
            memcpy(f->quantiles, o->quantiles, f->nq * sizeof(double));
            for (size_t i = 0; i < f->nq; i++) {
                f->q_text[i] = fmt_dup(f->quantiles[i], 0);
                f->q_text_om[i] = fmt_dup(f->quantiles[i], 1);
                if (!f->q_text[i] || !f->q_text_om[i])
                    goto fail;
            }
        }
    }
    if (type == SONDE_STATESET) {
        if (o->state_count == 0 || !o->states) {
            sonde__set_error("stateset \"%s\": needs at least one state", f->name);
            rc = SONDE_EINVAL;
            goto fail;
        }
        f->nstates = o->state_count;
        f->states = dup_strv(o->states, o->state_count);
        if (!f->states)
            goto fail;
    }
    if (o->exemplars < 0 || o->exemplars > SONDE_EXEMPLARS_FROM_LOG ||
        (o->exemplars && type != SONDE_COUNTER && type != SONDE_HISTOGRAM)) {
        sonde__set_error("metric \"%s\": exemplars are for counters and histograms "
                         "(SONDE_EXEMPLARS_ON or SONDE_EXEMPLARS_FROM_LOG)",
                         f->name);
        rc = SONDE_EINVAL;
        goto fail;
    }
    f->exemplars = o->exemplars;
    if (!(o->series_ttl_seconds >= 0) || o->series_ttl_seconds > 1e9) {
        sonde__set_error("metric \"%s\": series_ttl_seconds must be 0 (none) or a positive "
                         "number of seconds up to 1e9",
                         f->name);
        rc = SONDE_EINVAL;
        goto fail;
    }
    /* Label-less families have one series, which is the family: no TTL. */
    if (f->nlabels && o->series_ttl_seconds > 0)
        f->ttl_s = (uint32_t)ceil(o->series_ttl_seconds);
    f->cells_per_series = cells_for(f);
    if (type == SONDE_HISTOGRAM && o->native_bucket_factor > 1) {
        if ((rc = sonde__native_setup(f, o)) != SONDE_OK)
            goto fail;
        if (!f->le_text) {
            /* The text formats show the classic part: +Inf only. */
            f->le_text = sonde__calloc(1, sizeof(char *));
            f->le_text_om = sonde__calloc(1, sizeof(char *));
            if (!f->le_text || !f->le_text_om)
                goto fail;
            f->le_text[0] = fmt_dup(INFINITY, 0);
            f->le_text_om[0] = fmt_dup(INFINITY, 1);
            if (!f->le_text[0] || !f->le_text_om[0])
                goto fail;
        }
    }
    *out = f;
    return SONDE_OK;
fail:
    family_free(f);
    return rc;
}

/* Register f in reg, or return the identical existing family (f is then
 * freed). */
static int family_register(sonde_registry *reg, struct sonde_family *f, struct sonde_family **out)
{
    pthread_rwlock_wrlock(&reg->lock);
    for (struct sonde_family *e = reg->head; e; e = e->next) {
        if (strcmp(e->name, f->name) != 0)
            continue;
        int same = same_definition(e, f);
        if (!same) {
            sonde_buf b;
            sonde_buf_init(&b);
            sonde__buf_puts(&b, "metric already registered as ");
            describe(&b, e->type, e->name, e->label_names, e->nlabels, e->help);
            sonde__buf_puts(&b, "; new definition ");
            describe(&b, f->type, f->name, f->label_names, f->nlabels, f->help);
            if (e->nb != f->nb || (e->nb && memcmp(e->bounds, f->bounds, e->nb * 8)))
                sonde__buf_puts(&b, " (histogram buckets differ)");
            sonde__set_error("%s", b.data ? b.data : "metric already registered");
            sonde_buf_free(&b);
        }
        pthread_rwlock_unlock(&reg->lock);
        family_free(f);
        if (!same)
            return SONDE_ECONFLICT;
        *out = e;
        return SONDE_OK;
    }
    if (reg->tail)
        reg->tail->next = f;
    else
        reg->head = f;
    reg->tail = f;
    reg->nfamilies++;
    pthread_rwlock_unlock(&reg->lock);
    *out = f;
    return SONDE_OK;
}

/* Shared by every registration path: build, prepare series, register. */
static int family_create(sonde_registry *reg, sonde_metric_type type, const sonde_metric_opts *o,
                         sonde_value_fn cb, void *ud, struct sonde_family **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde__clear_error();
    if (!reg)
        reg = sonde_registry_default();
    struct sonde_family *f;
    int rc = family_build(reg, type, o, &f);
    if (rc)
        return rc;
    f->cb = cb;
    f->cb_ud = ud;
    f->sink = sink_new(f);
    struct series_table *t = table_new(16);
    if (!f->sink || !t) {
        sonde__free(t);
        family_free(f);
        return SONDE_ENOMEM;
    }
    atomic_store_explicit(&f->table, t, memory_order_relaxed);
    if (f->nlabels == 0 && !cb) {
        sonde_series *s = series_new(f, NULL, NULL, 0);
        if (!s) {
            family_free(f);
            return SONDE_ENOMEM;
        }
        f->single = s;
        list_append(f, s);
        atomic_store_explicit(&f->nseries, 1, memory_order_relaxed);
    }
    rc = family_register(reg, f, out);
    if (rc == SONDE_OK && *out == f && f->ttl_s && sonde__on())
        ttl_list(f);
    return rc;
}

int sonde_family_create(sonde_registry *reg, sonde_metric_type type, const sonde_metric_opts *o,
                        sonde_family **out)
{
    if (type != SONDE_COUNTER && type != SONDE_GAUGE && type != SONDE_HISTOGRAM &&
        type != SONDE_SUMMARY && type != SONDE_UNTYPED) {
        sonde__set_error("sonde_family_create: type %d is not counter, gauge, histogram, "
                         "summary or untyped",
                         (int)type);
        return SONDE_EINVAL;
    }
    return family_create(reg, type, o, NULL, NULL, out);
}

int sonde_callback_create(sonde_registry *reg, sonde_metric_type type, const sonde_metric_opts *o,
                          sonde_value_fn fn, void *userdata, sonde_family **out)
{
    if (!fn || (type != SONDE_COUNTER && type != SONDE_GAUGE && type != SONDE_UNTYPED))
        return SONDE_EINVAL;
    if (o && o->label_count) {
        sonde__set_error("callback metric \"%s\" cannot have label names", o->name);
        return SONDE_EBADLABEL;
    }
    /* Off: a plain family that stays at 0; fn is never called. */
    if (!sonde_enabled())
        return family_create(reg, type, o, NULL, NULL, out);
    return family_create(reg, type, o, fn, userdata, out);
}

static int simple_create(sonde_registry *reg, sonde_metric_type type, const char *name,
                         const char *help, const double *buckets, size_t nb, void **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = help;
    o.buckets = buckets;
    o.bucket_count = nb;
    sonde_family *f;
    int rc = sonde_family_create(reg, type, &o, &f);
    if (rc)
        return rc;
    if (!f->single)
        return SONDE_ECONFLICT;
    *out = f->single;
    return SONDE_OK;
}

int sonde_counter_create(sonde_registry *reg, const char *name, const char *help,
                         sonde_counter **out)
{
    return simple_create(reg, SONDE_COUNTER, name, help, NULL, 0, (void **)out);
}

int sonde_gauge_create(sonde_registry *reg, const char *name, const char *help, sonde_gauge **out)
{
    return simple_create(reg, SONDE_GAUGE, name, help, NULL, 0, (void **)out);
}

int sonde_histogram_create(sonde_registry *reg, const char *name, const char *help,
                           const double *buckets, size_t bucket_count, sonde_histogram **out)
{
    return simple_create(reg, SONDE_HISTOGRAM, name, help, buckets, bucket_count, (void **)out);
}

int sonde_stateset_create(sonde_registry *reg, const sonde_metric_opts *o, sonde_stateset **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    if (o && o->label_count) {
        sonde__set_error("stateset \"%s\" cannot have label names", o->name);
        return SONDE_EBADLABEL;
    }
    struct sonde_family *f;
    int rc = family_create(reg, SONDE_STATESET, o, NULL, NULL, &f);
    if (rc)
        return rc;
    *out = (sonde_stateset *)(void *)f->single;
    return SONDE_OK;
}

void sonde_stateset_set(sonde_stateset *ss, size_t index)
{
    sonde_series *s = (sonde_series *)(void *)ss;
    if (!s || index >= s->fam->nstates || !sonde__on())
        return;
    atomic_store_explicit(&s->u.gauge, (uint64_t)index, memory_order_relaxed);
}

size_t sonde_stateset_get(const sonde_stateset *ss)
{
    sonde_series *s = (sonde_series *)(void *)ss;
    return s ? (size_t)atomic_load_explicit(&s->u.gauge, memory_order_relaxed) : 0;
}

int sonde_info_create(sonde_registry *reg, const char *name, const char *help,
                      const char *const *kv, size_t npairs)
{
    if (!name)
        return SONDE_EINVAL;
    char full[256];
    int n = ends_with(name, "_info") ? snprintf(full, sizeof full, "%s", name)
                                     : snprintf(full, sizeof full, "%s_info", name);
    if (n < 0 || (size_t)n >= sizeof full)
        return SONDE_EBADNAME;
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = full;
    o.help = help;
    o.const_labels = kv;
    o.const_label_count = npairs;
    struct sonde_family *f;
    return family_create(reg, SONDE_INFO, &o, NULL, NULL, &f);
}

/* ------------------------------------------------------------------------ */
/* Hot path                                                                 */

#define SERIES(h) ((sonde_series *)(void *)(h))
/* A series' slot changes once, to the sink, when it is removed while another
 * thread may still be updating through its handle. */
#define SLOT(s) __atomic_load_n(&(s)->slot, __ATOMIC_RELAXED)

static void __attribute__((noinline)) counter_inc_slow(sonde_counter *c)
{
    uint64_t *cells = sonde__cells_acquire();
    if (cells)
        SONDE__CELL_ADD_U64(&cells[SLOT(SERIES(c))], 1);
}

void sonde_counter_inc(sonde_counter *c)
{
    uint64_t *cells = sonde__tls_cells;
    if (SONDE_UNLIKELY(!cells)) {
        counter_inc_slow(c);
        return;
    }
    SONDE__CELL_ADD_U64(&cells[SLOT(SERIES(c))], 1);
    SONDE__TOUCH(SERIES(c));
    if (SONDE_UNLIKELY(SERIES(c)->ex != NULL))
        sonde__exemplar_from_log(SERIES(c)->ex, 0, 1);
}

static inline int counter_add_cells(sonde_counter *c, double v)
{
    if (!(v > 0))
        return 0; /* negative, zero and NaN: a counter never goes down */
    uint64_t *cells = sonde__tls_cells;
    if (SONDE_UNLIKELY(!cells)) {
        cells = sonde__cells_acquire();
        if (!cells)
            return 0;
    }
    uint32_t slot = SLOT(SERIES(c));
    SONDE__TOUCH(SERIES(c));
    /* Whole increments stay exact in the integer cell. */
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        SONDE__CELL_ADD_U64(&cells[slot], (uint64_t)v);
    else
        SONDE__CELL_ADD_F64(&cells[slot + 1], v);
    return 1;
}

void sonde_counter_add(sonde_counter *c, double v)
{
    if (counter_add_cells(c, v) && SONDE_UNLIKELY(SERIES(c)->ex != NULL))
        sonde__exemplar_from_log(SERIES(c)->ex, 0, v);
}

void sonde_counter_add_exemplar(sonde_counter *c, double v, const char *const *kv, size_t npairs)
{
    if (counter_add_cells(c, v) && SERIES(c)->ex && (kv || !npairs))
        sonde__exemplar_put(&SERIES(c)->ex->slot[0], v, kv, npairs);
}

double sonde__counter_value(const sonde_series *s)
{
    return (double)sonde__cells_sum_u64(SLOT(s)) + sonde__cells_sum_f64(SLOT(s) + 1);
}

/* Sink cells (failed lookups, removed or expired series) read as 0. */
#define IS_SINK(s) (SLOT(s) < SONDE__SINK_SLOTS)

double sonde_counter_get(const sonde_counter *c)
{
    return c && !IS_SINK(SERIES(c)) ? sonde__counter_value(SERIES(c)) : 0;
}

static inline double bits_to_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static inline uint64_t d_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

void sonde_gauge_set(sonde_gauge *g, double v)
{
    if (SONDE_UNLIKELY(!sonde__on()))
        return;
    atomic_store_explicit(&SERIES(g)->u.gauge, d_to_bits(v), memory_order_relaxed);
    SONDE__TOUCH(SERIES(g));
}

void sonde_gauge_add(sonde_gauge *g, double v)
{
    if (SONDE_UNLIKELY(!sonde__on()))
        return;
    _Atomic uint64_t *p = &SERIES(g)->u.gauge;
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    SONDE__TOUCH(SERIES(g));
}

void sonde_gauge_inc(sonde_gauge *g)
{
    sonde_gauge_add(g, 1);
}
void sonde_gauge_dec(sonde_gauge *g)
{
    sonde_gauge_add(g, -1);
}
void sonde_gauge_sub(sonde_gauge *g, double v)
{
    sonde_gauge_add(g, -v);
}
void sonde_gauge_set_to_current_time(sonde_gauge *g)
{
    sonde_gauge_set(g, sonde__now_wall());
}

double sonde_gauge_get(const sonde_gauge *g)
{
    return g ? bits_to_d(atomic_load_explicit(&SERIES(g)->u.gauge, memory_order_relaxed)) : 0;
}

/*
 * Index of the first bound >= v: the number of bounds b with !(v <= b), so
 * NaN (every comparison false) lands in +Inf. Branch-free; with SSE2 two
 * bounds per compare. bounds is padded with +Inf to an even length, and
 * !(v <= +Inf) only holds for NaN, which must land past every real bound
 * anyway: the padding is subtracted back for that one case.
 */
static inline size_t bucket_index(const double *b, size_t n, double v)
{
#if defined(__SSE2__)
    __m128d vv = _mm_set1_pd(v);
    __m128i acc = _mm_setzero_si128();
    size_t padded = (n + 1) & ~(size_t)1;
    for (size_t i = 0; i < padded; i += 2) {
        __m128d m = _mm_cmpnle_pd(vv, _mm_loadu_pd(b + i));
        acc = _mm_sub_epi64(acc, _mm_castpd_si128(m));
    }
    uint64_t lanes[2];
    _mm_storeu_si128((__m128i *)(void *)lanes, acc);
    size_t idx = (size_t)(lanes[0] + lanes[1]);
    return idx > n ? n : idx;
#else
    size_t idx = 0;
    for (size_t i = 0; i < n; i++)
        idx += !(v <= b[i]);
    return idx;
#endif
}

/* Native histogram, with its classic part when it has buckets. */
static inline void native_observe(const struct sonde_family *f, uint64_t *c, double v)
{
    size_t n = f->nb;
    if (n)
        SONDE__CELL_ADD_U64(&c[bucket_index(f->bounds, n, v)], 1);
    SONDE__CELL_ADD_F64(&c[f->nat_base - 1], v);
    sonde__native_observe(f, c, v);
}

static void __attribute__((noinline)) histogram_observe_slow(sonde_histogram *h, double v)
{
    /* Attach this thread's cells, then take the fast path, which now finds
     * them; without cells the observation is dropped. Out of line so the
     * fast path needs no stack frame to keep v across the call. */
    if (sonde__cells_acquire())
        sonde_histogram_observe(h, v);
}

void sonde_histogram_observe(sonde_histogram *h, double v)
{
    uint64_t *cells = sonde__tls_cells;
    if (SONDE_UNLIKELY(!cells)) {
        histogram_observe_slow(h, v);
        return;
    }
    const sonde_series *s = SERIES(h);
    const struct sonde_family *f = s->fam;
    size_t n = f->nb;
    uint64_t *c = cells + SLOT(s);
    SONDE__TOUCH(s);
    if (SONDE_UNLIKELY(f->native)) {
        native_observe(f, c, v);
        if (SONDE_UNLIKELY(s->ex != NULL))
            sonde__exemplar_from_log(s->ex, n ? (uint32_t)bucket_index(f->bounds, n, v) : 0, v);
        return;
    }
    size_t idx = bucket_index(f->bounds, n, v);
    SONDE__CELL_ADD_U64(&c[idx], 1);
    SONDE__CELL_ADD_F64(&c[n + 1], v);
    if (SONDE_UNLIKELY(s->ex != NULL))
        sonde__exemplar_from_log(s->ex, (uint32_t)idx, v);
}

void sonde_histogram_observe_exemplar(sonde_histogram *h, double v, const char *const *kv,
                                      size_t npairs)
{
    sonde_series *s = SERIES(h);
    struct sonde__exemplars *ex = s->ex;
    const struct sonde_family *f = s->fam;
    uint64_t *cells = sonde__tls_cells;
    if (SONDE_UNLIKELY(!cells) && !(cells = sonde__cells_acquire()))
        return;
    uint64_t *c = cells + SLOT(s);
    SONDE__TOUCH(s);
    size_t idx = 0;
    if (f->native)
        native_observe(f, c, v);
    if (f->nb)
        idx = bucket_index(f->bounds, f->nb, v);
    if (!f->native) {
        SONDE__CELL_ADD_U64(&c[idx], 1);
        SONDE__CELL_ADD_F64(&c[f->nb + 1], v);
    }
    if (ex && (kv || !npairs))
        sonde__exemplar_put(&ex->slot[idx < ex->n ? idx : 0], v, kv, npairs);
}

uint64_t sonde_histogram_get_count(const sonde_histogram *h)
{
    if (!h || IS_SINK(SERIES(h)))
        return 0;
    const sonde_series *s = SERIES(h);
    uint64_t total = 0;
    if (s->fam->native) {
        uint32_t z = SLOT(s) + s->fam->nat_base;
        for (uint32_t i = 0; i < 2 + 2 * s->fam->nat_width; i++)
            total += sonde__cells_sum_u64(z + i);
        return total;
    }
    for (size_t i = 0; i <= s->fam->nb; i++)
        total += sonde__cells_sum_u64(SLOT(s) + (uint32_t)i);
    return total;
}

double sonde_histogram_get_sum(const sonde_histogram *h)
{
    if (!h || IS_SINK(SERIES(h)))
        return 0;
    const sonde_series *s = SERIES(h);
    if (s->fam->native)
        return sonde__cells_sum_f64(SLOT(s) + s->fam->nat_base - 1);
    return sonde__cells_sum_f64(SLOT(s) + (uint32_t)s->fam->nb + 1);
}

/* ------------------------------------------------------------------------ */
/* Bucket helpers                                                           */

int sonde_buckets_linear(double start, double width, size_t count, double *out)
{
    if (!out || count == 0 || !(width > 0) || !isfinite(start) || !isfinite(width))
        return SONDE_EINVAL;
    for (size_t i = 0; i < count; i++)
        out[i] = start + width * (double)i;
    return SONDE_OK;
}

int sonde_buckets_exponential(double start, double factor, size_t count, double *out)
{
    if (!out || count == 0 || !(start > 0) || !(factor > 1) || !isfinite(start) ||
        !isfinite(factor))
        return SONDE_EINVAL;
    double v = start;
    for (size_t i = 0; i < count; i++) {
        out[i] = v;
        v *= factor;
    }
    return SONDE_OK;
}
