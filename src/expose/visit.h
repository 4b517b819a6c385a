/*
 * A structured walk over a registry's collectors, for consumers that need
 * samples rather than text (the remote writer in src/export/). Collectors
 * emit through a sonde_emitter in visitor mode: every family and sample
 * goes to the callbacks instead of an output buffer, after the same name
 * and label validation the text encoders apply.
 */
#ifndef SONDE_EXPOSE_VISIT_H
#define SONDE_EXPOSE_VISIT_H

#include <sonde/metrics.h>

typedef struct sonde__visitor {
    /* A family starts. Return non-zero to receive its samples, 0 to skip
     * them. name is the family name as emitted. */
    int (*family)(void *ud, sonde_metric_type type, const char *name);
    /* One sample: the sample's full name (family name plus _bucket, _sum
     * or _count for histograms), npairs label pairs (kv[2i] name,
     * kv[2i+1] value; unsorted, validated) and its value. The pointers
     * are valid during the call only. */
    void (*sample)(void *ud, const char *name, const char *const *kv, size_t npairs, double v);
    void *ud;
} sonde__visitor;

/* Run every collector of reg, and sonde's own per-registry self-metrics,
 * through v. Takes the registry's read lock. Returns SONDE_OK. */
int sonde__registry_visit_collectors(sonde_registry *reg, const sonde__visitor *v);

#endif
