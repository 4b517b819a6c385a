/*
 * Persistence of error groups and alert history in the history store
 * (src/store), over a connection of its own opened through the store's
 * backend table (which creates the tables and owns every SQL and Redis
 * command: store/sqlite_errors.c, store/redis_errors.c), so that a reader
 * program (`sonde errors --store`) sees what a service recorded, across
 * restarts.
 *
 * Stored group data: {"type","title","location","last"}; alert data:
 * {"severity","summary","value","service"}. Counts are written as deltas,
 * so several processes (or restarts) add up. Writes run on the runtime
 * worker every store flush interval, bounded by the backend's timeouts; a
 * failing store is retried with backoff and counted, and only loses what
 * memory cannot hold.
 */
#include "errors/errors_int.h"

#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FLUSH_MAX_GROUPS 512

struct err_store {
    const sonde__store_type *type;
    void *ctx; /* the backend context: owns the connection */
};

void sonde__errstore_close(err_store *s)
{
    if (!s)
        return;
    if (s->type && s->ctx)
        s->type->close(s->ctx);
    sonde__free(s);
}

/* Open a store address; *out NULL (and SONDE_OK) for "off", ":memory:"
 * or nothing. */
int sonde__errstore_open(const char *spec_text, int readonly, err_store **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!spec_text || !spec_text[0])
        return SONDE_OK;
    sonde__store_spec spec;
    int rc = sonde__store_spec_parse(spec_text, &spec, err, errlen);
    if (rc) {
        sonde__store_spec_free(&spec);
        return rc;
    }
    if (spec.kind == SONDE__STORE_OFF ||
        (spec.kind == SONDE__STORE_SQLITE && spec.path && strcmp(spec.path, ":memory:") == 0)) {
        sonde__store_spec_free(&spec);
        return SONDE_OK;
    }
    err_store *s = sonde__calloc(1, sizeof *s);
    if (!s) {
        sonde__store_spec_free(&spec);
        return SONDE_ENOMEM;
    }
    s->type = spec.kind == SONDE__STORE_REDIS ? &sonde__store_redis : &sonde__store_sqlite;
    rc = s->type->open(&spec, readonly, &s->ctx, err, errlen);
    sonde__store_spec_free(&spec);
    if (rc) {
        s->ctx = NULL;
        sonde__errstore_close(s);
        return rc;
    }
    *out = s;
    return SONDE_OK;
}

/* ---- writing ---- */

static void fp_hex(uint64_t fp, char out[17])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, fp >>= 4)
        out[i] = hx[fp & 15];
    out[16] = '\0';
}

static int alert_data(sonde_buf *b, const sonde_errors *t, const history_entry *h)
{
    int rc =
        sonde__buf_printf(b, "{\"severity\":\"%s\",\"summary\":", sonde_severity_name(h->severity));
    rc = rc ? rc : sonde__buf_json_str(b, h->summary ? h->summary : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"value\":");
    rc = rc ? rc
            : (isnan(h->value) ? sonde__buf_puts(b, "null") : sonde__buf_json_double(b, h->value));
    rc = rc ? rc : sonde__buf_puts(b, ",\"service\":");
    rc = rc ? rc : sonde__buf_json_str(b, t->service ? t->service : "");
    return rc ? rc : sonde__buf_putc(b, '}');
}

static int64_t ms(double s)
{
    return (int64_t)llround(s * 1000.0);
}

/* The dirty groups to write now, at most FLUSH_MAX_GROUPS. */
static size_t dirty_groups(sonde_errors *t, uint32_t *out)
{
    size_t n = 0;
    for (uint32_t s = t->groups.head; s != GROUP_NONE && n < FLUSH_MAX_GROUPS;
         s = t->groups.g[s].next)
        if (t->groups.g[s].dirty)
            out[n++] = s;
    return n;
}

/* The rows of one flush: groups and alerts with their hex fingerprints,
 * alert keys and JSON data in one buffer each (pointers set once built). */
typedef struct flush_rows {
    sonde__group_row *groups;
    sonde__alert_row *alerts;
    history_entry **entries; /* alerts[i] is entries[i] */
    size_t ngroups, nalerts;
    char (*hex)[17];
    char (*keys)[96];
    size_t *goff, *aoff; /* data offsets in buf */
    sonde_buf buf;
} flush_rows;

static void rows_free(flush_rows *fr)
{
    sonde__free(fr->groups);
    sonde__free(fr->alerts);
    sonde__free(fr->entries);
    sonde__free(fr->hex);
    sonde__free(fr->keys);
    sonde__free(fr->goff);
    sonde__free(fr->aoff);
    sonde_buf_free(&fr->buf);
}

static int rows_build(sonde_errors *t, const uint32_t *gs, size_t ng, flush_rows *fr)
{
    size_t na = 0;
    for (size_t k = 0; k < t->hist_n; k++)
        na += t->history[k].dirty;
    fr->groups = sonde__calloc(ng ? ng : 1, sizeof *fr->groups);
    fr->hex = sonde__calloc(ng ? ng : 1, sizeof *fr->hex);
    fr->goff = sonde__calloc(ng + 1, sizeof *fr->goff);
    fr->alerts = sonde__calloc(na ? na : 1, sizeof *fr->alerts);
    fr->entries = sonde__calloc(na ? na : 1, sizeof *fr->entries);
    fr->keys = sonde__calloc(na ? na : 1, sizeof *fr->keys);
    fr->aoff = sonde__calloc(na + 1, sizeof *fr->aoff);
    if (!fr->groups || !fr->hex || !fr->goff || !fr->alerts || !fr->entries || !fr->keys ||
        !fr->aoff)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < ng; i++) {
        group *g = &t->groups.g[gs[i]];
        const err_rec *r = (const err_rec *)(const void *)g->sample.data;
        err_view v;
        sonde__err_view(r, &v);
        fp_hex(g->fp, fr->hex[i]);
        fr->goff[i] = fr->buf.len;
        if (sonde__errors_json_group_data(&fr->buf, g))
            return SONDE_ENOMEM;
        fr->groups[i] = (sonde__group_row){.fp = fr->hex[i],
                                           .first_ms = g->first_ns / 1000000,
                                           .last_ms = g->last_ns / 1000000,
                                           .count = g->count - g->persisted,
                                           .rank = g->max_sev,
                                           .level = sonde_severity_name(g->max_sev),
                                           .message = v.msg,
                                           .message_len = r->msg_len};
    }
    fr->goff[ng] = fr->buf.len;
    fr->ngroups = ng;
    for (size_t k = 0; k < t->hist_n && fr->nalerts < na; k++) {
        history_entry *h = &t->history[(t->hist_pos + t->hist_max - t->hist_n + k) % t->hist_max];
        if (!h->dirty)
            continue;
        size_t i = fr->nalerts++;
        fr->aoff[i] = fr->buf.len;
        if (alert_data(&fr->buf, t, h))
            return SONDE_ENOMEM;
        snprintf(fr->keys[i], sizeof fr->keys[i], "%016llx-%llu",
                 (unsigned long long)t->store_token, (unsigned long long)h->id);
        fr->entries[i] = h;
        fr->alerts[i] =
            (sonde__alert_row){.row_id = h->store_id,
                               .key = fr->keys[i],
                               .rule = h->rule ? h->rule : "",
                               .state = h->state == SONDE_ALERT_RESOLVED ? "resolved" : "firing",
                               .started_ms = ms(h->fired_at),
                               .resolved_ms = h->resolved_at > 0 ? ms(h->resolved_at) : 0};
    }
    fr->aoff[fr->nalerts] = fr->buf.len;
    /* The buffer is complete: point into it. */
    for (size_t i = 0; i < fr->ngroups; i++) {
        fr->groups[i].data = fr->buf.data + fr->goff[i];
        fr->groups[i].data_len = fr->goff[i + 1] - fr->goff[i];
    }
    for (size_t i = 0; i < fr->nalerts; i++) {
        fr->alerts[i].data = fr->buf.data + fr->aoff[i];
        fr->alerts[i].data_len = fr->aoff[i + 1] - fr->aoff[i];
    }
    return SONDE_OK;
}

int sonde__errstore_flush(sonde_errors *t, char *err, size_t errlen)
{
    err_store *s = t->store;
    if (!s)
        return SONDE_OK;
    uint32_t *gs = sonde__malloc(FLUSH_MAX_GROUPS * sizeof *gs);
    if (!gs)
        return SONDE_ENOMEM;
    size_t ng = dirty_groups(t, gs);
    bool any_alert = false;
    for (size_t k = 0; k < t->hist_n && !any_alert; k++)
        any_alert = t->history[k].dirty;
    int rc = SONDE_OK;
    if (ng || any_alert) {
        flush_rows fr = {0};
        rc = rows_build(t, gs, ng, &fr);
        if (!rc) {
            rc = s->type->write_errors(s->ctx, fr.groups, fr.ngroups, fr.alerts, fr.nalerts, err,
                                       errlen);
            /* SQLite row ids of inserted alerts (0 again after a failure). */
            for (size_t i = 0; i < fr.nalerts; i++)
                fr.entries[i]->store_id = fr.alerts[i].row_id;
        }
        rows_free(&fr);
    }
    if (!rc) {
        for (size_t i = 0; i < ng; i++) {
            group *g = &t->groups.g[gs[i]];
            g->persisted = g->count;
            g->dirty = false;
        }
        for (size_t k = 0; k < t->hist_max && t->history; k++)
            t->history[k].dirty = false;
    }
    sonde__free(gs);
    return rc;
}

int sonde__errstore_prune(sonde_errors *t, double groups_before, double alerts_before, char *err,
                          size_t errlen)
{
    err_store *s = t->store;
    if (!s)
        return SONDE_OK;
    return s->type->prune_errors(s->ctx, ms(groups_before), ms(alerts_before), err, errlen);
}

/* ---- the tracker's use of it (worker; t->lock held) ---- */

void sonde__errstore_tick(sonde_errors *t, bool final)
{
    if (!t->store_spec)
        return;
    uint64_t now = sonde__now_mono_ns();
    if (!final && now < t->store_next_ns)
        return;
    char err[512] = "";
    int rc = SONDE_OK;
    if (!t->store)
        rc = sonde__errstore_open(t->store_spec, 0, &t->store, err, sizeof err);
    if (!rc && t->store) {
        rc = sonde__errstore_flush(t, err, sizeof err);
        if (!rc)
            rc = sonde__silences_sync(t, t->store->type, t->store->ctx, err, sizeof err);
        double wall = sonde__errors_now(t);
        if (!rc && (wall - t->last_store_prune >= 3600 || wall < t->last_store_prune)) {
            rc = sonde__errstore_prune(t, wall - t->group_retention_s, wall - t->alert_retention_s,
                                       err, sizeof err);
            if (!rc)
                t->last_store_prune = wall;
        }
    }
    if (rc) {
        atomic_fetch_add(&t->store_errors, 1);
        if (!t->store_failing)
            sonde__alerts_log(4,
                              "error store %s: %s; retrying with backoff (counted in "
                              "sonde_errors_store_errors_total)",
                              t->store_spec, err[0] ? err : sonde_strerror(rc));
        t->store_failing = true;
        /* A broken connection is reopened at the next attempt. */
        if (rc == SONDE_EUNREACHABLE || rc == SONDE_EIO) {
            sonde__errstore_close(t->store);
            t->store = NULL;
        }
        t->store_backoff_ms = t->store_backoff_ms ? t->store_backoff_ms * 2 : 1000;
        if (t->store_backoff_ms > 60000)
            t->store_backoff_ms = 60000;
        t->store_next_ns = now + (uint64_t)t->store_backoff_ms * 1000000u;
        return;
    }
    if (t->store_failing)
        sonde__alerts_log(3, "error store %s: writing again", t->store_spec);
    t->store_failing = false;
    t->store_backoff_ms = 0;
    t->store_next_ns = now + (uint64_t)t->store_flush_ms * 1000000u;
}

/* ---- reading (another program) ---- */

static int read_open(const char *spec, err_store **out)
{
    char err[512] = "";
    if (!spec)
        return SONDE_EINVAL;
    int rc = sonde__errstore_open(spec, 1, out, err, sizeof err);
    if (!rc && !*out) {
        sonde__set_error("store \"%s\" keeps nothing (off or in memory)", spec);
        return SONDE_EINVAL;
    }
    if (rc)
        sonde__set_error("%s", err[0] ? err : sonde_strerror(rc));
    return rc;
}

/* One element of /errors from stored columns; data must be an object. */
static int put_stored_group(sonde_buf *b, bool *first, const char *fp, int sev, uint64_t count,
                            double first_seen, double last_seen, const char *data, size_t dlen)
{
    if (!fp || strlen(fp) != 16 || dlen < 2 || data[0] != '{' || data[dlen - 1] != '}')
        return SONDE_OK; /* not ours or damaged: skipped */
    int rc = *first ? SONDE_OK : sonde__buf_putc(b, ',');
    *first = false;
    rc = rc ? rc : sonde__errors_json_group_head(b, fp, sev, count, first_seen, last_seen);
    if (dlen > 2) {
        rc = rc ? rc : sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_append(b, data + 1, dlen - 1);
    } else {
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    return rc;
}

/* Whether a stored data object's type is t: it starts {"type":<t as JSON>. */
static bool data_type_is(const char *data, size_t dlen, const char *type)
{
    if (!type)
        return true;
    sonde_buf want = {0};
    bool ok = sonde__buf_puts(&want, "{\"type\":") == SONDE_OK &&
              sonde__buf_json_str(&want, type) == SONDE_OK;
    bool match = ok && dlen >= want.len && memcmp(data, want.data, want.len) == 0 &&
                 (dlen == want.len || data[want.len] == ',' || data[want.len] == '}');
    sonde_buf_free(&want);
    return match;
}

struct group_reader {
    const sonde_errors_filter *f;
    size_t limit, shown;
    bool first;
    sonde_buf *b;
    int rc;
};

static int on_group(const sonde__group_row *g, void *ud)
{
    struct group_reader *gr = ud;
    const sonde_errors_filter *f = gr->f;
    if ((f && f->min_severity && g->rank < f->min_severity) ||
        !data_type_is(g->data, g->data_len, f ? f->type : NULL))
        return 0;
    gr->rc =
        put_stored_group(gr->b, &gr->first, g->fp, g->rank, g->count, (double)g->first_ms / 1000.0,
                         (double)g->last_ms / 1000.0, g->data, g->data_len);
    return gr->rc || ++gr->shown >= gr->limit;
}

int sonde_errors_read_store(const char *store, const sonde_errors_filter *f, sonde_buf *out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    err_store *s = NULL;
    int rc = read_open(store, &s);
    if (rc)
        return rc;
    size_t mark = out->len;
    sonde_buf groups = {0};
    struct group_reader gr = {
        .f = f, .limit = f && f->limit ? f->limit : 100, .first = true, .b = &groups};
    uint64_t total = 0;
    char err[512] = "";
    rc = s->type->read_groups(s->ctx, f && f->since > 0 ? ms(f->since) : INT64_MIN, &total,
                              on_group, &gr, err, sizeof err);
    if (rc)
        sonde__set_error("%s", err[0] ? err : sonde_strerror(rc));
    rc = rc ? rc : gr.rc;
    sonde__errstore_close(s);
    rc = rc ? rc : sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, sonde__now_wall());
    rc = rc ? rc
            : sonde__buf_printf(out, ",\"total_groups\":%llu,\"dropped\":0,\"groups\":[",
                                (unsigned long long)total);
    rc = rc ? rc : sonde__buf_append(out, groups.data ? groups.data : "", groups.len);
    rc = rc ? rc : sonde__buf_puts(out, "]}");
    sonde_buf_free(&groups);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

/* One history element from stored columns. */
static int put_stored_alert(sonde_buf *b, bool *first, const char *rname, const char *state,
                            int64_t started, int64_t resolved, const char *data, size_t dlen)
{
    int rc = *first ? SONDE_OK : sonde__buf_putc(b, ',');
    *first = false;
    rc = rc ? rc : sonde__buf_puts(b, "{\"rule\":");
    rc = rc ? rc : sonde__buf_json_str(b, rname ? rname : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"state\":");
    rc = rc ? rc : sonde__buf_json_str(b, state ? state : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"fired_at\":");
    rc = rc ? rc : sonde__buf_json_time(b, (double)started / 1000.0);
    rc = rc ? rc : sonde__buf_puts(b, ",\"resolved_at\":");
    rc = rc ? rc
            : (resolved > 0 ? sonde__buf_json_time(b, (double)resolved / 1000.0)
                            : sonde__buf_puts(b, "null"));
    if (data && dlen > 2 && data[0] == '{' && data[dlen - 1] == '}') {
        rc = rc ? rc : sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_append(b, data + 1, dlen - 1);
    } else {
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    return rc;
}

#define ALERTS_READ_MAX 200

struct alert_reader {
    sonde_buf firing, recent;
    bool ff, rf;
    int rc;
};

static int on_alert(const sonde__alert_row *a, void *ud)
{
    struct alert_reader *ar = ud;
    ar->rc = put_stored_alert(&ar->recent, &ar->rf, a->rule, a->state, a->started_ms,
                              a->resolved_ms, a->data, a->data_len);
    if (!ar->rc && a->state && strcmp(a->state, "firing") == 0)
        ar->rc = put_stored_alert(&ar->firing, &ar->ff, a->rule, a->state, a->started_ms,
                                  a->resolved_ms, a->data, a->data_len);
    return ar->rc;
}

int sonde_alerts_read_store(const char *store, sonde_buf *out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    err_store *s = NULL;
    int rc = read_open(store, &s);
    if (rc)
        return rc;
    struct alert_reader ar = {.ff = true, .rf = true};
    char err[512] = "";
    rc = s->type->read_alerts(s->ctx, ALERTS_READ_MAX, on_alert, &ar, err, sizeof err);
    if (rc)
        sonde__set_error("%s", err[0] ? err : sonde_strerror(rc));
    rc = rc ? rc : ar.rc;
    sonde_buf firing = ar.firing, recent = ar.recent;
    sonde__errstore_close(s);
    size_t mark = out->len;
    rc = rc ? rc : sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, sonde__now_wall());
    rc = rc ? rc : sonde__buf_puts(out, ",\"firing\":[");
    rc = rc ? rc : sonde__buf_append(out, firing.data ? firing.data : "", firing.len);
    rc = rc ? rc : sonde__buf_puts(out, "],\"pending\":[],\"recent\":[");
    rc = rc ? rc : sonde__buf_append(out, recent.data ? recent.data : "", recent.len);
    rc = rc ? rc : sonde__buf_puts(out, "],\"rules\":[],\"silences\":[],\"notifiers\":[]}");
    sonde_buf_free(&firing);
    sonde_buf_free(&recent);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}
