/*
 * The store: a backend plus a bounded queue, retries with backoff and
 * self-metrics. Two locks: `qlock` guards the queue and is only ever held
 * for a few pointer moves, so producers (the tracing flush, an application
 * thread setting a baseline) never wait for I/O; `block` serialises use of
 * the backend connection (writes by the flush, reads by queries).
 *
 * Self-metrics (when a registry is given):
 *   sonde_store_dropped_total{reason}  rows lost: buffer_full (queue bound),
 *                                      closed (pending at shutdown)
 *   sonde_store_errors_total{stage}    open, write, read, prune, decode
 *   sonde_store_rows_written_total
 *   sonde_store_pending_rows           gauge
 */
#include "store.h"
#include <sonde/metrics.h>

#include <sonde/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_PENDING 10000
#define DEFAULT_MAX_PENDING_BYTES (16u << 20)
#define BATCH_MAX 500

struct qrow {
    struct qrow *next;
    sonde__op_row row; /* op and sketch point into data */
    size_t bytes;
    char data[];
};

struct qbase {
    struct qbase *next;
    int del;
    sonde__baseline_row b; /* b.op points into op */
    char op[];
};

struct sonde__store {
    const sonde__store_type *type;
    sonde__store_spec spec;
    int readonly;

    pthread_mutex_t block; /* backend */
    void *ctx;             /* NULL while closed */
    uint64_t retry_at_ns;  /* monotonic; no attempt before */
    unsigned backoff_ms;
    unsigned retry_min_ms, retry_max_ms;
    int logged_failure; /* a failure was reported; the next success is too */

    pthread_mutex_t qlock; /* queue */
    struct qrow *head, *tail;
    size_t npending, pending_bytes;
    size_t max_pending, max_bytes;
    struct qbase *bhead, *btail;
    uint64_t next_id;

    _Atomic uint64_t dropped, errors;
    sonde_counter *m_drop_full, *m_drop_closed;
    sonde_counter *m_err_open, *m_err_write, *m_err_read, *m_err_prune, *m_err_decode;
    sonde_counter *m_written;
    sonde_gauge *m_pending;
};

static void count(sonde__store *st, sonde_counter *c, _Atomic uint64_t *total, uint64_t n)
{
    (void)st;
    if (total)
        atomic_fetch_add(total, n);
    if (c)
        sonde_counter_add(c, (double)n);
}

static void register_metrics(sonde__store *st, sonde_registry *reg)
{
    sonde_metric_opts o;
    sonde_family *f;
    const char *reason[] = {"reason"}, *stage[] = {"stage"};

    sonde_metric_opts_init(&o);
    o.name = "sonde_store_dropped_total";
    o.help = "Rows of the history store that were lost, by reason.";
    o.label_names = reason;
    o.label_count = 1;
    if (sonde_family_create(reg, SONDE_COUNTER, &o, &f) == SONDE_OK) {
        st->m_drop_full = sonde_family_counter(f, "buffer_full");
        st->m_drop_closed = sonde_family_counter(f, "closed");
    }
    sonde_metric_opts_init(&o);
    o.name = "sonde_store_errors_total";
    o.help = "Failures of the history store, by stage (open, write, read, prune, decode).";
    o.label_names = stage;
    o.label_count = 1;
    if (sonde_family_create(reg, SONDE_COUNTER, &o, &f) == SONDE_OK) {
        st->m_err_open = sonde_family_counter(f, "open");
        st->m_err_write = sonde_family_counter(f, "write");
        st->m_err_read = sonde_family_counter(f, "read");
        st->m_err_prune = sonde_family_counter(f, "prune");
        st->m_err_decode = sonde_family_counter(f, "decode");
    }
    sonde_counter_create(reg, "sonde_store_rows_written_total",
                         "Rows written to the history store.", &st->m_written);
    sonde_gauge_create(reg, "sonde_store_pending_rows",
                       "Rows waiting to be written to the history store.", &st->m_pending);
}

static uint64_t random_id_base(void)
{
    /* Row ids only need to differ between processes writing one store:
     * pid, time and an address give that without a syscall that can fail. */
    uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    x ^= sonde__now_mono_ns() * 0xBF58476D1CE4E5B9ull;
    x ^= (uint64_t)(uintptr_t)&x;
    x ^= (uint64_t)(sonde__now_wall() * 1e6);
    x ^= x >> 31;
    return x << 24; /* low bits count rows of this store */
}

static void diag_failure(sonde__store *st, const char *stage, int rc, const char *err)
{
    /* Reported once per outage: a failing store retried every second must
     * not flood the log. */
    if (st->logged_failure)
        return;
    st->logged_failure = 1;
    sonde__diag(SONDE_LOG_WARNING, "sonde.store", "%s store: %s failed (%s): %s", st->type->name,
                stage, sonde_err_name(rc), err[0] ? err : "no detail");
}

static void diag_recovered(sonde__store *st)
{
    if (!st->logged_failure)
        return;
    st->logged_failure = 0;
    sonde__diag(SONDE_LOG_INFO, "sonde.store", "%s store: working again", st->type->name);
}

static void backoff(sonde__store *st)
{
    unsigned ms = st->backoff_ms ? st->backoff_ms * 2 : st->retry_min_ms;
    if (ms > st->retry_max_ms)
        ms = st->retry_max_ms;
    st->backoff_ms = ms;
    st->retry_at_ns = sonde__now_mono_ns() + (uint64_t)ms * 1000000u;
}

/* Open the backend if closed. block held. */
static int ensure_open(sonde__store *st, int honour_backoff)
{
    if (st->ctx)
        return SONDE_OK;
    if (honour_backoff && sonde__now_mono_ns() < st->retry_at_ns)
        return SONDE_EUNREACHABLE;
    char err[512] = "";
    int rc = st->type->open(&st->spec, st->readonly, &st->ctx, err, sizeof err);
    if (rc != SONDE_OK) {
        st->ctx = NULL;
        count(st, st->m_err_open, &st->errors, 1);
        diag_failure(st, "open", rc, err);
        backoff(st);
        return rc;
    }
    return SONDE_OK;
}

/* A backend call failed: count it, and drop a broken connection. */
static void failed(sonde__store *st, sonde_counter *c, const char *stage, int rc, const char *err)
{
    count(st, c, &st->errors, 1);
    diag_failure(st, stage, rc, err);
    if (rc == SONDE_EUNREACHABLE) {
        /* A broken connection: reopen at the next attempt. Other errors
         * (an error reply, a full disk) leave the connection usable. */
        st->type->close(st->ctx);
        st->ctx = NULL;
    }
    backoff(st);
}

static int store_init(sonde__store *st, const char *spec, char *err, size_t errlen)
{
    int rc = sonde__store_spec_parse(spec, &st->spec, err, errlen);
    if (rc != SONDE_OK)
        return rc;
    if (st->spec.kind == SONDE__STORE_SQLITE)
        st->type = &sonde__store_sqlite;
    else if (st->spec.kind == SONDE__STORE_REDIS)
        st->type = &sonde__store_redis;
    pthread_mutex_init(&st->block, NULL);
    pthread_mutex_init(&st->qlock, NULL);
    st->next_id = random_id_base();
    return SONDE_OK;
}

int sonde__store_create(const char *spec, const sonde__store_opts *opts, sonde__store **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    sonde__store_opts def;
    if (!opts) {
        memset(&def, 0, sizeof def);
        opts = &def;
    }
    sonde__store *st = sonde__calloc(1, sizeof *st);
    if (!st)
        return SONDE_ENOMEM;
    int rc = store_init(st, spec, err, errlen);
    if (rc != SONDE_OK || st->spec.kind == SONDE__STORE_OFF) {
        int inited = rc == SONDE_OK;
        sonde__store_spec_free(&st->spec);
        if (inited) {
            pthread_mutex_destroy(&st->block);
            pthread_mutex_destroy(&st->qlock);
        }
        sonde__free(st);
        return rc;
    }
    if (opts->redis_prefix && !st->spec.prefix) {
        st->spec.prefix = sonde__strdup(opts->redis_prefix);
        if (!st->spec.prefix) {
            sonde__store_destroy(st);
            return SONDE_ENOMEM;
        }
    }
    if (opts->redis_timeout_ms)
        st->spec.timeout_ms = opts->redis_timeout_ms;
    st->max_pending = opts->max_pending ? opts->max_pending : DEFAULT_MAX_PENDING;
    st->max_bytes = opts->max_pending_bytes ? opts->max_pending_bytes : DEFAULT_MAX_PENDING_BYTES;
    st->retry_min_ms = opts->retry_min_ms ? opts->retry_min_ms : 1000;
    st->retry_max_ms = opts->retry_max_ms ? opts->retry_max_ms : 30000;
    if (st->retry_max_ms < st->retry_min_ms)
        st->retry_max_ms = st->retry_min_ms;
    if (opts->registry)
        register_metrics(st, opts->registry);
    pthread_mutex_lock(&st->block);
    ensure_open(st, 0);
    pthread_mutex_unlock(&st->block);
    *out = st;
    return SONDE_OK;
}

int sonde__store_open_readonly(const char *spec, sonde__store **out, char *err, size_t errlen)
{
    *out = NULL;
    sonde__store *st = sonde__calloc(1, sizeof *st);
    if (!st)
        return SONDE_ENOMEM;
    int rc = store_init(st, spec, err, errlen);
    if (rc == SONDE_OK && st->spec.kind == SONDE__STORE_OFF) {
        if (err && errlen)
            snprintf(err, errlen, "store address \"%.200s\": no store", spec);
        rc = SONDE_EINVAL;
        pthread_mutex_destroy(&st->block);
        pthread_mutex_destroy(&st->qlock);
    }
    if (rc != SONDE_OK) {
        sonde__store_spec_free(&st->spec);
        sonde__free(st);
        return rc;
    }
    st->readonly = 1;
    st->max_pending = DEFAULT_MAX_PENDING;
    st->max_bytes = DEFAULT_MAX_PENDING_BYTES;
    st->retry_min_ms = st->retry_max_ms = 1000;
    rc = st->type->open(&st->spec, 1, &st->ctx, err, errlen);
    if (rc != SONDE_OK) {
        st->ctx = NULL;
        sonde__store_destroy(st);
        return rc;
    }
    *out = st;
    return SONDE_OK;
}

int sonde__store_kind(const sonde__store *st)
{
    return st->spec.kind;
}

static void free_rows(struct qrow *r)
{
    while (r) {
        struct qrow *n = r->next;
        sonde__free(r);
        r = n;
    }
}

void sonde__store_destroy(sonde__store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->qlock);
    size_t lost = st->npending;
    struct qrow *rows = st->head;
    st->head = st->tail = NULL;
    st->npending = st->pending_bytes = 0;
    struct qbase *b = st->bhead;
    st->bhead = st->btail = NULL;
    pthread_mutex_unlock(&st->qlock);
    if (lost)
        count(st, st->m_drop_closed, &st->dropped, lost);
    if (st->m_pending)
        sonde_gauge_set(st->m_pending, 0);
    free_rows(rows);
    while (b) {
        struct qbase *n = b->next;
        sonde__free(b);
        b = n;
    }
    if (st->ctx)
        st->type->close(st->ctx);
    pthread_mutex_destroy(&st->block);
    pthread_mutex_destroy(&st->qlock);
    sonde__store_spec_free(&st->spec);
    sonde__free(st);
}

/* Drop the oldest rows until one more row of `bytes` fits. qlock held. */
static size_t make_space(sonde__store *st, size_t bytes, struct qrow **freed)
{
    size_t dropped = 0;
    while (st->head &&
           (st->npending + 1 > st->max_pending || st->pending_bytes + bytes > st->max_bytes)) {
        struct qrow *r = st->head;
        st->head = r->next;
        if (!st->head)
            st->tail = NULL;
        st->npending--;
        st->pending_bytes -= r->bytes;
        r->next = *freed;
        *freed = r;
        dropped++;
    }
    return dropped;
}

void sonde__store_enqueue(sonde__store *st, const sonde__op_row *row)
{
    size_t bytes = sizeof(struct qrow) + row->op_len + 1 + row->sketch_len;
    struct qrow *q = sonde__malloc(bytes);
    if (!q) {
        count(st, st->m_drop_full, &st->dropped, 1);
        return;
    }
    q->next = NULL;
    q->bytes = bytes;
    q->row = *row;
    memcpy(q->data, row->op, row->op_len);
    q->data[row->op_len] = '\0';
    memcpy(q->data + row->op_len + 1, row->sketch, row->sketch_len);
    q->row.op = q->data;
    q->row.sketch = (const uint8_t *)q->data + row->op_len + 1;
    struct qrow *freed = NULL;
    pthread_mutex_lock(&st->qlock);
    q->row.id = st->next_id++;
    size_t dropped = make_space(st, bytes, &freed);
    if (bytes > st->max_bytes) {
        /* Larger than the whole budget: refuse it. */
        q->next = freed;
        freed = q;
        dropped++;
    } else {
        if (st->tail)
            st->tail->next = q;
        else
            st->head = q;
        st->tail = q;
        st->npending++;
        st->pending_bytes += bytes;
    }
    size_t pending = st->npending;
    pthread_mutex_unlock(&st->qlock);
    if (dropped)
        count(st, st->m_drop_full, &st->dropped, dropped);
    if (st->m_pending)
        sonde_gauge_set(st->m_pending, (double)pending);
    free_rows(freed);
}

void sonde__store_enqueue_baseline(sonde__store *st, const char *op, const sonde__baseline_row *b)
{
    size_t n = strlen(op);
    struct qbase *q = sonde__calloc(1, sizeof *q + n + 1);
    if (!q)
        return;
    memcpy(q->op, op, n + 1);
    q->del = b == NULL;
    if (b)
        q->b = *b;
    q->b.op = q->op;
    pthread_mutex_lock(&st->qlock);
    if (st->btail)
        st->btail->next = q;
    else
        st->bhead = q;
    st->btail = q;
    pthread_mutex_unlock(&st->qlock);
}

/* Put a batch that could not be written back at the front of the queue,
 * within the bounds (newer rows win: the oldest are dropped). */
static void requeue(sonde__store *st, struct qrow *batch, struct qrow *batch_tail, size_t n,
                    size_t bytes)
{
    struct qrow *freed = NULL;
    size_t dropped = 0;
    pthread_mutex_lock(&st->qlock);
    batch_tail->next = st->head;
    st->head = batch;
    if (!st->tail)
        st->tail = batch_tail;
    st->npending += n;
    st->pending_bytes += bytes;
    while (st->head && (st->npending > st->max_pending || st->pending_bytes > st->max_bytes)) {
        struct qrow *r = st->head;
        st->head = r->next;
        if (!st->head)
            st->tail = NULL;
        st->npending--;
        st->pending_bytes -= r->bytes;
        r->next = freed;
        freed = r;
        dropped++;
    }
    size_t pending = st->npending;
    pthread_mutex_unlock(&st->qlock);
    if (dropped)
        count(st, st->m_drop_full, &st->dropped, dropped);
    if (st->m_pending)
        sonde_gauge_set(st->m_pending, (double)pending);
    free_rows(freed);
}

static int flush(sonde__store *st, int honour_backoff)
{
    pthread_mutex_lock(&st->block);
    int rc = ensure_open(st, honour_backoff);
    if (rc != SONDE_OK) {
        pthread_mutex_unlock(&st->block);
        return rc;
    }
    char err[512];
    /* Baselines first: few, and the reader wants them with the rows. */
    for (;;) {
        pthread_mutex_lock(&st->qlock);
        struct qbase *b = st->bhead;
        if (b) {
            st->bhead = b->next;
            if (!st->bhead)
                st->btail = NULL;
        }
        pthread_mutex_unlock(&st->qlock);
        if (!b)
            break;
        err[0] = '\0';
        rc = st->type->put_baseline(st->ctx, b->op, b->del ? NULL : &b->b, err, sizeof err);
        if (rc != SONDE_OK) {
            pthread_mutex_lock(&st->qlock);
            b->next = st->bhead;
            st->bhead = b;
            if (!st->btail)
                st->btail = b;
            pthread_mutex_unlock(&st->qlock);
            failed(st, st->m_err_write, "write", rc, err);
            pthread_mutex_unlock(&st->block);
            return rc;
        }
        sonde__free(b);
    }
    for (;;) {
        /* Take a batch off the queue. */
        const sonde__op_row *ptrs[BATCH_MAX];
        pthread_mutex_lock(&st->qlock);
        struct qrow *batch = st->head, *last = NULL;
        size_t n = 0, bytes = 0;
        for (struct qrow *r = batch; r && n < BATCH_MAX; r = r->next) {
            ptrs[n++] = &r->row;
            bytes += r->bytes;
            last = r;
        }
        if (n) {
            st->head = last->next;
            if (!st->head)
                st->tail = NULL;
            last->next = NULL;
            st->npending -= n;
            st->pending_bytes -= bytes;
        }
        pthread_mutex_unlock(&st->qlock);
        if (!n)
            break;
        err[0] = '\0';
        rc = st->type->write_rows(st->ctx, ptrs, n, err, sizeof err);
        if (rc != SONDE_OK) {
            requeue(st, batch, last, n, bytes);
            failed(st, st->m_err_write, "write", rc, err);
            pthread_mutex_unlock(&st->block);
            return rc;
        }
        count(st, st->m_written, NULL, n);
        free_rows(batch);
    }
    st->backoff_ms = 0;
    st->retry_at_ns = 0;
    diag_recovered(st);
    pthread_mutex_unlock(&st->block);
    if (st->m_pending)
        sonde_gauge_set(st->m_pending, (double)sonde__store_pending(st));
    return SONDE_OK;
}

int sonde__store_flush(sonde__store *st)
{
    return flush(st, 1);
}
int sonde__store_flush_now(sonde__store *st)
{
    return flush(st, 0);
}

int sonde__store_read(sonde__store *st, const char *op, int64_t from, int64_t to, sonde__row_fn fn,
                      void *ud)
{
    pthread_mutex_lock(&st->block);
    int rc = ensure_open(st, 1);
    if (rc == SONDE_OK) {
        char err[512] = "";
        rc = st->type->read_rows(st->ctx, op, from, to, fn, ud, err, sizeof err);
        if (rc != SONDE_OK) {
            if (st->readonly)
                sonde__set_error("%s", err);
            failed(st, st->m_err_read, "read", rc, err);
        }
    }
    pthread_mutex_unlock(&st->block);
    return rc;
}

int sonde__store_read_baselines(sonde__store *st, sonde__baseline_fn fn, void *ud)
{
    pthread_mutex_lock(&st->block);
    int rc = ensure_open(st, 1);
    if (rc == SONDE_OK) {
        char err[512] = "";
        rc = st->type->read_baselines(st->ctx, fn, ud, err, sizeof err);
        if (rc != SONDE_OK)
            failed(st, st->m_err_read, "read", rc, err);
    }
    pthread_mutex_unlock(&st->block);
    return rc;
}

int sonde__store_prune(sonde__store *st, int64_t before, int *more)
{
    int dummy = 0;
    if (!more)
        more = &dummy;
    *more = 0;
    pthread_mutex_lock(&st->block);
    int rc = ensure_open(st, 1);
    if (rc == SONDE_OK) {
        char err[512] = "";
        rc = st->type->prune(st->ctx, before, more, err, sizeof err);
        if (rc != SONDE_OK)
            failed(st, st->m_err_prune, "prune", rc, err);
    }
    pthread_mutex_unlock(&st->block);
    return rc;
}

size_t sonde__store_pending(sonde__store *st)
{
    pthread_mutex_lock(&st->qlock);
    size_t n = st->npending;
    pthread_mutex_unlock(&st->qlock);
    return n;
}

uint64_t sonde__store_dropped(sonde__store *st)
{
    return atomic_load(&st->dropped);
}
uint64_t sonde__store_errors(sonde__store *st)
{
    return atomic_load(&st->errors);
}

void sonde__store_count_decode_error(sonde__store *st)
{
    count(st, st->m_err_decode, &st->errors, 1);
}
