/*
 * Remote write against real receivers started on loopback: VictoriaMetrics
 * (exact values, and a 30 s outage that loses nothing), Prometheus with its
 * remote-write receiver (exact values), and a small Python endpoint for the
 * status codes no real receiver gives on demand (400, 429 + Retry-After,
 * 503).
 */
#include "http_client.h"
#include "proc.h"
#include "test.h"

#include <sonde.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[] = "/tmp/sonde-rw-XXXXXX";

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

__attribute__((constructor)) static void make_tmpdir(void)
{
    if (mkdtemp(tmpdir))
        atexit(cleanup);
}

static void stop_gently(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        proc_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int wait_url(const char *url, int timeout_ms)
{
    double end = proc_now() + timeout_ms / 1000.0;
    while (proc_now() < end) {
        http_resp r = http_get(url);
        long st = r.status;
        http_free(&r);
        if (st == 200)
            return 0;
        proc_sleep_ms(100);
    }
    return -1;
}

/* ---- the status-code receiver ---- */

static pid_t start_status(int status, int n, const char *retry_after, int *port)
{
    char script[512], s1[16], s2[16];
    snprintf(script, sizeof script, "%s/tests/integration/rw_status_receiver.py",
             getenv("SONDE_SOURCE_DIR"));
    snprintf(s1, sizeof s1, "%d", status);
    snprintf(s2, sizeof s2, "%d", n);
    char *argv[] = {"python3", script, s1, s2, (char *)retry_after, NULL};
    int fd = -1;
    pid_t pid = proc_spawn(argv, &fd, NULL);
    char line[32];
    /* Python can take long to start on a loaded machine; a receiver that
     * never reported its port is stopped, not left holding the test's
     * output open. */
    if (pid <= 0 || proc_read_line(fd, line, sizeof line, 30000) <= 0) {
        if (pid > 0)
            proc_stop(pid);
        return -1;
    }
    close(fd);
    *port = (int)strtol(line, NULL, 10);
    return pid;
}

/* The receiver's request log; caller frees. */
static char *requests_of(int port)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/requests", port);
    http_resp r = http_get(url);
    char *b = r.body;
    r.body = NULL;
    http_free(&r);
    return b;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static double nth_time(const char *log, int k)
{
    const char *p = log;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return p ? strtod(p + 2, NULL) : -1;
}

static sonde_registry *one_gauge(const char *name, double v, sonde_gauge **out)
{
    sonde_registry *reg = NULL;
    sonde_registry_create(NULL, &reg);
    sonde_gauge *g = NULL;
    sonde_gauge_create(reg, name, "test gauge", &g);
    sonde_gauge_set(g, v);
    if (out)
        *out = g;
    return reg;
}

static sonde_remote_write *writer(const char *url, sonde_registry *reg, sonde_registry *self,
                                  double interval)
{
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = url;
    o.registry = reg;
    o.self_registry = self;
    o.interval_seconds = interval;
    o.batch_deadline_seconds = 0.2;
    o.min_backoff_seconds = 0.1;
    o.max_backoff_seconds = 1;
    o.timeout_seconds = 5;
    sonde_remote_write *rw = NULL;
    if (sonde_remote_write_create(&o, &rw) != SONDE_OK)
        return NULL;
    return rw;
}

TEST(test_remote_write_400_is_dropped_counted_and_not_retried)
{
    int port;
    pid_t pid = start_status(400, 1000, NULL, &port);
    ASSERT_GT(pid, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);
    sonde_registry *self;
    ASSERT_OK(sonde_registry_create(NULL, &self));
    sonde_registry *reg = one_gauge("rw_bad_gauge", 1, NULL);
    sonde_remote_write *rw = writer(url, reg, self, 3600);
    ASSERT(rw != NULL);
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 10000));
    proc_sleep_ms(1500); /* a retry would have happened by now */
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_U64_EQ(st.requests, 1);
    ASSERT_U64_EQ(st.dropped_rejected, 1);
    ASSERT_U64_EQ(st.samples_retried, 0);
    ASSERT_U64_EQ(st.samples_sent, 0);
    ASSERT_EQ(st.last_status, 400);
    char *log = requests_of(port);
    ASSERT_EQ(count_lines(log), 1);
    ASSERT_CONTAINS(log, "status=400");
    ASSERT_CONTAINS(log, "enc=snappy type=application/x-protobuf version=0.1.0");
    free(log);
    char *text = sonde_registry_render(self, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_remote_write_samples_dropped_total{remote=\"http://127.0.0.1:");
    ASSERT_CONTAINS(text, "reason=\"rejected\"} 1\n");
    sonde_free(text);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
    sonde_registry_destroy(self);
    proc_stop(pid);
}

TEST(test_remote_write_429_waits_for_retry_after)
{
    int port;
    pid_t pid = start_status(429, 1, "2", &port);
    ASSERT_GT(pid, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);
    sonde_registry *self;
    ASSERT_OK(sonde_registry_create(NULL, &self));
    sonde_registry *reg = one_gauge("rw_slow_gauge", 1, NULL);
    sonde_remote_write *rw = writer(url, reg, self, 3600);
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 15000));
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_U64_EQ(st.requests, 2);
    ASSERT_U64_EQ(st.samples_sent, 1);
    ASSERT_U64_EQ(st.samples_retried, 1);
    ASSERT_U64_EQ(st.dropped_rejected, 0);
    char *log = requests_of(port);
    ASSERT_EQ(count_lines(log), 2);
    double gap = nth_time(log, 1) - nth_time(log, 0);
    /* Backoff alone would have retried after 0.1-0.15 s. */
    if (gap < 1.95)
        TEST_FAIL_AT("retried %.3f s after a 429 with Retry-After: 2", gap);
    free(log);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
    sonde_registry_destroy(self);
    proc_stop(pid);
}

TEST(test_remote_write_503_is_retried_with_backoff)
{
    int port;
    pid_t pid = start_status(503, 3, NULL, &port);
    ASSERT_GT(pid, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);
    sonde_registry *self;
    ASSERT_OK(sonde_registry_create(NULL, &self));
    sonde_registry *reg = one_gauge("rw_flaky_gauge", 1, NULL);
    sonde_remote_write *rw = writer(url, reg, self, 3600);
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 15000));
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_U64_EQ(st.requests, 4);
    ASSERT_U64_EQ(st.samples_sent, 1);
    ASSERT_U64_EQ(st.samples_retried, 3);
    ASSERT_U64_EQ(st.samples_failed, 3);
    char *log = requests_of(port);
    /* Waits grow: 0.1, 0.2, 0.4 s (plus up to 50% jitter). */
    double g1 = nth_time(log, 1) - nth_time(log, 0), g3 = nth_time(log, 3) - nth_time(log, 2);
    if (!(g1 >= 0.09 && g3 >= 0.39 && g3 > g1))
        TEST_FAIL_AT("backoff gaps %.3f then %.3f s", g1, g3);
    free(log);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
    sonde_registry_destroy(self);
    proc_stop(pid);
}

/* ---- VictoriaMetrics ---- */

static pid_t start_vm(int port)
{
    char listen[64], data[300], log[300];
    snprintf(listen, sizeof listen, "-httpListenAddr=127.0.0.1:%d", port);
    snprintf(data, sizeof data, "-storageDataPath=%s/vm", tmpdir);
    snprintf(log, sizeof log, "%s/vm.log", tmpdir);
    char *argv[] = {
        "victoria-metrics",      listen, data, "-search.latencyOffset=0s", "-search.disableCache",
        "-retentionPeriod=100y", NULL};
    pid_t pid = proc_spawn(argv, NULL, log);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    if (pid <= 0 || wait_url(url, 30000) != 0)
        return -1;
    return pid;
}

static int export_count(const char *s);

/* Export every raw sample of name from VictoriaMetrics, waiting (up to
 * 20 s) until at least want are searchable. Caller frees. */
static char *vm_export(int port, const char *name, int want)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/internal/force_flush", port);
    http_resp f = http_get(url);
    http_free(&f);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/export?match[]=%s", port, name);
    /* Ingested samples become searchable within a few seconds. */
    for (int i = 0;; i++) {
        http_resp r = http_get(url);
        char *b = r.body;
        r.body = NULL;
        http_free(&r);
        if (export_count(b) >= want || i == 100)
            return b;
        free(b);
        proc_sleep_ms(200);
    }
}

/* Number of values in an export line ("values":[a,b,...]). */
static int export_count(const char *s)
{
    const char *v = s ? strstr(s, "\"values\":[") : NULL;
    if (!v)
        return 0;
    v += 10;
    if (*v == ']')
        return 0;
    int n = 1;
    for (; *v && *v != ']'; v++)
        n += *v == ',';
    return n;
}

TEST(test_remote_write_victoriametrics_exact_values_and_outage_loses_nothing)
{
    int port = proc_free_port();
    pid_t vm = start_vm(port);
    ASSERT_GT(vm, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);

    /* Exact values, external label. */
    sonde_registry *self;
    ASSERT_OK(sonde_registry_create(NULL, &self));
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(reg, "rw_vm_gauge", "g", &g));
    sonde_gauge_set(g, 12345.678);
    sonde_counter *c;
    ASSERT_OK(sonde_counter_create(reg, "rw_vm_events_total", "c", &c));
    sonde_counter_add(c, 42);
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = url;
    o.registry = reg;
    o.self_registry = self;
    o.interval_seconds = 3600;
    const char *ext[] = {"site", "test-lab"};
    o.external_labels = ext;
    o.external_label_count = 1;
    sonde_remote_write *rw;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 15000));
    sonde_remote_write_destroy(rw);
    char *e = vm_export(port, "rw_vm_gauge", 1);
    ASSERT_CONTAINS(e, "\"site\":\"test-lab\"");
    ASSERT_CONTAINS(e, "\"values\":[12345.678]");
    free(e);
    e = vm_export(port, "rw_vm_events_total", 1);
    ASSERT_CONTAINS(e, "\"values\":[42]");
    free(e);
    sonde_registry_destroy(reg);

    /* Outage: the receiver is down for 30 s while sampling goes on. */
    sonde_gauge *seq;
    reg = one_gauge("rw_vm_seq", 0, &seq);
    rw = writer(url, reg, self, 0.5);
    ASSERT(rw != NULL);
    ASSERT_OK(sonde_remote_write_start(rw));
    proc_sleep_ms(3000);
    stop_gently(vm);
    double down = proc_now();
    while (proc_now() - down < 30)
        proc_sleep_ms(200);
    sonde_remote_write_stats mid;
    sonde_remote_write_get_stats(rw, &mid);
    vm = start_vm(port);
    ASSERT_GT(vm, 0);
    proc_sleep_ms(3000);
    ASSERT_OK(sonde_remote_write_flush(rw, 60000));
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    sonde_remote_write_destroy(rw);
    if (mid.samples_pending < 40 || st.samples_failed == 0)
        TEST_FAIL_AT("during the outage: %llu pending, %llu failed, %llu requests, status %d",
                     (unsigned long long)mid.samples_pending, (unsigned long long)st.samples_failed,
                     (unsigned long long)mid.requests, mid.last_status);
    ASSERT_U64_EQ(st.dropped_queue_full + st.dropped_rejected + st.dropped_too_large, 0);
    ASSERT_GE(st.samples_sent, 65);
    e = vm_export(port, "rw_vm_seq", (int)st.samples_sent);
    int got = export_count(e);
    if ((uint64_t)got != st.samples_sent)
        TEST_FAIL_AT("sent %llu samples, VictoriaMetrics has %d: %.300s",
                     (unsigned long long)st.samples_sent, got, e ? e : "");
    free(e);
    sonde_registry_destroy(reg);
    sonde_registry_destroy(self);
    stop_gently(vm);
}

/* ---- Prometheus ---- */

TEST(test_remote_write_prometheus_receiver_exact_values)
{
    int port = proc_free_port();
    char listen[64], data[300], log[300];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(data, sizeof data, "--storage.tsdb.path=%s/prom", tmpdir);
    snprintf(log, sizeof log, "%s/prom.log", tmpdir);
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/prom.yml", tmpdir);
    FILE *f = fopen(cfg, "w");
    ASSERT(f != NULL);
    fputs("global:\n  scrape_interval: 1h\n", f);
    fclose(f);
    char cfgarg[320];
    snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfg);
    char *argv[] = {"prometheus", cfgarg, listen, data, "--web.enable-remote-write-receiver", NULL};
    pid_t pid = proc_spawn(argv, NULL, log);
    ASSERT_GT(pid, 0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/-/ready", port);
    ASSERT_EQ(wait_url(url, 60000), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);

    sonde_registry *self;
    ASSERT_OK(sonde_registry_create(NULL, &self));
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    const char *ln[] = {"route"};
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "rw_prom_requests_total";
    mo.label_names = ln;
    mo.label_count = 1;
    sonde_family *fam;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &mo, &fam));
    sonde_counter_add(sonde_family_counter(fam, "/api/a"), 17);
    sonde_counter_add(sonde_family_counter(fam, "/api/b"), 0.25);
    sonde_remote_write *rw = writer(url, reg, self, 3600);
    ASSERT(rw != NULL);
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 15000));
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    /* Two series, and sonde_metrics_dropped_series_total{family=...}. */
    ASSERT_U64_EQ(st.samples_sent, 3);
    sonde_remote_write_destroy(rw);
    snprintf(url, sizeof url,
             "http://127.0.0.1:%d/api/v1/query?query=rw_prom_requests_total%%7Broute%%3D%%22/api/"
             "a%%22%%7D",
             port);
    http_resp r = http_get(url);
    ASSERT_CONTAINS(r.body, "\"route\":\"/api/a\"");
    ASSERT_CONTAINS(r.body, ",\"17\"]");
    http_free(&r);
    snprintf(url, sizeof url,
             "http://127.0.0.1:%d/api/v1/query?query=rw_prom_requests_total%%7Broute%%3D%%22/api/"
             "b%%22%%7D",
             port);
    r = http_get(url);
    ASSERT_CONTAINS(r.body, ",\"0.25\"]");
    http_free(&r);
    sonde_registry_destroy(reg);
    sonde_registry_destroy(self);
    stop_gently(pid);
}

TEST_MAIN()
