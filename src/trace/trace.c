/*
 * Tracers, operations and the hot path (sonde_op_begin / sonde_op_end).
 * See trace_int.h for the accumulator protocol.
 *
 * Per-thread tables. Each thread has a table, indexed by operation id, of
 * its accumulators. Operation ids are global and never reused, so a table
 * entry can never be mistaken for another operation's. The table is only
 * read and written by its thread; the flush finds accumulators through the
 * operation's list instead.
 *
 * Accumulator lifetime. An accumulator is reachable from its operation's
 * list and from its thread's table. When the thread exits, the table's
 * destructor marks it DEAD and the flush frees it once its minutes are
 * collected. When a tracer is destroyed (tests, shutdown) accumulators of
 * threads still alive are marked ORPHAN and left to their thread's
 * destructor. The marks are exchanged atomically, so exactly one side frees.
 */
#include "trace_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef SONDE_TLS_MODEL
#define SONDE_TLS_MODEL "initial-exec"
#endif

#define DEFAULT_MAX_OPS 1000
#define MAX_MAX_OPS 65536

static const double default_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,   5,    10,    30,   60,  120,  300};

/* ------------------------------------------------------------------------ */
/* Per-thread tables                                                        */

struct tls_table {
    uint32_t cap;
    struct trace_acc *accs[];
};

static __thread struct tls_table *tls_tab __attribute__((tls_model(SONDE_TLS_MODEL)));
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Atomic uint32_t next_op_id;

static void tls_destroy(void *p)
{
    struct tls_table *t = p;
    tls_tab = NULL;
    for (uint32_t i = 0; i < t->cap; i++) {
        struct trace_acc *a = t->accs[i];
        if (!a)
            continue;
        if (__atomic_exchange_n(&a->state, ACC_DEAD, __ATOMIC_ACQ_REL) == ACC_ORPHAN)
            sonde__free(a);
    }
    sonde__free(t);
}

static void tls_make_key(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static void slot_init(struct trace_slot *s)
{
    s->tag = TRACE_NO_MINUTE;
    s->harvested = TRACE_NO_MINUTE;
    s->min_ns = UINT64_MAX;
    /* An empty range: every timestamp takes the slow path first. */
    s->t_lo = 0;
    s->t_span = 0;
}

/* The calling thread's accumulator for op, created at first use. */
static __attribute__((noinline)) struct trace_acc *acc_create(sonde_op *op)
{
    pthread_once(&tls_once, tls_make_key);
    struct tls_table *t = tls_tab;
    if (!t || op->id >= t->cap) {
        uint32_t cap = t ? t->cap : 0;
        uint32_t want = cap ? cap : 16;
        while (want <= op->id)
            want *= 2;
        struct tls_table *n = sonde__calloc(1, sizeof *n + want * sizeof n->accs[0]);
        if (!n)
            return NULL;
        n->cap = want;
        if (t)
            memcpy(n->accs, t->accs, cap * sizeof t->accs[0]);
        if (pthread_setspecific(tls_key, n) != 0) {
            sonde__free(n);
            return NULL;
        }
        sonde__free(t);
        tls_tab = t = n;
    }
    struct trace_acc *a = sonde__calloc(1, sizeof *a);
    if (!a)
        return NULL;
    slot_init(&a->slot[0]);
    slot_init(&a->slot[1]);
    a->state = ACC_LIVE;
    /* Publish on the operation's list (the flush walks it). */
    struct trace_acc *head = __atomic_load_n(&op->accs, __ATOMIC_RELAXED);
    do {
        a->next = head;
    } while (
        !__atomic_compare_exchange_n(&op->accs, &head, a, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    t->accs[op->id] = a;
    return a;
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

#define NS_PER_MIN INT64_C(60000000000)

/* Slow path: the timestamp is outside the current slot's minute. Returns
 * the slot to update, or NULL when the update is dropped (counted). Runs
 * inside the accumulator's odd sequence. */
static __attribute__((noinline)) struct trace_slot *rotate(struct trace_acc *a, uint64_t now)
{
    int64_t wall = sonde__trace_ticks_to_wall_ns(now);
    int64_t m = floor_div(wall, NS_PER_MIN);
    struct trace_slot *s = &a->slot[m & 1];
    int64_t tag = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
    if (tag > m || (tag == m && __atomic_load_n(&s->harvested, __ATOMIC_ACQUIRE) == m)) {
        /* A minute already collected (or older than the slot's): late. */
        __atomic_store_n(&a->late, __atomic_load_n(&a->late, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
        return NULL;
    }
    if (tag != m) {
        uint64_t c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
        if (tag != TRACE_NO_MINUTE && c && __atomic_load_n(&s->harvested, __ATOMIC_ACQUIRE) != tag)
            __atomic_store_n(&a->late, __atomic_load_n(&a->late, __ATOMIC_RELAXED) + c,
                             __ATOMIC_RELAXED);
        /* Retag first, then clear: a flush copying the old minute checks the
         * tag after its copy and discards it if the tag moved (see
         * collect_slot in flush.c). */
        __atomic_store_n(&s->tag, m, __ATOMIC_RELAXED);
        TRACE_FENCE(__ATOMIC_RELEASE);
        __atomic_store_n(&s->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->errors, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->sum_ns, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->min_ns, UINT64_MAX, __ATOMIC_RELAXED);
        __atomic_store_n(&s->max_ns, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->zero, 0, __ATOMIC_RELAXED);
        for (int i = 0; i < TRACE_NBINS; i++)
            if (__atomic_load_n(&s->bins[i], __ATOMIC_RELAXED))
                __atomic_store_n(&s->bins[i], 0, __ATOMIC_RELAXED);
    }
    uint64_t lo = sonde__trace_wall_ns_to_ticks(m * NS_PER_MIN);
    uint64_t hi = sonde__trace_wall_ns_to_ticks((m + 1) * NS_PER_MIN);
    /* The fast path tests now - t_lo < t_span; make sure `now` passes even
     * when the tick/wall mapping rounded it just outside. */
    if (now < lo)
        lo = now;
    if (hi <= now)
        hi = now + 1;
    __atomic_store_n(&s->t_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&s->t_span, hi - lo, __ATOMIC_RELAXED);
    a->cur = (uint32_t)(m & 1);
    return s;
}

#define RELAXED_ADD(p, v)                                                                          \
    __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)

static inline void record(struct trace_acc *a, uint64_t now, uint64_t ns, int ok)
{
    struct trace_slot *s = &a->slot[a->cur];
    if (SONDE_UNLIKELY(now - __atomic_load_n(&s->t_lo, __ATOMIC_RELAXED) >=
                       __atomic_load_n(&s->t_span, __ATOMIC_RELAXED))) {
        s = rotate(a, now);
        if (!s)
            return;
    }
    RELAXED_ADD(&s->count, 1);
    if (!ok)
        RELAXED_ADD(&s->errors, 1);
    RELAXED_ADD(&s->sum_ns, ns);
    if (ns < __atomic_load_n(&s->min_ns, __ATOMIC_RELAXED))
        __atomic_store_n(&s->min_ns, ns, __ATOMIC_RELAXED);
    if (ns > __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED))
        __atomic_store_n(&s->max_ns, ns, __ATOMIC_RELAXED);
    if (ns <= 1) {
        RELAXED_ADD(&s->zero, 1);
    } else {
        int32_t i = trace_bin_index(ns);
        RELAXED_ADD(&s->bins[i - TRACE_IDX_LO], 1);
    }
}

/* ---- joining the logging context ----
 * An operation that joins pushes a logging context frame; the frame's token
 * is kept on a small per-thread stack keyed by (operation, start), so the
 * operation token stays two words (passed in registers). sonde_op_end pops
 * the frame only on the thread that pushed it: elsewhere the key is not on
 * the stack. */

#define LOG_STACK 32
struct log_entry {
    const sonde_op *op;
    uint64_t start;
    int ctx;
};
static __thread struct log_entry tls_log[LOG_STACK];
static __thread int tls_log_depth __attribute__((tls_model(SONDE_TLS_MODEL)));

static __attribute__((noinline)) int log_begin(sonde_op *op)
{
    int ctx = 0;
    if (tls_log_depth < LOG_STACK) {
        sonde_field f = SONDE_STR("operation", op->name);
        ctx = sonde_log_context_push(NULL, &f, 1);
    }
    SONDE_LOG(op->lg, DEBUG, "operation started", SONDE_STR("event", "operation_start"),
              SONDE_STR("operation", op->name));
    return ctx;
}

static __attribute__((noinline)) void log_remember(const sonde_op *op, uint64_t start, int ctx)
{
    tls_log[tls_log_depth].op = op;
    tls_log[tls_log_depth].start = start;
    tls_log[tls_log_depth].ctx = ctx;
    tls_log_depth++;
}

static __attribute__((noinline)) void log_end(sonde_op *op, sonde_op_token t, double secs, int ok)
{
    SONDE_LOG(op->lg, DEBUG, "operation finished", SONDE_STR("event", "operation_end"),
              SONDE_STR("operation", op->name), SONDE_BOOL("success", ok != 0),
              SONDE_DOUBLE("duration_seconds", secs));
    for (int i = tls_log_depth; i-- > 0;) {
        if (tls_log[i].op == op && tls_log[i].start == t.start) {
            /* Popping a frame pops the frames pushed after it (operations
             * that never ended): forget them too. */
            sonde_log_context_pop(tls_log[i].ctx);
            tls_log_depth = i;
            break;
        }
    }
}

static inline int joins_log(const sonde_op *op)
{
    return op->log_mode > 0 || (op->log_mode == 0 && sonde_log_enabled(op->lg, SONDE_LOG_DEBUG));
}

/* For tests: the logging frame of a token, 0 when none. */
int sonde__trace_log_ctx(sonde_op_token t)
{
    for (int i = tls_log_depth; i-- > 0;)
        if (tls_log[i].op == t.op && tls_log[i].start == t.start)
            return tls_log[i].ctx;
    return 0;
}

sonde_op_token sonde_op_begin_op(sonde_op *op)
{
    sonde_op_token t;
    t.op = op;
    if (!op) {
        t.start = 0;
        return t;
    }
    if (SONDE_UNLIKELY(joins_log(op))) {
        int ctx = log_begin(op);
        t.start = trace_ticks();
        if (ctx > 0)
            log_remember(op, t.start, ctx);
        return t;
    }
    t.start = trace_ticks();
    return t;
}

double sonde_op_end(sonde_op_token tok, int ok)
{
    sonde_op *op = tok.op;
    if (!op)
        return 0;
    struct tls_table *t = tls_tab;
    struct trace_acc *a;
    if (SONDE_UNLIKELY(!t || op->id >= t->cap || !(a = t->accs[op->id]))) {
        a = acc_create(op);
    }
    /* Odd sequence before the clock read: see trace_int.h. */
    uint32_t seq = 0;
    if (SONDE_LIKELY(a != NULL)) {
        seq = __atomic_load_n(&a->seq, __ATOMIC_RELAXED);
        __atomic_store_n(&a->seq, seq + 1, __ATOMIC_RELAXED);
        TRACE_FENCE(__ATOMIC_RELEASE);
    }
    uint64_t now = trace_ticks();
    uint64_t ns = trace_ticks_to_ns(now > tok.start ? now - tok.start : 0);
    double secs = (double)ns * 1e-9;
    sonde_histogram_observe(op->hist, secs);
    sonde_counter_inc(ok ? op->ok : op->fail);
    if (SONDE_LIKELY(a != NULL)) {
        record(a, now, ns, ok);
        __atomic_store_n(&a->seq, seq + 2, __ATOMIC_RELEASE);
    }
    if (SONDE_UNLIKELY(tls_log_depth != 0 || sonde_log_enabled(op->lg, SONDE_LOG_DEBUG)))
        log_end(op, tok, secs, ok);
    return secs;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static sonde_op *find(sonde__tracer *tr, const char *name, size_t n)
{
    uint64_t h = hash_name(name, n);
    for (size_t i = h & tr->table_mask;; i = (i + 1) & tr->table_mask) {
        sonde_op *op = __atomic_load_n(&tr->table[i], __ATOMIC_ACQUIRE);
        if (!op)
            return NULL;
        if (op->name_len == n && memcmp(op->name, name, n) == 0)
            return op;
    }
}

sonde_op *sonde__trace_op_find(sonde__tracer *tr, const char *name)
{
    if (!tr || !name)
        return NULL;
    size_t n = strnlen(name, SONDE_OP_NAME_MAX + 1);
    if (n == 0 || n > SONDE_OP_NAME_MAX)
        return NULL;
    return find(tr, name, n);
}

static int same_str(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int sonde__trace_op_create(sonde__tracer *tr, const sonde_op_opts *opts, sonde_op **out)
{
    *out = NULL;
    if (!opts || !opts->name) {
        sonde__set_error("operation name missing");
        return SONDE_EINVAL;
    }
    size_t n = strnlen(opts->name, SONDE_OP_NAME_MAX + 1);
    if (n == 0 || n > SONDE_OP_NAME_MAX) {
        sonde__set_error("operation name must be 1 to %d bytes", SONDE_OP_NAME_MAX);
        if (tr->dropped_invalid)
            sonde_counter_inc(tr->dropped_invalid);
        return SONDE_EINVAL;
    }
    sonde_op *op = find(tr, opts->name, n);
    if (op) {
        if (!same_str(op->duration_metric, opts->duration_metric)) {
            sonde__set_error("operation \"%s\" exists with another duration metric", opts->name);
            return SONDE_ECONFLICT;
        }
        *out = op;
        return SONDE_OK;
    }
    pthread_mutex_lock(&tr->lock);
    op = find(tr, opts->name, n);
    if (op) {
        pthread_mutex_unlock(&tr->lock);
        if (!same_str(op->duration_metric, opts->duration_metric)) {
            sonde__set_error("operation \"%s\" exists with another duration metric", opts->name);
            return SONDE_ECONFLICT;
        }
        *out = op;
        return SONDE_OK;
    }
    int rc = SONDE_OK;
    if (tr->nops >= tr->max_ops) {
        pthread_mutex_unlock(&tr->lock);
        sonde__set_error("more than %zu operations", tr->max_ops);
        if (tr->dropped_limit)
            sonde_counter_inc(tr->dropped_limit);
        return SONDE_ELIMIT;
    }
    op = sonde__calloc(1, sizeof *op + n + 1);
    if (!op) {
        pthread_mutex_unlock(&tr->lock);
        return SONDE_ENOMEM;
    }
    memcpy(op->name, opts->name, n);
    op->name_len = (uint32_t)n;
    op->tr = tr;
    op->lg = tr->lg;
    op->log_mode = tr->log_mode;
    for (int i = 0; i < TRACE_RING_MINUTES; i++)
        op->ring[i].minute = TRACE_NO_MINUTE;
    if (opts->duration_metric) {
        op->duration_metric = sonde__strdup(opts->duration_metric);
        char help[256];
        if (!opts->help)
            snprintf(help, sizeof help, "Duration of %.200s in seconds.", op->name);
        sonde_metric_opts mo;
        sonde_metric_opts_init(&mo);
        mo.name = opts->duration_metric;
        mo.help = opts->help ? opts->help : help;
        mo.buckets = opts->buckets ? opts->buckets : tr->buckets;
        mo.bucket_count = opts->buckets ? opts->bucket_count : tr->nbuckets;
        sonde_family *f = NULL;
        rc = op->duration_metric ? sonde_family_create(tr->reg, SONDE_HISTOGRAM, &mo, &f)
                                 : SONDE_ENOMEM;
        if (rc == SONDE_OK) {
            op->hist = sonde_family_as_histogram(f);
            if (!op->hist) {
                sonde__set_error("histogram %s has labels", opts->duration_metric);
                rc = SONDE_ECONFLICT;
            }
        }
    } else {
        op->hist = sonde_family_histogram(tr->hist_fam, op->name);
    }
    if (rc == SONDE_OK) {
        op->ok = sonde_family_counter(tr->total_fam, op->name, "success");
        op->fail = sonde_family_counter(tr->total_fam, op->name, "failure");
    }
    if (rc != SONDE_OK) {
        pthread_mutex_unlock(&tr->lock);
        sonde__free(op->duration_metric);
        sonde__free(op);
        return rc;
    }
    op->id = atomic_fetch_add(&next_op_id, 1);
    uint64_t h = hash_name(op->name, n);
    size_t i = h & tr->table_mask;
    while (__atomic_load_n(&tr->table[i], __ATOMIC_RELAXED))
        i = (i + 1) & tr->table_mask;
    if (tr->ops_tail)
        tr->ops_tail->next = op;
    else
        tr->ops_head = op;
    tr->ops_tail = op;
    __atomic_store_n(&tr->nops, tr->nops + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&tr->table[i], op, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&tr->lock);
    *out = op;
    return SONDE_OK;
}

/* ------------------------------------------------------------------------ */
/* Tracers                                                                  */

static char *join_name(const char *ns, const char *name)
{
    size_t a = ns ? strlen(ns) : 0, b = strlen(name);
    char *s = sonde__malloc(a + b + 2);
    if (!s)
        return NULL;
    if (a) {
        memcpy(s, ns, a);
        s[a] = '_';
        memcpy(s + a + 1, name, b + 1);
    } else {
        memcpy(s, name, b + 1);
    }
    return s;
}

int sonde__tracer_create(const sonde_trace_opts *opts, sonde__tracer **out)
{
    *out = NULL;
    sonde_trace_opts def;
    if (!opts) {
        sonde_trace_opts_init(&def);
        opts = &def;
    }
    if (opts->max_operations > MAX_MAX_OPS) {
        sonde__set_error("max_operations above %d", MAX_MAX_OPS);
        return SONDE_EINVAL;
    }
    sonde__trace_clock_init();
    sonde__tracer *tr = sonde__calloc(1, sizeof *tr);
    if (!tr)
        return SONDE_ENOMEM;
    pthread_mutex_init(&tr->lock, NULL);
    tr->reg = opts->registry ? opts->registry : sonde_registry_default();
    tr->ns = sonde__strdup(opts->ns ? opts->ns : "sonde");
    tr->duration_name =
        sonde__strdup(opts->duration_name ? opts->duration_name : "operation_duration_seconds");
    tr->total_name = sonde__strdup(opts->total_name ? opts->total_name : "operations_total");
    tr->anomaly_name = sonde__strdup(opts->anomaly_name ? opts->anomaly_name : "operation_anomaly");
    tr->op_label = sonde__strdup(opts->operation_label ? opts->operation_label : "operation");
    tr->result_label = sonde__strdup(opts->result_label ? opts->result_label : "result");
    const double *b = opts->buckets ? opts->buckets : default_buckets;
    tr->nbuckets = opts->buckets ? opts->bucket_count : SONDE_ARRAY_LEN(default_buckets);
    tr->buckets = sonde__calloc(tr->nbuckets ? tr->nbuckets : 1, sizeof *tr->buckets);
    tr->max_ops = opts->max_operations ? opts->max_operations : DEFAULT_MAX_OPS;
    tr->lg = sonde_logger_get("sonde.trace");
    tr->log_mode = opts->log_context > 0 ? 1 : opts->log_context < 0 ? -1 : 0;
    size_t cap = 16;
    while (cap < tr->max_ops * 2)
        cap *= 2;
    tr->table = sonde__calloc(cap, sizeof *tr->table);
    tr->table_mask = cap - 1;
    tr->factor = opts->anomaly_factor > 0 ? opts->anomaly_factor : 2.0;
    tr->window_minutes = opts->anomaly_window_minutes ? opts->anomaly_window_minutes : 5;
    tr->min_count = opts->anomaly_min_count ? opts->anomaly_min_count : 10;
    tr->grace_ns = 2000000000;
    tr->start_minute = floor_div(sonde__trace_now_wall_ns(), NS_PER_MIN);
    tr->last_prune_minute = TRACE_NO_MINUTE;
    tr->prune_before = TRACE_NO_MINUTE;
    int rc = SONDE_OK;
    if (!tr->ns || !tr->duration_name || !tr->total_name || !tr->anomaly_name || !tr->op_label ||
        !tr->result_label || !tr->buckets || !tr->table)
        rc = SONDE_ENOMEM;
    if (rc == SONDE_OK) {
        memcpy(tr->buckets, b, tr->nbuckets * sizeof *b);
        rc = sonde__sketch_init(&tr->scratch, 0);
    }
    if (rc == SONDE_OK)
        rc = sonde__sketch_init(&tr->scratch2, 0);
    char *hn = NULL, *tn = NULL, *an = NULL;
    if (rc == SONDE_OK) {
        hn = join_name(tr->ns, tr->duration_name);
        tn = join_name(tr->ns, tr->total_name);
        an = join_name(tr->ns, tr->anomaly_name);
        if (!hn || !tn || !an)
            rc = SONDE_ENOMEM;
    }
    if (rc == SONDE_OK) {
        sonde_metric_opts o;
        const char *l1[] = {tr->op_label};
        const char *l2[] = {tr->op_label, tr->result_label};
        sonde_metric_opts_init(&o);
        o.name = hn;
        o.help = "Duration of traced operations in seconds.";
        o.label_names = l1;
        o.label_count = 1;
        o.buckets = tr->buckets;
        o.bucket_count = tr->nbuckets;
        rc = sonde_family_create(tr->reg, SONDE_HISTOGRAM, &o, &tr->hist_fam);
        if (rc == SONDE_OK) {
            sonde_metric_opts_init(&o);
            o.name = tn;
            o.help = "Traced operations by result (success or failure).";
            o.label_names = l2;
            o.label_count = 2;
            rc = sonde_family_create(tr->reg, SONDE_COUNTER, &o, &tr->total_fam);
        }
        if (rc == SONDE_OK) {
            sonde_metric_opts_init(&o);
            o.name = an;
            o.help = "1 while the operation's recent window exceeds its baseline.";
            o.label_names = l1;
            o.label_count = 1;
            rc = sonde_family_create(tr->reg, SONDE_GAUGE, &o, &tr->anomaly_fam);
        }
        if (rc == SONDE_OK) {
            const char *reason[] = {"reason"};
            sonde_metric_opts_init(&o);
            o.name = "sonde_trace_dropped_total";
            o.help = "Operations not aggregated into windows, by reason (late, limit, invalid).";
            o.label_names = reason;
            o.label_count = 1;
            if (sonde_family_create(tr->reg, SONDE_COUNTER, &o, &tr->dropped_fam) == SONDE_OK) {
                tr->dropped_late = sonde_family_counter(tr->dropped_fam, "late");
                tr->dropped_limit = sonde_family_counter(tr->dropped_fam, "limit");
                tr->dropped_invalid = sonde_family_counter(tr->dropped_fam, "invalid");
            }
        }
    }
    sonde__free(hn);
    sonde__free(tn);
    sonde__free(an);
    if (rc != SONDE_OK) {
        sonde__tracer_destroy(tr);
        return rc;
    }
    *out = tr;
    return SONDE_OK;
}

void sonde__tracer_destroy(sonde__tracer *tr)
{
    if (!tr)
        return;
    sonde__store_destroy(tr->store);
    struct tls_table *mine = tls_tab;
    sonde_op *op = tr->ops_head;
    while (op) {
        sonde_op *next = op->next;
        struct trace_acc *a = __atomic_load_n(&op->accs, __ATOMIC_ACQUIRE);
        while (a) {
            struct trace_acc *an = a->next;
            if (mine && op->id < mine->cap && mine->accs[op->id] == a) {
                /* The calling thread's own: forget it and free it. */
                mine->accs[op->id] = NULL;
                sonde__free(a);
            } else if (__atomic_exchange_n(&a->state, ACC_ORPHAN, __ATOMIC_ACQ_REL) == ACC_DEAD) {
                sonde__free(a);
            }
            a = an;
        }
        for (int i = 0; i < TRACE_RING_MINUTES; i++)
            sonde__free(op->ring[i].blob);
        sonde__free(op->duration_metric);
        sonde__free(op);
        op = next;
    }
    sonde__sketch_free(&tr->scratch);
    sonde__sketch_free(&tr->scratch2);
    sonde_buf_free(&tr->enc);
    sonde__free(tr->table);
    sonde__free(tr->buckets);
    sonde__free(tr->ns);
    sonde__free(tr->duration_name);
    sonde__free(tr->total_name);
    sonde__free(tr->anomaly_name);
    sonde__free(tr->op_label);
    sonde__free(tr->result_label);
    pthread_mutex_destroy(&tr->lock);
    sonde__free(tr);
}
