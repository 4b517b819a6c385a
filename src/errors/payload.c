/*
 * Notification payloads: the generic webhook JSON, the Slack incoming
 * webhook message, Alertmanager's postable alerts (validated first: one
 * invalid alert makes Alertmanager refuse the whole batch), the log line,
 * and the summary templates.
 */
#include "errors/errors_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int put_window(sonde_buf *b, double w)
{
    if (w >= 3600 && fmod(w, 3600) == 0)
        return sonde__buf_printf(b, "%gh", w / 3600);
    if (w >= 60 && fmod(w, 60) == 0)
        return sonde__buf_printf(b, "%gm", w / 60);
    return sonde__buf_printf(b, "%gs", w);
}

static int put_value(sonde_buf *b, const rule *r, double v)
{
    if (isnan(v))
        return sonde__buf_puts(b, "unknown");
    if (sonde__metric_kind(r->kind))
        return sonde__metric_put_value(b, r, v);
    if (r->kind == SONDE_RULE_FAILURE_RATE || r->kind == SONDE_RULE_HEALTH)
        return sonde__buf_printf(b, "%.1f", v);
    return sonde__buf_printf(b, "%.0f", v);
}

int sonde__payload_default_summary(sonde_buf *b, const rule *r, double v)
{
    int rc = SONDE_OK;
    switch (r->kind) {
    case SONDE_RULE_ERRORS:
        rc = put_value(b, r, v);
        rc =
            rc ? rc
               : sonde__buf_printf(b, " errors of severity >= %s", sonde_severity_name(r->min_sev));
        if (r->type)
            rc = rc ? rc : sonde__buf_printf(b, " of type %s", r->type);
        if (r->op)
            rc = rc ? rc : sonde__buf_printf(b, " in %s", r->op);
        rc = rc ? rc : sonde__buf_puts(b, " within ");
        rc = rc ? rc : put_window(b, r->window);
        rc = rc ? rc : sonde__buf_printf(b, " (threshold %llu)", (unsigned long long)r->threshold);
        break;
    case SONDE_RULE_FAILURE_RATE:
        rc = sonde__buf_printf(b, "%s failed ", r->op);
        rc = rc ? rc : put_value(b, r, v);
        rc = rc ? rc : sonde__buf_puts(b, "% of the time over ");
        rc = rc ? rc : put_window(b, r->window);
        rc = rc ? rc : sonde__buf_printf(b, " (threshold %g%%)", r->percent);
        break;
    case SONDE_RULE_NO_SUCCESS:
        rc = sonde__buf_printf(b, "no successful %s within ", r->op);
        rc = rc ? rc : put_window(b, r->window);
        break;
    case SONDE_RULE_ANOMALY:
        rc = sonde__buf_printf(b, "%s is slower than its baseline", r->op);
        break;
    case SONDE_RULE_HEALTH:
        rc = sonde__buf_puts(b, "health at ");
        rc = rc ? rc : put_value(b, r, v);
        rc = rc ? rc : sonde__buf_printf(b, "%% (below %g%%)", r->percent);
        break;
    default:
        rc = sonde__metric_summary(b, r, v);
        break;
    }
    return rc;
}

int sonde__payload_template(sonde_buf *b, const char *tpl, const rule *r, double v)
{
    int rc = SONDE_OK;
    for (const char *p = tpl; *p && !rc;) {
        const char *open = strchr(p, '{');
        if (!open)
            return sonde__buf_puts(b, p);
        rc = sonde__buf_append(b, p, (size_t)(open - p));
        const char *close = strchr(open, '}');
        if (!close) {
            rc = rc ? rc : sonde__buf_puts(b, open);
            break;
        }
        size_t n = (size_t)(close - open - 1);
        const char *k = open + 1;
#define IS(name) (n == sizeof(name) - 1 && memcmp(k, name, n) == 0)
        if (IS("value"))
            rc = rc ? rc : put_value(b, r, v);
        else if (IS("threshold") && sonde__metric_kind(r->kind))
            rc = rc ? rc : sonde__metric_put_threshold(b, r);
        else if (IS("threshold"))
            rc = rc ? rc
                 : (r->kind == SONDE_RULE_FAILURE_RATE || r->kind == SONDE_RULE_HEALTH)
                     ? sonde__buf_printf(b, "%g", r->percent)
                     : sonde__buf_printf(b, "%llu", (unsigned long long)r->threshold);
        else if (IS("window"))
            rc = rc ? rc : put_window(b, r->window);
        else if (IS("operation"))
            rc = rc ? rc : sonde__buf_puts(b, r->op ? r->op : "");
        else if (IS("type"))
            rc = rc ? rc : sonde__buf_puts(b, r->type ? r->type : "");
        else if (IS("rule"))
            rc = rc ? rc : sonde__buf_puts(b, r->name);
        else if (IS("severity"))
            rc = rc ? rc : sonde__buf_puts(b, sonde_severity_name(r->severity));
        else if (n > 7 && memcmp(k, "labels.", 7) == 0) {
            /* {labels.NAME}: a label of the alert (a metric rule's series). */
            const char *lv = NULL;
            for (size_t i = 0; i < r->nlabels && !lv; i++)
                if (strlen(r->labels[2 * i]) == n - 7 &&
                    memcmp(r->labels[2 * i], k + 7, n - 7) == 0)
                    lv = r->labels[2 * i + 1];
            rc = rc ? rc : sonde__buf_puts(b, lv ? lv : "");
        } else
            rc = rc ? rc : sonde__buf_append(b, open, n + 2);
#undef IS
        p = close + 1;
    }
    return rc;
}

/* ---- labels ---- */

typedef struct label {
    const char *name, *value;
} label;

/* The alert's labels in a fixed order; empty values are left out (an
 * empty label is no label in Prometheus' model). */
static size_t alert_labels(const alert_snap *a, label *out, size_t max)
{
    const rule *r = a->r;
    size_t n = 0;
#define ADD(k, v)                                                                                  \
    do {                                                                                           \
        if ((v) && (v)[0] && n < max)                                                              \
            out[n++] = (label){(k), (v)};                                                          \
    } while (0)
    ADD("alertname", r->name);
    ADD("severity", sonde_severity_name(r->severity));
    ADD("service", a->service);
    ADD("operation", r->op);
    ADD("type", r->type);
    for (size_t i = 0; i < r->nlabels; i++) {
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(out[k].name, r->labels[2 * i]) == 0;
        if (!dup)
            ADD(r->labels[2 * i], r->labels[2 * i + 1]);
    }
#undef ADD
    return n;
}

int sonde__payload_labels(sonde_buf *b, const alert_snap *a)
{
    label ls[8 + 64];
    size_t n = alert_labels(a, ls, SONDE_ARRAY_LEN(ls));
    int rc = sonde__buf_putc(b, '{');
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_json_str(b, ls[i].name);
        rc = rc ? rc : sonde__buf_putc(b, ':');
        rc = rc ? rc : sonde__buf_json_str(b, ls[i].value);
    }
    return rc ? rc : sonde__buf_putc(b, '}');
}

static int put_value_json(sonde_buf *b, double v)
{
    return isnan(v) ? sonde__buf_puts(b, "null") : sonde__buf_json_double(b, v);
}

static const char *status_name(int state)
{
    return state == SONDE_ALERT_RESOLVED ? "resolved" : "firing";
}

/* ---- generic webhook ---- */

int sonde__payload_webhook(sonde_buf *b, const alert_snap *a)
{
    const rule *r = a->r;
    int rc = sonde__buf_printf(
        b, "{\"version\":\"1\",\"status\":\"%s\",\"service\":", status_name(a->state));
    rc = rc ? rc : sonde__buf_json_str(b, a->service ? a->service : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"alert\":{\"name\":");
    rc = rc ? rc : sonde__buf_json_str(b, r->name);
    rc = rc ? rc
            : sonde__buf_printf(b, ",\"status\":\"%s\",\"kind\":\"%s\",\"severity\":\"%s\"",
                                status_name(a->state), sonde_rule_kind_name(r->kind),
                                sonde_severity_name(r->severity));
    rc = rc ? rc : sonde__buf_puts(b, ",\"summary\":");
    rc = rc ? rc : sonde__buf_json_str(b, a->summary ? a->summary : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"description\":");
    rc = rc ? rc : sonde__buf_json_str(b, a->description ? a->description : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"value\":");
    rc = rc ? rc : put_value_json(b, a->value);
    rc = rc ? rc : sonde__buf_puts(b, ",\"labels\":");
    rc = rc ? rc : sonde__payload_labels(b, a);
    rc = rc ? rc : sonde__buf_puts(b, ",\"startsAt\":\"");
    rc = rc ? rc : sonde__buf_rfc3339(b, a->starts_at);
    rc = rc ? rc : sonde__buf_puts(b, "\",\"endsAt\":");
    if (a->ends_at > 0) {
        rc = rc ? rc : sonde__buf_putc(b, '"');
        rc = rc ? rc : sonde__buf_rfc3339(b, a->ends_at);
        rc = rc ? rc : sonde__buf_putc(b, '"');
    } else {
        rc = rc ? rc : sonde__buf_puts(b, "null");
    }
    if (a->generator_url) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"generatorURL\":");
        rc = rc ? rc : sonde__buf_json_str(b, a->generator_url);
    }
    rc = rc ? rc : sonde__buf_puts(b, "},\"timestamp\":\"");
    rc = rc ? rc : sonde__buf_rfc3339(b, a->now);
    return rc ? rc : sonde__buf_puts(b, "\"}");
}

/* ---- Slack ---- */

/* Slack message text: JSON-escaped, and &, <, > escaped as Slack asks
 * (they delimit its links and mentions). */
static int slack_str(sonde_buf *b, const char *s)
{
    int rc = sonde__buf_putc(b, '"');
    while (!rc && s && *s) {
        size_t n = strcspn(s, "&<>");
        rc = sonde__buf_json_escape(b, s, n);
        s += n;
        if (!rc && *s) {
            rc = sonde__buf_puts(b, *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : "&gt;");
            s++;
        }
    }
    return rc ? rc : sonde__buf_putc(b, '"');
}

int sonde__payload_slack(sonde_buf *b, const alert_snap *a)
{
    const rule *r = a->r;
    bool firing = a->state != SONDE_ALERT_RESOLVED;
    sonde_buf text = {0};
    int rc = sonde__buf_printf(
        &text, "%s [%s] %s: %s",
        firing ? ":rotating_light:" : ":white_check_mark:", firing ? "FIRING" : "RESOLVED", r->name,
        a->summary ? a->summary : "");
    rc = rc ? rc : sonde__buf_puts(b, "{\"text\":");
    rc = rc ? rc : slack_str(b, text.data ? text.data : "");
    sonde_buf_free(&text);
    const char *color = !firing                              ? "good"
                        : r->severity >= SONDE_SEVERITY_HIGH ? "danger"
                                                             : "warning";
    rc = rc ? rc : sonde__buf_printf(b, ",\"attachments\":[{\"color\":\"%s\",\"fallback\":", color);
    rc = rc ? rc : slack_str(b, a->summary ? a->summary : r->name);
    rc = rc ? rc : sonde__buf_puts(b, ",\"title\":");
    rc = rc ? rc : slack_str(b, r->name);
    rc = rc ? rc : sonde__buf_puts(b, ",\"text\":");
    rc = rc ? rc
            : slack_str(b, a->description && a->description[0] ? a->description
                                                               : (a->summary ? a->summary : ""));
    rc = rc ? rc : sonde__buf_puts(b, ",\"fields\":[{\"title\":\"Severity\",\"value\":");
    rc = rc ? rc : slack_str(b, sonde_severity_name(r->severity));
    rc = rc ? rc : sonde__buf_puts(b, ",\"short\":true},{\"title\":\"Service\",\"value\":");
    rc = rc ? rc : slack_str(b, a->service ? a->service : "");
    rc = rc ? rc : sonde__buf_puts(b, ",\"short\":true},{\"title\":\"Value\",\"value\":\"");
    if (!rc) {
        sonde_buf v = {0};
        put_value(&v, r, a->value);
        rc = sonde__buf_json_escape(b, v.data ? v.data : "", v.len);
        sonde_buf_free(&v);
    }
    rc = rc ? rc : sonde__buf_puts(b, "\",\"short\":true}]");
    rc = rc ? rc : sonde__buf_printf(b, ",\"ts\":%lld}]}", (long long)a->now);
    return rc;
}

/* ---- Alertmanager ---- */

int sonde__payload_am(sonde_buf *b, const alert_snap *a, char *why, size_t whylen)
{
    label ls[8 + 64];
    size_t n = alert_labels(a, ls, SONDE_ARRAY_LEN(ls));
    /* Alertmanager's own checks (model.Alert.Validate and the API's
     * schema): at least one label, valid label names, UTF-8 values and
     * annotations, a start, an end not before the start, an absolute
     * generator URL. */
    const char *bad = NULL;
    if (n == 0)
        bad = "no labels";
    for (size_t i = 0; i < n && !bad; i++) {
        if (!sonde__valid_label_name(ls[i].name))
            bad = "invalid label name";
        else if (!sonde__utf8_ok(ls[i].value, strlen(ls[i].value)))
            bad = "label value is not UTF-8";
    }
    if (!bad && a->summary && !sonde__utf8_ok(a->summary, strlen(a->summary)))
        bad = "summary is not UTF-8";
    if (!bad && a->description && !sonde__utf8_ok(a->description, strlen(a->description)))
        bad = "description is not UTF-8";
    if (!bad && !(a->starts_at > 0 && isfinite(a->starts_at)))
        bad = "no start time";
    if (!bad && a->ends_at > 0 && a->ends_at < a->starts_at)
        bad = "ends before it starts";
    if (!bad && a->generator_url && strncmp(a->generator_url, "http://", 7) != 0 &&
        strncmp(a->generator_url, "https://", 8) != 0)
        bad = "generatorURL is not an http(s) URL";
    if (bad) {
        if (why && whylen)
            snprintf(why, whylen, "%s", bad);
        return SONDE_EINVAL;
    }
    size_t mark = b->len;
    int rc = sonde__buf_puts(b, "{\"labels\":{");
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = sonde__buf_putc(b, ',');
        rc = rc ? rc : sonde__buf_json_str(b, ls[i].name);
        rc = rc ? rc : sonde__buf_putc(b, ':');
        rc = rc ? rc : sonde__buf_json_str(b, ls[i].value);
    }
    rc = rc ? rc : sonde__buf_puts(b, "},\"annotations\":{\"summary\":");
    rc = rc ? rc : sonde__buf_json_str(b, a->summary ? a->summary : "");
    if (a->description && a->description[0]) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"description\":");
        rc = rc ? rc : sonde__buf_json_str(b, a->description);
    }
    if (!isnan(a->value)) {
        char num[33];
        sonde__fmt_double(num, a->value);
        rc = rc ? rc : sonde__buf_printf(b, ",\"value\":\"%s\"", num);
    }
    rc = rc ? rc : sonde__buf_puts(b, "},\"startsAt\":\"");
    rc = rc ? rc : sonde__buf_rfc3339(b, a->starts_at);
    rc = rc ? rc : sonde__buf_putc(b, '"');
    if (a->ends_at > 0) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"endsAt\":\"");
        rc = rc ? rc : sonde__buf_rfc3339(b, a->ends_at);
        rc = rc ? rc : sonde__buf_putc(b, '"');
    }
    if (a->generator_url) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"generatorURL\":");
        rc = rc ? rc : sonde__buf_json_str(b, a->generator_url);
    }
    rc = rc ? rc : sonde__buf_putc(b, '}');
    if (rc) {
        b->len = mark;
        if (b->data)
            b->data[mark] = '\0';
    }
    return rc;
}

/* ---- log ---- */

int sonde__payload_log(sonde_buf *b, const alert_snap *a)
{
    return sonde__buf_printf(b, "alert %s %s (severity %s): %s", a->r->name,
                             a->state == SONDE_ALERT_RESOLVED ? "resolved" : "firing",
                             sonde_severity_name(a->r->severity), a->summary ? a->summary : "");
}
