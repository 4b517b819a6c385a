/* A small recursive-descent JSON reader (RFC 8259), bounded in depth. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct parser {
    const char *s;
    size_t n, i;
    size_t lim; /* end of the string being decoded */
    char *err;
    size_t errlen;
    bool failed;
} parser;

static void fail(parser *p, const char *msg)
{
    if (!p->failed && p->err && p->errlen)
        snprintf(p->err, p->errlen, "%s at byte %zu", msg, p->i);
    p->failed = true;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool parse_value(parser *p, json_value *out, int depth);

static int hex4(parser *p, unsigned *out)
{
    if (p->i + 4 > p->lim)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + (size_t)k];
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
    p->i += 4;
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

/* p->s[p->i] is the opening quote. A decoded string is never longer than
 * its escaped form, so one allocation of the raw length suffices. */
static char *parse_string(parser *p)
{
    p->i++;
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\')
            p->i++;
        p->i++;
    }
    if (p->i >= p->n) {
        fail(p, "unterminated string");
        return NULL;
    }
    size_t raw = p->i - start;
    p->lim = p->i; /* decoding never reads past the closing quote */
    char *o = malloc(raw + 1);
    if (!o) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t len = 0;
    p->i = start;
    while (p->i < p->lim) {
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c < 0x20) {
            free(o);
            fail(p, "control character in string");
            return NULL;
        }
        if (c != '\\') {
            o[len++] = (char)c;
            continue;
        }
        if (p->i >= p->lim) {
            free(o);
            fail(p, "bad escape");
            return NULL;
        }
        char e = p->s[p->i++];
        switch (e) {
        case '"':
            o[len++] = '"';
            break;
        case '\\':
            o[len++] = '\\';
            break;
        case '/':
            o[len++] = '/';
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
            unsigned cp;
            if (hex4(p, &cp) != 0) {
                free(o);
                fail(p, "bad \\u escape");
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && p->i + 6 <= p->lim && p->s[p->i] == '\\' &&
                p->s[p->i + 1] == 'u') {
                size_t save = p->i;
                p->i += 2;
                unsigned lo;
                if (hex4(p, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    p->i = save;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            /* \uXXXX is 6 bytes, its UTF-8 at most 4: still within raw. */
            put_utf8(o, &len, cp);
            break;
        }
        default:
            free(o);
            fail(p, "bad escape");
            return NULL;
        }
    }
    p->i = p->lim + 1; /* past the closing quote */
    o[len] = '\0';
    return o;
}

static bool parse_number(parser *p, json_value *out)
{
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-')
        p->i++;
    while (p->i < p->n &&
           ((p->s[p->i] >= '0' && p->s[p->i] <= '9') || p->s[p->i] == '.' || p->s[p->i] == 'e' ||
            p->s[p->i] == 'E' || p->s[p->i] == '+' || p->s[p->i] == '-'))
        p->i++;
    size_t len = p->i - start;
    if (len == 0 || len > 64) {
        fail(p, "bad number");
        return false;
    }
    char tmp[65];
    memcpy(tmp, p->s + start, len);
    tmp[len] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (*end != '\0' || end == tmp) {
        fail(p, "bad number");
        return false;
    }
    out->type = JSON_NUMBER;
    out->number = v;
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

static bool push(json_value *arr, char *key, json_value *v, size_t *cap)
{
    if (arr->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        json_value *ni = realloc(arr->items, nc * sizeof *ni);
        if (!ni)
            return false;
        arr->items = ni;
        if (arr->type == JSON_OBJECT) {
            char **nk = realloc(arr->keys, nc * sizeof *nk);
            if (!nk)
                return false;
            arr->keys = nk;
        }
        *cap = nc;
    }
    arr->items[arr->count] = *v;
    if (arr->type == JSON_OBJECT)
        arr->keys[arr->count] = key;
    arr->count++;
    return true;
}

static void free_inner(json_value *v);

static bool parse_container(parser *p, json_value *out, int depth, bool object)
{
    out->type = object ? JSON_OBJECT : JSON_ARRAY;
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
                fail(p, "expected a key");
                return false;
            }
            key = parse_string(p);
            if (!key)
                return false;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                fail(p, "expected ':'");
                return false;
            }
            p->i++;
        }
        json_value v;
        memset(&v, 0, sizeof v);
        if (!parse_value(p, &v, depth + 1)) {
            free(key);
            free_inner(&v);
            return false;
        }
        if (!push(out, key, &v, &cap)) {
            free(key);
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
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static bool parse_value(parser *p, json_value *out, int depth)
{
    if (depth > MAX_DEPTH) {
        fail(p, "nesting too deep");
        return false;
    }
    skip_ws(p);
    if (p->i >= p->n) {
        fail(p, "unexpected end");
        return false;
    }
    char c = p->s[p->i];
    if (c == '{' || c == '[')
        return parse_container(p, out, depth, c == '{');
    if (c == '"') {
        out->string = parse_string(p);
        out->type = JSON_STRING;
        return out->string != NULL;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, out);
    if (literal(p, "true")) {
        out->type = JSON_BOOL;
        out->boolean = true;
        return true;
    }
    if (literal(p, "false")) {
        out->type = JSON_BOOL;
        return true;
    }
    if (literal(p, "null")) {
        out->type = JSON_NULL;
        return true;
    }
    fail(p, "unexpected character");
    return false;
}

static void free_inner(json_value *v)
{
    free(v->string);
    for (size_t i = 0; i < v->count; i++) {
        free_inner(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

json_value *json_parse(const char *text, size_t n, char *err, size_t errlen)
{
    parser p = {.s = text, .n = n, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    json_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (!text || !parse_value(&p, v, 0)) {
        if (!text)
            fail(&p, "no input");
        free_inner(v);
        free(v);
        return NULL;
    }
    skip_ws(&p);
    if (p.i != p.n) {
        fail(&p, "trailing characters");
        free_inner(v);
        free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v)
{
    if (!v)
        return;
    free_inner(v);
    free(v);
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *json_get_str(const json_value *obj, const char *key, const char *def)
{
    const json_value *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->string : def;
}

double json_get_num(const json_value *obj, const char *key, double def)
{
    const json_value *v = json_get(obj, key);
    return v && v->type == JSON_NUMBER ? v->number : def;
}
