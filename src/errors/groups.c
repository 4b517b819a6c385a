/*
 * Error groups: an open-addressing table from fingerprint to group slot
 * (linear probing, backward-shift deletion) and an LRU list through the
 * slots, so that a full table forgets the group seen least recently in
 * constant time. Touched only under t->lock.
 */
#include "errors/errors_int.h"

#include "health/health.h"

#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sonde__groups_init(group_table *gt, size_t max_groups)
{
    memset(gt, 0, sizeof *gt);
    size_t isz = 16;
    while (isz < 2 * max_groups)
        isz <<= 1;
    gt->index = sonde__calloc(isz, sizeof *gt->index);
    if (!gt->index)
        return SONDE_ENOMEM;
    gt->index_mask = isz - 1;
    gt->max = max_groups;
    gt->head = gt->tail = gt->free_head = GROUP_NONE;
    return SONDE_OK;
}

void sonde__groups_free(group_table *gt)
{
    for (size_t i = 0; i < gt->cap; i++)
        sonde_buf_free(&gt->g[i].sample);
    sonde__free(gt->g);
    sonde__free(gt->index);
    memset(gt, 0, sizeof *gt);
}

static size_t home(const group_table *gt, uint64_t fp)
{
    return (size_t)(fp * 0x9e3779b97f4a7c15ULL >> 20) & gt->index_mask;
}

/* Position in the index of fp, or the empty position where it would go. */
static size_t probe(const group_table *gt, uint64_t fp)
{
    size_t i = home(gt, fp);
    while (gt->index[i] && gt->g[gt->index[i] - 1].fp != fp)
        i = (i + 1) & gt->index_mask;
    return i;
}

static void index_remove(group_table *gt, uint64_t fp)
{
    size_t i = probe(gt, fp);
    if (!gt->index[i])
        return;
    gt->index[i] = 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & gt->index_mask;
        if (!gt->index[j])
            return;
        size_t k = home(gt, gt->g[gt->index[j] - 1].fp);
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool in_range = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!in_range) {
            gt->index[i] = gt->index[j];
            gt->index[j] = 0;
            i = j;
        }
    }
}

static void lru_unlink(group_table *gt, uint32_t s)
{
    group *g = &gt->g[s];
    if (g->prev != GROUP_NONE)
        gt->g[g->prev].next = g->next;
    else
        gt->head = g->next;
    if (g->next != GROUP_NONE)
        gt->g[g->next].prev = g->prev;
    else
        gt->tail = g->prev;
    g->prev = g->next = GROUP_NONE;
}

static void lru_push_front(group_table *gt, uint32_t s)
{
    group *g = &gt->g[s];
    g->prev = GROUP_NONE;
    g->next = gt->head;
    if (gt->head != GROUP_NONE)
        gt->g[gt->head].prev = s;
    gt->head = s;
    if (gt->tail == GROUP_NONE)
        gt->tail = s;
}

static void group_remove(group_table *gt, uint32_t s)
{
    group *g = &gt->g[s];
    index_remove(gt, g->fp);
    lru_unlink(gt, s);
    sonde_buf_reset(&g->sample);
    g->live = false;
    g->next = gt->free_head;
    gt->free_head = s;
    gt->count--;
}

/* A free slot: from the free list, by growing the array, or NONE. */
static uint32_t slot_alloc(group_table *gt)
{
    if (gt->free_head != GROUP_NONE) {
        uint32_t s = gt->free_head;
        gt->free_head = gt->g[s].next;
        return s;
    }
    if (gt->cap == gt->max)
        return GROUP_NONE;
    if (gt->count == gt->cap) {
        size_t nc = gt->cap ? gt->cap * 2 : 64;
        if (nc > gt->max)
            nc = gt->max;
        group *ng = sonde__realloc(gt->g, nc * sizeof *ng);
        if (!ng)
            return GROUP_NONE;
        memset(ng + gt->cap, 0, (nc - gt->cap) * sizeof *ng);
        /* New slots go to the free list, lowest first. */
        for (size_t i = nc; i-- > gt->cap + 1;) {
            ng[i].next = gt->free_head;
            gt->free_head = (uint32_t)i;
        }
        gt->g = ng;
        uint32_t s = (uint32_t)gt->cap;
        gt->cap = nc;
        return s;
    }
    return GROUP_NONE;
}

void sonde__groups_add(group_table *gt, const err_rec *r)
{
    if (!gt->index || gt->max == 0)
        return;
    size_t i = probe(gt, r->fp);
    uint32_t s;
    if (gt->index[i]) {
        s = gt->index[i] - 1;
        lru_unlink(gt, s);
    } else {
        if (gt->count >= gt->max && gt->tail != GROUP_NONE)
            group_remove(gt, gt->tail);
        s = slot_alloc(gt);
        if (s == GROUP_NONE)
            return; /* no memory: the error is still counted in the metric */
        group *g = &gt->g[s];
        sonde_buf keep = g->sample;
        memset(g, 0, sizeof *g);
        g->sample = keep;
        g->fp = r->fp;
        g->first_ns = r->ts_ns;
        g->last_ns = r->ts_ns;
        g->live = true;
        gt->count++;
        i = probe(gt, r->fp); /* a removal above may have moved entries */
        gt->index[i] = s + 1;
    }
    group *g = &gt->g[s];
    g->count++;
    if (r->ts_ns < g->first_ns)
        g->first_ns = r->ts_ns;
    /* Samples arrive in drain order, which can differ slightly from
     * capture order across threads; the last sample is the newest. */
    if (r->ts_ns >= g->last_ns || g->count == 1) {
        g->last_ns = r->ts_ns;
        sonde_buf_reset(&g->sample);
        sonde__buf_append(&g->sample, r, sonde__err_rec_used(r));
    }
    if (r->severity > g->max_sev)
        g->max_sev = r->severity;
    g->dirty = true;
    lru_push_front(gt, s);
}

void sonde__groups_prune(group_table *gt, int64_t cutoff_ns)
{
    /* The LRU tail is the group updated least recently; stop at the first
     * one seen after the cutoff. */
    while (gt->tail != GROUP_NONE && gt->g[gt->tail].last_ns < cutoff_ns)
        group_remove(gt, gt->tail);
}

/* ---- reading ---- */

static const err_rec *sample_of(const group *g)
{
    return g->sample.len >= offsetof(err_rec, data) ? (const err_rec *)(const void *)g->sample.data
                                                    : NULL;
}

static bool group_matches(const group *g, const sonde_errors_filter *f)
{
    if (!f)
        return true;
    if (f->min_severity > 0 && g->max_sev < f->min_severity)
        return false;
    if (f->since > 0 && (double)g->last_ns / 1e9 < f->since)
        return false;
    if (f->type) {
        const err_rec *r = sample_of(g);
        if (!r)
            return false;
        err_view v;
        sonde__err_view(r, &v);
        if (strlen(f->type) != r->type_len || memcmp(f->type, v.type, r->type_len) != 0)
            return false;
    }
    return true;
}

static void fp_hex(uint64_t fp, char out[17])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, fp >>= 4)
        out[i] = hx[fp & 15];
    out[16] = '\0';
}

static int json_strn(sonde_buf *b, const char *s, size_t n)
{
    int rc = sonde__buf_putc(b, '"');
    rc = rc ? rc : sonde__buf_json_escape(b, s, n);
    return rc ? rc : sonde__buf_putc(b, '"');
}

/* The title: "<type>: <normalised message>". */
static int put_title(sonde_buf *b, const err_rec *r, const err_view *v)
{
    char norm[ERR_NORM_MAX];
    size_t nl = sonde__err_normalize(v->msg, r->msg_len, norm, sizeof norm);
    int rc = sonde__buf_append(b, v->type, r->type_len);
    if (nl) {
        rc = rc ? rc : sonde__buf_append(b, ": ", 2);
        rc = rc ? rc : sonde__buf_append(b, norm, nl);
    }
    return rc;
}

/* The members that describe a group's errors (the store keeps them as its
 * data column): {"type","title","location","last"}. */
int sonde__errors_json_group_data(sonde_buf *b, const group *g)
{
    const err_rec *r = sample_of(g);
    if (!r)
        return sonde__buf_puts(b, "{}");
    err_view v;
    sonde__err_view(r, &v);
    int rc = sonde__buf_puts(b, "{\"type\":");
    rc = rc ? rc : json_strn(b, v.type, r->type_len);
    rc = rc ? rc : sonde__buf_puts(b, ",\"title\":");
    if (!rc) {
        sonde_buf t = {0};
        rc = put_title(&t, r, &v);
        rc = rc ? rc : json_strn(b, t.data ? t.data : "", t.len);
        sonde_buf_free(&t);
    }
    rc = rc ? rc : sonde__buf_puts(b, ",\"location\":{\"file\":");
    rc = rc ? rc : json_strn(b, v.file, r->file_len);
    rc = rc ? rc : sonde__buf_puts(b, ",\"function\":");
    rc = rc ? rc : json_strn(b, v.func, r->func_len);
    rc = rc ? rc : sonde__buf_printf(b, ",\"line\":%d},\"last\":{\"message\":", (int)r->line);
    rc = rc ? rc : json_strn(b, v.msg, r->msg_len);
    rc = rc ? rc
            : sonde__buf_printf(
                  b, ",\"severity\":\"%s\",\"timestamp\":", sonde_severity_name(r->severity));
    rc = rc ? rc : sonde__buf_json_time(b, (double)r->ts_ns / 1e9);
    if (r->op_len) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"operation\":");
        rc = rc ? rc : json_strn(b, v.op, r->op_len);
    }
    if (r->cid_len) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"correlation_id\":");
        rc = rc ? rc : json_strn(b, v.cid, r->cid_len);
    }
    if (r->cid_len || r->lctx_len) {
        /* As in the log lines: the correlation ID and the context fields
         * of the capturing thread. */
        bool first = true;
        rc = rc ? rc : sonde__buf_puts(b, ",\"correlation\":{");
        if (r->cid_len) {
            rc = rc ? rc : sonde__buf_puts(b, "\"correlation_id\":");
            rc = rc ? rc : json_strn(b, v.cid, r->cid_len);
            first = false;
        }
        rc = rc ? rc : sonde__errors_context_json(b, v.lctx, r->lctx_len, &first);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    if (r->errnum) {
        char eb[128];
        const char *es = strerror_r(r->errnum, eb, sizeof eb);
        rc = rc ? rc : sonde__buf_printf(b, ",\"errno\":%d,\"error\":", (int)r->errnum);
        rc = rc ? rc : sonde__buf_json_str(b, es ? es : "");
    }
    rc = rc ? rc : sonde__buf_puts(b, ",\"context\":{");
    const char *c = v.ctx;
    for (unsigned i = 0; i < r->ctx_count && !rc; i++) {
        size_t kl = strlen(c);
        const char *val = c + kl + 1;
        size_t vl = strlen(val);
        if (i)
            rc = sonde__buf_putc(b, ',');
        rc = rc ? rc : json_strn(b, c, kl);
        rc = rc ? rc : sonde__buf_putc(b, ':');
        rc = rc ? rc : json_strn(b, val, vl);
        c = val + vl + 1;
    }
    rc = rc ? rc : sonde__buf_putc(b, '}');
    if (r->nframes && !rc) {
        /* Symbolised here, off the capture path; the addresses stay valid
         * for the life of the process. */
        char **syms = backtrace_symbols(v.frames, r->nframes);
        rc = sonde__buf_puts(b, ",\"backtrace\":[");
        for (unsigned i = 0; i < r->nframes && !rc; i++) {
            if (i)
                rc = sonde__buf_putc(b, ',');
            if (syms) {
                rc = rc ? rc : sonde__buf_json_str(b, syms[i]);
            } else {
                char a[24];
                snprintf(a, sizeof a, "%p", v.frames[i]);
                rc = rc ? rc : sonde__buf_json_str(b, a);
            }
        }
        rc = rc ? rc : sonde__buf_putc(b, ']');
        free(syms);
    }
    return rc ? rc : sonde__buf_puts(b, "}}");
}

int sonde__errors_json_group_head(sonde_buf *b, const char *fp_hex16, int severity, uint64_t count,
                                  double first_seen, double last_seen)
{
    int rc = sonde__buf_printf(b,
                               "{\"fingerprint\":\"%s\",\"severity\":\"%s\",\"count\":%llu,"
                               "\"first_seen\":",
                               fp_hex16, sonde_severity_name(severity), (unsigned long long)count);
    rc = rc ? rc : sonde__buf_json_time(b, first_seen);
    rc = rc ? rc : sonde__buf_puts(b, ",\"last_seen\":");
    return rc ? rc : sonde__buf_json_time(b, last_seen);
}

int sonde__errors_json_group(sonde_buf *b, const group *g)
{
    if (!sample_of(g))
        return SONDE_OK;
    char hex[17];
    fp_hex(g->fp, hex);
    int rc = sonde__errors_json_group_head(b, hex, g->max_sev, g->count, (double)g->first_ns / 1e9,
                                           (double)g->last_ns / 1e9);
    /* The data object's members follow the head's. */
    size_t mark = b->len;
    rc = rc ? rc : sonde__errors_json_group_data(b, g);
    if (!rc && b->len > mark && b->data[mark] == '{')
        b->data[mark] = ',';
    return rc;
}

int sonde_errors_write_json(sonde_errors *t, const sonde_errors_filter *f, sonde_buf *out)
{
    if (!out)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    size_t limit = f && f->limit ? f->limit : 100;
    size_t mark = out->len;
    pthread_mutex_lock(&t->lock);
    int rc = sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, sonde__errors_now(t));
    rc = rc ? rc
            : sonde__buf_printf(
                  out, ",\"total_groups\":%zu,\"dropped\":%llu,\"groups\":[", t->groups.count,
                  (unsigned long long)atomic_load_explicit(&t->dropped, memory_order_relaxed));
    size_t shown = 0;
    for (uint32_t s = t->groups.head; s != GROUP_NONE && !rc && shown < limit;
         s = t->groups.g[s].next) {
        const group *g = &t->groups.g[s];
        if (!group_matches(g, f))
            continue;
        if (shown++)
            rc = sonde__buf_putc(out, ',');
        rc = rc ? rc : sonde__errors_json_group(out, g);
    }
    pthread_mutex_unlock(&t->lock);
    rc = rc ? rc : sonde__buf_puts(out, "]}");
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

/* Sizes of the strings of one group, for the single allocation. */
static size_t group_strings(const group *g)
{
    const err_rec *r = sample_of(g);
    if (!r)
        return 0;
    return 17 + (r->type_len + 1) + (r->type_len + 2 + ERR_NORM_MAX + 1) + (r->msg_len + 1) +
           (r->op_len + 1) + (r->cid_len + 1) + (r->file_len + 1) + (r->func_len + 1);
}

static char *put_str(char **p, const char *s, size_t n)
{
    char *d = *p;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

int sonde_errors_get_groups(sonde_errors *t, const sonde_errors_filter *f, sonde_error_group **out,
                            size_t *count)
{
    if (!out || !count)
        return SONDE_EINVAL;
    *out = NULL;
    *count = 0;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    size_t limit = f && f->limit ? f->limit : 100;
    pthread_mutex_lock(&t->lock);
    size_t n = 0, bytes = 0;
    for (uint32_t s = t->groups.head; s != GROUP_NONE && n < limit; s = t->groups.g[s].next) {
        const group *g = &t->groups.g[s];
        if (!group_matches(g, f) || !sample_of(g))
            continue;
        n++;
        bytes += group_strings(g);
    }
    if (n == 0) {
        pthread_mutex_unlock(&t->lock);
        return SONDE_OK;
    }
    sonde_error_group *arr = sonde__calloc(1, n * sizeof *arr + bytes);
    if (!arr) {
        pthread_mutex_unlock(&t->lock);
        return SONDE_ENOMEM;
    }
    char *p = (char *)(arr + n);
    size_t k = 0;
    for (uint32_t s = t->groups.head; s != GROUP_NONE && k < n; s = t->groups.g[s].next) {
        const group *g = &t->groups.g[s];
        const err_rec *r = sample_of(g);
        if (!group_matches(g, f) || !r)
            continue;
        err_view v;
        sonde__err_view(r, &v);
        sonde_error_group *e = &arr[k++];
        char hex[17];
        fp_hex(g->fp, hex);
        e->fingerprint = put_str(&p, hex, 16);
        e->type = put_str(&p, v.type, r->type_len);
        sonde_buf tb = {0};
        put_title(&tb, r, &v);
        e->title = put_str(&p, tb.data ? tb.data : "", tb.len);
        sonde_buf_free(&tb);
        e->message = put_str(&p, v.msg, r->msg_len);
        e->operation = put_str(&p, v.op, r->op_len);
        e->correlation_id = put_str(&p, v.cid, r->cid_len);
        e->file = put_str(&p, v.file, r->file_len);
        e->func = put_str(&p, v.func, r->func_len);
        e->line = r->line;
        e->severity = g->max_sev;
        e->last_severity = r->severity;
        e->count = g->count;
        e->first_seen = (double)g->first_ns / 1e9;
        e->last_seen = (double)g->last_ns / 1e9;
        e->errnum = r->errnum;
    }
    pthread_mutex_unlock(&t->lock);
    *out = arr;
    *count = k;
    return SONDE_OK;
}
