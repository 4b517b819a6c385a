/*
 * Fuzz target: whatever a program passes to the logger, every line is one
 * valid JSON object of valid UTF-8, ends with its only newline and fits the
 * configured line size. The input drives a list of fields (types, keys,
 * values, nesting), a context frame and the message.
 *
 * Input bytes are read as commands: op = byte % 12, then a length byte and
 * that many bytes of text for keys and strings.
 */
#include "log/log_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char line[1 << 16];
static size_t line_len;
static int lines;

static void capture(const sonde_log_record *r, const char *l, size_t n, void *ud)
{
    (void)r;
    (void)ud;
    if (n > sizeof line)
        abort();
    memcpy(line, l, n);
    line_len = n;
    lines++;
}

/* ---- a strict JSON validator (RFC 8259), UTF-8 checked ---- */
typedef struct {
    const unsigned char *p, *e;
    int depth;
} js;

static void ws(js *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int utf8(js *j)
{
    unsigned c = *j->p;
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (!len || j->p + len > j->e)
        return 0;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < len; i++) {
        if ((j->p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (j->p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    j->p += len;
    return 1;
}

static int str(js *j)
{
    if (j->p >= j->e || *j->p != '"')
        return 0;
    j->p++;
    while (j->p < j->e) {
        unsigned c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->e)
                return 0;
            c = *j->p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, j->p++)
                    if (j->p >= j->e || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
                        return 0;
            } else if (!strchr("\"\\/bfnrt", (int)c) || !c) {
                return 0;
            }
            continue;
        }
        if (!utf8(j))
            return 0;
    }
    return 0;
}

static int num(js *j)
{
    const unsigned char *s = j->p;
    if (j->p < j->e && *j->p == '-')
        j->p++;
    if (j->p >= j->e)
        return 0;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return 0;
    }
    if (j->p < j->e && *j->p == '.') {
        j->p++;
        if (j->p >= j->e || *j->p < '0' || *j->p > '9')
            return 0;
        while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->e && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->e && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->e || *j->p < '0' || *j->p > '9')
            return 0;
        while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    return j->p > s;
}

static int value(js *j);

static int lit(js *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int container(js *j, char open, char close)
{
    if (++j->depth > 64)
        return 0;
    j->p++;
    ws(j);
    if (j->p < j->e && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        ws(j);
        if (open == '{') {
            if (!str(j))
                return 0;
            ws(j);
            if (j->p >= j->e || *j->p != ':')
                return 0;
            j->p++;
        }
        if (!value(j))
            return 0;
        ws(j);
        if (j->p < j->e && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->e && *j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }
        return 0;
    }
}

static int value(js *j)
{
    ws(j);
    if (j->p >= j->e)
        return 0;
    switch (*j->p) {
    case '{':
        return container(j, '{', '}');
    case '[':
        return container(j, '[', ']');
    case '"':
        return str(j);
    case 't':
        return lit(j, "true");
    case 'f':
        return lit(j, "false");
    case 'n':
        return lit(j, "null");
    default:
        return num(j);
    }
}

static void check_line(void)
{
    if (line_len == 0 || line[line_len - 1] != '\n' || line_len > 4096)
        abort();
    if (memchr(line, '\n', line_len - 1))
        abort();
    js j = {(const unsigned char *)line, (const unsigned char *)line + line_len - 1, 0};
    ws(&j);
    if (j.p >= j.e || *j.p != '{' || !value(&j))
        abort();
    ws(&j);
    if (j.p != j.e)
        abort();
}

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.max_line_bytes = 4096;
    if (sonde_log_configure(&o) != SONDE_OK)
        abort();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = capture;
    if (sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, NULL) != SONDE_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    sonde_field f[64];
    size_t n = 0, i = 0;
    /* Text comes from the input itself (not NUL-terminated: STRN). */
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
#define TAKE(len_out, ptr_out)                                                                     \
    do {                                                                                           \
        size_t l_ = i < size ? data[i++] : 0;                                                      \
        if (l_ > size - i)                                                                         \
            l_ = size - i;                                                                         \
        ptr_out = copy + i;                                                                        \
        len_out = l_;                                                                              \
        i += l_;                                                                                   \
    } while (0)
    static char keys[64][32];
    while (i < size && n < 63) {
        unsigned op = data[i++] % 12;
        const char *t;
        size_t tl;
        TAKE(tl, t);
        size_t kl = tl < 31 ? tl : 31;
        memcpy(keys[n], t, kl);
        keys[n][kl] = '\0';
        const char *k = keys[n];
        uint64_t num = 0;
        for (size_t b = 0; b < tl && b < 8; b++)
            num = num << 8 | (unsigned char)t[b];
        double d;
        memcpy(&d, &num, sizeof d);
        switch (op) {
        case 0:
            f[n++] = SONDE_STRN(k, t, tl);
            break;
        case 1:
            f[n++] = SONDE_INT(k, (int64_t)num);
            break;
        case 2:
            f[n++] = SONDE_UINT(k, num);
            break;
        case 3:
            f[n++] = SONDE_DOUBLE(k, d);
            break;
        case 4:
            f[n++] = SONDE_BOOL(k, (int)(num & 1));
            break;
        case 5:
            f[n++] = SONDE_NULL(k);
            break;
        case 6:
            f[n++] = SONDE_OBJECT(k);
            break;
        case 7:
            f[n++] = SONDE_LIST(k);
            break;
        case 8:
            f[n++] = SONDE_CLOSE();
            break;
        case 9:
            f[n++] = SONDE_ERRNUM((int)(num % 200));
            break;
        case 10:
            f[n++] = SONDE_STR(k, NULL);
            break;
        default:
            f[n++] = SONDE_STRN("password", t, tl);
            break;
        }
    }
    /* The first half of the fields also become a context frame. */
    int tok = sonde_log_context_push(size && data[0] & 1 ? copy : NULL, f, n / 2);
    int before = lines;
    sonde_log_write(sonde_logger_get("fuzz"), SONDE_LOG_INFO, __FILE__, __LINE__, __func__, copy, f,
                    n);
    if (lines != before + 1)
        abort();
    check_line();
    before = lines;
    sonde_log_writef(NULL, SONDE_LOG_WARNING, NULL, 0, NULL, "%s|%zu", copy, size);
    if (lines != before + 1)
        abort();
    check_line();
    sonde_log_context_pop(tok);
    free(copy);
    return 0;
}
