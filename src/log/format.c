/*
 * Formatting a record as a JSON line or a console line.
 *
 * Invariants of every line produced here: it is one line (control
 * characters are escaped, so no raw newline can appear before the final
 * one), valid UTF-8 (invalid bytes become U+FFFD), valid JSON in the JSON
 * format, and at most max_line_bytes long including the newline. When the
 * content does not fit, strings are cut at a character boundary and end with
 * "...[truncated]", items that no longer fit are left out, and the line gets
 * "truncated":true.
 *
 * Budget: everything but the tail (source, pid, tid, truncated flag, closing
 * brace) must end before `limit` = max_line - TAIL_RESERVE; the message may
 * take at most half of what is left after the header when the line has
 * context or fields, so those are not crowded out by a huge message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <execinfo.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAIL_RESERVE 512
#define MARK_LEN (sizeof LOG_TRUNC_MARK - 1)

typedef struct fstate {
    fmt_cache *fc;
    sonde_buf *out;
    size_t limit;
    int truncated;
    int console; /* console format: top-level items as key=value */
    int color;
} fstate;

static const char *const level_names[] = {"UNSET",   "TRACE", "DEBUG",    "INFO",
                                          "WARNING", "ERROR", "CRITICAL", "OFF"};

SONDE_API const char *sonde_log_level_name(int level)
{
    if (level < 0 || level > SONDE_LOG_OFF)
        return "?";
    return level_names[level];
}

const char *sonde__log_basename(const char *path)
{
    if (!path)
        return NULL;
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static void put2(char *o, int v)
{
    o[0] = (char)('0' + (v / 10) % 10);
    o[1] = (char)('0' + v % 10);
}

void sonde__fmt_rfc3339(int64_t ts_us, char out[32])
{
    static __attribute__((tls_model("initial-exec"))) _Thread_local int64_t cached_sec = INT64_MIN;
    static __attribute__((tls_model("initial-exec"))) _Thread_local char cached[20];
    int64_t sec = ts_us >= 0 ? ts_us / 1000000 : (ts_us - 999999) / 1000000;
    int64_t us = ts_us - sec * 1000000;
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            memset(&tm, 0, sizeof tm);
        int y = tm.tm_year + 1900;
        if (y < 0)
            y = 0;
        if (y > 9999)
            y = 9999;
        cached[0] = (char)('0' + y / 1000);
        cached[1] = (char)('0' + (y / 100) % 10);
        put2(cached + 2, y % 100);
        cached[4] = '-';
        put2(cached + 5, tm.tm_mon + 1);
        cached[7] = '-';
        put2(cached + 8, tm.tm_mday);
        cached[10] = 'T';
        put2(cached + 11, tm.tm_hour);
        cached[13] = ':';
        put2(cached + 14, tm.tm_min);
        cached[16] = ':';
        put2(cached + 17, tm.tm_sec);
        cached_sec = sec;
    }
    memcpy(out, cached, 19);
    out[19] = '.';
    int u = (int)us;
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + u % 10);
        u /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
}

/* Length of the valid UTF-8 sequence at s, or 0. Same rules as the core
 * escaper: no overlong forms, surrogates or code points above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
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

static size_t room(const fstate *st)
{
    return st->limit > st->out->len ? st->limit - st->out->len : 0;
}

/* Appends with the common case (room in the buffer) inline. */
static inline void puts_raw(fstate *st, const char *s, size_t n)
{
    sonde_buf *b = st->out;
    if (SONDE_LIKELY(b->len + n < b->cap)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
    } else {
        sonde__buf_append(b, s, n);
    }
}
static inline void putc_raw(fstate *st, char c)
{
    sonde_buf *b = st->out;
    if (SONDE_LIKELY(b->len + 1 < b->cap)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
    } else {
        sonde__buf_putc(b, c);
    }
}

/* Doubles: the shortest decimal that reads back, as sonde__fmt_double
 * writes it, but without its printf/strtod round trips for the common
 * values of logs (durations, ratios): if m / 10^k == v exactly for some
 * k <= 9 with |m| < 2^53, the decimal m * 10^-k reads back as v (IEEE
 * division is correctly rounded, like strtod), and the smallest such k
 * gives the shortest fixed notation. The core formatter writes fixed
 * notation for 1e-4 <= |v| < 1e6, so the output is identical there. */
static void put_double(fstate *st, double v)
{
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    double a = v < 0 ? -v : v;
    if (a >= 1e-4 && a < 1e6) {
        for (int k = 0; k <= 9; k++) {
            double scaled = a * p10[k];
            if (scaled >= 9007199254740992.0)
                break;
            uint64_t m = (uint64_t)(scaled + 0.5);
            if ((double)m / p10[k] != a)
                continue;
            char tmp[40], digits[24];
            size_t nd = sonde__fmt_u64(digits, m), o = 0;
            if (v < 0)
                tmp[o++] = '-';
            if (k == 0) {
                memcpy(tmp + o, digits, nd);
                o += nd;
            } else if (nd > (size_t)k) {
                memcpy(tmp + o, digits, nd - (size_t)k);
                o += nd - (size_t)k;
                tmp[o++] = '.';
                memcpy(tmp + o, digits + nd - (size_t)k, (size_t)k);
                o += (size_t)k;
            } else {
                tmp[o++] = '0';
                tmp[o++] = '.';
                for (size_t z = nd; z < (size_t)k; z++)
                    tmp[o++] = '0';
                memcpy(tmp + o, digits, nd);
                o += nd;
            }
            puts_raw(st, tmp, o);
            return;
        }
    }
    sonde__buf_json_double(st->out, v);
}
#define PUTLIT(st, lit) puts_raw((st), (lit), sizeof(lit) - 1)

/* 1 for bytes that the JSON escaper must look at: control characters,
 * quote, backslash, and every non-ASCII byte (validated as UTF-8). */
static const unsigned char needs_esc[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 0, [0x80 ... 0xff] = 1,
};

/* Escape: copy runs of plain bytes at once, hand the rest to the core
 * escaper (which validates UTF-8 and writes \uXXXX / U+FFFD). */
/* Index of the first byte at or after i that needs escaping, or n. */
static inline size_t plain_run(const unsigned char *u, size_t i, size_t n)
{
#if defined(__SSE2__)
    /* 16 bytes at a time: control (< 0x20 as signed >= 0 && < 0x20),
     * quote, backslash, and every byte >= 0x80 (negative as signed). */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(u + i));
        __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        m = _mm_or_si128(m, _mm_cmplt_epi8(v, space)); /* signed: catches >= 0x80 too */
        int bits = _mm_movemask_epi8(m);
        if (bits)
            return i + (size_t)__builtin_ctz((unsigned)bits);
        i += 16;
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 8 bytes at a time (SWAR): flag bytes < 0x20, '"', '\\' or >= 0x80.
     * The lowest flagged byte is exact (borrows only reach higher bytes). */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (i + 8 <= n) {
        uint64_t x;
        memcpy(&x, u + i, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t m = ((x - ones * 0x20) & ~x & highs) | ((q - ones) & ~q & highs) |
                     ((b - ones) & ~b & highs) | (x & highs);
        if (m)
            return i + (size_t)__builtin_ctzll(m) / 8;
        i += 8;
    }
#endif
    while (i < n && !needs_esc[u[i]])
        i++;
    return i;
}

static void esc_fast(sonde_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t j = plain_run(u, i, n);
        if (j > i) {
            if (SONDE_LIKELY(b->len + (j - i) < b->cap)) {
                memcpy(b->data + b->len, s + i, j - i);
                b->len += j - i;
                b->data[b->len] = '\0';
            } else {
                sonde__buf_append(b, s + i, j - i);
            }
        }
        if (j == n)
            break;
        /* An escape or a run of non-ASCII: let the core escaper take the
         * whole rest of the special run. */
        size_t k = j;
        while (k < n && needs_esc[u[k]])
            k++;
        /* Do not split a UTF-8 sequence whose continuation bytes follow. */
        sonde__buf_json_escape(b, s + j, k - j);
        i = k;
    }
}

/* Escape s[0..n) (string body, no quotes) within the budget. cut: the value
 * was already cut when it was copied, so it gets the marker too. */
static void esc(fstate *st, const char *s, size_t n, int cut)
{
    sonde_buf *b = st->out;
    size_t r = room(st);
    if (n <= (SIZE_MAX - 64) / 6 && n * 6 + MARK_LEN + 2 <= r) {
        esc_fast(b, s, n);
    } else {
        size_t cap = r > MARK_LEN + 2 ? r - MARK_LEN - 2 : 0;
        size_t start = b->len;
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;
        while (i < n) {
            size_t ul = utf8_len(u + i, n - i);
            if (ul == 0)
                ul = 1;
            size_t before = b->len;
            if (sonde__buf_json_escape(b, s + i, ul) != SONDE_OK || b->len - start > cap) {
                b->len = before;
                if (b->data)
                    b->data[before] = '\0';
                cut = 1;
                break;
            }
            i += ul;
        }
    }
    if (cut) {
        PUTLIT(st, LOG_TRUNC_MARK);
        st->truncated = 1;
    }
}

/* Whether a console value can be written without quotes. */
static int console_bare(const char *s, size_t n)
{
    if (n == 0 || n > 256)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:/@+-*", c)))
            return 0;
    }
    return 1;
}

/* A string value, masked unless premasked, quoted (or bare in console top
 * level when safe). */
static void put_string(fstate *st, const char *s, size_t n, int premasked, int cut, int bare_ok)
{
    fmt_cache *fc = st->fc;
    if (!premasked && sonde__mask_enabled()) {
        sonde_buf_reset(&fc->tmp);
        if (sonde__mask_value(s, n, &fc->tmp) == 1) {
            s = fc->tmp.data;
            n = fc->tmp.len;
        }
    }
    if (bare_ok && !cut && console_bare(s, n) && n + 8 < room(st)) {
        puts_raw(st, s, n);
        return;
    }
    putc_raw(st, '"');
    esc(st, s, n, cut);
    putc_raw(st, '"');
}

static void put_i64(fstate *st, int64_t v)
{
    char tmp[24];
    size_t o = 0;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        tmp[o++] = '-';
        u = (uint64_t)0 - u;
    }
    o += sonde__fmt_u64(tmp + o, u);
    puts_raw(st, tmp, o);
}

static void put_u64v(fstate *st, uint64_t v)
{
    char tmp[24];
    size_t o = sonde__fmt_u64(tmp, v);
    puts_raw(st, tmp, o);
}

static void put_key(fstate *st, const char *k, size_t n, int top_console)
{
    if (top_console) {
        if (st->color)
            PUTLIT(st, "\033[2m");
        /* Keys in console form: escape like JSON but without quotes. */
        esc(st, k, n, 0);
        PUTLIT(st, "=");
        if (st->color)
            PUTLIT(st, "\033[0m");
        return;
    }
    /* Keys are short and almost always plain: check inline, copy once. */
    sonde_buf *b = st->out;
    if (n <= 64 && b->len + n + 4 < b->cap && b->len + n + 4 < st->limit) {
        const unsigned char *u = (const unsigned char *)k;
        size_t i = 0;
        while (i < n && !needs_esc[u[i]])
            i++;
        if (i == n) {
            char *o = b->data + b->len;
            o[0] = '"';
            memcpy(o + 1, k, n);
            o[n + 1] = '"';
            o[n + 2] = ':';
            b->len += n + 3;
            b->data[b->len] = '\0';
            return;
        }
    }
    putc_raw(st, '"');
    esc(st, k, n, 0);
    PUTLIT(st, "\":");
}

static void put_errno_text(fstate *st, int e)
{
    char buf[256];
    const char *t = strerror_r(e, buf, sizeof buf);
    put_string(st, t ? t : "unknown error", t ? strlen(t) : 13, 1, 0, 0);
}

/*
 * Render the items of a blob into the container the caller opened (an
 * object at the top). *count is the number of items already in that
 * container (for separators). Backtrace items are skipped (rendered by
 * put_backtrace).
 */
static void render_blob(fstate *st, const char *blob, size_t len, int *count)
{
    struct {
        char is_list;
        int count;
    } stk[LOG_MAX_NEST + 2];
    int d = 0, skip = 0;
    stk[0].is_list = 0;
    stk[0].count = *count;
    int masking = sonde__mask_enabled();
    size_t off = 0;
    fb_item it;
    while (sonde__fb_next(blob, len, &off, &it)) {
        if (it.type == SONDE_FIELD_BACKTRACE)
            continue;
        if (skip) {
            if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST)
                skip++;
            else if (it.type == SONDE_FIELD_CLOSE)
                skip--;
            continue;
        }
        if (it.type == SONDE_FIELD_CLOSE) {
            if (d > 0) {
                putc_raw(st, stk[d].is_list ? ']' : '}');
                d--;
            }
            continue;
        }
        int top_console = st->console && d == 0;
        size_t need = it.klen * 6 + 48;
        if (room(st) < need) {
            st->truncated = 1;
            break;
        }
        if (stk[d].count++)
            putc_raw(st, top_console ? ' ' : ',');
        if (!stk[d].is_list)
            put_key(st, it.key, it.klen, top_console);
        if (!stk[d].is_list && masking && !(it.flags & FB_PREMASKED) &&
            sonde__mask_key(it.key, it.klen)) {
            put_string(st, "***", 3, 1, 0, top_console);
            if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST)
                skip = 1;
            continue;
        }
        switch (it.type) {
        case SONDE_FIELD_STR:
            put_string(st, it.s, it.slen, it.flags & FB_PREMASKED, it.flags & FB_TRUNCATED,
                       top_console);
            break;
        case SONDE_FIELD_INT:
            put_i64(st, it.v.i);
            break;
        case SONDE_FIELD_UINT:
            put_u64v(st, it.v.u);
            break;
        case SONDE_FIELD_DOUBLE:
            put_double(st, it.v.d);
            break;
        case SONDE_FIELD_BOOL:
            if (it.v.b)
                PUTLIT(st, "true");
            else
                PUTLIT(st, "false");
            break;
        case SONDE_FIELD_NULL:
            PUTLIT(st, "null");
            break;
        case SONDE_FIELD_OBJECT:
        case SONDE_FIELD_LIST:
            if (d >= LOG_MAX_NEST) {
                PUTLIT(st, "null");
                skip = 1;
                break;
            }
            putc_raw(st, it.type == SONDE_FIELD_LIST ? '[' : '{');
            d++;
            stk[d].is_list = it.type == SONDE_FIELD_LIST;
            stk[d].count = 0;
            break;
        case SONDE_FIELD_ERRNO:
            put_i64(st, it.v.i);
            if (!stk[d].is_list) {
                putc_raw(st, top_console ? ' ' : ',');
                put_key(st, "error", 5, top_console);
                put_errno_text(st, (int)it.v.i);
            }
            break;
        default:
            PUTLIT(st, "null");
            break;
        }
    }
    while (d > 0) {
        putc_raw(st, stk[d].is_list ? ']' : '}');
        d--;
    }
    *count = stk[0].count;
}

static void put_backtrace(fstate *st, const rec_view *v)
{
    size_t off = 0;
    fb_item it;
    while (sonde__fb_next(v->fields, v->h.fields_len, &off, &it)) {
        if (it.type != SONDE_FIELD_BACKTRACE)
            continue;
        if (room(st) < 64) {
            st->truncated = 1;
            return;
        }
        if (st->console)
            PUTLIT(st, " backtrace=[");
        else
            PUTLIT(st, ",\"backtrace\":[");
        char **syms = it.bt_n ? backtrace_symbols(it.bt, (int)it.bt_n) : NULL;
        for (size_t i = 0; i < it.bt_n; i++) {
            if (room(st) < 32) {
                st->truncated = 1;
                break;
            }
            if (i)
                putc_raw(st, ',');
            char addr[32];
            const char *s = syms ? syms[i] : NULL;
            if (!s) {
                int l = snprintf(addr, sizeof addr, "%p", it.bt[i]);
                if (l < 0)
                    l = 0;
                if ((size_t)l >= sizeof addr)
                    l = sizeof addr - 1;
                addr[l] = '\0';
                s = addr;
            }
            putc_raw(st, '"');
            esc(st, s, strlen(s), 0);
            putc_raw(st, '"');
        }
        free(syms);
        putc_raw(st, ']');
        return;
    }
}

static void put_source(fstate *st, const rec_view *v, int console)
{
    const char *file = sonde__log_basename(v->h.file);
    if (!file)
        return;
    char num[24];
    size_t nl = sonde__fmt_u64(num, (uint64_t)(v->h.line < 0 ? 0 : v->h.line));
    if (console) {
        if (st->color)
            PUTLIT(st, " \033[2m(");
        else
            PUTLIT(st, " (");
    } else {
        PUTLIT(st, ",\"source\":\"");
    }
    esc(st, file, strnlen(file, 256), 0);
    putc_raw(st, ':');
    puts_raw(st, num, nl);
    if (v->h.func) {
        putc_raw(st, console ? ' ' : ':');
        esc(st, v->h.func, strnlen(v->h.func, 256), 0);
    }
    if (console)
        puts_raw(st, st->color ? ")\033[0m" : ")", st->color ? 5 : 1);
    else
        putc_raw(st, '"');
}

/* The source of a call site never changes: keep its rendered JSON in a
 * small direct-mapped cache of the formatter. */
#define SRC_CACHE 64
typedef struct {
    const char *file, *func;
    int line;
    unsigned short len;
    char text[170];
} src_entry;

static void put_source_json(fstate *st, const rec_view *v)
{
    fmt_cache *fc = st->fc;
    if (!v->h.file)
        return;
    if (!fc->src_cache)
        fc->src_cache = sonde__calloc(SRC_CACHE, sizeof(src_entry));
    src_entry *c = fc->src_cache;
    if (c) {
        uintptr_t h =
            ((uintptr_t)v->h.file >> 3) ^ ((uintptr_t)v->h.func >> 5) ^ (uintptr_t)v->h.line * 31u;
        c += h % SRC_CACHE;
        if (c->file == v->h.file && c->func == v->h.func && c->line == v->h.line && c->len &&
            c->len < room(st)) {
            puts_raw(st, c->text, c->len);
            return;
        }
    }
    size_t start = st->out->len;
    int was_truncated = st->truncated;
    st->truncated = 0;
    put_source(st, v, 0);
    int cut = st->truncated;
    st->truncated |= was_truncated;
    size_t len = st->out->len - start;
    if (c && !cut && len < sizeof c->text) {
        memcpy(c->text, st->out->data + start, len);
        c->len = (unsigned short)len;
        c->file = v->h.file;
        c->func = v->h.func;
        c->line = v->h.line;
    }
}

/* ,"pid":P,"tid":T — rendered again only when the thread changes. */
static void put_pid_tid(fstate *st, const rec_view *v)
{
    fmt_cache *fc = st->fc;
    if (fc->pt_len == 0 || fc->pt_pid != sonde__lg.pid || fc->pt_tid != v->h.tid) {
        char num[24];
        size_t o = 0;
        memcpy(fc->pt + o, ",\"pid\":", 7);
        o += 7;
        size_t nl = sonde__fmt_u64(num, (uint64_t)(sonde__lg.pid < 0 ? 0 : sonde__lg.pid));
        memcpy(fc->pt + o, num, nl);
        o += nl;
        memcpy(fc->pt + o, ",\"tid\":", 7);
        o += 7;
        nl = sonde__fmt_u64(num, (uint64_t)(v->h.tid < 0 ? 0 : v->h.tid));
        memcpy(fc->pt + o, num, nl);
        o += nl;
        fc->pt_len = o;
        fc->pt_pid = sonde__lg.pid;
        fc->pt_tid = v->h.tid;
    }
    puts_raw(st, fc->pt, fc->pt_len);
}

static size_t max_line(void)
{
    size_t m = atomic_load_explicit(&sonde__lg.max_line, memory_order_relaxed);
    return m ? m : LOG_DEFAULT_MAX_LINE;
}

static void format_json(fmt_cache *fc, sonde_buf *out)
{
    const rec_view *v = fc->v;
    fstate st = {.fc = fc, .out = out, .console = 0, .color = 0};
    size_t max = max_line();
    st.limit = max - TAIL_RESERVE;
    sonde__buf_reserve(out, 1024);
    char ts[32];
    sonde__fmt_rfc3339(v->h.ts_us, ts);
    PUTLIT(&st, "{\"timestamp\":\"");
    puts_raw(&st, ts, 27);
    PUTLIT(&st, "\",\"level\":\"");
    static const unsigned char level_len[] = {5, 5, 5, 4, 7, 5, 8, 3};
    puts_raw(&st, sonde_log_level_name(v->h.level),
             v->h.level <= SONDE_LOG_OFF ? level_len[v->h.level] : 1);
    PUTLIT(&st, "\",\"logger\":\"");
    const struct sonde_logger *lg = v->h.lg ? v->h.lg : &sonde__root_logger;
    if (lg->plain_name)
        puts_raw(&st, lg->name, lg->name_len);
    else
        esc(&st, lg->name, lg->name_len, 0);
    PUTLIT(&st, "\",\"message\":");
    int has_fields = (v->h.flags & REC_HAS_FIELDS) != 0;
    int has_ctx = v->h.cid_len || v->h.ctx_len;
    size_t lim = st.limit;
    if (has_fields || has_ctx)
        st.limit = out->len + room(&st) / 2;
    put_string(&st, v->msg, v->h.msg_len, 0, (v->h.flags & REC_MSG_CUT) != 0, 0);
    st.limit = lim;
    if (has_ctx) {
        PUTLIT(&st, ",\"correlation\":{");
        int count = 0;
        if (v->h.cid_len) {
            PUTLIT(&st, "\"correlation_id\":\"");
            esc(&st, v->cid, v->h.cid_len, 0);
            putc_raw(&st, '"');
            count = 1;
        }
        render_blob(&st, v->ctx, v->h.ctx_len, &count);
        putc_raw(&st, '}');
    }
    if (has_fields) {
        PUTLIT(&st, ",\"fields\":{");
        int count = 0;
        render_blob(&st, v->fields, v->h.fields_len, &count);
        putc_raw(&st, '}');
    }
    if (v->h.flags & REC_HAS_BT)
        put_backtrace(&st, v);
    st.limit = max - 80;
    put_source_json(&st, v);
    put_pid_tid(&st, v);
    if (st.truncated || (v->h.flags & REC_TRUNCATED))
        PUTLIT(&st, ",\"truncated\":true");
    PUTLIT(&st, "}\n");
}

static const char *level_color(int level)
{
    switch (level) {
    case SONDE_LOG_TRACE:
        return "\033[90m";
    case SONDE_LOG_DEBUG:
        return "\033[36m";
    case SONDE_LOG_INFO:
        return "\033[32m";
    case SONDE_LOG_WARNING:
        return "\033[33m";
    case SONDE_LOG_ERROR:
        return "\033[31m";
    default:
        return "\033[1;31m";
    }
}

static void format_console(fmt_cache *fc, sonde_buf *out, int color)
{
    const rec_view *v = fc->v;
    fstate st = {.fc = fc, .out = out, .console = 1, .color = color};
    size_t max = max_line();
    st.limit = max - TAIL_RESERVE;
    char ts[32];
    sonde__fmt_rfc3339(v->h.ts_us, ts);
    puts_raw(&st, ts, 27);
    putc_raw(&st, ' ');
    const char *ln = sonde_log_level_name(v->h.level);
    if (color)
        sonde__buf_puts(out, level_color(v->h.level));
    sonde__buf_puts(out, ln);
    if (color)
        PUTLIT(&st, "\033[0m");
    for (size_t i = strlen(ln); i < 9; i++)
        putc_raw(&st, ' ');
    const struct sonde_logger *lg = v->h.lg ? v->h.lg : &sonde__root_logger;
    if (color)
        PUTLIT(&st, "\033[1m");
    esc(&st, lg->name, lg->name_len, 0);
    if (color)
        PUTLIT(&st, "\033[0m");
    PUTLIT(&st, ": ");
    int has_fields = (v->h.flags & REC_HAS_FIELDS) != 0;
    int has_ctx = v->h.cid_len || v->h.ctx_len;
    size_t lim = st.limit;
    if (has_fields || has_ctx)
        st.limit = out->len + room(&st) / 2;
    /* The message unquoted: escape control characters only. */
    {
        const char *s = v->msg;
        size_t n = v->h.msg_len;
        if (sonde__mask_enabled()) {
            sonde_buf_reset(&fc->tmp);
            if (sonde__mask_value(s, n, &fc->tmp) == 1) {
                s = fc->tmp.data;
                n = fc->tmp.len;
            }
        }
        esc(&st, s, n, (v->h.flags & REC_MSG_CUT) != 0);
    }
    st.limit = lim;
    int count = 1; /* separators: a space before every item */
    if (has_fields)
        render_blob(&st, v->fields, v->h.fields_len, &count);
    if (has_ctx) {
        if (v->h.cid_len && room(&st) > (size_t)v->h.cid_len + 32) {
            putc_raw(&st, ' ');
            put_key(&st, "correlation_id", 14, 1);
            esc(&st, v->cid, v->h.cid_len, 0);
            count++;
        }
        render_blob(&st, v->ctx, v->h.ctx_len, &count);
    }
    if (v->h.flags & REC_HAS_BT)
        put_backtrace(&st, v);
    st.limit = max - 40;
    put_source(&st, v, 1);
    if (st.truncated || (v->h.flags & REC_TRUNCATED))
        PUTLIT(&st, " [truncated]");
    putc_raw(&st, '\n');
}

void sonde__fc_reset(fmt_cache *fc, const rec_view *v)
{
    fc->v = v;
    fc->have_json = fc->have_console = fc->have_console_color = fc->have_msg = 0;
}

void sonde__fc_free(fmt_cache *fc)
{
    sonde_buf_free(&fc->json);
    sonde_buf_free(&fc->console);
    sonde_buf_free(&fc->console_color);
    sonde_buf_free(&fc->msg);
    sonde_buf_free(&fc->tmp);
    sonde_buf_free(&fc->tmp2);
    sonde__free(fc->src_cache);
    fc->src_cache = NULL;
}

int sonde__log_name_is_plain(const char *s, size_t n)
{
    return plain_run((const unsigned char *)s, 0, n) == n;
}

const sonde_buf *sonde__fc_json(fmt_cache *fc)
{
    if (!fc->have_json) {
        sonde_buf_reset(&fc->json);
        format_json(fc, &fc->json);
        fc->have_json = 1;
    }
    return &fc->json;
}

const sonde_buf *sonde__fc_console(fmt_cache *fc, int color)
{
    if (color) {
        if (!fc->have_console_color) {
            sonde_buf_reset(&fc->console_color);
            format_console(fc, &fc->console_color, 1);
            fc->have_console_color = 1;
        }
        return &fc->console_color;
    }
    if (!fc->have_console) {
        sonde_buf_reset(&fc->console);
        format_console(fc, &fc->console, 0);
        fc->have_console = 1;
    }
    return &fc->console;
}

const sonde_buf *sonde__fc_message(fmt_cache *fc)
{
    if (!fc->have_msg) {
        const rec_view *v = fc->v;
        sonde_buf_reset(&fc->msg);
        if (!sonde__mask_enabled() || sonde__mask_value(v->msg, v->h.msg_len, &fc->msg) != 1)
            sonde__buf_append(&fc->msg, v->msg, v->h.msg_len);
        fc->have_msg = 1;
    }
    return &fc->msg;
}

void sonde__fmt_masked_json(fmt_cache *fc, sonde_buf *out, const char *s, size_t n, int premasked)
{
    fstate st = {.fc = fc, .out = out, .limit = SIZE_MAX};
    if (!premasked && sonde__mask_enabled()) {
        sonde_buf_reset(&fc->tmp2);
        if (sonde__mask_value(s, n, &fc->tmp2) == 1) {
            s = fc->tmp2.data;
            n = fc->tmp2.len;
        }
    }
    esc(&st, s, n, 0);
}
