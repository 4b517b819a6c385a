/*
 * Fuzz target: the /errors query string and the parsers behind it
 * (parameters with percent-decoding, durations, RFC 3339, "since"), which
 * read untrusted input from HTTP clients and the command line. Input: a
 * query string; also fed whole to the value parsers.
 */
#include "errors/errors_query.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *q = (const char *)data;
    sonde_errors_filter f;
    char type[SONDE_ERROR_TYPE_MAX + 1];
    const char *why = NULL;
    int rc = sonde__errors_filter_from_query(q, size, 1700000000.0, &f, type, sizeof type, &why);
    if (rc == SONDE_OK && f.type && strlen(f.type) >= sizeof type)
        abort();
    if (rc != SONDE_OK && !why)
        abort();
    char v[16];
    int n = sonde__query_get(q, size, "a", v, sizeof v);
    if (n >= (int)sizeof v)
        abort();
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    double d;
    if (sonde__parse_duration(s, &d) == SONDE_OK && !(d >= 0))
        abort();
    (void)sonde__parse_rfc3339(s, &d);
    (void)sonde__parse_since(s, 1700000000.0, &d);
    free(s);
    return 0;
}
