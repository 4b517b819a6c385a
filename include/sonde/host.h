/*
 * sonde/host.h - host and process figures as metrics (used by the `sonde
 * serve` agent; services usually rely on the process_* metrics of the
 * default registry).
 */
#ifndef SONDE_HOST_H
#define SONDE_HOST_H

#include "common.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Add the "sonde_host" collector to reg (NULL: default registry). At every
 * scrape it reads /proc and statvfs and emits sonde_host_cpus,
 * sonde_host_cpu_seconds_total{mode}, sonde_host_load1/5/15,
 * sonde_host_memory_total_bytes, sonde_host_memory_available_bytes,
 * sonde_host_boot_time_seconds and, for each of the disk_count paths in
 * disk_paths (copied; NULL/0: "/"), sonde_host_filesystem_size_bytes{path}
 * and sonde_host_filesystem_avail_bytes{path}. Returns SONDE_OK,
 * SONDE_ECONFLICT (already added), SONDE_EINVAL or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_host_metrics_add(sonde_registry *reg, const char *const *disk_paths,
                                     size_t disk_count);

/** Remove the collector added by sonde_host_metrics_add. Returns SONDE_OK or
 * SONDE_ENOTFOUND. Any thread. */
SONDE_API int sonde_host_metrics_remove(sonde_registry *reg);

#ifdef __cplusplus
}
#endif
#endif
