/*
 * The /performance query: operation=NAME and hours=N (or minutes=N), for
 * sonde__perf_query_parse (trace_int.h). Bounded, allocation-free, fuzzed
 * (fuzz/fuzz_perfquery.c).
 */
#include "trace_int.h"

#include "core/text.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_MINUTES (24 * 60)
#define MAX_MINUTES (400 * 24 * 60)

/* Decode a query component (percent escapes, '+' as space) into out (cap
 * bytes, NUL-terminated). Returns the length, or -1 on a bad escape, a NUL
 * byte or overflow. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    ssize_t len = cap ? sonde__pct_decode(s, n, out, cap - 1) : -1;
    if (len < 0)
        return -1;
    out[len] = '\0';
    return (int)len;
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
