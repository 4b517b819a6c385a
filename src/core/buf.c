/* The growable output buffer, JSON string escaping and number formatting. */
#include "internal.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_DEFAULT_MAX ((size_t)1 << 30)

void sonde_buf_init(sonde_buf *b)
{
    memset(b, 0, sizeof *b);
}

void sonde_buf_free(sonde_buf *b)
{
    if (!b)
        return;
    sonde__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sonde_buf_reset(sonde_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int sonde__buf_reserve(sonde_buf *b, size_t n)
{
    size_t max = b->max ? b->max : BUF_DEFAULT_MAX;
    if (n > max || b->len > max - n)
        return SONDE_ETOOBIG;
    size_t need = b->len + n + 1; /* room for the terminating NUL */
    if (need <= b->cap)
        return SONDE_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap < ((size_t)1 << 62) ? cap * 2 : need;
    if (cap > max + 1)
        cap = max + 1;
    char *d = sonde__realloc(b->data, cap);
    if (!d)
        return SONDE_ENOMEM;
    b->data = d;
    b->cap = cap;
    return SONDE_OK;
}

int sonde__buf_append(sonde_buf *b, const void *p, size_t n)
{
    int rc = sonde__buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SONDE_OK;
}

int sonde__buf_puts(sonde_buf *b, const char *s)
{
    return sonde__buf_append(b, s, strlen(s));
}

int sonde__buf_putc(sonde_buf *b, char c)
{
    return sonde__buf_append(b, &c, 1);
}

int sonde__buf_vprintf(sonde_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(small, sizeof small, fmt, aq);
    va_end(aq);
    if (n < 0)
        return SONDE_EINVAL;
    if ((size_t)n < sizeof small)
        return sonde__buf_append(b, small, (size_t)n);
    int rc = sonde__buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SONDE_OK;
}

int sonde__buf_printf(sonde_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sonde__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- the public buffer helpers (sonde/common.h) ---- */

int sonde_buf_append(sonde_buf *b, const void *data, size_t n)
{
    if (!b || (!data && n))
        return SONDE_EINVAL;
    return sonde__buf_append(b, data, n);
}

int sonde_buf_printf(sonde_buf *b, const char *fmt, ...)
{
    if (!b || !fmt)
        return SONDE_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    int rc = sonde__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sonde_buf_json_string(sonde_buf *b, const char *s)
{
    if (!b)
        return SONDE_EINVAL;
    return s ? sonde__buf_json_str(b, s) : sonde__buf_puts(b, "null");
}

/* Length of the valid UTF-8 sequence at s (max n bytes), 0 if invalid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
size_t sonde__utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
        return 0;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int sonde__buf_json_escape(sonde_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case every byte becomes \u00XX (6 bytes) or U+FFFD (3 bytes). */
    if (n > ((size_t)-1) / 8)
        return SONDE_ETOOBIG;
    int rc = sonde__buf_reserve(b, n * 6);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            i++;
            continue;
        }
        size_t l = sonde__utf8_seq_len(s + i, n - i);
        if (l == 0) {
            /* U+FFFD REPLACEMENT CHARACTER for each invalid byte. */
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
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return SONDE_OK;
}

int sonde__buf_json_str(sonde_buf *b, const char *s)
{
    int rc = sonde__buf_putc(b, '"');
    if (!rc && s)
        rc = sonde__buf_json_escape(b, s, strlen(s));
    if (!rc)
        rc = sonde__buf_putc(b, '"');
    return rc;
}

int sonde__buf_json_double(sonde_buf *b, double v)
{
    char tmp[33];
    size_t n = sonde__fmt_double(tmp, v);
    if (isnan(v) || isinf(v)) {
        int rc = sonde__buf_putc(b, '"');
        if (!rc)
            rc = sonde__buf_append(b, tmp, n);
        if (!rc)
            rc = sonde__buf_putc(b, '"');
        return rc;
    }
    return sonde__buf_append(b, tmp, n);
}

/* ---- numbers ---- */

static locale_t c_locale(void)
{
    static _Atomic(locale_t) loc;
    locale_t l = atomic_load_explicit(&loc, memory_order_acquire);
    if (l)
        return l;
    locale_t fresh = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t expected = (locale_t)0;
    if (!atomic_compare_exchange_strong(&loc, &expected, fresh)) {
        freelocale(fresh);
        return expected;
    }
    return fresh;
}

double sonde__strtod(const char *s, char **end)
{
    return strtod_l(s, end, c_locale());
}

size_t sonde__fmt_u64(char out[21], uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/*
 * Shortest significant digits of a finite, non-zero |v|: digits[] (no dot)
 * and the decimal point position dp such that |v| = 0.digits x 10^dp.
 * Tries 15, 16 then 17 significant digits, keeping the first that reads back
 * exactly, then drops trailing zeros (for normal doubles a representation of
 * fewer than 15 digits that round-trips is always the zero-padded 15-digit
 * one; subnormals are searched from one digit up).
 */
static size_t shortest_digits(double v, char digits[20], int *dp)
{
    char tmp[40];
    locale_t old = uselocale(c_locale());
    int prec;
    /* Subnormals carry fewer significant bits: search from one digit up. */
    int start = v < 2.2250738585072014e-308 ? 1 : 15;
    for (prec = start; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    if (prec == 17)
        snprintf(tmp, sizeof tmp, "%.16e", v);
    uselocale(old);
    /* tmp is d.ddddde[+-]XX */
    size_t nd = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp10 = (int)strtol(p + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    *dp = exp10 + 1;
    return nd;
}

size_t sonde__fmt_double(char out[33], double v)
{
    if (isnan(v)) {
        memcpy(out, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    if (v == 0) {
        if (signbit(v)) {
            memcpy(out, "-0", 3);
            return 2;
        }
        memcpy(out, "0", 2);
        return 1;
    }
    size_t o = 0;
    if (v < 0) {
        out[o++] = '-';
        v = -v;
    }
    /* Integers below 1e6 print in full either way; take the fast path. */
    if (v < 1e6 && v == (double)(uint64_t)v) {
        o += sonde__fmt_u64(out + o, (uint64_t)v);
        return o;
    }
    char d[20];
    int dp;
    size_t nd = shortest_digits(v, d, &dp);
    int exp = dp - 1;
    if (exp < -4 || exp >= 6) {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, nd - 1);
            o += nd - 1;
        }
        out[o++] = 'e';
        out[o++] = exp < 0 ? '-' : '+';
        int a = exp < 0 ? -exp : exp;
        if (a >= 100)
            out[o++] = (char)('0' + a / 100);
        out[o++] = (char)('0' + (a / 10) % 10);
        out[o++] = (char)('0' + a % 10);
    } else if (dp <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -dp; i++)
            out[o++] = '0';
        memcpy(out + o, d, nd);
        o += nd;
    } else if ((size_t)dp >= nd) {
        memcpy(out + o, d, nd);
        o += nd;
        for (size_t i = nd; i < (size_t)dp; i++)
            out[o++] = '0';
    } else {
        memcpy(out + o, d, (size_t)dp);
        o += (size_t)dp;
        out[o++] = '.';
        memcpy(out + o, d + dp, nd - (size_t)dp);
        o += nd - (size_t)dp;
    }
    out[o] = '\0';
    return o;
}

size_t sonde__fmt_double_om(char out[33], double v)
{
    size_t n = sonde__fmt_double(out, v);
    if (isnan(v) || isinf(v))
        return n;
    for (size_t i = 0; i < n; i++)
        if (out[i] == '.' || out[i] == 'e')
            return n;
    out[n++] = '.';
    out[n++] = '0';
    out[n] = '\0';
    return n;
}
