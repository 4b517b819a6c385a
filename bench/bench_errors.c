/*
 * Error capture: the cost on the calling thread of sonde_error_capture (no
 * alert fires), the throughput of two capturing threads while the runtime
 * worker drains, and a paced 100,000 errors/s run that must drop nothing.
 * Baseline in the same run: formatting the same message with snprintf.
 */
#include "bench.h"

#include <sonde.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sonde_errors *T;
static sonde_registry *R;

static const char *const ctx[] = {"shard", "7", "table", "orders"};

static void capture_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_HIGH;
    e.type = "DatabaseError";
    e.file = "src/orders/repository.c";
    e.line = 214;
    e.func = "orders_insert";
    e.context = ctx;
    e.context_count = 2;
    e.operation = "checkout";
    /* A realistic message with ids that normalisation removes. */
    static const char *const msgs[4] = {
        "insert into orders failed for user 48213: deadlock detected (txn 0x7f3a9c21)",
        "insert into orders failed for user 7: deadlock detected (txn 0x11aa0b3c)",
        "insert into orders failed for user 99120: deadlock detected (txn 0xdeadbeef)",
        "insert into orders failed for user 3341: deadlock detected (txn 0x0badf00d)",
    };
    for (uint64_t i = 0; i < iters; i++) {
        e.message = msgs[(i + tid) & 3];
        sonde_error_capture(T, &e);
    }
}

static void capturef_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    for (uint64_t i = 0; i < iters; i++)
        sonde_error_capturef(T, SONDE_SEVERITY_HIGH, "DatabaseError", "src/orders/repository.c",
                             214, "orders_insert",
                             "insert into orders failed for user %llu: deadlock detected",
                             (unsigned long long)i);
}

static void snprintf_body(void *arg, unsigned tid, uint64_t iters)
{
    (void)arg;
    (void)tid;
    char buf[512];
    for (uint64_t i = 0; i < iters; i++) {
        snprintf(buf, sizeof buf, "insert into orders failed for user %llu: deadlock detected",
                 (unsigned long long)i);
        BENCH_CLOBBER(buf);
    }
}

static uint64_t dropped(void)
{
    char *text = sonde_registry_render(R, SONDE_FORMAT_PROMETHEUS, NULL);
    const char *p = text ? strstr(text, "\nsonde_errors_dropped_total ") : NULL;
    uint64_t d = p ? strtoull(p + strlen("\nsonde_errors_dropped_total "), NULL, 10) : 0;
    sonde_free(text);
    return d;
}

/* Paced capture: each thread captures `rate` errors per second for
 * `seconds`, in bursts every millisecond. */
typedef struct paced {
    double rate, seconds;
    pthread_barrier_t *go;
} paced;

static void *paced_thread(void *arg)
{
    paced *p = arg;
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_MEDIUM;
    e.type = "TimeoutError";
    e.message = "upstream 10.0.3.7:8080 timed out after 250 ms";
    e.file = "proxy.c";
    e.line = 88;
    e.func = "forward";
    pthread_barrier_wait(p->go);
    uint64_t t0 = bench_now_ns();
    uint64_t total = (uint64_t)(p->rate * p->seconds), done = 0;
    while (done < total) {
        double elapsed = (double)(bench_now_ns() - t0) / 1e9;
        uint64_t due = (uint64_t)(elapsed * p->rate) + 1;
        if (due > total)
            due = total;
        while (done < due) {
            sonde_error_capture(T, &e);
            done++;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void sonde_bench_errors(void)
{
    if (sonde_registry_create(NULL, &R) != SONDE_OK)
        return;
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = R;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.tick_ms = 10;
    o.queue_size = 65536;
    if (sonde_errors_create(&o, &T) != SONDE_OK)
        return;
    /* A rule that sees every error but never fires. */
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "NeverFires";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_CRITICAL;
    r.threshold = 1000;
    sonde_alerts_add_rule(T, &r);
    sonde_errors_start(T);

    uint64_t iters = bench_iters(200000);
    unsigned runs = bench_runs(7);
    bench_case cs[3] = {
        {1, snprintf_body, NULL, iters, 0},
        {1, capture_body, NULL, iters, 0},
        {1, capturef_body, NULL, iters, 0},
    };
    uint64_t d0 = dropped();
    bench_cases_run(cs, 3, runs);
    uint64_t d1 = dropped();
    bench_print("baseline_snprintf_message_1t", cs[0].result, "ns/op");
    bench_print("error_capture_1t", cs[1].result, "ns/op");
    bench_print("error_capturef_1t", cs[2].result, "ns/op");
    bench_print("error_capture_1t_dropped", (double)(d1 - d0), "errors");

    /* Two threads as fast as they can, the worker draining. */
    sonde_errors_process(T);
    d0 = dropped();
    uint64_t per = bench_iters(500000);
    uint64_t t0 = bench_now_ns();
    double ns2[2];
    bench_threads(2, capture_body, NULL, per, ns2);
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    sonde_errors_process(T);
    d1 = dropped();
    double kept = (double)(2 * per - (d1 - d0));
    bench_print("error_capture_2t_ns", (ns2[0] + ns2[1]) / 2, "ns/op");
    bench_print("error_capture_2t_throughput", (double)(2 * per) / wall, "errors/s");
    bench_print("error_capture_2t_kept_throughput", kept / wall, "errors/s");

    /* 100,000 errors/s paced over two threads: nothing may be dropped. */
    d0 = dropped();
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    paced p = {50000, bench_quick ? 0.3 : 2.0, &go};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, paced_thread, &p);
    pthread_barrier_wait(&go);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    sonde_errors_process(T);
    d1 = dropped();
    bench_print("error_sustained_100k_per_s_dropped", (double)(d1 - d0), "errors");

    sonde_errors_stop(T);
    sonde_errors_destroy(T);
    sonde_registry_destroy(R);
}
