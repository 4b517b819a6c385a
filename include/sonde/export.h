/*
 * sonde/export.h - ship metrics to systems built for scale: Prometheus
 * remote write 1.0 (VictoriaMetrics, Mimir, Thanos Receive, Cortex,
 * Prometheus itself) and the Pushgateway. Guide: docs/scaling.md.
 *
 * Remote write. A writer samples a registry every interval (or the part of
 * it its keep/drop name patterns select), adds external labels, encodes
 * the samples as a protobuf WriteRequest compressed with snappy (block
 * format) and POSTs them in batches, one request at a time and in order,
 * from the runtime worker (sonde/runtime.h): no thread of its own, no
 * blocking of the caller. Series that disappear between two samplings get
 * one staleness marker. Batches wait in a bounded queue: memory first
 * (queue_max_bytes), then optionally a segment file on disk (queue_dir,
 * disk_max_bytes) that also survives a restart; past the bound the oldest
 * batches are dropped and counted. 5xx answers, timeouts and connection
 * errors are retried with capped exponential backoff and jitter, 429 too
 * (waiting at least its Retry-After); any other 4xx drops the batch,
 * counted by reason, never retried.
 *
 * Self-metrics (in the sampled registry, or self_registry), each labelled
 * remote="<name>":
 *   sonde_remote_write_samples_sent_total, _samples_failed_total,
 *   _samples_retried_total, _samples_dropped_total{reason},
 *   _samples_pending, _queue_bytes{medium="memory"|"disk"},
 *   _last_send_timestamp_seconds, _requests_total{code}.
 *
 * Pushgateway. sonde_push sends a registry (or ready text) to a
 * Pushgateway under a job and grouping key: replace (PUT), add (POST) or
 * delete, synchronously on the calling thread.
 */
#ifndef SONDE_EXPORT_H
#define SONDE_EXPORT_H

#include "common.h"
#include "metrics.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Remote write                                                         */
/* ------------------------------------------------------------------ */

typedef struct sonde_remote_write sonde_remote_write;

/** Options of a remote writer; zero means default for every field.
 * Strings and arrays are copied by sonde_remote_write_create. */
typedef struct sonde_remote_write_opts {
    /** Receiver endpoint, http:// or https:// (required), e.g.
     * "http://vm:8428/api/v1/write". */
    const char *url;
    /** Value of the remote label on the self-metrics. NULL: the URL
     * without its query string and credentials. */
    const char *name;
    /** Registry sampled. NULL: the default registry. Borrowed; must
     * outlive the writer. */
    sonde_registry *registry;
    /** Registry receiving the self-metrics (a collector). NULL: the
     * sampled registry. Borrowed; must outlive the writer. */
    sonde_registry *self_registry;
    /** Seconds between samplings. 0: 15. Bounds: 0.05 to 86400. */
    double interval_seconds;
    /** External labels added to every series: pairs kv[2i] = name,
     * kv[2i+1] = value, external_label_count pairs (at most 32). A series'
     * own label of the same name wins. */
    const char *const *external_labels;
    size_t external_label_count;
    /** Metric family names to keep / drop: POSIX extended regular
     * expressions matched against the whole family name (as registered,
     * e.g. "http_requests_total", "latency_seconds" for its _bucket, _sum
     * and _count samples). With keep patterns, only families matching one
     * are sent; a family matching a drop pattern is never sent. */
    const char *const *keep;
    size_t keep_count;
    const char *const *drop;
    size_t drop_count;
    /** Most samples in one request. 0: 2000. Bounds: 1 to 1000000. */
    size_t max_samples_per_send;
    /** Longest time a sample waits for its batch to fill, in seconds.
     * 0: 5. */
    double batch_deadline_seconds;
    /** Memory queue bound (compressed batches), in bytes. 0: 32 MiB.
     * At least 64 KiB. */
    size_t queue_max_bytes;
    /** Directory of the on-disk segment file (created if missing; one file
     * per writer named after its URL). Batches that do not fit in memory
     * go there, and what is on disk is sent after a restart. NULL: memory
     * only. */
    const char *queue_dir;
    /** Disk queue bound in bytes. 0: 1 GiB. */
    size_t disk_max_bytes;
    /** Per-request timeout in seconds. 0: 30. */
    double timeout_seconds;
    /** Backoff between retries: first wait and cap, in seconds; each retry
     * doubles the wait, plus up to 50% random jitter. 0: 0.05 and 5. */
    double min_backoff_seconds;
    double max_backoff_seconds;
    /** Longest wait honoured from a 429's Retry-After, in seconds.
     * 0: 300. */
    double max_retry_after_seconds;
    /** On sonde_remote_write_destroy, try this long to send what is
     * queued. 0: 5 s; negative: do not try. */
    double flush_timeout_seconds;
    /** Authorization: a bearer token, or a file holding one (read at each
     * request, so rotation works), or HTTP basic credentials. At most one
     * kind. NULL: none. */
    const char *bearer_token;
    const char *bearer_token_file;
    const char *basic_auth_user;
    const char *basic_auth_password;
    /** TLS: CA bundle to verify the receiver, client certificate and key
     * (PEM files). NULL: system CAs, no client certificate. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    /** Non-zero: do not verify the receiver's certificate (tests only). */
    int tls_insecure_skip_verify;
} sonde_remote_write_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_remote_write_opts_init(sonde_remote_write_opts *opts);

/**
 * Create a writer (not started): validates the options, compiles the
 * patterns, opens (and replays the index of) the disk segment, registers
 * the self-metrics. *out receives the writer, freed by
 * sonde_remote_write_destroy. Returns SONDE_OK; SONDE_EINVAL (no or bad
 * URL, bad pattern, bad label, out-of-bounds option) with the reason in
 * sonde_last_error(); SONDE_EIO (queue_dir unusable); SONDE_ENOMEM.
 * With sonde disabled: SONDE_OK and *out NULL (every writer call accepts
 * NULL then and does nothing). Any thread.
 */
SONDE_API int sonde_remote_write_create(const sonde_remote_write_opts *opts,
                                        sonde_remote_write **out);

/**
 * Validate options as sonde_remote_write_create does (URL, bounds, auth
 * kinds, patterns, external labels) without creating anything: no file,
 * no collector, no network. Returns SONDE_OK or SONDE_EINVAL with the
 * reason in sonde_last_error(). With sonde disabled: SONDE_OK.
 * Any thread.
 */
SONDE_API int sonde_remote_write_opts_check(const sonde_remote_write_opts *opts);

/**
 * The writer's name: the remote label of its self-metrics (the URL without
 * credentials and query unless opts.name was set), safe to print or log.
 * "" for NULL. Borrowed; valid until destroy. Any thread.
 */
SONDE_API const char *sonde_remote_write_name(const sonde_remote_write *rw);

/**
 * Start sampling and sending on the runtime worker (starting the worker if
 * needed). Returns SONDE_OK, SONDE_ESTATE if already started, SONDE_ENOMEM.
 * Any thread.
 */
SONDE_API int sonde_remote_write_start(sonde_remote_write *rw);

/**
 * Sample the registry now (outside the interval) and queue the samples as
 * complete batches, not waiting for the batch deadline. Returns the number
 * of samples queued (including staleness markers) or a negative error.
 * Any thread; serialised with the worker.
 */
SONDE_API int sonde_remote_write_sample_now(sonde_remote_write *rw);

/**
 * Wait until the queue is empty (everything sent or dropped) or timeout_ms
 * passes. Returns SONDE_OK or SONDE_ETIMEOUT. The writer must be started.
 * Any thread except the runtime worker.
 */
SONDE_API int sonde_remote_write_flush(sonde_remote_write *rw, int timeout_ms);

/** Counters of a writer, all since its creation. */
typedef struct sonde_remote_write_stats {
    uint64_t samples_sent;            /**< accepted by the receiver (2xx) */
    uint64_t samples_failed;          /**< in requests that failed (any cause) */
    uint64_t samples_retried;         /**< in requests sent again */
    uint64_t dropped_queue_full;      /**< oldest dropped past the queue bound */
    uint64_t dropped_rejected;        /**< dropped on a 4xx other than 429 */
    uint64_t dropped_shutdown;        /**< still queued when destroyed */
    uint64_t dropped_too_large;       /**< a batch larger than the queue bound */
    uint64_t samples_pending;         /**< queued now, memory and disk */
    uint64_t queue_memory_bytes;      /**< memory held by queued batches */
    uint64_t queue_disk_bytes;        /**< live bytes in the segment file */
    uint64_t queue_memory_peak_bytes; /**< highest queue_memory_bytes */
    uint64_t requests;                /**< HTTP requests made */
    double last_send_seconds;         /**< wall time of the last 2xx, 0 if none */
    int last_status;                  /**< last HTTP status, 0: transport error */
} sonde_remote_write_stats;

/** Fill *st. Any thread, lock-free. */
SONDE_API void sonde_remote_write_get_stats(const sonde_remote_write *rw,
                                            sonde_remote_write_stats *st);

/**
 * Stop (if started), try to send what is queued for flush_timeout_seconds,
 * keep what remains in the disk segment when one is configured (else count
 * it as dropped{reason="shutdown"}), remove the self-metrics and free the
 * writer. NULL is ignored. Any thread except the runtime worker.
 */
SONDE_API void sonde_remote_write_destroy(sonde_remote_write *rw);

/* ------------------------------------------------------------------ */
/* Pushgateway                                                          */
/* ------------------------------------------------------------------ */

/** What sonde_push does with the group. */
typedef enum sonde_push_method {
    SONDE_PUSH_REPLACE = 0, /**< PUT: replace every metric of the group */
    SONDE_PUSH_ADD = 1,     /**< POST: replace only the pushed metric names */
    SONDE_PUSH_DELETE = 2   /**< DELETE: remove the group */
} sonde_push_method;

/** Options of sonde_push; zero means default. Strings are borrowed for the
 * call. */
typedef struct sonde_push_opts {
    /** Pushgateway base URL, e.g. "http://pushgateway:9091" (required). */
    const char *url;
    /** Job name (required, non-empty). */
    const char *job;
    /** Further grouping key labels: pairs grouping[2i] = name,
     * grouping[2i+1] = value, grouping_count pairs. Values are
     * base64url-encoded in the path when they contain '/' or are empty. */
    const char *const *grouping;
    size_t grouping_count;
    sonde_push_method method;
    /** What to push: the registry (NULL: the default registry), or, when
     * body is set, that Prometheus text instead (body_len bytes; 0: strlen).
     * Ignored for SONDE_PUSH_DELETE. */
    sonde_registry *registry;
    const char *body;
    size_t body_len;
    /** Authorization, as for remote write. NULL: none. */
    const char *bearer_token;
    const char *basic_auth_user;
    const char *basic_auth_password;
    const char *tls_ca_file;
    int tls_insecure_skip_verify;
    /** Timeout in seconds. 0: 10. */
    double timeout_seconds;
} sonde_push_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_push_opts_init(sonde_push_opts *opts);

/**
 * Push (or delete) one group, synchronously. *status_out (may be NULL)
 * receives the HTTP status (0 when none was received). Returns SONDE_OK on
 * 2xx; SONDE_EINVAL for missing url or job, a bad label name or a bad URL;
 * SONDE_EUNREACHABLE when the gateway cannot be reached; SONDE_ETIMEOUT;
 * SONDE_EIO for any other answer (the message, with the gateway's reason,
 * in sonde_last_error()); SONDE_ENOMEM. With sonde disabled:
 * SONDE_OK, nothing sent. Any thread; allocates.
 */
SONDE_API int sonde_push(const sonde_push_opts *opts, int *status_out);

/**
 * Write the grouping-key path "/metrics/job/<job>[/<name>/<value>]..."
 * into out (NUL-terminated, n bytes), encoding values that contain '/' or
 * are empty as "<name>@base64/<base64url>" and percent-encoding the rest.
 * Returns the length written, or SONDE_EINVAL (bad label name, empty job)
 * or SONDE_ETOOBIG (out too small). Any thread; does not allocate.
 */
SONDE_API int sonde_push_path(const char *job, const char *const *grouping, size_t grouping_count,
                              char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
