/* Fuzz target: the /proc/<pid>/stat parser of the process collector. */
#include "metrics/metrics_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    uint64_t a, b, c, d, e;
    if (sonde__parse_proc_stat(line, &a, &b, &c, &d, &e) == 0 && b > ((uint64_t)1 << 63) + 1)
        a = b; /* keep the results observable */
    free(line);
    return 0;
}
