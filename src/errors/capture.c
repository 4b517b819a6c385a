/*
 * The capture path: severity names, the bounded ring of error records and
 * sonde_error_capture. The ring is a bounded multi-producer queue with one
 * sequence number per slot (Vyukov's design): a producer claims a position
 * with one compare-and-swap on `head`, fills the slot it owns, and
 * publishes it by storing position + 1 in the slot's sequence; the
 * consumer (the drain, under t->lock) reads slots in order and hands each
 * back by storing position + capacity. A full ring refuses the error at
 * once: capture never waits for the worker.
 */
#include "errors/errors_int.h"

#include "core/worker.h"

#include <execinfo.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const sev_names[] = {"unknown", "low", "medium", "high", "critical"};

const char *sonde_severity_name(int s)
{
    return s >= 1 && s <= 4 ? sev_names[s] : "unknown";
}

int sonde_severity_parse(const char *s)
{
    if (!s)
        return SONDE_EINVAL;
    for (int i = 1; i <= 4; i++)
        if (strcasecmp(s, sev_names[i]) == 0)
            return i;
    if (s[0] >= '1' && s[0] <= '4' && s[1] == '\0')
        return s[0] - '0';
    if (strcasecmp(s, "warning") == 0 || strcasecmp(s, "warn") == 0)
        return SONDE_SEVERITY_MEDIUM;
    if (strcasecmp(s, "error") == 0)
        return SONDE_SEVERITY_HIGH;
    return SONDE_EINVAL;
}

void sonde_error_info_init(sonde_error_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->severity = SONDE_SEVERITY_MEDIUM;
}

/* ---- records ---- */

void sonde__err_view(const err_rec *r, err_view *v)
{
    const char *p = r->data;
    v->frames = (void *const *)(const void *)p;
    p += (size_t)r->nframes * sizeof(void *);
    v->type = p;
    p += r->type_len;
    v->msg = p;
    p += r->msg_len;
    v->op = p;
    p += r->op_len;
    v->file = p;
    p += r->file_len;
    v->func = p;
    p += r->func_len;
    v->cid = p;
    p += r->cid_len;
    v->ctx = p;
    p += r->ctx_len;
    v->lctx = p;
}

size_t sonde__err_rec_used(const err_rec *r)
{
    return offsetof(err_rec, data) + (size_t)r->nframes * sizeof(void *) + r->type_len +
           r->msg_len + r->op_len + r->file_len + r->func_len + r->cid_len + r->ctx_len +
           r->lctx_len;
}

/* ---- ring ---- */

int sonde__ring_init(err_ring *rg, size_t size);
void sonde__ring_free(err_ring *rg);

int sonde__ring_init(err_ring *rg, size_t size)
{
    size_t cap = 16;
    while (cap < size)
        cap <<= 1;
    rg->slots = sonde__calloc(cap, sizeof *rg->slots);
    if (!rg->slots)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&rg->slots[i].seq, (uint64_t)i);
    rg->mask = cap - 1;
    atomic_init(&rg->head, 0);
    atomic_init(&rg->tail, 0);
    return SONDE_OK;
}

void sonde__ring_free(err_ring *rg)
{
    sonde__free(rg->slots);
    rg->slots = NULL;
}

/* Claim the next slot; NULL when the ring is full. */
static err_rec *ring_claim(err_ring *rg, uint64_t *pos_out)
{
    uint64_t pos = atomic_load_explicit(&rg->head, memory_order_relaxed);
    for (;;) {
        err_rec *s = &rg->slots[pos & rg->mask];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&rg->head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                *pos_out = pos;
                return s;
            }
        } else if (dif < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&rg->head, memory_order_relaxed);
        }
    }
}

/* ---- capture ---- */

static int64_t now_ns(const sonde_errors *t)
{
    if (t->clock)
        return (int64_t)(t->clock(t->clock_ud) * 1e9);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t slen(const char *s, size_t max)
{
    return s ? strnlen(s, max) : 0;
}

/* Each thread's cache of sonde_errors_total's series: code captures a
 * handful of (severity, type) pairs, and a labelled lookup would be a
 * quarter of a capture's cost. Slots are keyed by the tracker's generation
 * (a tracker freed and another made at the same address never match) and
 * the type's bytes; series handles stay valid for the family's life. */
#define TOTAL_SLOTS 4
typedef struct total_slot {
    uint64_t gen;
    sonde_counter *counter;
    uint8_t sev;
    uint8_t len;
    char type[SONDE_ERROR_TYPE_MAX];
} total_slot;
static __thread total_slot total_tls[TOTAL_SLOTS];
static __thread unsigned total_next;

static void count_total(sonde_errors *t, int sev, const char *type, size_t type_len)
{
    if (!t->total)
        return;
    for (unsigned i = 0; i < TOTAL_SLOTS; i++) {
        total_slot *s = &total_tls[i];
        if (s->gen == t->gen && s->sev == sev && s->len == type_len &&
            memcmp(s->type, type, type_len) == 0) {
            sonde_counter_inc(s->counter);
            return;
        }
    }
    char cut[SONDE_ERROR_TYPE_MAX + 1];
    if (type[type_len] != '\0') {
        memcpy(cut, type, type_len);
        cut[type_len] = '\0';
        type = cut;
    }
    const char *vals[2] = {sev_names[sev], type};
    void *c = NULL;
    if (sonde_family_get(t->total, vals, 2, &c) != SONDE_OK || !c)
        return;
    sonde_counter_inc(c);
    total_slot *s = &total_tls[total_next++ % TOTAL_SLOTS];
    s->gen = t->gen;
    s->counter = c;
    s->sev = (uint8_t)sev;
    s->len = (uint8_t)type_len;
    memcpy(s->type, type, type_len);
}

void sonde_error_capture(sonde_errors *t, const sonde_error_info *in)
{
    if (SONDE_UNLIKELY(!in) || !sonde_enabled())
        return;
    if (!t && !(t = sonde_errors_default()))
        return;
    int sev = in->severity >= 1 && in->severity <= 4 ? in->severity : SONDE_SEVERITY_MEDIUM;
    const char *type = in->type && in->type[0] ? in->type : "error";
    size_t type_len = strnlen(type, SONDE_ERROR_TYPE_MAX);
    count_total(t, sev, type, type_len);

    uint64_t pos;
    err_rec *r = ring_claim(&t->ring, &pos);
    if (!r) {
        atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
        return;
    }
    r->ts_ns = now_ns(t);
    r->line = in->line > 0 ? in->line : 0;
    r->errnum = in->errnum;
    r->severity = (uint8_t)sev;
    char *p = r->data;
    char *end = r->data + sizeof r->data;

    r->nframes = 0;
    if (in->backtrace) {
        void *frames[SONDE_ERROR_MAX_FRAMES + 1];
        int n = backtrace(frames, SONDE_ERROR_MAX_FRAMES + 1);
        /* Frame 0 is this function. */
        if (n > 1) {
            memcpy(p, frames + 1, (size_t)(n - 1) * sizeof(void *));
            r->nframes = (uint8_t)(n - 1);
            p += (size_t)(n - 1) * sizeof(void *);
        }
    }
    /* Fixed-size fields first, the message gets what is left up to its
     * limit, the context the rest. The file keeps its end: the base name
     * is part of the fingerprint. */
    size_t op_len = slen(in->operation, SONDE_ERROR_TYPE_MAX);
    size_t file_full = in->file ? strlen(in->file) : 0;
    size_t file_len = file_full > ERR_FILE_MAX ? ERR_FILE_MAX : file_full;
    const char *file = in->file ? in->file + (file_full - file_len) : NULL;
    size_t func_len = slen(in->func, ERR_FUNC_MAX);

    memcpy(p, type, type_len);
    r->type_len = (uint16_t)type_len;
    p += type_len;
    size_t fixed = op_len + file_len + func_len + ERR_CID_MAX;
    size_t room = (size_t)(end - p) > fixed ? (size_t)(end - p) - fixed : 0;
    size_t msg_len =
        slen(in->message, room < SONDE_ERROR_MESSAGE_MAX ? room : SONDE_ERROR_MESSAGE_MAX);
    if (msg_len)
        memcpy(p, in->message, msg_len);
    r->msg_len = (uint16_t)msg_len;
    p += msg_len;
    if (op_len)
        memcpy(p, in->operation, op_len);
    r->op_len = (uint16_t)op_len;
    p += op_len;
    if (file_len)
        memcpy(p, file, file_len);
    r->file_len = (uint16_t)file_len;
    p += file_len;
    if (func_len)
        memcpy(p, in->func, func_len);
    r->func_len = (uint16_t)func_len;
    p += func_len;
    const char *cid, *lctx;
    size_t cid_len, lctx_len;
    sonde__errors_context(&cid, &cid_len, &lctx, &lctx_len);
    if (cid_len > ERR_CID_MAX)
        cid_len = ERR_CID_MAX;
    if (cid_len)
        memcpy(p, cid, cid_len);
    r->cid_len = (uint16_t)cid_len;
    p += cid_len;

    /* Context pairs that fit whole (key cut at 64, value at 256). */
    uint16_t ctx_count = 0;
    char *ctx0 = p;
    for (size_t i = 0; in->context && i < in->context_count; i++) {
        const char *k = in->context[2 * i], *v = in->context[2 * i + 1];
        if (!k)
            continue;
        size_t kl = strnlen(k, ERR_CTX_KEY_MAX), vl = slen(v, ERR_CTX_VALUE_MAX);
        if ((size_t)(end - p) < kl + vl + 2)
            break;
        memcpy(p, k, kl);
        p[kl] = '\0';
        p += kl + 1;
        if (vl)
            memcpy(p, v, vl);
        p[vl] = '\0';
        p += vl + 1;
        ctx_count++;
    }
    r->ctx_count = ctx_count;
    r->ctx_len = (uint16_t)(p - ctx0);
    /* The logging context's fields, whole or not at all. */
    r->lctx_len = 0;
    if (lctx_len && lctx_len <= (size_t)(end - p)) {
        memcpy(p, lctx, lctx_len);
        r->lctx_len = (uint16_t)lctx_len;
    }

    /* An explicit fingerprint is hashed here (the string is the caller's);
     * the default one, from the normalised message, is left to the drain:
     * normalising is most of a capture's cost and the record holds all it
     * needs. */
    if (in->fingerprint) {
        r->fp = sonde__hash64(in->fingerprint, strlen(in->fingerprint), 0x66707269ULL);
        r->fp_pending = 0;
    } else {
        r->fp = 0;
        r->fp_pending = 1;
    }
    atomic_store_explicit(&r->seq, pos + 1, memory_order_release);

    /* Wake the worker early when the ring is a quarter full: exactly one
     * producer claims that fill level, so the (locking) trigger is rare. */
    uint64_t tail = atomic_load_explicit(&t->ring.tail, memory_order_relaxed);
    if (SONDE_UNLIKELY(pos - tail == (t->ring.mask + 1) / 4)) {
        uint64_t id = atomic_load_explicit(&t->timer_id, memory_order_relaxed);
        if (id)
            sonde__runtime_trigger(id);
    }
}

void sonde_error_capturef(sonde_errors *t, int severity, const char *type, const char *file,
                          int line, const char *func, const char *fmt, ...)
{
    if (!sonde_enabled())
        return;
    char msg[SONDE_ERROR_MESSAGE_MAX + 1];
    msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            msg[0] = '\0';
    }
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = severity;
    e.type = type;
    e.message = msg;
    e.file = file;
    e.line = line;
    e.func = func;
    sonde_error_capture(t, &e);
}

/* ---- drain ---- */

void sonde__errors_drain(sonde_errors *t)
{
    err_ring *rg = &t->ring;
    uint64_t tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
    /* At most one ring's worth per call, so that producers faster than the
     * worker cannot keep it here forever. */
    for (uint64_t k = 0; k <= rg->mask; k++) {
        err_rec *r = &rg->slots[tail & rg->mask];
        uint64_t seq = atomic_load_explicit(&r->seq, memory_order_acquire);
        if (seq != tail + 1)
            break;
        err_view v;
        sonde__err_view(r, &v);
        if (r->fp_pending) {
            char norm[ERR_NORM_MAX];
            size_t nl = sonde__err_normalize(v.msg, r->msg_len, norm, sizeof norm);
            r->fp = sonde__err_fingerprint(v.type, r->type_len, norm, nl, v.file, r->file_len,
                                           v.func, r->func_len, r->line);
            r->fp_pending = 0;
        }
        sonde__groups_add(&t->groups, r);
        sonde__rules_feed(t, r, &v);
        if (!t->no_log)
            sonde__errors_log(t, r, &v);
        atomic_store_explicit(&r->seq, tail + rg->mask + 1, memory_order_release);
        tail++;
        atomic_store_explicit(&rg->tail, tail, memory_order_relaxed);
    }
}
