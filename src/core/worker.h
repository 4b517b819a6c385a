/*
 * The runtime worker: one background thread that runs periodic timers for
 * every component (health refresh, connection deadlines, later store flush,
 * rule evaluation, exporter batches).
 *
 * Contract for timer callbacks: they run on the worker thread, one at a
 * time, and must return quickly (well under a second). Work that can block
 * (a health check, a network call) is handed to another thread by the
 * callback; the worker's heartbeat is what the liveness probe reads, so a
 * callback that blocks makes the process report itself not alive.
 *
 * Timers may be registered before the worker starts; they run while it is
 * running. Start and stop are reference-counted: the thread runs while at
 * least one sonde__runtime_start has no matching sonde__runtime_stop.
 */
#ifndef SONDE_RUNTIME_INTERNAL_H
#define SONDE_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/* A timer callback. now_ns is the monotonic clock when the timer fired. */
typedef void (*sonde__timer_fn)(void *ud, uint64_t now_ns);

/*
 * Run fn(ud) every interval_ms milliseconds (minimum 1) on the worker; the
 * first run happens at the next worker iteration after registration. *id_out
 * (may be NULL) receives an id for sonde__runtime_cancel and
 * sonde__runtime_trigger. ud is borrowed until cancel returns. Returns
 * SONDE_OK, SONDE_EINVAL (fn NULL) or SONDE_ENOMEM. Any thread.
 */
int sonde__runtime_every(uint32_t interval_ms, sonde__timer_fn fn, void *ud, uint64_t *id_out);

/*
 * Remove a timer. When it returns, fn is not running and will not run again
 * (called from the worker itself it cannot wait for its own callback, which
 * then finishes normally). Unknown ids are ignored. Any thread.
 */
void sonde__runtime_cancel(uint64_t id);

/* Make a timer due now and wake the worker. Any thread. */
void sonde__runtime_trigger(uint64_t id);

/*
 * Change a timer's interval; its next run is interval_ms (minimum 1) from
 * now. Called by the timer's own callback, this sets when it runs next.
 * Unknown ids are ignored. Any thread.
 */
void sonde__runtime_set_interval(uint64_t id, uint32_t interval_ms);

/*
 * Start the worker thread (or add a reference if it runs). Returns SONDE_OK
 * or SONDE_ENOMEM (thread creation failed). Any thread.
 */
int sonde__runtime_start(void);

/* Drop a reference; the last one stops and joins the thread, bounded by the
 * running callback's duration. Any thread except the worker. */
void sonde__runtime_stop(void);

/* Whether the worker thread is running. Any thread, lock-free. */
bool sonde__runtime_running(void);

/*
 * Monotonic time (ns) of the worker's last loop iteration; 0 when the worker
 * is not running. The worker iterates at least every
 * SONDE__RUNTIME_MAX_SLEEP_MS. Any thread, lock-free.
 */
uint64_t sonde__runtime_heartbeat_ns(void);
#define SONDE__RUNTIME_MAX_SLEEP_MS 250

/* Whether the calling thread is the worker. */
bool sonde__runtime_is_worker(void);

#endif
