/*
 * The links between error capture and logging: the capturing thread's
 * correlation ID and context fields (read from the logger's per-thread
 * state, attached to each captured error), and the log lines of captured
 * errors and of the alerting machinery.
 */
#include "errors/errors_int.h"

#include "log/log_int.h"

#include <stdio.h>
#include <string.h>

int sonde__errors_context(const char **cid, size_t *cid_len, const char **blob, size_t *blob_len)
{
    return sonde__ctx_current(cid, cid_len, blob, blob_len);
}

int sonde__errors_context_json(sonde_buf *b, const char *blob, size_t len, bool *first)
{
    size_t off = 0;
    int depth = 0, rc = SONDE_OK;
    fb_item it;
    while (!rc && sonde__fb_next(blob, len, &off, &it)) {
        /* Top-level scalars only; nested objects and lists are skipped. */
        if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST) {
            depth++;
            continue;
        }
        if (it.type == SONDE_FIELD_CLOSE) {
            depth -= depth > 0;
            continue;
        }
        if (depth || !it.key)
            continue;
        char num[40];
        const char *s = NULL;
        size_t sl = 0;
        bool quoted = true;
        switch (it.type) {
        case SONDE_FIELD_STR:
            s = it.s, sl = it.slen;
            break;
        case SONDE_FIELD_INT:
            sl = (size_t)snprintf(num, sizeof num, "%lld", (long long)it.v.i);
            s = num, quoted = false;
            break;
        case SONDE_FIELD_UINT:
            sl = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)it.v.u);
            s = num, quoted = false;
            break;
        case SONDE_FIELD_DOUBLE: {
            sl = sonde__fmt_double(num, it.v.d);
            s = num, quoted = false;
            if (!(it.v.d == it.v.d) || it.v.d > 1.7e308 || it.v.d < -1.7e308)
                quoted = true;
            break;
        }
        case SONDE_FIELD_BOOL:
            s = it.v.b ? "true" : "false", sl = strlen(s), quoted = false;
            break;
        default:
            continue;
        }
        if (s == num)
            sl = strnlen(num, sizeof num - 1); /* snprintf's return, clamped */
        if (!*first)
            rc = sonde__buf_putc(b, ',');
        *first = false;
        rc = rc ? rc : sonde__buf_putc(b, '"');
        rc = rc ? rc : sonde__buf_json_escape(b, it.key, it.klen);
        rc = rc ? rc : sonde__buf_puts(b, "\":");
        if (quoted) {
            rc = rc ? rc : sonde__buf_putc(b, '"');
            rc = rc ? rc : sonde__buf_json_escape(b, s, sl);
            rc = rc ? rc : sonde__buf_putc(b, '"');
        } else {
            rc = rc ? rc : sonde__buf_append(b, s, sl);
        }
    }
    return rc;
}

void sonde__alerts_log(int level, const char *fmt, ...)
{
    static sonde_logger *lg;
    sonde_logger *l = __atomic_load_n(&lg, __ATOMIC_ACQUIRE);
    if (!l) {
        l = sonde_logger_get("sonde.alerts");
        __atomic_store_n(&lg, l, __ATOMIC_RELEASE);
    }
    if (!l || !sonde_log_enabled(l, level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sonde_log_write(l, level, NULL, 0, NULL, msg, NULL, 0);
}

/* Fields of a captured error's log line: type, severity, fingerprint,
 * operation, location, errno and the context pairs. */
#define LOG_FIELDS_MAX 48

void sonde__errors_log(sonde_errors *t, const err_rec *r, const err_view *v)
{
    static sonde_logger *lg;
    sonde_logger *l = __atomic_load_n(&lg, __ATOMIC_ACQUIRE);
    if (!l) {
        l = sonde_logger_get("sonde.errors");
        __atomic_store_n(&lg, l, __ATOMIC_RELEASE);
    }
    int level = r->severity == SONDE_SEVERITY_CRITICAL ? SONDE_LOG_CRITICAL : SONDE_LOG_ERROR;
    if (!l || !sonde_log_enabled(l, level))
        return;
    /* A budget of lines per second of the worker's clock: a flood of
     * errors must not become a flood of log lines (nor stall the worker on
     * a slow stderr). */
    uint64_t sec = sonde__now_mono_ns() / 1000000000u;
    if (sec != t->log_second) {
        if (t->log_skipped)
            sonde_log_writef(l, SONDE_LOG_WARNING, NULL, 0, NULL,
                             "%llu more captured errors were not logged (at most %d a second)",
                             (unsigned long long)t->log_skipped, ERRORS_LOG_PER_S);
        t->log_second = sec;
        t->log_count = 0;
        t->log_skipped = 0;
    }
    if (t->log_count >= ERRORS_LOG_PER_S) {
        t->log_skipped++;
        return;
    }
    t->log_count++;

    char msg[SONDE_ERROR_MESSAGE_MAX + 1], fp[17], where[ERR_FILE_MAX + ERR_FUNC_MAX + 24];
    memcpy(msg, v->msg, r->msg_len);
    msg[r->msg_len] = '\0';
    static const char hx[] = "0123456789abcdef";
    uint64_t x = r->fp;
    for (int i = 15; i >= 0; i--, x >>= 4)
        fp[i] = hx[x & 15];
    fp[16] = '\0';
    const char *base = v->file;
    for (size_t i = 0; i < r->file_len; i++)
        if (v->file[i] == '/')
            base = v->file + i + 1;
    int wl =
        snprintf(where, sizeof where, "%.*s:%d %.*s", (int)(r->file_len - (size_t)(base - v->file)),
                 base, (int)r->line, (int)r->func_len, v->func);
    if (wl < 0)
        where[0] = '\0';

    sonde_field f[LOG_FIELDS_MAX];
    size_t n = 0;
    f[n++] = sonde_field_strn("type", v->type, r->type_len);
    f[n++] = sonde_field_strn("severity", sonde_severity_name(r->severity), SONDE_FIELD_NTS);
    f[n++] = sonde_field_strn("fingerprint", fp, 16);
    if (r->op_len)
        f[n++] = sonde_field_strn("operation", v->op, r->op_len);
    if (r->file_len || r->func_len)
        f[n++] = sonde_field_strn("location", where, SONDE_FIELD_NTS);
    if (r->errnum)
        f[n++] = sonde_field_errno(r->errnum);
    if (r->ctx_count) {
        f[n++] = sonde__field("context", SONDE_FIELD_OBJECT);
        const char *c = v->ctx;
        for (unsigned i = 0; i < r->ctx_count && n + 2 < LOG_FIELDS_MAX; i++) {
            const char *val = c + strlen(c) + 1;
            f[n++] = sonde_field_strn(c, val, SONDE_FIELD_NTS);
            c = val + strlen(val) + 1;
        }
        f[n++] = sonde__field(NULL, SONDE_FIELD_CLOSE);
    }
    /* The line carries the capturing thread's correlation: push it as a
     * frame on the worker for the one write. */
    int token = 0;
    if (r->cid_len) {
        char cid[ERR_CID_MAX + 1];
        memcpy(cid, v->cid, r->cid_len);
        cid[r->cid_len] = '\0';
        sonde_field cf[32];
        size_t cn = 0, off = 0;
        fb_item it;
        int depth = 0;
        while (cn < SONDE_ARRAY_LEN(cf) && sonde__fb_next(v->lctx, r->lctx_len, &off, &it)) {
            if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST)
                depth++;
            else if (it.type == SONDE_FIELD_CLOSE)
                depth -= depth > 0;
            else if (!depth && it.key && it.type == SONDE_FIELD_STR)
                cf[cn++] = (sonde_field){
                    .key = it.key, .v.s = it.s, .len = it.slen, .type = SONDE_FIELD_STR};
        }
        /* Context keys in the blob are not NUL-terminated: copy them. */
        char keys[32][LOG_KEY_MAX + 1];
        off = 0;
        size_t k = 0;
        depth = 0;
        while (k < cn && sonde__fb_next(v->lctx, r->lctx_len, &off, &it)) {
            if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST)
                depth++;
            else if (it.type == SONDE_FIELD_CLOSE)
                depth -= depth > 0;
            else if (!depth && it.key && it.type == SONDE_FIELD_STR) {
                size_t kl = it.klen < LOG_KEY_MAX ? it.klen : LOG_KEY_MAX;
                memcpy(keys[k], it.key, kl);
                keys[k][kl] = '\0';
                cf[k].key = keys[k];
                k++;
            }
        }
        token = sonde_log_context_push(cid, cf, cn);
    }
    sonde_log_write(l, level, NULL, 0, NULL, msg, f, n);
    if (token > 0)
        sonde_log_context_pop(token);
}
