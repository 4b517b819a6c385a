/*
 * Fuzz target: arbitrary bytes as an agent configuration. Loading must end
 * with either a configuration or errors with sane positions, never crash or
 * leak; a loaded configuration must apply to start options and a health set.
 */
#include <sonde/config.h>

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sonde_config_error errs[8];
    size_t n = 0;
    sonde_config *cfg = NULL;
    int rc = sonde_config_load_string((const char *)data, size, &cfg, errs, 8, &n);
    if (rc == SONDE_OK) {
        if (!cfg || n != 0)
            abort();
        sonde_start_opts o;
        sonde_start_opts_init(&o);
        sonde_config_start_opts(cfg, &o);
        sonde_health *h = NULL;
        if (sonde_health_create(NULL, &h) == SONDE_OK) {
            sonde_config_add_checks(cfg, h); /* not started: nothing runs */
            sonde_health_destroy(h);
        }
        sonde_config_destroy(cfg);
    } else {
        if (cfg)
            abort();
        for (size_t i = 0; i < n && i < 8; i++)
            if (errs[i].line < 0 || errs[i].column < 0 || errs[i].message[0] == '\0')
                abort();
    }
    return 0;
}
