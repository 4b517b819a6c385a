/* Fuzz target: store addresses (SONDE_STORE, --store). */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    sonde__store_spec spec;
    char err[128];
    if (sonde__store_spec_parse(s, &spec, err, sizeof err) == SONDE_OK) {
        if (spec.kind == SONDE__STORE_REDIS && (!spec.host || spec.port < 1 || spec.port > 65535))
            abort();
        if (spec.kind == SONDE__STORE_SQLITE && (!spec.path || !spec.path[0]))
            abort();
    }
    sonde__store_spec_free(&spec);
    free(s);
    return 0;
}
