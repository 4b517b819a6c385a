/*
 * Small text helpers every component may use: query parameters and
 * percent-decoding, the duration and time grammars (shared by the HTTP
 * query parameters, the CLI and the agent's configuration), JSON time,
 * the exposition escapers and name rules, UTF-8 validation, varints and a
 * 64-bit hash. Bounded, allocation-free, total on any input.
 */
#include "core/text.h"

#include <sonde/metrics.h> /* sonde_escaping (see the exception in scripts/check_layers.py) */

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t sonde__pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return SONDE_EPARSE;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return SONDE_EPARSE;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0')
            return SONDE_EPARSE;
        if (o >= cap)
            return SONDE_ETOOBIG;
        out[o++] = c;
    }
    return (ssize_t)o;
}

int sonde__query_get(const char *q, size_t n, const char *name, char *out, size_t cap)
{
    if (!q || !name || !out || cap == 0)
        return SONDE_EINVAL;
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&' && q[end] != ';')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        if (eq - i == nl && memcmp(q + i, name, nl) == 0) {
            size_t from = eq < end ? eq + 1 : end;
            ssize_t len = sonde__pct_decode(q + from, end - from, out, cap - 1);
            if (len < 0)
                return (int)len;
            out[len] = '\0';
            return (int)len;
        }
        i = end + 1;
    }
    return SONDE_ENOTFOUND;
}

int sonde__parse_duration(const char *s, double *out)
{
    if (!s || !out)
        return SONDE_EINVAL;
    double total = 0;
    const char *p = s;
    if (!*p)
        return SONDE_EPARSE;
    while (*p) {
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return SONDE_EPARSE;
        char *end = NULL;
        double v = sonde__strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return SONDE_EPARSE;
        p = end;
        double unit = 1;
        switch (*p) {
        case '\0':
            unit = 1;
            break;
        case 's':
            unit = 1, p++;
            break;
        case 'm':
            if (p[1] == 's')
                unit = 0.001, p += 2;
            else
                unit = 60, p++;
            break;
        case 'h':
            unit = 3600, p++;
            break;
        case 'd':
            unit = 86400, p++;
            break;
        case 'w':
            unit = 604800, p++;
            break;
        default:
            return SONDE_EPARSE;
        }
        total += v * unit;
        if (!isfinite(total) || total > 1e12)
            return SONDE_EPARSE;
    }
    *out = total;
    return SONDE_OK;
}

/* Days since the epoch of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

int sonde__parse_rfc3339(const char *s, double *out)
{
    int Y, M, D, h, m, sec;
    if (!s || strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) ||
        s[7] != '-' || !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return SONDE_EPARSE;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return SONDE_EPARSE;
    const char *p = s + 19;
    double frac = 0;
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return SONDE_EPARSE;
        while (*p >= '0' && *p <= '9') {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return SONDE_EPARSE;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SONDE_EPARSE;
    }
    if (*p)
        return SONDE_EPARSE;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    *out = (double)(days * 86400 + h * 3600 + m * 60 + sec - off) + frac;
    return SONDE_OK;
}

int sonde__parse_since(const char *s, double now, double *out)
{
    if (!s || !out)
        return SONDE_EINVAL;
    if (sonde__parse_rfc3339(s, out) == SONDE_OK)
        return SONDE_OK;
    double d;
    if (sonde__parse_duration(s, &d) != SONDE_OK)
        return SONDE_EPARSE;
    /* A bare number of at least 10^9 is a Unix time (2001 on), anything
     * else a duration before now. */
    bool bare = strspn(s, "0123456789.") == strlen(s);
    *out = bare && d >= 1e9 ? d : now - d;
    return SONDE_OK;
}

/* ---- JSON time ---- */

int sonde__buf_rfc3339(sonde_buf *b, double wall)
{
    if (!isfinite(wall) || wall < 0)
        wall = 0;
    time_t secs = (time_t)wall;
    int ms = (int)((wall - (double)secs) * 1000.0);
    ms = ms < 0 ? 0 : ms > 999 ? 999 : ms;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char tmp[40];
    size_t n = strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    return sonde__buf_printf(b, "%.*s.%03dZ", (int)n, tmp, ms);
}

int sonde__buf_json_time(sonde_buf *b, double wall)
{
    int rc = sonde__buf_putc(b, '"');
    rc = rc ? rc : sonde__buf_rfc3339(b, wall);
    return rc ? rc : sonde__buf_putc(b, '"');
}

/* ---- exposition names and escaping ---- */

int sonde__valid_metric_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

int sonde__valid_label_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* One UTF-8 code point at s[0..n) (n > 0): its value, or -1 for an invalid
 * sequence (one byte is consumed then). *len receives the bytes used. */
static long utf8_decode(const unsigned char *s, size_t n, size_t *len)
{
    unsigned c = s[0];
    *len = 1;
    if (c < 0x80)
        return (long)c;
    size_t l;
    unsigned long min, v;
    if ((c & 0xe0) == 0xc0)
        l = 2, min = 0x80, v = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        l = 3, min = 0x800, v = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        l = 4, min = 0x10000, v = c & 0x07;
    else
        return -1;
    if (l > n)
        return -1;
    for (size_t k = 1; k < l; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *len = l;
    return (long)v;
}

int sonde__legacy_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

int sonde__buf_name_escape(sonde_buf *b, const char *str, size_t n, int scheme)
{
    /* Names that are already valid are written as they are (except for the
     * dots scheme, which doubles underscores: callers only escape names
     * that need it, as the Go client does). */
    if (scheme == SONDE_ESCAPING_ALLOW_UTF8 ||
        (scheme != SONDE_ESCAPING_DOTS && sonde__legacy_name(str, n)))
        return sonde__buf_append(b, str, n);
    const unsigned char *s = (const unsigned char *)str;
    int rc = SONDE_OK;
    if (scheme == SONDE_ESCAPING_VALUES)
        rc = sonde__buf_append(b, "U__", 3);
    for (size_t i = 0; i < n && rc == SONDE_OK;) {
        size_t len;
        long cp = utf8_decode(s + i, n - i, &len);
        int legacy = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == ':' ||
                     (i && cp >= '0' && cp <= '9');
        if (cp == '_') {
            rc = scheme == SONDE_ESCAPING_UNDERSCORES ? sonde__buf_putc(b, '_')
                                                      : sonde__buf_append(b, "__", 2);
        } else if (legacy) {
            rc = sonde__buf_putc(b, (char)cp);
        } else if (scheme == SONDE_ESCAPING_UNDERSCORES) {
            rc = sonde__buf_putc(b, '_');
        } else if (scheme == SONDE_ESCAPING_DOTS) {
            rc = cp == '.' ? sonde__buf_append(b, "_dot_", 5) : sonde__buf_append(b, "__", 2);
        } else if (cp < 0) {
            rc = sonde__buf_append(b, "_FFFD_", 6);
        } else {
            char hex[16];
            int hl = snprintf(hex, sizeof hex, "_%lx_", (unsigned long)cp);
            rc = sonde__buf_append(b, hex, (size_t)hl);
        }
        i += len;
    }
    return rc;
}

int sonde__valid_utf8_name(const char *s)
{
    return s && *s && sonde__utf8_ok(s, strlen(s));
}

/* Text-format escaping. quote: also escape '"' (label values; OpenMetrics
 * help). Invalid UTF-8 becomes U+FFFD, so the output is always valid UTF-8
 * and no value can end a line or a quoted string early. */
int sonde__buf_text_escape(sonde_buf *b, const char *str, size_t n, int quote)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n > ((size_t)-1) / 4)
        return SONDE_ETOOBIG;
    int rc = sonde__buf_reserve(b, n * 3);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '\\') {
            *o++ = '\\';
            *o++ = '\\';
            i++;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
            i++;
        } else if (c == '"' && quote) {
            *o++ = '\\';
            *o++ = '"';
            i++;
        } else if (c < 0x80) {
            *o++ = (char)c;
            i++;
        } else {
            size_t l = sonde__utf8_seq_len(s + i, n - i);
            if (l == 0) {
                *o++ = (char)0xEF;
                *o++ = (char)0xBF;
                *o++ = (char)0xBD;
                i++;
            } else {
                memcpy(o, s + i, l);
                o += l;
                i += l;
            }
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return SONDE_OK;
}

int sonde__buf_label_escape(sonde_buf *b, const char *s, size_t n)
{
    return sonde__buf_text_escape(b, s, n, 1);
}

/* ---- UTF-8 ---- */

bool sonde__utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min;
        if ((c & 0xe0) == 0xc0)
            len = 2, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0)
            len = 3, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0)
            len = 4, min = 0x10000, c &= 0x07;
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* ---- varints (unsigned LEB128) ---- */

size_t sonde__put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t sonde__get_varint(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        uint64_t b = p[i] & 0x7f;
        if (i == 9 && b > 1)
            return 0;
        v |= b << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* ---- hashing ----
 * A 64-bit hash over 8-byte words: each word is mixed with two
 * multiplications, the tail is read byte by byte, and the murmur3
 * finaliser spreads the result. Not cryptographic; fingerprints only need
 * to be stable and well spread. */
static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

uint64_t sonde__hash64_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t sonde__hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        w *= 0x87c37b91114253d5ULL;
        w = rotl(w, 31);
        w *= 0x4cf5ad432745937fULL;
        h ^= w;
        h = rotl(h, 27) * 5 + 0x52dce729;
        b += 8;
        n -= 8;
    }
    uint64_t t = 0;
    for (size_t k = 0; k < n; k++)
        t |= (uint64_t)b[k] << (8 * k);
    h ^= t * 0x87c37b91114253d5ULL;
    return sonde__hash64_mix(h);
}
