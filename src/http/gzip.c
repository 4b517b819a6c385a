/* gzip encoding of response bodies (zlib, one shot). */
#include "http/http.h"

#include <string.h>
#include <zlib.h>

int sonde__gzip(const void *in, size_t n, int level, sonde_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: gzip wrapper; memLevel 8 is zlib's default. */
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return SONDE_ENOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    int rc = sonde__buf_reserve(out, (size_t)bound);
    if (rc) {
        deflateEnd(&z);
        return rc;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)(out->data + out->len);
    z.avail_out = (uInt)bound;
    int zr = deflate(&z, Z_FINISH);
    size_t produced = (size_t)bound - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END)
        return SONDE_EIO;
    out->len += produced;
    out->data[out->len] = '\0';
    return SONDE_OK;
}
