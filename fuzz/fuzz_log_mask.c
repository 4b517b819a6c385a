/*
 * Fuzz target: credential masking of arbitrary values and keys.
 * Invariants (abort on violation): when nothing is masked the output is the
 * input; masking only ever replaces text with stars: with every '*'
 * removed, the output is a subsequence of the input (so it never adds or
 * reorders text), and the same holds when the masked text is masked again.
 * (Masking is not always idempotent: a second pass may mask more, for
 * example when a first masked value contained what ended a URL.)
 */
#include "log/log_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether out without '*' is a subsequence of in without '*'. */
static int only_stars_added(const char *in, size_t n, const char *out, size_t m)
{
    size_t i = 0;
    for (size_t j = 0; j < m; j++) {
        if (out[j] == '*')
            continue;
        while (i < n && (in[i] == '*' || in[i] != out[j]))
            i++;
        if (i == n)
            return 0;
        i++;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    sonde_buf a, b;
    sonde_buf_init(&a);
    sonde_buf_init(&b);
    int rc = sonde_log_mask(s, size, &a);
    if (rc < 0)
        goto out;
    if (rc == 0 && (a.len != size || (size && memcmp(a.data, s, size) != 0)))
        abort();
    if (!only_stars_added(s, size, a.data ? a.data : "", a.len))
        abort();
    int rc2 = sonde_log_mask(a.data ? a.data : "", a.len, &b);
    if (rc2 < 0)
        goto out;
    if (!only_stars_added(a.data ? a.data : "", a.len, b.data ? b.data : "", b.len))
        abort();
    sonde_log_mask_key_is_secret(s, size);
out:
    sonde_buf_free(&a);
    sonde_buf_free(&b);
    return 0;
}
