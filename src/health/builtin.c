/*
 * Built-in health checks. Each owns a heap spec (its copied arguments),
 * freed through free_userdata when the check is gone. Every check bounds its
 * own I/O by the check's timeout, so a timed-out run still ends.
 */
#include "health/health.h"

#include "host/host.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_TIMEOUT_S 5.0

typedef struct spec {
    double timeout_s;
    char *s1, *s2, *s3; /* path / host / url / conninfo; query; password */
    char **argv;        /* command */
    char **headers;     /* http: "Name: value" lines, NULL-terminated (secrets) */
    double a, b;        /* thresholds */
    uint64_t u;         /* max rss */
    int port;
} spec;

static void spec_free(void *p)
{
    spec *s = p;
    if (!s)
        return;
    sonde__free(s->s1);
    sonde__free(s->s2);
    if (s->s3) {
        /* Passwords do not linger in freed memory. */
        memset(s->s3, 0, strlen(s->s3));
        sonde__free(s->s3);
    }
    if (s->argv) {
        for (char **a = s->argv; *a; a++)
            sonde__free(*a);
        sonde__free(s->argv);
    }
    if (s->headers) {
        for (char **a = s->headers; *a; a++) {
            memset(*a, 0, strlen(*a));
            sonde__free(*a);
        }
        sonde__free(s->headers);
    }
    sonde__free(s);
}

static spec *spec_new(const sonde_health_check_opts *opts)
{
    spec *s = sonde__calloc(1, sizeof *s);
    if (s)
        s->timeout_s =
            opts && opts->timeout_seconds > 0 ? opts->timeout_seconds : DEFAULT_TIMEOUT_S;
    return s;
}

/* Copy s into *dst; a NULL source leaves NULL. Returns false on no memory. */
static bool dup_into(char **dst, const char *src)
{
    if (!src)
        return true;
    *dst = sonde__strdup(src);
    return *dst != NULL;
}

static int add_spec(sonde_health *h, const sonde_health_check_opts *opts, sonde_health_fn fn,
                    spec *s, const char *kind)
{
    if (!opts) {
        spec_free(s);
        return SONDE_EINVAL;
    }
    char ident[1024];
    snprintf(ident, sizeof ident, "%s|%s|%s|%s|%g|%g|%llu|%d|%g|%g|%d", kind, s->s1 ? s->s1 : "",
             s->s2 ? s->s2 : "", s->s3 ? "(password)" : "", s->a, s->b, (unsigned long long)s->u,
             s->port, opts->timeout_seconds, opts->interval_seconds, opts->informational);
    if (s->argv)
        for (char **a = s->argv; *a; a++) {
            size_t l = strlen(ident);
            snprintf(ident + l, sizeof ident - l, "|%s", *a);
        }
    sonde_health_check_opts o = *opts;
    o.free_userdata = spec_free;
    int rc = sonde__health_add_ident(h, &o, fn, s, ident);
    if (rc)
        spec_free(s);
    return rc;
}

static void fmt_bytes(char *out, size_t n, double v)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* ---- disk ---- */

static sonde_health_status disk_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    sonde__disk d;
    if (sonde__host_disk(s->s1, &d) != SONDE_OK) {
        sonde_health_result_set_message(r, "cannot stat filesystem of %s: %s", s->s1,
                                        strerror(errno));
        return SONDE_HEALTH_UNHEALTHY;
    }
    double pct = d.total_bytes ? 100.0 * (double)d.avail_bytes / (double)d.total_bytes : 0;
    char avail[32], total[32];
    fmt_bytes(avail, sizeof avail, (double)d.avail_bytes);
    fmt_bytes(total, sizeof total, (double)d.total_bytes);
    sonde_health_result_add_detail(r, "path", s->s1);
    sonde_health_result_add_number(r, "free_percent", round(pct * 10) / 10);
    sonde_health_result_add_number(r, "available_bytes", (double)d.avail_bytes);
    sonde_health_result_add_number(r, "total_bytes", (double)d.total_bytes);
    sonde_health_result_set_message(r, "%.1f%% free (%s of %s) on %s", pct, avail, total, s->s1);
    if (pct < s->b)
        return SONDE_HEALTH_UNHEALTHY;
    if (pct < s->a)
        return SONDE_HEALTH_DEGRADED;
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_disk(sonde_health *h, const sonde_health_check_opts *opts, const char *path,
                          double warn_free_pct, double crit_free_pct)
{
    if (!path || warn_free_pct < 0 || crit_free_pct < 0 || warn_free_pct > 100 ||
        crit_free_pct > 100)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, path)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    s->a = warn_free_pct ? warn_free_pct : 10;
    s->b = crit_free_pct ? crit_free_pct : 5;
    return add_spec(h, opts, disk_check, s, "disk");
}

/* ---- memory ---- */

static sonde_health_status memory_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    sonde__mem m;
    if (sonde__host_mem(&m) != SONDE_OK) {
        sonde_health_result_set_message(r, "cannot read /proc/meminfo");
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde__proc p;
    sonde__host_proc(&p);
    double pct = m.total_bytes ? 100.0 * (double)m.available_bytes / (double)m.total_bytes : 0;
    char avail[32], rss[32];
    fmt_bytes(avail, sizeof avail, (double)m.available_bytes);
    fmt_bytes(rss, sizeof rss, (double)p.rss_bytes);
    sonde_health_result_add_number(r, "available_percent", round(pct * 10) / 10);
    sonde_health_result_add_number(r, "available_bytes", (double)m.available_bytes);
    sonde_health_result_add_number(r, "total_bytes", (double)m.total_bytes);
    sonde_health_result_add_number(r, "process_resident_bytes", (double)p.rss_bytes);
    if (s->u && p.rss_bytes > s->u) {
        char lim[32];
        fmt_bytes(lim, sizeof lim, (double)s->u);
        sonde_health_result_set_message(r, "process resident memory %s exceeds the limit %s", rss,
                                        lim);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_set_message(r, "%.1f%% of system memory available (%s); process uses %s",
                                    pct, avail, rss);
    if (pct < s->b)
        return SONDE_HEALTH_UNHEALTHY;
    if (pct < s->a)
        return SONDE_HEALTH_DEGRADED;
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_memory(sonde_health *h, const sonde_health_check_opts *opts,
                            double warn_avail_pct, double crit_avail_pct, uint64_t max_rss_bytes)
{
    if (warn_avail_pct < 0 || crit_avail_pct < 0 || warn_avail_pct > 100 || crit_avail_pct > 100)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s)
        return SONDE_ENOMEM;
    s->a = warn_avail_pct ? warn_avail_pct : 10;
    s->b = crit_avail_pct ? crit_avail_pct : 5;
    s->u = max_rss_bytes;
    return add_spec(h, opts, memory_check, s, "memory");
}

/* ---- load ---- */

static sonde_health_status load_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    double l[3];
    if (sonde__host_load(l) != SONDE_OK) {
        sonde_health_result_set_message(r, "cannot read /proc/loadavg");
        return SONDE_HEALTH_UNHEALTHY;
    }
    long n = sonde__host_cpu_count();
    double per = l[0] / (double)n;
    sonde_health_result_add_number(r, "load1", l[0]);
    sonde_health_result_add_number(r, "load5", l[1]);
    sonde_health_result_add_number(r, "load15", l[2]);
    sonde_health_result_add_number(r, "cpus", (double)n);
    double cpu = sonde__host_cpu_percent();
    sonde_health_result_add_number(r, "cpu_percent", round(cpu * 10) / 10);
    sonde_health_result_set_message(r, "load %.2f %.2f %.2f on %ld CPUs (%.2f per CPU)", l[0], l[1],
                                    l[2], n, per);
    if (per > s->b)
        return SONDE_HEALTH_UNHEALTHY;
    if (per > s->a)
        return SONDE_HEALTH_DEGRADED;
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_load(sonde_health *h, const sonde_health_check_opts *opts, double warn_per_cpu,
                          double crit_per_cpu)
{
    if (warn_per_cpu < 0 || crit_per_cpu < 0)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s)
        return SONDE_ENOMEM;
    s->a = warn_per_cpu ? warn_per_cpu : 2;
    s->b = crit_per_cpu ? crit_per_cpu : 4;
    return add_spec(h, opts, load_check, s, "load");
}

/* ---- writable directory ---- */

static sonde_health_status writable_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.sonde-health-XXXXXX", s->s1);
    if (n < 0 || (size_t)n >= sizeof path) {
        sonde_health_result_set_message(r, "directory path too long");
        return SONDE_HEALTH_UNHEALTHY;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        sonde_health_result_set_message(r, "cannot create a file in %s: %s", s->s1,
                                        strerror(errno));
        return SONDE_HEALTH_UNHEALTHY;
    }
    static const char probe[] = "sonde health probe\n";
    ssize_t w = write(fd, probe, sizeof probe - 1);
    int werr = errno;
    close(fd);
    unlink(path);
    if (w != (ssize_t)(sizeof probe - 1)) {
        sonde_health_result_set_message(r, "cannot write in %s: %s", s->s1,
                                        w < 0 ? strerror(werr) : "short write");
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_set_message(r, "%s is writable", s->s1);
    sonde_health_result_add_detail(r, "path", s->s1);
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_writable_dir(sonde_health *h, const sonde_health_check_opts *opts,
                                  const char *dir)
{
    if (!dir || !*dir)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, dir)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    return add_spec(h, opts, writable_check, s, "writable");
}

/* ---- command ---- */

static sonde_health_status command_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        sonde_health_result_set_message(r, "pipe: %s", strerror(errno));
        return SONDE_HEALTH_UNHEALTHY;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, s->argv[0], &fa, NULL, s->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        sonde_health_result_set_message(r, "cannot run %s: %s", s->argv[0], strerror(rc));
        return SONDE_HEALTH_UNHEALTHY;
    }
    /* Read its output until EOF or the check's deadline, keeping the first
     * 4 KiB. */
    char out[4096];
    size_t len = 0;
    uint64_t deadline = sonde__now_mono_ns() + (uint64_t)(s->timeout_s * 1e9);
    bool timed_out = false;
    for (;;) {
        uint64_t now = sonde__now_mono_ns();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        int ms = (int)((deadline - now) / 1000000u) + 1;
        int pr = poll(&pfd, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char tmp[1024];
        ssize_t n = read(pipefd[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < sizeof out - 1 - len ? (size_t)n : sizeof out - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    close(pipefd[0]);
    out[len] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char first[256];
    size_t fl = strcspn(out, "\r\n");
    snprintf(first, sizeof first, "%.*s", (int)(fl < 255 ? fl : 255), out);
    if (timed_out) {
        sonde_health_result_set_message(r, "%s did not finish within %g s (killed)", s->argv[0],
                                        s->timeout_s);
        return SONDE_HEALTH_UNHEALTHY;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            sonde_health_result_set_message(r, "%s: command not found", s->argv[0]);
        else if (WIFEXITED(status))
            sonde_health_result_set_message(r, "%s exited with status %d: %s", s->argv[0],
                                            WEXITSTATUS(status), first);
        else
            sonde_health_result_set_message(r, "%s killed by signal %d", s->argv[0],
                                            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_set_message(r, "%s", first[0] ? first : "ok");
    sonde_health_result_add_detail(r, "version", first);
    sonde_health_result_add_detail(r, "command", s->argv[0]);
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_command(sonde_health *h, const sonde_health_check_opts *opts,
                             const char *const *argv)
{
    if (!argv || !argv[0] || !*argv[0])
        return SONDE_EINVAL;
    size_t n = 0;
    while (argv[n])
        n++;
    if (n > 64)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s)
        return SONDE_ENOMEM;
    s->argv = sonde__calloc(n + 1, sizeof *s->argv);
    if (!s->argv) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        s->argv[i] = sonde__strdup(argv[i]);
        if (!s->argv[i]) {
            spec_free(s);
            return SONDE_ENOMEM;
        }
    }
    return add_spec(h, opts, command_check, s, "command");
}

/* ---- TCP ---- */

static sonde_health_status tcp_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(s->s1, port, &hints, &res);
    if (gai != 0) {
        sonde_health_result_set_message(r, "cannot resolve %s: %s", s->s1, gai_strerror(gai));
        return SONDE_HEALTH_UNHEALTHY;
    }
    uint64_t start = sonde__now_mono_ns();
    uint64_t deadline = start + (uint64_t)(s->timeout_s * 1e9);
    int last_err = 0;
    bool ok = false;
    for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        int c = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (c == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            for (;;) {
                uint64_t now = sonde__now_mono_ns();
                if (now >= deadline) {
                    last_err = ETIMEDOUT;
                    break;
                }
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int pr = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
                if (pr < 0 && errno == EINTR)
                    continue;
                if (pr == 0)
                    continue;
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err == 0)
                    ok = true;
                else
                    last_err = err;
                break;
            }
        } else {
            last_err = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    double ms = (double)(sonde__now_mono_ns() - start) / 1e6;
    sonde_health_result_add_detail(r, "host", s->s1);
    sonde_health_result_add_number(r, "port", s->port);
    if (!ok) {
        sonde_health_result_set_message(r, "cannot connect to %s:%d: %s", s->s1, s->port,
                                        strerror(last_err ? last_err : ECONNREFUSED));
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_add_number(r, "connect_ms", round(ms * 100) / 100);
    sonde_health_result_set_message(r, "connected to %s:%d in %.1f ms", s->s1, s->port, ms);
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_tcp(sonde_health *h, const sonde_health_check_opts *opts, const char *host,
                         int port)
{
    if (!host || !*host || port <= 0 || port > 65535)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, host)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    s->port = port;
    return add_spec(h, opts, tcp_check, s, "tcp");
}

/* ---- HTTP ---- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    SONDE_UNUSED(p);
    SONDE_UNUSED(ud);
    return size * n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static sonde_health_status http_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c) {
        sonde_health_result_set_message(r, "cannot create an HTTP client");
        return SONDE_HEALTH_UNHEALTHY;
    }
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, s->s1);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(s->timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sonde-health/" SONDE_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    struct curl_slist *hl = NULL;
    for (char **h = s->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(hl, *h);
        if (!n) {
            curl_slist_free_all(hl);
            curl_easy_cleanup(c);
            sonde_health_result_set_message(r, "out of memory");
            return SONDE_HEALTH_UNHEALTHY;
        }
        hl = n;
    }
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(hl);
    long code = 0;
    double total = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total);
    curl_easy_cleanup(c);
    sonde_health_result_add_detail(r, "url", s->s1);
    if (cc != CURLE_OK) {
        sonde_health_result_set_message(r, "GET %s failed: %s", s->s1,
                                        err[0] ? err : curl_easy_strerror(cc));
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_add_number(r, "status_code", (double)code);
    sonde_health_result_add_number(r, "response_ms", round(total * 1e5) / 100);
    bool ok = s->port ? code == s->port : (code >= 200 && code < 300);
    if (!ok) {
        if (s->port)
            sonde_health_result_set_message(r, "GET %s answered %ld, expected %d", s->s1, code,
                                            s->port);
        else
            sonde_health_result_set_message(r, "GET %s answered %ld, expected 2xx", s->s1, code);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_set_message(r, "GET %s answered %ld in %.1f ms", s->s1, code, total * 1e3);
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_http(sonde_health *h, const sonde_health_check_opts *opts, const char *url,
                          int expect_status)
{
    if (!url || !*url || expect_status < 0 || expect_status > 999)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, url)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    s->port = expect_status;
    return add_spec(h, opts, http_check, s, "http");
}

int sonde_health_add_http_headers(sonde_health *h, const sonde_health_check_opts *opts,
                                  const char *url, int expect_status, const char *const *headers,
                                  size_t n)
{
    if (!url || !*url || expect_status < 0 || expect_status > 999 || n > 32 || (n && !headers))
        return SONDE_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *k = headers[2 * i], *v = headers[2 * i + 1];
        if (!k || !*k || strpbrk(k, ": \t\r\n") || !v || strpbrk(v, "\r\n"))
            return SONDE_EINVAL;
    }
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, url) || !(s->headers = sonde__calloc(n + 1, sizeof *s->headers))) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(headers[2 * i]) + strlen(headers[2 * i + 1]) + 3;
        char *line = sonde__malloc(len);
        if (!line) {
            spec_free(s);
            return SONDE_ENOMEM;
        }
        snprintf(line, len, "%s: %s", headers[2 * i], headers[2 * i + 1]);
        s->headers[i] = line;
    }
    s->port = expect_status;
    return add_spec(h, opts, http_check, s, "http");
}

/* ---- SQLite ---- */

static sonde_health_status sqlite_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    sqlite3 *db = NULL;
    sonde_health_result_add_detail(r, "path", s->s1);
    int rc = sqlite3_open_v2(s->s1, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sonde_health_result_set_message(r, "cannot open %s: %s", s->s1,
                                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sqlite3_busy_timeout(db, (int)(s->timeout_s * 1000));
    const char *q = s->s2 ? s->s2 : "SELECT 1";
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        do
            rc = sqlite3_step(st);
        while (rc == SQLITE_ROW);
    }
    sonde_health_status out = SONDE_HEALTH_HEALTHY;
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        sonde_health_result_set_message(r, "query on %s failed: %s", s->s1, sqlite3_errmsg(db));
        out = SONDE_HEALTH_UNHEALTHY;
    } else {
        sonde_health_result_set_message(r, "%s answered \"%s\"", s->s1, q);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

int sonde_health_add_sqlite(sonde_health *h, const sonde_health_check_opts *opts, const char *path,
                            const char *query)
{
    if (!path || !*path)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, path) || !dup_into(&s->s2, query)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    return add_spec(h, opts, sqlite_check, s, "sqlite");
}

/* ---- PostgreSQL ---- */

/* Copy a libpq message without its trailing newline. */
static void chomp_into(char *out, size_t n, const char *msg)
{
    snprintf(out, n, "%s", msg ? msg : "");
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r' || out[l - 1] == ' '))
        out[--l] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static sonde_health_status postgres_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    char timeout[16];
    int t = (int)ceil(s->timeout_s);
    snprintf(timeout, sizeof timeout, "%d", t < 2 ? 2 : t); /* libpq's minimum is 2 s */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {s->s1, timeout, "sonde-health", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    char msg[512];
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        chomp_into(msg, sizeof msg, pg ? PQerrorMessage(pg) : "out of memory");
        sonde_health_result_set_message(r, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(pg);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_add_detail(r, "host", PQhost(pg));
    sonde_health_result_add_detail(r, "port", PQport(pg));
    sonde_health_result_add_detail(r, "database", PQdb(pg));
    sonde_health_result_add_number(r, "server_version", PQserverVersion(pg));
    const char *q = s->s2 ? s->s2 : "SELECT 1";
    PGresult *res = PQexec(pg, q);
    ExecStatusType st = PQresultStatus(res);
    sonde_health_status out = SONDE_HEALTH_HEALTHY;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        chomp_into(msg, sizeof msg, PQerrorMessage(pg));
        sonde_health_result_set_message(r, "query \"%s\" failed: %s", q, msg);
        out = SONDE_HEALTH_UNHEALTHY;
    } else {
        sonde_health_result_set_message(r, "connected to %s:%s/%s, \"%s\" ok", PQhost(pg),
                                        PQport(pg), PQdb(pg), q);
    }
    PQclear(res);
    PQfinish(pg);
    return out;
}

int sonde_health_add_postgres(sonde_health *h, const sonde_health_check_opts *opts,
                              const char *conninfo, const char *query)
{
    if (!conninfo)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, conninfo) || !dup_into(&s->s2, query)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    return add_spec(h, opts, postgres_check, s, "postgres");
}

/* ---- Redis ---- */

static sonde_health_status redis_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    struct timeval tv = {.tv_sec = (time_t)s->timeout_s,
                         .tv_usec = (suseconds_t)((s->timeout_s - floor(s->timeout_s)) * 1e6)};
    redisContext *rc = redisConnectWithTimeout(s->s1, s->port, tv);
    sonde_health_result_add_detail(r, "host", s->s1);
    sonde_health_result_add_number(r, "port", s->port);
    if (!rc || rc->err) {
        sonde_health_result_set_message(r, "cannot connect to Redis at %s:%d: %s", s->s1, s->port,
                                        rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return SONDE_HEALTH_UNHEALTHY;
    }
    redisSetTimeout(rc, tv);
    if (s->s3) {
        redisReply *a = redisCommand(rc, "AUTH %s", s->s3);
        bool ok = a && a->type == REDIS_REPLY_STATUS;
        char why[256];
        snprintf(why, sizeof why, "%s",
                 a && a->type == REDIS_REPLY_ERROR ? a->str
                 : rc->err                         ? rc->errstr
                                                   : "no reply");
        if (a)
            freeReplyObject(a);
        if (!ok) {
            sonde_health_result_set_message(r, "Redis at %s:%d refused AUTH: %s", s->s1, s->port,
                                            why);
            redisFree(rc);
            return SONDE_HEALTH_UNHEALTHY;
        }
    }
    redisReply *p = redisCommand(rc, "PING");
    sonde_health_status out = SONDE_HEALTH_HEALTHY;
    if (!p) {
        sonde_health_result_set_message(r, "Redis at %s:%d did not answer PING: %s", s->s1, s->port,
                                        rc->errstr);
        out = SONDE_HEALTH_UNHEALTHY;
    } else if (p->type != REDIS_REPLY_STATUS || strcmp(p->str, "PONG") != 0) {
        sonde_health_result_set_message(r, "Redis at %s:%d answered PING with %s", s->s1, s->port,
                                        p->str ? p->str : "an unexpected reply");
        out = SONDE_HEALTH_UNHEALTHY;
    } else {
        sonde_health_result_set_message(r, "Redis at %s:%d answered PONG", s->s1, s->port);
    }
    if (p)
        freeReplyObject(p);
    redisFree(rc);
    return out;
}

int sonde_health_add_redis(sonde_health *h, const sonde_health_check_opts *opts, const char *host,
                           int port, const char *password)
{
    if (!host || !*host || port <= 0 || port > 65535)
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, host) || !dup_into(&s->s3, password)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    s->port = port;
    return add_spec(h, opts, redis_check, s, "redis");
}

/* ---- file freshness ---- */

static sonde_health_status fresh_check(sonde_health_result *r, void *ud)
{
    spec *s = ud;
    struct stat st;
    sonde_health_result_add_detail(r, "path", s->s1);
    if (stat(s->s1, &st) != 0) {
        sonde_health_result_set_message(r, "%s: %s", s->s1, strerror(errno));
        return SONDE_HEALTH_UNHEALTHY;
    }
    double mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    double age = sonde__now_wall() - mtime;
    if (age < 0)
        age = 0;
    sonde_health_result_add_number(r, "age_seconds", round(age * 10) / 10);
    sonde_health_result_add_number(r, "max_age_seconds", s->a);
    if (age > s->a) {
        sonde_health_result_set_message(r, "%s was last updated %.0f s ago (limit %g s)", s->s1,
                                        age, s->a);
        return SONDE_HEALTH_UNHEALTHY;
    }
    sonde_health_result_set_message(r, "%s updated %.0f s ago", s->s1, age);
    return SONDE_HEALTH_HEALTHY;
}

int sonde_health_add_file_fresh(sonde_health *h, const sonde_health_check_opts *opts,
                                const char *path, double max_age_seconds)
{
    if (!path || !*path || !(max_age_seconds > 0))
        return SONDE_EINVAL;
    spec *s = spec_new(opts);
    if (!s || !dup_into(&s->s1, path)) {
        spec_free(s);
        return SONDE_ENOMEM;
    }
    s->a = max_age_seconds;
    return add_spec(h, opts, fresh_check, s, "file_fresh");
}
