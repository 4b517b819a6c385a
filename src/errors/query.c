/*
 * The /errors query filter (errors_query.h): severity, since, type and
 * limit parameters. Bounded, allocation-free, fuzzed
 * (fuzz/fuzz_errors_query.c).
 */
#include "errors/errors_query.h"

#include <math.h>
#include <string.h>

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
