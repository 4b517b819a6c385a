/*
 * sonde errors and sonde alerts: a service's error groups and alerts, from
 * its /errors and /alerts endpoints, as readable tables or as JSON.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "cli.h"
#include "core/json.h"

#include <sonde.h>

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static const char errors_usage[] =
    "usage: sonde errors [--url URL | --store ADDRESS] [--since DURATION] [--severity LEVEL]\n"
    "                    [--type TYPE] [--limit N] [--json] [--api-key KEY] [--timeout SECONDS]\n"
    "\n"
    "List a service's error groups, most recently seen first.\n"
    "\n"
    "options:\n"
    "  --url URL          server base URL including any route prefix\n"
    "                     (default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --store ADDRESS    read the store the service wrote instead (its SONDE_STORE:\n"
    "                     a SQLite file path, or redis://[:password@]host[:port][/db]);\n"
    "                     counts of every process using it are added up\n"
    "  --since DURATION   groups seen within this long (90s, 15m, 1h, 7d), or since\n"
    "                     an RFC 3339 time\n"
    "  --severity LEVEL   groups whose highest severity is at least low, medium,\n"
    "                     high or critical\n"
    "  --type TYPE        groups of this error type\n"
    "  --limit N          most groups (default 100)\n"
    "  --json             print the JSON answer as is\n"
    "  --api-key KEY      bearer key (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "\n"
    "exit status: 0 success, 1 the server answered an error, 3 unreachable.\n";

static const char alerts_usage[] =
    "usage: sonde alerts [--url URL | --store ADDRESS] [--json] [--api-key KEY]\n"
    "                    [--timeout SECONDS]\n"
    "\n"
    "List a service's alerts: firing, pending, and the recent history.\n"
    "\n"
    "options:\n"
    "  --url URL          server base URL including any route prefix\n"
    "                     (default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --store ADDRESS    read the alert history from the service's store instead\n"
    "                     (a SQLite file path or redis://...)\n"
    "  --json             print the JSON answer as is\n"
    "  --api-key KEY      bearer key (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "\n"
    "exit status: 0 success, 1 the server answered an error, 3 unreachable.\n";

/* Append "&name=value" (percent-encoded) to q. */
static void add_param(char *q, size_t n, const char *name, const char *value)
{
    size_t l = strlen(q);
    int w = snprintf(q + l, n - l, "%s%s=", l ? "&" : "?", name);
    if (w < 0 || (size_t)w >= n - l)
        return;
    l += (size_t)w;
    static const char hx[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)value; *p && l + 4 < n; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            q[l++] = (char)*p;
        } else {
            q[l++] = '%';
            q[l++] = hx[*p >> 4];
            q[l++] = hx[*p & 15];
        }
    }
    q[l] = '\0';
}

/* --since for a store: a duration before now (90s, 15m, 1h, 7d, 1h30m) or
 * an RFC 3339 UTC time (2024-05-01T12:00:00Z). */
static bool parse_since(const char *s, double *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest && (*rest == 'Z' || *rest == '\0')) {
        *out = (double)timegm(&tm);
        return true;
    }
    double total = 0;
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0))
            return false;
        double unit = *end == 's'    ? 1
                      : *end == 'm'  ? 60
                      : *end == 'h'  ? 3600
                      : *end == 'd'  ? 86400
                      : *end == 'w'  ? 604800
                      : *end == '\0' ? 1
                                     : 0;
        if (unit == 0)
            return false;
        total += v * unit;
        p = *end ? end + 1 : end;
    }
    *out = (double)time(NULL) - total;
    return true;
}

/* "2024-05-01T11:59:59.870Z" -> "2024-05-01 11:59:59"; "-" for null. */
static void short_time(char *out, size_t n, const sonde__json *v)
{
    if (!v || v->type != SONDE__JSON_STRING || strlen(v->string) < 19) {
        snprintf(out, n, "-");
        return;
    }
    snprintf(out, n, "%.10s %.8s", v->string, v->string + 11);
}

/* Options common to both commands. */
typedef struct opts {
    const char *url, *key, *store;
    double timeout;
    bool as_json;
} opts;

/* Parse a common option at argv[*i]; returns 1 when taken, 0 when not,
 * -1 on a usage error (printed). */
static int common_opt(const char *cmd, int argc, char **argv, int *i, opts *o)
{
    const char *v = NULL;
    int m;
    if (strcmp(argv[*i], "--json") == 0) {
        o->as_json = true;
        return 1;
    }
    if ((m = cli_opt(argc, argv, i, "--url", &v)))
        o->url = v;
    else if ((m = cli_opt(argc, argv, i, "--store", &v)))
        o->store = v;
    else if ((m = cli_opt(argc, argv, i, "--api-key", &v)))
        o->key = v;
    else if ((m = cli_opt(argc, argv, i, "--timeout", &v))) {
        if (m > 0 && !cli_parse_seconds(v, &o->timeout)) {
            fprintf(stderr, "sonde %s: --timeout must be seconds in (0, 3600]\n", cmd);
            return -1;
        }
    } else
        return 0;
    if (m < 0) {
        fprintf(stderr, "sonde %s: %s needs a value\n", cmd, argv[*i]);
        return -1;
    }
    return 1;
}

static void print_groups(const sonde__json *root)
{
    const sonde__json *groups = sonde__json_get(root, "groups");
    size_t n = groups && groups->type == SONDE__JSON_ARRAY ? groups->count : 0;
    if (n == 0) {
        printf("no error groups\n");
    } else {
        printf("%-8s  %8s  %-19s  %-24s  %s\n", "SEVERITY", "COUNT", "LAST SEEN", "LOCATION",
               "ERROR");
        for (size_t i = 0; i < n; i++) {
            const sonde__json *g = &groups->items[i];
            const sonde__json *loc = sonde__json_get(g, "location");
            char last[32], where[160], title[200], file[120];
            short_time(last, sizeof last, sonde__json_get(g, "last_seen"));
            const char *f = sonde__json_get_str(loc, "file", "");
            const char *slash = strrchr(f, '/');
            cli_cell(file, sizeof file, slash ? slash + 1 : f, 100);
            int line = (int)sonde__json_get_num(loc, "line", 0);
            if (file[0] && line > 0)
                snprintf(where, sizeof where, "%s:%d", file, line);
            else
                snprintf(where, sizeof where, "%s", file[0] ? file : "-");
            cli_cell(title, sizeof title, sonde__json_get_str(g, "title", ""), 150);
            printf("%-8s  %8.0f  %-19s  %-24.24s  %s\n", sonde__json_get_str(g, "severity", "?"),
                   sonde__json_get_num(g, "count", 0), last, where, title);
        }
    }
    double total = sonde__json_get_num(root, "total_groups", NAN),
           dropped = sonde__json_get_num(root, "dropped", 0);
    if (!isnan(total))
        printf("\n%zu of %.0f group%s shown", n, total, total == 1 ? "" : "s");
    if (dropped > 0)
        printf("; %.0f error%s dropped (capture queue full)", dropped, dropped == 1 ? "" : "s");
    if (!isnan(total) || dropped > 0)
        printf("\n");
}

/* Read from a store: the same JSON document as the endpoint. */
static int read_store(const char *cmd, const char *store, const sonde_errors_filter *f, char **body,
                      size_t *len)
{
    sonde_buf b;
    sonde_buf_init(&b);
    int rc = f || strcmp(cmd, "errors") == 0 ? sonde_errors_read_store(store, f, &b)
                                             : sonde_alerts_read_store(store, &b);
    if (rc) {
        fprintf(stderr, "sonde %s: cannot read the store %s: %s (%s)\n", cmd, store,
                sonde_strerror(rc), sonde_last_error());
        sonde_buf_free(&b);
        return rc == SONDE_EUNREACHABLE ? EXIT_UNREACHABLE : 1;
    }
    *body = strdup(b.data ? b.data : "");
    *len = b.len;
    sonde_buf_free(&b);
    return *body ? 0 : 1;
}

int cmd_errors(int argc, char **argv)
{
    opts o = {cli_default_url(), getenv("SONDE_API_KEY"), NULL, 10, false};
    char query[1024] = "";
    sonde_errors_filter filter = {0};
    char type_buf[256] = "";
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(errors_usage, stdout);
            return 0;
        }
        int c = common_opt("errors", argc, argv, &i, &o);
        if (c < 0)
            return EXIT_USAGE;
        if (c > 0)
            continue;
        static const char *const params[] = {"since", "severity", "type", "limit"};
        bool taken = false;
        for (size_t k = 0; k < 4 && !taken; k++) {
            char flag[16];
            snprintf(flag, sizeof flag, "--%s", params[k]);
            if ((m = cli_opt(argc, argv, &i, flag, &v))) {
                if (m < 0) {
                    fprintf(stderr, "sonde errors: %s needs a value\n", flag);
                    return EXIT_USAGE;
                }
                if (k == 1 && sonde_severity_parse(v) < 0) {
                    fprintf(stderr, "sonde errors: --severity must be low, medium, high or "
                                    "critical\n");
                    return EXIT_USAGE;
                }
                if (k == 0 && !parse_since(v, &filter.since)) {
                    fprintf(stderr, "sonde errors: --since must be a duration (90s, 15m, 1h, "
                                    "7d) or an RFC 3339 time\n");
                    return EXIT_USAGE;
                }
                if (k == 1)
                    filter.min_severity = sonde_severity_parse(v);
                if (k == 2) {
                    snprintf(type_buf, sizeof type_buf, "%s", v);
                    filter.type = type_buf;
                }
                if (k == 3) {
                    char *end;
                    long l = strtol(v, &end, 10);
                    if (*end || l < 1 || l > 100000) {
                        fprintf(stderr, "sonde errors: --limit must be 1 to 100000\n");
                        return EXIT_USAGE;
                    }
                    filter.limit = (size_t)l;
                }
                add_param(query, sizeof query, params[k], v);
                taken = true;
            }
        }
        if (!taken) {
            fprintf(stderr, "sonde errors: unknown option %s\n\n%s", argv[i], errors_usage);
            return EXIT_USAGE;
        }
    }
    char path[1200];
    snprintf(path, sizeof path, "/errors%s", query);
    char *body;
    size_t len;
    int rc = o.store ? read_store("errors", o.store, &filter, &body, &len)
                     : cli_get_json("errors", o.url, path, o.key, o.timeout, &body, &len);
    if (rc)
        return rc;
    char err[128];
    sonde__json *root = sonde__json_parse(body, len, err, sizeof err);
    if (!root || !sonde__json_get(root, "groups")) {
        fprintf(stderr, "sonde errors: the answer is not an error list (%s)\n",
                root ? "no groups" : err);
        rc = 1;
    } else if (o.as_json) {
        fwrite(body, 1, len, stdout);
        printf("\n");
    } else {
        print_groups(root);
    }
    sonde__json_free(root);
    free(body);
    return rc;
}

static void print_alert_rows(const sonde__json *list, bool history)
{
    if (history)
        printf("%-24s  %-8s  %-8s  %-19s  %-19s  %s\n", "RULE", "STATE", "SEVERITY", "FIRED",
               "RESOLVED", "SUMMARY");
    else
        printf("%-24s  %-8s  %-19s  %10s  %s\n", "RULE", "SEVERITY", "SINCE", "VALUE", "SUMMARY");
    for (size_t i = 0; i < list->count; i++) {
        const sonde__json *a = &list->items[i];
        char rule[80], sum[200], t1[32], t2[32];
        cli_cell(rule, sizeof rule, sonde__json_get_str(a, "rule", ""), 60);
        cli_cell(sum, sizeof sum, sonde__json_get_str(a, "summary", ""), 150);
        if (history) {
            short_time(t1, sizeof t1, sonde__json_get(a, "fired_at"));
            short_time(t2, sizeof t2, sonde__json_get(a, "resolved_at"));
            printf("%-24s  %-8s  %-8s  %-19s  %-19s  %s\n", rule,
                   sonde__json_get_str(a, "state", "?"), sonde__json_get_str(a, "severity", "?"),
                   t1, t2, sum);
        } else {
            const sonde__json *since = sonde__json_get(a, "fired_at");
            if (!since || since->type != SONDE__JSON_STRING)
                since = sonde__json_get(a, "active_since");
            short_time(t1, sizeof t1, since);
            double v = sonde__json_get_num(a, "value", NAN);
            char val[32];
            if (isnan(v))
                snprintf(val, sizeof val, "-");
            else
                snprintf(val, sizeof val, "%.4g", v);
            const sonde__json *sil = sonde__json_get(a, "silenced");
            printf("%-24s  %-8s  %-19s  %10s  %s%s\n", rule,
                   sonde__json_get_str(a, "severity", "?"), t1, val, sum,
                   sil && sil->type == SONDE__JSON_BOOL && sil->boolean ? " (silenced)" : "");
        }
    }
}

static void print_alerts(const sonde__json *root)
{
    static const char *const sections[3] = {"firing", "pending", "recent"};
    static const char *const titles[3] = {"FIRING", "PENDING", "RECENT"};
    for (int s = 0; s < 3; s++) {
        const sonde__json *list = sonde__json_get(root, sections[s]);
        size_t n = list && list->type == SONDE__JSON_ARRAY ? list->count : 0;
        if (s)
            printf("\n");
        if (n == 0) {
            printf("%s: none\n", titles[s]);
            continue;
        }
        printf("%s: %zu\n", titles[s], n);
        print_alert_rows(list, s == 2);
    }
    const sonde__json *rules = sonde__json_get(root, "rules");
    const sonde__json *notifiers = sonde__json_get(root, "notifiers");
    size_t nr = rules && rules->type == SONDE__JSON_ARRAY ? rules->count : 0;
    size_t nn = notifiers && notifiers->type == SONDE__JSON_ARRAY ? notifiers->count : 0;
    printf("\n%zu rule%s, %zu notifier%s", nr, nr == 1 ? "" : "s", nn, nn == 1 ? "" : "s");
    for (size_t i = 0; i < nn; i++) {
        const sonde__json *x = &notifiers->items[i];
        char name[80];
        cli_cell(name, sizeof name, sonde__json_get_str(x, "name", ""), 64);
        printf("%s %s (%s: %.0f sent, %.0f failed)", i ? "," : ":", name,
               sonde__json_get_str(x, "kind", "?"), sonde__json_get_num(x, "sent", 0),
               sonde__json_get_num(x, "failed", 0));
    }
    printf("\n");
}

int cmd_alerts(int argc, char **argv)
{
    opts o = {cli_default_url(), getenv("SONDE_API_KEY"), NULL, 10, false};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(alerts_usage, stdout);
            return 0;
        }
        int c = common_opt("alerts", argc, argv, &i, &o);
        if (c < 0)
            return EXIT_USAGE;
        if (c == 0) {
            fprintf(stderr, "sonde alerts: unknown option %s\n\n%s", argv[i], alerts_usage);
            return EXIT_USAGE;
        }
    }
    char *body;
    size_t len;
    int rc = o.store ? read_store("alerts", o.store, NULL, &body, &len)
                     : cli_get_json("alerts", o.url, "/alerts", o.key, o.timeout, &body, &len);
    if (rc)
        return rc;
    char err[128];
    sonde__json *root = sonde__json_parse(body, len, err, sizeof err);
    if (!root || !sonde__json_get(root, "firing")) {
        fprintf(stderr, "sonde alerts: the answer is not an alert list (%s)\n",
                root ? "no firing list" : err);
        rc = 1;
    } else if (o.as_json) {
        fwrite(body, 1, len, stdout);
        printf("\n");
    } else {
        print_alerts(root);
    }
    sonde__json_free(root);
    free(body);
    return rc;
}
