/*
 * Credential masking.
 *
 * Keys: a key names a secret when, lowercased with every character other
 * than a letter or digit removed, it ends with one of the secret words
 * ("db_password", "X-Api-Key", "githubToken"), or when one of its words
 * (split at separators and lower-to-upper case changes) or two adjacent
 * words joined is a secret word ("token_count", "api_key_id").
 *
 * Values: one left-to-right pass over the bytes. Only a few bytes can start
 * a pattern (a lookup table says which), so the common case is a table
 * lookup per byte. What a pattern matches is replaced by "***", keeping
 * whatever tells the reader what was there ("Bearer ***", "ghp_***",
 * "https://user:***@host", "password=***").
 *
 * Extensions (keys, prefixes, regular expressions) are append-only arrays:
 * an entry is written completely before the count that publishes it is
 * stored with release order, so readers never lock and never see a partial
 * entry. Nothing is ever removed or freed while the process runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <ctype.h>
#include <regex.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string.h>

#define MASK_MAX_KEYS 64
#define MASK_MAX_PREFIXES 32
#define MASK_MAX_REGEX 16
#define MASK_KEY_LEN 64
#define STARS "***"

typedef struct {
    const char *s;
    size_t n;
} word;
#define W(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
static const word secret_suffixes[] = {
    W("password"),      W("passwd"),     W("secret"),     W("token"),     W("apikey"),
    W("authorization"), W("cookie"),     W("session"),    W("sessionid"), W("privatekey"),
    W("credentials"),   W("credential"), W("passphrase"),
};
/* Whole words (or two adjacent words) that name a secret on their own. */
static const word secret_words[] = {
    W("password"),    W("passwords"),  W("passwd"),     W("pwd"),       W("secret"),
    W("secrets"),     W("token"),      W("tokens"),     W("apikey"),    W("authorization"),
    W("cookie"),      W("cookies"),    W("session"),    W("sessionid"), W("privatekey"),
    W("credentials"), W("credential"), W("passphrase"),
};
#undef W

static struct {
    pthread_mutex_t lock;
    atomic_size_t nkeys;
    char keys[MASK_MAX_KEYS][MASK_KEY_LEN];
    size_t keylen[MASK_MAX_KEYS];
    atomic_size_t nprefix;
    struct {
        char p[32];
        size_t plen;
        size_t min;
    } prefix[MASK_MAX_PREFIXES];
    atomic_size_t nregex;
    regex_t re[MASK_MAX_REGEX];
    /* First bytes of the added prefixes. */
    _Atomic unsigned char prefix_start[256];
} M = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Bytes that may start a built-in pattern. */
static const unsigned char builtin_start[256] = {
    ['B'] = 1, ['b'] = 1, ['g'] = 1, ['A'] = 1, ['e'] = 1, [':'] = 1, ['='] = 1,
};

int sonde__mask_enabled(void)
{
    return atomic_load_explicit(&sonde__lg.masking, memory_order_relaxed);
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static int is_word(unsigned char c)
{
    return is_alnum(c) || c == '_';
}
static int is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}
static int is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}
static unsigned char lower(unsigned char c)
{
    return is_upper(c) ? (unsigned char)(c + 32) : c;
}

/* Normalise: lowercase letters and digits only. Returns the length (cut at
 * cap - 1; out is NUL-terminated). */
static size_t normalise(const char *k, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)k[i];
        if (is_alnum(c))
            out[o++] = (char)lower(c);
    }
    out[o] = '\0';
    return o;
}

static int ends_with(const char *s, size_t n, const char *suf, size_t l)
{
    return l <= n && memcmp(s + n - l, suf, l) == 0;
}

static int word_is_secret(const char *w, size_t n)
{
    for (size_t i = 0; i < SONDE_ARRAY_LEN(secret_words); i++)
        if (secret_words[i].n == n && memcmp(secret_words[i].s, w, n) == 0)
            return 1;
    size_t nk = atomic_load_explicit(&M.nkeys, memory_order_acquire);
    for (size_t i = 0; i < nk; i++)
        if (M.keylen[i] == n && memcmp(M.keys[i], w, n) == 0)
            return 1;
    return 0;
}

static int key_is_secret(const char *k, size_t n)
{
    char norm[128];
    size_t nl = normalise(k, n, norm, sizeof norm);
    if (nl < 3)
        return 0;
    for (size_t i = 0; i < SONDE_ARRAY_LEN(secret_suffixes); i++)
        if (ends_with(norm, nl, secret_suffixes[i].s, secret_suffixes[i].n))
            return 1;
    size_t nk = atomic_load_explicit(&M.nkeys, memory_order_acquire);
    for (size_t i = 0; i < nk; i++)
        if (ends_with(norm, nl, M.keys[i], M.keylen[i]))
            return 1;
    /* Words: split at non-alphanumerics and at lower->upper changes. */
    char words[16][40];
    size_t wl[16], nw = 0;
    size_t i = 0;
    while (i < n && nw < 16) {
        while (i < n && !is_alnum((unsigned char)k[i]))
            i++;
        if (i >= n)
            break;
        size_t l = 0;
        do {
            if (l < sizeof words[0] - 1)
                words[nw][l++] = (char)lower((unsigned char)k[i]);
            i++;
        } while (i < n && is_alnum((unsigned char)k[i]) &&
                 !(is_upper((unsigned char)k[i]) && is_lower((unsigned char)k[i - 1])));
        wl[nw++] = l;
    }
    for (size_t w = 0; w < nw; w++) {
        if (word_is_secret(words[w], wl[w]))
            return 1;
        if (w + 1 < nw) {
            char pair[80];
            memcpy(pair, words[w], wl[w]);
            memcpy(pair + wl[w], words[w + 1], wl[w + 1]);
            if (word_is_secret(pair, wl[w] + wl[w + 1]))
                return 1;
        }
    }
    return 0;
}

/* Keys repeat (they come from a few call sites), so each formatting thread
 * remembers recent answers: a direct-mapped cache keyed by the key's bytes,
 * invalidated when keys are added. */
#define KEY_CACHE 256
#define KEY_CACHE_LEN 46
typedef struct {
    uint32_t gen;
    uint8_t len, secret;
    char key[KEY_CACHE_LEN];
} key_cache_entry;
static atomic_uint key_gen = 1;

int sonde__mask_key(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    if (n > KEY_CACHE_LEN)
        return key_is_secret(k, n);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    log_tls *t = sonde__tls();
    if (t && !t->key_cache)
        t->key_cache = sonde__calloc(KEY_CACHE, sizeof(key_cache_entry));
    key_cache_entry *key_cache = t ? t->key_cache : NULL;
    if (!key_cache)
        return key_is_secret(k, n);
    unsigned gen = atomic_load_explicit(&key_gen, memory_order_acquire);
    key_cache_entry *e = &key_cache[h % KEY_CACHE];
    if (e->gen == gen && e->len == n && memcmp(e->key, k, n) == 0)
        return e->secret;
    int r = key_is_secret(k, n);
    e->gen = gen;
    e->len = (uint8_t)n;
    e->secret = (uint8_t)r;
    memcpy(e->key, k, n);
    return r;
}

SONDE_API int sonde_log_mask_key_is_secret(const char *key, size_t n)
{
    return key ? sonde__mask_key(key, n) : 0;
}

/* ---- value patterns ---- */

static int ci_prefix(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n < l)
        return 0;
    for (size_t i = 0; i < l; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

static size_t span(const char *s, size_t n, size_t i, int (*ok)(unsigned char))
{
    size_t j = i;
    while (j < n && ok((unsigned char)s[j]))
        j++;
    return j - i;
}

static int c_bearer_tok(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}
static int c_b64(unsigned char c)
{
    return is_alnum(c) || c == '+' || c == '/';
}
static int c_alnum(unsigned char c)
{
    return is_alnum(c);
}
static int c_word(unsigned char c)
{
    return is_word(c);
}
static int c_b64url(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '_';
}
static int c_upnum(unsigned char c)
{
    return is_upper(c) || (c >= '0' && c <= '9');
}
static int c_tok(unsigned char c)
{
    return is_word(c) || c == '-';
}
static int c_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}
static int c_keych(unsigned char c)
{
    return is_word(c) || c == '-' || c == '.';
}

static int b64val(unsigned char c)
{
    if (is_upper(c))
        return c - 'A';
    if (is_lower(c))
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Whether s[0..n) (n % 4 == 0, '=' padding allowed) decodes to bytes that
 * contain a ':' (user:password). */
static int b64_has_colon(const char *s, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=') {
                if (i + 4 != n || k < 2)
                    return 0;
                v[k] = 0;
                pad++;
            } else {
                if (pad)
                    return 0;
                v[k] = b64val(c);
                if (v[k] < 0)
                    return 0;
            }
        }
        unsigned bytes[3] = {(unsigned)(v[0] << 2 | v[1] >> 4),
                             (unsigned)((v[1] & 15) << 4 | v[2] >> 2),
                             (unsigned)((v[2] & 3) << 6 | v[3])};
        for (int k = 0; k < 3 - pad; k++)
            if ((bytes[k] & 0xff) == ':')
                return 1;
    }
    return 0;
}

/* A match: replace s[from..to) by "***". */
typedef struct {
    size_t from, to;
} span_t;

static int boundary_before(const char *s, size_t i)
{
    return i == 0 || !is_word((unsigned char)s[i - 1]);
}

static int try_bearer(const char *s, size_t n, size_t i, span_t *m)
{
    if (!ci_prefix(s + i, n - i, "bearer") || !boundary_before(s, i))
        return 0;
    size_t j = i + 6;
    size_t b = span(s, n, j, c_blank);
    if (b == 0)
        return 0;
    j += b;
    size_t t = span(s, n, j, c_bearer_tok);
    size_t e = j + t;
    while (e < n && s[e] == '=')
        e++;
    if (t < 8)
        return 0;
    m->from = j;
    m->to = e;
    return 1;
}

static int try_basic(const char *s, size_t n, size_t i, span_t *m)
{
    if (!ci_prefix(s + i, n - i, "basic") || !boundary_before(s, i))
        return 0;
    size_t j = i + 5;
    size_t b = span(s, n, j, c_blank);
    if (b == 0)
        return 0;
    j += b;
    size_t e = j + span(s, n, j, c_b64);
    size_t p = 0;
    while (e < n && s[e] == '=' && p < 2) {
        e++;
        p++;
    }
    size_t len = e - j;
    if (len < 8 || len % 4 != 0 || !b64_has_colon(s + j, len))
        return 0;
    m->from = j;
    m->to = e;
    return 1;
}

static int try_github(const char *s, size_t n, size_t i, span_t *m)
{
    if (!boundary_before(s, i))
        return 0;
    if (n - i >= 4 && s[i] == 'g' && s[i + 1] == 'h' && s[i + 3] == '_' &&
        strchr("pousr", s[i + 2]) && s[i + 2] != '\0') {
        size_t t = span(s, n, i + 4, c_alnum);
        if (t >= 20 && !(i + 4 + t < n && is_word((unsigned char)s[i + 4 + t]))) {
            m->from = i + 4;
            m->to = i + 4 + t;
            return 1;
        }
        return 0;
    }
    if (n - i >= 11 && memcmp(s + i, "github_pat_", 11) == 0) {
        size_t t = span(s, n, i + 11, c_word);
        if (t >= 20) {
            m->from = i + 11;
            m->to = i + 11 + t;
            return 1;
        }
    }
    return 0;
}

static int try_aws(const char *s, size_t n, size_t i, span_t *m)
{
    static const char *const pfx[] = {"AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA",
                                      "AIPA", "ANPA", "ANVA", "AROA", "APKA", "ASCA"};
    if (n - i < 20 || !boundary_before(s, i))
        return 0;
    int ok = 0;
    for (size_t k = 0; k < SONDE_ARRAY_LEN(pfx); k++)
        if (memcmp(s + i, pfx[k], 4) == 0)
            ok = 1;
    if (!ok)
        return 0;
    size_t t = span(s, n, i + 4, c_upnum);
    if (t != 16 || (i + 20 < n && is_word((unsigned char)s[i + 20])))
        return 0;
    m->from = i + 4;
    m->to = i + 20;
    return 1;
}

static int try_jwt(const char *s, size_t n, size_t i, span_t *m)
{
    if (n - i < 3 || memcmp(s + i, "eyJ", 3) != 0 || !boundary_before(s, i))
        return 0;
    size_t h = span(s, n, i, c_b64url);
    if (h < 10 || i + h >= n || s[i + h] != '.')
        return 0;
    size_t j = i + h + 1;
    size_t p = span(s, n, j, c_b64url);
    if (p < 4 || j + p >= n || s[j + p] != '.')
        return 0;
    j += p + 1;
    size_t sig = span(s, n, j, c_b64url);
    m->from = i;
    m->to = j + sig;
    return 1;
}

/* At s[i] == ':' followed by "//": userinfo with a password. */
static int try_url(const char *s, size_t n, size_t i, span_t *m)
{
    if (n - i < 3 || s[i + 1] != '/' || s[i + 2] != '/' || i == 0 ||
        !is_alnum((unsigned char)s[i - 1]))
        return 0;
    size_t a = i + 3, e = a;
    while (e < n && !strchr("/?# \t\r\n\"'<>", s[e]) && s[e] != '\0')
        e++;
    size_t at = SIZE_MAX;
    for (size_t k = a; k < e; k++)
        if (s[k] == '@')
            at = k;
    if (at == SIZE_MAX)
        return 0;
    size_t c = SIZE_MAX;
    for (size_t k = a; k < at; k++)
        if (s[k] == ':') {
            c = k;
            break;
        }
    if (c == SIZE_MAX || c + 1 >= at)
        return 0;
    m->from = c + 1;
    m->to = at;
    return 1;
}

/* At s[i] == '=': the key before it names a secret. */
static int try_kv(const char *s, size_t n, size_t i, span_t *m)
{
    size_t ks = i;
    while (ks > 0 && c_keych((unsigned char)s[ks - 1]) && i - ks < 64)
        ks--;
    if (ks == i || !sonde__mask_key(s + ks, i - ks))
        return 0;
    size_t v = i + 1;
    if (v >= n)
        return 0;
    size_t e;
    if (s[v] == '\'' || s[v] == '"') {
        char q = s[v];
        v++;
        e = v;
        while (e < n && s[e] != q)
            e++;
    } else {
        e = v;
        while (e < n && !strchr(" \t\r\n;&,\"'<>)", s[e]) && s[e] != '\0')
            e++;
    }
    if (e == v)
        return 0;
    if (e - v == 3 && memcmp(s + v, STARS, 3) == 0)
        return 0; /* already masked */
    m->from = v;
    m->to = e;
    return 1;
}

static int try_prefixes_slow(const char *s, size_t n, size_t i, span_t *m, size_t np);

static inline int try_prefixes(const char *s, size_t n, size_t i, span_t *m)
{
    size_t np = atomic_load_explicit(&M.nprefix, memory_order_acquire);
    return np ? try_prefixes_slow(s, n, i, m, np) : 0;
}

static int try_prefixes_slow(const char *s, size_t n, size_t i, span_t *m, size_t np)
{
    if (!boundary_before(s, i))
        return 0;
    for (size_t k = 0; k < np; k++) {
        size_t pl = M.prefix[k].plen;
        if (n - i < pl || memcmp(s + i, M.prefix[k].p, pl) != 0)
            continue;
        size_t t = span(s, n, i + pl, c_tok);
        if (t >= M.prefix[k].min && t > 0) {
            m->from = i + pl;
            m->to = i + pl + t;
            return 1;
        }
    }
    return 0;
}

static int match_at(const char *s, size_t n, size_t i, span_t *m)
{
    if (!builtin_start[(unsigned char)s[i]])
        return try_prefixes(s, n, i, m);
    switch (s[i]) {
    case 'B':
    case 'b':
        if (try_bearer(s, n, i, m) || try_basic(s, n, i, m))
            return 1;
        break;
    case 'g':
        if (try_github(s, n, i, m))
            return 1;
        break;
    case 'A':
        if (try_aws(s, n, i, m))
            return 1;
        break;
    case 'e':
        if (try_jwt(s, n, i, m))
            return 1;
        break;
    case ':':
        if (try_url(s, n, i, m))
            return 1;
        break;
    case '=':
        if (try_kv(s, n, i, m))
            return 1;
        break;
    default:
        break;
    }
    return try_prefixes(s, n, i, m);
}

static int apply_regex(sonde_buf *out, size_t base, size_t nre)
{
    int any = 0;
    sonde_buf res;
    sonde_buf_init(&res);
    for (size_t r = 0; r < nre; r++) {
        const char *str = out->data + base;
        size_t off = 0, len = out->len - base;
        sonde_buf_reset(&res);
        int changed = 0;
        regmatch_t pm;
        int eflags = 0;
        while (off <= len && regexec(&M.re[r], str + off, 1, &pm, eflags) == 0) {
            size_t so = off + (size_t)pm.rm_so, eo = off + (size_t)pm.rm_eo;
            if (sonde__buf_append(&res, str + off, so - off) || sonde__buf_append(&res, STARS, 3))
                goto done;
            changed = 1;
            off = eo > so ? eo : eo + 1;
            if (eo == so && so < len && sonde__buf_append(&res, str + so, 1))
                goto done;
            eflags = REG_NOTBOL;
            if (off > len)
                break;
        }
        if (!changed)
            continue;
        if (off < len && sonde__buf_append(&res, str + off, len - off))
            goto done;
        out->len = base;
        if (sonde__buf_append(out, res.data ? res.data : "", res.len))
            goto done;
        any = 1;
    }
done:
    sonde_buf_free(&res);
    return any;
}

/* Index of the first byte at or after i that may start a built-in
 * pattern, or n. */
static inline size_t next_candidate(const char *s, size_t i, size_t n)
{
#if defined(__SSE2__)
    const __m128i cB = _mm_set1_epi8('B'), cb = _mm_set1_epi8('b'), cg = _mm_set1_epi8('g');
    const __m128i cA = _mm_set1_epi8('A'), ce = _mm_set1_epi8('e'), cc = _mm_set1_epi8(':');
    const __m128i cq = _mm_set1_epi8('=');
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, cB), _mm_cmpeq_epi8(v, cb));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, cg), _mm_cmpeq_epi8(v, cA)));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, ce), _mm_cmpeq_epi8(v, cc)));
        m = _mm_or_si128(m, _mm_cmpeq_epi8(v, cq));
        int bits = _mm_movemask_epi8(m);
        if (bits)
            return i + (size_t)__builtin_ctz((unsigned)bits);
        i += 16;
    }
#endif
    while (i < n && !builtin_start[(unsigned char)s[i]])
        i++;
    return i;
}

int sonde__mask_value(const char *s, size_t n, sonde_buf *out)
{
    size_t base = out->len;
    size_t last = 0; /* s[last..i) not yet copied */
    int masked = 0;
    int prefixes = atomic_load_explicit(&M.nprefix, memory_order_acquire) != 0;
    for (size_t i = 0; i < n; i++) {
        if (!prefixes) {
            i = next_candidate(s, i, n);
            if (i >= n)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        if (!builtin_start[c] &&
            !(prefixes && atomic_load_explicit(&M.prefix_start[c], memory_order_relaxed)))
            continue;
        span_t m;
        if (!match_at(s, n, i, &m))
            continue;
        if (sonde__buf_append(out, s + last, m.from - last) || sonde__buf_append(out, STARS, 3)) {
            out->len = base;
            return SONDE_ENOMEM;
        }
        masked = 1;
        last = m.to;
        i = m.to > i ? m.to - 1 : i;
    }
    size_t nre = atomic_load_explicit(&M.nregex, memory_order_acquire);
    if (!masked && !nre)
        return 0;
    if (sonde__buf_append(out, s + last, n - last)) {
        out->len = base;
        return SONDE_ENOMEM;
    }
    if (nre && apply_regex(out, base, nre))
        masked = 1;
    if (!masked) {
        out->len = base;
        if (out->data)
            out->data[base] = '\0';
    }
    return masked;
}

SONDE_API int sonde_log_mask(const char *s, size_t n, struct sonde_buf *out)
{
    if (!out || (!s && n))
        return SONDE_EINVAL;
    int rc = sonde__mask_value(s ? s : "", n, out);
    if (rc == 0 && n)
        return sonde__buf_append(out, s, n) ? SONDE_ENOMEM : 0;
    return rc;
}

SONDE_API int sonde_log_mask_add_key(const char *key)
{
    char norm[MASK_KEY_LEN];
    if (!key || normalise(key, strlen(key), norm, sizeof norm) == 0)
        return SONDE_EINVAL;
    pthread_mutex_lock(&M.lock);
    size_t nk = atomic_load_explicit(&M.nkeys, memory_order_relaxed);
    int rc = SONDE_OK;
    if (nk >= MASK_MAX_KEYS) {
        rc = SONDE_ELIMIT;
    } else {
        memcpy(M.keys[nk], norm, sizeof norm);
        M.keylen[nk] = strlen(norm);
        atomic_store_explicit(&M.nkeys, nk + 1, memory_order_release);
        atomic_fetch_add_explicit(&key_gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&M.lock);
    return rc;
}

SONDE_API int sonde_log_mask_add_prefix(const char *prefix, size_t min_len)
{
    if (!prefix || !*prefix || strlen(prefix) >= sizeof M.prefix[0].p)
        return SONDE_EINVAL;
    pthread_mutex_lock(&M.lock);
    size_t np = atomic_load_explicit(&M.nprefix, memory_order_relaxed);
    int rc = SONDE_OK;
    if (np >= MASK_MAX_PREFIXES) {
        rc = SONDE_ELIMIT;
    } else {
        size_t l = strlen(prefix);
        memcpy(M.prefix[np].p, prefix, l + 1);
        M.prefix[np].plen = l;
        M.prefix[np].min = min_len ? min_len : 1;
        atomic_store_explicit(&M.prefix_start[(unsigned char)prefix[0]], 1, memory_order_relaxed);
        atomic_store_explicit(&M.nprefix, np + 1, memory_order_release);
    }
    pthread_mutex_unlock(&M.lock);
    return rc;
}

SONDE_API int sonde_log_mask_add_regex(const char *ere)
{
    if (!ere || !*ere)
        return SONDE_EINVAL;
    pthread_mutex_lock(&M.lock);
    size_t nr = atomic_load_explicit(&M.nregex, memory_order_relaxed);
    int rc = SONDE_OK;
    if (nr >= MASK_MAX_REGEX) {
        rc = SONDE_ELIMIT;
    } else if (regcomp(&M.re[nr], ere, REG_EXTENDED) != 0) {
        rc = SONDE_EPARSE;
    } else {
        atomic_store_explicit(&M.nregex, nr + 1, memory_order_release);
    }
    pthread_mutex_unlock(&M.lock);
    return rc;
}
