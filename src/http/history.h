/*
 * The dashboard's short in-process history: every interval (5 s by
 * default) the runtime worker samples the registered series of a registry
 * (counters' and gauges' values, state set indexes, histogram and summary
 * counts and sums, histogram p50/p95/p99 over the interval) into fixed rings
 * of SONDE__HISTORY_POINTS points. Memory is bounded: at most
 * SONDE__HISTORY_TRACKS tracks (one value of one series each); series met
 * when the table is full are not kept and counted in
 * sonde_dashboard_series_dropped_total.
 */
#ifndef SONDE_HTTP_HISTORY_H
#define SONDE_HTTP_HISTORY_H

#include <sonde/metrics.h>

#include <stdint.h>

#define SONDE__HISTORY_POINTS 180
#define SONDE__HISTORY_TRACKS 768

typedef struct sonde__history sonde__history;

/*
 * Create a history of reg (NULL: the default registry) sampled every
 * interval_ms (0: 5000; 100..60000) and register its sampling timer on the
 * runtime worker (which must be running) with one sample taken at once.
 * Returns SONDE_OK, SONDE_EINVAL, SONDE_ENOMEM or the worker's error. With
 * sonde off: an empty history that never samples (no timer, no thread).
 */
int sonde__history_create(sonde_registry *reg, uint32_t interval_ms, sonde__history **out);

/* Cancel the timer (waits for a running sample) and free. NULL is fine. */
void sonde__history_destroy(sonde__history *h);

/* Take one sample now, on the calling thread. */
void sonde__history_sample(sonde__history *h);

/*
 * Append the JSON document of /dashboard/history: {"interval_seconds",
 * "capacity", "timestamps":[...], "series":[{"name","labels":{},"type",
 * "field","values":[...]}], "dropped"}. Only points newer than since (Unix
 * seconds; 0: all) are written; when match is non-NULL and non-empty only
 * series whose name contains it. Any thread.
 */
int sonde__history_write_json(sonde__history *h, double since, const char *match, sonde_buf *out);

#endif
