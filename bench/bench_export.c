/*
 * Remote write benchmarks (group "export").
 *
 * The registry: 100,000 series in 100 families of 1,000 (counters and
 * gauges with two labels, like request counters by route and status).
 *
 * Times are CPU time of the thread (or process) doing the work, so the
 * figures hold on a machine shared with other jobs.
 *
 *   rw_sample_ns_per_sample      sampling the registry into pending samples
 *                                (series table lookups, staleness bookkeeping)
 *   rw_encode_ns_per_sample      protobuf WriteRequest + snappy, batches of 2000
 *   rw_encode_samples_per_s      the same as a rate (target: >= 2 million/s)
 *   rw_scrape_text_ns_per_sample baseline, same run: rendering the same
 *                                registry as Prometheus text (one scrape)
 *   rw_encode_vs_scrape_ratio    encode / scrape text, per sample
 *   rw_bytes_per_sample          compressed bytes queued per sample, plus
 *                                the queue's per-batch overhead
 *   rw_cycle_cpu_ms              CPU time of one shipping cycle of the
 *                                registry (sample, encode, queue, HTTP POST
 *                                of every batch to a local receiver that
 *                                answers 204), the receiver's CPU excluded
 *   rw_idle_cpu_ms_per_s         CPU time per second of the writer's tick
 *                                between cycles
 *   rw_ship_15s_core_percent     (cycle + 15 s of ticks) / 15 s, in % of one
 *                                core (target: < 2%)
 *   rw_outage_queue_peak_bytes   highest memory held by queued batches
 *   rw_outage_queue_bound_bytes  during a receiver outage with a 1 MiB
 *   rw_outage_dropped_samples    bound: peak vs bound, and what was dropped
 */
#define _GNU_SOURCE
#include "bench.h"

#include "export/export_int.h"

#include <sonde.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAMILIES 100
#define PER_FAMILY 1000
#define SERIES (FAMILIES * PER_FAMILY)

static void die(const char *what, int rc)
{
    fprintf(stderr, "sonde-bench: export: %s: %s (%s)\n", what, sonde_strerror(rc),
            sonde_last_error());
    exit(1);
}

static sonde_counter *counters[SERIES / 2];

static sonde_registry *big_registry(void)
{
    sonde_registry *reg = NULL;
    int rc = sonde_registry_create(NULL, &reg);
    if (rc)
        die("registry", rc);
    static const char *const lbl[] = {"route", "status"};
    char name[64], route[32];
    size_t nc = 0;
    for (int f = 0; f < FAMILIES; f++) {
        bool counter = f % 2 == 0;
        snprintf(name, sizeof name, counter ? "app_requests_%03d_total" : "app_inflight_%03d", f);
        sonde_metric_opts o;
        sonde_metric_opts_init(&o);
        o.name = name;
        o.help = "Benchmark family";
        o.label_names = lbl;
        o.label_count = 2;
        o.max_series = PER_FAMILY;
        sonde_family *fam = NULL;
        if ((rc = sonde_family_create(reg, counter ? SONDE_COUNTER : SONDE_GAUGE, &o, &fam)))
            die("family", rc);
        for (int s = 0; s < PER_FAMILY; s++) {
            snprintf(route, sizeof route, "/api/v1/items/%d", s / 5);
            const char *status = (const char *[]){"200", "201", "404", "500", "503"}[s % 5];
            if (counter) {
                sonde_counter *c = sonde_family_counter(fam, route, status);
                sonde_counter_add(c, (double)(s * 37 % 1000));
                counters[nc++] = c;
            } else {
                sonde_gauge_set(sonde_family_gauge(fam, route, status), s * 0.25);
            }
        }
    }
    return reg;
}

static void bump(void)
{
    for (size_t i = 0; i < SERIES / 2; i++)
        sonde_counter_inc(counters[i]);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- encode throughput ---- */

/* CPU time of the calling thread: on a shared machine, time spent
 * descheduled does not count against the code measured. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bench_encode(sonde_registry *reg)
{
    sonde__rw_sampler smp;
    int rc = sonde__rw_sampler_init(&smp, reg, NULL, 0, NULL, 0, NULL, 0);
    if (rc)
        die("sampler", rc);
    sonde__rw_encoder enc = {0};
    unsigned runs = bench_runs(9);
    double sample_ns[16], encode_ns[16], text_ns[16];
    size_t compressed = 0, blocks = 0, raw_total = 0;
    sonde_buf text;
    sonde_buf_init(&text);
    for (unsigned r = 0; r < runs; r++) {
        bump();
        uint64_t t0 = thread_cpu_ns();
        long n = sonde__rw_sample(&smp, (int64_t)(wall() * 1000), bench_now_ns());
        uint64_t t1 = thread_cpu_ns();
        /* One more per family: sonde_metrics_dropped_series_total. */
        if (n != SERIES + FAMILIES) {
            fprintf(stderr, "sonde-bench: export: sampled %ld samples, expected %d\n", n,
                    SERIES + FAMILIES);
            exit(1);
        }
        compressed = blocks = raw_total = 0;
        for (size_t off = 0; off < smp.npending; off += 2000) {
            size_t k = smp.npending - off < 2000 ? smp.npending - off : 2000;
            uint8_t *out = NULL;
            size_t len = 0, raw = 0;
            if ((rc = sonde__rw_encode(&enc, smp.pending + off, k, &out, &len, &raw)))
                die("encode", rc);
            compressed += len;
            raw_total += raw;
            blocks++;
            BENCH_CLOBBER(out);
            sonde__free(out);
        }
        uint64_t t2 = thread_cpu_ns();
        sonde__rw_consume(&smp, smp.npending);
        text.len = 0;
        uint64_t t3 = thread_cpu_ns();
        if ((rc = sonde_registry_write_prometheus(reg, &text)))
            die("render", rc);
        uint64_t t4 = thread_cpu_ns();
        sample_ns[r] = (double)(t1 - t0) / (double)n;
        encode_ns[r] = (double)(t2 - t1) / (double)n;
        text_ns[r] = (double)(t4 - t3) / (double)n;
    }
    double s = bench_median(sample_ns, runs), e = bench_median(encode_ns, runs),
           t = bench_median(text_ns, runs);
    bench_print("rw_sample_ns_per_sample", s, "ns");
    bench_print("rw_encode_ns_per_sample", e, "ns");
    bench_print("rw_encode_samples_per_s", 1e9 / e, "samples/s");
    bench_print("rw_scrape_text_ns_per_sample", t, "ns");
    bench_print("rw_encode_vs_scrape_ratio", e / t, "x");
    double ns = SERIES + FAMILIES;
    bench_print("rw_raw_bytes_per_sample", (double)raw_total / ns, "B");
    bench_print("rw_bytes_per_sample",
                (double)(compressed + blocks * SONDE__RW_BLOCK_OVERHEAD) / ns, "B");
    sonde_buf_free(&text);
    sonde__rw_encoder_free(&enc);
    sonde__rw_sampler_free(&smp);
}

/* ---- a local receiver: reads each request, answers 204 ---- */

typedef struct sink {
    int lfd, port;
    pthread_t th;
    atomic_int stop;
    atomic_ullong cpu_ns; /* the sink thread's own CPU time */
    atomic_ullong requests, bytes;
} sink;

static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void serve_conn(sink *k, int fd)
{
    static char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        /* Read the head. */
        char *end = NULL;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf)
                return;
            ssize_t r = read(fd, buf + have, sizeof buf - have);
            if (r <= 0)
                return;
            have += (size_t)r;
        }
        size_t head = (size_t)(end - buf) + 4;
        size_t clen = 0;
        for (char *p = buf; p < end; p++)
            if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
                clen = strtoul(p + 15, NULL, 10);
        size_t body = have - head < clen ? have - head : clen;
        size_t left = clen - body;
        while (left) {
            ssize_t r = read(fd, buf, left < sizeof buf ? left : sizeof buf);
            if (r <= 0)
                return;
            left -= (size_t)r;
        }
        size_t used = head + body;
        size_t rest = have > used ? have - used : 0;
        memmove(buf, buf + (have - rest), rest);
        have = rest;
        atomic_fetch_add(&k->requests, 1);
        atomic_fetch_add(&k->bytes, clen);
        static const char ok[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        if (write(fd, ok, sizeof ok - 1) < 0)
            return;
        atomic_store(&k->cpu_ns, thread_cpu_ns());
    }
}

static void *sink_main(void *arg)
{
    sink *k = arg;
    while (!atomic_load(&k->stop)) {
        int fd = accept(k->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_conn(k, fd);
        close(fd);
        atomic_store(&k->cpu_ns, thread_cpu_ns());
    }
    return NULL;
}

static void sink_start(sink *k)
{
    memset(k, 0, sizeof *k);
    k->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (k->lfd < 0 || bind(k->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(k->lfd, 16) != 0 || getsockname(k->lfd, (struct sockaddr *)&a, &al) != 0)
        die("receiver socket", SONDE_EIO);
    k->port = ntohs(a.sin_port);
    if (pthread_create(&k->th, NULL, sink_main, k) != 0)
        die("receiver thread", SONDE_ENOMEM);
}

static void sink_stop(sink *k)
{
    atomic_store(&k->stop, 1);
    shutdown(k->lfd, SHUT_RDWR);
    close(k->lfd);
    pthread_join(k->th, NULL);
}

/* ---- shipping cost ---- */

static void bench_ship(sonde_registry *reg)
{
    sink k;
    sink_start(&k);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", k.port);
    sonde_registry *self = NULL;
    sonde_registry_create(NULL, &self);
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = url;
    o.registry = reg;
    o.self_registry = self;
    o.interval_seconds = 86400; /* cycles are driven below */
    sonde_remote_write *rw = NULL;
    int rc = sonde_remote_write_create(&o, &rw);
    if (rc || (rc = sonde_remote_write_start(rw)))
        die("writer", rc);
    if ((rc = sonde_remote_write_flush(rw, 60000)))
        die("first flush", rc);
    unsigned runs = bench_runs(7);
    double cycle_ms[16];
    for (unsigned r = 0; r < runs; r++) {
        bump();
        uint64_t p0 = process_cpu_ns(), s0 = atomic_load(&k.cpu_ns);
        sonde_remote_write_sample_now(rw);
        if ((rc = sonde_remote_write_flush(rw, 60000)))
            die("flush", rc);
        uint64_t p1 = process_cpu_ns(), s1 = atomic_load(&k.cpu_ns);
        /* The waiting main thread polls every 5 ms: negligible, counted. */
        cycle_ms[r] = (double)((p1 - p0) - (s1 - s0)) / 1e6;
    }
    /* Between cycles: the worker's 20 ms tick with nothing due. */
    uint64_t p0 = process_cpu_ns(), s0 = atomic_load(&k.cpu_ns), w0 = bench_now_ns();
    usleep(bench_quick ? 500000 : 3000000);
    uint64_t p1 = process_cpu_ns(), s1 = atomic_load(&k.cpu_ns), w1 = bench_now_ns();
    double idle_ms_per_s = (double)((p1 - p0) - (s1 - s0)) / 1e6 / ((double)(w1 - w0) / 1e9);
    double cyc = bench_median(cycle_ms, runs);
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    bench_print("rw_cycle_cpu_ms", cyc, "ms");
    bench_print("rw_idle_cpu_ms_per_s", idle_ms_per_s, "ms/s");
    bench_print("rw_ship_15s_core_percent", (cyc + 15 * idle_ms_per_s) / 15000 * 100, "%");
    bench_print("rw_ship_requests_per_cycle", (double)atomic_load(&k.requests) / (runs + 1),
                "requests");
    uint64_t want = (uint64_t)(SERIES + FAMILIES) * (runs + 1);
    if (st.samples_sent != want)
        fprintf(stderr, "sonde-bench: export: sent %llu samples, expected %llu\n",
                (unsigned long long)st.samples_sent, (unsigned long long)want);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(self);
    sink_stop(&k);
}

/* ---- queue bound during an outage ---- */

static void bench_outage(void)
{
    /* 10,000 series sampled 30 times into a 1 MiB queue whose receiver
     * refuses connections (a port nothing listens on). */
    sonde_registry *reg = NULL;
    sonde_registry_create(NULL, &reg);
    static const char *const lbl[] = {"id"};
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "outage_series_total";
    mo.help = "h";
    mo.label_names = lbl;
    mo.label_count = 1;
    mo.max_series = 10000;
    sonde_family *fam = NULL;
    sonde_family_create(reg, SONDE_COUNTER, &mo, &fam);
    char id[16];
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof id, "%d", i);
        sonde_counter_add(sonde_family_counter(fam, id), i);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", ntohs(a.sin_port));
    close(fd); /* bound once, now closed: connections are refused */
    sonde_registry *self = NULL;
    sonde_registry_create(NULL, &self);
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = url;
    o.registry = reg;
    o.self_registry = self;
    o.interval_seconds = 86400;
    o.queue_max_bytes = 1 << 20;
    o.min_backoff_seconds = 0.01;
    o.max_backoff_seconds = 0.02;
    o.flush_timeout_seconds = -1;
    sonde_remote_write *rw = NULL;
    int rc = sonde_remote_write_create(&o, &rw);
    if (rc || (rc = sonde_remote_write_start(rw)))
        die("outage writer", rc);
    uint64_t peak = 0;
    for (int i = 0; i < (bench_quick ? 10 : 30); i++) {
        sonde_remote_write_sample_now(rw);
        for (int j = 0; j < 5; j++) {
            sonde_remote_write_stats st;
            sonde_remote_write_get_stats(rw, &st);
            if (st.queue_memory_bytes > peak)
                peak = st.queue_memory_bytes;
            usleep(10000);
        }
    }
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    if (st.queue_memory_peak_bytes > peak)
        peak = st.queue_memory_peak_bytes;
    bench_print("rw_outage_queue_peak_bytes", (double)peak, "B");
    bench_print("rw_outage_queue_bound_bytes", (double)o.queue_max_bytes, "B");
    bench_print("rw_outage_dropped_samples", (double)st.dropped_queue_full, "samples");
    bench_print("rw_outage_pending_samples", (double)st.samples_pending, "samples");
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(self);
    sonde_registry_destroy(reg);
}

void sonde_bench_export(void)
{
    sonde_registry *reg = big_registry();
    bench_encode(reg);
    bench_ship(reg);
    bench_outage();
    sonde_registry_destroy(reg);
}
