/*
 * The field blob: a flat, self-describing copy of a field list, so that a
 * record owns every byte it refers to (the caller's strings may be gone by
 * the time the writer thread formats the line).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <execinfo.h>
#include <string.h>

/* Append with the common case (room already reserved by the caller)
 * inline: this runs on the application's thread for every field. */
static inline int bput(sonde_buf *b, const void *p, size_t n)
{
    if (SONDE_LIKELY(b->len + n < b->cap)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return SONDE_OK;
    }
    int rc = sonde__buf_append(b, p, n);
    return rc;
}

static int put_u8(sonde_buf *b, unsigned v)
{
    char c = (char)(unsigned char)v;
    return bput(b, &c, 1);
}

/* Make room for n more bytes; returns the write position or NULL. */
static inline char *room_for(sonde_buf *b, size_t n)
{
    if (SONDE_UNLIKELY(b->len + n >= b->cap) && sonde__buf_reserve(b, n) != SONDE_OK)
        return NULL;
    return b->data + b->len;
}

static inline char *write_head(char *o, int type, int flags, const char *key, size_t klen)
{
    o[0] = (char)(unsigned char)type;
    o[1] = (char)(unsigned char)flags;
    o[2] = (char)(unsigned char)(klen & 0xff);
    o[3] = (char)(unsigned char)(klen >> 8);
    if (klen)
        memcpy(o + 4, key, klen);
    return o + 4 + klen;
}

static inline int put_item_head(sonde_buf *b, int type, int flags, const char *key, size_t klen)
{
    if (klen > LOG_KEY_MAX)
        klen = LOG_KEY_MAX;
    char *o = room_for(b, 4 + klen);
    if (!o)
        return SONDE_ENOMEM;
    b->len = (size_t)(write_head(o, type, flags, key, klen) - b->data);
    return SONDE_OK;
}

static inline int put_str(sonde_buf *b, int flags, const char *key, size_t klen, const char *s,
                          size_t n)
{
    if (klen > LOG_KEY_MAX)
        klen = LOG_KEY_MAX;
    char *o = room_for(b, 8 + klen + n);
    if (!o)
        return SONDE_ENOMEM;
    o = write_head(o, SONDE_FIELD_STR, flags, key, klen);
    uint32_t l = (uint32_t)n;
    memcpy(o, &l, 4);
    if (n)
        memcpy(o + 4, s, n);
    b->len += 8 + klen + n;
    return SONDE_OK;
}

static inline int put_u64(sonde_buf *b, int type, int flags, const char *key, size_t klen,
                          const void *v8)
{
    if (klen > LOG_KEY_MAX)
        klen = LOG_KEY_MAX;
    char *o = room_for(b, 12 + klen);
    if (!o)
        return SONDE_ENOMEM;
    o = write_head(o, type, flags, key, klen);
    memcpy(o, v8, 8);
    b->len += 12 + klen;
    return SONDE_OK;
}

/* Cut n so that s[0..n) does not end inside a UTF-8 sequence: drop a
 * trailing partial sequence (at most 3 bytes). */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && back + 1 < need)
        return i - 1; /* incomplete sequence at the end */
    return n;
}

__attribute__((noinline)) int sonde__fb_encode(sonde_buf *out, const sonde_field *fields, size_t n,
                                               size_t budget, size_t value_max, int premask,
                                               int *kinds)
{
    int cut = 0;
    int depth = 0;
    int skip = 0; /* > 0 while inside a nested value whose key is secret */
    size_t used = 0;
    int pm = premask && sonde__mask_enabled();
    sonde_buf tmp;
    sonde_buf_init(&tmp);
    for (size_t i = 0; i < n; i++) {
        const sonde_field *f = &fields[i];
        const char *key = f->key ? f->key : "";
        /* Keys are short: measure inline, hand long ones to strnlen. */
        size_t klen = 0;
        while (klen < 16 && key[klen])
            klen++;
        if (klen == 16)
            klen += strnlen(key + 16, LOG_KEY_MAX - 16);
        int rc = 0;
        if (skip) {
            if (f->type == SONDE_FIELD_OBJECT || f->type == SONDE_FIELD_LIST)
                skip++;
            else if (f->type == SONDE_FIELD_CLOSE)
                skip--;
            continue;
        }
        if (f->type == SONDE_FIELD_BACKTRACE)
            *kinds |= REC_HAS_BT;
        else if (f->type != SONDE_FIELD_CLOSE && f->type != SONDE_FIELD_END)
            *kinds |= REC_HAS_FIELDS;
        int secret = pm && f->type != SONDE_FIELD_CLOSE && f->type != SONDE_FIELD_BACKTRACE &&
                     sonde__mask_key(key, klen);
        if (secret) {
            rc = put_str(out, FB_PREMASKED, key, klen, "***", 3);
            if (f->type == SONDE_FIELD_OBJECT || f->type == SONDE_FIELD_LIST)
                skip = 1; /* drop the nested value: only "***" is kept */
            if (rc)
                goto nomem;
            continue;
        }
        switch (f->type) {
        case SONDE_FIELD_STR: {
            if (!f->v.s) {
                rc = put_item_head(out, SONDE_FIELD_NULL, 0, key, klen);
                break;
            }
            size_t len = f->len == SONDE_FIELD_NTS ? strlen(f->v.s) : f->len;
            int flags = 0;
            size_t max = value_max;
            if (budget - used < max)
                max = budget - used;
            if (len > max) {
                len = utf8_cut(f->v.s, max);
                flags |= FB_TRUNCATED;
                cut = 1;
            }
            used += len;
            const char *s = f->v.s;
            if (pm) {
                sonde_buf_reset(&tmp);
                if (sonde__mask_value(s, len, &tmp) == 1) {
                    s = tmp.data;
                    len = tmp.len;
                }
                flags |= FB_PREMASKED;
            }
            rc = put_str(out, flags, key, klen, s, len);
            break;
        }
        case SONDE_FIELD_INT:
        case SONDE_FIELD_UINT:
        case SONDE_FIELD_DOUBLE:
            rc = put_u64(out, f->type, pm ? FB_PREMASKED : 0, key, klen, &f->v);
            break;
        case SONDE_FIELD_BOOL:
            rc = put_item_head(out, SONDE_FIELD_BOOL, 0, key, klen);
            if (!rc)
                rc = put_u8(out, f->v.b ? 1 : 0);
            break;
        case SONDE_FIELD_NULL:
            rc = put_item_head(out, SONDE_FIELD_NULL, 0, key, klen);
            break;
        case SONDE_FIELD_OBJECT:
        case SONDE_FIELD_LIST:
            if (depth >= LOG_MAX_NEST) {
                /* Too deep: skip the nested value entirely. */
                skip = 1;
                cut = 1;
                break;
            }
            depth++;
            rc = put_item_head(out, f->type, 0, key, klen);
            break;
        case SONDE_FIELD_CLOSE:
            if (depth > 0) {
                depth--;
                rc = put_item_head(out, SONDE_FIELD_CLOSE, 0, NULL, 0);
            }
            break;
        case SONDE_FIELD_ERRNO: {
            int32_t e = (int32_t)f->v.i;
            rc = put_item_head(out, SONDE_FIELD_ERRNO, 0, key, klen);
            if (!rc)
                rc = sonde__buf_append(out, &e, 4);
            break;
        }
        case SONDE_FIELD_BACKTRACE: {
            /* Skip sonde's frames: this function, emit (both noinline) and
             * the public entry point. */
            enum { SKIP = 3 };
            void *bt[LOG_MAX_BACKTRACE + SKIP];
            int nb = backtrace(bt, LOG_MAX_BACKTRACE + SKIP);
            uint16_t cnt = nb > SKIP ? (uint16_t)(nb - SKIP) : 0;
            rc = put_item_head(out, SONDE_FIELD_BACKTRACE, 0, key, klen);
            if (!rc)
                rc = sonde__buf_append(out, &cnt, 2);
            if (!rc && cnt)
                rc = sonde__buf_append(out, bt + SKIP, cnt * sizeof(void *));
            break;
        }
        default:
            break; /* unknown types (and END) are ignored */
        }
        if (rc)
            goto nomem;
    }
    while (depth > 0) {
        if (put_item_head(out, SONDE_FIELD_CLOSE, 0, NULL, 0))
            goto nomem;
        depth--;
    }
    sonde_buf_free(&tmp);
    return cut;
nomem:
    sonde_buf_free(&tmp);
    return SONDE_ENOMEM;
}

int sonde__fb_next(const char *p, size_t len, size_t *off, fb_item *it)
{
    size_t o = *off;
    if (o + 4 > len)
        return 0;
    const unsigned char *u = (const unsigned char *)p + o;
    it->type = u[0];
    it->flags = u[1];
    it->klen = (size_t)u[2] | ((size_t)u[3] << 8);
    o += 4;
    if (o + it->klen > len)
        return 0;
    it->key = p + o;
    o += it->klen;
    switch (it->type) {
    case SONDE_FIELD_STR: {
        uint32_t l;
        if (o + 4 > len)
            return 0;
        memcpy(&l, p + o, 4);
        o += 4;
        if (o + l > len)
            return 0;
        it->s = p + o;
        it->slen = l;
        o += l;
        break;
    }
    case SONDE_FIELD_INT:
    case SONDE_FIELD_UINT:
    case SONDE_FIELD_DOUBLE:
        if (o + 8 > len)
            return 0;
        memcpy(&it->v, p + o, 8);
        o += 8;
        break;
    case SONDE_FIELD_BOOL:
        if (o + 1 > len)
            return 0;
        it->v.b = p[o] != 0;
        o += 1;
        break;
    case SONDE_FIELD_ERRNO: {
        int32_t e;
        if (o + 4 > len)
            return 0;
        memcpy(&e, p + o, 4);
        it->v.i = e;
        o += 4;
        break;
    }
    case SONDE_FIELD_BACKTRACE: {
        uint16_t cnt;
        if (o + 2 > len)
            return 0;
        memcpy(&cnt, p + o, 2);
        o += 2;
        if (cnt > LOG_MAX_BACKTRACE || o + cnt * sizeof(void *) > len)
            return 0;
        memcpy(it->bt, p + o, cnt * sizeof(void *));
        it->bt_n = cnt;
        o += cnt * sizeof(void *);
        break;
    }
    case SONDE_FIELD_NULL:
    case SONDE_FIELD_OBJECT:
    case SONDE_FIELD_LIST:
    case SONDE_FIELD_CLOSE:
        break;
    default:
        return 0;
    }
    *off = o;
    return 1;
}

void sonde__rec_view(const void *rec, rec_view *v)
{
    const char *p = rec;
    memcpy(&v->h, p, sizeof v->h);
    size_t o = sizeof v->h;
    v->msg = p + o;
    o += v->h.msg_len;
    v->cid = p + o;
    o += v->h.cid_len;
    v->ctx = p + o;
    o += v->h.ctx_len;
    v->fields = p + o;
}
