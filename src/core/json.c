/* A recursive-descent JSON reader (RFC 8259), bounded in size and depth. */
#include "core/json.h"

#include "core/internal.h"
#include "core/text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t n, i;
    char *err;
    size_t errlen;
    bool failed;
} parser;

/* Record the first failure, at byte `at`. */
static void fail_at(parser *p, size_t at, const char *msg)
{
    if (!p->failed && p->err && p->errlen)
        snprintf(p->err, p->errlen, "%s at byte %zu", msg, at);
    p->failed = true;
}

static void fail(parser *p, const char *msg)
{
    fail_at(p, p->i, msg);
}

static void skip_ws(parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool parse_value(parser *p, sonde__json *out, int depth);

/* Four hex digits at s[0..4) (the caller checked they are in bounds). */
static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(char *o, size_t *len, unsigned cp)
{
    if (cp < 0x80) {
        o[(*len)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*len)++] = (char)(0xC0 | (cp >> 6));
        o[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*len)++] = (char)(0xE0 | (cp >> 12));
        o[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*len)++] = (char)(0xF0 | (cp >> 18));
        o[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*len)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* The offset of the first byte in s[start..end) that breaks UTF-8. */
static size_t first_bad_utf8(const char *s, size_t start, size_t end)
{
    size_t i = start;
    while (i < end) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (i + l > end || !sonde__utf8_ok(s + i, l))
            return i;
        i += l;
    }
    return end;
}

/* p->s[p->i] is the opening quote. A decoded string is never longer than
 * its escaped form, so one allocation of the raw length suffices. */
static char *parse_string(parser *p, size_t *len_out)
{
    size_t open = p->i++;
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20) {
            fail(p, "control character in string");
            return NULL;
        }
        p->i += c == '\\' ? 2 : 1;
    }
    if (p->i >= p->n) {
        fail_at(p, open, "unterminated string");
        return NULL;
    }
    size_t end = p->i;
    if (!sonde__utf8_ok(p->s + start, end - start)) {
        fail_at(p, first_bad_utf8(p->s, start, end), "invalid UTF-8 in string");
        return NULL;
    }
    char *o = sonde__malloc(end - start + 1);
    if (!o) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t len = 0;
    for (size_t i = start; i < end;) {
        char c = p->s[i++];
        if (c != '\\') {
            o[len++] = c;
            continue;
        }
        size_t esc = i - 1;
        char e = p->s[i++];
        switch (e) {
        case '"':
        case '\\':
        case '/':
            o[len++] = e;
            break;
        case 'b':
            o[len++] = '\b';
            break;
        case 'f':
            o[len++] = '\f';
            break;
        case 'n':
            o[len++] = '\n';
            break;
        case 'r':
            o[len++] = '\r';
            break;
        case 't':
            o[len++] = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (i + 4 > end || hex4(p->s + i, &cp) != 0) {
                sonde__free(o);
                fail_at(p, esc, "bad \\u escape");
                return NULL;
            }
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 > end || p->s[i] != '\\' || p->s[i + 1] != 'u' ||
                    hex4(p->s + i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    sonde__free(o);
                    fail_at(p, esc, "unpaired surrogate in \\u escape");
                    return NULL;
                }
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                sonde__free(o);
                fail_at(p, esc, "unpaired surrogate in \\u escape");
                return NULL;
            } else if (cp == 0) {
                sonde__free(o);
                fail_at(p, esc, "NUL character (\\u0000) in string");
                return NULL;
            }
            /* \uXXXX is 6 bytes (a pair 12), its UTF-8 at most 4. */
            put_utf8(o, &len, cp);
            break;
        }
        default:
            sonde__free(o);
            fail_at(p, esc, "bad escape");
            return NULL;
        }
    }
    p->i = end + 1; /* past the closing quote */
    o[len] = '\0';
    if (len_out)
        *len_out = len;
    return o;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(parser *p, sonde__json *out)
{
    size_t start = p->i, i = p->i;
    const char *s = p->s;
    if (i < p->n && s[i] == '-')
        i++;
    if (i < p->n && s[i] == '0') {
        i++;
    } else if (i < p->n && is_digit(s[i])) {
        while (i < p->n && is_digit(s[i]))
            i++;
    } else {
        fail_at(p, i, "bad number: expected a digit");
        return false;
    }
    if (i < p->n && s[i] == '.') {
        i++;
        if (i >= p->n || !is_digit(s[i])) {
            fail_at(p, i, "bad number: expected a digit after '.'");
            return false;
        }
        while (i < p->n && is_digit(s[i]))
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->n || !is_digit(s[i])) {
            fail_at(p, i, "bad number: expected a digit in the exponent");
            return false;
        }
        while (i < p->n && is_digit(s[i]))
            i++;
    }
    size_t len = i - start;
    if (len > 64) {
        fail_at(p, start, "bad number: longer than 64 characters");
        return false;
    }
    char tmp[65];
    memcpy(tmp, s + start, len);
    tmp[len] = '\0';
    char *end;
    out->number = sonde__strtod(tmp, &end);
    out->type = SONDE__JSON_NUMBER;
    p->i = i;
    return true;
}

static bool literal(parser *p, const char *word)
{
    size_t l = strlen(word);
    if (p->i + l > p->n || memcmp(p->s + p->i, word, l) != 0)
        return false;
    p->i += l;
    return true;
}

static bool push(sonde__json *arr, char *key, sonde__json *v, size_t *cap)
{
    if (arr->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        sonde__json *ni = sonde__realloc(arr->items, nc * sizeof *ni);
        if (!ni)
            return false;
        arr->items = ni;
        if (arr->type == SONDE__JSON_OBJECT) {
            char **nk = sonde__realloc(arr->keys, nc * sizeof *nk);
            if (!nk)
                return false;
            arr->keys = nk;
        }
        *cap = nc;
    }
    arr->items[arr->count] = *v;
    if (arr->type == SONDE__JSON_OBJECT)
        arr->keys[arr->count] = key;
    arr->count++;
    return true;
}

static void free_inner(sonde__json *v);

static bool parse_container(parser *p, sonde__json *out, int depth, bool object)
{
    out->type = object ? SONDE__JSON_OBJECT : SONDE__JSON_ARRAY;
    size_t cap = 0;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) {
        p->i++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (object) {
            if (p->i >= p->n || p->s[p->i] != '"') {
                fail(p, p->i >= p->n ? "unexpected end: expected a key" : "expected a key");
                return false;
            }
            key = parse_string(p, NULL);
            if (!key)
                return false;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                sonde__free(key);
                fail(p, "expected ':'");
                return false;
            }
            p->i++;
        }
        sonde__json v;
        memset(&v, 0, sizeof v);
        if (!parse_value(p, &v, depth + 1)) {
            sonde__free(key);
            free_inner(&v);
            return false;
        }
        if (!push(out, key, &v, &cap)) {
            sonde__free(key);
            free_inner(&v);
            fail(p, "out of memory");
            return false;
        }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) {
            p->i++;
            return true;
        }
        if (p->i >= p->n)
            fail(p, object ? "unexpected end: expected ',' or '}'"
                           : "unexpected end: expected ',' or ']'");
        else
            fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static bool parse_value(parser *p, sonde__json *out, int depth)
{
    if (depth > SONDE__JSON_MAX_DEPTH) {
        fail(p, "nesting deeper than 64");
        return false;
    }
    skip_ws(p);
    if (p->i >= p->n) {
        fail(p, "unexpected end: expected a value");
        return false;
    }
    char c = p->s[p->i];
    if (c == '{' || c == '[')
        return parse_container(p, out, depth, c == '{');
    if (c == '"') {
        out->string = parse_string(p, &out->len);
        out->type = SONDE__JSON_STRING;
        return out->string != NULL;
    }
    if (c == '-' || is_digit(c))
        return parse_number(p, out);
    if (literal(p, "true")) {
        out->type = SONDE__JSON_BOOL;
        out->boolean = true;
        return true;
    }
    if (literal(p, "false")) {
        out->type = SONDE__JSON_BOOL;
        return true;
    }
    if (literal(p, "null")) {
        out->type = SONDE__JSON_NULL;
        return true;
    }
    fail(p, "unexpected character: expected a value");
    return false;
}

static void free_inner(sonde__json *v)
{
    sonde__free(v->string);
    for (size_t i = 0; i < v->count; i++) {
        free_inner(&v->items[i]);
        if (v->keys)
            sonde__free(v->keys[i]);
    }
    sonde__free(v->items);
    sonde__free(v->keys);
}

sonde__json *sonde__json_parse(const char *text, size_t n, char *err, size_t errlen)
{
    parser p = {.s = text, .n = n, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (!text) {
        fail(&p, "no input");
        return NULL;
    }
    if (n > SONDE__JSON_MAX_SIZE) {
        if (err && errlen)
            snprintf(err, errlen, "document of %zu bytes is larger than the limit of %zu", n,
                     SONDE__JSON_MAX_SIZE);
        return NULL;
    }
    sonde__json *v = sonde__calloc(1, sizeof *v);
    if (!v) {
        fail(&p, "out of memory");
        return NULL;
    }
    bool ok = parse_value(&p, v, 0);
    if (ok) {
        skip_ws(&p);
        if (p.i != p.n) {
            fail(&p, "trailing characters after the value");
            ok = false;
        }
    }
    if (!ok) {
        free_inner(v);
        sonde__free(v);
        return NULL;
    }
    return v;
}

void sonde__json_free(sonde__json *v)
{
    if (!v)
        return;
    free_inner(v);
    sonde__free(v);
}

const sonde__json *sonde__json_get(const sonde__json *obj, const char *key)
{
    if (!obj || obj->type != SONDE__JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *sonde__json_get_str(const sonde__json *obj, const char *key, const char *def)
{
    const sonde__json *v = sonde__json_get(obj, key);
    return v && v->type == SONDE__JSON_STRING ? v->string : def;
}

double sonde__json_get_num(const sonde__json *obj, const char *key, double def)
{
    const sonde__json *v = sonde__json_get(obj, key);
    return v && v->type == SONDE__JSON_NUMBER ? v->number : def;
}

bool sonde__json_get_bool(const sonde__json *obj, const char *key, bool def)
{
    const sonde__json *v = sonde__json_get(obj, key);
    return v && v->type == SONDE__JSON_BOOL ? v->boolean : def;
}

const char *sonde__json_type_name(sonde__json_type t)
{
    switch (t) {
    case SONDE__JSON_NULL:
        return "null";
    case SONDE__JSON_BOOL:
        return "boolean";
    case SONDE__JSON_NUMBER:
        return "number";
    case SONDE__JSON_STRING:
        return "string";
    case SONDE__JSON_ARRAY:
        return "array";
    case SONDE__JSON_OBJECT:
        return "object";
    }
    return "?";
}
