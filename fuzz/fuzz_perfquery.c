/* Fuzz target: the query string of /performance. */
#include "trace/trace_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sonde__perf_query q;
    char err[160];
    if (sonde__perf_query_parse((const char *)data, size, &q, err, sizeof err) == SONDE_OK) {
        if (q.minutes == 0 || (q.has_operation &&
                               (q.operation[0] == '\0' || strlen(q.operation) > SONDE_OP_NAME_MAX)))
            abort();
    }
    return 0;
}
