/*
 * DSN masking, secrets from files and the environment, cell values.
 *
 * sonde_sql_mask_dsn understands the three shapes a DSN takes here:
 *  - libpq keyword/value: `host=h port=5432 password='a b\'c'`; the value of
 *    password and sslpassword is replaced, quoted or not; text that does
 *    not parse as keyword/value is cut (replaced by "...") rather than
 *    shown, since it might hold a secret the parser did not recognise;
 *  - URIs: `postgresql://user:secret@host/db?password=x&sslmode=y` and
 *    SQLite `file:path?mode=ro`; the userinfo password and the password
 *    parameters are replaced;
 *  - anything else (an SQLite path) is shown as it is.
 */
#include "sql/sql_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MASK "***"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool secret_key(const char *k, size_t n)
{
    return (n == 8 && strncasecmp(k, "password", 8) == 0) ||
           (n == 11 && strncasecmp(k, "sslpassword", 11) == 0);
}

/* Whether s starts with "key =" (the keyword/value form). */
static bool looks_kv(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    size_t k = i;
    while (i < n && is_key_char(s[i]))
        i++;
    if (i == k)
        return false;
    while (i < n && is_space(s[i]))
        i++;
    return i < n && s[i] == '=';
}

static int mask_kv(const char *s, size_t n, sonde_buf *out)
{
    int masked = 0, rc = SONDE_OK;
    size_t i = 0;
    while (i < n && rc == SONDE_OK) {
        size_t sp = i;
        while (i < n && is_space(s[i]))
            i++;
        if (i == n) {
            rc = sonde__buf_append(out, s + sp, i - sp);
            break;
        }
        size_t k = i;
        while (i < n && is_key_char(s[i]))
            i++;
        size_t kend = i;
        while (i < n && is_space(s[i]))
            i++;
        if (kend == k || i == n || s[i] != '=') {
            /* Not keyword=value: cut the rest rather than risk showing a
             * secret. */
            rc = sonde__buf_append(out, s + sp, k - sp);
            if (rc == SONDE_OK)
                rc = sonde__buf_puts(out, "...");
            masked = 1;
            break;
        }
        i++; /* '=' */
        while (i < n && is_space(s[i]))
            i++;
        size_t v = i;
        if (i < n && s[i] == '\'') {
            i++;
            while (i < n && s[i] != '\'') {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                i++;
            }
            if (i < n)
                i++; /* closing quote; an unterminated one runs to the end */
        } else {
            while (i < n && !is_space(s[i])) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                i++;
            }
        }
        rc = sonde__buf_append(out, s + sp, v - sp);
        if (rc == SONDE_OK) {
            if (secret_key(s + k, kend - k)) {
                rc = sonde__buf_puts(out, MASK);
                masked = 1;
            } else {
                rc = sonde__buf_append(out, s + v, i - v);
            }
        }
    }
    return rc == SONDE_OK ? masked : rc;
}

static int mask_uri(const char *s, size_t n, size_t scheme_end, sonde_buf *out)
{
    int masked = 0;
    size_t i = scheme_end;
    int rc = sonde__buf_append(out, s, i);
    if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') {
        /* authority: up to the first '/', '?' or '#' */
        size_t a = i + 2, e = a;
        while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#')
            e++;
        size_t at = e;
        for (size_t j = a; j < e; j++)
            if (s[j] == '@')
                at = j;
        if (rc == SONDE_OK)
            rc = sonde__buf_append(out, s + i, 2);
        if (at < e) {
            size_t colon = at;
            for (size_t j = a; j < at; j++)
                if (s[j] == ':') {
                    colon = j;
                    break;
                }
            if (rc == SONDE_OK)
                rc = sonde__buf_append(out, s + a, colon - a);
            if (colon < at) {
                if (rc == SONDE_OK)
                    rc = sonde__buf_puts(out, ":" MASK);
                masked = 1;
            }
            if (rc == SONDE_OK)
                rc = sonde__buf_append(out, s + at, e - at);
        } else if (rc == SONDE_OK) {
            rc = sonde__buf_append(out, s + a, e - a);
        }
        i = e;
    }
    /* path */
    size_t q = i;
    while (q < n && s[q] != '?' && s[q] != '#')
        q++;
    if (rc == SONDE_OK)
        rc = sonde__buf_append(out, s + i, q - i);
    i = q;
    if (i < n && s[i] == '?') {
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(out, '?');
        i++;
        while (i < n && s[i] != '#' && rc == SONDE_OK) {
            size_t p = i;
            while (i < n && s[i] != '&' && s[i] != '#')
                i++;
            size_t eq = p;
            while (eq < i && s[eq] != '=')
                eq++;
            if (eq < i && secret_key(s + p, eq - p)) {
                rc = sonde__buf_append(out, s + p, eq + 1 - p);
                if (rc == SONDE_OK)
                    rc = sonde__buf_puts(out, MASK);
                masked = 1;
            } else {
                rc = sonde__buf_append(out, s + p, i - p);
            }
            if (i < n && s[i] == '&' && rc == SONDE_OK) {
                rc = sonde__buf_putc(out, '&');
                i++;
            }
        }
    }
    if (i < n && rc == SONDE_OK)
        rc = sonde__buf_append(out, s + i, n - i);
    return rc == SONDE_OK ? masked : rc;
}

int sonde_sql_mask_dsn(const char *dsn, size_t n, sonde_buf *out)
{
    if (!out || (!dsn && n))
        return SONDE_EINVAL;
    if (!dsn)
        return 0;
    /* A NUL inside the text ends it, as libpq and SQLite would read it. */
    const char *z = memchr(dsn, '\0', n);
    if (z)
        n = (size_t)(z - dsn);
    int rc = sonde__buf_reserve(out, n + 1);
    if (rc)
        return rc;
    if (looks_kv(dsn, n))
        return mask_kv(dsn, n, out);
    /* scheme ":" where the scheme is letters, digits, + - . */
    size_t i = 0;
    while (i < n && (is_key_char(dsn[i]) || dsn[i] == '+' || dsn[i] == '-' || dsn[i] == '.'))
        i++;
    if (i > 1 && i < n && dsn[i] == ':' &&
        ((i + 2 < n && dsn[i + 1] == '/' && dsn[i + 2] == '/') ||
         (i == 4 && strncasecmp(dsn, "file", 4) == 0)))
        return mask_uri(dsn, n, i + 1, out);
    rc = sonde__buf_append(out, dsn, n);
    return rc == SONDE_OK ? 0 : rc;
}

void sonde__sql_set_err(char *err, size_t errn, const char *msg)
{
    if (!err || errn == 0)
        return;
    sonde_buf b;
    sonde_buf_init(&b);
    b.max = 4096;
    size_t n = strlen(msg);
    /* Messages quote DSNs or parts of them: the log masking rules catch
     * URL passwords and password=... pairs anywhere in the text. */
    if (sonde_log_mask(msg, n, &b) < 0 || !b.data) {
        sonde_buf_reset(&b);
        sonde__buf_append(&b, msg, n);
    }
    size_t len = b.len < errn - 1 ? b.len : errn - 1;
    for (size_t i = 0; i < len; i++)
        err[i] = b.data[i] == '\n' || b.data[i] == '\r' || b.data[i] == '\t' ? ' ' : b.data[i];
    while (len > 0 && err[len - 1] == ' ')
        len--;
    err[len] = '\0';
    sonde_buf_free(&b);
}

static char *read_secret_file(const char *path, char *why, size_t whyn)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whyn, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = sonde__malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    bool more = buf && fgetc(f) != EOF;
    fclose(f);
    if (!buf) {
        snprintf(why, whyn, "out of memory");
        return NULL;
    }
    if (more) {
        sonde__free(buf);
        snprintf(why, whyn, "%s is larger than 64 KiB", path);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        memset(buf, 0, n);
        sonde__free(buf);
        snprintf(why, whyn, "%s is empty or holds a NUL byte", path);
        return NULL;
    }
    return buf;
}

int sonde__sql_secret(const char *what, const char *text, const char *file, const char *env,
                      bool required, char **out, char *why, size_t whyn)
{
    *out = NULL;
    int given = (text != NULL) + (file != NULL) + (env != NULL);
    if (given > 1) {
        snprintf(why, whyn, "%s: give only one of the text, a file or a variable", what);
        return SONDE_EINVAL;
    }
    if (given == 0) {
        if (!required)
            return SONDE_OK;
        snprintf(why, whyn, "%s is required", what);
        return SONDE_EINVAL;
    }
    if (text) {
        if (!text[0]) {
            snprintf(why, whyn, "%s is empty", what);
            return SONDE_EINVAL;
        }
        *out = sonde__strdup(text);
    } else if (file) {
        char r[300];
        *out = read_secret_file(file, r, sizeof r);
        if (!*out) {
            snprintf(why, whyn, "%s: %s", what, r);
            return SONDE_EINVAL;
        }
        return SONDE_OK;
    } else {
        const char *v = getenv(env);
        if (!v || !v[0]) {
            snprintf(why, whyn, "%s: environment variable %s is not set", what, env);
            return SONDE_EINVAL;
        }
        *out = sonde__strdup(v);
    }
    if (!*out) {
        snprintf(why, whyn, "out of memory");
        return SONDE_ENOMEM;
    }
    return SONDE_OK;
}

bool sonde__sql_cell_value(const sql_cell *c, double *out)
{
    if (c->is_null || !c->text)
        return false;
    if (c->has_num) {
        *out = c->num;
        return true;
    }
    const char *s = c->text;
    if (strcmp(s, "t") == 0 || strcasecmp(s, "true") == 0) {
        *out = 1;
        return true;
    }
    if (strcmp(s, "f") == 0 || strcasecmp(s, "false") == 0) {
        *out = 0;
        return true;
    }
    while (is_space(*s))
        s++;
    if (!*s)
        return false;
    char *end = NULL;
    double v = sonde__strtod(s, &end);
    if (end == s)
        return false;
    while (is_space(*end))
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}
