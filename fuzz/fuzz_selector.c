/* Fuzz target: metric rule selectors (metric{label op "value",...}), as
 * given to sonde_rule_opts.metric and the agent's YAML. A selector that
 * parses must also be accepted by a value rule, and the rule must evaluate
 * against a registry without harm. */
#include "errors/errors_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    sonde__selector *sel = NULL;
    char err[256];
    int rc = sonde__selector_parse(s, &sel, err, sizeof err);
    if (rc == SONDE_EINVAL && !err[0])
        abort(); /* every refusal names its reason */
    sonde__selector_free(sel);
    if (rc == SONDE_OK) {
        sonde_registry *reg;
        sonde_errors *t;
        sonde_errors_opts eo;
        sonde_errors_opts_init(&eo);
        if (sonde_registry_create(NULL, &reg) == SONDE_OK) {
            eo.registry = reg;
            eo.no_env_notifiers = 1;
            eo.no_log = 1;
            sonde_family *f;
            sonde_metric_opts o;
            sonde_metric_opts_init(&o);
            const char *ln[] = {"a", "b"};
            o.name = "m_total";
            o.help = "h";
            o.label_names = ln;
            o.label_count = 2;
            if (sonde_family_create(reg, SONDE_COUNTER, &o, &f) == SONDE_OK)
                sonde_counter_inc(sonde_family_counter(f, "x", "5xx"));
            if (sonde_errors_create(&eo, &t) == SONDE_OK) {
                sonde_rule_opts r;
                sonde_rule_opts_init(&r);
                r.name = "fuzz";
                r.kind = SONDE_RULE_RATE;
                r.metric = s;
                if (sonde_alerts_add_rule(t, &r) != SONDE_OK)
                    abort();
                sonde_errors_process(t);
                sonde_errors_process(t);
                sonde_errors_destroy(t);
            }
            sonde_registry_destroy(reg);
        }
    }
    free(s);
    return 0;
}
