/*
 * Dispatch of records: synchronous writes, and the asynchronous mode's
 * writer thread ("sonde-log").
 *
 * The consumer side of the queue belongs to whoever holds the sinks lock:
 * the writer thread takes it for each batch; a synchronous write takes it,
 * first drains whatever is still queued (records of producers that raced a
 * switch to synchronous mode), then writes its own record. So lines from
 * one thread stay in order and no record is ever stranded for long.
 *
 * Waking: the writer announces it is about to sleep (idle = 1, seq_cst) and
 * checks the queue again; a producer publishes (seq_cst) and then reads
 * idle. One of the two always sees the other, so a record is never left
 * waiting for the writer's periodic wake-up (250 ms), which only exists to
 * notice SIGHUP and as a safety net.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static struct {
    atomic_int on;      /* producers queue their records */
    atomic_int running; /* the writer thread exists */
    atomic_int block;   /* a full queue blocks producers */
    atomic_int idle;    /* the writer is going to sleep */
    _Atomic(log_queue *) q;
    pthread_t thread;
    pthread_mutex_t mu; /* stop flag, condition variables */
    pthread_cond_t wake;
    pthread_cond_t progress;
    int stop;
    _Atomic uint64_t done; /* queue position written and flushed */
    pthread_mutex_t life;  /* serialises starting and stopping the writer */
} A = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .life = PTHREAD_MUTEX_INITIALIZER,
       .wake = PTHREAD_COND_INITIALIZER,
       .progress = PTHREAD_COND_INITIALIZER};

/* The consumer's scratch: popped record and formatted lines. sinks_lock. */
static sonde_buf pop_buf;
static fmt_cache consumer_fc;

int sonde__async_running(void)
{
    return atomic_load_explicit(&A.running, memory_order_acquire);
}

static void write_record_locked(const void *rec, int flush)
{
    rec_view v;
    sonde__rec_view(rec, &v);
    sonde__fc_reset(&consumer_fc, &v);
    sonde__sinks_write(&consumer_fc, &v, flush);
}

void sonde__async_drain_locked(fmt_cache *fc)
{
    SONDE_UNUSED(fc);
    log_queue *q = atomic_load_explicit(&A.q, memory_order_acquire);
    if (!q)
        return;
    int r;
    while ((r = sonde__lq_pop(q, &pop_buf)) != 0)
        if (r == 1)
            write_record_locked(pop_buf.data, 0);
}

static void wake_writer(void)
{
    pthread_mutex_lock(&A.mu);
    atomic_store_explicit(&A.idle, 0, memory_order_relaxed);
    pthread_cond_signal(&A.wake);
    pthread_mutex_unlock(&A.mu);
}

static void sync_write(const void *rec)
{
    pthread_mutex_lock(&sonde__lg.sinks_lock);
    log_queue *q = atomic_load_explicit(&A.q, memory_order_acquire);
    if (q && sonde__lq_head(q) != sonde__lq_tail(q))
        sonde__async_drain_locked(NULL);
    write_record_locked(rec, 0);
    sonde__sinks_flush();
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
}

void sonde__log_dispatch(const void *rec, size_t len, int level)
{
    SONDE_UNUSED(level);
    if (atomic_load_explicit(&A.on, memory_order_acquire)) {
        log_queue *q = atomic_load_explicit(&A.q, memory_order_acquire);
        for (unsigned spins = 0;; spins++) {
            int r = sonde__lq_push(q, rec, len);
            if (r == 0) {
                if (atomic_load_explicit(&A.idle, memory_order_seq_cst))
                    wake_writer();
                return;
            }
            if (r == -2)
                break; /* larger than the queue takes: write it ourselves */
            if (!atomic_load_explicit(&A.block, memory_order_relaxed)) {
                sonde__log_count_drop();
                return;
            }
            /* The writer itself (its own reports) must never wait for the
             * writer: it writes directly. */
            if (atomic_load_explicit(&A.running, memory_order_acquire) &&
                pthread_equal(pthread_self(), A.thread))
                break;
            if (!atomic_load_explicit(&A.running, memory_order_acquire) ||
                !atomic_load_explicit(&A.on, memory_order_acquire))
                break;
            /* Block mode: make sure the writer is awake, then back off. */
            if (atomic_load_explicit(&A.idle, memory_order_seq_cst))
                wake_writer();
            if (spins < 16) {
                sched_yield();
            } else {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
    sync_write(rec);
}

static void *writer_main(void *arg)
{
    SONDE_UNUSED(arg);
    log_queue *q = atomic_load_explicit(&A.q, memory_order_acquire);
    log_tls *t = sonde__tls();
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&sonde__lg.sinks_lock);
        /* Log calls made while the sinks are being written (callback sinks,
         * diagnostics) are dropped and counted, as on any thread. */
        if (t)
            t->in_emit = 1;
        int r;
        while (n < 1024 && (r = sonde__lq_pop(q, &pop_buf)) != 0) {
            if (r == 1)
                write_record_locked(pop_buf.data, 0);
            n++;
        }
        sonde__sinks_flush();
        uint64_t h = sonde__lq_head(q);
        if (t)
            t->in_emit = 0;
        pthread_mutex_unlock(&sonde__lg.sinks_lock);
        atomic_store_explicit(&A.done, h, memory_order_release);
        sonde__sinks_report();

        pthread_mutex_lock(&A.mu);
        pthread_cond_broadcast(&A.progress);
        if (n > 0) {
            pthread_mutex_unlock(&A.mu);
            continue;
        }
        if (A.stop) {
            pthread_mutex_unlock(&A.mu);
            break;
        }
        atomic_store_explicit(&A.idle, 1, memory_order_seq_cst);
        if (sonde__lq_tail(q) != sonde__lq_head(q)) {
            /* Something is claimed; if it is not published yet, give its
             * producer a moment instead of spinning on the lock. */
            atomic_store_explicit(&A.idle, 0, memory_order_relaxed);
            pthread_mutex_unlock(&A.mu);
            sched_yield();
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (atomic_load_explicit(&A.idle, memory_order_relaxed) && !A.stop)
            pthread_cond_timedwait(&A.wake, &A.mu, &ts);
        atomic_store_explicit(&A.idle, 0, memory_order_relaxed);
        pthread_mutex_unlock(&A.mu);
    }
    return NULL;
}

static int async_start_locked(size_t slots, int block)
{
    atomic_store(&A.block, block ? 1 : 0);
    if (atomic_load(&A.running))
        return SONDE_OK;
    if (!atomic_load(&A.q)) {
        log_queue *q = sonde__lq_create(slots);
        if (!q)
            return SONDE_ENOMEM;
        atomic_store(&A.q, q);
    }
    pthread_mutex_lock(&A.mu);
    A.stop = 0;
    pthread_mutex_unlock(&A.mu);
    /* The writer must not receive the application's signals (SIGHUP...). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&A.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return SONDE_ENOMEM;
    pthread_setname_np(A.thread, "sonde-log");
    atomic_store(&A.running, 1);
    atomic_store(&A.on, 1);
    return SONDE_OK;
}

int sonde__async_start(size_t slots, int block)
{
    pthread_mutex_lock(&A.life);
    int rc = async_start_locked(slots, block);
    pthread_mutex_unlock(&A.life);
    return rc;
}

/* Write what is queued and flush the sinks on the calling thread. Callback
 * sinks may run: log calls they make are dropped (the thread is marked as
 * emitting), not deadlocked on the sinks lock. */
static void drain_and_flush(void)
{
    log_tls *t = sonde__tls();
    int was = t ? t->in_emit : 0;
    if (t)
        t->in_emit = 1;
    pthread_mutex_lock(&sonde__lg.sinks_lock);
    sonde__async_drain_locked(NULL);
    sonde__sinks_flush();
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    if (t)
        t->in_emit = was;
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

SONDE_API int sonde_log_flush(unsigned timeout_ms)
{
    sonde__log_init();
    log_tls *t = sonde__tls();
    if (t && t->in_emit)
        return SONDE_ESTATE; /* from a callback sink: we hold the sinks lock */
    log_queue *q = atomic_load(&A.q);
    if (atomic_load(&A.running) && !pthread_equal(pthread_self(), A.thread)) {
        uint64_t target = sonde__lq_tail(q);
        struct timespec dl;
        deadline_after(&dl, timeout_ms);
        pthread_mutex_lock(&A.mu);
        atomic_store_explicit(&A.idle, 0, memory_order_relaxed);
        pthread_cond_signal(&A.wake);
        int rc = 0;
        while (atomic_load_explicit(&A.done, memory_order_acquire) < target && timeout_ms &&
               rc != ETIMEDOUT && atomic_load(&A.running))
            rc = pthread_cond_timedwait(&A.progress, &A.mu, &dl);
        pthread_mutex_unlock(&A.mu);
        return atomic_load_explicit(&A.done, memory_order_acquire) >= target ? SONDE_OK
                                                                             : SONDE_ETIMEOUT;
    }
    drain_and_flush();
    sonde__sinks_report();
    return SONDE_OK;
}

SONDE_API int sonde_log_shutdown(unsigned timeout_ms)
{
    sonde__log_init();
    log_tls *t = sonde__tls();
    if (t && t->in_emit)
        return SONDE_ESTATE; /* from a callback sink */
    int rc = SONDE_OK;
    pthread_mutex_lock(&A.life);
    if (atomic_load(&A.running) && !pthread_equal(pthread_self(), A.thread)) {
        rc = sonde_log_flush(timeout_ms);
        atomic_store(&A.on, 0);
        pthread_mutex_lock(&A.mu);
        A.stop = 1;
        pthread_cond_signal(&A.wake);
        pthread_mutex_unlock(&A.mu);
        pthread_join(A.thread, NULL);
        atomic_store(&A.running, 0);
    }
    pthread_mutex_unlock(&A.life);
    /* Whatever producers queued while we stopped is written now. */
    drain_and_flush();
    return rc;
}

/* Fork: the child has no writer thread; it logs synchronously. */
void sonde__async_atfork_prepare(void)
{
    pthread_mutex_lock(&A.life);
    pthread_mutex_lock(&A.mu);
}
void sonde__async_atfork_parent(void)
{
    pthread_mutex_unlock(&A.mu);
    pthread_mutex_unlock(&A.life);
}
void sonde__async_atfork_child(void)
{
    pthread_mutex_unlock(&A.mu);
    pthread_mutex_unlock(&A.life);
    atomic_store(&A.on, 0);
    atomic_store(&A.running, 0);
    atomic_store(&A.idle, 0);
}
