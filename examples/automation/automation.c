/*
 * sonde-example-automation: seed 001 (the API automation platform's
 * metrics plan, "ancestry") reproduced with sonde.
 *
 * In-process simulation of the platform: four action workers (Actions 6-9)
 * call a remote API through one API manager. Every call goes through the
 * unified cache (get, set, invalidate, expire), the shared sequential rate
 * limiter (which really makes callers wait), the API circuit breaker and
 * the session, which refreshes proactively, when the API answers 401, and
 * after browser errors (its own circuit breaker opens after three of them).
 * The remote API has an outage every few seconds, so the API breaker trips,
 * waits, turns half-open and closes again.
 *
 * Time is compressed: one simulated second is 10 ms of real time, so the
 * seed's latency buckets (0.5 s to 16 s) fill within seconds. Latencies and
 * rate-limiter delays are recorded in simulated seconds; the session uptime
 * is real.
 *
 * Configuration, as the seed's ObservabilitySettings (environment):
 *   PROMETHEUS_METRICS_ENABLED  false (default): no registry work, no
 *                               exporter; true: metrics on the exporter
 *   METRICS_EXPORT_PORT         9000: the exporter's port (every interface)
 *   METRICS_NAMESPACE           ancestry: prefix of every metric name
 *
 *   sonde-example-automation [--web.listen-address HOST:PORT] [--duration S]
 */
#include <sonde.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PROG "sonde-example-automation"
/* Real seconds per simulated second. */
#define TIME_SCALE 0.01

/* ---- ObservabilitySettings ---- */

static struct {
    int enable_prometheus_metrics; /* PROMETHEUS_METRICS_ENABLED, default false */
    long metrics_export_port;      /* METRICS_EXPORT_PORT, default 9000 */
    const char *metrics_namespace; /* METRICS_NAMESPACE, default "ancestry" */
} settings;

static void config_error(const char *var, const char *value, const char *want)
{
    fprintf(stderr, PROG ": %s=\"%s\": %s\n", var, value, want);
    exit(2);
}

static void load_settings(void)
{
    const char *v = getenv("PROMETHEUS_METRICS_ENABLED");
    settings.enable_prometheus_metrics = 0;
    if (v && *v) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            settings.enable_prometheus_metrics = 1;
        else if (strcasecmp(v, "false") && strcmp(v, "0") && strcasecmp(v, "no") &&
                 strcasecmp(v, "off"))
            config_error("PROMETHEUS_METRICS_ENABLED", v, "expected true or false");
    }
    settings.metrics_export_port = 9000;
    v = getenv("METRICS_EXPORT_PORT");
    if (v && *v) {
        char *end;
        errno = 0;
        long p = strtol(v, &end, 10);
        if (errno || *end || end == v || p < 1 || p > 65535)
            config_error("METRICS_EXPORT_PORT", v, "expected a port number 1 to 65535");
        settings.metrics_export_port = p;
    }
    v = getenv("METRICS_NAMESPACE");
    settings.metrics_namespace = v && *v ? v : "ancestry";
}

/* ---- the metrics registry (observability/metrics_registry.py) ---- */

static struct {
    sonde_family *api_latency;     /* api_latency_seconds{endpoint,status_family} */
    sonde_family *api_requests;    /* api_requests_total{endpoint,method,result} */
    sonde_family *cache_ratio;     /* cache_hit_ratio{service,endpoint} */
    sonde_family *cache_ops;       /* cache_operations_total{service,endpoint,operation} */
    sonde_family *session_refresh; /* session_refresh_total{reason} */
    sonde_family *actions;         /* action_processed_total{action,result} */
    sonde_family *breaker_state;   /* circuit_breaker_state{breaker} */
    sonde_family *breaker_trips;   /* circuit_breaker_trip_total{breaker} */
    sonde_histogram *rl_delay;     /* rate_limiter_delay_seconds */
} M;

static void die(const char *what, int rc)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, sonde_strerror(rc), sonde_last_error());
    exit(rc == SONDE_EBADNAME ? 2 : 1);
}

/* Label cardinality control: every labelled family holds at most 64
 * series; endpoints are sanitized to a fixed set of names (below). */
static sonde_family *family(sonde_metric_type type, const char *name, const char *help,
                            const char *const *labels, size_t nlabels, const double *buckets,
                            size_t nb)
{
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = help;
    o.label_names = labels;
    o.label_count = nlabels;
    o.max_series = 64;
    o.buckets = buckets;
    o.bucket_count = nb;
    sonde_family *f;
    int rc = sonde_family_create(NULL, type, &o, &f);
    if (rc)
        die(name, rc);
    return f;
}

static double session_started; /* monotonic seconds; 0: no session */
static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SessionManager.session_age_seconds(), read at scrape time. */
static double session_age_seconds(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&session_lock);
    double age = session_started > 0 ? mono_now() - session_started : 0;
    pthread_mutex_unlock(&session_lock);
    return age;
}

/* performance_monitor's thread count: the threads of this process. */
static double worker_thread_count(void *ud)
{
    (void)ud;
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* The seed's value sets, pre-created at 0 so that every series exists from
 * the first scrape. */
static const char *const endpoints[] = {"match_list", "profile_details", "badge_details",
                                        "inbox",      "send_message",    "tree_search"};
#define N_ENDPOINTS 6
static const char *const actions[] = {"action6_gather", "action7_inbox", "action8_messaging",
                                      "action9_process_productive"};
static const char *const breakers[] = {"api", "session"};

static const char *cache_service(int ep)
{
    return ep == 5 ? "tree" : "api";
}

static void register_metrics(void)
{
    int rc = sonde_registry_set_namespace(NULL, settings.metrics_namespace);
    if (rc) {
        fprintf(stderr, PROG ": METRICS_NAMESPACE=\"%s\": not a valid metric name prefix\n",
                settings.metrics_namespace);
        exit(2);
    }
    static const double latency_buckets[] = {0.5, 1, 2, 4, 8, 16};
    const char *lat[] = {"endpoint", "status_family"};
    M.api_latency = family(SONDE_HISTOGRAM, "api_latency_seconds",
                           "API request latency around _api_req_with_auth_refresh.", lat, 2,
                           latency_buckets, 6);
    const char *req[] = {"endpoint", "method", "result"};
    M.api_requests = family(SONDE_COUNTER, "api_requests_total",
                            "API requests by endpoint, method and result.", req, 3, NULL, 0);
    const char *ratio[] = {"service", "endpoint"};
    M.cache_ratio =
        family(SONDE_GAUGE, "cache_hit_ratio",
               "Cache hit ratio, recomputed on every cache operation.", ratio, 2, NULL, 0);
    const char *ops[] = {"service", "endpoint", "operation"};
    M.cache_ops = family(SONDE_COUNTER, "cache_operations_total", "Unified cache operations.", ops,
                         3, NULL, 0);
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "session_uptime_seconds";
    o.help = "Age of the current session.";
    o.unit = "seconds";
    sonde_family *f;
    if ((rc = sonde_callback_create(NULL, SONDE_GAUGE, &o, session_age_seconds, NULL, &f)))
        die(o.name, rc);
    const char *reason[] = {"reason"};
    M.session_refresh = family(SONDE_COUNTER, "session_refresh_total",
                               "Session refreshes by reason.", reason, 1, NULL, 0);
    const char *act[] = {"action", "result"};
    M.actions = family(SONDE_COUNTER, "action_processed_total",
                       "Items processed by Actions 6-9, by result.", act, 2, NULL, 0);
    const char *br[] = {"breaker"};
    M.breaker_state =
        family(SONDE_GAUGE, "circuit_breaker_state",
               "Circuit breaker state: 0 closed, 1 open, 0.5 half-open.", br, 1, NULL, 0);
    M.breaker_trips = family(SONDE_COUNTER, "circuit_breaker_trip_total",
                             "Circuit breaker trips (transitions to open).", br, 1, NULL, 0);
    M.rl_delay = sonde_family_as_histogram(family(SONDE_HISTOGRAM, "rate_limiter_delay_seconds",
                                                  "Waits applied by the rate limiter before "
                                                  "API calls.",
                                                  NULL, 0, NULL, 0));
    sonde_metric_opts_init(&o);
    o.name = "worker_thread_count";
    o.help = "Threads of the process (performance_monitor).";
    if ((rc = sonde_callback_create(NULL, SONDE_GAUGE, &o, worker_thread_count, NULL, &f)))
        die(o.name, rc);

    static const char *const sf[] = {"2xx", "4xx", "5xx"};
    static const char *const results[] = {"success", "retry", "failure", "cached"};
    static const char *const opnames[] = {"get", "set", "invalidate", "expire"};
    for (int e = 0; e < N_ENDPOINTS; e++) {
        const char *method = e == 4 ? "POST" : "GET";
        for (int i = 0; i < 3; i++)
            sonde_family_histogram(M.api_latency, endpoints[e], sf[i]);
        for (int i = 0; i < 4; i++)
            sonde_family_counter(M.api_requests, endpoints[e], method, results[i]);
        if (e != 4) { /* send_message is never cached */
            sonde_family_gauge(M.cache_ratio, cache_service(e), endpoints[e]);
            for (int i = 0; i < 4; i++)
                sonde_family_counter(M.cache_ops, cache_service(e), endpoints[e], opnames[i]);
        }
    }
    static const char *const reasons[] = {"proactive", "api_forced", "browser_error"};
    for (int i = 0; i < 3; i++)
        sonde_family_counter(M.session_refresh, reasons[i]);
    static const char *const ares[] = {"success", "failure", "skipped"};
    for (int a = 0; a < 4; a++)
        for (int i = 0; i < 3; i++)
            sonde_family_counter(M.actions, actions[a], ares[i]);
    for (int b = 0; b < 2; b++) {
        sonde_family_gauge(M.breaker_state, breakers[b]);
        sonde_family_counter(M.breaker_trips, breakers[b]);
    }
}

/* ---- helpers ---- */

static atomic_int stop_flag;
static sonde_logger *lg;

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Sleep for sim simulated seconds. */
static void sim_sleep(double sim)
{
    double real = sim * TIME_SCALE;
    struct timespec ts = {(time_t)real, (long)((real - (double)(time_t)real) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Simulated seconds since start. */
static double t_start;
static double sim_now(void)
{
    return (mono_now() - t_start) / TIME_SCALE;
}

/* ---- circuit breakers (SessionCircuitBreaker and the API's) ---- */

enum { CLOSED, OPEN, HALF_OPEN };

typedef struct breaker {
    pthread_mutex_t lock;
    const char *name;
    int state;
    int failures;               /* consecutive, while closed */
    int threshold;              /* failures that open it */
    double opened_at, cooldown; /* simulated seconds */
    int trials;                 /* consecutive successes while half-open */
    double next_trial;
    sonde_gauge *g;
    sonde_counter *trips;
} breaker;

static breaker api_breaker = {
    PTHREAD_MUTEX_INITIALIZER, "api", CLOSED, 0, 5, 0, 200, 0, 0, NULL, NULL};
static breaker session_breaker = {
    PTHREAD_MUTEX_INITIALIZER, "session", CLOSED, 0, 3, 0, 300, 0, 0, NULL, NULL};

/* The seed's encoding of the state. */
static double state_value(int st)
{
    return st == OPEN ? 1 : st == HALF_OPEN ? 0.5 : 0;
}

static void set_state(breaker *b, int st)
{
    if (b->state == st)
        return;
    static const char *const names[] = {"closed", "open", "half-open"};
    SONDE_LOG_AT(lg, st == OPEN ? SONDE_LOG_WARNING : SONDE_LOG_INFO,
                 "circuit breaker state changed", SONDE_STR("breaker", b->name),
                 SONDE_STR("from", names[b->state]), SONDE_STR("to", names[st]));
    if (st == OPEN) {
        b->opened_at = sim_now();
        sonde_counter_inc(b->trips);
    }
    b->state = st;
    sonde_gauge_set(b->g, state_value(st));
}

/* May a call go through? Open: no, until the cooldown has passed (then
 * half-open). Half-open: one trial call per 100 simulated seconds. */
static int breaker_allow(breaker *b)
{
    pthread_mutex_lock(&b->lock);
    double now = sim_now();
    if (b->state == OPEN && now - b->opened_at >= b->cooldown) {
        set_state(b, HALF_OPEN);
        b->trials = 0;
        b->next_trial = now;
    }
    int ok = b->state == CLOSED;
    if (b->state == HALF_OPEN && now >= b->next_trial) {
        ok = 1;
        b->next_trial = now + 100;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* Three successful trials close a half-open breaker; a failed one opens it
 * again. */
static void breaker_result(breaker *b, int success)
{
    pthread_mutex_lock(&b->lock);
    if (b->state == HALF_OPEN) {
        if (!success)
            set_state(b, OPEN);
        else if (++b->trials >= 3)
            set_state(b, CLOSED);
    } else if (b->state == CLOSED) {
        b->failures = success ? 0 : b->failures + 1;
        if (b->failures >= b->threshold) {
            b->failures = 0;
            set_state(b, OPEN);
        }
    }
    pthread_mutex_unlock(&b->lock);
}

/* ---- the rate limiter: one call every 0.5 simulated seconds, in order ---- */

static struct {
    pthread_mutex_t lock;
    double next; /* simulated time of the next allowed call */
} rl = {PTHREAD_MUTEX_INITIALIZER, 0};

/* RateLimiter.wait(): callers queue on the lock, so calls stay sequential;
 * the wait actually applied is recorded. */
static void rate_limiter_wait(void)
{
    pthread_mutex_lock(&rl.lock);
    double now = sim_now();
    double delay = rl.next > now ? rl.next - now : 0;
    if (delay > 0)
        sim_sleep(delay);
    rl.next = (delay > 0 ? rl.next : now) + 0.5;
    pthread_mutex_unlock(&rl.lock);
    sonde_histogram_observe(M.rl_delay, delay);
}

/* ---- the session ---- */

static void session_refresh(const char *reason, int restart)
{
    pthread_mutex_lock(&session_lock);
    if (restart)
        session_started = mono_now();
    pthread_mutex_unlock(&session_lock);
    sonde_counter_inc(sonde_family_counter(M.session_refresh, reason));
    SONDE_LOG(lg, INFO, "session refreshed", SONDE_STR("reason", reason));
}

/* ---- the unified cache ---- */

typedef struct cache_entry {
    double expires; /* simulated seconds; 0: empty */
} cache_entry;

static struct {
    pthread_mutex_t lock;
    cache_entry e[N_ENDPOINTS][16]; /* per endpoint, 16 keys */
    unsigned long gets[N_ENDPOINTS], hits[N_ENDPOINTS];
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void cache_op(int ep, const char *op)
{
    sonde_counter_inc(sonde_family_counter(M.cache_ops, cache_service(ep), endpoints[ep], op));
}

/* After every operation the endpoint's hit ratio is recomputed (the seed's
 * "compute on operation"); the caller holds cache.lock. */
static void update_ratio(int ep)
{
    double r = cache.gets[ep] ? (double)cache.hits[ep] / (double)cache.gets[ep] : 0;
    sonde_gauge_set(sonde_family_gauge(M.cache_ratio, cache_service(ep), endpoints[ep]), r);
}

static int cache_get(int ep, int key)
{
    pthread_mutex_lock(&cache.lock);
    cache_entry *c = &cache.e[ep][key];
    double now = sim_now();
    if (c->expires > 0 && c->expires <= now) {
        c->expires = 0;
        cache_op(ep, "expire");
    }
    int hit = c->expires > 0;
    cache.gets[ep]++;
    cache.hits[ep] += hit;
    cache_op(ep, "get");
    update_ratio(ep);
    pthread_mutex_unlock(&cache.lock);
    return hit;
}

static void cache_set(int ep, int key, double ttl)
{
    pthread_mutex_lock(&cache.lock);
    cache.e[ep][key].expires = sim_now() + ttl;
    cache_op(ep, "set");
    update_ratio(ep);
    pthread_mutex_unlock(&cache.lock);
}

static void cache_invalidate(int ep)
{
    pthread_mutex_lock(&cache.lock);
    for (int k = 0; k < 16; k++)
        cache.e[ep][k].expires = 0;
    cache_op(ep, "invalidate");
    update_ratio(ep);
    pthread_mutex_unlock(&cache.lock);
}

/* ---- the API manager ---- */

/* Raw request paths carry IDs; the endpoint label is one of a fixed set
 * (cardinality control: never the raw path). */
static int sanitize_endpoint(const char *path)
{
    static const char *const prefixes[] = {"/discoveryui-matches/parents/list/",
                                           "/discoveryui-matchesservice/api/profiles/",
                                           "/discoveryui-matchesservice/api/badges/",
                                           "/app-api/express/v2/conversations",
                                           "/app-api/express/v2/messages",
                                           "/api/treesui-list/trees/"};
    for (int i = 0; i < N_ENDPOINTS; i++)
        if (strncmp(path, prefixes[i], strlen(prefixes[i])) == 0)
            return i;
    return -1;
}

/* The remote API: an outage (90% 5xx) for 200 of every 600 simulated
 * seconds; otherwise 2% 401 (cookies expired), 3% 429, 1% 5xx. Latency
 * 0.3 to 18 s (mostly under 4 s). */
static int remote_call(int ep, unsigned *seed, double *latency)
{
    double t = fmod(sim_now(), 600);
    unsigned r = next_rand(seed) % 1000;
    double base = ep == 5 ? 2.0 : ep == 0 ? 1.0 : 0.3;
    *latency = base + (double)(next_rand(seed) % 1000) / 1000.0 * base * (r < 100 ? 8 : 2);
    if (t >= 400)
        return r < 900 ? 503 : 200;
    if (r < 20)
        return 401;
    if (r < 50)
        return 429;
    if (r < 60)
        return 500;
    return 200;
}

/* _api_req_with_auth_refresh: 0 success, 1 cached, -1 failure, -2 not
 * attempted (breaker open). Retries 401 (after a forced session refresh)
 * and 429 up to twice. */
static int api_request(const char *path, const char *method, int cacheable, unsigned *seed)
{
    int ep = sanitize_endpoint(path);
    if (ep < 0)
        return -1;
    int key = (int)(next_rand(seed) % 16);
    if (cacheable && cache_get(ep, key)) {
        sonde_counter_inc(sonde_family_counter(M.api_requests, endpoints[ep], method, "cached"));
        return 1;
    }
    if (!breaker_allow(&api_breaker))
        return -2;
    for (int attempt = 0;; attempt++) {
        rate_limiter_wait();
        double lat;
        int status = remote_call(ep, seed, &lat);
        sim_sleep(lat);
        const char *fam = status < 300 ? "2xx" : status < 500 ? "4xx" : "5xx";
        sonde_histogram_observe(sonde_family_histogram(M.api_latency, endpoints[ep], fam), lat);
        int retryable = (status == 401 || status == 429) && attempt < 2;
        const char *result = status < 300 ? "success" : retryable ? "retry" : "failure";
        sonde_counter_inc(sonde_family_counter(M.api_requests, endpoints[ep], method, result));
        if (status == 401)
            session_refresh("api_forced", 0);
        if (retryable)
            continue;
        breaker_result(&api_breaker, status < 500);
        if (status >= 300) {
            SONDE_LOG(lg, WARNING, "API request failed", SONDE_STR("endpoint", endpoints[ep]),
                      SONDE_INT("status", status), SONDE_INT("attempts", attempt + 1));
            return -1;
        }
        if (cacheable)
            cache_set(ep, key, ep == 5 ? 600 : 120);
        return 0;
    }
}

/* ---- Actions 6-9 ---- */

typedef struct action_spec {
    int action;
    const char *paths[3];
    const char *method;
    int cacheable;
} action_spec;

static const action_spec specs[] = {
    {0,
     {"/discoveryui-matches/parents/list/api/matchesList/",
      "/discoveryui-matchesservice/api/profiles/", "/discoveryui-matchesservice/api/badges/"},
     "GET",
     1},
    {1, {"/app-api/express/v2/conversations", NULL, NULL}, "GET", 1},
    {2, {"/app-api/express/v2/messages", NULL, NULL}, "POST", 0},
    {3, {"/api/treesui-list/trees/", "/discoveryui-matchesservice/api/profiles/", NULL}, "GET", 1},
};

static void *action_worker(void *arg)
{
    const action_spec *sp = arg;
    unsigned seed = 2463534242u + (unsigned)sp->action * 7919u;
    while (!atomic_load(&stop_flag)) {
        /* Session breaker open: the browser session is unusable. */
        if (!breaker_allow(&session_breaker)) {
            sonde_counter_inc(sonde_family_counter(M.actions, actions[sp->action], "skipped"));
            sim_sleep(20);
            continue;
        }
        /* 0.2%: the browser fails, the session is rebuilt. */
        if (next_rand(&seed) % 1000 < 2) {
            session_refresh("browser_error", 1);
            breaker_result(&session_breaker, 0);
            sonde_counter_inc(sonde_family_counter(M.actions, actions[sp->action], "failure"));
            continue;
        }
        breaker_result(&session_breaker, 1);
        int outcome = 0;
        for (int i = 0; i < 3 && sp->paths[i] && outcome >= 0; i++) {
            char path[160];
            snprintf(path, sizeof path, "%s%08X", sp->paths[i], next_rand(&seed));
            int r = api_request(path, sp->method, sp->cacheable, &seed);
            outcome = r == -2 ? -2 : r < 0 ? -1 : outcome;
        }
        const char *result = outcome == 0 ? "success" : outcome == -2 ? "skipped" : "failure";
        sonde_counter_inc(sonde_family_counter(M.actions, actions[sp->action], result));
        /* A sent message changes the inbox. */
        if (sp->action == 2 && outcome == 0)
            cache_invalidate(3);
        sim_sleep(outcome == -2 ? 20 : 1 + (double)(next_rand(&seed) % 20) / 10);
    }
    return NULL;
}

/* ---- SessionManager ---- */

/* ensure_session_ready(): the session exists, and, with metrics enabled,
 * the exporter runs (sonde's server threads). */
static int ensure_session_ready(const char *listen)
{
    pthread_mutex_lock(&session_lock);
    session_started = mono_now();
    pthread_mutex_unlock(&session_lock);
    if (!settings.enable_prometheus_metrics)
        return 0;
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    char def[32];
    snprintf(def, sizeof def, ":%ld", settings.metrics_export_port);
    so.listen = listen ? listen : def;
    so.service_name = "ancestry";
    int rc = sonde_start(&so);
    if (rc) {
        fprintf(stderr, PROG ": cannot start the metrics exporter on %s: %s (%s)\n", so.listen,
                sonde_strerror(rc), sonde_last_error());
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: " PROG " [options]\n"
                 "  --web.listen-address HOST:PORT  the metrics exporter's address (default\n"
                 "                          :$METRICS_EXPORT_PORT, i.e. :9000; port 0 picks one)\n"
                 "  --duration SECONDS      stop after SECONDS (default: until SIGINT/SIGTERM)\n"
                 "Environment: PROMETHEUS_METRICS_ENABLED (false: no metrics, no exporter),\n"
                 "METRICS_EXPORT_PORT (9000), METRICS_NAMESPACE (ancestry).\n"
                 "Prints \"listening on HOST:PORT\" or \"metrics disabled\" on stdout.\n");
}

int main(int argc, char **argv)
{
    const char *listen = NULL;
    double duration = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--web.listen-address") && v) {
            listen = v;
            i++;
        } else if (!strcmp(a, "--duration") && v) {
            char *end;
            errno = 0;
            duration = strtod(v, &end);
            if (errno || *end || end == v || !(duration >= 0) || !isfinite(duration)) {
                fprintf(stderr, PROG ": --duration needs a non-negative number, got \"%s\"\n", v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, PROG ": unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    load_settings();
    /* Metrics off (the default): sonde is switched off before its first
     * use, so every metric call below does nothing and no thread or port
     * is opened. */
    if (!settings.enable_prometheus_metrics && sonde_disable() != SONDE_OK) {
        fprintf(stderr, PROG ": cannot switch sonde off\n");
        return 1;
    }
    lg = sonde_logger_get("ancestry.core");
    register_metrics();
    api_breaker.g = sonde_family_gauge(M.breaker_state, "api");
    api_breaker.trips = sonde_family_counter(M.breaker_trips, "api");
    session_breaker.g = sonde_family_gauge(M.breaker_state, "session");
    session_breaker.trips = sonde_family_counter(M.breaker_trips, "session");

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    t_start = mono_now();
    if (ensure_session_ready(listen))
        return 1;
    if (settings.enable_prometheus_metrics) {
        char addr[96] = "";
        sonde_listen_address(addr, sizeof addr);
        printf("listening on %s\n", addr);
    } else {
        printf("metrics disabled\n");
    }
    fflush(stdout);

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, action_worker, (void *)&specs[i]);
    double last_proactive = sim_now();
    while (!atomic_load(&stop_flag)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        /* Proactive refresh every 300 simulated seconds (3 s). */
        if (sim_now() - last_proactive >= 300) {
            last_proactive = sim_now();
            session_refresh("proactive", 0);
        }
        if (duration > 0 && mono_now() - t_start >= duration)
            break;
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    sonde_stop();
    sonde_log_shutdown(2000);
    return 0;
}
