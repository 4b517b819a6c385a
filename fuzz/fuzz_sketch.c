/* Fuzz target: the sketch decoder (rows read back from a store). A decode
 * that succeeds must leave a coherent sketch that re-encodes and decodes to
 * the same figures. */
#include "core/internal.h"
#include "core/sketch.h"

#include <math.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sonde__sketch a, b;
    if (sonde__sketch_init(&a, 0) != SONDE_OK)
        return 0;
    if (sonde__sketch_init(&b, 64) != SONDE_OK) {
        sonde__sketch_free(&a);
        return 0;
    }
    if (sonde__sketch_decode(&a, data, size) == SONDE_OK) {
        if (a.count != a.zero + a.npos)
            abort();
        for (int k = 0; k <= 10; k++)
            (void)sonde__sketch_quantile(&a, k / 10.0);
        sonde_buf buf = {0};
        if (sonde__sketch_encode(&a, &buf) == SONDE_OK) {
            sonde__sketch c;
            if (sonde__sketch_init(&c, 0) == SONDE_OK) {
                if (sonde__sketch_decode(&c, buf.data, buf.len) != SONDE_OK || c.count != a.count)
                    abort();
                sonde__sketch_free(&c);
            }
        }
        sonde_buf_free(&buf);
    }
    /* A small destination collapses bins: still coherent. */
    if (sonde__sketch_decode(&b, data, size) == SONDE_OK && b.count != b.zero + b.npos)
        abort();
    sonde__sketch_free(&a);
    sonde__sketch_free(&b);
    return 0;
}
