/* Row codec for backends that store a row as one value (Redis members);
 * see store.h for the format. */
#include "store.h"

#include <math.h>
#include <string.h>

#include "core/sketch.h"
#include "core/text.h"

#define ROW_VERSION 1

int sonde__row_encode(const sonde__op_row *row, sonde_buf *out)
{
    int rc = sonde__buf_reserve(out, 1 + 30 + row->sketch_len);
    if (rc != SONDE_OK)
        return rc;
    uint8_t *p = (uint8_t *)out->data + out->len;
    size_t n = 0;
    p[n++] = ROW_VERSION;
    uint64_t zz =
        row->minute < 0 ? ((uint64_t)(-(row->minute + 1)) << 1) | 1 : (uint64_t)row->minute << 1;
    n += sonde__put_varint(p + n, zz);
    n += sonde__put_varint(p + n, row->errors);
    n += sonde__put_varint(p + n, row->id);
    memcpy(p + n, row->sketch, row->sketch_len);
    n += row->sketch_len;
    out->len += n;
    out->data[out->len] = '\0';
    return SONDE_OK;
}

static double get_f64(const uint8_t *p)
{
    uint64_t b = 0;
    for (int i = 0; i < 8; i++)
        b |= (uint64_t)p[i] << (8 * i);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

int sonde__row_fill_summary(sonde__op_row *row)
{
    const uint8_t *p = row->sketch;
    size_t n = row->sketch_len, at = 1, r;
    uint64_t count, zero;
    if (!p || n < 1 || p[0] != SONDE_SKETCH_CODEC_VERSION)
        return SONDE_EPARSE;
    if (!(r = sonde__get_varint(p + at, n - at, &count)))
        return SONDE_EPARSE;
    at += r;
    if (!(r = sonde__get_varint(p + at, n - at, &zero)))
        return SONDE_EPARSE;
    at += r;
    if (n - at < 24 || zero > count || row->errors > count)
        return SONDE_EPARSE;
    row->count = count;
    row->sum = get_f64(p + at);
    row->min = get_f64(p + at + 8);
    row->max = get_f64(p + at + 16);
    if (isnan(row->sum) || isnan(row->min) || isnan(row->max))
        return SONDE_EPARSE;
    return SONDE_OK;
}

int sonde__row_decode(const uint8_t *p, size_t n, sonde__op_row *row)
{
    size_t at = 1, r;
    uint64_t zz, errors, id;
    if (!p || n < 1 || p[0] != ROW_VERSION)
        return SONDE_EPARSE;
    if (!(r = sonde__get_varint(p + at, n - at, &zz)))
        return SONDE_EPARSE;
    at += r;
    if (!(r = sonde__get_varint(p + at, n - at, &errors)))
        return SONDE_EPARSE;
    at += r;
    if (!(r = sonde__get_varint(p + at, n - at, &id)))
        return SONDE_EPARSE;
    at += r;
    /* Minutes fit comfortably in 62 bits; refuse what would overflow. */
    if (zz >> 62)
        return SONDE_EPARSE;
    row->minute = (zz & 1) ? -(int64_t)(zz >> 1) - 1 : (int64_t)(zz >> 1);
    row->errors = errors;
    row->id = id;
    row->sketch = p + at;
    row->sketch_len = n - at;
    return sonde__row_fill_summary(row);
}
