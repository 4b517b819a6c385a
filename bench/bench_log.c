/*
 * Logging benchmarks (sonde-bench log).
 *
 *   log_disabled_level           a call below the logger's level (ns/op)
 *   log_disabled_loop_baseline   the same loop without the call (ns/op)
 *   log_async_5fields_caller     asynchronous mode, 5 fields: time on the
 *                                calling thread, in bursts the queue holds
 *                                (the writer drains between bursts) (ns/op)
 *   log_async_5fields_ctx_caller the same inside a context frame (ID + 2
 *                                fields) (ns/op)
 *   log_async_file_lines_per_s   sustained: 1,000,000 lines, blocking queue,
 *                                from the first call until the file has them
 *   log_sync_file_5fields        synchronous mode to a file (ns/op)
 *   log_fprintf_json_baseline    fprintf of the equivalent JSON line to a
 *                                buffered FILE (ns/op and lines/s): the
 *                                baseline, measured in the same run
 *
 * Every figure is the median of 5 runs (3 with --quick).
 */
#include "bench.h"

#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char dir[128];
static char path[256];

static void configure(int async, int block, const char *file)
{
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "info";
    o.file = file;
    o.async = async;
    o.block_when_full = block;
    o.queue_slots = (size_t)1 << 16;
    if (sonde_log_configure(&o) != SONDE_OK) {
        fprintf(stderr, "bench_log: cannot configure logging to %s\n", file ? file : "(none)");
        exit(1);
    }
}

static void fresh_file(void)
{
    unlink(path);
}

static sonde_logger *lg;

static void body_disabled(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++) {
        SONDE_LOG(lg, DEBUG, "not written", SONDE_UINT("i", i), SONDE_STR("user", "u42"));
        BENCH_CLOBBER(&i);
    }
}

static void body_empty(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++)
        BENCH_CLOBBER(&i);
}

static inline void log_5(uint64_t i)
{
    SONDE_LOG(lg, INFO, "request handled", SONDE_STR("method", "GET"),
              SONDE_STR("path", "/api/v1/items"), SONDE_INT("status", 200),
              SONDE_DOUBLE("duration", 0.0125 + (double)(i & 7) * 0.001), SONDE_STR("user", "u42"));
}

/* Caller time in bursts of `burst` calls, flushing (untimed) between. */
static double caller_ns(uint64_t total, uint64_t burst, int with_ctx)
{
    uint64_t ns = 0, done = 0;
    int tok = 0;
    if (with_ctx)
        tok = sonde_log_context_push(NULL,
                                     (sonde_field[]){SONDE_STR("operation", "clone_all"),
                                                     SONDE_STR("organization", "myorg")},
                                     2);
    while (done < total) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < burst; i++)
            log_5(i);
        ns += bench_now_ns() - t0;
        done += burst;
        sonde_log_flush(10000);
    }
    sonde_log_context_pop(tok);
    return (double)ns / (double)done;
}

static double fprintf_run(uint64_t n, double *lines_per_s)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    int pid = (int)getpid(), tid = (int)syscall(SYS_gettid);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(
            f,
            "{\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"INFO\","
            "\"logger\":\"bench\",\"message\":\"request handled\",\"fields\":{\"method\":\"%s\","
            "\"path\":\"%s\",\"status\":%d,\"duration\":%g,\"user\":\"%s\"},"
            "\"source\":\"%s:%d:%s\",\"pid\":%d,\"tid\":%d}\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000, "GET", "/api/v1/items", 200, 0.0125 + (double)(i & 7) * 0.001, "u42",
            "bench_log.c", __LINE__, __func__, pid, tid);
    }
    fflush(f);
    uint64_t t1 = bench_now_ns();
    fclose(f);
    *lines_per_s = (double)n * 1e9 / (double)(t1 - t0);
    return (double)(t1 - t0) / (double)n;
}

void sonde_bench_log(void)
{
    snprintf(dir, sizeof dir, "/tmp/sonde-bench-log.XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_log: mkdtemp failed\n");
        return;
    }
    snprintf(path, sizeof path, "%s/bench.log", dir);
    unsigned runs = bench_runs(5);
    lg = sonde_logger_get("bench");
    double v[16];

    /* Below the level: the inline check only. */
    configure(0, 0, NULL);
    {
        sonde_log_sink_opts so;
        sonde_log_sink_opts_init(&so);
        so.path = "/dev/null";
        sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, NULL); /* a sink, so INFO is live */
    }
    bench_print("log_disabled_level",
                bench_median_1t(body_disabled, NULL, bench_iters(200000000), runs), "ns/op");
    bench_print("log_disabled_loop_baseline",
                bench_median_1t(body_empty, NULL, bench_iters(200000000), runs), "ns/op");

    /* Asynchronous mode, time on the calling thread. */
    fresh_file();
    configure(1, 0, path);
    sonde_log_stats s0, s1;
    sonde_log_get_stats(&s0);
    caller_ns(20000, 2000, 0); /* warm up: thread cells, buffers */
    for (unsigned r = 0; r < runs; r++)
        v[r] = caller_ns(bench_iters(200000), 2000, 0);
    bench_print("log_async_5fields_caller", bench_median(v, runs), "ns/op");
    for (unsigned r = 0; r < runs; r++)
        v[r] = caller_ns(bench_iters(200000), 2000, 1);
    bench_print("log_async_5fields_ctx_caller", bench_median(v, runs), "ns/op");
    sonde_log_get_stats(&s1);
    bench_print("log_async_caller_dropped", (double)(s1.dropped - s0.dropped), "lines");

    /* Sustained throughput to a file: blocking queue, 1M lines. */
    configure(1, 1, path);
    uint64_t n = bench_iters(1000000);
    for (unsigned r = 0; r < runs; r++) {
        fresh_file();
        sonde_log_reopen();
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < n; i++)
            log_5(i);
        sonde_log_flush(60000);
        uint64_t t1 = bench_now_ns();
        v[r] = (double)n * 1e9 / (double)(t1 - t0);
    }
    bench_print("log_async_file_lines_per_s", bench_median(v, runs), "lines/s");
    sonde_log_shutdown(10000);

    /* Synchronous mode to a file: format and write(2) on the caller. */
    fresh_file();
    configure(0, 0, path);
    for (unsigned r = 0; r < runs; r++) {
        uint64_t m = bench_iters(100000);
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < m; i++)
            log_5(i);
        v[r] = (double)(bench_now_ns() - t0) / (double)m;
    }
    bench_print("log_sync_file_5fields", bench_median(v, runs), "ns/op");

    /* Baseline: fprintf of the same JSON line (no escaping, no masking). */
    configure(0, 0, NULL);
    double lps[16];
    for (unsigned r = 0; r < runs; r++)
        v[r] = fprintf_run(bench_iters(1000000), &lps[r]);
    bench_print("log_fprintf_json_baseline", bench_median(v, runs), "ns/op");
    bench_print("log_fprintf_json_baseline_lines_per_s", bench_median(lps, runs), "lines/s");

    unlink(path);
    rmdir(dir);
    /* Back to the defaults (stderr) for whatever runs next. */
    sonde_log_configure(NULL);
}
