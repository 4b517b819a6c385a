/*
 * Fuzz target: the body of POST /alerts/silences and the stored silence
 * documents (errors/silences.c), then the matchers they carry, compact
 * "name=~value" form included. A refusal always says why; an accepted
 * request has 1 to 32 matchers, each with a name and a value.
 */
#include "errors/silences.h"

#include <sonde.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const sonde__silence_req *r, const char *err)
{
    if (rc == SONDE_OK) {
        if (r->n < 1 || r->n > 32)
            abort();
        for (size_t i = 0; i < r->n; i++)
            if (!r->m[i].name || !r->m[i].value)
                abort();
    } else if (rc == SONDE_EINVAL && err[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    sonde__silence_req r;
    int rc = sonde__silence_req_parse((const char *)data, size, &r, err, sizeof err);
    check(rc, &r, err);
    if (rc == SONDE_OK)
        sonde__silence_req_free(&r);
    rc = sonde__silence_doc_parse((const char *)data, size, &r, err, sizeof err);
    check(rc, &r, err);
    if (rc == SONDE_OK)
        sonde__silence_req_free(&r);
    /* The input as one compact matcher. */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    sonde_silence_matcher m;
    err[0] = '\0';
    rc = sonde__silence_matcher_parse(s, &m, err, sizeof err);
    if (rc == SONDE_OK) {
        if (!m.name || !m.value)
            abort();
        sonde_free((void *)m.name);
        sonde_free((void *)m.value);
    } else if (rc == SONDE_EINVAL && err[0] == '\0') {
        abort();
    }
    free(s);
    return 0;
}
