/*
 * Fuzz target: DSN masking (sonde_sql_mask_dsn) and the SQL collector's
 * cell value parser. Invariants (abort on violation): when nothing is
 * masked the output is the input up to its first NUL; masking only removes
 * text or replaces it with "***" or "...": with every '*' and '.' removed,
 * the output is a subsequence of the input; any unquoted password=VALUE
 * masks to exactly password=***.
 */
#include "sql/sql_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_filler(char c)
{
    return c == '*' || c == '.';
}

static int subsequence(const char *in, size_t n, const char *out, size_t m)
{
    size_t i = 0;
    for (size_t j = 0; j < m; j++) {
        if (is_filler(out[j]))
            continue;
        while (i < n && (is_filler(in[i]) || in[i] != out[j]))
            i++;
        if (i == n)
            return 0;
        i++;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t n = size;
    const char *z = memchr(s, '\0', size);
    if (z)
        n = (size_t)(z - s);
    sonde_buf a;
    sonde_buf_init(&a);
    int rc = sonde_sql_mask_dsn(s, size, &a);
    if (rc >= 0) {
        const char *o = a.data ? a.data : "";
        if (rc == 0 && (a.len != n || (n && memcmp(o, s, n) != 0)))
            abort();
        if (!subsequence(s, n, o, a.len))
            abort();
    }
    sonde_buf_reset(&a);
    /* The input as the value of password=: whatever its bytes (less
     * spaces, quotes and backslashes, which end or escape a value), the
     * output is exactly password=***. */
    char buf[4200];
    size_t k = 9;
    memcpy(buf, "password=", 9);
    for (size_t i = 0; i < n && k < sizeof buf; i++) {
        char ch = s[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\f' && ch != '\v' &&
            ch != '\'' && ch != '\\')
            buf[k++] = ch;
    }
    int rc2 = sonde_sql_mask_dsn(buf, k, &a);
    if (rc2 >= 0 && (rc2 != 1 || a.len != 12 || memcmp(a.data, "password=***", 12) != 0))
        abort();
    sonde_buf_free(&a);

    char cell[256];
    size_t c = size < sizeof cell - 1 ? size : sizeof cell - 1;
    memcpy(cell, s, c);
    cell[c] = '\0';
    sql_cell sc = {.text = cell};
    double v;
    (void)sonde__sql_cell_value(&sc, &v);
    return 0;
}
