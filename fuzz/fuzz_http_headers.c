/*
 * Fuzz target: the request-header parsers of the server. Input: an Accept
 * value, NUL, an Accept-Encoding value, NUL, an Authorization value. They
 * read only the bytes given and must accept any input.
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *z1 = memchr(s, '\0', size);
    size_t n1 = z1 ? (size_t)(z1 - s) : size;
    const char *rest = z1 ? z1 + 1 : s + size;
    size_t rl = size - (size_t)(rest - s);
    const char *z2 = memchr(rest, '\0', rl);
    size_t n2 = z2 ? (size_t)(z2 - rest) : rl;
    const char *auth = z2 ? z2 + 1 : rest + rl;
    size_t n3 = size - (size_t)(auth - s);

    sonde_escaping esc;
    sonde_format f = sonde_format_negotiate(s, n1, &esc);
    if ((unsigned)f > SONDE_FORMAT_OPENMETRICS_0_0_1 || f == SONDE_FORMAT_JSON ||
        (unsigned)esc > SONDE_ESCAPING_ALLOW_UTF8)
        abort();
    (void)sonde__http_accepts_gzip(rest, n2);
    unsigned char out[512];
    ssize_t d = sonde__base64_decode(auth, n3, out, sizeof out);
    if (d > (ssize_t)sizeof out)
        abort();
    (void)sonde__ct_equal(auth, n3, "secret", 6);
    char host[64];
    int port = 0;
    char *lis = malloc(n1 + 1);
    if (lis) {
        memcpy(lis, s, n1);
        lis[n1] = '\0';
        if (sonde__parse_listen(lis, host, sizeof host, &port) == SONDE_OK &&
            (port < 0 || port > 65535 || strlen(host) >= sizeof host))
            abort();
        (void)sonde__key_is_secret(lis);
        free(lis);
    }
    return 0;
}
