/* Host and process figures from /proc and statvfs, as JSON and metrics. */
#include "host/host.h"

#include <sonde/host.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Read a small /proc file into buf (NUL-terminated). Returns the length or
 * -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

long sonde__host_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

int sonde__host_load(double out[3])
{
    char buf[256];
    if (read_small("/proc/loadavg", buf, sizeof buf) <= 0)
        return SONDE_EIO;
    char *p = buf, *end;
    for (int i = 0; i < 3; i++) {
        out[i] = sonde__strtod(p, &end);
        if (end == p)
            return SONDE_EIO;
        p = end;
    }
    return SONDE_OK;
}

/* Value in kB of a "Key:   123 kB" line of /proc/meminfo. */
static bool meminfo_field(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            *out = strtoull(p + kl + 1, NULL, 10) * 1024u;
            return true;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

int sonde__host_mem(sonde__mem *out)
{
    char buf[4096];
    if (read_small("/proc/meminfo", buf, sizeof buf) <= 0)
        return SONDE_EIO;
    if (!meminfo_field(buf, "MemTotal", &out->total_bytes))
        return SONDE_EIO;
    if (!meminfo_field(buf, "MemAvailable", &out->available_bytes)) {
        uint64_t f = 0, c = 0;
        meminfo_field(buf, "MemFree", &f);
        meminfo_field(buf, "Cached", &c);
        out->available_bytes = f + c;
    }
    return SONDE_OK;
}

int sonde__host_disk(const char *path, sonde__disk *out)
{
    struct statvfs sv;
    if (statvfs(path ? path : "/", &sv) != 0)
        return SONDE_EIO;
    out->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->avail_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    return SONDE_OK;
}

double sonde__host_boot_time(void)
{
    char buf[8192];
    if (read_small("/proc/stat", buf, sizeof buf) <= 0)
        return 0;
    const char *p = strstr(buf, "\nbtime ");
    return p ? sonde__strtod(p + 7, NULL) : 0;
}

int sonde__host_proc(sonde__proc *out)
{
    memset(out, 0, sizeof *out);
    out->pid = (int)getpid();
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof buf) <= 0)
        return SONDE_EIO;
    /* The command name is in parentheses and may contain spaces: fields
     * start after the last ')'. Field 3 (state) follows it. */
    char *p = strrchr(buf, ')');
    if (!p)
        return SONDE_EIO;
    p += 2;
    unsigned long long f[52] = {0};
    int field = 3;
    while (*p && field < 52) {
        char *end;
        if (field == 3) {
            p++; /* state letter */
        } else {
            f[field] = strtoull(p, &end, 10);
            p = end;
        }
        while (*p == ' ')
            p++;
        field++;
    }
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    long page = sysconf(_SC_PAGESIZE);
    out->cpu_seconds = (double)(f[14] + f[15]) / (double)tck;
    out->threads = (long)f[20];
    out->vsize_bytes = f[23];
    out->rss_bytes = f[24] * (uint64_t)(page > 0 ? page : 4096);
    out->start_time = sonde__host_boot_time() + (double)f[22] / (double)tck;
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--; /* the directory stream's own descriptor */
    }
    out->open_fds = fds;
    return SONDE_OK;
}

int sonde__host_cpu_times(sonde__cpu_times *out)
{
    char buf[512];
    if (read_small("/proc/stat", buf, sizeof buf) <= 0 || strncmp(buf, "cpu ", 4) != 0)
        return SONDE_EIO;
    long tck = sysconf(_SC_CLK_TCK);
    double t = (double)(tck > 0 ? tck : 100);
    double v[8] = {0};
    char *p = buf + 4, *end;
    for (int i = 0; i < 8; i++) {
        v[i] = (double)strtoull(p, &end, 10) / t;
        if (end == p)
            break;
        p = end;
    }
    *out = (sonde__cpu_times){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    return SONDE_OK;
}

static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;
static double cpu_prev_busy, cpu_prev_total;

double sonde__host_cpu_percent(void)
{
    sonde__cpu_times c;
    if (sonde__host_cpu_times(&c))
        return NAN;
    double idle = c.idle + c.iowait;
    double total = c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal;
    double busy = total - idle;
    pthread_mutex_lock(&cpu_lock);
    double db = busy - cpu_prev_busy, dt = total - cpu_prev_total;
    cpu_prev_busy = busy;
    cpu_prev_total = total;
    pthread_mutex_unlock(&cpu_lock);
    if (dt <= 0)
        return 0;
    return 100.0 * db / dt;
}

int sonde__host_write_json(sonde_buf *b, const char *disk_path)
{
    double load[3] = {NAN, NAN, NAN};
    sonde__host_load(load);
    long ncpu = sonde__host_cpu_count();
    int rc = sonde__buf_printf(b, "{\"cpu\":{\"count\":%ld,\"usage_percent\":", ncpu);
    double pct = sonde__host_cpu_percent();
    rc = rc ? rc : sonde__buf_json_double(b, round(pct * 10) / 10);
    const char *names[3] = {"load1", "load5", "load15"};
    for (int i = 0; i < 3 && !rc; i++) {
        rc = sonde__buf_printf(b, ",\"%s\":", names[i]);
        rc = rc ? rc : sonde__buf_json_double(b, load[i]);
    }
    rc = rc ? rc : sonde__buf_puts(b, "},\"memory\":");
    sonde__mem m;
    if (!rc && sonde__host_mem(&m) == SONDE_OK) {
        double used = m.total_bytes ? 100.0 * (double)(m.total_bytes - m.available_bytes) /
                                          (double)m.total_bytes
                                    : 0;
        rc = sonde__buf_printf(
            b, "{\"total_bytes\":%llu,\"available_bytes\":%llu,\"used_percent\":",
            (unsigned long long)m.total_bytes, (unsigned long long)m.available_bytes);
        rc = rc ? rc : sonde__buf_json_double(b, round(used * 10) / 10);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    } else if (!rc) {
        rc = sonde__buf_puts(b, "null");
    }
    rc = rc ? rc : sonde__buf_puts(b, ",\"disk\":");
    sonde__disk d;
    const char *dp = disk_path ? disk_path : "/";
    if (!rc && sonde__host_disk(dp, &d) == SONDE_OK) {
        double used = d.total_bytes
                          ? 100.0 * (double)(d.total_bytes - d.avail_bytes) / (double)d.total_bytes
                          : 0;
        rc = sonde__buf_puts(b, "{\"path\":");
        rc = rc ? rc : sonde__buf_json_str(b, dp);
        rc = rc ? rc
                : sonde__buf_printf(
                      b, ",\"total_bytes\":%llu,\"available_bytes\":%llu,\"used_percent\":",
                      (unsigned long long)d.total_bytes, (unsigned long long)d.avail_bytes);
        rc = rc ? rc : sonde__buf_json_double(b, round(used * 10) / 10);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    } else if (!rc) {
        rc = sonde__buf_puts(b, "null");
    }
    rc = rc ? rc : sonde__buf_puts(b, ",\"process\":");
    sonde__proc p;
    if (!rc && sonde__host_proc(&p) == SONDE_OK) {
        rc = sonde__buf_printf(b,
                               "{\"pid\":%d,\"resident_memory_bytes\":%llu,"
                               "\"virtual_memory_bytes\":%llu,\"threads\":%ld,\"open_fds\":%ld,"
                               "\"cpu_seconds\":",
                               p.pid, (unsigned long long)p.rss_bytes,
                               (unsigned long long)p.vsize_bytes, p.threads, p.open_fds);
        rc = rc ? rc : sonde__buf_json_double(b, p.cpu_seconds);
        rc = rc ? rc : sonde__buf_puts(b, ",\"start_time\":");
        rc = rc ? rc : sonde__buf_json_double(b, round(p.start_time * 100) / 100);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    } else if (!rc) {
        rc = sonde__buf_puts(b, "null");
    }
    return rc ? rc : sonde__buf_putc(b, '}');
}

/* ---- the sonde_host collector ---- */

typedef struct host_collector {
    size_t npaths;
    char **paths;
} host_collector;

/* One collector per registry is tracked here so remove can free it. */
static pthread_mutex_t hc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hc_entry {
    sonde_registry *reg;
    host_collector *hc;
} hc_table[8];

static void host_collect(sonde_emitter *em, void *ud)
{
    host_collector *hc = ud;
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_host_cpus", "Number of online CPUs", NULL) == 0)
        sonde_emit_sample(em, NULL, 0, (double)sonde__host_cpu_count());
    sonde__cpu_times ct;
    if (sonde__host_cpu_times(&ct) == SONDE_OK &&
        sonde_emit_family(em, SONDE_COUNTER, "sonde_host_cpu_seconds_total",
                          "Seconds all CPUs spent in each mode", "seconds") == 0) {
        const char *modes[8] = {"user",   "nice", "system",  "idle",
                                "iowait", "irq",  "softirq", "steal"};
        double v[8] = {ct.user,   ct.nice, ct.system,  ct.idle,
                       ct.iowait, ct.irq,  ct.softirq, ct.steal};
        for (int i = 0; i < 8; i++) {
            const char *kv[2] = {"mode", modes[i]};
            sonde_emit_sample(em, kv, 1, v[i]);
        }
    }
    double load[3];
    if (sonde__host_load(load) == SONDE_OK) {
        const char *names[3] = {"sonde_host_load1", "sonde_host_load5", "sonde_host_load15"};
        const char *help[3] = {"1-minute load average", "5-minute load average",
                               "15-minute load average"};
        for (int i = 0; i < 3; i++)
            if (sonde_emit_family(em, SONDE_GAUGE, names[i], help[i], NULL) == 0)
                sonde_emit_sample(em, NULL, 0, load[i]);
    }
    sonde__mem m;
    if (sonde__host_mem(&m) == SONDE_OK) {
        if (sonde_emit_family(em, SONDE_GAUGE, "sonde_host_memory_total_bytes",
                              "Total usable memory", "bytes") == 0)
            sonde_emit_sample(em, NULL, 0, (double)m.total_bytes);
        if (sonde_emit_family(em, SONDE_GAUGE, "sonde_host_memory_available_bytes",
                              "Memory available for new work without swapping", "bytes") == 0)
            sonde_emit_sample(em, NULL, 0, (double)m.available_bytes);
    }
    double bt = sonde__host_boot_time();
    if (bt > 0 && sonde_emit_family(em, SONDE_GAUGE, "sonde_host_boot_time_seconds",
                                    "Boot time, seconds since the epoch", "seconds") == 0)
        sonde_emit_sample(em, NULL, 0, bt);
    sonde__disk d[16];
    int ok[16] = {0};
    size_t np = hc->npaths < 16 ? hc->npaths : 16;
    for (size_t i = 0; i < np; i++)
        ok[i] = sonde__host_disk(hc->paths[i], &d[i]) == SONDE_OK;
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_host_filesystem_size_bytes",
                          "Size of the filesystem holding path", "bytes") == 0)
        for (size_t i = 0; i < np; i++)
            if (ok[i]) {
                const char *kv[2] = {"path", hc->paths[i]};
                sonde_emit_sample(em, kv, 1, (double)d[i].total_bytes);
            }
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_host_filesystem_avail_bytes",
                          "Space available to unprivileged users on the filesystem holding path",
                          "bytes") == 0)
        for (size_t i = 0; i < np; i++)
            if (ok[i]) {
                const char *kv[2] = {"path", hc->paths[i]};
                sonde_emit_sample(em, kv, 1, (double)d[i].avail_bytes);
            }
}

static void hc_free(host_collector *hc)
{
    if (!hc)
        return;
    for (size_t i = 0; i < hc->npaths; i++)
        sonde__free(hc->paths[i]);
    sonde__free(hc->paths);
    sonde__free(hc);
}

int sonde_host_metrics_add(sonde_registry *reg, const char *const *disk_paths, size_t disk_count)
{
    if (!reg)
        reg = sonde_registry_default();
    if (disk_count > 16 || (disk_count && !disk_paths))
        return SONDE_EINVAL;
    host_collector *hc = sonde__calloc(1, sizeof *hc);
    if (!hc)
        return SONDE_ENOMEM;
    static const char *const root[1] = {"/"};
    if (disk_count == 0) {
        disk_paths = root;
        disk_count = 1;
    }
    hc->paths = sonde__calloc(disk_count, sizeof *hc->paths);
    if (!hc->paths) {
        hc_free(hc);
        return SONDE_ENOMEM;
    }
    for (size_t i = 0; i < disk_count; i++) {
        hc->paths[i] = sonde__strdup(disk_paths[i] ? disk_paths[i] : "/");
        hc->npaths++;
        if (!hc->paths[i]) {
            hc_free(hc);
            return SONDE_ENOMEM;
        }
    }
    pthread_mutex_lock(&hc_lock);
    struct hc_entry *slot = NULL;
    for (size_t i = 0; i < SONDE_ARRAY_LEN(hc_table); i++) {
        if (hc_table[i].reg == reg) {
            pthread_mutex_unlock(&hc_lock);
            hc_free(hc);
            return SONDE_ECONFLICT;
        }
        if (!hc_table[i].reg && !slot)
            slot = &hc_table[i];
    }
    int rc =
        slot ? sonde_registry_add_collector(reg, "sonde_host", host_collect, hc) : SONDE_ELIMIT;
    if (rc == SONDE_OK)
        *slot = (struct hc_entry){reg, hc};
    pthread_mutex_unlock(&hc_lock);
    if (rc)
        hc_free(hc);
    return rc;
}

int sonde_host_metrics_remove(sonde_registry *reg)
{
    if (!reg)
        reg = sonde_registry_default();
    pthread_mutex_lock(&hc_lock);
    for (size_t i = 0; i < SONDE_ARRAY_LEN(hc_table); i++) {
        if (hc_table[i].reg == reg) {
            int rc = sonde_registry_remove_collector(reg, "sonde_host");
            hc_free(hc_table[i].hc);
            hc_table[i] = (struct hc_entry){0};
            pthread_mutex_unlock(&hc_lock);
            return rc;
        }
    }
    pthread_mutex_unlock(&hc_lock);
    return SONDE_ENOTFOUND;
}
