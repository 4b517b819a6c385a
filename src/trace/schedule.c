/*
 * Scheduling of the tracing flush on the runtime worker (src/core/worker.c):
 * sonde_trace_start registers a timer that runs sonde__trace_tick every
 * flush interval and takes a reference on the worker (starting it when
 * sonde_start has not); sonde_trace_stop cancels the timer and drops the
 * reference.
 *
 * The tick honours the worker's contract (return well under a second):
 * collecting minutes is memory work; store writes are bounded by the
 * backends' timeouts (SQLite busy timeout 250 ms, Redis 250 ms per
 * operation by default) and skipped during backoff; pruning deletes a
 * bounded number of rows per tick.
 */
#include "trace_int.h"

#include "core/worker.h"

static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t timer_id;
static int scheduled;

static void tick_cb(void *ud, uint64_t now_ns)
{
    (void)now_ns;
    sonde__trace_tick(ud, 0);
}

int sonde__trace_bg_start(sonde__tracer *tr, unsigned interval_ms)
{
    pthread_mutex_lock(&sched_lock);
    if (scheduled) {
        pthread_mutex_unlock(&sched_lock);
        return SONDE_ESTATE;
    }
    int rc = sonde__runtime_every(interval_ms, tick_cb, tr, &timer_id);
    if (rc == SONDE_OK) {
        rc = sonde__runtime_start();
        if (rc != SONDE_OK)
            sonde__runtime_cancel(timer_id);
    }
    scheduled = rc == SONDE_OK;
    pthread_mutex_unlock(&sched_lock);
    return rc;
}

void sonde__trace_bg_stop(void)
{
    pthread_mutex_lock(&sched_lock);
    if (scheduled) {
        /* When cancel returns the tick is not running and will not run. */
        sonde__runtime_cancel(timer_id);
        sonde__runtime_stop();
        scheduled = 0;
    }
    pthread_mutex_unlock(&sched_lock);
}
