/*
 * The /errors and /alerts endpoints, and the small parsers they need: a
 * query parameter lookup, durations ("90s", "15m", "1h30m", "7d") and
 * "since" values (a duration ago, RFC 3339, or Unix seconds). The parsers
 * are bounded, allocation-free and fuzzed (fuzz/fuzz_errors_query.c).
 */
#include "errors/errors_query.h"

#include "http/server.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sonde__query_get(const char *q, size_t n, const char *name, char *out, size_t cap)
{
    if (!q || !name || !out || cap == 0)
        return SONDE_EINVAL;
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&' && q[end] != ';')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        if (eq - i == nl && memcmp(q + i, name, nl) == 0) {
            size_t len = 0;
            for (size_t k = eq < end ? eq + 1 : end; k < end; k++) {
                char c = q[k];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int h = k + 2 < end ? hexval(q[k + 1]) : -1;
                    int l = k + 2 < end ? hexval(q[k + 2]) : -1;
                    if (h < 0 || l < 0)
                        return SONDE_EPARSE;
                    c = (char)(h * 16 + l);
                    k += 2;
                }
                if (c == '\0')
                    return SONDE_EPARSE;
                if (len + 1 >= cap)
                    return SONDE_ETOOBIG;
                out[len++] = c;
            }
            out[len] = '\0';
            return (int)len;
        }
        i = end + 1;
    }
    return SONDE_ENOTFOUND;
}

int sonde__parse_duration(const char *s, double *out)
{
    if (!s || !out)
        return SONDE_EINVAL;
    double total = 0;
    const char *p = s;
    if (!*p)
        return SONDE_EPARSE;
    while (*p) {
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return SONDE_EPARSE;
        char *end = NULL;
        double v = sonde__strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return SONDE_EPARSE;
        p = end;
        double unit = 1;
        switch (*p) {
        case '\0':
            unit = 1;
            break;
        case 's':
            unit = 1, p++;
            break;
        case 'm':
            if (p[1] == 's')
                unit = 0.001, p += 2;
            else
                unit = 60, p++;
            break;
        case 'h':
            unit = 3600, p++;
            break;
        case 'd':
            unit = 86400, p++;
            break;
        case 'w':
            unit = 604800, p++;
            break;
        default:
            return SONDE_EPARSE;
        }
        total += v * unit;
        if (!isfinite(total) || total > 1e12)
            return SONDE_EPARSE;
    }
    *out = total;
    return SONDE_OK;
}

/* Days since the epoch of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

int sonde__parse_rfc3339(const char *s, double *out)
{
    int Y, M, D, h, m, sec;
    if (!s || strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) ||
        s[7] != '-' || !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return SONDE_EPARSE;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return SONDE_EPARSE;
    const char *p = s + 19;
    double frac = 0;
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return SONDE_EPARSE;
        while (*p >= '0' && *p <= '9') {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return SONDE_EPARSE;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SONDE_EPARSE;
    }
    if (*p)
        return SONDE_EPARSE;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    *out = (double)(days * 86400 + h * 3600 + m * 60 + sec - off) + frac;
    return SONDE_OK;
}

int sonde__parse_since(const char *s, double now, double *out)
{
    if (!s || !out)
        return SONDE_EINVAL;
    if (sonde__parse_rfc3339(s, out) == SONDE_OK)
        return SONDE_OK;
    double d;
    if (sonde__parse_duration(s, &d) != SONDE_OK)
        return SONDE_EPARSE;
    /* A bare number of at least 10^9 is a Unix time (2001 on), anything
     * else a duration before now. */
    bool bare = strspn(s, "0123456789.") == strlen(s);
    *out = bare && d >= 1e9 ? d : now - d;
    return SONDE_OK;
}

/* ---- handlers ---- */

static void json_error(sonde__http_response *rs, int status, const char *msg)
{
    rs->status = status;
    sonde_buf_reset(&rs->body);
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_putc(&rs->body, '}');
}

int sonde__errors_filter_from_query(const char *q, size_t n, double now, sonde_errors_filter *f,
                                    char *type, size_t type_cap, const char **why)
{
    char v[128];
    memset(f, 0, sizeof *f);
    int rc = sonde__query_get(q, n, "severity", v, sizeof v);
    if (rc >= 0) {
        int s = sonde_severity_parse(v);
        if (s < 0) {
            *why = "severity: want low, medium, high or critical";
            return SONDE_EINVAL;
        }
        f->min_severity = s;
    } else if (rc != SONDE_ENOTFOUND) {
        *why = "severity: bad value";
        return SONDE_EINVAL;
    }
    rc = sonde__query_get(q, n, "since", v, sizeof v);
    if (rc >= 0) {
        if (sonde__parse_since(v, now, &f->since) != SONDE_OK) {
            *why = "since: want a duration (90s, 15m, 1h, 7d), RFC 3339 or Unix seconds";
            return SONDE_EINVAL;
        }
    } else if (rc != SONDE_ENOTFOUND) {
        *why = "since: bad value";
        return SONDE_EINVAL;
    }
    rc = sonde__query_get(q, n, "type", type, type_cap);
    if (rc >= 0) {
        f->type = type;
    } else if (rc != SONDE_ENOTFOUND) {
        *why = "type: bad or too long value";
        return SONDE_EINVAL;
    }
    rc = sonde__query_get(q, n, "limit", v, sizeof v);
    if (rc >= 0) {
        char *end = NULL;
        double l = sonde__strtod(v, &end);
        if (end == v || *end || !(l >= 1 && l <= 100000) || l != floor(l)) {
            *why = "limit: want an integer from 1 to 100000";
            return SONDE_EINVAL;
        }
        f->limit = (size_t)l;
    } else if (rc != SONDE_ENOTFOUND) {
        *why = "limit: bad value";
        return SONDE_EINVAL;
    }
    return SONDE_OK;
}

static void h_errors(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    sonde_errors *t = ud;
    sonde_errors_filter f;
    char type[SONDE_ERROR_TYPE_MAX + 1];
    const char *why = NULL;
    if (sonde__errors_filter_from_query(rq->query, rq->query_len, sonde__errors_now(t), &f, type,
                                        sizeof type, &why) != SONDE_OK) {
        json_error(rs, 400, why);
        return;
    }
    int rc = sonde_errors_write_json(t, &f, &rs->body);
    if (rc)
        json_error(rs, 500, sonde_strerror(rc));
    rs->gzip_ok = true;
}

static void h_alerts(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    SONDE_UNUSED(rq);
    int rc = sonde_alerts_write_json(ud, &rs->body);
    if (rc)
        json_error(rs, 500, sonde_strerror(rc));
    rs->gzip_ok = true;
}

/* Which routes sonde_start registered here (a path someone else took is
 * theirs: left alone, and not removed at stop). Serialised by sonde_start
 * and sonde_stop. */
static bool own_errors, own_alerts;

int sonde__errors_routes_add(sonde_errors *t)
{
    unsigned fl = SONDE__ROUTE_SENSITIVE | SONDE__ROUTE_RATE_LIMITED;
    own_errors = sonde__http_route_add("/errors", "errors", fl, h_errors, t) == SONDE_OK;
    own_alerts = sonde__http_route_add("/alerts", "alerts", fl, h_alerts, t) == SONDE_OK;
    return SONDE_OK;
}

void sonde__errors_routes_remove(void)
{
    if (own_errors)
        sonde__http_route_remove("/errors");
    if (own_alerts)
        sonde__http_route_remove("/alerts");
    own_errors = own_alerts = false;
}
