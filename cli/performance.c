/*
 * sonde performance: per-operation latency percentiles and success rates
 * over a window, from a running service (/performance) or from the history
 * store a service wrote (SQLite file or Redis).
 */
#include "cli.h"
#include "core/json.h"

#include <sonde.h>

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char perf_usage[] =
    "usage: sonde performance [--operation NAME] [--hours N | --minutes N] [--json]\n"
    "                         [--url URL | --store ADDRESS] [--api-key KEY] [--timeout SECONDS]\n"
    "\n"
    "Per-operation count, success rate, average and p50/p95/p99 durations over a\n"
    "window (quantiles within 1%), and whether the operation breaks its baseline.\n"
    "\n"
    "options:\n"
    "  --operation NAME   only this operation\n"
    "  --hours N          window in hours (default 24)\n"
    "  --minutes N        window in minutes instead\n"
    "  --json             print the JSON document of /performance\n"
    "  --url URL          ask a running service (base URL including any route prefix;\n"
    "                     default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --store ADDRESS    read a history store instead: a SQLite file or\n"
    "                     redis://host:port/db (default $SONDE_STORE when --url is not given)\n"
    "  --api-key KEY      bearer key for --url (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "\n"
    "exit status: 0 success, 1 no such operation or an error answer, 3 service or\n"
    "store unreachable, 64 usage.\n";

#define MAX_BODY (64u << 20)

struct body {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t add = sz * n;
    if (b->len + add > MAX_BODY)
        return 0;
    char *nb = realloc(b->data, b->len + add + 1);
    if (!nb)
        return 0;
    b->data = nb;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* GET url; returns the HTTP status, or -1 with a reason in err. */
static long http_get(const char *url, const char *key, double timeout, struct body *b, char *err,
                     size_t errlen)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "cannot create an HTTP client");
        return -1;
    }
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    char line[4200];
    if (key && *key) {
        int n = snprintf(line, sizeof line, "Authorization: Bearer %s", key);
        if (n > 0 && (size_t)n < sizeof line)
            h = curl_slist_append(h, line);
        memset(line, 0, sizeof line);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sonde-cli/" SONDE_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode code = curl_easy_perform(c);
    long status = -1;
    if (code == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(code));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static void fmt_seconds(char *out, size_t n, double s)
{
    if (isnan(s))
        snprintf(out, n, "-");
    else if (s < 1e-3)
        snprintf(out, n, "%.1f us", s * 1e6);
    else if (s < 1)
        snprintf(out, n, "%.2f ms", s * 1e3);
    else
        snprintf(out, n, "%.3f s", s);
}

static void fmt_time(char *out, size_t n, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, n, "?");
}

static void print_window(unsigned minutes)
{
    if (minutes % 60 == 0)
        printf("%u h", minutes / 60);
    else
        printf("%u min", minutes);
}

static void print_table(const sonde_op_stats *v, size_t n, unsigned minutes)
{
    printf("Operations over the last ");
    print_window(minutes);
    if (n) {
        char a[40], b[40];
        fmt_time(a, sizeof a, v[0].from_unix);
        fmt_time(b, sizeof b, v[0].to_unix);
        printf(" (%s to %s)", a, b);
    }
    printf("; quantiles within 1%%\n\n");
    size_t w = strlen("OPERATION");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i].operation);
        if (l > w)
            w = l;
    }
    if (w > 40)
        w = 40;
    printf("%-*s %10s %8s %10s %10s %10s %10s  %s\n", (int)w, "OPERATION", "COUNT", "SUCCESS",
           "AVG", "P50", "P95", "P99", "ANOMALY");
    for (size_t i = 0; i < n; i++) {
        const sonde_op_stats *s = &v[i];
        char name[48], avg[24], p50[24], p95[24], p99[24], rate[16];
        size_t o = 0;
        for (size_t k = 0; s->operation[k] && o < w && o + 1 < sizeof name; k++)
            name[o++] = (unsigned char)s->operation[k] < 0x20 ? ' ' : s->operation[k];
        name[o] = '\0';
        fmt_seconds(avg, sizeof avg, s->avg_seconds);
        fmt_seconds(p50, sizeof p50, s->p50_seconds);
        fmt_seconds(p95, sizeof p95, s->p95_seconds);
        fmt_seconds(p99, sizeof p99, s->p99_seconds);
        if (isnan(s->success_rate))
            snprintf(rate, sizeof rate, "-");
        else
            snprintf(rate, sizeof rate, "%.2f%%", s->success_rate * 100);
        printf("%-*s %10llu %8s %10s %10s %10s %10s  %s\n", (int)w, name,
               (unsigned long long)s->count, rate, avg, p50, p95, p99,
               !s->has_baseline ? "-"
               : s->anomaly     ? "YES"
                                : "no");
    }
    if (n == 0)
        printf("(no operations)\n");
}

static double num_or_nan(const sonde__json *obj, const char *key)
{
    const sonde__json *v = sonde__json_get(obj, key);
    return v && v->type == SONDE__JSON_NUMBER ? v->number : NAN;
}

/* The /performance document as stats. Returns the count or -1. */
static long from_json(const sonde__json *root, sonde_op_stats **out)
{
    const sonde__json *ops = sonde__json_get(root, "operations");
    if (!ops || ops->type != SONDE__JSON_ARRAY)
        return -1;
    sonde_op_stats *v = calloc(ops->count ? ops->count : 1, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < ops->count; i++) {
        const sonde__json *o = &ops->items[i];
        sonde_op_stats *s = &v[i];
        snprintf(s->operation, sizeof s->operation, "%s", sonde__json_get_str(o, "operation", "?"));
        s->window_minutes = (unsigned)sonde__json_get_num(o, "window_minutes", 0);
        s->from_unix = (int64_t)sonde__json_get_num(o, "from_unix", 0);
        s->to_unix = (int64_t)sonde__json_get_num(o, "to_unix", 0);
        s->count = (uint64_t)sonde__json_get_num(o, "count", 0);
        s->errors = (uint64_t)sonde__json_get_num(o, "errors", 0);
        s->success_rate = num_or_nan(o, "success_rate");
        const sonde__json *d = sonde__json_get(o, "duration_seconds");
        s->avg_seconds = num_or_nan(d, "avg");
        s->min_seconds = num_or_nan(d, "min");
        s->max_seconds = num_or_nan(d, "max");
        s->p50_seconds = num_or_nan(d, "p50");
        s->p90_seconds = num_or_nan(d, "p90");
        s->p95_seconds = num_or_nan(d, "p95");
        s->p99_seconds = num_or_nan(d, "p99");
        const sonde__json *b = sonde__json_get(o, "baseline");
        s->has_baseline = b && b->type == SONDE__JSON_OBJECT;
        const sonde__json *an = sonde__json_get(o, "anomaly");
        s->anomaly = an && an->type == SONDE__JSON_BOOL && an->boolean;
    }
    *out = v;
    return (long)ops->count;
}

static int from_url(const char *url, const char *key, double timeout, const char *op,
                    unsigned minutes, bool as_json)
{
    char *esc = NULL;
    if (op) {
        CURL *c = curl_easy_init();
        esc = c ? curl_easy_escape(c, op, 0) : NULL;
        if (c)
            curl_easy_cleanup(c);
        if (!esc) {
            fprintf(stderr, "sonde performance: out of memory\n");
            return EXIT_UNREACHABLE;
        }
    }
    size_t bl = strlen(url);
    while (bl && url[bl - 1] == '/')
        bl--;
    char full[4096];
    int fl = snprintf(full, sizeof full, "%.*s/performance?minutes=%u%s%s", (int)bl, url, minutes,
                      esc ? "&operation=" : "", esc ? esc : "");
    curl_free(esc);
    if (fl < 0 || (size_t)fl >= sizeof full) {
        fprintf(stderr, "sonde performance: URL too long\n");
        return EXIT_USAGE;
    }
    struct body b = {0};
    char err[CURL_ERROR_SIZE + 64];
    long status = http_get(full, key, timeout, &b, err, sizeof err);
    int rc = EXIT_UNREACHABLE;
    if (status < 0) {
        fprintf(stderr, "sonde performance: %s unreachable: %s\n", full, err);
        goto out;
    }
    if (status == 401 || status == 403) {
        fprintf(stderr, "sonde performance: %s answered %ld: %s\n", full, status,
                status == 401 ? "pass the API key with --api-key or $SONDE_API_KEY"
                              : "this endpoint answers loopback clients only without an API key");
        goto out;
    }
    if (status == 404 && op) {
        fprintf(stderr, "sonde performance: no operation \"%s\"\n", op);
        rc = 1;
        goto out;
    }
    if (status != 200) {
        fprintf(stderr, "sonde performance: %s answered %ld\n", full, status);
        rc = 1;
        goto out;
    }
    if (as_json) {
        fwrite(b.data, 1, b.len, stdout);
        rc = 0;
        goto out;
    }
    sonde__json *root = sonde__json_parse(b.data ? b.data : "", b.len, err, sizeof err);
    sonde_op_stats *v = NULL;
    long n = root ? from_json(root, &v) : -1;
    sonde__json_free(root);
    if (n < 0) {
        fprintf(stderr, "sonde performance: %s did not answer a performance report\n", full);
        goto out;
    }
    print_table(v, (size_t)n, minutes);
    free(v);
    rc = 0;
out:
    free(b.data);
    return rc;
}

static int from_store(const char *store, const char *op, unsigned minutes, bool as_json)
{
    sonde_op_stats *v = NULL;
    size_t n = 0;
    int rc = sonde_trace_read_store(store, op, minutes, &v, &n);
    if (rc != SONDE_OK) {
        fprintf(stderr, "sonde performance: %s: %s\n", store,
                sonde_last_error()[0] ? sonde_last_error() : sonde_strerror(rc));
        return rc == SONDE_EINVAL ? EXIT_USAGE : EXIT_UNREACHABLE;
    }
    if (op && n == 0) {
        fprintf(stderr, "sonde performance: no operation \"%s\" in the last %u minutes of %s\n", op,
                minutes, store);
        return 1;
    }
    if (as_json) {
        sonde_buf out;
        sonde_buf_init(&out);
        if (sonde_op_stats_write_json(v, n, minutes, &out) != SONDE_OK) {
            sonde_free(v);
            fprintf(stderr, "sonde performance: out of memory\n");
            return 1;
        }
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
        sonde_buf_free(&out);
    } else {
        print_table(v, n, minutes);
    }
    sonde_free(v);
    return 0;
}

static int parse_whole(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int cmd_performance(int argc, char **argv)
{
    const char *url = NULL, *store = NULL, *op = NULL;
    const char *key = getenv("SONDE_API_KEY");
    unsigned minutes = 24 * 60;
    bool as_json = false, have_window = false;
    double timeout = 10;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        unsigned long x;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(perf_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if ((m = cli_opt(argc, argv, &i, "--operation", &v))) {
            if (m < 0)
                goto missing;
            if (!*v || strlen(v) > SONDE_OP_NAME_MAX) {
                fprintf(stderr, "sonde performance: --operation must be 1 to %d bytes\n",
                        SONDE_OP_NAME_MAX);
                return EXIT_USAGE;
            }
            op = v;
        } else if ((m = cli_opt(argc, argv, &i, "--hours", &v))) {
            if (m < 0)
                goto missing;
            if (have_window || parse_whole(v, 400 * 24, &x) != 0) {
                fprintf(stderr, "sonde performance: --hours must be a whole number from 1 to "
                                "9600 (and not with --minutes)\n");
                return EXIT_USAGE;
            }
            minutes = (unsigned)x * 60;
            have_window = true;
        } else if ((m = cli_opt(argc, argv, &i, "--minutes", &v))) {
            if (m < 0)
                goto missing;
            if (have_window || parse_whole(v, 400 * 24 * 60, &x) != 0) {
                fprintf(stderr, "sonde performance: --minutes must be a whole number from 1 to "
                                "576000 (and not with --hours)\n");
                return EXIT_USAGE;
            }
            minutes = (unsigned)x;
            have_window = true;
        } else if ((m = cli_opt(argc, argv, &i, "--url", &v))) {
            if (m < 0)
                goto missing;
            url = v;
        } else if ((m = cli_opt(argc, argv, &i, "--store", &v))) {
            if (m < 0)
                goto missing;
            store = v;
        } else if ((m = cli_opt(argc, argv, &i, "--api-key", &v))) {
            if (m < 0)
                goto missing;
            key = v;
        } else if ((m = cli_opt(argc, argv, &i, "--timeout", &v))) {
            if (m < 0)
                goto missing;
            char *end;
            timeout = strtod(v, &end);
            if (end == v || *end || !(timeout > 0) || timeout > 3600) {
                fprintf(stderr, "sonde performance: --timeout must be seconds in (0, 3600]\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "sonde performance: unknown option %s\n\n%s", argv[i], perf_usage);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fprintf(stderr, "sonde performance: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
    }
    if (url && store) {
        fprintf(stderr, "sonde performance: give --url or --store, not both\n");
        return EXIT_USAGE;
    }
    if (!url && !store) {
        const char *env = getenv("SONDE_STORE");
        if (env && *env)
            store = env;
    }
    if (store)
        return from_store(store, op, minutes, as_json);
    if (!url) {
        url = getenv("SONDE_URL");
        if (!url || !*url)
            url = "http://127.0.0.1:9464";
    }
    return from_url(url, key, timeout, op, minutes, as_json);
}
