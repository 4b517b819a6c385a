/* Store addresses: see sonde__store_spec_parse in store.h. */
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *msg, const char *s)
{
    if (err && errlen)
        snprintf(err, errlen, "store address \"%.200s\": %s", s, msg);
    return SONDE_EINVAL;
}

/* Decimal integer in [lo, hi] from p[0..n). */
static int parse_int(const char *p, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Undo %XX escapes in place (userinfo may carry reserved characters). */
static int unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%') {
            int hi, lo;
            char c1 = r[1], c2 = c1 ? r[2] : 0;
            hi = (c1 >= '0' && c1 <= '9')   ? c1 - '0'
                 : (c1 >= 'a' && c1 <= 'f') ? c1 - 'a' + 10
                 : (c1 >= 'A' && c1 <= 'F') ? c1 - 'A' + 10
                                            : -1;
            lo = (c2 >= '0' && c2 <= '9')   ? c2 - '0'
                 : (c2 >= 'a' && c2 <= 'f') ? c2 - 'a' + 10
                 : (c2 >= 'A' && c2 <= 'F') ? c2 - 'A' + 10
                                            : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

static int parse_redis(const char *s, const char *rest, sonde__store_spec *out, char *err,
                       size_t errlen)
{
    out->kind = SONDE__STORE_REDIS;
    out->port = 6379;
    out->db = 0;
    const char *end = rest + strlen(rest);
    const char *slash = strchr(rest, '/');
    const char *hostpart_end = slash ? slash : end;
    /* Query strings and fragments are not supported: refuse, do not guess. */
    if (strpbrk(rest, "?#"))
        return fail(err, errlen, "query or fragment not supported", s);
    const char *at = NULL;
    for (const char *p = rest; p < hostpart_end; p++)
        if (*p == '@')
            at = p;
    const char *host = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) {
            if (colon > rest)
                out->user = sonde__strndup(rest, (size_t)(colon - rest));
            out->password = sonde__strndup(colon + 1, (size_t)(at - colon - 1));
            if (!out->password || (colon > rest && !out->user))
                return SONDE_ENOMEM;
        } else {
            /* redis://secret@host: the lone userinfo is the password. */
            out->password = sonde__strndup(rest, (size_t)(at - rest));
            if (!out->password)
                return SONDE_ENOMEM;
        }
        if ((out->user && unescape(out->user) != 0) ||
            (out->password && unescape(out->password) != 0))
            return fail(err, errlen, "bad %-escape in credentials", s);
        host = at + 1;
    }
    const char *host_end = hostpart_end;
    const char *port = NULL;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(hostpart_end - host));
        if (!close)
            return fail(err, errlen, "unclosed [ in host", s);
        out->host = sonde__strndup(host + 1, (size_t)(close - host - 1));
        if (close + 1 < hostpart_end) {
            if (close[1] != ':')
                return fail(err, errlen, "junk after ]", s);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(hostpart_end - host));
        if (colon) {
            host_end = colon;
            port = colon + 1;
        }
        out->host = sonde__strndup(host, (size_t)(host_end - host));
    }
    if (!out->host)
        return SONDE_ENOMEM;
    if (!out->host[0]) {
        sonde__free(out->host);
        out->host = sonde__strdup("127.0.0.1");
        if (!out->host)
            return SONDE_ENOMEM;
    }
    if (port && parse_int(port, (size_t)(hostpart_end - port), 1, 65535, &out->port) != 0)
        return fail(err, errlen, "port must be 1..65535", s);
    if (slash && slash + 1 < end &&
        parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &out->db) != 0)
        return fail(err, errlen, "database must be a number", s);
    return SONDE_OK;
}

int sonde__store_spec_parse(const char *s, sonde__store_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!s)
        return fail(err, errlen, "empty", "");
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return fail(err, errlen, "empty", s);
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "none") == 0) {
        out->kind = SONDE__STORE_OFF;
        return SONDE_OK;
    }
    if (strncasecmp(s, "redis://", 8) == 0)
        return parse_redis(s, s + 8, out, err, errlen);
    if (strncasecmp(s, "valkey://", 9) == 0)
        return parse_redis(s, s + 9, out, err, errlen);
    if (strstr(s, "://") && strncasecmp(s, "sqlite:", 7) != 0)
        return fail(err, errlen, "unknown scheme (sqlite:, redis://, valkey://)", s);
    const char *path = s;
    if (strncasecmp(s, "sqlite://", 9) == 0)
        path = s + 9;
    else if (strncasecmp(s, "sqlite:", 7) == 0)
        path = s + 7;
    if (!*path)
        return fail(err, errlen, "missing path", s);
    out->kind = SONDE__STORE_SQLITE;
    out->path = sonde__strdup(path);
    return out->path ? SONDE_OK : SONDE_ENOMEM;
}

void sonde__store_spec_free(sonde__store_spec *s)
{
    if (!s)
        return;
    sonde__free(s->path);
    sonde__free(s->host);
    sonde__free(s->user);
    sonde__free(s->password);
    sonde__free(s->prefix);
    memset(s, 0, sizeof *s);
}
