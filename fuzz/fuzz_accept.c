/*
 * Fuzz target: the Accept header parser behind /metrics content
 * negotiation. Any bytes must give a valid format and escaping, read only
 * the given length, and agree with the content type table.
 */
#include <sonde.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    sonde_escaping esc;
    sonde_format f = sonde_format_negotiate(s, size, &esc);
    if ((unsigned)f > SONDE_FORMAT_OPENMETRICS_0_0_1 || f == SONDE_FORMAT_JSON ||
        (unsigned)esc > SONDE_ESCAPING_ALLOW_UTF8)
        abort();
    if (esc == SONDE_ESCAPING_ALLOW_UTF8 &&
        (f == SONDE_FORMAT_PROMETHEUS || f == SONDE_FORMAT_OPENMETRICS_0_0_1))
        abort();
    const char *ct = sonde_format_content_type_escaped(f, esc);
    if (!ct || !*ct)
        abort();
    free(s);
    return 0;
}
