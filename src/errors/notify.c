/*
 * Notifiers: per-notifier bounded queues of deliveries, driven by the
 * runtime worker (sonde__notify_pump, every tick) through one libcurl multi
 * handle per tracker, so that no transfer ever blocks the worker: DNS,
 * connect, TLS and the request all progress in non-blocking steps bounded
 * by the notifier's timeout. Command notifiers are child processes reaped
 * with WNOHANG and killed at their timeout.
 *
 * One delivery per notifier is in flight at a time, which keeps the order
 * of firing and resolution. A failed attempt is retried (5xx, 408, 429,
 * transport errors and timeouts; never another 4xx) after an exponential
 * backoff with jitter, up to max_attempts; then, or when the queue is full,
 * the delivery is counted as failed. A notifier logs its first failure and
 * its recovery, nothing in between.
 */
#include "errors/errors_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static const char *const kind_names[] = {"unknown", "log",          "webhook",
                                         "slack",   "alertmanager", "command"};

const char *sonde_notifier_kind_name(int k)
{
    return k >= 1 && k <= 5 ? kind_names[k] : "unknown";
}

int sonde_notifier_kind_parse(const char *s)
{
    if (!s)
        return SONDE_EINVAL;
    for (int i = 1; i <= 5; i++)
        if (strcasecmp(s, kind_names[i]) == 0)
            return i;
    return SONDE_EINVAL;
}

void sonde_notifier_opts_init(sonde_notifier_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

/* ---- validation ---- */

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static bool url_ok(const char *u)
{
    if (!u)
        return false;
    size_t skip = strncasecmp(u, "http://", 7) == 0    ? 7
                  : strncasecmp(u, "https://", 8) == 0 ? 8
                                                       : 0;
    if (!skip || !u[skip] || u[skip] == '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static bool header_ok(const char *h)
{
    const char *colon = h ? strchr(h, ':') : NULL;
    if (!colon || colon == h)
        return false;
    for (const char *p = h; p < colon; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    for (const unsigned char *p = (const unsigned char *)colon; *p; p++)
        if (*p == '\r' || *p == '\n' || *p == 0)
            return false;
    return true;
}

/* ---- deliveries ---- */

static void delivery_free(delivery *d)
{
    if (!d)
        return;
    sonde__free(d->body);
    sonde__free(d->name);
    sonde__free(d->status);
    sonde__free(d->severity);
    sonde__free(d->summary);
    sonde__free(d->value);
    sonde__free(d);
}

static void stat_queued(notifier *n)
{
    atomic_store_explicit(&n->queued_stat, n->queued, memory_order_relaxed);
}

/* Unlink d (whose predecessor is prev, NULL for the head). */
static void queue_unlink(notifier *n, delivery *prev, delivery *d)
{
    if (prev)
        prev->next = d->next;
    else
        n->head = d->next;
    if (n->tail == d)
        n->tail = prev;
    d->next = NULL;
    n->queued--;
    stat_queued(n);
}

static void log_failure(notifier *n, const char *reason)
{
    if (n->failing)
        return;
    n->failing = true;
    sonde__alerts_log(4,
                      "notifier %s: notification failed: %s (further failures are counted in "
                      "sonde_alert_notifications_failed_total)",
                      n->name, reason);
}

static void enqueue(sonde_errors *t, notifier *n, delivery *d)
{
    SONDE_UNUSED(t);
    if (n->queued >= n->queue_max) {
        /* Drop the oldest delivery that is not in flight. */
        delivery *prev = NULL, *old = n->head;
        if (old && old == n->inflight) {
            prev = old;
            old = old->next;
        }
        if (old) {
            queue_unlink(n, prev, old);
            delivery_free(old);
            atomic_fetch_add(&n->failed, 1);
            log_failure(n, "queue full, oldest notification dropped");
        }
    }
    if (n->queued >= n->queue_max) {
        /* Queue of one, in flight: drop the new one instead. */
        delivery_free(d);
        atomic_fetch_add(&n->failed, 1);
        log_failure(n, "queue full, notification dropped");
        return;
    }
    d->next = NULL;
    if (n->tail)
        n->tail->next = d;
    else
        n->head = d;
    n->tail = d;
    n->queued++;
    stat_queued(n);
}

/* ---- notifiers ---- */

void sonde__notifier_free(notifier *n)
{
    if (!n)
        return;
    while (n->head) {
        delivery *d = n->head;
        n->head = d->next;
        delivery_free(d);
    }
    if (n->easy)
        curl_easy_cleanup(n->easy);
    curl_slist_free_all(n->slist);
    sonde_buf_free(&n->batch);
    sonde__free(n->name);
    sonde__free(n->ident);
    sonde__free(n->url);
    for (size_t i = 0; i < n->nheaders; i++)
        sonde__free(n->headers[i]);
    sonde__free(n->headers);
    for (size_t i = 0; n->argv && n->argv[i]; i++)
        sonde__free(n->argv[i]);
    sonde__free(n->argv);
    sonde__free(n);
}

static int invalid(const char *fmt, const char *what)
{
    sonde__set_error(fmt, what ? what : "(null)");
    return SONDE_EINVAL;
}

/* A canonical text of a notifier's definition. */
static char *notifier_ident(const sonde_notifier_opts *o)
{
    sonde_buf b = {0};
    int rc = sonde__buf_printf(&b, "%d|%d|%d|%.17g|%u|%.17g|%.17g|%zu|%.17g|", o->kind,
                               o->min_severity, o->no_resolved, o->timeout_seconds, o->max_attempts,
                               o->retry_initial_seconds, o->retry_max_seconds, o->queue_size,
                               o->resend_seconds);
    rc = rc ? rc : sonde__buf_printf(&b, "%s|", o->url ? o->url : "-");
    for (size_t i = 0; i < o->header_count && !rc; i++)
        rc = sonde__buf_printf(&b, "%zu:%s|", strlen(o->headers[i]), o->headers[i]);
    for (size_t i = 0; o->argv && o->argv[i] && !rc; i++)
        rc = sonde__buf_printf(&b, "%zu:%s|", strlen(o->argv[i]), o->argv[i]);
    if (rc) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Build a notifier from options (no lock). */
static int notifier_build(const sonde_notifier_opts *o, notifier **out)
{
    *out = NULL;
    if (o->kind < SONDE_NOTIFY_LOG || o->kind > SONDE_NOTIFY_COMMAND)
        return invalid("notifier %s: unknown kind", o->name);
    const char *name = o->name ? o->name : sonde_notifier_kind_name(o->kind);
    if (!name_ok(name))
        return invalid("notifier: invalid name \"%s\" (want [a-zA-Z0-9_.:-]{1,64})", name);
    bool http = o->kind == SONDE_NOTIFY_WEBHOOK || o->kind == SONDE_NOTIFY_SLACK ||
                o->kind == SONDE_NOTIFY_ALERTMANAGER;
    if (http && !url_ok(o->url))
        return invalid("notifier %s: needs an http:// or https:// URL", name);
    if (o->kind == SONDE_NOTIFY_COMMAND && (!o->argv || !o->argv[0] || !o->argv[0][0]))
        return invalid("notifier %s: needs a command (argv)", name);
    if (o->header_count && !o->headers)
        return invalid("notifier %s: headers missing", name);
    for (size_t i = 0; i < o->header_count; i++)
        if (!header_ok(o->headers[i]))
            return invalid("notifier: invalid header \"%s\" (want \"Name: value\")", o->headers[i]);
    if ((o->min_severity && (o->min_severity < 1 || o->min_severity > 4)) ||
        (o->timeout_seconds && !(o->timeout_seconds >= 0.01 && o->timeout_seconds <= 300)) ||
        o->max_attempts > 100 || o->retry_initial_seconds < 0 || o->retry_max_seconds < 0 ||
        isnan(o->retry_initial_seconds) || isnan(o->retry_max_seconds) || o->resend_seconds < 0 ||
        isnan(o->resend_seconds) || o->queue_size > 100000)
        return invalid("notifier %s: an option is out of bounds", name);

    notifier *n = sonde__calloc(1, sizeof *n);
    if (!n)
        return SONDE_ENOMEM;
    n->kind = o->kind;
    n->min_sev = o->min_severity;
    n->no_resolved = o->no_resolved != 0;
    n->timeout_s = o->timeout_seconds ? o->timeout_seconds : 5;
    n->max_attempts = o->max_attempts ? o->max_attempts : 5;
    n->retry_initial_s = o->retry_initial_seconds ? o->retry_initial_seconds : 0.5;
    n->retry_max_s = o->retry_max_seconds ? o->retry_max_seconds : 30;
    if (n->retry_max_s < n->retry_initial_s)
        n->retry_max_s = n->retry_initial_s;
    n->resend_s = o->resend_seconds ? o->resend_seconds : 60;
    n->queue_max = o->queue_size ? o->queue_size : 256;
    bool ok = (n->name = sonde__strdup(name)) != NULL && (n->ident = notifier_ident(o)) != NULL;
    if (ok && http) {
        sonde_buf u = {0};
        size_t ul = strlen(o->url);
        if (o->kind == SONDE_NOTIFY_ALERTMANAGER) {
            while (ul > 0 && o->url[ul - 1] == '/')
                ul--;
            ok = sonde__buf_append(&u, o->url, ul) == SONDE_OK &&
                 sonde__buf_puts(&u, "/api/v2/alerts") == SONDE_OK;
        } else {
            ok = sonde__buf_append(&u, o->url, ul) == SONDE_OK;
        }
        n->url = u.data;
        struct curl_slist *sl = curl_slist_append(NULL, "Content-Type: application/json");
        sl = sl ? curl_slist_append(sl, "Expect:") : NULL;
        for (size_t i = 0; sl && i < o->header_count; i++) {
            struct curl_slist *nsl = curl_slist_append(sl, o->headers[i]);
            if (!nsl) {
                curl_slist_free_all(sl);
                sl = NULL;
            }
            sl = nsl;
        }
        n->slist = sl;
        ok = ok && sl != NULL;
    }
    if (ok && o->header_count) {
        n->headers = sonde__calloc(o->header_count, sizeof *n->headers);
        ok = n->headers != NULL;
        for (size_t i = 0; ok && i < o->header_count; i++, n->nheaders++)
            ok = (n->headers[i] = sonde__strdup(o->headers[i])) != NULL;
    }
    if (ok && o->kind == SONDE_NOTIFY_COMMAND) {
        size_t argc = 0;
        while (o->argv[argc])
            argc++;
        n->argv = sonde__calloc(argc + 1, sizeof *n->argv);
        ok = n->argv != NULL;
        for (size_t i = 0; ok && i < argc; i++)
            ok = (n->argv[i] = sonde__strdup(o->argv[i])) != NULL;
    }
    if (!ok) {
        sonde__notifier_free(n);
        return SONDE_ENOMEM;
    }
    *out = n;
    return SONDE_OK;
}

/* Insert a built notifier; t->lock held. Takes n on success. */
static int notifier_insert(sonde_errors *t, notifier *n)
{
    for (size_t i = 0; i < t->nnotifiers; i++)
        if (!t->notifiers[i]->removed && strcmp(t->notifiers[i]->name, n->name) == 0) {
            sonde__set_error("notifier %s: a notifier with this name exists", n->name);
            return SONDE_ECONFLICT;
        }
    if (t->nnotifiers >= MAX_NOTIFIERS)
        return SONDE_ELIMIT;
    pthread_mutex_lock(&t->stats_lock);
    t->notifiers[t->nnotifiers++] = n;
    pthread_mutex_unlock(&t->stats_lock);
    return SONDE_OK;
}

int sonde_notifier_opts_check(const sonde_notifier_opts *o)
{
    sonde__clear_error();
    notifier *n = NULL;
    int rc = o ? notifier_build(o, &n) : SONDE_EINVAL;
    sonde__notifier_free(n);
    return rc;
}

int sonde_alerts_add_notifier(sonde_errors *t, const sonde_notifier_opts *o)
{
    sonde__clear_error();
    if (!o)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    notifier *n;
    int rc = notifier_build(o, &n);
    if (rc)
        return rc;
    pthread_mutex_lock(&t->lock);
    rc = notifier_insert(t, n);
    pthread_mutex_unlock(&t->lock);
    if (rc)
        sonde__notifier_free(n);
    return rc;
}

/* Detach notifier i from the array; t->lock held. */
static void notifier_detach(sonde_errors *t, size_t i)
{
    pthread_mutex_lock(&t->stats_lock);
    memmove(&t->notifiers[i], &t->notifiers[i + 1], (t->nnotifiers - i - 1) * sizeof *t->notifiers);
    t->nnotifiers--;
    pthread_mutex_unlock(&t->stats_lock);
}

/* Remove notifier i; t->lock held. */
static void notifier_remove_at(sonde_errors *t, size_t i)
{
    notifier *n = t->notifiers[i];
    if (n->inflight || n->child) {
        /* The worker owns the transfer; it frees the notifier. */
        n->removed = true;
    } else {
        notifier_detach(t, i);
        sonde__notifier_free(n);
    }
}

int sonde_alerts_set_notifiers(sonde_errors *t, const sonde_notifier_opts *list, size_t count)
{
    sonde__clear_error();
    if ((count && !list) || count > MAX_NOTIFIERS)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    notifier *fresh[MAX_NOTIFIERS] = {0};
    int rc = SONDE_OK;
    for (size_t i = 0; i < count && !rc; i++) {
        rc = notifier_build(&list[i], &fresh[i]);
        for (size_t k = 0; k < i && !rc; k++)
            if (strcmp(fresh[k]->name, fresh[i]->name) == 0) {
                sonde__set_error("notifier %s: listed twice", fresh[i]->name);
                rc = SONDE_ECONFLICT;
            }
    }
    if (rc) {
        for (size_t i = 0; i < count; i++)
            sonde__notifier_free(fresh[i]);
        return rc;
    }
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nnotifiers;) {
        notifier *n = t->notifiers[i];
        bool keep = n->removed, named = false;
        for (size_t k = 0; k < count && !keep; k++) {
            if (!fresh[k] || strcmp(fresh[k]->name, n->name) != 0)
                continue;
            named = true;
            if (strcmp(fresh[k]->ident, n->ident) == 0) {
                sonde__notifier_free(fresh[k]);
                fresh[k] = NULL;
                keep = true;
            }
        }
        /* Notifiers from the environment stay unless the list names them. */
        if (!keep && n->from_env && !named)
            keep = true;
        size_t before = t->nnotifiers;
        if (!keep)
            notifier_remove_at(t, i);
        if (t->nnotifiers == before)
            i++;
    }
    for (size_t k = 0; k < count; k++)
        if (fresh[k] && notifier_insert(t, fresh[k]) != SONDE_OK) {
            sonde__notifier_free(fresh[k]);
            rc = SONDE_ELIMIT;
        }
    pthread_cond_broadcast(&t->idle);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int sonde_alerts_remove_notifier(sonde_errors *t, const char *name)
{
    if (!name)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    int rc = SONDE_ENOTFOUND;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        if (n->removed || strcmp(n->name, name) != 0)
            continue;
        rc = SONDE_OK;
        notifier_remove_at(t, i);
        break;
    }
    pthread_cond_broadcast(&t->idle);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int sonde_alerts_get_notifier_stats(sonde_errors *t, const char *name, sonde_notifier_stats *out)
{
    if (!name || !out)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    int rc = SONDE_ENOTFOUND;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        if (n->removed || strcmp(n->name, name) != 0)
            continue;
        out->sent = atomic_load(&n->sent);
        out->failed = atomic_load(&n->failed);
        out->attempts = atomic_load(&n->attempts);
        out->queued = n->queued + (n->batch_alerts ? 1 : 0);
        rc = SONDE_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* ---- building notifications ---- */

static char *generator_url(const sonde_errors *t)
{
    const char *base = t->external_url ? t->external_url : t->served_url;
    if (!base || !base[0])
        return NULL;
    size_t l = strlen(base);
    while (l > 0 && base[l - 1] == '/')
        l--;
    sonde_buf b = {0};
    if (sonde__buf_append(&b, base, l) || sonde__buf_puts(&b, "/alerts")) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void render(const rule *r, const char *tpl, bool summary, sonde_buf *out)
{
    if (tpl)
        sonde__payload_template(out, tpl, r, r->value);
    else if (summary)
        sonde__payload_default_summary(out, r, r->value);
}

static bool takes(const notifier *n, const rule *r, int state)
{
    if (n->removed || (n->min_sev && r->severity < n->min_sev))
        return false;
    return !(state == SONDE_ALERT_RESOLVED && n->no_resolved);
}

static void am_append(notifier *n, const alert_snap *a0)
{
    alert_snap a = *a0;
    if (a.state == SONDE_ALERT_FIRING)
        a.ends_at = a.now + 4 * n->resend_s; /* stays active only while re-sent */
    size_t mark = n->batch.len;
    if (n->batch_alerts && sonde__buf_putc(&n->batch, ','))
        return;
    char why[96];
    int rc = sonde__payload_am(&n->batch, &a, why, sizeof why);
    if (rc == SONDE_OK) {
        n->batch_alerts++;
        return;
    }
    n->batch.len = mark;
    if (n->batch.data)
        n->batch.data[mark] = '\0';
    atomic_fetch_add(&n->failed, 1);
    char reason[160];
    snprintf(reason, sizeof reason, "alert %s not sent: %s", a.r->name,
             rc == SONDE_EINVAL ? why : sonde_strerror(rc));
    log_failure(n, reason);
}

static delivery *delivery_new(const alert_snap *a, int kind)
{
    delivery *d = sonde__calloc(1, sizeof *d);
    if (!d)
        return NULL;
    sonde_buf b = {0};
    int rc = kind == SONDE_NOTIFY_SLACK ? sonde__payload_slack(&b, a)
             : kind == SONDE_NOTIFY_LOG ? sonde__payload_log(&b, a)
                                        : sonde__payload_webhook(&b, a);
    d->body = b.data;
    d->len = b.len;
    d->alerts = 1;
    d->level = kind == SONDE_NOTIFY_LOG ? (a->state == SONDE_ALERT_RESOLVED        ? 3
                                           : a->r->severity >= SONDE_SEVERITY_HIGH ? 5
                                                                                   : 4)
                                        : 0;
    if (kind == SONDE_NOTIFY_COMMAND && !rc) {
        char num[33];
        sonde__fmt_double(num, a->value);
        bool ok =
            (d->name = sonde__strdup(a->r->name)) &&
            (d->status = sonde__strdup(a->state == SONDE_ALERT_RESOLVED ? "resolved" : "firing")) &&
            (d->severity = sonde__strdup(sonde_severity_name(a->r->severity))) &&
            (d->summary = sonde__strdup(a->summary ? a->summary : "")) &&
            (d->value = sonde__strdup(num));
        rc = ok ? SONDE_OK : SONDE_ENOMEM;
    }
    if (rc || !d->body) {
        if (!d->body)
            sonde_buf_free(&b);
        delivery_free(d);
        return NULL;
    }
    return d;
}

static void snap_init(sonde_errors *t, rule *r, int state, double now, alert_snap *a,
                      sonde_buf *sum, sonde_buf *desc, char *gen)
{
    memset(a, 0, sizeof *a);
    render(r, r->summary_tpl, true, sum);
    render(r, r->description_tpl, false, desc);
    a->r = r;
    a->state = state;
    a->starts_at = r->fired_at > 0 ? r->fired_at : now;
    a->ends_at = state == SONDE_ALERT_RESOLVED ? (r->resolved_at > 0 ? r->resolved_at : now) : 0;
    a->value = r->value;
    a->summary = sum->data ? sum->data : "";
    a->description = desc->data;
    a->service = t->service;
    a->generator_url = gen;
    a->now = now;
}

void sonde__notify_alert(sonde_errors *t, rule *r, int state, double now)
{
    if (t->nnotifiers == 0)
        return;
    sonde_buf sum = {0}, desc = {0};
    char *gen = generator_url(t);
    alert_snap a;
    snap_init(t, r, state, now, &a, &sum, &desc, gen);
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        if (!takes(n, r, state))
            continue;
        if (n->kind == SONDE_NOTIFY_ALERTMANAGER) {
            am_append(n, &a);
            continue;
        }
        delivery *d = delivery_new(&a, n->kind);
        if (!d) {
            atomic_fetch_add(&n->failed, 1);
            log_failure(n, "out of memory");
            continue;
        }
        enqueue(t, n, d);
    }
    sonde_buf_free(&sum);
    sonde_buf_free(&desc);
    sonde__free(gen);
}

void sonde__notify_resend(sonde_errors *t, double now)
{
    char *gen = NULL;
    bool gen_done = false;
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        if (n->kind != SONDE_NOTIFY_ALERTMANAGER || n->removed)
            continue;
        if (n->last_resend == 0 || now < n->last_resend) {
            n->last_resend = now;
            continue;
        }
        if (now - n->last_resend < n->resend_s)
            continue;
        n->last_resend = now;
        size_t ai = 0, aj = 0;
        for (rule *r; (r = sonde__alert_next(t, &ai, &aj));) {
            /* Firing, sent before, not silenced, not just sent in this
             * evaluation. */
            if (r->state != SONDE_ALERT_FIRING || !r->told || r->silenced ||
                r->last_notified == now || !takes(n, r, SONDE_ALERT_FIRING))
                continue;
            if (!gen_done) {
                gen = generator_url(t);
                gen_done = true;
            }
            sonde_buf sum = {0}, desc = {0};
            alert_snap a;
            snap_init(t, r, SONDE_ALERT_FIRING, now, &a, &sum, &desc, gen);
            am_append(n, &a);
            sonde_buf_free(&sum);
            sonde_buf_free(&desc);
        }
    }
    sonde__free(gen);
}

void sonde__notify_flush_batches(sonde_errors *t, double now)
{
    SONDE_UNUSED(now);
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        if (n->kind != SONDE_NOTIFY_ALERTMANAGER || n->batch_alerts == 0)
            continue;
        delivery *d = sonde__calloc(1, sizeof *d);
        sonde_buf b = {0};
        if (!d || sonde__buf_putc(&b, '[') || sonde__buf_append(&b, n->batch.data, n->batch.len) ||
            sonde__buf_putc(&b, ']')) {
            sonde__free(d);
            sonde_buf_free(&b);
            atomic_fetch_add(&n->failed, 1);
            log_failure(n, "out of memory");
        } else {
            d->body = b.data;
            d->len = b.len;
            d->alerts = n->batch_alerts;
            enqueue(t, n, d);
        }
        sonde_buf_reset(&n->batch);
        n->batch_alerts = 0;
    }
}

/* ---- delivery ---- */

static uint64_t rng_next(sonde_errors *t)
{
    /* xorshift64*: jitter only, not security. */
    uint64_t x = t->rng ? t->rng : 0x9e3779b97f4a7c15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Delay before attempt number attempts + 1: initial * 2^(attempts-1),
 * capped, minus up to half of it at random. */
static uint64_t backoff_ns(sonde_errors *t, const notifier *n, unsigned attempts)
{
    double d = n->retry_initial_s * pow(2.0, attempts > 0 ? attempts - 1 : 0);
    if (d > n->retry_max_s)
        d = n->retry_max_s;
    double frac = (double)(rng_next(t) >> 11) / 9007199254740992.0;
    d -= d * 0.5 * frac;
    return (uint64_t)(d * 1e9);
}

static void finish(sonde_errors *t, notifier *n, bool ok, bool retryable, const char *reason)
{
    delivery *d = n->inflight;
    n->inflight = NULL;
    if (!d)
        return;
    uint64_t now = sonde__now_mono_ns();
    if (ok) {
        if (n->head == d)
            queue_unlink(n, NULL, d);
        delivery_free(d);
        atomic_fetch_add(&n->sent, 1);
        if (n->failing) {
            n->failing = false;
            sonde__alerts_log(3, "notifier %s: delivering again", n->name);
        }
    } else if (retryable && d->attempts < n->max_attempts && !n->removed) {
        d->next_ns = now + backoff_ns(t, n, d->attempts);
        atomic_fetch_add(&n->retries, 1);
    } else {
        if (n->head == d)
            queue_unlink(n, NULL, d);
        delivery_free(d);
        atomic_fetch_add(&n->failed, 1);
        char msg[200];
        snprintf(msg, sizeof msg, "%s%s", reason ? reason : "failed",
                 retryable ? " (attempts exhausted)" : " (not retried)");
        log_failure(n, msg);
    }
    pthread_cond_broadcast(&t->idle);
}

static size_t discard(char *p, size_t sz, size_t nm, void *ud)
{
    SONDE_UNUSED(p);
    SONDE_UNUSED(ud);
    return sz * nm;
}

static bool transient(CURLcode c)
{
    switch (c) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
        return false;
    default:
        return true;
    }
}

static void http_done(sonde_errors *t, notifier *n, CURLcode res, long status)
{
    char reason[CURL_ERROR_SIZE + 64];
    bool ok = res == CURLE_OK && status >= 200 && status < 300;
    bool retry = false;
    if (res != CURLE_OK) {
        retry = transient(res);
        snprintf(reason, sizeof reason, "%s: %s", n->url,
                 n->errbuf[0] ? n->errbuf : curl_easy_strerror(res));
    } else {
        retry = status >= 500 || status == 408 || status == 429;
        snprintf(reason, sizeof reason, "%s answered HTTP %ld", n->url, status);
    }
    finish(t, n, ok, retry, reason);
}

static bool http_start(sonde_errors *t, notifier *n, delivery *d)
{
    CURL *e = n->easy;
    if (e)
        curl_easy_reset(e);
    else
        e = n->easy = curl_easy_init();
    if (!e)
        return false;
    n->errbuf[0] = '\0';
    long tmo = (long)(n->timeout_s * 1000);
    curl_easy_setopt(e, CURLOPT_URL, n->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)n->slist);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, tmo);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)n);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, n->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sonde/" SONDE_VERSION_STRING);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return curl_multi_add_handle(t->multi, e) == CURLM_OK;
}

static bool command_start(notifier *n, delivery *d)
{
    /* The environment: ours plus the alert. */
    size_t envc = 0;
    while (environ && environ[envc])
        envc++;
    char **env = sonde__calloc(envc + 7, sizeof *env);
    if (!env)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < envc; i++)
        if (strncmp(environ[i], "SONDE_ALERT_", 12) != 0)
            env[k++] = environ[i];
    const char *keys[6] = {"SONDE_ALERT_NAME=",    "SONDE_ALERT_STATUS=", "SONDE_ALERT_SEVERITY=",
                           "SONDE_ALERT_SUMMARY=", "SONDE_ALERT_VALUE=",  "SONDE_ALERT_JSON="};
    const char *vals[6] = {d->name, d->status, d->severity, d->summary, d->value, d->body};
    size_t first_own = k;
    bool ok = true;
    for (int i = 0; i < 6 && ok; i++) {
        sonde_buf b = {0};
        ok = sonde__buf_puts(&b, keys[i]) == SONDE_OK &&
             sonde__buf_puts(&b, vals[i] ? vals[i] : "") == SONDE_OK;
        env[k++] = b.data;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    pid_t pid = 0;
    int rc = -1;
    if (ok && posix_spawn_file_actions_init(&fa) == 0) {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        if (posix_spawnattr_init(&at) == 0) {
            sigset_t none, all;
            sigemptyset(&none);
            sigfillset(&all);
            posix_spawnattr_setsigmask(&at, &none);
            posix_spawnattr_setsigdefault(&at, &all);
            /* Its own process group, so that a timeout kills the command's
             * children as well. */
            posix_spawnattr_setpgroup(&at, 0);
            posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                              POSIX_SPAWN_SETPGROUP);
            rc = posix_spawnp(&pid, n->argv[0], &fa, &at, n->argv, env);
            posix_spawnattr_destroy(&at);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    for (size_t i = first_own; i < k; i++)
        sonde__free(env[i]);
    sonde__free(env);
    if (rc != 0) {
        snprintf(n->errbuf, sizeof n->errbuf, "cannot run %s: %s", n->argv[0],
                 rc > 0 ? strerror(rc) : "out of memory");
        return false;
    }
    n->child = pid;
    n->child_killed = false;
    n->child_deadline_ns = sonde__now_mono_ns() + (uint64_t)(n->timeout_s * 1e9);
    return true;
}

static void child_check(sonde_errors *t, notifier *n, uint64_t now)
{
    int st = 0;
    pid_t r = waitpid(n->child, &st, WNOHANG);
    if (r == n->child || r < 0) {
        bool killed = n->child_killed;
        n->child = 0;
        char reason[160];
        bool ok = r > 0 && !killed && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (r < 0)
            snprintf(reason, sizeof reason, "%s: exit status lost", n->argv[0]);
        else if (killed)
            snprintf(reason, sizeof reason, "%s: timed out after %g s", n->argv[0], n->timeout_s);
        else if (WIFEXITED(st))
            snprintf(reason, sizeof reason, "%s exited with status %d", n->argv[0],
                     WEXITSTATUS(st));
        else
            snprintf(reason, sizeof reason, "%s killed by signal %d", n->argv[0],
                     WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        finish(t, n, ok, r > 0, reason);
        return;
    }
    if (!n->child_killed && now >= n->child_deadline_ns) {
        kill(-n->child, SIGKILL);
        kill(n->child, SIGKILL);
        n->child_killed = true;
    }
}

static void child_kill_wait(notifier *n)
{
    if (n->child <= 0)
        return;
    kill(-n->child, SIGKILL);
    kill(n->child, SIGKILL);
    int st;
    while (waitpid(n->child, &st, 0) < 0 && errno == EINTR) {
    }
    n->child = 0;
}

/* Start the head delivery of n. */
static void start(sonde_errors *t, notifier *n)
{
    delivery *d = n->head;
    n->inflight = d;
    d->attempts++;
    atomic_fetch_add(&n->attempts, 1);
    switch (n->kind) {
    case SONDE_NOTIFY_LOG:
        sonde__alerts_log(d->level, "%s", d->body);
        finish(t, n, true, false, NULL);
        return;
    case SONDE_NOTIFY_COMMAND:
        if (!command_start(n, d))
            finish(t, n, false, false, n->errbuf);
        return;
    default:
        if (!t->multi || !http_start(t, n, d))
            finish(t, n, false, true, "cannot start the HTTP request");
        return;
    }
}

/* Abandon what n has in flight (no completion is counted). */
static void abort_inflight(sonde_errors *t, notifier *n)
{
    if (n->easy && n->inflight && t->multi)
        curl_multi_remove_handle(t->multi, n->easy);
    child_kill_wait(n);
    n->inflight = NULL;
}

void sonde__notify_pump(sonde_errors *t)
{
    uint64_t now = sonde__now_mono_ns();
    if (t->multi) {
        int running = 0;
        curl_multi_perform(t->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(t->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode res = m->data.result;
            notifier *n = NULL;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&n);
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(t->multi, e);
            if (n)
                http_done(t, n, res, status);
        }
    }
    bool started = false;
    for (size_t i = 0; i < t->nnotifiers;) {
        notifier *n = t->notifiers[i];
        if (n->child > 0)
            child_check(t, n, now);
        if (n->removed) {
            abort_inflight(t, n);
            notifier_detach(t, i);
            sonde__notifier_free(n);
            continue;
        }
        if (!n->inflight && n->head && n->head->next_ns <= now) {
            start(t, n);
            started = started || n->inflight != NULL;
        }
        i++;
    }
    if (started && t->multi) {
        int running = 0;
        curl_multi_perform(t->multi, &running);
    }
}

bool sonde__notify_idle(sonde_errors *t)
{
    for (size_t i = 0; i < t->nnotifiers; i++) {
        const notifier *n = t->notifiers[i];
        if (n->queued || n->batch_alerts || n->inflight || n->child)
            return false;
    }
    return true;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sonde__notify_start(sonde_errors *t)
{
    pthread_once(&curl_once, curl_init_once);
    if (!t->multi)
        t->multi = curl_multi_init();
    return t->multi ? SONDE_OK : SONDE_ENOMEM;
}

void sonde__notify_stop(sonde_errors *t, unsigned timeout_ms)
{
    uint64_t deadline = sonde__now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        sonde__notify_pump(t);
        if (sonde__notify_idle(t) || sonde__now_mono_ns() >= deadline)
            break;
        /* Wait for I/O without the lock (the worker no longer runs the
         * tracker, so only this thread touches the multi handle). */
        pthread_mutex_unlock(&t->lock);
        if (t->multi) {
            curl_multi_poll(t->multi, NULL, 0, 10, NULL);
        } else {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&t->lock);
    }
    /* Abandon the rest, counted as failed. */
    for (size_t i = 0; i < t->nnotifiers; i++) {
        notifier *n = t->notifiers[i];
        abort_inflight(t, n);
        uint64_t lost = n->queued + (n->batch_alerts ? 1 : 0);
        while (n->head) {
            delivery *d = n->head;
            queue_unlink(n, NULL, d);
            delivery_free(d);
        }
        sonde_buf_reset(&n->batch);
        n->batch_alerts = 0;
        if (lost && !n->removed) {
            atomic_fetch_add(&n->failed, lost);
            log_failure(n, "undelivered at shutdown");
        }
    }
    for (size_t i = 0; i < t->nnotifiers;) {
        if (t->notifiers[i]->removed) {
            notifier *n = t->notifiers[i];
            notifier_detach(t, i);
            sonde__notifier_free(n);
        } else {
            i++;
        }
    }
    if (t->multi) {
        curl_multi_cleanup(t->multi);
        t->multi = NULL;
    }
    pthread_cond_broadcast(&t->idle);
}

/* ---- environment ---- */

void sonde__notify_env(sonde_errors *t)
{
    static const struct {
        const char *env, *name;
        int kind;
    } vars[] = {
        {"SONDE_ALERTMANAGER_URL", "alertmanager", SONDE_NOTIFY_ALERTMANAGER},
        {"SONDE_WEBHOOK_URL", "webhook", SONDE_NOTIFY_WEBHOOK},
        {"SONDE_SLACK_WEBHOOK_URL", "slack", SONDE_NOTIFY_SLACK},
    };
    for (size_t i = 0; i < SONDE_ARRAY_LEN(vars); i++) {
        const char *url = getenv(vars[i].env);
        if (!url || !url[0])
            continue;
        sonde_notifier_opts o;
        sonde_notifier_opts_init(&o);
        o.kind = vars[i].kind;
        o.name = vars[i].name;
        o.url = url;
        notifier *n;
        int rc = notifier_build(&o, &n);
        if (rc == SONDE_OK) {
            n->from_env = true;
            rc = notifier_insert(t, n);
            if (rc)
                sonde__notifier_free(n);
            if (rc == SONDE_ECONFLICT)
                continue; /* configured in code already */
        }
        if (rc)
            sonde__alerts_log(4, "%s ignored: %s", vars[i].env,
                              rc == SONDE_EINVAL ? sonde_last_error() : sonde_strerror(rc));
    }
}
