/* The runtime worker thread and its timer table. */
#include "core/worker.h"

#include "core/internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

typedef struct timer {
    uint64_t id;
    uint64_t interval_ns;
    uint64_t next_ns; /* 0: due at the next iteration */
    sonde__timer_fn fn;
    void *ud;
    bool running;
} timer;

/*
 * All fields below are protected by rt.lock, except heartbeat and the
 * running flag which are also read lock-free. The timer array is compacted
 * on cancel; a callback in progress is identified by running_id so cancel
 * can wait for it even after the array moved.
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* worker sleeps on it; signalled on changes */
    pthread_cond_t idle; /* broadcast when a callback returns */
    timer *timers;
    size_t count, cap;
    uint64_t next_id;
    uint64_t running_id; /* id of the callback in progress, 0 if none */
    unsigned refs;
    bool stopping;
    bool kicked; /* a trigger arrived while the worker was busy */
    pthread_t thread;
    atomic_bool alive;
    _Atomic uint64_t heartbeat;
} rt = {.lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
/* Serialises start and stop so a start racing the last stop's join never
 * sees a half-stopped worker. */
static pthread_mutex_t life = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool on_worker;

/* The wake condition waits on the monotonic clock so a wall-clock jump
 * neither stalls nor storms the timers. */
static void init_cond(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&rt.wake, &a);
    pthread_condattr_destroy(&a);
}

static timer *find_timer(uint64_t id)
{
    for (size_t i = 0; i < rt.count; i++)
        if (rt.timers[i].id == id)
            return &rt.timers[i];
    return NULL;
}

int sonde__runtime_every(uint32_t interval_ms, sonde__timer_fn fn, void *ud, uint64_t *id_out)
{
    if (!fn)
        return SONDE_EINVAL;
    pthread_once(&cond_once, init_cond);
    if (interval_ms == 0)
        interval_ms = 1;
    pthread_mutex_lock(&rt.lock);
    if (rt.count == rt.cap) {
        size_t cap = rt.cap ? rt.cap * 2 : 8;
        timer *t = sonde__realloc(rt.timers, cap * sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&rt.lock);
            return SONDE_ENOMEM;
        }
        rt.timers = t;
        rt.cap = cap;
    }
    uint64_t id = ++rt.next_id;
    rt.timers[rt.count++] = (timer){.id = id,
                                    .interval_ns = (uint64_t)interval_ms * 1000000u,
                                    .next_ns = 0,
                                    .fn = fn,
                                    .ud = ud};
    pthread_cond_signal(&rt.wake);
    pthread_mutex_unlock(&rt.lock);
    if (id_out)
        *id_out = id;
    return SONDE_OK;
}

void sonde__runtime_cancel(uint64_t id)
{
    if (id == 0)
        return;
    pthread_mutex_lock(&rt.lock);
    for (size_t i = 0; i < rt.count; i++) {
        if (rt.timers[i].id == id) {
            rt.timers[i] = rt.timers[rt.count - 1];
            rt.count--;
            break;
        }
    }
    /* The callback may be running right now with ud; wait for it unless we
     * are that callback. */
    while (rt.running_id == id && !on_worker)
        pthread_cond_wait(&rt.idle, &rt.lock);
    if (rt.count == 0) {
        sonde__free(rt.timers);
        rt.timers = NULL;
        rt.cap = 0;
    }
    pthread_mutex_unlock(&rt.lock);
}

void sonde__runtime_trigger(uint64_t id)
{
    pthread_once(&cond_once, init_cond);
    pthread_mutex_lock(&rt.lock);
    timer *t = find_timer(id);
    if (t) {
        t->next_ns = 0;
        rt.kicked = true;
        pthread_cond_signal(&rt.wake);
    }
    pthread_mutex_unlock(&rt.lock);
}

void sonde__runtime_set_interval(uint64_t id, uint32_t interval_ms)
{
    if (interval_ms == 0)
        interval_ms = 1;
    pthread_once(&cond_once, init_cond);
    pthread_mutex_lock(&rt.lock);
    timer *t = find_timer(id);
    if (t) {
        t->interval_ns = (uint64_t)interval_ms * 1000000u;
        t->next_ns = sonde__now_mono_ns() + t->interval_ns;
        pthread_cond_signal(&rt.wake);
    }
    pthread_mutex_unlock(&rt.lock);
}

static void *worker_main(void *arg)
{
    SONDE_UNUSED(arg);
    on_worker = true;
    pthread_mutex_lock(&rt.lock);
    while (!rt.stopping) {
        uint64_t now = sonde__now_mono_ns();
        atomic_store_explicit(&rt.heartbeat, now, memory_order_relaxed);
        rt.kicked = false;
        /* Run every due timer. The array may change while a callback runs
         * (it may register or cancel timers), so look each one up again by
         * id rather than keeping a pointer. */
        uint64_t next_wake = now + (uint64_t)SONDE__RUNTIME_MAX_SLEEP_MS * 1000000u;
        for (size_t i = 0; i < rt.count && !rt.stopping; i++) {
            timer *t = &rt.timers[i];
            if (t->next_ns > now) {
                if (t->next_ns < next_wake)
                    next_wake = t->next_ns;
                continue;
            }
            uint64_t id = t->id;
            sonde__timer_fn fn = t->fn;
            void *ud = t->ud;
            t->next_ns = now + t->interval_ns;
            rt.running_id = id;
            pthread_mutex_unlock(&rt.lock);
            fn(ud, now);
            pthread_mutex_lock(&rt.lock);
            rt.running_id = 0;
            pthread_cond_broadcast(&rt.idle);
            now = sonde__now_mono_ns();
            atomic_store_explicit(&rt.heartbeat, now, memory_order_relaxed);
            t = find_timer(id);
            if (t && t->next_ns && t->next_ns < next_wake)
                next_wake = t->next_ns;
            /* Index i may now hold another timer after a cancel compacted
             * the array; re-scanning from the start is cheap and simple. */
            i = (size_t)-1;
        }
        if (rt.stopping || rt.kicked)
            continue;
        now = sonde__now_mono_ns();
        if (next_wake > now) {
            struct timespec ts = {.tv_sec = (time_t)(next_wake / 1000000000u),
                                  .tv_nsec = (long)(next_wake % 1000000000u)};
            pthread_cond_timedwait(&rt.wake, &rt.lock, &ts);
        }
    }
    pthread_mutex_unlock(&rt.lock);
    return NULL;
}

int sonde__runtime_start(void)
{
    pthread_once(&cond_once, init_cond);
    pthread_mutex_lock(&life);
    pthread_mutex_lock(&rt.lock);
    if (rt.refs++ > 0) {
        pthread_mutex_unlock(&rt.lock);
        pthread_mutex_unlock(&life);
        return SONDE_OK;
    }
    rt.stopping = false;
    atomic_store(&rt.heartbeat, sonde__now_mono_ns());
    int rc = pthread_create(&rt.thread, NULL, worker_main, NULL);
    if (rc != 0) {
        rt.refs--;
        atomic_store(&rt.heartbeat, 0);
        pthread_mutex_unlock(&rt.lock);
        pthread_mutex_unlock(&life);
        return SONDE_ENOMEM;
    }
    atomic_store(&rt.alive, true);
    pthread_mutex_unlock(&rt.lock);
    pthread_mutex_unlock(&life);
    return SONDE_OK;
}

void sonde__runtime_stop(void)
{
    pthread_mutex_lock(&life);
    pthread_mutex_lock(&rt.lock);
    if (rt.refs == 0 || --rt.refs > 0) {
        pthread_mutex_unlock(&rt.lock);
        pthread_mutex_unlock(&life);
        return;
    }
    rt.stopping = true;
    pthread_cond_signal(&rt.wake);
    pthread_mutex_unlock(&rt.lock);
    pthread_join(rt.thread, NULL);
    atomic_store(&rt.alive, false);
    atomic_store(&rt.heartbeat, 0);
    pthread_mutex_unlock(&life);
}

bool sonde__runtime_running(void)
{
    return atomic_load(&rt.alive);
}

uint64_t sonde__runtime_heartbeat_ns(void)
{
    return atomic_load_explicit(&rt.heartbeat, memory_order_relaxed);
}

bool sonde__runtime_is_worker(void)
{
    return on_worker;
}
