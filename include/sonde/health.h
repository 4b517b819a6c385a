/*
 * sonde/health.h - health checks with Kubernetes liveness/readiness
 * semantics, cached results, timeouts and built-in checks.
 *
 * A health set (sonde_health) holds checks. Each check has a callback that
 * returns healthy, degraded or unhealthy with a message and optional
 * key/value details, a timeout and a refresh interval. Checks run on
 * threads that the runtime worker starts (never on the HTTP server's
 * threads, never on the caller's); probes only read the cached results, so
 * a slow or hanging check never delays a probe. A run that exceeds its
 * timeout is reported unhealthy with "timed out after N s"; the check is not
 * started again until the hanging run returns, so a hung check costs one
 * thread, never more.
 *
 * Checks run while sonde is started (sonde_start) or, for sets used
 * without the server, after sonde_health_start. Every check is critical by
 * default: readiness requires every critical check to be healthy or
 * degraded. Informational checks only lower the overall status and the
 * health percentage.
 *
 * Each set exports, in its registry, sonde_health_status{check} (1 healthy,
 * 0.5 degraded, 0 unhealthy or not yet run),
 * sonde_health_check_duration_seconds{check} and sonde_health_overall (the
 * health percentage).
 */
#ifndef SONDE_HEALTH_H
#define SONDE_HEALTH_H

#include "common.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A check's outcome. Values are ABI. */
typedef enum sonde_health_status {
    SONDE_HEALTH_HEALTHY = 0,
    SONDE_HEALTH_DEGRADED = 1,
    SONDE_HEALTH_UNHEALTHY = 2,
    /** Not yet run (only ever reported, never returned by a check). */
    SONDE_HEALTH_PENDING = 3
} sonde_health_status;

/** "healthy", "degraded", "unhealthy", "pending" (static text). */
SONDE_API const char *sonde_health_status_name(sonde_health_status s);

typedef struct sonde_health sonde_health;

/** Handed to a check callback to record its message and details. Valid only
 * during the callback. */
typedef struct sonde_health_result sonde_health_result;

/**
 * A check. Runs on a sonde check thread, never concurrently with itself;
 * must be thread-safe with respect to the application. Returns the status
 * and may set a message and details on res. A check that blocks is reported
 * as timed out; it should still return eventually (use timeouts on I/O).
 */
typedef sonde_health_status (*sonde_health_fn)(sonde_health_result *res, void *userdata);

/**
 * Set the result's message (printf-style, truncated at 1 KiB). Calling it
 * again replaces the message. Check thread only.
 */
SONDE_API void sonde_health_result_set_message(sonde_health_result *res, const char *fmt, ...)
    SONDE_PRINTF(2, 3);

/**
 * Add a key/value detail (copied; at most 32 details, keys and values
 * truncated at 256 bytes; extra details are dropped). Check thread only.
 */
SONDE_API void sonde_health_result_add_detail(sonde_health_result *res, const char *key,
                                              const char *value);

/** As sonde_health_result_add_detail with a number (JSON number). */
SONDE_API void sonde_health_result_add_number(sonde_health_result *res, const char *key,
                                              double value);

/** Options common to every check; zero means default for every field. */
typedef struct sonde_health_check_opts {
    /** Required: unique in the set, [a-zA-Z0-9_.:-]{1,64}. Also the value of
     * the check label. */
    const char *name;
    /** Longest a run may take before it is reported unhealthy. 0: 5 s.
     * Bounds: 0.001 to 3600. */
    double timeout_seconds;
    /** Time between the start of two runs; probes read the cached result in
     * between. 0: 15 s. Bounds: 0.01 to 86400. */
    double interval_seconds;
    /** 0 (default): critical, part of readiness. Non-zero: informational,
     * lowers only the overall status and percentage. */
    int informational;
    /** Called with userdata once the check is removed and no run of it is
     * in progress (possibly on a sonde thread, possibly long after removal
     * if a run hangs). NULL: userdata is not freed. */
    void (*free_userdata)(void *userdata);
} sonde_health_check_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_health_check_opts_init(sonde_health_check_opts *opts);

/** Options of a health set; zero means default. */
typedef struct sonde_health_opts {
    /** Registry that receives the sonde_health_* metrics. NULL: default
     * registry. Borrowed; must outlive the set. */
    sonde_registry *registry;
    /** Most checks in the set. 0: 256. */
    size_t max_checks;
} sonde_health_opts;

/**
 * Create an independent health set (sonde_start serves the default set
 * unless told otherwise). opts may be NULL. On success *out is owned by the
 * caller, freed with sonde_health_destroy. Returns SONDE_OK, SONDE_EINVAL,
 * SONDE_ECONFLICT (the registry already has a health collector) or
 * SONDE_ENOMEM. Any thread; allocates.
 */
SONDE_API int sonde_health_create(const sonde_health_opts *opts, sonde_health **out);

/**
 * Destroy a set: stops scheduling, removes its checks (each userdata is
 * freed once its run, if any, returns) and its metrics. Accepts NULL; the
 * default set is never destroyed. Not while another thread uses the set.
 */
SONDE_API void sonde_health_destroy(sonde_health *h);

/** The process-wide default set, exporting into the default registry.
 * Never NULL. Any thread. */
SONDE_API sonde_health *sonde_health_default(void);

/**
 * Run the set's checks on the runtime worker (sonde_start does this for the
 * set it serves). Reference-counted with sonde_health_stop. Returns
 * SONDE_OK or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_health_start(sonde_health *h);
/** Stop scheduling the set's checks (runs in progress finish on their own).
 * Any thread. */
SONDE_API void sonde_health_stop(sonde_health *h);

/**
 * Add a check calling fn(res, userdata). opts and its strings are copied;
 * userdata is borrowed (see free_userdata). h NULL: the default set. The
 * first run happens at the next scheduler tick. Returns SONDE_OK,
 * SONDE_EINVAL (bad name, NULL fn, out-of-bounds timing), SONDE_ECONFLICT
 * (name taken), SONDE_ELIMIT (max_checks) or SONDE_ENOMEM; on error
 * free_userdata is not called. Any thread.
 */
SONDE_API int sonde_health_add(sonde_health *h, const sonde_health_check_opts *opts,
                               sonde_health_fn fn, void *userdata);

/** Remove a check by name. Returns SONDE_OK or SONDE_ENOTFOUND. Any thread;
 * does not wait for a run in progress. */
SONDE_API int sonde_health_remove(sonde_health *h, const char *name);

/**
 * Replace every check of h by the checks of from, atomically as seen by
 * probes (used to reload a configuration). from is left empty. Results of
 * checks whose name and definition did not change are kept. Returns
 * SONDE_OK or SONDE_EINVAL. Any thread.
 */
SONDE_API int sonde_health_replace(sonde_health *h, sonde_health *from);

/**
 * Make every check of the set (name NULL) or one check due now. Runs happen
 * on the worker; this does not wait. Returns SONDE_OK or SONDE_ENOTFOUND.
 */
SONDE_API int sonde_health_run_now(sonde_health *h, const char *name);

/**
 * Run the check(s) now (name NULL: all) and wait until each has a result
 * (completed or timed out), at most timeout_ms. Needs the set to be
 * started. Returns SONDE_OK, SONDE_ENOTFOUND, SONDE_ESTATE (not started) or
 * SONDE_ETIMEOUT. Any thread but the runtime worker.
 */
SONDE_API int sonde_health_wait(sonde_health *h, const char *name, int timeout_ms);

/** A snapshot of one check's last result. */
typedef struct sonde_health_check_state {
    sonde_health_status status;
    /** Message of the last result (NUL-terminated, truncated). */
    char message[1024];
    /** Duration of the last run in seconds (the timeout for a timed-out
     * run). */
    double duration_seconds;
    /** Wall-clock time the last result was recorded (seconds since the
     * epoch); 0 if none yet. */
    double last_run;
    int critical;
    /** Number of runs and of timed-out runs since the check was added. */
    uint64_t runs;
    uint64_t timeouts;
} sonde_health_check_state;

/** Copy the cached state of a check. Returns SONDE_OK or SONDE_ENOTFOUND.
 * Any thread; never waits for a run. */
SONDE_API int sonde_health_get(sonde_health *h, const char *name, sonde_health_check_state *out);

/** Overall summary of a set. */
typedef struct sonde_health_summary {
    /** UNHEALTHY if a critical check is unhealthy; DEGRADED if any check is
     * degraded, pending, or an informational check is unhealthy; HEALTHY
     * otherwise (also with no check at all). */
    sonde_health_status status;
    /** 100 x (healthy + 0.5 x degraded) / checks; 100 with no check. */
    double percentage;
    /** Whether every critical check is healthy or degraded (readiness). */
    int ready;
    size_t checks, healthy, degraded, unhealthy, pending;
} sonde_health_summary;

/** Summarise the cached results. Any thread; never waits for a run. */
SONDE_API void sonde_health_summarize(sonde_health *h, sonde_health_summary *out);

/**
 * Append the set as JSON to out: {"status", "health_percentage", "ready",
 * "timestamp", "checks": {name: {...}}}. detailed non-zero adds each check's
 * message, details, duration, last run, run counts. Returns SONDE_OK,
 * SONDE_ENOMEM or SONDE_ETOOBIG. Any thread.
 */
SONDE_API int sonde_health_write_json(sonde_health *h, int detailed, sonde_buf *out);

/* ------------------------------------------------------------------------ */
/* Built-in checks. Each copies its arguments; opts as for sonde_health_add */
/* (name required). Return codes as sonde_health_add.                        */

/** Free space on the filesystem holding path: degraded below warn_free_pct
 * percent free, unhealthy below crit_free_pct (0: 10 and 5). */
SONDE_API int sonde_health_add_disk(sonde_health *h, const sonde_health_check_opts *opts,
                                    const char *path, double warn_free_pct, double crit_free_pct);

/** System memory: degraded below warn_avail_pct percent available,
 * unhealthy below crit_avail_pct (0: 10 and 5); also unhealthy when the
 * process resident set exceeds max_rss_bytes (0: no limit). */
SONDE_API int sonde_health_add_memory(sonde_health *h, const sonde_health_check_opts *opts,
                                      double warn_avail_pct, double crit_avail_pct,
                                      uint64_t max_rss_bytes);

/** One-minute load average per CPU: degraded above warn_per_cpu, unhealthy
 * above crit_per_cpu (0: 2 and 4). Details carry load1/5/15 and CPU use. */
SONDE_API int sonde_health_add_load(sonde_health *h, const sonde_health_check_opts *opts,
                                    double warn_per_cpu, double crit_per_cpu);

/** A directory exists and a file can be created, written and removed in
 * it. */
SONDE_API int sonde_health_add_writable_dir(sonde_health *h, const sonde_health_check_opts *opts,
                                            const char *dir);

/**
 * An executable runs and exits with status 0: argv[0] (looked up in PATH)
 * with argv[1..argc); argv NULL-terminated. The first line of its output
 * (e.g. "git version 2.39.5") becomes the message and the "version" detail.
 * Killed when the check times out.
 */
SONDE_API int sonde_health_add_command(sonde_health *h, const sonde_health_check_opts *opts,
                                       const char *const *argv);

/** A TCP connection to host:port succeeds within the timeout. */
SONDE_API int sonde_health_add_tcp(sonde_health *h, const sonde_health_check_opts *opts,
                                   const char *host, int port);

/** An HTTP(S) GET of url answers with expect_status (0: any 2xx). */
SONDE_API int sonde_health_add_http(sonde_health *h, const sonde_health_check_opts *opts,
                                    const char *url, int expect_status);

/**
 * As sonde_health_add_http, sending request headers: headers[2i] = name,
 * headers[2i+1] = value, n pairs (at most 32; copied). Values are treated
 * as secrets (a token the service validates): never shown in results or
 * logs, and wiped from memory when the check is removed. Returns SONDE_OK,
 * SONDE_EINVAL (bad URL, status, or a header name that is empty or holds
 * ':', spaces or line breaks, or a value with line breaks), SONDE_ENOMEM
 * or as sonde_health_add_http. Any thread.
 */
SONDE_API int sonde_health_add_http_headers(sonde_health *h, const sonde_health_check_opts *opts,
                                            const char *url, int expect_status,
                                            const char *const *headers, size_t n);

/** An SQLite database opens (read-only, never created) and query (NULL:
 * "SELECT 1") runs. */
SONDE_API int sonde_health_add_sqlite(sonde_health *h, const sonde_health_check_opts *opts,
                                      const char *path, const char *query);

/** A PostgreSQL connection (libpq conninfo string or URI) succeeds and
 * query (NULL: "SELECT 1") runs. The password is never reported. */
SONDE_API int sonde_health_add_postgres(sonde_health *h, const sonde_health_check_opts *opts,
                                        const char *conninfo, const char *query);

/** A Redis server at host:port answers PING with PONG (after AUTH with
 * password when non-NULL). */
SONDE_API int sonde_health_add_redis(sonde_health *h, const sonde_health_check_opts *opts,
                                     const char *host, int port, const char *password);

/** A marker file (touched by a job) exists and was modified within
 * max_age_seconds; unhealthy when older or missing. */
SONDE_API int sonde_health_add_file_fresh(sonde_health *h, const sonde_health_check_opts *opts,
                                          const char *path, double max_age_seconds);

#ifdef __cplusplus
}
#endif
#endif
