/* Fuzz target: a stored row as Redis keeps it (row codec, then the sketch
 * it carries). */
#include "core/sketch.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sonde__op_row row;
    memset(&row, 0, sizeof row);
    if (sonde__row_decode(data, size, &row) != SONDE_OK)
        return 0;
    if (row.errors > row.count || row.sketch < data || row.sketch + row.sketch_len != data + size)
        abort();
    sonde__sketch sk;
    if (sonde__sketch_init(&sk, 0) != SONDE_OK)
        return 0;
    if (sonde__sketch_decode(&sk, row.sketch, row.sketch_len) == SONDE_OK && sk.count != row.count)
        abort();
    /* Round trip through the encoder. */
    sonde_buf buf = {0};
    row.op = "op";
    row.op_len = 2;
    if (sonde__row_encode(&row, &buf) == SONDE_OK) {
        sonde__op_row again;
        memset(&again, 0, sizeof again);
        if (sonde__row_decode((const uint8_t *)buf.data, buf.len, &again) != SONDE_OK ||
            again.minute != row.minute || again.errors != row.errors || again.id != row.id)
            abort();
    }
    sonde_buf_free(&buf);
    sonde__sketch_free(&sk);
    return 0;
}
