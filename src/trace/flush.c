/*
 * The flush (collecting closed minutes into the memory ring and the store),
 * window queries, baselines and anomaly flags. Everything here runs under
 * the tracer lock, which the hot path never takes.
 */
#include "trace_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MIN INT64_C(60000000000)
/* Minutes [M - MEM_MINUTES, M] are answered from memory. */
#define MEM_MINUTES (TRACE_RING_MINUTES - 2)
/* Prune the store at most this often (minutes). */
#define PRUNE_EVERY 60

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* A consistent copy of a slot's figures. */
struct slot_copy {
    uint64_t count, errors, sum_ns, min_ns, max_ns, zero;
    uint32_t bins[TRACE_NBINS];
};

/* Copy slot s of minute m. Returns 0 when the copy is complete and
 * consistent, -1 when the writer changed the slot underneath (retagged). */
static int copy_slot(const struct trace_slot *s, int64_t m, struct slot_copy *c)
{
    if (__atomic_load_n(&s->tag, __ATOMIC_ACQUIRE) != m)
        return -1;
    c->count = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    c->errors = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
    c->sum_ns = __atomic_load_n(&s->sum_ns, __ATOMIC_RELAXED);
    c->min_ns = __atomic_load_n(&s->min_ns, __ATOMIC_RELAXED);
    c->max_ns = __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED);
    c->zero = __atomic_load_n(&s->zero, __ATOMIC_RELAXED);
    for (int i = 0; i < TRACE_NBINS; i++)
        c->bins[i] = __atomic_load_n(&s->bins[i], __ATOMIC_RELAXED);
    /* The writer retags before it clears (release fence between): if any
     * cleared value was seen, the new tag is visible now. */
    TRACE_FENCE(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&s->tag, __ATOMIC_RELAXED) != m)
        return -1;
    return 0;
}

/* Add a copy into sketch sk with exact count, sum, min and max. */
static void add_copy(sonde__sketch *sk, const struct slot_copy *c)
{
    if (c->count == 0)
        return;
    /* Bins first (they also move sum/min/max, which are then set exactly). */
    double sum = sk->sum, mn = sk->min, mx = sk->max;
    uint64_t count = sk->count;
    if (c->zero)
        sonde__sketch_add_n(sk, 0.0, c->zero);
    for (int i = 0; i < TRACE_NBINS; i++)
        if (c->bins[i])
            sonde__sketch_add_n(sk, sonde__sketch_bin_value(i + TRACE_IDX_LO), c->bins[i]);
    /* A torn best-effort copy may disagree with its count; the count of
     * values actually added is what the sketch holds. */
    sk->sum = sum + (double)c->sum_ns * 1e-9;
    double cmin = (double)c->min_ns * 1e-9, cmax = (double)c->max_ns * 1e-9;
    sk->min = count && mn < cmin ? mn : cmin;
    sk->max = count && mx > cmax ? mx : cmax;
}

/* Collect a closed slot of minute m into sk. The acc's sequence must be
 * even (no update in flight); see trace_int.h. Returns 1 when collected. */
static int collect_slot(struct trace_acc *a, struct trace_slot *s, int64_t m, sonde__sketch *sk,
                        uint64_t *errors, struct slot_copy *c)
{
    uint32_t seq = 0;
    int even = 0;
    for (int spin = 0; spin < 2000; spin++) {
        seq = __atomic_load_n(&a->seq, __ATOMIC_ACQUIRE);
        if (!(seq & 1)) {
            even = 1;
            break;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    if (!even)
        return 0; /* a writer preempted mid-update: next flush */
    if (copy_slot(s, m, c) != 0)
        return 0;
    __atomic_store_n(&s->harvested, m, __ATOMIC_RELEASE);
    /* Send the writer's next update of this slot through its slow path,
     * which finds the minute collected and counts the update as late
     * instead of adding it where nobody will read it. */
    __atomic_store_n(&s->t_span, 0, __ATOMIC_RELAXED);
    if (c->count == 0)
        return 0;
    add_copy(sk, c);
    *errors += c->errors;
    return 1;
}

/* Merge sketch sk (+ errors) for minute m into the ring. */
static void ring_merge(sonde__tracer *tr, sonde_op *op, int64_t m, const sonde__sketch *sk,
                       uint64_t errors, int64_t now_min)
{
    if (m < now_min - MEM_MINUTES - 1)
        return; /* too old for memory; the store has it */
    struct ring_entry *e = &op->ring[m & (TRACE_RING_MINUTES - 1)];
    if (e->minute > m)
        return;
    sonde_buf_reset(&tr->enc);
    if (e->minute == m && e->blob) {
        sonde__sketch_reset(&tr->scratch2);
        if (sonde__sketch_decode(&tr->scratch2, e->blob, e->len) != SONDE_OK)
            sonde__sketch_reset(&tr->scratch2);
        sonde__sketch_merge(&tr->scratch2, sk);
        if (sonde__sketch_encode(&tr->scratch2, &tr->enc) != SONDE_OK)
            return;
        errors += e->errors;
    } else if (sonde__sketch_encode(sk, &tr->enc) != SONDE_OK) {
        return;
    }
    uint8_t *blob = sonde__malloc(tr->enc.len);
    if (!blob)
        return;
    memcpy(blob, tr->enc.data, tr->enc.len);
    sonde__free(e->blob);
    e->blob = blob;
    e->len = tr->enc.len;
    e->minute = m;
    e->errors = errors;
}

static void queue_row(sonde__tracer *tr, sonde_op *op, int64_t m, const sonde__sketch *sk,
                      uint64_t errors)
{
    if (!tr->store)
        return;
    sonde_buf_reset(&tr->enc);
    if (sonde__sketch_encode(sk, &tr->enc) != SONDE_OK)
        return;
    sonde__op_row row;
    memset(&row, 0, sizeof row);
    row.op = op->name;
    row.op_len = op->name_len;
    row.minute = m;
    row.errors = errors;
    row.sketch = (const uint8_t *)tr->enc.data;
    row.sketch_len = tr->enc.len;
    if (sonde__row_fill_summary(&row) != SONDE_OK)
        return;
    sonde__store_enqueue(tr->store, &row);
}

/* Collect every closed minute of op. */
static void collect_op(sonde__tracer *tr, sonde_op *op, int64_t now_ns, int force,
                       struct slot_copy *c)
{
    int64_t now_min = floor_div(now_ns, NS_PER_MIN);
    int64_t mins[8];
    int nm = 0;
    uint64_t late = 0;
    struct trace_acc *prev = NULL;
    struct trace_acc *a = __atomic_load_n(&op->accs, __ATOMIC_ACQUIRE);
    for (; a; a = a->next) {
        uint64_t l = __atomic_load_n(&a->late, __ATOMIC_RELAXED);
        late += l - a->late_seen;
        a->late_seen = l;
        for (int k = 0; k < 2; k++) {
            struct trace_slot *s = &a->slot[k];
            int64_t tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
            if (tag == TRACE_NO_MINUTE || tag == __atomic_load_n(&s->harvested, __ATOMIC_RELAXED))
                continue;
            if (!force && now_ns < (tag + 1) * NS_PER_MIN + tr->grace_ns)
                continue;
            int seen = 0;
            for (int i = 0; i < nm; i++)
                seen |= mins[i] == tag;
            if (!seen && nm < (int)SONDE_ARRAY_LEN(mins))
                mins[nm++] = tag;
        }
    }
    if (late && tr->dropped_late)
        sonde_counter_add(tr->dropped_late, (double)late);
    for (int i = 0; i < nm; i++) {
        int64_t m = mins[i];
        sonde__sketch_reset(&tr->scratch);
        uint64_t errors = 0;
        int got = 0;
        for (a = __atomic_load_n(&op->accs, __ATOMIC_ACQUIRE); a; a = a->next)
            for (int k = 0; k < 2; k++) {
                struct trace_slot *s = &a->slot[k];
                if (__atomic_load_n(&s->tag, __ATOMIC_ACQUIRE) == m &&
                    __atomic_load_n(&s->harvested, __ATOMIC_RELAXED) != m)
                    got += collect_slot(a, s, m, &tr->scratch, &errors, c);
            }
        if (!got)
            continue;
        ring_merge(tr, op, m, &tr->scratch, errors, now_min);
        queue_row(tr, op, m, &tr->scratch, errors);
    }
    /* Free the accumulators of exited threads once nothing is left in them.
     * Only the flush unlinks; writers only push at the head. */
    prev = NULL;
    a = __atomic_load_n(&op->accs, __ATOMIC_ACQUIRE);
    while (a) {
        struct trace_acc *next = a->next;
        int done = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE) == ACC_DEAD;
        for (int k = 0; k < 2 && done; k++) {
            int64_t tag = __atomic_load_n(&a->slot[k].tag, __ATOMIC_RELAXED);
            if (tag != TRACE_NO_MINUTE &&
                tag != __atomic_load_n(&a->slot[k].harvested, __ATOMIC_RELAXED) &&
                __atomic_load_n(&a->slot[k].count, __ATOMIC_RELAXED) != 0)
                done = 0;
        }
        if (done) {
            int unlinked = 0;
            if (!prev) {
                struct trace_acc *expect = a;
                unlinked = __atomic_compare_exchange_n(&op->accs, &expect, next, 0,
                                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
                if (!unlinked) {
                    /* A writer pushed in front: find the new predecessor. */
                    for (prev = expect; prev && prev->next != a; prev = prev->next)
                        ;
                }
            }
            if (!unlinked && prev) {
                prev->next = next;
                unlinked = 1;
            }
            if (unlinked) {
                sonde__free(a);
                a = next;
                continue;
            }
        }
        prev = a;
        a = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Windows                                                                  */

/* Best-effort read of the minutes not collected yet, in [from, to]. */
static void add_live(sonde_op *op, int64_t from, int64_t to, sonde__sketch *sk, uint64_t *errors,
                     struct slot_copy *c)
{
    for (struct trace_acc *a = __atomic_load_n(&op->accs, __ATOMIC_ACQUIRE); a; a = a->next)
        for (int k = 0; k < 2; k++) {
            struct trace_slot *s = &a->slot[k];
            int64_t tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
            if (tag == TRACE_NO_MINUTE || tag < from || tag > to ||
                tag == __atomic_load_n(&s->harvested, __ATOMIC_ACQUIRE))
                continue;
            if (copy_slot(s, tag, c) != 0 || c->count == 0)
                continue;
            /* Figures of a slot being written may disagree by a few
             * operations; keep them coherent. */
            uint64_t binned = c->zero;
            for (int i = 0; i < TRACE_NBINS; i++)
                binned += c->bins[i];
            if (binned == 0)
                continue;
            if (c->min_ns > c->max_ns || c->max_ns == 0) {
                /* min/max not written yet for the newest value: take the
                 * bounds from the bins. */
                int lo = -1, hi = -1;
                for (int i = 0; i < TRACE_NBINS; i++)
                    if (c->bins[i]) {
                        if (lo < 0)
                            lo = i;
                        hi = i;
                    }
                c->min_ns = c->zero || lo < 0
                                ? 0
                                : (uint64_t)(sonde__sketch_bin_value(lo + TRACE_IDX_LO) * 1e9);
                c->max_ns =
                    hi < 0 ? 0 : (uint64_t)(sonde__sketch_bin_value(hi + TRACE_IDX_LO) * 1e9);
            }
            c->count = binned;
            if (c->errors > c->count)
                c->errors = c->count;
            add_copy(sk, c);
            *errors += c->errors;
        }
}

static void add_ring(sonde_op *op, int64_t from, int64_t to, sonde__sketch *sk, uint64_t *errors)
{
    for (int i = 0; i < TRACE_RING_MINUTES; i++) {
        const struct ring_entry *e = &op->ring[i];
        if (e->minute == TRACE_NO_MINUTE || e->minute < from || e->minute > to || !e->blob)
            continue;
        if (sonde__sketch_decode(sk, e->blob, e->len) == SONDE_OK)
            *errors += e->errors;
    }
}

void sonde__stats_fill(sonde_op_stats *st, const sonde__sketch *sk, uint64_t errors,
                       const sonde_baseline *b, double def_factor, uint64_t def_min_count)
{
    st->count = sk->count;
    st->errors = errors > sk->count ? sk->count : errors;
    if (sk->count) {
        st->success_rate = (double)(st->count - st->errors) / (double)st->count;
        st->avg_seconds = sk->sum / (double)sk->count;
        st->min_seconds = sk->min;
        st->max_seconds = sk->max;
        st->p50_seconds = sonde__sketch_quantile(sk, 0.50);
        st->p90_seconds = sonde__sketch_quantile(sk, 0.90);
        st->p95_seconds = sonde__sketch_quantile(sk, 0.95);
        st->p99_seconds = sonde__sketch_quantile(sk, 0.99);
    } else {
        st->success_rate = st->avg_seconds = st->min_seconds = st->max_seconds = NAN;
        st->p50_seconds = st->p90_seconds = st->p95_seconds = st->p99_seconds = NAN;
    }
    st->has_baseline = b != NULL;
    st->anomaly = 0;
    if (b) {
        double f = b->factor > 0 ? b->factor : def_factor;
        uint64_t mc = b->min_count ? b->min_count : def_min_count;
        st->baseline_avg_seconds = b->avg_seconds;
        st->baseline_p95_seconds = b->p95_seconds;
        st->baseline_factor = f;
        if (sk->count && sk->count >= mc)
            st->anomaly = (b->avg_seconds > 0 && st->avg_seconds > f * b->avg_seconds) ||
                          (b->p95_seconds > 0 && st->p95_seconds > f * b->p95_seconds);
    } else {
        st->baseline_avg_seconds = st->baseline_p95_seconds = st->baseline_factor = 0;
    }
}

struct store_acc {
    sonde__tracer *tr;
    sonde__sketch *sk;
    uint64_t errors;
};

static int add_store_row(const sonde__op_row *row, void *ud)
{
    struct store_acc *s = ud;
    if (!row->sketch || row->errors == UINT64_MAX ||
        sonde__sketch_decode(s->sk, row->sketch, row->sketch_len) != SONDE_OK) {
        if (s->tr->store)
            sonde__store_count_decode_error(s->tr->store);
        return 0;
    }
    s->errors += row->errors;
    return 0;
}

/* First minute memory answers for, at current minute now_min. */
static int64_t mem_from(const sonde__tracer *tr, int64_t now_min)
{
    int64_t lo = now_min - MEM_MINUTES;
    return tr->start_minute > lo ? tr->start_minute : lo;
}

/* Window [now_min - minutes, now_min] of op into sk. Tracer lock held. */
static void window(sonde__tracer *tr, sonde_op *op, const char *name, int64_t now_min,
                   unsigned minutes, sonde__sketch *sk, uint64_t *errors, struct slot_copy *c)
{
    int64_t from = now_min - (int64_t)minutes, mf = mem_from(tr, now_min);
    if (from < mf && tr->store) {
        struct store_acc s = {tr, sk, 0};
        sonde__store_read(tr->store, name, from, mf - 1, add_store_row, &s);
        *errors += s.errors;
    }
    if (op) {
        int64_t lo = from > mf ? from : mf;
        add_ring(op, lo, now_min, sk, errors);
        add_live(op, lo, now_min, sk, errors, c);
    }
}

static void stats_header(sonde_op_stats *st, const char *name, unsigned minutes, int64_t now_min)
{
    memset(st, 0, sizeof *st);
    size_t n = strlen(name);
    if (n > SONDE_OP_NAME_MAX)
        n = SONDE_OP_NAME_MAX;
    memcpy(st->operation, name, n);
    st->window_minutes = minutes;
    st->from_unix = (now_min - (int64_t)minutes) * 60;
    st->to_unix = (now_min + 1) * 60;
}

int sonde__trace_stats(sonde__tracer *tr, const char *name, unsigned minutes, sonde_op_stats *out)
{
    if (minutes == 0)
        minutes = 60;
    sonde__sketch sk;
    if (sonde__sketch_init(&sk, 0) != SONDE_OK)
        return SONDE_ENOMEM;
    struct slot_copy *c = sonde__malloc(sizeof *c);
    if (!c) {
        sonde__sketch_free(&sk);
        return SONDE_ENOMEM;
    }
    int64_t now_min = floor_div(sonde__trace_now_wall_ns(), NS_PER_MIN);
    pthread_mutex_lock(&tr->lock);
    sonde_op *op = sonde__trace_op_find(tr, name);
    uint64_t errors = 0;
    window(tr, op, name, now_min, minutes, &sk, &errors, c);
    int rc = SONDE_OK;
    if (!op && sk.count == 0) {
        rc = SONDE_ENOTFOUND;
    } else {
        stats_header(out, name, minutes, now_min);
        sonde__stats_fill(out, &sk, errors, op && op->has_baseline ? &op->baseline : NULL,
                          tr->factor, tr->min_count);
    }
    pthread_mutex_unlock(&tr->lock);
    sonde__free(c);
    sonde__sketch_free(&sk);
    return rc;
}

/* ---- listing every operation ---- */

struct agg {
    char *name;
    sonde__sketch sk;
    uint64_t errors;
    const sonde_baseline *baseline;
};

struct agg_set {
    struct agg *v;
    size_t n, cap;
    int failed;
    sonde__store *store; /* for decode error counts */
};

static struct agg *agg_get(struct agg_set *s, const char *name, size_t len)
{
    /* Rows arrive grouped by operation: the last one is the likely hit. */
    for (size_t i = s->n; i-- > 0;)
        if (strlen(s->v[i].name) == len && memcmp(s->v[i].name, name, len) == 0)
            return &s->v[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct agg *v = sonde__realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->failed = 1;
            return NULL;
        }
        s->v = v;
        s->cap = cap;
    }
    struct agg *a = &s->v[s->n];
    memset(a, 0, sizeof *a);
    a->name = sonde__strndup(name, len);
    if (!a->name || sonde__sketch_init(&a->sk, 0) != SONDE_OK) {
        sonde__free(a->name);
        s->failed = 1;
        return NULL;
    }
    s->n++;
    return a;
}

static void agg_free(struct agg_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        sonde__free(s->v[i].name);
        sonde__sketch_free(&s->v[i].sk);
    }
    sonde__free(s->v);
}

static int agg_row(const sonde__op_row *row, void *ud)
{
    struct agg_set *s = ud;
    if (!row->op || row->op_len == 0 || row->op_len > SONDE_OP_NAME_MAX ||
        memchr(row->op, '\0', row->op_len))
        return 0;
    struct agg *a = agg_get(s, row->op, row->op_len);
    if (!a)
        return 1;
    if (!row->sketch || row->errors == UINT64_MAX ||
        sonde__sketch_decode(&a->sk, row->sketch, row->sketch_len) != SONDE_OK) {
        if (s->store)
            sonde__store_count_decode_error(s->store);
        return 0;
    }
    a->errors += row->errors;
    return 0;
}

static int cmp_agg(const void *x, const void *y)
{
    return strcmp(((const struct agg *)x)->name, ((const struct agg *)y)->name);
}

static int agg_to_stats(struct agg_set *s, unsigned minutes, int64_t now_min, double factor,
                        uint64_t min_count, sonde_op_stats **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!s->n)
        return SONDE_OK;
    qsort(s->v, s->n, sizeof *s->v, cmp_agg);
    sonde_op_stats *v = sonde__calloc(s->n, sizeof *v);
    if (!v)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        stats_header(&v[i], s->v[i].name, minutes, now_min);
        sonde__stats_fill(&v[i], &s->v[i].sk, s->v[i].errors, s->v[i].baseline, factor, min_count);
    }
    *out = v;
    *count = s->n;
    return SONDE_OK;
}

int sonde__trace_list(sonde__tracer *tr, unsigned minutes, sonde_op_stats **out, size_t *n)
{
    if (minutes == 0)
        minutes = 60;
    struct slot_copy *c = sonde__malloc(sizeof *c);
    if (!c)
        return SONDE_ENOMEM;
    struct agg_set set = {0};
    set.store = tr->store;
    int64_t now_min = floor_div(sonde__trace_now_wall_ns(), NS_PER_MIN);
    pthread_mutex_lock(&tr->lock);
    int64_t from = now_min - (int64_t)minutes, mf = mem_from(tr, now_min);
    if (from < mf && tr->store)
        sonde__store_read(tr->store, NULL, from, mf - 1, agg_row, &set);
    int64_t lo = from > mf ? from : mf;
    for (sonde_op *op = tr->ops_head; op && !set.failed; op = op->next) {
        struct agg *a = agg_get(&set, op->name, op->name_len);
        if (!a)
            break;
        add_ring(op, lo, now_min, &a->sk, &a->errors);
        add_live(op, lo, now_min, &a->sk, &a->errors, c);
        a->baseline = op->has_baseline ? &op->baseline : NULL;
    }
    int rc = set.failed ? SONDE_ENOMEM
                        : agg_to_stats(&set, minutes, now_min, tr->factor, tr->min_count, out, n);
    pthread_mutex_unlock(&tr->lock);
    agg_free(&set);
    sonde__free(c);
    return rc;
}

/* ---- reading a store alone (sonde performance --store) ---- */

struct base_set {
    sonde_baseline *v;
    char **names;
    size_t n, cap;
};

static int keep_baseline(const sonde__baseline_row *b, void *ud)
{
    struct base_set *s = ud;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        sonde_baseline *v = sonde__realloc(s->v, cap * sizeof *v);
        if (!v)
            return 1;
        s->v = v;
        char **nm = sonde__realloc(s->names, cap * sizeof *nm);
        if (!nm)
            return 1;
        s->names = nm;
        s->cap = cap;
    }
    s->names[s->n] = sonde__strdup(b->op);
    if (!s->names[s->n])
        return 1;
    sonde_baseline *x = &s->v[s->n++];
    memset(x, 0, sizeof *x);
    x->avg_seconds = b->avg;
    x->p95_seconds = b->p95;
    x->factor = b->factor;
    x->window_minutes = b->window_minutes;
    x->min_count = b->min_count;
    return 0;
}

int sonde_trace_read_store(const char *store, const char *operation, unsigned minutes,
                           sonde_op_stats **out, size_t *count)
{
    if (!store || !out || !count)
        return SONDE_EINVAL;
    *out = NULL;
    *count = 0;
    if (minutes == 0)
        minutes = 60;
    sonde__clear_error();
    char err[512] = "";
    sonde__store *st;
    int rc = sonde__store_open_readonly(store, &st, err, sizeof err);
    if (rc != SONDE_OK) {
        sonde__set_error("%s", err);
        return rc == SONDE_EUNREACHABLE || rc == SONDE_EINVAL || rc == SONDE_ENOMEM ? rc
                                                                                    : SONDE_EIO;
    }
    int64_t now_min = floor_div(sonde__trace_now_wall_ns(), NS_PER_MIN);
    struct agg_set set = {0};
    set.store = st;
    rc = sonde__store_read(st, operation, now_min - (int64_t)minutes, now_min, agg_row, &set);
    struct base_set bs = {0};
    if (rc == SONDE_OK)
        sonde__store_read_baselines(st, keep_baseline, &bs);
    if (rc == SONDE_OK && !set.failed) {
        for (size_t i = 0; i < set.n; i++)
            for (size_t j = 0; j < bs.n; j++)
                if (strcmp(set.v[i].name, bs.names[j]) == 0)
                    set.v[i].baseline = &bs.v[j];
        rc = agg_to_stats(&set, minutes, now_min, 2.0, 10, out, count);
    } else if (rc == SONDE_OK) {
        rc = SONDE_ENOMEM;
    } else if (rc != SONDE_EUNREACHABLE && rc != SONDE_ENOMEM) {
        rc = SONDE_EIO;
    }
    agg_free(&set);
    for (size_t j = 0; j < bs.n; j++)
        sonde__free(bs.names[j]);
    sonde__free(bs.names);
    sonde__free(bs.v);
    sonde__store_destroy(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Baselines                                                                */

int sonde__trace_set_baseline(sonde__tracer *tr, const char *name, const sonde_baseline *b)
{
    if (b && (!(b->avg_seconds >= 0) || !(b->p95_seconds >= 0) || isinf(b->avg_seconds) ||
              isinf(b->p95_seconds) || !(b->factor >= 0) || isinf(b->factor) ||
              (b->factor > 0 && b->factor <= 1))) {
        sonde__set_error("baseline figures must be finite and >= 0, factor > 1");
        return SONDE_EINVAL;
    }
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    sonde_op *op = sonde__trace_op_find(tr, name);
    if (!op) {
        int rc = sonde__trace_op_create(tr, &o, &op);
        if (rc != SONDE_OK)
            return rc;
    }
    pthread_mutex_lock(&tr->lock);
    if (b) {
        op->baseline = *b;
        op->has_baseline = 1;
        if (!op->anomaly_gauge)
            op->anomaly_gauge = sonde_family_gauge(tr->anomaly_fam, op->name);
    } else {
        op->has_baseline = 0;
        if (__atomic_exchange_n(&op->anomalous, 0, __ATOMIC_RELAXED) && op->anomaly_gauge)
            sonde_gauge_set(op->anomaly_gauge, 0);
    }
    if (tr->store) {
        sonde__baseline_row row;
        if (b) {
            row.op = op->name;
            row.avg = b->avg_seconds;
            row.p95 = b->p95_seconds;
            row.factor = b->factor > 0 ? b->factor : tr->factor;
            row.window_minutes = b->window_minutes ? b->window_minutes : tr->window_minutes;
            row.min_count = b->min_count ? b->min_count : tr->min_count;
        }
        sonde__store_enqueue_baseline(tr->store, op->name, b ? &row : NULL);
    }
    pthread_mutex_unlock(&tr->lock);
    return SONDE_OK;
}

/* ------------------------------------------------------------------------ */
/* The flush step                                                           */

struct change {
    sonde_op_stats st;
    int anomalous;
};

void sonde__trace_tick(sonde__tracer *tr, int force)
{
    sonde__trace_clock_update();
    int64_t now_ns = sonde__trace_now_wall_ns();
    int64_t now_min = floor_div(now_ns, NS_PER_MIN);
    struct slot_copy *c = sonde__malloc(sizeof *c);
    if (!c)
        return;
    struct change *changes = NULL;
    size_t nchanges = 0, capchanges = 0;
    pthread_mutex_lock(&tr->lock);
    for (sonde_op *op = tr->ops_head; op; op = op->next)
        collect_op(tr, op, now_ns, force, c);
    /* Baselines: judge each operation's window. */
    for (sonde_op *op = tr->ops_head; op; op = op->next) {
        if (!op->has_baseline)
            continue;
        unsigned w = op->baseline.window_minutes ? op->baseline.window_minutes : tr->window_minutes;
        sonde__sketch_reset(&tr->scratch);
        uint64_t errors = 0;
        window(tr, op, op->name, now_min, w, &tr->scratch, &errors, c);
        sonde_op_stats st;
        stats_header(&st, op->name, w, now_min);
        sonde__stats_fill(&st, &tr->scratch, errors, &op->baseline, tr->factor, tr->min_count);
        int was = __atomic_load_n(&op->anomalous, __ATOMIC_RELAXED);
        if (st.anomaly == was)
            continue;
        __atomic_store_n(&op->anomalous, st.anomaly, __ATOMIC_RELAXED);
        if (op->anomaly_gauge)
            sonde_gauge_set(op->anomaly_gauge, st.anomaly);
        if (nchanges == capchanges) {
            size_t cap = capchanges ? capchanges * 2 : 4;
            struct change *v = sonde__realloc(changes, cap * sizeof *v);
            if (!v)
                continue;
            changes = v;
            capchanges = cap;
        }
        changes[nchanges].st = st;
        changes[nchanges].anomalous = st.anomaly;
        nchanges++;
    }
    sonde__store *store = tr->store;
    if (store && (tr->last_prune_minute == TRACE_NO_MINUTE ||
                  now_min - tr->last_prune_minute >= PRUNE_EVERY)) {
        tr->last_prune_minute = now_min;
        tr->prune_before = now_min - (int64_t)(tr->retention_hours * 60.0);
    }
    int64_t before = tr->prune_before;
    /* The store is written outside the tracer lock (queries keep working);
     * it has its own locks, and only this thread (or stop) replaces it. */
    pthread_mutex_unlock(&tr->lock);
    sonde__free(c);
    if (store) {
        if (force)
            sonde__store_flush_now(store);
        else
            sonde__store_flush(store);
        if (before != TRACE_NO_MINUTE) {
            int more = 0;
            sonde__store_prune(store, before, &more);
            /* Only this thread (or stop, after it) changes prune_before. */
            pthread_mutex_lock(&tr->lock);
            if (!more && tr->prune_before == before)
                tr->prune_before = TRACE_NO_MINUTE;
            pthread_mutex_unlock(&tr->lock);
        }
    }
    for (size_t i = 0; i < nchanges; i++) {
        const sonde_op_stats *st = &changes[i].st;
        if (changes[i].anomalous)
            sonde__diag(SONDE_LOG_WARNING, "sonde.trace",
                        "operation %s: anomaly over %u min: avg %.6g s, p95 %.6g s "
                        "(baseline avg %.6g s, p95 %.6g s, factor %.3g, %llu operations)",
                        st->operation, st->window_minutes, st->avg_seconds, st->p95_seconds,
                        st->baseline_avg_seconds, st->baseline_p95_seconds, st->baseline_factor,
                        (unsigned long long)st->count);
        else
            sonde__diag(SONDE_LOG_INFO, "sonde.trace", "operation %s: back within its baseline",
                        st->operation);
        sonde__trace_anomaly_notify(st, changes[i].anomalous);
    }
    sonde__free(changes);
}
