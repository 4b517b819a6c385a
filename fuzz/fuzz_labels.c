/*
 * Fuzz target: arbitrary bytes as label values and help text must always
 * produce an exposition that stays on its lines (the encoders are the
 * "parser" of untrusted label input). Input: help, NUL, value1, NUL, value2.
 */
#include "metrics/metrics_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 3);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = s[size + 1] = s[size + 2] = '\0';
    const char *help = s;
    const char *v1 = help + strlen(help) + 1;
    if (v1 > s + size)
        v1 = s + size;
    const char *v2 = v1 + strlen(v1) + 1;
    if (v2 > s + size + 1)
        v2 = s + size + 1;
    sonde_registry *r;
    if (sonde_registry_create(NULL, &r) != SONDE_OK) {
        free(s);
        return 0;
    }
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"a", "b"};
    o.name = "fuzz_total";
    o.help = help;
    o.label_names = ln;
    o.label_count = 2;
    sonde_family *f;
    if (sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_OK) {
        sonde_counter_inc(sonde_family_counter(f, v1, v2));
        for (int fmt = 0; fmt < 3; fmt++) {
            size_t n = 0;
            char *txt = sonde_registry_render(r, (sonde_format)fmt, &n);
            if (!txt)
                abort();
            if (fmt != SONDE_FORMAT_JSON) {
                /* Every line is a comment or starts with a metric name. */
                for (char *line = txt; *line;) {
                    char *nl = strchr(line, '\n');
                    if (!nl)
                        abort(); /* output always ends with a newline */
                    if (line[0] != '#' && strncmp(line, "fuzz_", 5) != 0 &&
                        strncmp(line, "sonde_", 6) != 0)
                        abort();
                    line = nl + 1;
                }
            }
            sonde_free(txt);
        }
    }
    sonde_registry_destroy(r);
    free(s);
    return 0;
}
