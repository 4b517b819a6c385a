/*
 * The tracing flush's own thread, started by sonde_trace_start and joined
 * by sonde_trace_stop: every interval it runs sonde__trace_tick (collect
 * closed minutes, judge baselines, write the store, prune).
 *
 * When the runtime worker (src/runtime/) is available this file is the
 * single place to change: sonde__trace_bg_start becomes a
 * sonde__runtime_every(interval, tick, tr) registration plus a runtime
 * reference, and sonde__trace_bg_stop the matching cancel and release.
 */
#include "trace_int.h"

#include <time.h>

static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cond;
static pthread_t bg_thread;
static int bg_running, bg_stop;
static sonde__tracer *bg_tr;
static unsigned bg_interval_ms;

static void *bg_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bg_lock);
    while (!bg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)bg_interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!bg_stop && pthread_cond_timedwait(&bg_cond, &bg_lock, &ts) == 0)
            ;
        if (bg_stop)
            break;
        sonde__tracer *tr = bg_tr;
        pthread_mutex_unlock(&bg_lock);
        sonde__trace_tick(tr, 0);
        pthread_mutex_lock(&bg_lock);
    }
    pthread_mutex_unlock(&bg_lock);
    return NULL;
}

int sonde__trace_bg_start(sonde__tracer *tr, unsigned interval_ms)
{
    pthread_mutex_lock(&bg_lock);
    if (bg_running) {
        pthread_mutex_unlock(&bg_lock);
        return SONDE_ESTATE;
    }
    static int cond_ready;
    if (!cond_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&bg_cond, &ca);
        pthread_condattr_destroy(&ca);
        cond_ready = 1;
    }
    bg_tr = tr;
    bg_interval_ms = interval_ms;
    bg_stop = 0;
    if (pthread_create(&bg_thread, NULL, bg_main, NULL) != 0) {
        pthread_mutex_unlock(&bg_lock);
        return SONDE_ENOMEM;
    }
    bg_running = 1;
    pthread_mutex_unlock(&bg_lock);
    return SONDE_OK;
}

void sonde__trace_bg_stop(void)
{
    pthread_mutex_lock(&bg_lock);
    if (!bg_running) {
        pthread_mutex_unlock(&bg_lock);
        return;
    }
    bg_stop = 1;
    pthread_cond_broadcast(&bg_cond);
    pthread_mutex_unlock(&bg_lock);
    pthread_join(bg_thread, NULL);
    pthread_mutex_lock(&bg_lock);
    bg_running = 0;
    bg_tr = NULL;
    pthread_mutex_unlock(&bg_lock);
}
