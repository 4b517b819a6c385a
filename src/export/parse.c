/*
 * Small parsers and encoders of the exporters: the Retry-After header
 * (RFC 9110 section 10.2.3) and base64url for Pushgateway grouping keys.
 * Bounded, allocation-free; fuzzed by fuzz/fuzz_retry_after.c.
 */
#include "export/export_int.h"

#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int month_index(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (memcmp(names + 3 * i, s, 3) == 0)
            return i + 1;
    return 0;
}

/* A cursor over the header value. */
typedef struct cur {
    const char *p, *end;
} cur;

static int num(cur *c, int min_digits, int max_digits, int64_t *out)
{
    int n = 0;
    int64_t v = 0;
    while (c->p < c->end && is_digit(*c->p) && n < max_digits) {
        v = v * 10 + (*c->p - '0');
        c->p++;
        n++;
    }
    if (n < min_digits)
        return -1;
    *out = v;
    return 0;
}

static int lit(cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 0;
    }
    return -1;
}

static void spaces(cur *c)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
}

static int month(cur *c, int64_t *m)
{
    if (c->end - c->p < 3)
        return -1;
    int v = month_index(c->p);
    if (!v)
        return -1;
    c->p += 3;
    *m = v;
    return 0;
}

static int hms(cur *c, int64_t *h, int64_t *mi, int64_t *s)
{
    return (num(c, 2, 2, h) || lit(c, ':') || num(c, 2, 2, mi) || lit(c, ':') || num(c, 2, 2, s))
               ? -1
               : 0;
}

int sonde__parse_retry_after(const char *s, size_t n, int64_t now, double *seconds)
{
    cur c = {s, s + n};
    /* Optional whitespace around the value. */
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))
        c.p++;
    while (c.end > c.p &&
           (c.end[-1] == ' ' || c.end[-1] == '\t' || c.end[-1] == '\r' || c.end[-1] == '\n'))
        c.end--;
    if (c.p == c.end)
        return -1;
    if (is_digit(*c.p)) {
        /* delta-seconds: 1*DIGIT; huge values saturate. */
        double v = 0;
        while (c.p < c.end && is_digit(*c.p)) {
            if (v < 1e12)
                v = v * 10 + (*c.p - '0');
            c.p++;
        }
        if (c.p != c.end)
            return -1;
        *seconds = v;
        return 0;
    }
    /* HTTP-date: skip the day name up to ',' or ' '. */
    const char *q = c.p;
    while (q < c.end && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
        q++;
    if (q == c.p || q == c.end)
        return -1;
    c.p = q;
    int64_t day, mon, year, h, mi, sec;
    if (*c.p == ',') {
        c.p++;
        spaces(&c);
        if (c.end - c.p >= 3 && is_digit(c.p[0]) && is_digit(c.p[1]) && c.p[2] == '-') {
            /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
            if (num(&c, 2, 2, &day) || lit(&c, '-') || month(&c, &mon) || lit(&c, '-') ||
                num(&c, 2, 2, &year))
                return -1;
            year += year < 70 ? 2000 : 1900;
        } else {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (num(&c, 1, 2, &day) || lit(&c, ' ') || month(&c, &mon) || lit(&c, ' ') ||
                num(&c, 4, 4, &year))
                return -1;
        }
        if (lit(&c, ' ') || hms(&c, &h, &mi, &sec))
            return -1;
        spaces(&c);
        if (c.end - c.p != 3 || memcmp(c.p, "GMT", 3) != 0)
            return -1;
    } else {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        spaces(&c);
        if (month(&c, &mon))
            return -1;
        spaces(&c);
        if (num(&c, 1, 2, &day) || lit(&c, ' ') || hms(&c, &h, &mi, &sec) || lit(&c, ' ') ||
            num(&c, 4, 4, &year) || c.p != c.end)
            return -1;
    }
    if (day < 1 || day > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    int64_t t =
        days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + h * 3600 + mi * 60 + sec;
    *seconds = t > now ? (double)(t - now) : 0;
    return 0;
}

size_t sonde__base64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
