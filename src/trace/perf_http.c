/*
 * GET /performance?operation=NAME&hours=N (or &minutes=N): the figures of
 * one operation, or of every operation, as JSON (sonde_op_stats_write_json).
 * Sensitive (the bearer key, or loopback clients without one) and rate
 * limited, like the server's other JSON views. Registered with the HTTP
 * server when this file is linked (any program that traces operations).
 */
#include "trace_int.h"

#include "http/server.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_MINUTES (24 * 60)
#define MAX_MINUTES (400 * 24 * 60)

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

/* Decode a query component (percent escapes, '+' as space) into out (cap
 * bytes, NUL-terminated). Returns the length, or -1 on a bad escape, a NUL
 * byte or overflow. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
    if (!*s)
        return -1;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    if (v == 0)
        return -1;
    *out = v;
    return 0;
}

int sonde__perf_query_parse(const char *q, size_t n, sonde__perf_query *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->minutes = DEFAULT_MINUTES;
    int have_hours = 0, have_minutes = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        const char *eq = memchr(q + i, '=', j - i);
        const char *vs = eq ? eq + 1 : q + j;
        size_t kl = (size_t)((eq ? eq : q + j) - (q + i));
        char key[32], val[SONDE_OP_NAME_MAX * 3 + 1];
        if (kl == 0) {
            i = j + 1;
            continue;
        }
        if (decode(q + i, kl, key, sizeof key) < 0 ||
            decode(vs, (size_t)(q + j - vs), val, sizeof val) < 0) {
            snprintf(err, errlen, "bad query parameter encoding");
            return SONDE_EINVAL;
        }
        if (strcmp(key, "operation") == 0) {
            size_t vl = strlen(val);
            if (vl == 0 || vl > SONDE_OP_NAME_MAX) {
                snprintf(err, errlen, "operation must be 1 to %d bytes", SONDE_OP_NAME_MAX);
                return SONDE_EINVAL;
            }
            memcpy(out->operation, val, vl + 1);
            out->has_operation = 1;
        } else if (strcmp(key, "hours") == 0) {
            unsigned long h;
            if (parse_count(val, MAX_MINUTES / 60, &h) != 0) {
                snprintf(err, errlen, "hours must be a whole number from 1 to %d",
                         MAX_MINUTES / 60);
                return SONDE_EINVAL;
            }
            out->minutes = (unsigned)h * 60;
            have_hours = 1;
        } else if (strcmp(key, "minutes") == 0) {
            unsigned long m;
            if (parse_count(val, MAX_MINUTES, &m) != 0) {
                snprintf(err, errlen, "minutes must be a whole number from 1 to %d", MAX_MINUTES);
                return SONDE_EINVAL;
            }
            out->minutes = (unsigned)m;
            have_minutes = 1;
        }
        /* Unknown parameters are ignored, as HTTP APIs usually do. */
        i = j + 1;
    }
    if (have_hours && have_minutes) {
        snprintf(err, errlen, "give hours or minutes, not both");
        return SONDE_EINVAL;
    }
    return SONDE_OK;
}

static void json_error(sonde__http_response *rs, int status, const char *msg)
{
    rs->status = status;
    sonde_buf_reset(&rs->body);
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_puts(&rs->body, "}\n");
}

static void handle(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    (void)ud;
    sonde__perf_query q;
    char err[160];
    if (sonde__perf_query_parse(rq->query, rq->query_len, &q, err, sizeof err) != SONDE_OK) {
        json_error(rs, 400, err);
        return;
    }
    int rc;
    if (sonde_enabled() && !sonde__trace_peek()) {
        /* Nothing traced in this process: answer without creating the
         * tracer (and its metric families) from a web request. */
        if (q.has_operation) {
            json_error(rs, 404, "no such operation");
            return;
        }
        rc = sonde_op_stats_write_json(NULL, 0, q.minutes, &rs->body);
    } else if (q.has_operation) {
        sonde_op_stats st;
        rc = sonde_trace_get_stats(q.operation, q.minutes, &st);
        if (rc == SONDE_ENOTFOUND) {
            json_error(rs, 404, "no such operation");
            return;
        }
        if (rc == SONDE_OK)
            rc = sonde_op_stats_write_json(&st, 1, q.minutes, &rs->body);
    } else {
        sonde_op_stats *v = NULL;
        size_t n = 0;
        rc = sonde_trace_list_stats(q.minutes, &v, &n);
        if (rc == SONDE_OK)
            rc = sonde_op_stats_write_json(v, n, q.minutes, &rs->body);
        sonde_free(v);
    }
    if (rc == SONDE_EDISABLED) {
        json_error(rs, 503, "sonde is disabled");
        return;
    }
    if (rc != SONDE_OK) {
        json_error(rs, 500, sonde_strerror(rc));
        return;
    }
    sonde__buf_putc(&rs->body, '\n');
    rs->gzip_ok = true;
}

void sonde__trace_http_register(void)
{
    /* SONDE_ECONFLICT when registered already: fine. */
    sonde__http_route_add("/performance", "performance",
                          SONDE__ROUTE_SENSITIVE | SONDE__ROUTE_RATE_LIMITED, handle, NULL);
}
