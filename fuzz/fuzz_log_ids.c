/*
 * Fuzz target: the parsers of incoming correlation IDs (W3C traceparent,
 * X-Request-ID) and of level specifications (SONDE_LOG_LEVEL syntax).
 * Input: traceparent, NUL, X-Request-ID, NUL, level spec.
 * Invariants (abort on violation): an accepted traceparent yields 32 and 16
 * lowercase hex digits, not all zero; the chosen correlation ID is always a
 * valid request ID; an accepted level spec only reports valid levels and
 * names without spaces or '='.
 */
#include "log/log_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int sonde__log_parse_levels(const char *spec, void (*fn)(void *, const char *, size_t, int),
                            void *ud);

static int lhex(const char *s, size_t n)
{
    int nz = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        nz |= s[i] != '0';
    }
    return nz;
}

static void check_item(void *ud, const char *name, size_t n, int level)
{
    (void)ud;
    if (level < SONDE_LOG_TRACE || level > SONDE_LOG_OFF)
        abort();
    if (name) {
        if (n == 0 || n > 127)
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)name[i] <= ' ' || name[i] == '=' || name[i] == ',')
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 3);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = s[size + 1] = s[size + 2] = '\0';
    const char *tp = s;
    const char *rid = tp + strlen(tp) + 1;
    if (rid > s + size)
        rid = s + size;
    const char *spec = rid + strlen(rid) + 1;
    if (spec > s + size + 1)
        spec = s + size + 1;

    char t[33], p[17];
    if (sonde_log_traceparent_parse(tp, strlen(tp), t, p) == SONDE_OK) {
        if (strlen(t) != 32 || strlen(p) != 16 || !lhex(t, 32) || !lhex(p, 16))
            abort();
    }
    /* Raw bytes, embedded NULs included, must never crash the parser. */
    sonde_log_traceparent_parse((const char *)data, size, NULL, NULL);
    sonde_log_request_id_valid((const char *)data, size);

    char out[SONDE_CORRELATION_ID_MAX + 1];
    int how = sonde_log_correlation_from_headers(tp, rid, out);
    if (how < 0 || how > 2 || !sonde_log_request_id_valid(out, strlen(out)))
        abort();
    if (how == 1 && strcmp(out, t) != 0)
        abort();

    sonde__log_parse_levels(spec, check_item, NULL);
    free(s);
    return 0;
}
