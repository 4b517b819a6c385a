/*
 * Fuzz target: Retry-After header values (the remote writer reads them from
 * any receiver) and Pushgateway grouping keys. Input: the header value; the
 * same bytes are also used as a job name and a grouping value, whose path
 * must stay inside its buffer and contain no raw '/' inside a value.
 */
#include "export/export_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double s = -1;
    if (sonde__parse_retry_after((const char *)data, size, 1700000000, &s) == 0 &&
        (!(s >= 0) || !isfinite(s)))
        abort();
    char *v = malloc(size + 1);
    if (!v)
        return 0;
    memcpy(v, data, size);
    v[size] = '\0';
    const char *g[] = {"instance", v};
    char out[4096];
    int n = sonde_push_path(*v ? v : "job", g, 1, out, sizeof out);
    if (n >= 0) {
        if ((size_t)n >= sizeof out || strlen(out) != (size_t)n)
            abort();
        /* Segments: metrics, job(@base64), value, instance(@base64), value. */
        size_t slashes = 0;
        for (int i = 0; i < n; i++)
            slashes += out[i] == '/';
        if (slashes != 5)
            abort();
    }
    free(v);
    return 0;
}
