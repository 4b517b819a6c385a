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

/*
 * Pre-encoded collector output, for collectors whose families change far
 * less often than they are scraped (the SQL collector's cached results):
 * render once with sonde__emit_render, then hand the bytes to every scrape
 * in that format with sonde__emit_raw.
 */

/* The format em writes, when it may take pre-encoded bytes (no name filter,
 * not a visit); -1 when the collector must emit family by family. */
int sonde__emit_raw_format(const sonde_emitter *em);
/* Append bytes that sonde__emit_render produced for that format (closes
 * the family in progress). Returns the emitter's status. */
int sonde__emit_raw(sonde_emitter *em, const char *data, size_t n);
/* Run fn as a collector into out in format fmt, exactly as a scrape would
 * write its part (no header or trailer); refused families and samples
 * count in reg's sonde_metrics_collector_errors_total. Returns SONDE_OK,
 * SONDE_EINVAL or SONDE_ENOMEM. Any thread; does not lock reg. */
int sonde__emit_render(sonde_registry *reg, sonde_format fmt, sonde_collect_fn fn, void *ud,
                       sonde_buf *out);

#endif
