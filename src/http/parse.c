/*
 * Parsers for what clients send: Accept, Accept-Encoding, query strings,
 * listen addresses, basic credentials. They never allocate, read only the
 * bytes they are given, and accept any input (fuzz/fuzz_http_headers.c and
 * fuzz/fuzz_query.c run them).
 */
#include "http/http.h"

#include "core/text.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* Parse a q-value ("0", "0.5", "1", "1.000"); invalid values count as 1
 * per the lenient habit of real servers, but clamp to [0, 1]. */
static double parse_q(const char *s, size_t n)
{
    double v = 0;
    size_t i = 0;
    if (n == 0)
        return 1;
    if (s[0] != '0' && s[0] != '1')
        return 1;
    v = s[0] - '0';
    i = 1;
    if (i < n && s[i] == '.') {
        double scale = 0.1;
        for (i++; i < n && i < 5 && s[i] >= '0' && s[i] <= '9'; i++) {
            v += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    return v > 1 ? 1 : v;
}

/*
 * Walk a comma-separated header list; for each element, call fn with the
 * main token (before ';') and its q parameter. Quoted strings in parameters
 * are skipped over correctly so a comma inside quotes does not split.
 */
typedef void (*elem_fn)(void *ud, const char *tok, size_t tn, const char *params, size_t pn,
                        double q);

static void each_element(const char *s, size_t n, elem_fn fn, void *ud)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        bool quoted = false;
        while (i < n && (quoted || s[i] != ',')) {
            if (s[i] == '"')
                quoted = !quoted;
            else if (quoted && s[i] == '\\' && i + 1 < n)
                i++;
            i++;
        }
        const char *e = s + start;
        size_t en = i - start;
        i++; /* skip the comma */
        trim(&e, &en);
        if (en == 0)
            continue;
        size_t semi = 0;
        while (semi < en && e[semi] != ';')
            semi++;
        const char *tok = e;
        size_t tn = semi;
        trim(&tok, &tn);
        const char *params = semi < en ? e + semi + 1 : e + en;
        size_t pn = semi < en ? en - semi - 1 : 0;
        /* Find q= among the parameters. */
        double q = 1;
        size_t j = 0;
        while (j < pn) {
            size_t ps = j;
            bool pq = false;
            while (j < pn && (pq || params[j] != ';')) {
                if (params[j] == '"')
                    pq = !pq;
                j++;
            }
            const char *p = params + ps;
            size_t pl = j - ps;
            j++;
            trim(&p, &pl);
            if (pl >= 2 && lower(p[0]) == 'q' && p[1] == '=')
                q = parse_q(p + 2, pl - 2);
        }
        fn(ud, tok, tn, params, pn, q);
    }
}

struct ae_state {
    double gzip, star;
    bool gzip_seen, star_seen;
};

static void ae_elem(void *ud, const char *tok, size_t tn, const char *params, size_t pn, double q)
{
    SONDE_UNUSED(params);
    SONDE_UNUSED(pn);
    struct ae_state *st = ud;
    if (ieq(tok, tn, "gzip") || ieq(tok, tn, "x-gzip")) {
        st->gzip_seen = true;
        if (q > st->gzip)
            st->gzip = q;
    } else if (ieq(tok, tn, "*")) {
        st->star_seen = true;
        if (q > st->star)
            st->star = q;
    }
}

bool sonde__http_accepts_gzip(const char *ae, size_t n)
{
    if (!ae || n == 0)
        return false;
    struct ae_state st = {0, 0, false, false};
    each_element(ae, n, ae_elem, &st);
    if (st.gzip_seen)
        return st.gzip > 0;
    return st.star_seen && st.star > 0;
}

int sonde__http_query_names(const char *q, size_t n, char *scratch, size_t cap, const char **names,
                            size_t max)
{
    size_t used = 0, count = 0;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && q[i] != '&' && q[i] != ';')
            i++;
        const char *pair = q + start;
        size_t pl = i - start;
        i++;
        if (pl == 0)
            continue;
        size_t eq = 0;
        while (eq < pl && pair[eq] != '=')
            eq++;
        /* Decode the key into a small buffer to compare it. */
        char key[16];
        ssize_t kl = sonde__pct_decode(pair, eq, key, sizeof key);
        if (kl < 0)
            continue; /* a long or malformed key is not ours: ignored */
        if (!((kl == 6 && memcmp(key, "name[]", 6) == 0) ||
              (kl == 4 && memcmp(key, "name", 4) == 0)))
            continue;
        const char *val = eq < pl ? pair + eq + 1 : pair + pl;
        size_t vl = eq < pl ? pl - eq - 1 : 0;
        if (vl == 0)
            continue;
        if (count >= max)
            return SONDE_ELIMIT;
        if (used >= cap)
            return SONDE_ETOOBIG;
        ssize_t dl = sonde__pct_decode(val, vl, scratch + used, cap - used - 1);
        if (dl < 0)
            return (int)dl;
        scratch[used + (size_t)dl] = '\0';
        names[count++] = scratch + used;
        used += (size_t)dl + 1;
    }
    return (int)count;
}

bool sonde__ct_equal(const char *a, size_t an, const char *b, size_t bn)
{
    /* Compare every byte of the secret b against a (cycled when shorter),
     * accumulating differences; the length mismatch is folded in at the
     * end so the timing never reveals a prefix match. */
    volatile unsigned char acc = (unsigned char)(an != bn);
    for (size_t i = 0; i < bn; i++) {
        unsigned char x = an ? (unsigned char)a[i % an] : 0;
        acc |= (unsigned char)(x ^ (unsigned char)b[i]);
    }
    return acc == 0 && an == bn;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ssize_t sonde__base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    while (n && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)((acc >> bits) & 0xFF);
        }
    }
    return (ssize_t)o;
}

bool sonde__addr_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return a[12] == 127;
    }
    return false;
}

int sonde__parse_listen(const char *s, char *host, size_t cap, int *port)
{
    if (!s || cap == 0)
        return SONDE_EINVAL;
    host[0] = '\0';
    *port = 9464;
    size_t n = strlen(s);
    const char *hs = s, *ps = NULL;
    size_t hl = n;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return SONDE_EINVAL;
        hs = s + 1;
        hl = (size_t)(close - s) - 1;
        if (close[1] == ':')
            ps = close + 2;
        else if (close[1] != '\0')
            return SONDE_EINVAL;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon) {
            if (memchr(s, ':', (size_t)(colon - s)))
                return SONDE_EINVAL; /* bare IPv6 needs brackets */
            hl = (size_t)(colon - s);
            ps = colon + 1;
        }
    }
    if (hl >= cap)
        return SONDE_EINVAL;
    for (size_t i = 0; i < hl; i++)
        if (hs[i] == ' ' || hs[i] == '/' || hs[i] == '[' || hs[i] == ']')
            return SONDE_EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    if (ps) {
        if (*ps == '\0')
            return SONDE_EINVAL;
        long v = 0;
        for (const char *p = ps; *p; p++) {
            if (*p < '0' || *p > '9')
                return SONDE_EINVAL;
            v = v * 10 + (*p - '0');
            if (v > 65535)
                return SONDE_EINVAL;
        }
        *port = (int)v;
    }
    return SONDE_OK;
}

bool sonde__key_is_secret(const char *key)
{
    static const char *const words[] = {"key",    "secret",  "token",      "password",
                                        "passwd", "pass",    "credential", "auth",
                                        "dsn",    "private", "cookie",     "session"};
    if (!key)
        return false;
    char low[128];
    size_t n = 0;
    for (; key[n] && n < sizeof low - 1; n++)
        low[n] = lower(key[n]);
    low[n] = '\0';
    for (size_t i = 0; i < SONDE_ARRAY_LEN(words); i++)
        if (strstr(low, words[i]))
            return true;
    return false;
}

int sonde__http_query_pairs(const char *q, size_t n, char *scratch, size_t cap, const char **pairs,
                            size_t max)
{
    size_t count = 0, used = 0;
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
            const char *v = eq ? eq + 1 : q + end;
            size_t vlen = eq ? (size_t)(q + end - v) : 0;
            if (count >= max)
                return SONDE_ELIMIT;
            if (used >= cap)
                return SONDE_ETOOBIG;
            ssize_t kl = sonde__pct_decode(q + i, klen, scratch + used, cap - used);
            if (kl < 0)
                return (int)kl;
            if (used + (size_t)kl >= cap)
                return SONDE_ETOOBIG;
            pairs[2 * count] = scratch + used;
            used += (size_t)kl;
            scratch[used++] = '\0';
            if (used >= cap)
                return SONDE_ETOOBIG;
            ssize_t vl = sonde__pct_decode(v, vlen, scratch + used, cap - used);
            if (vl < 0)
                return (int)vl;
            if (used + (size_t)vl >= cap)
                return SONDE_ETOOBIG;
            pairs[2 * count + 1] = scratch + used;
            used += (size_t)vl;
            scratch[used++] = '\0';
            count++;
        }
        i = end + 1;
    }
    return (int)count;
}
