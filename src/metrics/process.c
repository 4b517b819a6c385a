/* The standard process_* metrics, as the official Prometheus clients expose
 * them, read from /proc at scrape time. */
#include "metrics_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int sonde__parse_proc_stat(const char *line, uint64_t *cpu_ticks, uint64_t *threads,
                           uint64_t *vsize, uint64_t *rss_pages, uint64_t *start_ticks)
{
    /* The command name is in parentheses and may itself contain spaces and
     * parentheses: the fields resume after the LAST ')'. */
    const char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p++;
    /* After ')': field 3 (state) onwards. We need 14 utime, 15 stime,
     * 20 num_threads, 22 starttime, 23 vsize, 24 rss. */
    uint64_t f[25] = {0};
    int field = 3;
    while (*p && field <= 24) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (field == 3) {
            p++; /* the state letter */
        } else {
            char *end;
            f[field] = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            p = end;
        }
        while (*p && *p != ' ')
            p++;
        field++;
    }
    if (field <= 24)
        return -1;
    *cpu_ticks = f[14] + f[15];
    *threads = f[20];
    *start_ticks = f[22];
    *vsize = f[23];
    *rss_pages = f[24];
    return 0;
}

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, cap - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return (int)n;
}

static double boot_time(void)
{
    static double cached;
    if (cached > 0)
        return cached;
    char buf[8192];
    if (read_file("/proc/stat", buf, sizeof buf) < 0)
        return 0;
    const char *p = strstr(buf, "\nbtime ");
    if (!p)
        return 0;
    cached = (double)strtoull(p + 7, NULL, 10);
    return cached;
}

void sonde__process_collect(sonde_emitter *em, void *ud)
{
    SONDE_UNUSED(ud);
    char line[2048];
    uint64_t ticks = 0, threads = 0, vsize = 0, rss = 0, start = 0;
    long hz = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (hz <= 0)
        hz = 100;
    if (page <= 0)
        page = 4096;
    if (read_file("/proc/self/stat", line, sizeof line) > 0 &&
        sonde__parse_proc_stat(line, &ticks, &threads, &vsize, &rss, &start) == 0) {
        sonde_emit_family(em, SONDE_COUNTER, "process_cpu_seconds_total",
                          "Total user and system CPU time spent in seconds.", "seconds");
        sonde_emit_sample(em, NULL, 0, (double)ticks / (double)hz);
        sonde_emit_family(em, SONDE_GAUGE, "process_virtual_memory_bytes",
                          "Virtual memory size in bytes.", "bytes");
        sonde_emit_sample(em, NULL, 0, (double)vsize);
        sonde_emit_family(em, SONDE_GAUGE, "process_resident_memory_bytes",
                          "Resident memory size in bytes.", "bytes");
        sonde_emit_sample(em, NULL, 0, (double)rss * (double)page);
        double bt = boot_time();
        if (bt > 0) {
            sonde_emit_family(em, SONDE_GAUGE, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.", "seconds");
            sonde_emit_sample(em, NULL, 0, bt + (double)start / (double)hz);
        }
        sonde_emit_family(em, SONDE_GAUGE, "process_threads",
                          "Number of OS threads in the process.", NULL);
        sonde_emit_sample(em, NULL, 0, (double)threads);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        if (n > 0)
            n--; /* the descriptor opendir itself holds */
        sonde_emit_family(em, SONDE_GAUGE, "process_open_fds", "Number of open file descriptors.",
                          NULL);
        sonde_emit_sample(em, NULL, 0, (double)n);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        sonde_emit_family(em, SONDE_GAUGE, "process_max_fds",
                          "Maximum number of open file descriptors.", NULL);
        sonde_emit_sample(em, NULL, 0,
                          rl.rlim_cur == RLIM_INFINITY ? (double)INT64_MAX : (double)rl.rlim_cur);
    }
}
