/*
 * sonde-demo: a small simulated service instrumented with sonde.
 *
 * A few worker threads handle fake requests: each looks up a cache, calls a
 * flaky backend behind a circuit breaker with retries, and records what
 * happened. The demo serves everything on sonde's HTTP server (metrics,
 * health probes with a few checks, info) and prints the URLs; with
 * --interval it also prints its exposition periodically.
 *
 * Every request logs through sonde inside its own context: a correlation ID
 * (from a fake incoming traceparent or X-Request-ID header, or new), the
 * method, path and client address, and a nested backend_call context for
 * cache misses. Warnings and errors go to stderr; with --log-file every line
 * (DEBUG and up) goes to that file as JSON, for jq.
 *
 * The simulated requests also go through sonde's request instrumentation
 * (sonde_http_begin/end), as an application's own HTTP server would:
 * demo_http_requests_total{method,route,status},
 * demo_http_request_duration_seconds{method,route} and the rest, by route
 * template. The demo serves one application route of its own on sonde's
 * server: /demo/stats (public JSON: requests, errors, cache hit ratio).
 *
 * Failed backend calls and circuit-breaker trips are captured as errors
 * (grouped on /errors); an alert rule fires within seconds once enough of
 * them pile up (on /alerts, printed here, and sent to the Alertmanager or
 * webhooks named by SONDE_ALERTMANAGER_URL, SONDE_WEBHOOK_URL,
 * SONDE_SLACK_WEBHOOK_URL).
 *
 *   sonde-demo [--web.listen-address HOST:PORT] [--format F] [--once]
 *              [--interval SECONDS] [--duration SECONDS] [--workers N]
 *              [--simulate SECONDS] [--log-file PATH]
 */
#include <sonde.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

struct demo_metrics {
    sonde_family *requests;       /* demo_requests_total{method,status} */
    sonde_family *latency;        /* demo_request_duration_seconds{method} */
    sonde_family *cache_ops;      /* demo_cache_operations_total{result} */
    sonde_counter *retries;       /* demo_backend_retries_total */
    sonde_counter *breaker_trips; /* demo_circuit_breaker_trips_total */
    sonde_stateset *breaker;      /* demo_circuit_breaker_state */
    sonde_gauge *inflight;        /* demo_inflight_requests */
    sonde_gauge *workers;         /* demo_worker_threads */
    sonde_family *payload;        /* demo_response_size_bytes (summary) */
};

static struct demo_metrics m;
static atomic_ullong cache_hits, cache_lookups;
static atomic_int stop_flag;
static atomic_int stop_traffic;
static atomic_ullong requests_recorded;
static atomic_ullong requests_failed; /* answered 5xx */
static sonde_http_instr *http_instr;
static atomic_int breaker_failures;

static double hit_ratio(void *ud)
{
    (void)ud;
    unsigned long long l = atomic_load(&cache_lookups);
    return l ? (double)atomic_load(&cache_hits) / (double)l : 0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "sonde-demo: %s: %s (%s)\n", what, sonde_strerror(rc), sonde_last_error());
    exit(1);
}

static void register_metrics(void)
{
    sonde_metric_opts o;
    int rc;

    sonde_metric_opts_init(&o);
    const char *req_labels[] = {"method", "status"};
    o.ns = "demo";
    o.name = "requests_total";
    o.help = "Requests handled, by method and status.";
    o.label_names = req_labels;
    o.label_count = 2;
    /* Exemplars: each request's correlation ID (from its logging context). */
    o.exemplars = SONDE_EXEMPLARS_FROM_LOG;
    if ((rc = sonde_family_create(NULL, SONDE_COUNTER, &o, &m.requests)))
        die("requests_total", rc);

    sonde_metric_opts_init(&o);
    const char *lat_labels[] = {"method"};
    o.ns = "demo";
    o.name = "request_duration_seconds";
    o.help = "Request latency.";
    o.unit = "seconds";
    o.label_names = lat_labels;
    o.label_count = 1;
    /* Native histogram (schema 3, buckets 9% wide) next to the classic
     * buckets: scrapers negotiating protobuf get both; the text formats
     * the classic ones. Exemplars carry the request's correlation ID. */
    o.buckets = sonde_default_buckets;
    o.bucket_count = SONDE_DEFAULT_BUCKET_COUNT;
    o.native_bucket_factor = 1.1;
    o.exemplars = SONDE_EXEMPLARS_FROM_LOG;
    if ((rc = sonde_family_create(NULL, SONDE_HISTOGRAM, &o, &m.latency)))
        die("request_duration_seconds", rc);

    sonde_metric_opts_init(&o);
    const char *cache_labels[] = {"result"};
    o.ns = "demo";
    o.name = "cache_operations_total";
    o.help = "Cache lookups by result.";
    o.label_names = cache_labels;
    o.label_count = 1;
    if ((rc = sonde_family_create(NULL, SONDE_COUNTER, &o, &m.cache_ops)))
        die("cache_operations_total", rc);

    sonde_metric_opts_init(&o);
    o.ns = "demo";
    o.name = "cache_hit_ratio";
    o.help = "Share of cache lookups that hit, computed at scrape time.";
    sonde_family *ratio;
    if ((rc = sonde_callback_create(NULL, SONDE_GAUGE, &o, hit_ratio, NULL, &ratio)))
        die("cache_hit_ratio", rc);

    if ((rc = sonde_counter_create(NULL, "demo_backend_retries_total", "Backend call retries.",
                                   &m.retries)))
        die("retries", rc);
    if ((rc = sonde_counter_create(NULL, "demo_circuit_breaker_trips_total",
                                   "Times the circuit breaker opened.", &m.breaker_trips)))
        die("trips", rc);
    if ((rc = sonde_gauge_create(NULL, "demo_inflight_requests", "Requests in progress.",
                                 &m.inflight)))
        die("inflight", rc);
    if ((rc = sonde_gauge_create(NULL, "demo_worker_threads", "Worker threads running.",
                                 &m.workers)))
        die("workers", rc);

    sonde_metric_opts_init(&o);
    const char *states[] = {"closed", "open", "half_open"};
    o.name = "demo_circuit_breaker_state";
    o.help = "State of the backend circuit breaker.";
    o.states = states;
    o.state_count = 3;
    if ((rc = sonde_stateset_create(NULL, &o, &m.breaker)))
        die("breaker", rc);

    sonde_metric_opts_init(&o);
    const double q[] = {0.5, 0.9, 0.99};
    o.name = "demo_response_size_bytes";
    o.help = "Response sizes.";
    o.unit = "bytes";
    o.quantiles = q;
    o.quantile_count = 3;
    o.max_age_seconds = 60;
    if ((rc = sonde_family_create(NULL, SONDE_SUMMARY, &o, &m.payload)))
        die("payload", rc);

    const char *build[] = {"version", sonde_version(), "service", "sonde-demo"};
    if ((rc = sonde_info_create(NULL, "demo_build", "Build information.", build, 2)))
        die("build_info", rc);
}

/* xorshift per thread: cheap randomness without locks. */
static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static sonde_logger *req_log; /* "demo.requests" */

/* Traced operations (sonde/trace.h): windows with percentiles and success
 * rates, kept in $SONDE_STORE; read them with `sonde performance`. */
static sonde_op *op_request, *op_cache, *op_backend;

/* What a client would send: sometimes a W3C traceparent, sometimes an
 * X-Request-ID, mostly nothing (a new correlation ID is made). */
static void fake_headers(unsigned *seed, char *traceparent, size_t tp_size, char *request_id,
                         size_t rid_size)
{
    traceparent[0] = request_id[0] = '\0';
    unsigned r = next_rand(seed) % 10;
    if (r == 0) {
        char id[33];
        sonde_log_new_correlation_id(id);
        snprintf(traceparent, tp_size, "00-%s-00f067aa0ba902b7-01", id);
    } else if (r == 1) {
        snprintf(request_id, rid_size, "req-%08x", next_rand(seed));
    }
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    static const char *methods[] = {"GET", "GET", "GET", "POST", "DELETE"};
    static const char *paths[] = {"/api/items", "/api/items/42", "/api/users/me", "/api/orders"};
    /* Keep the handles that never change: no lookup at all on these. */
    sonde_counter *hit = sonde_family_counter(m.cache_ops, "hit");
    sonde_counter *miss = sonde_family_counter(m.cache_ops, "miss");
    sonde_summary *size = sonde_family_as_summary(m.payload);
    sonde_gauge_inc(m.workers);
    while (!atomic_load(&stop_flag) && !atomic_load(&stop_traffic)) {
        const char *method = methods[next_rand(&seed) % 5];
        const char *path = paths[next_rand(&seed) % 4];
        /* As an HTTP server would: the route template of the path, never
         * the raw path, in the request metrics. */
        sonde_http_req hreq;
        sonde_http_begin(http_instr, &hreq, sonde_http_instr_match(http_instr, path),
                         sonde_http_method_parse(method), NULL);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sonde_gauge_inc(m.inflight);

        /* One correlation per request, popped when the iteration ends. */
        char traceparent[64], request_id[32], cid[SONDE_CORRELATION_ID_MAX + 1], ip[16];
        fake_headers(&seed, traceparent, sizeof traceparent, request_id, sizeof request_id);
        sonde_log_correlation_from_headers(traceparent, request_id, cid);
        snprintf(ip, sizeof ip, "10.0.%u.%u", next_rand(&seed) % 4, next_rand(&seed) % 250 + 1);
        SONDE_LOG_REQUEST_CONTEXT(cid, SONDE_STR("method", method), SONDE_STR("path", path),
                                  SONDE_STR("client_ip", ip));
        SONDE_LOG(req_log, DEBUG, "request received");
        sonde_op_token req_op = sonde_op_begin_op(op_request);

        atomic_fetch_add(&cache_lookups, 1);
        int status = 200;
        int cache_hit = next_rand(&seed) % 100 < 70;
        if (cache_hit) {
            atomic_fetch_add(&cache_hits, 1);
            sonde_counter_inc(hit);
            sonde_op_token c = sonde_op_begin_op(op_cache);
            sleep_us(100 + next_rand(&seed) % 900); /* cache hit: under 1 ms */
            sonde_op_end(c, 1);
        } else {
            sonde_counter_inc(miss);
            SONDE_LOG_CONTEXT(SONDE_STR("operation", "backend_call"),
                              SONDE_STR("provider", "inventory"));
            sonde_op_token call = sonde_op_begin_op(op_backend);
            /* The backend fails 10% of the time; retry up to twice. */
            int attempts = 0;
            while (next_rand(&seed) % 100 < 10 && attempts < 2) {
                attempts++;
                sonde_counter_inc(m.retries);
                SONDE_LOG(req_log, INFO, "backend call failed, retrying",
                          SONDE_INT("attempt", attempts), SONDE_ERRNUM(ECONNRESET));
                sleep_us(200);
            }
            if (attempts == 2) {
                status = 503;
                /* The URL carries a password: the line shows it masked. */
                SONDE_LOG(req_log, ERROR, "backend unavailable after retries",
                          SONDE_STR("upstream", "https://svc:s3cret@inventory.internal/v1"),
                          SONDE_INT("attempts", attempts + 1));
                /* Captured in the request's context: the error group keeps
                 * its correlation ID. */
                const char *ctx[] = {"provider", "inventory", "path", path};
                sonde_error_info e;
                sonde_error_info_init(&e);
                SONDE_ERROR_HERE(&e);
                e.severity = SONDE_SEVERITY_HIGH;
                e.type = "BackendUnavailable";
                e.message = "inventory backend unavailable after 3 attempts";
                e.operation = "backend_call";
                e.context = ctx;
                e.context_count = 2;
                e.errnum = ECONNRESET;
                sonde_error_capture(NULL, &e);
                if (atomic_fetch_add(&breaker_failures, 1) + 1 >= 5 &&
                    sonde_stateset_get(m.breaker) == 0) {
                    sonde_stateset_set(m.breaker, 1);
                    sonde_counter_inc(m.breaker_trips);
                    SONDE_LOG(req_log, WARNING, "circuit breaker opened",
                              SONDE_INT("consecutive_failures", 5));
                    SONDE_CAPTURE(SONDE_SEVERITY_CRITICAL, "CircuitBreakerOpen",
                                  "circuit breaker opened after %d consecutive failures", 5);
                }
            } else if (sonde_stateset_get(m.breaker) != 0) {
                atomic_store(&breaker_failures, 0);
                sonde_stateset_set(m.breaker, 0);
            }
            /* Backend latency: mostly 2-40 ms, sometimes up to 300 ms. */
            unsigned r = next_rand(&seed) % 100;
            sleep_us(r < 90 ? 2000 + next_rand(&seed) % 38000 : 40000 + next_rand(&seed) % 260000);
            sonde_op_end(call, attempts < 2);
        }
        if (status == 200 && strcmp(method, "POST") == 0 && next_rand(&seed) % 50 == 0)
            status = 400;
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        sonde_counter_inc(sonde_family_counter(m.requests, method, code));
        atomic_fetch_add(&requests_recorded, 1);
        if (status >= 500)
            atomic_fetch_add(&requests_failed, 1);
        unsigned resp_bytes = 200 + next_rand(&seed) % 5000;
        sonde_summary_observe(size, resp_bytes);

        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        sonde_histogram_observe(sonde_family_histogram(m.latency, method), secs);
        sonde_gauge_dec(m.inflight);
        sonde_op_end(req_op, status < 500);
        /* Logged before sonde_http_end, which pops the request's logging
         * context: the line keeps its correlation ID. */
        SONDE_LOG_AT(req_log, status >= 500 ? SONDE_LOG_ERROR : SONDE_LOG_INFO, "request handled",
                     SONDE_INT("status", status), SONDE_DOUBLE("duration_seconds", secs),
                     SONDE_BOOL("cache_hit", cache_hit));
        sonde_http_end(&hreq, status, resp_bytes);
        sleep_us(1000 + next_rand(&seed) % 4000);
    }
    sonde_gauge_dec(m.workers);
    return NULL;
}

/* GET /demo/stats: an application route on sonde's server (public). */
static void demo_stats(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    (void)rq;
    sonde_buf_printf(&rs->body, "{\"requests\":%llu,\"errors\":%llu,\"cache_hit_ratio\":%.4f}\n",
                     (unsigned long long)atomic_load(&requests_recorded),
                     (unsigned long long)atomic_load(&requests_failed), hit_ratio(NULL));
}

static void setup_http_instrumentation(void)
{
    static const char *routes[] = {"/api/items", "/api/items/{id}", "/api/users/me", "/api/orders"};
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.metric_namespace = "demo";
    o.routes = routes;
    o.route_count = sizeof routes / sizeof routes[0];
    /* The demo captures its 503s itself, as BackendUnavailable errors with
     * the backend's context; the instrumentation would capture each one a
     * second time (as HTTP5xx). */
    o.no_errors = 1;
    int rc = sonde_http_instr_create(&o, &http_instr);
    if (rc)
        die("request instrumentation", rc);
    sonde_route_opts ro;
    sonde_route_opts_init(&ro);
    ro.path = "/demo/stats";
    ro.access = SONDE_ACCESS_PUBLIC;
    ro.owner = "sonde-demo";
    rc = sonde_route_add(&ro, demo_stats, NULL);
    if (rc)
        die("route /demo/stats", rc);
}

/* A health check of the simulated backend: degraded while the circuit
 * breaker is open. Runs on a sonde check thread. */
static sonde_health_status backend_check(sonde_health_result *r, void *ud)
{
    (void)ud;
    size_t st = sonde_stateset_get(m.breaker);
    sonde_health_result_add_number(r, "consecutive_failures", atomic_load(&breaker_failures));
    if (st != 0) {
        sonde_health_result_set_message(r, "circuit breaker open: the backend is failing");
        return SONDE_HEALTH_DEGRADED;
    }
    sonde_health_result_set_message(r, "circuit breaker closed");
    return SONDE_HEALTH_HEALTHY;
}

static void add_checks(void)
{
    sonde_health_check_opts o;
    sonde_health_check_opts_init(&o);
    o.name = "backend";
    o.interval_seconds = 2;
    if (sonde_health_add(NULL, &o, backend_check, NULL))
        die("backend check", SONDE_EINVAL);
    o.name = "disk";
    o.interval_seconds = 30;
    sonde_health_add_disk(NULL, &o, "/", 10, 5);
    o.name = "memory";
    sonde_health_add_memory(NULL, &o, 10, 5, 0);
    o.name = "tmp_writable";
    o.informational = 1;
    sonde_health_add_writable_dir(NULL, &o, "/tmp");
}

/* Alert rules: enough backend errors within a minute fire in seconds;
 * a degraded health (the breaker open) is reported too. */
static void add_alerts(void)
{
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "DemoBackendErrors";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_HIGH;
    r.threshold = 5;
    r.window_seconds = 60;
    r.repeat_seconds = 300;
    r.summary = "{value} backend errors within {window} (threshold {threshold})";
    r.description = "The inventory backend keeps failing after retries; see /errors.";
    int rc = sonde_alerts_add_rule(NULL, &r);
    if (rc)
        die("alert rule", rc);
    sonde_rule_opts_init(&r);
    r.name = "DemoHealthDegraded";
    r.kind = SONDE_RULE_HEALTH;
    r.percent = 90;
    r.for_seconds = 5;
    r.severity = SONDE_SEVERITY_MEDIUM;
    rc = sonde_alerts_add_rule(NULL, &r);
    if (rc)
        die("alert rule", rc);
    /* A rule over one of the demo's own metrics: the p99 latency of each
     * route over 5 minutes (the simulated requests stay far below it). */
    static const char *const by_route[] = {"route"};
    sonde_rule_opts_init(&r);
    r.name = "DemoSlowRoute";
    r.kind = SONDE_RULE_QUANTILE;
    r.metric = "demo_http_request_duration_seconds";
    r.quantile = 0.99;
    r.by = by_route;
    r.by_count = 1;
    r.op = SONDE_OP_GT;
    r.threshold_value = 5;
    r.window_seconds = 300;
    r.for_seconds = 60;
    r.severity = SONDE_SEVERITY_MEDIUM;
    r.summary = "p99 of {labels.route} is {value}s";
    rc = sonde_alerts_add_rule(NULL, &r);
    if (rc)
        die("alert rule", rc);
}

/* Print alert transitions as they happen (the notifiers deliver them). */
static void print_alert_changes(void)
{
    static int last[8];
    sonde_alert *a;
    size_t n;
    if (sonde_alerts_get(NULL, 0, &a, &n) != SONDE_OK)
        return;
    for (size_t i = 0; i < n && i < 8; i++) {
        int s = a[i].state;
        if (s != last[i] && (s == SONDE_ALERT_FIRING || s == SONDE_ALERT_RESOLVED))
            fprintf(stderr, "sonde-demo: ALERT %s %s: %s\n", a[i].rule,
                    s == SONDE_ALERT_FIRING ? "firing" : "resolved", a[i].summary);
        last[i] = s;
    }
    sonde_free(a);
}

static void print_urls(void)
{
    char addr[96];
    if (sonde_listen_address(addr, sizeof addr) != SONDE_OK)
        return;
    /* A wildcard address is reachable as localhost. */
    const char *host = "localhost";
    int port = sonde_listen_port();
    char hp[128];
    if (strncmp(addr, "[::]", 4) == 0 || strncmp(addr, "0.0.0.0", 7) == 0)
        snprintf(hp, sizeof hp, "%s:%d", host, port);
    else
        snprintf(hp, sizeof hp, "%s", addr);
    fprintf(stderr,
            "sonde-demo: serving on %s\n"
            "  metrics           http://%s/metrics\n"
            "  metrics (JSON)    http://%s/metrics/json\n"
            "  health            http://%s/health\n"
            "  liveness          http://%s/health/live\n"
            "  readiness         http://%s/health/ready\n"
            "  health (detailed) http://%s/health/detailed\n"
            "  info              http://%s/info\n"
            "  status            http://%s/status\n"
            "  demo stats        http://%s/demo/stats   (an application route)\n"
            "  performance       http://%s/performance?hours=1\n"
            "  (or: build/bin/sonde performance --url http://%s --hours 1)\n"
            "  errors            http://%s/errors   (build/bin/sonde errors --url http://%s)\n"
            "  alerts            http://%s/alerts   (build/bin/sonde alerts --url http://%s)\n",
            addr, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp, hp);
    const char *am = getenv("SONDE_ALERTMANAGER_URL");
    if (am && *am)
        fprintf(stderr, "  alerts are also sent to the Alertmanager at %s\n", am);
    printf("listening on %s\n", addr);
    fflush(stdout);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sonde-demo [options]\n"
            "  --web.listen-address HOST:PORT  address to serve on (default $SONDE_LISTEN,\n"
            "                          else :9464; port 0 picks a free port)\n"
            "  --format prometheus|openmetrics|json  exposition printed (default prometheus)\n"
            "  --once                  simulate briefly, print one exposition, exit (no server)\n"
            "  --interval SECONDS      also print the exposition every SECONDS\n"
            "  --duration SECONDS      stop after SECONDS (default: run until Ctrl-C)\n"
            "  --simulate SECONDS      stop the simulated traffic after SECONDS and keep\n"
            "                          serving; prints the number of requests recorded\n"
            "  --workers N             worker threads (default 4)\n"
            "  --log-file PATH         also write every log line (DEBUG and up) to PATH as JSON\n"
            "Requests, cache lookups and backend calls are traced; SONDE_STORE=PATH keeps\n"
            "their history in a SQLite file for `sonde performance --store PATH`.\n"
            "The bound address is printed on stdout as \"listening on HOST:PORT\".\n");
}

static double parse_num(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || d < 0) {
        fprintf(stderr, "sonde-demo: %s needs a non-negative number, got \"%s\"\n", opt,
                v ? v : "");
        exit(2);
    }
    return d;
}

int main(int argc, char **argv)
{
    sonde_format fmt = SONDE_FORMAT_PROMETHEUS;
    const char *listen = NULL;
    int once = 0, print = 0;
    double interval = 5, duration = 0, simulate = 0;
    int nworkers = 4;
    const char *log_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--once") == 0) {
            once = 1;
        } else if (strcmp(a, "--web.listen-address") == 0 && v) {
            listen = v;
            i++;
        } else if (strcmp(a, "--format") == 0 && v) {
            if (strcmp(v, "prometheus") == 0)
                fmt = SONDE_FORMAT_PROMETHEUS;
            else if (strcmp(v, "openmetrics") == 0)
                fmt = SONDE_FORMAT_OPENMETRICS;
            else if (strcmp(v, "json") == 0)
                fmt = SONDE_FORMAT_JSON;
            else {
                fprintf(stderr, "sonde-demo: unknown format \"%s\"\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--interval") == 0) {
            interval = parse_num(a, v);
            print = 1;
            i++;
        } else if (strcmp(a, "--simulate") == 0) {
            simulate = parse_num(a, v);
            i++;
        } else if (strcmp(a, "--duration") == 0) {
            duration = parse_num(a, v);
            i++;
        } else if (strcmp(a, "--log-file") == 0 && v) {
            log_file = v;
            i++;
        } else if (strcmp(a, "--workers") == 0) {
            nworkers = (int)parse_num(a, v);
            if (nworkers < 1 || nworkers > 64) {
                fprintf(stderr, "sonde-demo: --workers must be 1..64\n");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "sonde-demo: unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* Logging: asynchronous (a writer thread), warnings and errors on the
     * console, everything from DEBUG in the file. SONDE_LOG_* environment
     * variables override these. */
    sonde_log_opts lo;
    sonde_log_opts_init(&lo);
    lo.level = "debug";
    lo.console_level = SONDE_LOG_WARNING;
    lo.file = log_file;
    lo.async = 1;
    int lrc = sonde_log_configure(&lo);
    if (lrc)
        die(log_file ? log_file : "logging", lrc);
    req_log = sonde_logger_get("demo.requests");

    register_metrics();
    /* Tracing: demo_operation_duration_seconds{operation},
     * demo_operations_total{operation,result}, windows kept in $SONDE_STORE
     * (a SQLite file, or redis://...; in memory when unset). */
    sonde_trace_opts to;
    sonde_trace_opts_init(&to);
    to.ns = "demo";
    int trc = sonde_trace_start(&to);
    if (trc)
        fprintf(stderr, "sonde-demo: tracing: %s (%s)\n", sonde_strerror(trc), sonde_last_error());
    setup_http_instrumentation();
    op_request = sonde_op_get("request");
    op_cache = sonde_op_get("cache_lookup");
    op_backend = sonde_op_get("backend_call");
    /* Expected backend latency: flagged when a 5-minute window averages
     * over 2 x 30 ms or its p95 exceeds 2 x 150 ms. */
    sonde_baseline bl = {0.030, 0.150, 2.0, 5, 20};
    sonde_trace_set_baseline("backend_call", &bl);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (!once) {
        add_checks();
        add_alerts();
        sonde_start_opts so;
        sonde_start_opts_init(&so);
        so.listen = listen;
        so.service_name = "sonde-demo";
        so.service_version = sonde_version();
        int rc = sonde_start(&so);
        if (rc) {
            fprintf(stderr, "sonde-demo: cannot serve: %s (%s)\n", sonde_strerror(rc),
                    sonde_last_error());
            return 1;
        }
        print_urls();
    }

    pthread_t th[64];
    for (int i = 0; i < nworkers; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));

    sonde_buf out;
    sonde_buf_init(&out);
    if (once) {
        sleep_us(300000);
    } else if (print) {
        fprintf(stderr, "sonde-demo: %d workers running; exposition every %g s (Ctrl-C stops)\n",
                nworkers, interval);
    } else {
        fprintf(stderr, "sonde-demo: %d workers running (Ctrl-C stops)\n", nworkers);
    }
    double waited = 0;
    int simulating = 1;
    for (;;) {
        if (!once) {
            for (double t = 0; t < interval && !atomic_load(&stop_flag); t += 0.1) {
                sleep_us(100000);
                waited += 0.1;
                print_alert_changes();
                if (simulating && simulate > 0 && waited >= simulate) {
                    /* Freeze the traffic: the workers finish their request
                     * and exit, so every count is final. */
                    atomic_store(&stop_traffic, 1);
                    for (int i = 0; i < nworkers; i++)
                        pthread_join(th[i], NULL);
                    nworkers = 0;
                    simulating = 0;
                    fprintf(stderr, "sonde-demo: simulation stopped after %llu requests\n",
                            (unsigned long long)atomic_load(&requests_recorded));
                    printf("requests recorded %llu\n",
                           (unsigned long long)atomic_load(&requests_recorded));
                    fflush(stdout);
                }
                if (duration > 0 && waited >= duration)
                    break;
            }
        }
        if (atomic_load(&stop_flag) || (duration > 0 && waited >= duration))
            break;
        if (!once && !print)
            continue;
        sonde_buf_reset(&out);
        int rc = sonde_registry_write(NULL, fmt, NULL, &out);
        if (rc)
            die("render", rc);
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
        if (once)
            break;
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < nworkers; i++)
        pthread_join(th[i], NULL);
    sonde_buf_free(&out);
    sonde_trace_stop(); /* writes the current minute to the store */
    sonde_stop();
    sonde_route_remove("/demo/stats", 0);
    sonde_http_instr_destroy(http_instr);
    sonde_log_shutdown(2000); /* write what is queued (if sonde_stop did not) */
    return 0;
}
