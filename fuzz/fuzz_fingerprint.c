/*
 * Fuzz target: the fingerprint normaliser and hash on arbitrary messages.
 * Checks the invariants the grouping relies on: the output never exceeds
 * its buffer, normalising is idempotent on what it produced (a normalised
 * message keeps its fingerprint when captured again), and the hash is
 * deterministic. Input: the message bytes.
 */
#include "errors/errors_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    char a[ERR_NORM_MAX + 8], b[ERR_NORM_MAX + 8];
    memset(a + ERR_NORM_MAX, 0x5a, 8);
    size_t na = sonde__err_normalize(msg, size, a, ERR_NORM_MAX);
    if (na > ERR_NORM_MAX)
        abort();
    for (int i = 0; i < 8; i++)
        if ((unsigned char)a[ERR_NORM_MAX + i] != 0x5a)
            abort();
    /* Placeholders contain no digits, so a second pass changes nothing,
     * unless the first output was cut at the buffer's end. */
    size_t nb = sonde__err_normalize(a, na, b, ERR_NORM_MAX);
    if (na < ERR_NORM_MAX - 8 && (nb != na || memcmp(a, b, na) != 0))
        abort();
    uint64_t h1 = sonde__err_fingerprint("T", 1, a, na, "f.c", 3, "fn", 2, 7);
    uint64_t h2 = sonde__err_fingerprint("T", 1, a, na, "/x/f.c", 6, "fn", 2, 7);
    if (h1 != h2)
        abort();
    (void)sonde__hash64(data, size, 42);
    /* Small output buffers never overflow either. */
    char tiny[5];
    if (sonde__err_normalize(msg, size, tiny, sizeof tiny) > sizeof tiny)
        abort();
    return 0;
}
