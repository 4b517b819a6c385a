/*
 * Fuzz target: the query-string parsers (/metrics name[] filters, and the
 * name/value pairs of application routes). It must
 * stay within the caller's arrays and return names that are NUL-terminated
 * inside the scratch buffer.
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char scratch[256];
    const char *names[8];
    int n = sonde__http_query_names((const char *)data, size, scratch, sizeof scratch, names, 8);
    if (n > 8)
        abort();
    for (int i = 0; i < n; i++) {
        if (names[i] < scratch || names[i] >= scratch + sizeof scratch)
            abort();
        size_t left = (size_t)(scratch + sizeof scratch - names[i]);
        if (!memchr(names[i], '\0', left))
            abort();
    }
    if (n < 0 && n != SONDE_ELIMIT && n != SONDE_ETOOBIG && n != SONDE_EPARSE)
        abort();
    /* The application routes' name/value parser: same guarantees. */
    const char *pairs[16];
    n = sonde__http_query_pairs((const char *)data, size, scratch, sizeof scratch, pairs, 8);
    if (n > 8)
        abort();
    for (int i = 0; i < 2 * n; i++) {
        if (pairs[i] < scratch || pairs[i] >= scratch + sizeof scratch)
            abort();
        size_t left = (size_t)(scratch + sizeof scratch - pairs[i]);
        if (!memchr(pairs[i], '\0', left))
            abort();
    }
    if (n < 0 && n != SONDE_ELIMIT && n != SONDE_ETOOBIG && n != SONDE_EPARSE)
        abort();
    return 0;
}
