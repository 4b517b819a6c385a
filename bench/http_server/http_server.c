/*
 * sonde-bench-http: a server for bench/http_bench.sh (wrk drives it).
 *
 *   sonde-bench-http [--listen ADDR] [--series N] [--threads T] [--hot]
 *
 * Registers N counter series (default 10,000) in the default registry and
 * serves them with sonde_start (rate limit off, 256 connections per client:
 * wrk opens many connections from one address). Prints "listening on
 * HOST:PORT" on stdout.
 *
 * --hot also runs one thread that increments a counter in a tight loop and
 * prints, every second, "hot <unix-ms> <increments-per-second>". To measure
 * what scrapes cost the hot path (cache-line traffic, locks) rather than
 * CPU sharing, the hot thread is pinned to CPU 0 and the server threads to
 * the other CPUs; run wrk on those too (taskset). Stops on SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <sonde.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop;
static _Atomic unsigned long long hot_count;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

static void pin(pthread_t t, int first_cpu, int last_cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = first_cpu; c <= last_cpu; c++)
        CPU_SET(c, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

static void *hot_loop(void *arg)
{
    sonde_counter *c = arg;
    unsigned long long local = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 4096; i++)
            sonde_counter_inc(c);
        local += 4096;
        atomic_store_explicit(&hot_count, local, memory_order_relaxed);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    long series = 10000;
    unsigned threads = 2;
    int hot = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--series") == 0 && i + 1 < argc)
            series = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--hot") == 0)
            hot = 1;
        else {
            fprintf(stderr, "usage: sonde-bench-http [--listen ADDR] [--series N] "
                            "[--threads T] [--hot]\n");
            return 64;
        }
    }
    if (series < 0 || series > 1000000) {
        fprintf(stderr, "sonde-bench-http: --series must be 0..1000000\n");
        return 64;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* Server threads inherit the main thread's CPUs: keep CPU 0 for the hot
     * loop when there is more than one. */
    if (hot && ncpu > 1)
        pin(pthread_self(), 1, (int)ncpu - 1);

    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *labels[2] = {"shard", "id"};
    o.name = "bench_http_series_total";
    o.help = "Series to scrape: one counter per (shard, id).";
    o.label_names = labels;
    o.label_count = 2;
    o.max_series = (size_t)(series > 0 ? series : 1);
    sonde_family *fam = NULL;
    int rc = sonde_family_create(NULL, SONDE_COUNTER, &o, &fam);
    if (rc) {
        fprintf(stderr, "sonde-bench-http: %s (%s)\n", sonde_strerror(rc), sonde_last_error());
        return 1;
    }
    for (long i = 0; i < series; i++) {
        char shard[16], id[24];
        snprintf(shard, sizeof shard, "%ld", i % 16);
        snprintf(id, sizeof id, "%ld", i);
        sonde_counter_add(sonde_family_counter(fam, shard, id), (double)(i * 7 % 1000));
    }
    sonde_counter *hot_c = NULL;
    sonde_counter_create(NULL, "bench_http_hot_total", "Hot loop increments.", &hot_c);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = listen;
    so.threads = threads;
    so.rate_limit_per_second = -1;
    so.max_connections = 1024;
    so.max_connections_per_client = 512;
    rc = sonde_start(&so);
    if (rc) {
        fprintf(stderr, "sonde-bench-http: cannot serve: %s (%s)\n", sonde_strerror(rc),
                sonde_last_error());
        return 1;
    }
    char addr[96];
    sonde_listen_address(addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);

    pthread_t ht;
    if (hot) {
        pthread_create(&ht, NULL, hot_loop, hot_c);
        if (ncpu > 1)
            pin(ht, 0, 0);
    }
    unsigned long long prev = 0;
    double t_prev = now_s();
    while (!atomic_load(&stop)) {
        usleep(hot ? 1000000 : 100000);
        if (!hot)
            continue;
        unsigned long long cur = atomic_load_explicit(&hot_count, memory_order_relaxed);
        double t = now_s();
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        printf("hot %lld %.0f\n", (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
               (double)(cur - prev) / (t - t_prev));
        fflush(stdout);
        prev = cur;
        t_prev = t;
    }
    if (hot)
        pthread_join(ht, NULL);
    sonde_stop();
    return 0;
}
