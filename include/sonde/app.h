/*
 * sonde/app.h - instrumenting an application: its own endpoints on sonde's
 * monitoring server, and request metrics for any HTTP server it runs.
 *
 * Application routes. A route is a path on the monitoring server (absolute,
 * or under the route prefix) with its methods, access class, body limit and
 * a handler. Routes are added and removed at any time, before or while the
 * server runs; a request already in its handler finishes with it.
 *
 *     static void stats(void *ud, const sonde_route_request *rq,
 *                       sonde_route_response *rs)
 *     {
 *         sonde_buf_printf(&rs->body, "{\"requests\":%llu}\n", n_requests);
 *     }
 *     sonde_route_opts o;
 *     sonde_route_opts_init(&o);
 *     o.path = "/demo/stats";
 *     o.access = SONDE_ACCESS_PUBLIC;
 *     sonde_route_add(&o, stats, NULL);
 *
 * sonde answers for the route: 405 with Allow for other methods, 413 past
 * the body limit, 401/403 by the access class, 429 from the per-client rate
 * limit, gzip when the client accepts it and the body is large, the usual
 * headers (Cache-Control: no-store, X-Content-Type-Options), an
 * X-Request-ID (the client's traceparent trace-id or X-Request-ID, else a
 * new one; also the handler's logging correlation ID), and the access
 * metrics sonde_http_requests_total{handler,code} and
 * sonde_http_request_duration_seconds{handler}.
 *
 * Request instrumentation. A sonde_http_instr records, for the requests of
 * any server of the application, under its namespace NS:
 *   NS_http_requests_total{method,route,status}        counter
 *   NS_http_request_duration_seconds{method,route}     histogram
 *   NS_http_requests_in_flight                         gauge
 *   NS_http_request_size_bytes{method,route}           histogram
 *   NS_http_response_size_bytes{method,route}          histogram
 *   NS_http_security_events_total{kind}                counter (unauthorized,
 *       forbidden, rate_limited, oversized, bad_request)
 * The route is the route template ("/items/{id}"), never the raw path.
 *
 *     sonde_http_route *r = sonde_http_instr_route(in, "/items/{id}");
 *     sonde_http_req q;
 *     sonde_http_begin(in, &q, r, SONDE_HTTP_GET, NULL);
 *     ... serve ...
 *     sonde_http_end(&q, 200, response_bytes);
 */
#ifndef SONDE_APP_H
#define SONDE_APP_H

#include "common.h"
#include "errors.h"
#include "metrics.h"
#include "trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* HTTP methods                                                             */

/** Methods as bits (a route's set) and as values (sonde_http_begin). */
typedef enum sonde_http_method {
    SONDE_HTTP_GET = 1u << 0,
    SONDE_HTTP_HEAD = 1u << 1,
    SONDE_HTTP_POST = 1u << 2,
    SONDE_HTTP_PUT = 1u << 3,
    SONDE_HTTP_DELETE = 1u << 4,
    SONDE_HTTP_PATCH = 1u << 5,
    SONDE_HTTP_OPTIONS = 1u << 6,
    SONDE_HTTP_OTHER = 1u << 7
} sonde_http_method;

/** The method of a name ("GET", case-sensitive as HTTP); SONDE_HTTP_OTHER
 * for anything else (NULL included). Pure. */
SONDE_API sonde_http_method sonde_http_method_parse(const char *name);
/** "GET", "HEAD", ..., "OTHER" for one method bit. Static text. */
SONDE_API const char *sonde_http_method_name(sonde_http_method m);

/* ------------------------------------------------------------------------ */
/* Application routes on the monitoring server                              */

/** Access classes of a route. Values are ABI. */
typedef enum sonde_route_access {
    /** Anyone (still rate limited unless no_rate_limit). */
    SONDE_ACCESS_PUBLIC = 0,
    /** As /metrics/json: the API key (Authorization: Bearer) when one is
     * configured, else loopback clients only (403 for the others). */
    SONDE_ACCESS_SENSITIVE = 1,
    /** The route's own check function decides. */
    SONDE_ACCESS_CHECK = 2
} sonde_route_access;

/** One request to an application route. Everything is borrowed for the
 * handler's call only. */
typedef struct sonde_route_request {
    /** "GET", "POST", ... and its bit. HEAD requests reach GET handlers
     * with method_bit SONDE_HTTP_HEAD (the body is not sent). */
    const char *method;
    sonde_http_method method_bit;
    /** The path as requested (without the query), prefix included. */
    const char *path;
    /** For prefix routes: the part after the route's path ("" for an exact
     * match). */
    const char *subpath;
    /** Decoded query parameters: query[2i] = name, query[2i+1] = value
     * ('+' is a space), query_count pairs, in request order. */
    const char *const *query;
    size_t query_count;
    /** The route's selected headers that the request has: headers[2i] =
     * name as declared, headers[2i+1] = value. */
    const char *const *headers;
    size_t header_count;
    /** Request body (NUL-terminated for convenience; body_len excludes the
     * NUL), NULL and 0 when there is none. At most the route's limit. */
    const char *body;
    size_t body_len;
    /** Client address ("127.0.0.1", "::1"). */
    const char *client;
    /** The request's correlation ID (also the X-Request-ID answered). */
    const char *request_id;
} sonde_route_request;

/** A handler's answer. status defaults to 200, content_type to
 * "application/json"; body starts empty and is freed by sonde. */
typedef struct sonde_route_response {
    int status;
    /** Static or longer-lived than the call. */
    const char *content_type;
    sonde_buf body;
    /** Optional Location header (201 answers). Copied. */
    const char *location;
} sonde_route_response;

/** A route handler. Runs on a server thread; must not block for long. */
typedef void (*sonde_route_fn)(void *userdata, const sonde_route_request *rq,
                               sonde_route_response *rs);

/** Own access check (SONDE_ACCESS_CHECK): return 0 to serve the request,
 * 401 or 403 to refuse it. Called before the body is read (rq->body is
 * NULL). */
typedef int (*sonde_route_check_fn)(void *userdata, const sonde_route_request *rq);

/** Options of a route; zero means default for every field. Strings are
 * copied. */
typedef struct sonde_route_opts {
    /** Required. Starts with '/'; no '?', '#', spaces. */
    const char *path;
    /** Non-zero: path is matched against the full request path (a route
     * beside the prefix, like /api/v1/artifacts/metrics/discovery). Zero:
     * path is under the server's route prefix. */
    int absolute;
    /** Non-zero: also match every path below path + "/" (rq->subpath has
     * the rest). An exact route of the same path wins. */
    int prefix;
    /** Allowed methods (SONDE_HTTP_* bits). 0: GET. GET implies HEAD. */
    unsigned methods;
    /** SONDE_ACCESS_*. */
    int access;
    sonde_route_check_fn check;
    void *check_userdata;
    /** Longest accepted request body; longer bodies get 413. 0: 65536.
     * Bounds: 1 to 16777216. Bodies are only read for POST, PUT, PATCH
     * and DELETE. */
    size_t max_body_bytes;
    /** Request headers passed to the handler (names, case-insensitive),
     * at most 16. */
    const char *const *headers;
    size_t header_count;
    /** Who owns the route, named in conflict errors. NULL: "application". */
    const char *owner;
    /** Value of the handler label of sonde's access metrics. NULL: the
     * path. */
    const char *metric_label;
    /** Non-zero: not subject to the per-client rate limit. */
    int no_rate_limit;
} sonde_route_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_route_opts_init(sonde_route_opts *opts);

/**
 * Add a route to the monitoring server (every server sonde_start runs in
 * this process, and the next ones). fn and userdata are borrowed until the
 * route is removed and its running requests have returned. Returns
 * SONDE_OK; SONDE_EINVAL (bad path or option); SONDE_ECONFLICT (the path
 * is taken: sonde_last_error names both owners, as in
 * "route GET /metrics of demo conflicts with /metrics of sonde");
 * SONDE_ELIMIT (256 application routes); SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_route_add(const sonde_route_opts *opts, sonde_route_fn fn, void *userdata);

/**
 * Remove the route with this path (and absolute flag). Requests arriving
 * afterwards get 404; requests in its handler finish first: when this
 * returns, fn is no longer running and will not be called again. Returns
 * SONDE_OK or SONDE_ENOTFOUND. Any thread except from inside the route's
 * own handler.
 */
SONDE_API int sonde_route_remove(const char *path, int absolute);

/* ------------------------------------------------------------------------ */
/* Request instrumentation                                                  */

/** Request instrumentation of one application server (or several). */
typedef struct sonde_http_instr sonde_http_instr;
/** A route template resolved once into metric handles. */
typedef struct sonde_http_route sonde_http_route;

/** Options of an instrumentation; zero means default. Strings and arrays
 * are copied. */
typedef struct sonde_http_instr_opts {
    /** Registry of the metrics. NULL: the default registry. Borrowed. */
    sonde_registry *registry;
    /** Prefix of the metric names ("demo" gives demo_http_requests_total).
     * NULL: none (the registry's own namespace still applies). */
    const char *metric_namespace;
    /** Buckets of the duration histogram in seconds, increasing. NULL: 5
     * ms to 10 s (0.005 .. 10, the Prometheus client default). */
    const double *buckets;
    size_t bucket_count;
    /** Error tracker receiving 5xx answers as errors (type "HTTP5xx",
     * operation = route, with method, route, status and request ID).
     * NULL: the default tracker. */
    sonde_errors *errors;
    /** Non-zero: do not capture 5xx as errors. */
    int no_errors;
    /** Non-zero: do not feed tracing (operation = route). */
    int no_trace;
    /** Route templates for sonde_http_instr_match ("/items/{id}",
     * "/static/" followed by a star), at most 256. */
    const char *const *routes;
    size_t route_count;
} sonde_http_instr_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_http_instr_opts_init(sonde_http_instr_opts *opts);

/**
 * Create an instrumentation and register its metrics. *out is freed with
 * sonde_http_instr_destroy. Returns SONDE_OK, SONDE_EINVAL (bad namespace,
 * buckets or template), SONDE_ECONFLICT (the names are registered with
 * another definition) or SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_http_instr_create(const sonde_http_instr_opts *opts, sonde_http_instr **out);

/** Free an instrumentation (accepts NULL); its metrics stay in the
 * registry. No request may be between begin and end. */
SONDE_API void sonde_http_instr_destroy(sonde_http_instr *in);

/**
 * The handle of a route template, created at first use and kept for the
 * instrumentation's life (at most 1024 routes; past that the route
 * "other" is returned). Never NULL while in is valid. Any thread; locks
 * and may allocate on first use of a template: resolve handles at setup.
 */
SONDE_API sonde_http_route *sonde_http_instr_route(sonde_http_instr *in, const char *tmpl);

/**
 * The route of a request path among the templates of the options
 * ("{name}" matches one segment, a final star the rest); "other" when none
 * matches (the raw path is never used). Any thread, lock-free, no
 * allocation.
 */
SONDE_API sonde_http_route *sonde_http_instr_match(sonde_http_instr *in, const char *path);

/** The template of a route handle. */
SONDE_API const char *sonde_http_route_template(const sonde_http_route *r);

/** Request headers and sizes known at begin; every field optional. */
typedef struct sonde_http_begin_info {
    /** traceparent and X-Request-ID header values (NULL: absent). When
     * either is given, or always when adopt_context is set, a logging
     * context frame with the request's correlation ID is pushed on the
     * calling thread until sonde_http_end. */
    const char *traceparent;
    const char *x_request_id;
    int adopt_context;
    /** Request size in bytes (head and body), 0: unknown (not recorded). */
    uint64_t request_bytes;
} sonde_http_begin_info;

/** One request between begin and end; lives on the caller's stack. The
 * fields are private except request_id. */
typedef struct sonde_http_req {
    sonde_http_instr *in;
    sonde_http_route *route;
    uint64_t t0_ns;
    uint64_t request_bytes;
    int method_index;
    int ctx_token;
    sonde_op_token op;
    /** The request's correlation ID (empty when no context was adopted):
     * answer it as X-Request-ID. */
    char request_id[129];
} sonde_http_req;

/**
 * Begin a request: counts it in flight and takes the start time; with
 * info, adopts its correlation ID into the logging context. method is one
 * SONDE_HTTP_* value; route from sonde_http_instr_route/match (NULL:
 * "other"). Any thread, lock-free; without headers no allocation.
 */
SONDE_API void sonde_http_begin(sonde_http_instr *in, sonde_http_req *rq, sonde_http_route *route,
                                sonde_http_method method, const sonde_http_begin_info *info);

/**
 * End a request on the thread that began it: records status, duration,
 * sizes (response_bytes 0: not recorded) and security events (401, 403,
 * 429, 413, 400), captures a 5xx as an error, ends the tracing operation
 * and pops the logging context. Any thread, lock-free.
 */
SONDE_API void sonde_http_end(sonde_http_req *rq, int status, uint64_t response_bytes);

#ifdef __cplusplus
}
#endif
#endif
