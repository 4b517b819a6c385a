/*
 * Rules and the alert lifecycle.
 *
 * Each rule is one alert. At every evaluation its condition is measured;
 * the state machine is
 *
 *   inactive/resolved --cond--> pending --held for `for`--> firing
 *   pending --!cond--> inactive          firing --!cond--> resolved
 *
 * (with `for` 0 a rule goes from inactive to firing in one evaluation). A
 * condition that cannot be measured (operation unknown to tracing, health
 * checks not yet run) leaves the state as it is. Notifiers are told when an
 * alert fires, again every repeat interval while it fires, and when it
 * resolves, unless a silence matches it: then nothing is sent while the
 * silence lasts, the firing is sent when it ends (if the alert still
 * fires), and a resolution is sent only for a firing that was sent.
 */
#include "errors/errors_int.h"

#include "health/health.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[] = {"unknown",  "errors", "failure_rate", "no_success",
                                         "anomaly",  "health", "value",        "rate",
                                         "increase", "ratio",  "quantile"};

const char *sonde_rule_kind_name(int kind)
{
    return kind >= 1 && kind <= SONDE_RULE_QUANTILE ? kind_names[kind] : "unknown";
}

int sonde_rule_kind_parse(const char *s)
{
    if (!s)
        return SONDE_EINVAL;
    for (int i = 1; i <= SONDE_RULE_QUANTILE; i++)
        if (strcasecmp(s, kind_names[i]) == 0)
            return i;
    if (strcasecmp(s, "error_threshold") == 0 || strcasecmp(s, "threshold") == 0)
        return SONDE_RULE_ERRORS;
    return SONDE_EINVAL;
}

static const char *const state_names[] = {"inactive", "pending", "firing", "resolved"};

const char *sonde_alert_state_name(int s)
{
    return s >= 0 && s <= 3 ? state_names[s] : "unknown";
}

void sonde_rule_opts_init(sonde_rule_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

void sonde__rule_free(rule *r)
{
    if (!r)
        return;
    sonde__free(r->name);
    sonde__free(r->type);
    sonde__free(r->op);
    sonde__free(r->summary_tpl);
    sonde__free(r->description_tpl);
    for (size_t i = 0; i < 2 * r->nlabels; i++)
        sonde__free(r->labels[i]);
    sonde__free(r->labels);
    sonde__free(r->ts);
    sonde__free(r->bucket_count);
    sonde__free(r->bucket_id);
    sonde__free(r->ident);
    sonde__free(r->series);
    sonde__metric_rule_free(r);
    sonde__free(r);
}

static int bad(const char *fmt, const char *what)
{
    sonde__set_error(fmt, what ? what : "(null)");
    return SONDE_EINVAL;
}

static bool dup_or_null(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return true;
    *dst = sonde__strdup(src);
    return *dst != NULL;
}

/* A canonical text of a rule's definition: two rules with the same text
 * behave the same (sonde_alerts_set_rules keeps their state). */
static char *rule_ident(const sonde_rule_opts *o)
{
    sonde_buf b = {0};
    int rc = sonde__buf_printf(&b, "%d|%d|%d|%llu|%.17g|%.17g|%llu|%p|%.17g|%.17g|", o->kind,
                               o->severity, o->min_severity, (unsigned long long)o->threshold,
                               o->window_seconds, o->percent, (unsigned long long)o->min_count,
                               (void *)o->health, o->for_seconds, o->repeat_seconds);
    const char *strs[5] = {o->type, o->operation, o->summary, o->description, NULL};
    for (int i = 0; i < 4 && !rc; i++) {
        rc = strs[i] ? sonde__buf_printf(&b, "%zu:%s|", strlen(strs[i]), strs[i])
                     : sonde__buf_puts(&b, "-|");
    }
    for (size_t i = 0; i < 2 * o->label_count && !rc; i++)
        rc = sonde__buf_printf(&b, "%zu:%s|", strlen(o->labels[i]), o->labels[i]);
    if (!rc && sonde__metric_kind(o->kind))
        rc = sonde__metric_rule_ident(&b, o);
    if (rc) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Validate and build a rule from options (no lock). */
static int rule_build(const sonde_rule_opts *o, rule **out)
{
    *out = NULL;
    if (!o->name || strlen(o->name) > 64 || !sonde__valid_label_name(o->name))
        return bad("alert rule: invalid name \"%s\" (want [a-zA-Z_][a-zA-Z0-9_]{0,63})", o->name);
    if (o->kind < SONDE_RULE_ERRORS || o->kind > SONDE_RULE_QUANTILE)
        return bad("alert rule %s: unknown kind", o->name);
    if ((o->severity && (o->severity < 1 || o->severity > 4)) ||
        (o->min_severity && (o->min_severity < 1 || o->min_severity > 4)))
        return bad("alert rule %s: severity out of range (1..4)", o->name);
    double window = o->window_seconds == 0 ? 300 : o->window_seconds;
    if (!(window >= 1 && window <= 2592000))
        return bad("alert rule %s: window_seconds out of range (1..2592000)", o->name);
    if (o->threshold > MAX_THRESHOLD)
        return bad("alert rule %s: threshold above 100000", o->name);
    bool needs_op = o->kind == SONDE_RULE_FAILURE_RATE || o->kind == SONDE_RULE_NO_SUCCESS ||
                    o->kind == SONDE_RULE_ANOMALY;
    if (needs_op && (!o->operation || !o->operation[0]))
        return bad("alert rule %s: this kind needs an operation", o->name);
    if ((o->kind == SONDE_RULE_FAILURE_RATE || o->kind == SONDE_RULE_HEALTH) &&
        !(o->percent > 0 && o->percent <= 100))
        return bad("alert rule %s: percent must be in (0, 100]", o->name);
    if (!(o->for_seconds >= 0 && o->for_seconds <= 2592000) || isnan(o->repeat_seconds))
        return bad("alert rule %s: for_seconds out of range (0..2592000)", o->name);
    if ((o->label_count && !o->labels) || o->label_count > 32)
        return bad("alert rule %s: labels missing or more than 32", o->name);
    for (size_t i = 0; i < o->label_count; i++) {
        const char *ln = o->labels[2 * i], *lv = o->labels[2 * i + 1];
        if (!sonde__valid_label_name(ln) || strncmp(ln, "__", 2) == 0 ||
            strcmp(ln, "alertname") == 0)
            return bad("alert rule: invalid or reserved label name \"%s\"", ln);
        if (!lv || !sonde__utf8_ok(lv, strlen(lv)))
            return bad("alert rule: label %s has no valid UTF-8 value", ln);
    }

    rule *r = sonde__calloc(1, sizeof *r);
    if (!r)
        return SONDE_ENOMEM;
    r->kind = o->kind;
    r->min_sev = o->min_severity ? o->min_severity : SONDE_SEVERITY_LOW;
    r->severity = o->severity                                         ? o->severity
                  : (o->kind == SONDE_RULE_ERRORS && o->min_severity) ? o->min_severity
                                                                      : SONDE_SEVERITY_HIGH;
    r->threshold = o->threshold ? o->threshold : 1;
    r->window = window;
    r->percent = o->percent;
    r->min_count = o->min_count ? o->min_count : (o->kind == SONDE_RULE_FAILURE_RATE ? 10 : 0);
    r->health = o->health;
    r->for_s = o->for_seconds;
    r->repeat_s = o->repeat_seconds == 0 ? 3600 : o->repeat_seconds;
    r->value = NAN;
    bool ok = dup_or_null(&r->name, o->name) && dup_or_null(&r->type, o->type) &&
              dup_or_null(&r->op, o->operation) && dup_or_null(&r->summary_tpl, o->summary) &&
              dup_or_null(&r->description_tpl, o->description);
    if (ok && o->label_count) {
        r->labels = sonde__calloc(2 * o->label_count, sizeof *r->labels);
        ok = r->labels != NULL;
        for (size_t i = 0; ok && i < 2 * o->label_count; i++)
            ok = (r->labels[i] = sonde__strdup(o->labels[i])) != NULL;
        r->nlabels = o->label_count;
    }
    if (ok && r->kind == SONDE_RULE_ERRORS) {
        ok = (r->ts = sonde__calloc(r->threshold, sizeof *r->ts)) != NULL &&
             (r->bucket_count = sonde__calloc(RULE_BUCKETS, sizeof *r->bucket_count)) != NULL &&
             (r->bucket_id = sonde__calloc(RULE_BUCKETS, sizeof *r->bucket_id)) != NULL;
        double w = r->window / RULE_BUCKETS;
        r->bucket_ns = (int64_t)((w < 1 ? 1 : w) * 1e9);
    }
    ok = ok && (r->ident = rule_ident(o)) != NULL;
    if (!ok) {
        sonde__rule_free(r);
        return SONDE_ENOMEM;
    }
    if (sonde__metric_kind(r->kind)) {
        int rc = sonde__metric_rule_build(o, r);
        if (rc) {
            sonde__rule_free(r);
            return rc;
        }
    }
    *out = r;
    return SONDE_OK;
}

int sonde_rule_opts_check(const sonde_rule_opts *o)
{
    sonde__clear_error();
    rule *r = NULL;
    int rc = o ? rule_build(o, &r) : SONDE_EINVAL;
    sonde__rule_free(r);
    return rc;
}

/* Insert a built rule; t->lock held. Takes r on success. */
static int rule_insert(sonde_errors *t, rule *r)
{
    for (size_t i = 0; i < t->nrules; i++)
        if (!t->rules[i]->removed && strcmp(t->rules[i]->name, r->name) == 0) {
            sonde__set_error("alert rule %s: a rule with this name exists", r->name);
            return SONDE_ECONFLICT;
        }
    if (t->nrules >= MAX_RULES)
        return SONDE_ELIMIT;
    r->created = sonde__errors_now(t);
    t->rules[t->nrules++] = r;
    return SONDE_OK;
}

int sonde_alerts_add_rule(sonde_errors *t, const sonde_rule_opts *o)
{
    sonde__clear_error();
    if (!o)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    rule *r;
    int rc = rule_build(o, &r);
    if (rc)
        return rc;
    pthread_mutex_lock(&t->lock);
    rc = rule_insert(t, r);
    pthread_mutex_unlock(&t->lock);
    if (rc)
        sonde__rule_free(r);
    return rc;
}

int sonde_alerts_set_rules(sonde_errors *t, const sonde_rule_opts *rules, size_t n)
{
    sonde__clear_error();
    if ((n && !rules) || n > MAX_RULES)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    rule **fresh = n ? sonde__calloc(n, sizeof *fresh) : NULL;
    if (n && !fresh)
        return SONDE_ENOMEM;
    int rc = SONDE_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = rule_build(&rules[i], &fresh[i]);
        for (size_t k = 0; k < i && !rc; k++)
            if (strcmp(fresh[k]->name, fresh[i]->name) == 0) {
                sonde__set_error("alert rule %s: listed twice", fresh[i]->name);
                rc = SONDE_ECONFLICT;
            }
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            sonde__rule_free(fresh[i]);
        sonde__free(fresh);
        return rc;
    }
    pthread_mutex_lock(&t->lock);
    /* Unchanged rules stay (with their state); the others are removed and
     * resolve at the next evaluation. */
    for (size_t i = 0; i < t->nrules; i++) {
        rule *r = t->rules[i];
        if (r->removed)
            continue;
        bool keep = false;
        for (size_t k = 0; k < n && !keep; k++)
            if (fresh[k] && strcmp(fresh[k]->name, r->name) == 0 &&
                strcmp(fresh[k]->ident, r->ident) == 0) {
                sonde__rule_free(fresh[k]);
                fresh[k] = NULL;
                keep = true;
            }
        if (!keep)
            r->removed = true;
    }
    for (size_t k = 0; k < n; k++) {
        if (fresh[k] && rule_insert(t, fresh[k]) != SONDE_OK) {
            sonde__rule_free(fresh[k]);
            rc = SONDE_ELIMIT;
        }
    }
    pthread_mutex_unlock(&t->lock);
    sonde__free(fresh);
    return rc;
}

int sonde_alerts_remove_rule(sonde_errors *t, const char *name)
{
    if (!name)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    int rc = SONDE_ENOTFOUND;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nrules; i++) {
        rule *r = t->rules[i];
        if (!r->removed && strcmp(r->name, name) == 0) {
            /* Resolved (and notified) at the next evaluation, then freed. */
            r->removed = true;
            rc = SONDE_OK;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* ---- feeding error rules ---- */

void sonde__rules_feed(sonde_errors *t, const err_rec *rec, const err_view *v)
{
    for (size_t i = 0; i < t->nrules; i++) {
        rule *r = t->rules[i];
        if (r->kind != SONDE_RULE_ERRORS || r->removed || rec->severity < r->min_sev)
            continue;
        if (r->type &&
            (strlen(r->type) != rec->type_len || memcmp(r->type, v->type, rec->type_len) != 0))
            continue;
        if (r->op && (strlen(r->op) != rec->op_len || memcmp(r->op, v->op, rec->op_len) != 0))
            continue;
        r->ts[r->ts_pos] = rec->ts_ns;
        r->ts_pos = (r->ts_pos + 1) % r->threshold;
        if (r->ts_n < r->threshold)
            r->ts_n++;
        int64_t id = rec->ts_ns / r->bucket_ns;
        size_t slot = (size_t)((uint64_t)id % RULE_BUCKETS);
        if (r->bucket_id[slot] < id) {
            r->bucket_id[slot] = id;
            r->bucket_count[slot] = 0;
        }
        if (r->bucket_id[slot] == id)
            r->bucket_count[slot]++;
    }
}

/* ---- labels and silences ---- */

/* The value of an alert label of rule r, or NULL. */
static const char *label_value(const sonde_errors *t, const rule *r, const char *name)
{
    if (strcmp(name, "alertname") == 0)
        return r->name;
    if (strcmp(name, "severity") == 0)
        return sonde_severity_name(r->severity);
    if (strcmp(name, "service") == 0)
        return t->service;
    if (strcmp(name, "operation") == 0 && r->op)
        return r->op;
    if (strcmp(name, "type") == 0 && r->type)
        return r->type;
    for (size_t i = 0; i < r->nlabels; i++)
        if (strcmp(r->labels[2 * i], name) == 0)
            return r->labels[2 * i + 1];
    return NULL;
}

struct alert_labels {
    const sonde_errors *t;
    const rule *r;
};

static const char *alert_label(const void *ud, const char *name)
{
    const struct alert_labels *al = ud;
    return label_value(al->t, al->r, name);
}

static bool silenced(const sonde_errors *t, const rule *r, double now)
{
    struct alert_labels al = {t, r};
    return sonde__silenced(t, alert_label, &al, now);
}

/* ---- history ---- */

static history_entry *history_find(sonde_errors *t, uint64_t id)
{
    for (size_t k = 0; k < t->hist_n; k++) {
        size_t i = (t->hist_pos + t->hist_max - 1 - k) % t->hist_max;
        if (t->history[i].id == id)
            return &t->history[i];
    }
    return NULL;
}

static void history_entry_free(history_entry *h)
{
    sonde__free(h->rule);
    sonde__free(h->summary);
    memset(h, 0, sizeof *h);
}

static uint64_t history_add(sonde_errors *t, const rule *r, double now)
{
    if (!t->history || t->hist_max == 0)
        return 0;
    history_entry *h = &t->history[t->hist_pos];
    history_entry_free(h);
    sonde_buf sb = {0};
    if (r->summary_tpl)
        sonde__payload_template(&sb, r->summary_tpl, r, r->value);
    else
        sonde__payload_default_summary(&sb, r, r->value);
    h->id = ++t->next_episode;
    h->rule = sonde__strdup(r->name);
    h->summary = sb.data ? sb.data : sonde__strdup("");
    h->severity = r->severity;
    h->state = SONDE_ALERT_FIRING;
    h->value = r->value;
    h->fired_at = now;
    h->dirty = true;
    t->hist_pos = (t->hist_pos + 1) % t->hist_max;
    if (t->hist_n < t->hist_max)
        t->hist_n++;
    return h->id;
}

void sonde__history_prune(sonde_errors *t, double now)
{
    /* The oldest entries sit at hist_pos - hist_n. */
    while (t->hist_n > 0) {
        size_t i = (t->hist_pos + t->hist_max - t->hist_n) % t->hist_max;
        history_entry *h = &t->history[i];
        double last = h->resolved_at > 0 ? h->resolved_at : h->fired_at;
        if (h->state == SONDE_ALERT_FIRING || last >= now - t->alert_retention_s)
            break;
        history_entry_free(h);
        t->hist_n--;
    }
}

/* ---- evaluation ---- */

static bool measure(sonde_errors *t, rule *r, double now, double *value)
{
    SONDE_UNUSED(t);
    switch (r->kind) {
    case SONDE_RULE_ERRORS: {
        int64_t from = (int64_t)((now - r->window) * 1e9);
        uint64_t n = 0;
        for (size_t i = 0; i < r->ts_n; i++)
            n += r->ts[i] > from;
        if (n >= r->threshold) {
            /* The ring holds only `threshold` timestamps; the buckets tell
             * how many more the window has (to a bucket's width). */
            uint64_t est = 0;
            for (size_t i = 0; i < RULE_BUCKETS; i++)
                if ((r->bucket_id[i] + 1) * r->bucket_ns > from)
                    est += r->bucket_count[i];
            if (est > n)
                n = est;
        }
        *value = (double)n;
        return true;
    }
    case SONDE_RULE_FAILURE_RATE: {
        sonde__op_window w;
        if (sonde__errors_op_window(r->op, r->window, now, &w) != SONDE_OK)
            return false;
        *value = w.count ? 100.0 * (double)w.errors / (double)w.count : 0;
        r->op_count = w.count; /* for the condition */
        return true;
    }
    case SONDE_RULE_NO_SUCCESS: {
        sonde__op_window w = {0};
        if (sonde__errors_op_window(r->op, r->window, now, &w) != SONDE_OK)
            memset(&w, 0, sizeof w); /* never ran: no success either */
        *value = (double)(w.count - w.errors);
        r->op_count = w.count;
        return true;
    }
    case SONDE_RULE_ANOMALY: {
        sonde__op_window w;
        if (sonde__errors_op_window(r->op, r->window, now, &w) != SONDE_OK)
            return false;
        *value = w.anomaly ? 1 : 0;
        return true;
    }
    case SONDE_RULE_HEALTH: {
        sonde_health_summary s;
        sonde_health_summarize(r->health ? r->health : sonde_health_default(), &s);
        if (s.pending > 0)
            return false; /* not every check has run yet */
        *value = s.percentage;
        return true;
    }
    }
    return false;
}

static bool condition(const sonde_errors *t, const rule *r, double now, double value)
{
    switch (r->kind) {
    case SONDE_RULE_ERRORS:
        return value >= (double)r->threshold;
    case SONDE_RULE_FAILURE_RATE:
        return r->op_count >= r->min_count && value > r->percent;
    case SONDE_RULE_NO_SUCCESS:
        return now - r->created >= r->window && value <= 0 && r->op_count >= r->min_count;
    case SONDE_RULE_ANOMALY:
        return value > 0;
    case SONDE_RULE_HEALTH:
        return value < r->percent;
    }
    SONDE_UNUSED(t);
    return false;
}

static void tell(sonde_errors *t, rule *r, int state, double now)
{
    sonde__notify_alert(t, r, state, now);
    r->notifications++;
}

static void fire(sonde_errors *t, rule *r, double now)
{
    r->state = SONDE_ALERT_FIRING;
    r->fired_at = now;
    r->resolved_at = 0;
    r->told = false;
    r->episode = history_add(t, r, now);
    atomic_fetch_add(&t->firing, 1);
    sonde__alerts_log(3, "alert %s firing (value %g)", r->name, r->value);
}

static void resolve(sonde_errors *t, rule *r, double now)
{
    r->state = SONDE_ALERT_RESOLVED;
    r->resolved_at = now;
    atomic_fetch_sub(&t->firing, 1);
    history_entry *h = history_find(t, r->episode);
    if (h) {
        h->state = SONDE_ALERT_RESOLVED;
        h->resolved_at = now;
        h->dirty = true;
    }
    sonde__alerts_log(3, "alert %s resolved", r->name);
    if (r->told)
        tell(t, r, SONDE_ALERT_RESOLVED, now);
}

void sonde__rule_step(sonde_errors *t, rule *r, double now)
{
    double value = r->series ? r->value : NAN;
    bool known = r->removed ? true : r->series ? r->ext_known : measure(t, r, now, &value);
    if (!known)
        return;
    r->value = value;
    bool cond = !r->removed && (r->series ? r->ext_cond : condition(t, r, now, value));
    if (r->state == SONDE_ALERT_INACTIVE || r->state == SONDE_ALERT_RESOLVED) {
        if (!cond)
            return;
        r->state = SONDE_ALERT_PENDING;
        r->active_since = now;
    }
    if (r->state == SONDE_ALERT_PENDING) {
        if (!cond) {
            r->state = SONDE_ALERT_INACTIVE;
            r->active_since = 0;
            return;
        }
        if (now - r->active_since < r->for_s)
            return;
        fire(t, r, now);
    }
    /* Firing. */
    if (!cond) {
        resolve(t, r, now);
        return;
    }
    r->silenced = silenced(t, r, now);
    if (r->silenced)
        return;
    if (!r->told) {
        r->told = true;
        r->last_notified = now;
        tell(t, r, SONDE_ALERT_FIRING, now);
    } else if (r->repeat_s > 0 && now - r->last_notified >= r->repeat_s) {
        r->last_notified = now;
        tell(t, r, SONDE_ALERT_FIRING, now);
    }
}

void sonde__rules_eval(sonde_errors *t, double now)
{
    /* Silences are checked against their time range at each step: one
     * that ended lets the alert it covered be told in this evaluation. */
    sonde__silences_prune(t, now);
    for (size_t i = 0; i < t->nrules; i++) {
        rule *r = t->rules[i];
        if (r->metric) {
            sonde__metric_rule_eval(t, r, now);
            continue;
        }
        sonde__rule_step(t, r, now);
        if (r->state != SONDE_ALERT_FIRING)
            r->silenced = silenced(t, r, now);
    }
    sonde__notify_resend(t, now);
    sonde__notify_flush_batches(t, now);
    /* Removed rules have been resolved above; free them. */
    for (size_t i = 0; i < t->nrules;) {
        if (t->rules[i]->removed) {
            sonde__rule_free(t->rules[i]);
            memmove(&t->rules[i], &t->rules[i + 1], (t->nrules - i - 1) * sizeof *t->rules);
            t->nrules--;
        } else {
            i++;
        }
    }
    t->last_eval = now;
}

rule *sonde__alert_next(const sonde_errors *t, size_t *i, size_t *j)
{
    while (*i < t->nrules) {
        rule *r = t->rules[*i];
        if (!r->metric) {
            ++*i;
            return r;
        }
        rule *c = sonde__metric_rule_child(r, *j);
        if (c) {
            ++*j;
            return c;
        }
        bool none = *j == 0;
        ++*i;
        *j = 0;
        if (none)
            return r;
    }
    return NULL;
}

/* ---- reading ---- */

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 1;
}

/* sonde_alert.series of an alert. */
static const char *alert_series(const rule *r)
{
    return r->series ? r->series : r->metric ? "{}" : NULL;
}

int sonde_alerts_get(sonde_errors *t, int history, sonde_alert **out, size_t *count)
{
    if (!out || !count)
        return SONDE_EINVAL;
    *out = NULL;
    *count = 0;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    pthread_mutex_lock(&t->lock);
    size_t n = history ? t->hist_n : 0;
    size_t ai = 0, aj = 0;
    rule **alerts = NULL;
    if (!history) {
        while (sonde__alert_next(t, &ai, &aj))
            n++;
        ai = aj = 0;
        alerts = n ? sonde__calloc(n, sizeof *alerts) : NULL;
        for (size_t k = 0; alerts && k < n; k++)
            alerts[k] = sonde__alert_next(t, &ai, &aj);
    }
    sonde_buf *sums = !history && n ? sonde__calloc(n, sizeof *sums) : NULL;
    size_t bytes = 0;
    for (size_t k = 0; k < n && (history || (sums && alerts)); k++) {
        if (history) {
            size_t i = (t->hist_pos + t->hist_max - 1 - k) % t->hist_max;
            bytes += str_size(t->history[i].rule) + str_size(t->history[i].summary) + 1;
        } else {
            rule *r = alerts[k];
            if (r->summary_tpl)
                sonde__payload_template(&sums[k], r->summary_tpl, r, r->value);
            else
                sonde__payload_default_summary(&sums[k], r, r->value);
            bytes += str_size(r->name) + sums[k].len + 1 + str_size(alert_series(r));
        }
    }
    int rc = SONDE_OK;
    sonde_alert *arr = n ? sonde__calloc(1, n * sizeof *arr + bytes) : NULL;
    if (n && (!arr || (!history && (!alerts || !sums))))
        rc = SONDE_ENOMEM;
    if (rc) {
        sonde__free(arr);
        arr = NULL;
    }
    char *p = arr ? (char *)(arr + n) : NULL;
    for (size_t k = 0; arr && k < n; k++) {
        sonde_alert *a = &arr[k];
        const char *name, *sum, *series = NULL;
        if (history) {
            size_t i = (t->hist_pos + t->hist_max - 1 - k) % t->hist_max;
            const history_entry *h = &t->history[i];
            name = h->rule;
            sum = h->summary;
            a->state = h->state;
            a->severity = h->severity;
            a->value = h->value;
            a->active_since = h->fired_at;
            a->fired_at = h->fired_at;
            a->resolved_at = h->resolved_at;
        } else {
            const rule *r = alerts[k];
            name = r->name;
            sum = sums[k].data;
            series = alert_series(r);
            a->state = r->state;
            a->severity = r->severity;
            a->value = r->value;
            a->active_since = r->active_since;
            a->fired_at = r->fired_at;
            a->resolved_at = r->resolved_at;
            a->silenced = r->silenced;
            a->notifications = r->notifications;
        }
        size_t l = name ? strlen(name) : 0;
        memcpy(p, name ? name : "", l + 1);
        a->rule = p;
        p += l + 1;
        l = sum ? strlen(sum) : 0;
        memcpy(p, sum ? sum : "", l + 1);
        a->summary = p;
        p += l + 1;
        l = series ? strlen(series) : 0;
        memcpy(p, series ? series : "", l + 1);
        a->series = p;
        p += l + 1;
    }
    pthread_mutex_unlock(&t->lock);
    for (size_t k = 0; sums && k < n; k++)
        sonde_buf_free(&sums[k]);
    sonde__free(sums);
    sonde__free(alerts);
    if (!rc) {
        *out = arr;
        *count = n;
    }
    return rc;
}

static int json_time_or_null(sonde_buf *b, double v)
{
    return v > 0 ? sonde__buf_json_time(b, v) : sonde__buf_puts(b, "null");
}

/* The rule's definition, so that a reader (sonde generate-config) can
 * express it elsewhere, e.g. as a Prometheus alerting rule: ,"definition":
 * {...} with the fields the kind uses. */
static int json_rule_definition(sonde_buf *b, const rule *r)
{
    int rc = sonde__buf_printf(b, ",\"definition\":{\"window_seconds\":%.17g,\"for_seconds\":%.17g",
                               r->window, r->for_s);
    if (!rc && r->kind == SONDE_RULE_ERRORS)
        rc = sonde__buf_printf(b, ",\"threshold\":%llu,\"min_severity\":\"%s\"",
                               (unsigned long long)r->threshold,
                               sonde_severity_name(r->min_sev ? r->min_sev : SONDE_SEVERITY_LOW));
    if (!rc && (r->kind == SONDE_RULE_FAILURE_RATE || r->kind == SONDE_RULE_HEALTH))
        rc = sonde__buf_printf(b, ",\"percent\":%.17g", r->percent);
    if (!rc && (r->kind == SONDE_RULE_FAILURE_RATE || r->kind == SONDE_RULE_NO_SUCCESS))
        rc = sonde__buf_printf(b, ",\"min_count\":%llu", (unsigned long long)r->min_count);
    if (!rc && r->type) {
        rc = sonde__buf_puts(b, ",\"type\":");
        rc = rc ? rc : sonde__buf_json_str(b, r->type);
    }
    if (!rc && r->op) {
        rc = sonde__buf_puts(b, ",\"operation\":");
        rc = rc ? rc : sonde__buf_json_str(b, r->op);
    }
    if (!rc && r->summary_tpl) {
        rc = sonde__buf_puts(b, ",\"summary\":");
        rc = rc ? rc : sonde__buf_json_str(b, r->summary_tpl);
    }
    if (!rc && r->description_tpl) {
        rc = sonde__buf_puts(b, ",\"description\":");
        rc = rc ? rc : sonde__buf_json_str(b, r->description_tpl);
    }
    if (!rc && r->metric)
        rc = sonde__metric_json_definition(b, r);
    return rc ? rc : sonde__buf_putc(b, '}');
}

static int json_rule_alert(sonde_buf *b, sonde_errors *t, const rule *r)
{
    int rc = sonde__buf_puts(b, "{\"rule\":");
    rc = rc ? rc : sonde__buf_json_str(b, r->name);
    rc = rc ? rc
            : sonde__buf_printf(b, ",\"kind\":\"%s\",\"state\":\"%s\",\"severity\":\"%s\"",
                                sonde_rule_kind_name(r->kind), sonde_alert_state_name(r->state),
                                sonde_severity_name(r->severity));
    rc = rc ? rc : sonde__buf_puts(b, ",\"value\":");
    rc = rc ? rc
            : (isnan(r->value) ? sonde__buf_puts(b, "null") : sonde__buf_json_double(b, r->value));
    rc = rc ? rc : sonde__buf_puts(b, ",\"summary\":\"");
    if (!rc) {
        sonde_buf s = {0};
        if (r->summary_tpl)
            sonde__payload_template(&s, r->summary_tpl, r, r->value);
        else
            sonde__payload_default_summary(&s, r, r->value);
        rc = sonde__buf_json_escape(b, s.data ? s.data : "", s.len);
        sonde_buf_free(&s);
    }
    rc = rc ? rc : sonde__buf_puts(b, "\",\"labels\":");
    if (!rc) {
        alert_snap a = {.r = r, .service = t->service};
        rc = sonde__payload_labels(b, &a);
    }
    rc = rc ? rc : sonde__buf_puts(b, ",\"active_since\":");
    rc = rc ? rc : json_time_or_null(b, r->state == SONDE_ALERT_INACTIVE ? 0 : r->active_since);
    rc = rc ? rc : sonde__buf_puts(b, ",\"fired_at\":");
    rc = rc ? rc : json_time_or_null(b, r->fired_at);
    rc = rc ? rc : sonde__buf_puts(b, ",\"resolved_at\":");
    rc = rc ? rc : json_time_or_null(b, r->resolved_at);
    rc = rc ? rc
            : sonde__buf_printf(b, ",\"silenced\":%s,\"notifications\":%llu",
                                r->silenced ? "true" : "false",
                                (unsigned long long)r->notifications);
    rc = rc ? rc : json_rule_definition(b, r);
    rc = rc ? rc : sonde__buf_putc(b, '}');
    return rc;
}

int sonde_alerts_write_json(sonde_errors *t, sonde_buf *out)
{
    if (!out)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    size_t mark = out->len;
    pthread_mutex_lock(&t->lock);
    double now = sonde__errors_now(t);
    int rc = sonde__buf_puts(out, "{\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(out, now);
    static const int lists[2] = {SONDE_ALERT_FIRING, SONDE_ALERT_PENDING};
    static const char *const list_names[2] = {"firing", "pending"};
    for (int l = 0; l < 2 && !rc; l++) {
        rc = sonde__buf_printf(out, ",\"%s\":[", list_names[l]);
        bool first = true;
        size_t ai = 0, aj = 0;
        for (rule *r; !rc && (r = sonde__alert_next(t, &ai, &aj));) {
            if (r->state != lists[l] || r->removed)
                continue;
            if (!first)
                rc = sonde__buf_putc(out, ',');
            first = false;
            rc = rc ? rc : json_rule_alert(out, t, r);
        }
        rc = rc ? rc : sonde__buf_putc(out, ']');
    }
    rc = rc ? rc : sonde__buf_puts(out, ",\"recent\":[");
    for (size_t k = 0; k < t->hist_n && !rc; k++) {
        const history_entry *h = &t->history[(t->hist_pos + t->hist_max - 1 - k) % t->hist_max];
        if (k)
            rc = sonde__buf_putc(out, ',');
        rc = rc ? rc : sonde__buf_puts(out, "{\"rule\":");
        rc = rc ? rc : sonde__buf_json_str(out, h->rule ? h->rule : "");
        rc = rc ? rc
                : sonde__buf_printf(out, ",\"state\":\"%s\",\"severity\":\"%s\",\"value\":",
                                    sonde_alert_state_name(h->state),
                                    sonde_severity_name(h->severity));
        rc = rc ? rc
                : (isnan(h->value) ? sonde__buf_puts(out, "null")
                                   : sonde__buf_json_double(out, h->value));
        rc = rc ? rc : sonde__buf_puts(out, ",\"summary\":");
        rc = rc ? rc : sonde__buf_json_str(out, h->summary ? h->summary : "");
        rc = rc ? rc : sonde__buf_puts(out, ",\"fired_at\":");
        rc = rc ? rc : json_time_or_null(out, h->fired_at);
        rc = rc ? rc : sonde__buf_puts(out, ",\"resolved_at\":");
        rc = rc ? rc : json_time_or_null(out, h->resolved_at);
        rc = rc ? rc : sonde__buf_putc(out, '}');
    }
    rc = rc ? rc : sonde__buf_puts(out, "],\"rules\":[");
    for (size_t i = 0; i < t->nrules && !rc; i++) {
        if (i)
            rc = sonde__buf_putc(out, ',');
        rc = rc ? rc : json_rule_alert(out, t, t->rules[i]);
    }
    rc = rc ? rc : sonde__buf_puts(out, "],\"silences\":");
    rc = rc ? rc : sonde__silences_json_current(t, out, sonde__errors_now(t));
    rc = rc ? rc : sonde__buf_puts(out, ",\"notifiers\":[");
    for (size_t i = 0; i < t->nnotifiers && !rc; i++) {
        notifier *n = t->notifiers[i];
        if (i)
            rc = sonde__buf_putc(out, ',');
        rc = rc ? rc : sonde__buf_puts(out, "{\"name\":");
        rc = rc ? rc : sonde__buf_json_str(out, n->name);
        rc = rc ? rc
                : sonde__buf_printf(
                      out, ",\"kind\":\"%s\",\"sent\":%llu,\"failed\":%llu,\"queued\":%zu}",
                      sonde_notifier_kind_name(n->kind), (unsigned long long)atomic_load(&n->sent),
                      (unsigned long long)atomic_load(&n->failed), n->queued);
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
