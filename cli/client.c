/*
 * sonde health and sonde metrics: clients of a running sonde server.
 */
#include "cli.h"
#include "core/json.h"

#include <sonde.h>

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (64u << 20)

static const char health_usage[] =
    "usage: sonde health [--url URL] [--detailed] [--json] [--api-key KEY] [--timeout SECONDS]\n"
    "\n"
    "Query a sonde server's health and print a table (or the JSON answer).\n"
    "\n"
    "options:\n"
    "  --url URL          server base URL including any route prefix\n"
    "                     (default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --detailed         every check's message and duration, and host figures\n"
    "                     (/health/detailed: needs the API key, or a loopback server)\n"
    "  --json             print the server's JSON answer as is\n"
    "  --api-key KEY      bearer key (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "\n"
    "exit status: 0 healthy, 1 degraded, 2 unhealthy, 3 unreachable or no valid answer.\n";

static const char metrics_usage[] =
    "usage: sonde metrics [--url URL] [--format prometheus|openmetrics|json] [--output FILE]\n"
    "                     [--api-key KEY] [--timeout SECONDS]\n"
    "\n"
    "Fetch a sonde server's metrics.\n"
    "\n"
    "options:\n"
    "  --url URL          server base URL including any route prefix\n"
    "                     (default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --format F         prometheus (default), openmetrics or json (/metrics/json)\n"
    "  --output FILE      write to FILE (atomically) instead of stdout\n"
    "  --api-key KEY      bearer key for json (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "\n"
    "exit status: 0 success, 1 the server answered with an error or the output\n"
    "cannot be written, 3 unreachable.\n";

typedef struct fetch {
    long status;
    char *body;
    size_t len;
    bool too_big;
    char error[CURL_ERROR_SIZE];
    CURLcode code;
} fetch;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    fetch *f = ud;
    size_t add = sz * n;
    if (f->len + add > MAX_BODY) {
        f->too_big = true;
        return 0;
    }
    char *nb = realloc(f->body, f->len + add + 1);
    if (!nb)
        return 0;
    f->body = nb;
    memcpy(f->body + f->len, p, add);
    f->len += add;
    f->body[f->len] = '\0';
    return add;
}

/* One HTTP exchange: method NULL is GET; body (JSON) only with a method. */
static fetch request(const char *url, const char *method, const char *body, const char *accept,
                     const char *api_key, double timeout)
{
    fetch f;
    memset(&f, 0, sizeof f);
    CURL *c = curl_easy_init();
    if (!c) {
        f.code = CURLE_FAILED_INIT;
        snprintf(f.error, sizeof f.error, "cannot create an HTTP client");
        return f;
    }
    struct curl_slist *h = NULL;
    char line[4200];
    if (accept) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        h = curl_slist_append(h, line);
    }
    if (api_key && *api_key) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", api_key);
        h = curl_slist_append(h, line);
        memset(line, 0, sizeof line);
    }
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f.error);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sonde-cli/" SONDE_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (h)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    f.code = curl_easy_perform(c);
    if (f.code == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f.status);
    else if (!f.error[0])
        snprintf(f.error, sizeof f.error, "%s",
                 f.too_big ? "answer larger than 64 MiB" : curl_easy_strerror(f.code));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return f;
}

static fetch get(const char *url, const char *accept, const char *api_key, double timeout)
{
    return request(url, NULL, NULL, accept, api_key, timeout);
}

/* base + path, without a doubled slash. */
static void join_url(char *out, size_t n, const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    snprintf(out, n, "%.*s%s", (int)bl, base, path);
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 3600)
        return false;
    *out = v;
    return true;
}

static const char *default_url(void)
{
    const char *u = getenv("SONDE_URL");
    return u && *u ? u : "http://127.0.0.1:9464";
}

/* Printable cell: control characters replaced, cut at max bytes. */
static void cell(char *out, size_t n, const char *s, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; s && s[i] && o + 1 < n && i < max; i++)
        out[o++] = ((unsigned char)s[i] < 0x20) ? ' ' : s[i];
    out[o] = '\0';
}

static void fmt_duration(char *out, size_t n, double s)
{
    if (!(s >= 0))
        snprintf(out, n, "-");
    else if (s < 1e-3)
        snprintf(out, n, "%.0fus", s * 1e6);
    else if (s < 1)
        snprintf(out, n, "%.1fms", s * 1e3);
    else
        snprintf(out, n, "%.2fs", s);
}

static void print_table(const sonde__json *root, bool detailed)
{
    const char *status = sonde__json_get_str(root, "status", "?");
    double pct = sonde__json_get_num(root, "health_percentage", NAN);
    const sonde__json *ready = sonde__json_get(root, "ready");
    const char *service = sonde__json_get_str(root, "service", "");
    printf("%-10s %s", "STATUS", status);
    if (!isnan(pct))
        printf(" (%.0f%%)", pct);
    if (ready && ready->type == SONDE__JSON_BOOL)
        printf(", %s", ready->boolean ? "ready" : "not ready");
    printf("\n");
    if (*service)
        printf("%-10s %s\n", "SERVICE", service);
    const sonde__json *sys = sonde__json_get(root, "system");
    if (detailed && sys) {
        const sonde__json *cpu = sonde__json_get(sys, "cpu"), *mem = sonde__json_get(sys, "memory"),
                          *disk = sonde__json_get(sys, "disk");
        printf("%-10s %.0f CPUs, load %.2f %.2f %.2f", "HOST", sonde__json_get_num(cpu, "count", 0),
               sonde__json_get_num(cpu, "load1", 0), sonde__json_get_num(cpu, "load5", 0),
               sonde__json_get_num(cpu, "load15", 0));
        if (mem)
            printf(", memory %.1f%% used", sonde__json_get_num(mem, "used_percent", 0));
        if (disk)
            printf(", disk %s %.1f%% used", sonde__json_get_str(disk, "path", "/"),
                   sonde__json_get_num(disk, "used_percent", 0));
        printf("\n");
    }
    const sonde__json *checks = sonde__json_get(root, "checks");
    if (!checks || checks->type != SONDE__JSON_OBJECT || checks->count == 0) {
        printf("\n(no checks)\n");
        return;
    }
    size_t w = 5;
    for (size_t i = 0; i < checks->count; i++)
        if (strlen(checks->keys[i]) > w)
            w = strlen(checks->keys[i]) < 40 ? strlen(checks->keys[i]) : 40;
    printf("\n%-*s  %-9s  %-8s", (int)w, "CHECK", "STATUS", "CRITICAL");
    if (detailed)
        printf("  %-9s  %s", "DURATION", "MESSAGE");
    printf("\n");
    for (size_t i = 0; i < checks->count; i++) {
        const sonde__json *c = &checks->items[i];
        const sonde__json *crit = sonde__json_get(c, "critical");
        char name[64];
        cell(name, sizeof name, checks->keys[i], 40);
        printf("%-*s  %-9s  %-8s", (int)w, name, sonde__json_get_str(c, "status", "?"),
               crit && crit->type == SONDE__JSON_BOOL ? (crit->boolean ? "yes" : "no") : "?");
        if (detailed) {
            char d[32], msg[160];
            fmt_duration(d, sizeof d, sonde__json_get_num(c, "duration_seconds", -1));
            cell(msg, sizeof msg, sonde__json_get_str(c, "message", ""), 120);
            printf("  %-9s  %s", d, msg);
        }
        printf("\n");
    }
}

int cmd_health(int argc, char **argv)
{
    const char *url = default_url(), *key = getenv("SONDE_API_KEY");
    bool detailed = false, as_json = false;
    double timeout = 10;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(health_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--detailed") == 0) {
            detailed = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if ((m = cli_opt(argc, argv, &i, "--url", &v))) {
            if (m < 0)
                goto missing;
            url = v;
        } else if ((m = cli_opt(argc, argv, &i, "--api-key", &v))) {
            if (m < 0)
                goto missing;
            key = v;
        } else if ((m = cli_opt(argc, argv, &i, "--timeout", &v))) {
            if (m < 0)
                goto missing;
            if (!parse_seconds(v, &timeout)) {
                fprintf(stderr, "sonde health: --timeout must be seconds in (0, 3600]\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "sonde health: unknown option %s\n\n%s", argv[i], health_usage);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fprintf(stderr, "sonde health: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
    }
    char full[2048];
    join_url(full, sizeof full, url, detailed ? "/health/detailed" : "/health");
    fetch f = get(full, "application/json", key, timeout);
    int rc = EXIT_UNREACHABLE;
    if (f.code != CURLE_OK) {
        fprintf(stderr, "sonde health: %s unreachable: %s\n", full, f.error);
        goto out;
    }
    if (f.status == 401 || f.status == 403) {
        fprintf(stderr, "sonde health: %s answered %ld: %s\n", full, f.status,
                f.status == 401 ? "pass the API key with --api-key or $SONDE_API_KEY"
                                : "this endpoint answers loopback clients only without an API key");
        goto out;
    }
    if (f.status != 200 && f.status != 503) {
        fprintf(stderr, "sonde health: %s answered %ld, not a health report\n", full, f.status);
        goto out;
    }
    char err[128];
    sonde__json *root = sonde__json_parse(f.body ? f.body : "", f.len, err, sizeof err);
    const char *status = root ? sonde__json_get_str(root, "status", NULL) : NULL;
    if (!status) {
        fprintf(stderr, "sonde health: %s did not answer a health report (%s)\n", full,
                root ? "no status" : err);
        sonde__json_free(root);
        goto out;
    }
    if (strcmp(status, "healthy") == 0)
        rc = EXIT_HEALTHY;
    else if (strcmp(status, "degraded") == 0)
        rc = EXIT_DEGRADED;
    else
        rc = EXIT_UNHEALTHY;
    if (as_json)
        fwrite(f.body, 1, f.len, stdout);
    else
        print_table(root, detailed);
    sonde__json_free(root);
out:
    free(f.body);
    return rc;
}

static int write_output(const char *path, const char *data, size_t len)
{
    if (!path) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "sonde metrics: cannot write to stdout: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "sonde metrics: output path too long\n");
        return 1;
    }
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        fprintf(stderr, "sonde metrics: cannot create %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    bool ok = fwrite(data, 1, len, fp) == len;
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "sonde metrics: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    return 0;
}

int cmd_metrics(int argc, char **argv)
{
    const char *url = default_url(), *key = getenv("SONDE_API_KEY"), *format = "prometheus",
               *output = NULL;
    double timeout = 10;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(metrics_usage, stdout);
            return 0;
        } else if ((m = cli_opt(argc, argv, &i, "--url", &v))) {
            if (m < 0)
                goto missing;
            url = v;
        } else if ((m = cli_opt(argc, argv, &i, "--format", &v))) {
            if (m < 0)
                goto missing;
            format = v;
        } else if ((m = cli_opt(argc, argv, &i, "--output", &v))) {
            if (m < 0)
                goto missing;
            output = v;
        } else if ((m = cli_opt(argc, argv, &i, "--api-key", &v))) {
            if (m < 0)
                goto missing;
            key = v;
        } else if ((m = cli_opt(argc, argv, &i, "--timeout", &v))) {
            if (m < 0)
                goto missing;
            if (!parse_seconds(v, &timeout)) {
                fprintf(stderr, "sonde metrics: --timeout must be seconds in (0, 3600]\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "sonde metrics: unknown option %s\n\n%s", argv[i], metrics_usage);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fprintf(stderr, "sonde metrics: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
    }
    const char *path, *accept;
    if (strcmp(format, "prometheus") == 0) {
        path = "/metrics";
        accept = "text/plain;version=0.0.4";
    } else if (strcmp(format, "openmetrics") == 0) {
        path = "/metrics";
        accept = "application/openmetrics-text;version=1.0.0";
    } else if (strcmp(format, "json") == 0) {
        path = "/metrics/json";
        accept = "application/json";
    } else {
        fprintf(stderr, "sonde metrics: --format must be prometheus, openmetrics or json\n");
        return EXIT_USAGE;
    }
    char full[2048];
    join_url(full, sizeof full, url, path);
    fetch f = get(full, accept, key, timeout);
    int rc;
    if (f.code != CURLE_OK) {
        fprintf(stderr, "sonde metrics: %s unreachable: %s\n", full, f.error);
        rc = EXIT_UNREACHABLE;
    } else if (f.status != 200) {
        fprintf(stderr, "sonde metrics: %s answered %ld%s\n", full, f.status,
                f.status == 401 ? " (pass the API key with --api-key or $SONDE_API_KEY)" : "");
        rc = 1;
    } else {
        rc = write_output(output, f.body ? f.body : "", f.len);
    }
    free(f.body);
    return rc;
}

/* ---- shared with errors.c ---- */

const char *cli_default_url(void)
{
    return default_url();
}

bool cli_parse_seconds(const char *s, double *out)
{
    return parse_seconds(s, out);
}

void cli_cell(char *out, size_t n, const char *s, size_t max)
{
    cell(out, n, s, max);
}

/* Check an exchange: 0 when the status is `want`, else the reason printed
 * and the exit status (1 or EXIT_UNREACHABLE); the body is freed then. */
static int check_answer(const char *cmd, const char *full, fetch *f, long want)
{
    if (f->code != CURLE_OK) {
        fprintf(stderr, "sonde %s: %s unreachable: %s\n", cmd, full, f->error);
        free(f->body);
        return EXIT_UNREACHABLE;
    }
    if (f->status != want) {
        const char *why = f->status == 401 ? " (pass the API key with --api-key or $SONDE_API_KEY)"
                          : f->status == 403 ? " (this endpoint answers loopback clients only "
                                               "without an API key)"
                                             : "";
        bool show =
            f->body && f->status >= 400 && f->status < 500 && f->status != 401 && f->status != 403;
        fprintf(stderr, "sonde %s: %s answered %ld%s%s%s\n", cmd, full, f->status, why,
                show ? ": " : "", show ? f->body : "");
        free(f->body);
        return 1;
    }
    return 0;
}

int cli_get_json(const char *cmd, const char *base, const char *path, const char *api_key,
                 double timeout, char **body, size_t *len)
{
    char full[4096];
    join_url(full, sizeof full, base, path);
    fetch f = get(full, "application/json", api_key, timeout);
    *body = NULL;
    *len = 0;
    if (f.code == CURLE_OK && f.status == 404) {
        fprintf(stderr, "sonde %s: %s answered 404 (no such endpoint: is this a sonde server?)\n",
                cmd, full);
        free(f.body);
        return 1;
    }
    int rc = check_answer(cmd, full, &f, 200);
    if (rc)
        return rc;
    *body = f.body;
    *len = f.len;
    return 0;
}

int cli_send_json(const char *cmd, const char *base, const char *path, const char *method,
                  const char *json, const char *api_key, double timeout, long want, char **body,
                  size_t *len)
{
    char full[4096];
    join_url(full, sizeof full, base, path);
    fetch f = request(full, method, json, "application/json", api_key, timeout);
    *body = NULL;
    *len = 0;
    int rc = check_answer(cmd, full, &f, want);
    if (rc)
        return rc;
    *body = f.body;
    *len = f.len;
    return 0;
}
