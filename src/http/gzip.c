/* gzip encoding of response bodies: libdeflate, one shot, with one
 * compressor per thread and level kept for the thread's life (allocating a
 * compressor costs more than compressing a small body). */
#include "http/http.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct gzip_tls {
    struct libdeflate_compressor *c;
    int level;
} gzip_tls;

static pthread_key_t gzip_key;
static pthread_once_t gzip_once = PTHREAD_ONCE_INIT;
static int gzip_key_ok;

static void gzip_tls_free(void *p)
{
    gzip_tls *t = p;
    libdeflate_free_compressor(t->c);
    free(t);
}

static void gzip_key_init(void)
{
    gzip_key_ok = pthread_key_create(&gzip_key, gzip_tls_free) == 0;
}

/* The calling thread's compressor at level, or NULL when out of memory. */
static struct libdeflate_compressor *compressor(int level)
{
    pthread_once(&gzip_once, gzip_key_init);
    if (!gzip_key_ok)
        return NULL;
    gzip_tls *t = pthread_getspecific(gzip_key);
    if (t && t->level == level)
        return t->c;
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c)
        return NULL;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || pthread_setspecific(gzip_key, t) != 0) {
            free(t);
            libdeflate_free_compressor(c);
            return NULL;
        }
    } else {
        libdeflate_free_compressor(t->c);
    }
    t->c = c;
    t->level = level;
    return c;
}

int sonde__gzip(const void *in, size_t n, int level, sonde_buf *out)
{
    if (level < 1)
        level = 1;
    else if (level > 12)
        level = 12;
    struct libdeflate_compressor *c = compressor(level);
    if (!c)
        return SONDE_ENOMEM;
    size_t bound = libdeflate_gzip_compress_bound(c, n);
    int rc = sonde__buf_reserve(out, bound);
    if (rc)
        return rc;
    size_t produced = libdeflate_gzip_compress(c, in, n, out->data + out->len, bound);
    if (produced == 0)
        return SONDE_EIO;
    out->len += produced;
    out->data[out->len] = '\0';
    return SONDE_OK;
}
