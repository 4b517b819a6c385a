/*
 * The operator file generators (include/sonde/gen.h). Every file is built
 * in memory first; nothing is written until all are built and, without
 * force, none exists. YAML scalars are written as JSON strings (a JSON
 * string is a valid YAML double-quoted scalar), so no value can break the
 * document.
 */
#include <sonde/gen.h>
#include <sonde/metrics.h>

#include "core/internal.h"
#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct gen {
    const sonde_gen_opts *o;
    const sonde_gen_input *in;
    const char *job, *service, *ns, *interval, *target, *scheme, *prefix, *image;
    char *err;
    size_t errlen;
    int rc;
    size_t skipped;
} gen;

#define P(b, ...)                                                                                  \
    do {                                                                                           \
        if (g->rc == SONDE_OK)                                                                     \
            g->rc = sonde__buf_printf((b), __VA_ARGS__);                                           \
    } while (0)
#define S(b, s)                                                                                    \
    do {                                                                                           \
        if (g->rc == SONDE_OK)                                                                     \
            g->rc = sonde__buf_json_str((b), (s));                                                 \
    } while (0)

void sonde_gen_opts_init(sonde_gen_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

int sonde_gen_parse_only(const char *list)
{
    static const struct {
        const char *name;
        int bit;
    } names[] = {{"grafana", SONDE_GEN_GRAFANA},
                 {"prometheus", SONDE_GEN_PROMETHEUS},
                 {"alertmanager", SONDE_GEN_ALERTMANAGER},
                 {"compose", SONDE_GEN_COMPOSE},
                 {"docker-compose", SONDE_GEN_COMPOSE},
                 {"k8s", SONDE_GEN_K8S},
                 {"kubernetes", SONDE_GEN_K8S}};
    if (!list || !*list)
        return SONDE_EINVAL;
    int mask = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        for (size_t i = 0; i < SONDE_ARRAY_LEN(names); i++)
            if (strlen(names[i].name) == n && strncmp(names[i].name, p, n) == 0)
                found = names[i].bit;
        if (!found)
            return SONDE_EINVAL;
        mask |= found;
        p += n + (e ? 1 : 0);
    }
    return mask;
}

static int fail(gen *g, int rc, const char *fmt, ...) SONDE_PRINTF(3, 4);
static int fail(gen *g, int rc, const char *fmt, ...)
{
    if (g->err && g->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, g->errlen, fmt, ap);
        va_end(ap);
    }
    return g->rc = rc;
}

static bool valid_job(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Kubernetes object names: lower-case RFC 1123 labels. */
static void k8s_name(char *out, size_t n, const char *job)
{
    size_t k = 0;
    for (size_t i = 0; job[i] && k + 1 < n; i++) {
        char c = job[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c == '_')
            c = '-';
        out[k++] = c;
    }
    while (k > 0 && out[k - 1] == '-')
        k--;
    out[k] = '\0';
}

static bool valid_duration(const char *s)
{
    /* Prometheus durations: one or more <number><unit>, units ms s m h d w y. */
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p[0] == 'm' && p[1] == 's')
            p += 2;
        else if (*p && strchr("smhdwy", *p))
            p++;
        else
            return false;
    }
    return true;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool has_label(const sonde_gen_family *f, const char *l)
{
    for (size_t i = 0; i < f->label_count; i++)
        if (f->labels[i] && strcmp(f->labels[i], l) == 0)
            return true;
    return false;
}

/* Grafana unit of a family's values (counters: of their rate). */
static const char *unit_of(const sonde_gen_family *f, bool rate)
{
    const char *u = f->unit && *f->unit ? f->unit : NULL;
    const char *n = f->name;
    if ((u && strcmp(u, "seconds") == 0) || has_suffix(n, "_seconds") ||
        has_suffix(n, "_seconds_total"))
        return "s";
    if ((u && strcmp(u, "bytes") == 0) || has_suffix(n, "_bytes") || has_suffix(n, "_bytes_total"))
        return rate ? "Bps" : "bytes";
    if ((u && strcmp(u, "ratio") == 0) || has_suffix(n, "_ratio"))
        return "percentunit";
    if ((u && strcmp(u, "percent") == 0) || has_suffix(n, "_percent") ||
        has_suffix(n, "_percentage"))
        return "percent";
    if ((u && strcmp(u, "celsius") == 0) || has_suffix(n, "_celsius"))
        return "celsius";
    return rate ? "ops" : "short";
}

/* The component a family belongs to: its first name segment, or the first
 * two for sonde's own (sonde_http, sonde_log, ...). */
static void component_of(const char *name, char *out, size_t n)
{
    const char *u = strchr(name, '_');
    if (u && strncmp(name, "sonde_", 6) == 0)
        u = strchr(u + 1, '_');
    size_t l = u ? (size_t)(u - name) : strlen(name);
    if (l >= n)
        l = n - 1;
    memcpy(out, name, l);
    out[l] = '\0';
}

/* "by (a, b)" of a family's labels, plus extra (may be NULL). */
static void by_clause(sonde_buf *b, const sonde_gen_family *f, const char *extra)
{
    sonde__buf_puts(b, "sum by (");
    bool first = true;
    if (extra) {
        sonde__buf_puts(b, extra);
        first = false;
    }
    for (size_t i = 0; i < f->label_count; i++) {
        if (!first)
            sonde__buf_puts(b, ", ");
        sonde__buf_puts(b, f->labels[i]);
        first = false;
    }
    sonde__buf_puts(b, ") ");
}

static void legend_of(sonde_buf *b, const sonde_gen_family *f, const char *extra)
{
    bool first = true;
    for (size_t i = 0; i < f->label_count; i++) {
        sonde__buf_printf(b, "%s{{%s}}", first ? "" : " ", f->labels[i]);
        first = false;
    }
    if (extra)
        sonde__buf_printf(b, "%s%s", first ? "" : " ", extra);
    if (first && !extra)
        sonde__buf_puts(b, f->name);
}

/* ------------------------------------------------------------------ */
/* Grafana                                                             */

typedef struct panels {
    sonde_buf *b;
    int id;
    int x, y;
    bool first;
} panels;

static void panel_open(gen *g, panels *ps, const char *type, const char *title, const char *desc,
                       int w, int h)
{
    sonde_buf *b = ps->b;
    if (ps->x + w > 24) {
        ps->x = 0;
        ps->y += 8;
    }
    P(b, "%s\n    {\"id\": %d, \"type\": \"%s\", \"title\": ", ps->first ? "" : ",", ++ps->id,
      type);
    ps->first = false;
    S(b, title);
    if (desc) {
        P(b, ", \"description\": ");
        S(b, desc);
    }
    P(b,
      ", \"datasource\": {\"type\": \"prometheus\", \"uid\": \"${datasource}\"}, "
      "\"gridPos\": {\"h\": %d, \"w\": %d, \"x\": %d, \"y\": %d}, \"targets\": [",
      h, w, ps->x, ps->y);
    ps->x += w;
}

static void target(gen *g, panels *ps, char ref, const char *expr, const char *legend)
{
    P(ps->b, "%s{\"refId\": \"%c\", \"expr\": ", ref == 'A' ? "" : ", ", ref);
    S(ps->b, expr);
    P(ps->b, ", \"legendFormat\": ");
    S(ps->b, legend && *legend ? legend : "__auto");
    P(ps->b, ", \"range\": true}");
}

static void panel_close(gen *g, panels *ps, const char *unit, const char *extra_defaults,
                        const char *options)
{
    P(ps->b, "], \"fieldConfig\": {\"defaults\": {\"unit\": \"%s\"%s}, \"overrides\": []}", unit,
      extra_defaults ? extra_defaults : "");
    P(ps->b, ", \"options\": %s}",
      options ? options : "{\"legend\": {\"displayMode\": \"list\", \"placement\": \"bottom\"}}");
}

static void row(gen *g, panels *ps, const char *title)
{
    if (ps->x != 0 || ps->id > 0) {
        ps->x = 0;
        ps->y += 8;
    }
    P(ps->b, "%s\n    {\"id\": %d, \"type\": \"row\", \"title\": ", ps->first ? "" : ",", ++ps->id);
    ps->first = false;
    S(ps->b, title);
    P(ps->b,
      ", \"collapsed\": false, \"gridPos\": {\"h\": 1, \"w\": 24, \"x\": 0, \"y\": %d}, "
      "\"panels\": []}",
      ps->y);
    ps->y += 1;
}

#define SEL "job=\"$job\", instance=~\"$instance\""

static void family_panels(gen *g, panels *ps, const sonde_gen_family *f)
{
    sonde_buf e, l;
    sonde_buf_init(&e);
    sonde_buf_init(&l);
    const char *t = f->type;
    const char *help = f->help && *f->help ? f->help : NULL;
    if (strcmp(t, "counter") == 0) {
        by_clause(&e, f, NULL);
        sonde__buf_printf(&e, "(rate(%s{" SEL "}[$__rate_interval]))", f->name);
        legend_of(&l, f, NULL);
        char title[300];
        snprintf(title, sizeof title, "%s (rate /s)", f->name);
        panel_open(g, ps, "timeseries", title, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, unit_of(f, true), NULL, NULL);
    } else if (strcmp(t, "gauge") == 0 || strcmp(t, "untyped") == 0) {
        sonde__buf_printf(&e, "%s{" SEL "}", f->name);
        legend_of(&l, f, f->label_count ? NULL : "{{instance}}");
        panel_open(g, ps, "timeseries", f->name, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, unit_of(f, false), NULL, NULL);
    } else if (strcmp(t, "histogram") == 0) {
        static const char *const qs[3] = {"0.5", "0.95", "0.99"};
        static const char *const qn[3] = {"p50", "p95", "p99"};
        char title[300];
        snprintf(title, sizeof title, "%s p50 / p95 / p99", f->name);
        panel_open(g, ps, "timeseries", title, help, 12, 8);
        for (int i = 0; i < 3; i++) {
            e.len = 0;
            l.len = 0;
            sonde__buf_printf(&e, "histogram_quantile(%s, ", qs[i]);
            by_clause(&e, f, "le");
            sonde__buf_printf(&e, "(rate(%s_bucket{" SEL "}[$__rate_interval])))", f->name);
            legend_of(&l, f, qn[i]);
            target(g, ps, (char)('A' + i), e.data, l.data);
        }
        panel_close(g, ps, unit_of(f, false), NULL, NULL);
        e.len = 0;
        l.len = 0;
        by_clause(&e, f, NULL);
        sonde__buf_printf(&e, "(rate(%s_count{" SEL "}[$__rate_interval]))", f->name);
        legend_of(&l, f, NULL);
        snprintf(title, sizeof title, "%s rate /s", f->name);
        panel_open(g, ps, "timeseries", title, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, "ops", NULL, NULL);
    } else if (strcmp(t, "summary") == 0) {
        char title[300];
        snprintf(title, sizeof title, "%s quantiles", f->name);
        sonde__buf_printf(&e, "%s{" SEL "}", f->name);
        legend_of(&l, f, "q{{quantile}}");
        panel_open(g, ps, "timeseries", title, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, unit_of(f, false), NULL, NULL);
        e.len = 0;
        l.len = 0;
        by_clause(&e, f, NULL);
        sonde__buf_printf(&e, "(rate(%s_count{" SEL "}[$__rate_interval]))", f->name);
        legend_of(&l, f, NULL);
        snprintf(title, sizeof title, "%s rate /s", f->name);
        panel_open(g, ps, "timeseries", title, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, "ops", NULL, NULL);
    } else if (strcmp(t, "stateset") == 0) {
        /* In the text format a state set is a gauge with one series per
         * state, labelled with the family's name; the current one is 1. */
        sonde__buf_printf(&e, "max by (%s) (%s{" SEL "}) == 1", f->name, f->name);
        sonde__buf_printf(&l, "{{%s}}", f->name);
        panel_open(g, ps, "state-timeline", f->name, help, 12, 8);
        target(g, ps, 'A', e.data, l.data);
        panel_close(g, ps, "short", NULL,
                    "{\"showValue\": \"never\", \"mergeValues\": true, \"rowHeight\": 0.9}");
    }
    sonde_buf_free(&e);
    sonde_buf_free(&l);
}

static const sonde_gen_family *find_family(const gen *g, const char *name)
{
    for (size_t i = 0; i < g->in->family_count; i++)
        if (strcmp(g->in->families[i].name, name) == 0)
            return &g->in->families[i];
    return NULL;
}

static bool is_self(const char *name)
{
    return strncmp(name, "sonde_", 6) == 0 || strncmp(name, "process_", 8) == 0;
}

static void grafana_dashboard(gen *g, sonde_buf *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = g->job; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    P(b, "{\n  \"uid\": \"sonde-%016llx\",\n  \"title\": ", (unsigned long long)h);
    char title[200];
    snprintf(title, sizeof title, "%s (sonde)", g->service);
    S(b, title);
    P(b, ",\n  \"tags\": [\"sonde\"],\n  \"timezone\": \"browser\",\n  \"editable\": true,\n"
         "  \"graphTooltip\": 1,\n  \"schemaVersion\": 39,\n  \"version\": 1,\n"
         "  \"refresh\": \"30s\",\n  \"time\": {\"from\": \"now-1h\", \"to\": \"now\"},\n"
         "  \"annotations\": {\"list\": []},\n  \"links\": [],\n");
    P(b, "  \"templating\": {\"list\": [\n"
         "    {\"name\": \"datasource\", \"label\": \"Data source\", \"type\": \"datasource\", "
         "\"query\": \"prometheus\", \"hide\": 0},\n"
         "    {\"name\": \"job\", \"label\": \"Job\", \"type\": \"query\", \"datasource\": "
         "{\"type\": \"prometheus\", \"uid\": \"${datasource}\"}, \"query\": {\"query\": "
         "\"label_values(up, job)\", \"refId\": \"job\"}, \"definition\": \"label_values(up, "
         "job)\", \"refresh\": 1, \"current\": {\"text\": ");
    S(b, g->job);
    P(b, ", \"value\": ");
    S(b, g->job);
    P(b, "}, \"hide\": 0},\n"
         "    {\"name\": \"instance\", \"label\": \"Instance\", \"type\": \"query\", "
         "\"datasource\": {\"type\": \"prometheus\", \"uid\": \"${datasource}\"}, \"query\": "
         "{\"query\": \"label_values(up{job=\\\"$job\\\"}, instance)\", \"refId\": "
         "\"instance\"}, \"definition\": \"label_values(up{job=\\\"$job\\\"}, instance)\", "
         "\"refresh\": 2, \"includeAll\": true, \"multi\": true, \"allValue\": \".*\", "
         "\"current\": {\"text\": \"All\", \"value\": \"$__all\"}, \"hide\": 0}\n  ]},\n");
    P(b, "  \"panels\": [");
    panels ps = {.b = b, .first = true};

    /* Overview: up, health, errors, alerts. */
    row(g, &ps, "Overview");
    panel_open(g, &ps, "stat", "Up", "Whether Prometheus reaches the service", 4, 5);
    target(g, &ps, 'A', "up{" SEL "}", "{{instance}}");
    panel_close(g, &ps, "short",
                ", \"mappings\": [{\"type\": \"value\", \"options\": {\"0\": {\"text\": "
                "\"down\", \"color\": \"red\"}, \"1\": {\"text\": \"up\", \"color\": "
                "\"green\"}}}]",
                "{\"colorMode\": \"background\", \"reduceOptions\": {\"calcs\": "
                "[\"lastNotNull\"]}}");
    if (find_family(g, "sonde_health_overall")) {
        panel_open(g, &ps, "stat", "Health", "100 x (healthy + 0.5 x degraded) / checks", 4, 5);
        target(g, &ps, 'A', "sonde_health_overall{" SEL "}", "{{instance}}");
        panel_close(g, &ps, "percent",
                    ", \"min\": 0, \"max\": 100, \"thresholds\": {\"mode\": \"absolute\", "
                    "\"steps\": [{\"color\": \"red\", \"value\": null}, {\"color\": "
                    "\"orange\", \"value\": 50}, {\"color\": \"green\", \"value\": 100}]}",
                    "{\"colorMode\": \"background\", \"reduceOptions\": {\"calcs\": "
                    "[\"lastNotNull\"]}}");
    }
    if (find_family(g, "sonde_alerts_firing")) {
        panel_open(g, &ps, "stat", "Firing alerts (in process)", NULL, 4, 5);
        target(g, &ps, 'A', "sum(sonde_alerts_firing{" SEL "})", "firing");
        panel_close(g, &ps, "short",
                    ", \"thresholds\": {\"mode\": \"absolute\", \"steps\": [{\"color\": "
                    "\"green\", \"value\": null}, {\"color\": \"red\", \"value\": 1}]}",
                    "{\"colorMode\": \"background\", \"reduceOptions\": {\"calcs\": "
                    "[\"lastNotNull\"]}}");
    }
    if (find_family(g, "sonde_errors_total")) {
        panel_open(g, &ps, "timeseries", "Errors by type (rate /s)", "Captured errors", 12, 5);
        target(g, &ps, 'A',
               "sum by (type, severity) (rate(sonde_errors_total{" SEL "}[$__rate_interval]))",
               "{{type}} ({{severity}})");
        panel_close(g, &ps, "ops", NULL, NULL);
    }
    if (find_family(g, "sonde_health_status")) {
        ps.x = 24; /* new line */
        panel_open(g, &ps, "state-timeline", "Health checks",
                   "1 healthy, 0.5 degraded, 0 unhealthy", 12, 8);
        target(g, &ps, 'A', "sonde_health_status{" SEL "}", "{{check}}");
        panel_close(g, &ps, "short",
                    ", \"mappings\": [{\"type\": \"value\", \"options\": {\"0\": {\"text\": "
                    "\"unhealthy\", \"color\": \"red\"}, \"0.5\": {\"text\": \"degraded\", "
                    "\"color\": \"orange\"}, \"1\": {\"text\": \"healthy\", \"color\": "
                    "\"green\"}}}]",
                    "{\"showValue\": \"never\", \"mergeValues\": true}");
    }
    panel_open(g, &ps, "table", "Alerts (Prometheus)", "Firing and pending alerts of this job", 12,
               8);
    target(g, &ps, 'A', "ALERTS{job=\"$job\"}", "{{alertname}}");
    P(b, "], \"fieldConfig\": {\"defaults\": {}, \"overrides\": []}, \"options\": "
         "{\"showHeader\": true}, \"transformations\": [{\"id\": \"labelsToFields\"}]}");

    /* A row per component: the application's families first. */
    for (int pass = 0; pass < 2; pass++) {
        char done[64][64];
        size_t ndone = 0;
        for (size_t i = 0; i < g->in->family_count && g->rc == SONDE_OK; i++) {
            const sonde_gen_family *f = &g->in->families[i];
            if (is_self(f->name) != (pass == 1))
                continue;
            char comp[64];
            component_of(f->name, comp, sizeof comp);
            bool seen = false;
            for (size_t k = 0; k < ndone; k++)
                seen = seen || strcmp(done[k], comp) == 0;
            if (seen)
                continue;
            if (ndone < SONDE_ARRAY_LEN(done))
                memcpy(done[ndone++], comp, sizeof comp);
            row(g, &ps, comp);
            for (size_t j = i; j < g->in->family_count; j++) {
                const sonde_gen_family *fj = &g->in->families[j];
                char cj[64];
                component_of(fj->name, cj, sizeof cj);
                if (strcmp(cj, comp) == 0 && is_self(fj->name) == (pass == 1))
                    family_panels(g, &ps, fj);
            }
        }
    }
    P(b, "\n  ]\n}\n");
}

static void grafana_provisioning(gen *g, sonde_buf *ds, sonde_buf *dash)
{
    P(ds, "# Grafana data source: the Prometheus of docker-compose.yml.\n"
          "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n"
          "    uid: prometheus\n    access: proxy\n    url: http://prometheus:9090\n"
          "    isDefault: true\n    editable: true\n");
    P(dash, "# Grafana dashboard provider: loads grafana/dashboard.json (mounted there by\n"
            "# docker-compose.yml).\napiVersion: 1\nproviders:\n  - name: sonde\n"
            "    folder: sonde\n    type: file\n    disableDeletion: false\n"
            "    allowUiUpdates: true\n    options:\n      path: /var/lib/grafana/dashboards\n");
}

/* ------------------------------------------------------------------ */
/* Prometheus                                                          */

static void prometheus_yml(gen *g, sonde_buf *b)
{
    P(b, "# Prometheus configuration for the sonde service \"%s\" (sonde generate-config).\n",
      g->service);
    P(b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", g->interval, g->interval);
    P(b, "rule_files:\n  - rules.yml\n");
    P(b, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: "
         "[\"alertmanager:9093\"]\n");
    P(b, "scrape_configs:\n  - job_name: ");
    S(b, g->job);
    P(b, "\n    metrics_path: ");
    char mp[300];
    snprintf(mp, sizeof mp, "%s/metrics", g->prefix);
    S(b, mp);
    P(b, "\n    scheme: %s\n", g->scheme);
    if (g->o->api_key && *g->o->api_key)
        P(b, "    # The API key, read from a file next to this one (mode 0600).\n"
             "    authorization:\n      type: Bearer\n      credentials_file: sonde_api_key\n");
    P(b, "    static_configs:\n      - targets: [");
    S(b, g->target);
    P(b, "]\n");
}

/* Prometheus duration for a number of seconds (whole seconds, at least 1). */
static void dur(char *out, size_t n, double s)
{
    long long v = (long long)ceil(s > 1 ? s : 1);
    if (v % 3600 == 0)
        snprintf(out, n, "%lldh", v / 3600);
    else if (v % 60 == 0)
        snprintf(out, n, "%lldm", v / 60);
    else
        snprintf(out, n, "%llds", v);
}

/* A PromQL string literal (double-quoted; JSON escaping is valid there). */
static void lit(gen *g, sonde_buf *b, const char *s)
{
    S(b, s);
}

/* Annotation text from an in-process template: {value} becomes the
 * Prometheus template's value, the rest literal. */
static void annotation(gen *g, sonde_buf *out, const char *tpl, const sonde_gen_rule *r,
                       const char *window)
{
    sonde_buf t;
    sonde_buf_init(&t);
    for (const char *p = tpl; *p; p++) {
        static const char *const keys[] = {"{value}", "{threshold}", "{window}",  "{operation}",
                                           "{type}",  "{rule}",      "{severity}"};
        /* {labels.NAME}: the alert's label, as Prometheus templates it. */
        if (strncmp(p, "{labels.", 8) == 0) {
            const char *close = strchr(p, '}');
            size_t n = close ? (size_t)(close - p - 8) : 0;
            bool ident = n > 0;
            for (size_t i = 0; i < n && ident; i++)
                ident = p[8 + i] == '_' || (p[8 + i] >= 'a' && p[8 + i] <= 'z') ||
                        (p[8 + i] >= 'A' && p[8 + i] <= 'Z') ||
                        (i > 0 && p[8 + i] >= '0' && p[8 + i] <= '9');
            if (ident) {
                sonde__buf_printf(&t, "{{ $labels.%.*s }}", (int)n, p + 8);
                p = close;
                continue;
            }
        }
        size_t k = 0;
        for (; k < SONDE_ARRAY_LEN(keys); k++)
            if (strncmp(p, keys[k], strlen(keys[k])) == 0)
                break;
        if (k == SONDE_ARRAY_LEN(keys)) {
            sonde__buf_putc(&t, *p);
            continue;
        }
        switch (k) {
        case 0:
            sonde__buf_puts(&t, "{{ $value | humanize }}");
            break;
        case 1:
            sonde__buf_printf(&t, "%g",
                              strcmp(r->kind, "failure_rate") == 0 || strcmp(r->kind, "health") == 0
                                  ? r->percent
                                  : r->threshold);
            break;
        case 2:
            sonde__buf_puts(&t, window);
            break;
        case 3:
            sonde__buf_puts(&t, r->operation ? r->operation : "");
            break;
        case 4:
            sonde__buf_puts(&t, r->type ? r->type : "");
            break;
        case 6:
            sonde__buf_puts(&t, r->severity ? r->severity : "");
            break;
        default:
            sonde__buf_puts(&t, r->name);
            break;
        }
        p += strlen(keys[k]) - 1;
    }
    S(out, t.data ? t.data : "");
    sonde_buf_free(&t);
}

/* The operations counter (trace: <prefix>operations_total{operation,
 * result}) and anomaly gauge, when the service has them. */
static const sonde_gen_family *ops_family(const gen *g, const char *suffix, const char *label2)
{
    for (size_t i = 0; i < g->in->family_count; i++) {
        const sonde_gen_family *f = &g->in->families[i];
        if (has_suffix(f->name, suffix) && has_label(f, "operation") &&
            (!label2 || has_label(f, label2)))
            return f;
    }
    return NULL;
}

/* A rule's selector "name{matchers}" with job's matcher added in front, the
 * name given suffix (quantile: _bucket). The name must be a family of the
 * service (x_count, x_sum, x_bucket: of histogram x); false with why. */
static bool selector(gen *g, const char *sel, const char *suffix, const char *job, sonde_buf *e,
                     const char **why)
{
    if (!sel || !*sel) {
        *why = "the rule has no metric";
        return false;
    }
    const char *brace = strchr(sel, '{');
    size_t nl = brace ? (size_t)(brace - sel) : strlen(sel);
    while (nl > 0 && sel[nl - 1] == ' ')
        nl--;
    char name[256];
    if (nl == 0 || nl >= sizeof name) {
        *why = "the rule's metric has no name";
        return false;
    }
    memcpy(name, sel, nl);
    name[nl] = '\0';
    bool known = find_family(g, name) != NULL;
    static const char *const parts[] = {"_count", "_sum", "_bucket"};
    for (size_t i = 0; i < 3 && !known; i++) {
        size_t pl = strlen(parts[i]);
        if (nl > pl && strcmp(name + nl - pl, parts[i]) == 0) {
            name[nl - pl] = '\0';
            const sonde_gen_family *f = find_family(g, name);
            known = f && (strcmp(f->type, "histogram") == 0 || strcmp(f->type, "summary") == 0);
            name[nl - pl] = parts[i][0];
        }
    }
    if (!known) {
        *why = "the service exposes no such metric family";
        return false;
    }
    const char *m = brace ? brace + 1 : "";
    const char *end = brace ? strrchr(brace, '}') : NULL;
    size_t ml = end ? (size_t)(end - m) : 0;
    while (ml > 0 && (m[0] == ' ' || m[0] == ',')) {
        m++;
        ml--;
    }
    sonde__buf_printf(e, "%s%s{%s%s%.*s}", name, suffix, job, ml ? ", " : "", (int)ml, m);
    return true;
}

/* "sum by (a, b, extra) (" when the rule has by labels. */
static void by_open(sonde_buf *e, const sonde_gen_rule *r, const char *extra)
{
    sonde__buf_puts(e, "sum by (");
    for (size_t i = 0; i < r->by_count; i++)
        sonde__buf_printf(e, "%s%s", i ? ", " : "", r->by[i]);
    if (extra)
        sonde__buf_printf(e, "%s%s", r->by_count ? ", " : "", extra);
    sonde__buf_puts(e, ") (");
}

/* PromQL for the rules over a registry metric: the same value per series
 * (or per by-group) compared the same way. */
static bool metric_expr(gen *g, const sonde_gen_rule *r, const char *job, const char *w,
                        sonde_buf *e, const char **why)
{
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!="};
    const char *op = r->op && *r->op ? r->op : ">";
    bool op_ok = false;
    for (size_t i = 0; i < SONDE_ARRAY_LEN(ops); i++)
        op_ok = op_ok || strcmp(op, ops[i]) == 0;
    if (!op_ok) {
        *why = "unknown comparison";
        return false;
    }
    for (size_t i = 0; i < r->by_count; i++)
        if (!r->by[i] || !sonde__valid_label_name(r->by[i])) {
            *why = "a by label is not a label name";
            return false;
        }
    const char *k = r->kind;
    bool by = r->by_count > 0;
    sonde_buf num, den;
    sonde_buf_init(&num);
    sonde_buf_init(&den);
    bool ok = selector(g, r->metric, strcmp(k, "quantile") == 0 ? "_bucket" : "", job, &num, why);
    if (ok && strcmp(k, "ratio") == 0)
        ok = selector(g, r->denominator, "", job, &den, why);
    if (ok && strcmp(k, "quantile") == 0 && !(r->quantile > 0 && r->quantile <= 1)) {
        *why = "quantile out of (0, 1]";
        ok = false;
    }
    if (ok) {
        if (strcmp(k, "value") == 0) {
            if (by)
                by_open(e, r, NULL);
            sonde__buf_puts(e, num.data);
            if (by)
                sonde__buf_puts(e, ")");
        } else if (strcmp(k, "rate") == 0 || strcmp(k, "increase") == 0) {
            if (by)
                by_open(e, r, NULL);
            sonde__buf_printf(e, "%s(%s[%s])", k, num.data, w);
            if (by)
                sonde__buf_puts(e, ")");
        } else if (strcmp(k, "ratio") == 0) {
            /* Without by, numerator and denominator series pair by equal
             * label sets, as PromQL's one-to-one matching does. */
            if (by)
                by_open(e, r, NULL);
            sonde__buf_printf(e, "increase(%s[%s])", num.data, w);
            sonde__buf_puts(e, by ? ") / " : " / ");
            if (by)
                by_open(e, r, NULL);
            sonde__buf_printf(e, "increase(%s[%s])", den.data, w);
            if (by)
                sonde__buf_puts(e, ")");
        } else { /* quantile: per series (le aside) or per group */
            sonde__buf_printf(e, "histogram_quantile(%.15g, ", r->quantile);
            if (by)
                by_open(e, r, "le");
            sonde__buf_printf(e, "rate(%s[%s])", num.data, w);
            sonde__buf_puts(e, by ? "))" : ")");
        }
        sonde__buf_printf(e, " %s %.15g", op, r->threshold);
    }
    sonde_buf_free(&num);
    sonde_buf_free(&den);
    return ok;
}

/* PromQL for an in-process rule; false (with why) when it has none. */
static bool rule_expr(gen *g, const sonde_gen_rule *r, sonde_buf *e, const char **why)
{
    char w[32];
    dur(w, sizeof w, r->window_seconds > 0 ? r->window_seconds : 300);
    sonde_buf jl; /* job="x" */
    sonde_buf_init(&jl);
    sonde__buf_puts(&jl, "job=");
    lit(g, &jl, g->job);
    const char *job = jl.data;
    bool ok = true;
    const char *k = r->kind ? r->kind : "";
    if (strcmp(k, "errors") == 0) {
        if (r->operation && *r->operation) {
            *why = "sonde_errors_total has no operation label";
            ok = false;
        } else if (!find_family(g, "sonde_errors_total")) {
            *why = "the service exposes no sonde_errors_total";
            ok = false;
        } else {
            static const char *const sev[] = {"low", "medium", "high", "critical"};
            int from = 0;
            for (int i = 0; i < 4; i++)
                if (r->min_severity && strcmp(r->min_severity, sev[i]) == 0)
                    from = i;
            sonde__buf_printf(e, "sum(increase(sonde_errors_total{%s, severity=~\"", job);
            for (int i = from; i < 4; i++)
                sonde__buf_printf(e, "%s%s", i > from ? "|" : "", sev[i]);
            sonde__buf_puts(e, "\"");
            if (r->type && *r->type) {
                sonde__buf_puts(e, ", type=");
                lit(g, e, r->type);
            }
            sonde__buf_printf(e, "}[%s])) >= %g", w, r->threshold > 0 ? r->threshold : 1);
        }
    } else if (strcmp(k, "failure_rate") == 0 || strcmp(k, "no_success") == 0) {
        const sonde_gen_family *f = ops_family(g, "operations_total", "result");
        if (!f || !r->operation) {
            *why = "the service exposes no operations_total{operation,result}";
            ok = false;
        } else {
            sonde_buf sel;
            sonde_buf_init(&sel);
            sonde__buf_printf(&sel, "%s, operation=", job);
            lit(g, &sel, r->operation);
            if (strcmp(k, "failure_rate") == 0) {
                sonde__buf_printf(e,
                                  "(100 * sum(increase(%s{%s, result!=\"success\"}[%s])) / "
                                  "sum(increase(%s{%s}[%s])) > %g)",
                                  f->name, sel.data, w, f->name, sel.data, w, r->percent);
                sonde__buf_printf(e, " and on () (sum(increase(%s{%s}[%s])) >= %g)", f->name,
                                  sel.data, w, r->min_count > 0 ? r->min_count : 10);
            } else {
                sonde__buf_printf(e, "sum(increase(%s{%s, result=\"success\"}[%s])) == 0", f->name,
                                  sel.data, w);
                if (r->min_count > 0)
                    sonde__buf_printf(e, " and on () (sum(increase(%s{%s}[%s])) >= %g)", f->name,
                                      sel.data, w, r->min_count);
            }
            sonde_buf_free(&sel);
        }
    } else if (strcmp(k, "anomaly") == 0) {
        const sonde_gen_family *f = ops_family(g, "operation_anomaly", NULL);
        if (!f || !r->operation) {
            *why = "the service exposes no operation_anomaly{operation} gauge";
            ok = false;
        } else {
            sonde__buf_printf(e, "max(%s{%s, operation=", f->name, job);
            lit(g, e, r->operation);
            sonde__buf_puts(e, "}) > 0");
        }
    } else if (strcmp(k, "health") == 0) {
        if (!find_family(g, "sonde_health_overall")) {
            *why = "the service exposes no sonde_health_overall";
            ok = false;
        } else {
            sonde__buf_printf(e, "sonde_health_overall{%s} < %g", job, r->percent);
        }
    } else if (strcmp(k, "value") == 0 || strcmp(k, "rate") == 0 || strcmp(k, "increase") == 0 ||
               strcmp(k, "ratio") == 0 || strcmp(k, "quantile") == 0) {
        ok = metric_expr(g, r, job, w, e, why);
    } else {
        *why = "no PromQL equivalent known for this rule kind";
        ok = false;
    }
    sonde_buf_free(&jl);
    return ok;
}

/* The rule groups, indented by ind spaces (rules.yml: 0, PrometheusRule: 2). */
static void rule_groups(gen *g, sonde_buf *b, int ind)
{
    const char *sp = "    ";
    char pad[8];
    snprintf(pad, sizeof pad, "%.*s", ind, "      ");
    sonde_buf e;
    sonde_buf_init(&e);
    char jobsel[200];
    snprintf(jobsel, sizeof jobsel, "job=\"%s\"", g->job);

    /* Recording rules: the application's counters and histograms, per job. */
    P(b, "%sgroups:\n%s  - name: ", pad, pad);
    char gname[100];
    snprintf(gname, sizeof gname, "%s-recording", g->job);
    S(b, gname);
    P(b, "\n%s    rules:\n", pad);
    size_t nrec = 0;
    for (size_t i = 0; i < g->in->family_count; i++) {
        const sonde_gen_family *f = &g->in->families[i];
        if (is_self(f->name) && strcmp(f->name, "sonde_errors_total") != 0)
            continue;
        e.len = 0;
        if (strcmp(f->type, "counter") == 0) {
            by_clause(&e, f, "job");
            sonde__buf_printf(&e, "(rate(%s{%s}[5m]))", f->name, jobsel);
            P(b, "%s%s  - record: job:%s:rate5m\n%s%s    expr: ", pad, sp, f->name, pad, sp);
            S(b, e.data);
            P(b, "\n");
            nrec++;
        } else if (strcmp(f->type, "histogram") == 0) {
            static const char *const qs[3] = {"0.5", "0.95", "0.99"};
            static const char *const qn[3] = {"p50", "p95", "p99"};
            for (int q = 0; q < 3; q++) {
                e.len = 0;
                sonde__buf_printf(&e, "histogram_quantile(%s, ", qs[q]);
                by_clause(&e, f, "job, le");
                sonde__buf_printf(&e, "(rate(%s_bucket{%s}[5m])))", f->name, jobsel);
                P(b, "%s%s  - record: job:%s:%s_5m\n%s%s    expr: ", pad, sp, f->name, qn[q], pad,
                  sp);
                S(b, e.data);
                P(b, "\n");
            }
            nrec++;
        }
    }
    if (nrec == 0) {
        P(b, "%s%s  - record: job:up:min\n%s%s    expr: ", pad, sp, pad, sp);
        e.len = 0;
        sonde__buf_printf(&e, "min by (job) (up{%s})", jobsel);
        S(b, e.data);
        P(b, "\n");
    }

    /* Alert rules: the target itself, then every in-process rule. */
    P(b, "%s  - name: ", pad);
    snprintf(gname, sizeof gname, "%s-alerts", g->job);
    S(b, gname);
    P(b, "\n%s    rules:\n", pad);
    P(b, "%s%s  - alert: SondeTargetDown\n%s%s    expr: ", pad, sp, pad, sp);
    e.len = 0;
    sonde__buf_printf(&e, "up{%s} == 0", jobsel);
    S(b, e.data);
    P(b, "\n%s%s    for: 1m\n%s%s    labels:\n%s%s      severity: critical\n", pad, sp, pad, sp,
      pad, sp);
    P(b, "%s%s    annotations:\n%s%s      summary: ", pad, sp, pad, sp);
    S(b, "Prometheus cannot scrape {{ $labels.instance }}");
    P(b, "\n");
    for (size_t i = 0; i < g->in->rule_count; i++) {
        const sonde_gen_rule *r = &g->in->rules[i];
        e.len = 0;
        const char *why = "";
        if (!rule_expr(g, r, &e, &why)) {
            P(b, "%s%s  # in-process rule %s (%s) not carried over: %s\n", pad, sp, r->name,
              r->kind ? r->kind : "?", why);
            g->skipped++;
            continue;
        }
        char w[32], f[32];
        dur(w, sizeof w, r->window_seconds > 0 ? r->window_seconds : 300);
        P(b, "%s%s  - alert: ", pad, sp);
        S(b, r->name);
        P(b, "\n%s%s    expr: ", pad, sp);
        S(b, e.data);
        P(b, "\n");
        if (r->for_seconds > 0) {
            dur(f, sizeof f, r->for_seconds);
            P(b, "%s%s    for: %s\n", pad, sp, f);
        }
        P(b, "%s%s    labels:\n", pad, sp);
        bool has_sev = false;
        for (size_t k = 0; k < r->label_count; k++) {
            const char *ln = r->labels[2 * k], *lv = r->labels[2 * k + 1];
            if (!ln || !lv || strcmp(ln, "alertname") == 0)
                continue;
            has_sev = has_sev || strcmp(ln, "severity") == 0;
            P(b, "%s%s      %s: ", pad, sp, ln);
            S(b, lv);
            P(b, "\n");
        }
        if (!has_sev) {
            P(b, "%s%s      severity: ", pad, sp);
            S(b, r->severity ? r->severity : "high");
            P(b, "\n");
        }
        P(b, "%s%s    annotations:\n%s%s      summary: ", pad, sp, pad, sp);
        if (r->summary && *r->summary) {
            annotation(g, b, r->summary, r, w);
        } else {
            char s[300];
            snprintf(s, sizeof s, "%s (%s) is firing: {value}", r->name, r->kind);
            annotation(g, b, s, r, w);
        }
        P(b, "\n");
        if (r->description && *r->description) {
            P(b, "%s%s      description: ", pad, sp);
            annotation(g, b, r->description, r, w);
            P(b, "\n");
        }
    }
    sonde_buf_free(&e);
}

/* ------------------------------------------------------------------ */
/* Alertmanager, compose, Kubernetes                                   */

static void alertmanager_yml(gen *g, sonde_buf *b)
{
    P(b, "# Alertmanager: alerts routed by severity. Replace the webhook URLs with your\n"
         "# receivers (a chat webhook relay, an incident tool...).\n"
         "route:\n  receiver: default\n  group_by: [alertname, job]\n  group_wait: 30s\n"
         "  group_interval: 5m\n  repeat_interval: 4h\n  routes:\n"
         "    - receiver: critical\n      matchers: ['severity=\"critical\"']\n"
         "      repeat_interval: 1h\n"
         "    - receiver: default\n      matchers: ['severity=~\"high|medium|low|warning\"']\n"
         "inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n"
         "    target_matchers: ['severity=~\"high|medium|low\"']\n"
         "    equal: [alertname, job]\n"
         "receivers:\n  - name: default\n    webhook_configs:\n"
         "      - url: \"http://webhook.example.invalid/sonde/default\"\n"
         "        send_resolved: true\n  - name: critical\n    webhook_configs:\n"
         "      - url: \"http://webhook.example.invalid/sonde/critical\"\n"
         "        send_resolved: true\n");
}

static int port_of(const char *target)
{
    const char *c = strrchr(target, ':');
    if (!c)
        return 9464;
    char *end = NULL;
    double v = sonde__strtod(c + 1, &end);
    return (end && !*end && v >= 1 && v <= 65535) ? (int)v : 9464;
}

static void compose_yml(gen *g, sonde_buf *b)
{
    int port = port_of(g->target);
    char svc[64];
    k8s_name(svc, sizeof svc, g->job);
    P(b,
      "# The service with Prometheus, Alertmanager and Grafana (sonde generate-config).\n"
      "# Prometheus scrapes %s (prometheus/prometheus.yml): generate with\n"
      "# --target %s:%d to scrape the container below.\n",
      g->target, svc, port);
    P(b, "services:\n  %s:\n    image: ", svc);
    S(b, g->image);
    P(b, "\n    environment:\n      SONDE_LISTEN: \":%d\"\n", port);
    if (g->o->api_key && *g->o->api_key)
        P(b, "      SONDE_API_KEY_FILE: /run/secrets/sonde_api_key\n"
             "    secrets: [sonde_api_key]\n");
    P(b, "    ports: [\"%d:%d\"]\n", port, port);
    P(b,
      "    healthcheck:\n      test: [\"CMD-SHELL\", \"wget -qO- "
      "http://127.0.0.1:%d%s/health/live || exit 1\"]\n      interval: 10s\n",
      port, g->prefix);
    P(b,
      "  prometheus:\n    image: prom/prometheus:latest\n"
      "    command: [\"--config.file=/etc/prometheus/prometheus.yml\"]\n"
      "    volumes: [\"./prometheus:/etc/prometheus:ro\"]\n    ports: [\"9090:9090\"]\n"
      "    depends_on: [%s, alertmanager]\n",
      svc);
    P(b, "  alertmanager:\n    image: prom/alertmanager:latest\n"
         "    command: [\"--config.file=/etc/alertmanager/alertmanager.yml\"]\n"
         "    volumes: [\"./alertmanager:/etc/alertmanager:ro\"]\n    ports: [\"9093:9093\"]\n");
    P(b, "  grafana:\n    image: grafana/grafana:latest\n    environment:\n"
         "      GF_AUTH_ANONYMOUS_ENABLED: \"true\"\n      GF_AUTH_ANONYMOUS_ORG_ROLE: Viewer\n"
         "    volumes:\n      - ./grafana/provisioning:/etc/grafana/provisioning:ro\n"
         "      - ./grafana/dashboard.json:/var/lib/grafana/dashboards/sonde.json:ro\n"
         "    ports: [\"3000:3000\"]\n    depends_on: [prometheus]\n");
    if (g->o->api_key && *g->o->api_key)
        P(b, "secrets:\n  sonde_api_key:\n    file: ./prometheus/sonde_api_key\n");
}

static void k8s_meta(gen *g, sonde_buf *b, const char *kind, const char *api, const char *name)
{
    P(b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n  namespace: ", api, kind, name);
    S(b, g->ns);
    P(b, "\n  labels:\n    app.kubernetes.io/name: %s\n", name);
}

static void k8s_files(gen *g, sonde_buf *dep, sonde_buf *svc, sonde_buf *sm, sonde_buf *pm,
                      sonde_buf *pr, sonde_buf *sec)
{
    char name[64];
    k8s_name(name, sizeof name, g->job);
    int port = port_of(g->target);
    bool key = g->o->api_key && *g->o->api_key;
    char secret[80];
    snprintf(secret, sizeof secret, "%s-api-key", name);

    k8s_meta(g, dep, "Deployment", "apps/v1", name);
    P(dep,
      "spec:\n  replicas: 1\n  selector:\n    matchLabels:\n"
      "      app.kubernetes.io/name: %s\n  template:\n    metadata:\n      labels:\n"
      "        app.kubernetes.io/name: %s\n    spec:\n      containers:\n"
      "        - name: %s\n          image: ",
      name, name, name);
    S(dep, g->image);
    P(dep,
      "\n          ports:\n            - name: metrics\n              containerPort: %d\n"
      "          env:\n            - name: SONDE_LISTEN\n              value: \":%d\"\n",
      port, port);
    if (key)
        P(dep,
          "            - name: SONDE_API_KEY\n              valueFrom:\n"
          "                secretKeyRef:\n                  name: %s\n"
          "                  key: api-key\n",
          secret);
    P(dep,
      "          livenessProbe:\n            httpGet:\n              path: %s/health/live\n"
      "              port: metrics\n            periodSeconds: 10\n"
      "            failureThreshold: 3\n          readinessProbe:\n            httpGet:\n"
      "              path: %s/health/ready\n              port: metrics\n"
      "            periodSeconds: 5\n            failureThreshold: 2\n",
      g->prefix, g->prefix);

    k8s_meta(g, svc, "Service", "v1", name);
    P(svc,
      "spec:\n  selector:\n    app.kubernetes.io/name: %s\n  ports:\n"
      "    - name: metrics\n      port: %d\n      targetPort: metrics\n",
      name, port);

    const char *auth_fmt = "      bearerTokenSecret:\n        name: %s\n        key: api-key\n";
    k8s_meta(g, sm, "ServiceMonitor", "monitoring.coreos.com/v1", name);
    P(sm,
      "spec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: %s\n"
      "  endpoints:\n    - port: metrics\n      path: %s/metrics\n      interval: %s\n"
      "      scheme: %s\n",
      name, g->prefix, g->interval, g->scheme);
    if (key)
        P(sm, auth_fmt, secret);

    k8s_meta(g, pm, "PodMonitor", "monitoring.coreos.com/v1", name);
    P(pm,
      "spec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: %s\n"
      "  podMetricsEndpoints:\n    - port: metrics\n      path: %s/metrics\n"
      "      interval: %s\n      scheme: %s\n",
      name, g->prefix, g->interval, g->scheme);
    if (key)
        P(pm,
          "      authorization:\n        type: Bearer\n        credentials:\n"
          "          name: %s\n          key: api-key\n",
          secret);

    k8s_meta(g, pr, "PrometheusRule", "monitoring.coreos.com/v1", name);
    P(pr, "spec:\n");
    rule_groups(g, pr, 2);

    if (key) {
        k8s_meta(g, sec, "Secret", "v1", secret);
        P(sec,
          "type: Opaque\n# Put the service's API key here (or create the Secret with\n"
          "# kubectl create secret generic %s --from-literal=api-key=...).\n"
          "stringData:\n  api-key: \"REPLACE_ME\"\n",
          secret);
    }
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

typedef struct file {
    const char *path; /* relative */
    sonde_buf buf;
    int bit;
    bool secret;
} file;

static int mkdirs(const char *dir, const char *rel)
{
    char p[4096];
    int n = snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof p)
        return SONDE_EINVAL;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return SONDE_EIO;
        *s = '/';
    }
    return SONDE_OK;
}

int sonde_gen_write(const sonde_gen_opts *opts, const sonde_gen_input *in, const char *dir,
                    size_t *skipped, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (skipped)
        *skipped = 0;
    if (!sonde_enabled())
        return SONDE_OK; /* off: nothing is written */
    sonde_gen_opts defaults;
    sonde_gen_opts_init(&defaults);
    if (!opts)
        opts = &defaults;
    gen G = {.o = opts, .in = in, .err = err, .errlen = errlen}, *g = &G;
    if (!in || !dir || !*dir)
        return fail(g, SONDE_EINVAL, "missing input or output directory");
    g->service = opts->service && *opts->service ? opts->service : NULL;
    g->job = opts->job && *opts->job ? opts->job : g->service ? g->service : "sonde";
    if (!g->service)
        g->service = g->job;
    if (!valid_job(g->job))
        return fail(g, SONDE_EINVAL,
                    "job \"%s\": use letters, digits, '_' and '-' (at most 63, a letter first)",
                    g->job);
    g->ns = opts->namespace_ && *opts->namespace_ ? opts->namespace_ : "default";
    for (const char *p = g->ns; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') || p - g->ns > 62)
            return fail(g, SONDE_EINVAL,
                        "namespace \"%s\": lower-case letters, digits and '-' only", g->ns);
    g->interval = opts->scrape_interval && *opts->scrape_interval ? opts->scrape_interval : "15s";
    if (!valid_duration(g->interval))
        return fail(g, SONDE_EINVAL, "scrape interval \"%s\" is not a duration like 15s or 1m",
                    g->interval);
    g->target = opts->target && *opts->target ? opts->target : "localhost:9464";
    g->scheme = opts->scheme && *opts->scheme ? opts->scheme : "http";
    if (strcmp(g->scheme, "http") != 0 && strcmp(g->scheme, "https") != 0)
        return fail(g, SONDE_EINVAL, "scheme \"%s\": http or https", g->scheme);
    g->prefix = opts->route_prefix ? opts->route_prefix : "";
    char image[128];
    char kn[64];
    k8s_name(kn, sizeof kn, g->job);
    snprintf(image, sizeof image, "REPLACE_ME/%s:latest", kn);
    g->image = opts->image && *opts->image ? opts->image : image;
    int only = opts->only ? opts->only : SONDE_GEN_ALL;
    for (size_t i = 0; i < in->family_count; i++)
        if (!in->families[i].name || !in->families[i].type)
            return fail(g, SONDE_EINVAL, "family %zu has no name or type", i);
    for (size_t i = 0; i < in->rule_count; i++)
        if (!in->rules[i].name || !in->rules[i].kind)
            return fail(g, SONDE_EINVAL, "rule %zu has no name or kind", i);

    bool key = opts->api_key && *opts->api_key;
    file files[] = {
        {"grafana/dashboard.json", {0}, SONDE_GEN_GRAFANA, false},
        {"grafana/provisioning/datasources/sonde.yml", {0}, SONDE_GEN_GRAFANA, false},
        {"grafana/provisioning/dashboards/sonde.yml", {0}, SONDE_GEN_GRAFANA, false},
        {"prometheus/prometheus.yml", {0}, SONDE_GEN_PROMETHEUS, false},
        {"prometheus/rules.yml", {0}, SONDE_GEN_PROMETHEUS, false},
        {"prometheus/sonde_api_key", {0}, key ? SONDE_GEN_PROMETHEUS : 0, true},
        {"alertmanager/alertmanager.yml", {0}, SONDE_GEN_ALERTMANAGER, false},
        {"docker-compose.yml", {0}, SONDE_GEN_COMPOSE, false},
        {"k8s/deployment.yaml", {0}, SONDE_GEN_K8S, false},
        {"k8s/service.yaml", {0}, SONDE_GEN_K8S, false},
        {"k8s/servicemonitor.yaml", {0}, SONDE_GEN_K8S, false},
        {"k8s/podmonitor.yaml", {0}, SONDE_GEN_K8S, false},
        {"k8s/prometheusrule.yaml", {0}, SONDE_GEN_K8S, false},
        {"k8s/secret.yaml", {0}, key ? SONDE_GEN_K8S : 0, false},
    };
    size_t nf = SONDE_ARRAY_LEN(files);
    if (only & SONDE_GEN_GRAFANA) {
        grafana_dashboard(g, &files[0].buf);
        grafana_provisioning(g, &files[1].buf, &files[2].buf);
    }
    if (only & SONDE_GEN_PROMETHEUS) {
        prometheus_yml(g, &files[3].buf);
        P(&files[4].buf,
          "# Recording and alerting rules for the sonde service \"%s\": the in-process\n"
          "# rules that have a PromQL equivalent, with the same names, labels, for and\n"
          "# annotations.\n",
          g->service);
        rule_groups(g, &files[4].buf, 0);
        if (key)
            P(&files[5].buf, "%s", opts->api_key);
    }
    if (only & SONDE_GEN_ALERTMANAGER)
        alertmanager_yml(g, &files[6].buf);
    if (only & SONDE_GEN_COMPOSE)
        compose_yml(g, &files[7].buf);
    if (only & SONDE_GEN_K8S) {
        size_t sk = g->skipped;
        k8s_files(g, &files[8].buf, &files[9].buf, &files[10].buf, &files[11].buf, &files[12].buf,
                  &files[13].buf);
        if (only & SONDE_GEN_PROMETHEUS)
            g->skipped = sk; /* the same rules, counted once */
    }
    int rc = g->rc;
    if (rc)
        fail(g, rc, "cannot build the files: %s", sonde_strerror(rc));
    /* Refuse before writing anything. */
    for (size_t i = 0; i < nf && !rc; i++) {
        if (!(only & files[i].bit))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, files[i].path);
        struct stat st;
        if (!opts->force && lstat(p, &st) == 0)
            rc = fail(g, SONDE_ECONFLICT, "%s exists (use --force to overwrite)", p);
    }
    for (size_t i = 0; i < nf && !rc; i++) {
        if (!(only & files[i].bit))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, files[i].path);
        if (mkdirs(dir, files[i].path) != SONDE_OK) {
            rc = fail(g, SONDE_EIO, "cannot create the folders of %s: %s", p, strerror(errno));
            break;
        }
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, files[i].secret ? 0600 : 0644);
        size_t off = 0;
        while (fd >= 0 && off < files[i].buf.len) {
            ssize_t w = write(fd, files[i].buf.data + off, files[i].buf.len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        bool ok = fd >= 0 && off == files[i].buf.len && fsync(fd) == 0;
        if (fd >= 0 && close(fd) != 0)
            ok = false;
        if (!ok || rename(tmp, p) != 0) {
            rc = fail(g, SONDE_EIO, "cannot write %s: %s", p, strerror(errno));
            if (fd >= 0)
                unlink(tmp);
        }
    }
    for (size_t i = 0; i < nf; i++)
        sonde_buf_free(&files[i].buf);
    if (skipped)
        *skipped = g->skipped;
    return rc;
}
