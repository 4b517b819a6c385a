/* Host and process figures read from /proc and statvfs. */
#ifndef SONDE_HOST_INTERNAL_H
#define SONDE_HOST_INTERNAL_H

#include "core/internal.h"

typedef struct sonde__mem {
    uint64_t total_bytes;
    uint64_t available_bytes;
} sonde__mem;

typedef struct sonde__disk {
    uint64_t total_bytes;
    uint64_t avail_bytes; /* available to unprivileged users */
} sonde__disk;

typedef struct sonde__proc {
    int pid;
    uint64_t rss_bytes;
    uint64_t vsize_bytes;
    double cpu_seconds;
    long threads;
    long open_fds;
    double start_time; /* wall clock, seconds since the epoch */
} sonde__proc;

/* CPU times from /proc/stat's first line, in seconds. */
typedef struct sonde__cpu_times {
    double user, nice, system, idle, iowait, irq, softirq, steal;
} sonde__cpu_times;

long sonde__host_cpu_count(void);
/* Each returns SONDE_OK or SONDE_EIO (figure unavailable). */
int sonde__host_load(double out[3]);
int sonde__host_mem(sonde__mem *out);
int sonde__host_disk(const char *path, sonde__disk *out);
int sonde__host_proc(sonde__proc *out);
int sonde__host_cpu_times(sonde__cpu_times *out);
double sonde__host_boot_time(void);
/* Host CPU use in percent since the previous call (first call: since boot).
 * Any thread. */
double sonde__host_cpu_percent(void);

/* Append a JSON object {"cpu":{...},"memory":{...},"disk":{...},
 * "process":{...}} describing the host; disk_path NULL means "/". */
int sonde__host_write_json(sonde_buf *b, const char *disk_path);

#endif
