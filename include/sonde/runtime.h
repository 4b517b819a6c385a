/*
 * sonde/runtime.h - start and stop sonde's background threads: the
 * monitoring HTTP server and the runtime worker.
 *
 * Threads started by sonde_start and joined by sonde_stop:
 *  - the HTTP server's threads (libmicrohttpd in epoll mode, `threads` of
 *    them), which run request handlers: metric encoders, collectors and
 *    callback metrics of the served registry, health JSON;
 *  - the runtime worker, which runs timers: health check scheduling,
 *    connection deadlines, the error tracker (capture drain, alert rules,
 *    notifier deliveries), and later components' periodic work;
 *  - short-lived health check threads (see sonde/health.h), one per check
 *    run at most.
 * sonde_stop also flushes the logger and stops its asynchronous writer
 * thread (sonde_log_shutdown, at most 2 s); logging then continues
 * synchronously.
 *
 * Configuration precedence for every field: the value set in the options,
 * else the environment variable named in its comment, else the default.
 * With SONDE_ENABLED=0 (or a SONDE_DISABLE build) sonde_start starts
 * nothing and returns SONDE_OK.
 */
#ifndef SONDE_RUNTIME_H
#define SONDE_RUNTIME_H

#include "common.h"
#include "errors.h"
#include "export.h"
#include "health.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of sonde_start; zero means default for every field. Strings are
 * copied by sonde_start. */
typedef struct sonde_start_opts {
    /** Listen address: ":9464" (every interface, IPv6 and IPv4),
     * "127.0.0.1:9464", "[::1]:9464", "localhost:0"; port 0 picks a free
     * port (read it back with sonde_listen_port). "off" or "none": no HTTP
     * server, only the worker. NULL: $SONDE_LISTEN, else ":9464". */
    const char *listen;
    /** Bearer key protecting the sensitive endpoints (/health/detailed,
     * /metrics/json, /info, ...). NULL: $SONDE_API_KEY; "" or unset: no key,
     * and sensitive endpoints answer loopback clients only (403
     * otherwise). */
    const char *api_key;
    /** Prefix of every route, e.g. "/api/v1/monitoring" (no trailing
     * slash). NULL: $SONDE_ROUTE_PREFIX, else "". */
    const char *route_prefix;
    /** Registry served on /metrics. NULL: the default registry. Borrowed;
     * must outlive sonde_stop. Receives the sonde_http_* self-metrics. */
    sonde_registry *registry;
    /** Health set served on /health*. NULL: the default set. Borrowed; must
     * outlive sonde_stop. */
    sonde_health *health;

    /** Shown by /info. NULL: $SONDE_SERVICE_NAME, else the program name. */
    const char *service_name;
    /** Shown by /info. NULL: $SONDE_SERVICE_VERSION, else "". */
    const char *service_version;
    /** Free-form build description shown by /info (commit, date). NULL:
     * $SONDE_SERVICE_BUILD, else "". */
    const char *service_build;
    /** Extra configuration shown by /info: pairs info[2i] = key,
     * info[2i+1] = value, info_count pairs. Values whose key looks secret
     * (contains key, secret, token, password, passwd, credential, auth,
     * dsn or private) are shown as "<redacted>". */
    const char *const *info;
    size_t info_count;

    /** TLS: PEM certificate (chain) and private key files. Both or neither.
     * NULL: $SONDE_TLS_CERT_FILE / $SONDE_TLS_KEY_FILE, else plain HTTP. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /** HTTP basic authentication for every endpoint (like Prometheus
     * exporters' web configuration). The password is plain text or a
     * crypt(3) hash ("$2b$...", "$6$...", "$y$..."). NULL: none. A valid
     * Bearer key is accepted in place of basic credentials on sensitive
     * endpoints. */
    const char *basic_auth_user;
    const char *basic_auth_password;

    /** Server threads, each with its own epoll loop. 0: 2. Max 64. */
    unsigned threads;
    /** Most simultaneous connections. 0: 256. */
    unsigned max_connections;
    /** Most simultaneous connections from one client address. 0: 32. */
    unsigned max_connections_per_client;
    /** Largest request head (request line and headers) in bytes; larger
     * requests get 431 or 414. 0: 16384. Bounds: 2048 to 1048576. */
    size_t max_header_bytes;
    /** Close a connection idle this long. 0: 10 s (whole seconds). */
    double idle_timeout_seconds;
    /** Close a connection whose request (from its first byte, or the end
     * of the previous request on the connection, to the end of the response)
     * takes longer than this: bounds slow clients that trickle bytes.
     * 0: 30 s. */
    double request_timeout_seconds;
    /** Per-client token bucket on the health and JSON endpoints: refill
     * rate in requests per second. 0: $SONDE_RATE_LIMIT, else 50.
     * Negative: no limit. Answers 429 with Retry-After when empty. */
    double rate_limit_per_second;
    /** Bucket size (burst). 0: twice the rate, at least 10. */
    double rate_limit_burst;
    /** Largest /metrics body; a larger exposition answers 500 and is
     * counted. 0: 64 MiB. */
    size_t max_response_bytes;
    /** Filesystem path reported under "disk" by /health/detailed. NULL:
     * "/". */
    const char *disk_path;
    /** Error tracker started with the worker and served on /errors and
     * /alerts. NULL: the default tracker. Borrowed; must outlive
     * sonde_stop. */
    sonde_errors *errors;
    /** Remote write (sonde/export.h): a writer created and started by
     * sonde_start and destroyed by sonde_stop (which tries to send what is
     * queued for its flush_timeout_seconds). Its registry, when NULL, is
     * the served one. Borrowed for the call. NULL: from the environment,
     * when $SONDE_REMOTE_WRITE_URL is set and not empty:
     *   SONDE_REMOTE_WRITE_URL              receiver, e.g.
     *                                       http://vm:8428/api/v1/write
     *   SONDE_REMOTE_WRITE_INTERVAL         sampling interval, a duration
     *                                       ("15s", "1m"; default 15s)
     *   SONDE_REMOTE_WRITE_BEARER_TOKEN_FILE  file holding a bearer token
     *   SONDE_REMOTE_WRITE_QUEUE_DIR        directory of the disk queue
     *   SONDE_REMOTE_WRITE_EXTERNAL_LABELS  "name=value,name=value"
     * A bad value makes sonde_start fail with SONDE_EINVAL. */
    const sonde_remote_write_opts *remote_write;
} sonde_start_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_start_opts_init(sonde_start_opts *opts);

/**
 * Start the HTTP server and the runtime worker (opts NULL: defaults and the
 * environment). Returns SONDE_OK; SONDE_EBIND when the address cannot be
 * bound (in use, not local, permission); SONDE_EINVAL for a bad option
 * (unparsable address, only one TLS file, bad route prefix, bad remote
 * write option or SONDE_REMOTE_WRITE_* variable) with the reason
 * in sonde_last_error(); SONDE_EIO when a TLS file cannot be read
 * or TLS is unsupported; SONDE_ESTATE when already started; SONDE_ENOMEM.
 * On error nothing is left running. Never aborts the process. Any thread;
 * not concurrently with sonde_stop.
 */
SONDE_API int sonde_start(const sonde_start_opts *opts);

/**
 * Stop the server (in-flight requests are answered or dropped within about
 * a second) and the worker. Health check runs in progress are not waited
 * for beyond their timeout. Safe to call when not started. Any thread
 * except sonde's own.
 */
SONDE_API void sonde_stop(void);

/** Whether sonde_start succeeded and sonde_stop has not been called. */
SONDE_API int sonde_running(void);

/** The bound port (useful with port 0), or 0 when no server runs. */
SONDE_API int sonde_listen_port(void);

/**
 * Write the bound address as "host:port" ("127.0.0.1:9464", "[::]:9464")
 * into out (NUL-terminated, truncated to n). Returns SONDE_OK or
 * SONDE_ESTATE when no server runs.
 */
SONDE_API int sonde_listen_address(char *out, size_t n);

/** Deprecated: the same as sonde_last_error (sonde/common.h). */
SONDE_API SONDE_DEPRECATED("use sonde_last_error") const char *sonde_last_error_message(void);

#ifdef __cplusplus
}
#endif
#endif
