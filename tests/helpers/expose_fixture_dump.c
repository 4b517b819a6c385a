/* Writes the fixture registry in one format to stdout:
 *   expose_fixture_dump prometheus|openmetrics|json */
#include "expose_fixture.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s prometheus|openmetrics|json\n", argv[0]);
        return 2;
    }
    sonde_format fmt = strcmp(argv[1], "openmetrics") == 0 ? SONDE_FORMAT_OPENMETRICS
                       : strcmp(argv[1], "json") == 0      ? SONDE_FORMAT_JSON
                                                           : SONDE_FORMAT_PROMETHEUS;
    sonde_registry *r = fixture_build();
    size_t n = 0;
    char *txt = sonde_registry_render(r, fmt, &n);
    if (!txt)
        return 1;
    fwrite(txt, 1, n, stdout);
    sonde_free(txt);
    sonde_registry_destroy(r);
    return 0;
}
