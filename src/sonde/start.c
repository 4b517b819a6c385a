/*
 * The composition root: sonde_start / sonde_stop. The only place that
 * knows every component: it resolves options (explicit value, else
 * environment, else default), starts the runtime worker, the served health
 * set's scheduler and the error tracker, registers the routes that read
 * other components, and starts the HTTP server. One instance per process.
 */
#include <sonde/log.h>
#include <sonde/runtime.h>

#include "errors/errors_int.h"
#include "errors/silences.h"
#include "http/dashboard.h"
#include "http/views.h"
#include "http/server.h"
#include "core/text.h"
#include "core/worker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool running;
    sonde__server *server;
    sonde_health *health;
    sonde_errors *errors;
    sonde__history *history;
    sonde_remote_write *rw;
} g;

void sonde__errors_set_served(sonde_errors *t, const char *address, bool tls);
void sonde__errors_set_service(sonde_errors *t, const char *name);

void sonde_start_opts_init(sonde_start_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

const char *sonde_last_error_message(void)
{
    return sonde_last_error();
}

static const char *env_or(const char *explicit_value, const char *env, const char *def)
{
    if (explicit_value)
        return explicit_value;
    const char *e = getenv(env);
    return e ? e : def;
}

extern char *program_invocation_short_name;

/* ---- routes: every route that reads another component is added here ---- */

/* Which routes sonde_start registered (a path someone else took is theirs:
 * left alone, and not removed at stop). Under start_lock. */
static bool own_errors, own_alerts, own_performance, own_silences;

static void routes_add(sonde_errors *et)
{
    unsigned fl = SONDE__ROUTE_SENSITIVE | SONDE__ROUTE_RATE_LIMITED;
    own_errors =
        sonde__http_route_add("/errors", "errors", fl, sonde__http_errors_handler, et) == SONDE_OK;
    own_alerts =
        sonde__http_route_add("/alerts", "alerts", fl, sonde__http_alerts_handler, et) == SONDE_OK;
    own_performance = sonde__http_route_add("/performance", "performance", fl,
                                            sonde__http_performance_handler, NULL) == SONDE_OK;
    sonde_route_opts ro;
    sonde_route_opts_init(&ro);
    ro.path = "/alerts/silences";
    ro.prefix = 1;
    ro.methods = SONDE_HTTP_GET | SONDE_HTTP_POST | SONDE_HTTP_DELETE;
    ro.access = SONDE_ACCESS_SENSITIVE;
    ro.max_body_bytes = SONDE__SILENCE_MAX_BODY;
    ro.owner = "sonde";
    ro.metric_label = "silences";
    own_silences = sonde_route_add(&ro, sonde__http_silences_handler, et) == SONDE_OK;
}

static void routes_remove(void)
{
    if (own_errors)
        sonde__http_route_remove("/errors");
    if (own_alerts)
        sonde__http_route_remove("/alerts");
    if (own_performance)
        sonde__http_route_remove("/performance");
    if (own_silences)
        sonde_route_remove("/alerts/silences", 0);
    own_errors = own_alerts = own_performance = own_silences = false;
}

/* ---- remote write from the options or the environment ---- */

#define RW_ENV_MAX_LABELS 32

typedef struct rw_env {
    sonde_remote_write_opts o;
    char *labels; /* copy of $SONDE_REMOTE_WRITE_EXTERNAL_LABELS, split in place */
    const char *kv[2 * RW_ENV_MAX_LABELS];
} rw_env;

/* Fill e->o from the environment. Returns 1 when a writer is configured,
 * 0 when none, SONDE_EINVAL (reason set) or SONDE_ENOMEM. */
static int remote_write_env(rw_env *e)
{
    memset(e, 0, sizeof *e);
    sonde_remote_write_opts_init(&e->o);
    const char *url = getenv("SONDE_REMOTE_WRITE_URL");
    if (!url || !*url)
        return 0;
    e->o.url = url;
    const char *iv = getenv("SONDE_REMOTE_WRITE_INTERVAL");
    if (iv && *iv && sonde__parse_duration(iv, &e->o.interval_seconds) != SONDE_OK) {
        sonde__set_error("SONDE_REMOTE_WRITE_INTERVAL: not a duration like 15s or 1m: '%.40s'", iv);
        return SONDE_EINVAL;
    }
    const char *tf = getenv("SONDE_REMOTE_WRITE_BEARER_TOKEN_FILE");
    if (tf && *tf)
        e->o.bearer_token_file = tf;
    const char *qd = getenv("SONDE_REMOTE_WRITE_QUEUE_DIR");
    if (qd && *qd)
        e->o.queue_dir = qd;
    const char *el = getenv("SONDE_REMOTE_WRITE_EXTERNAL_LABELS");
    if (el && *el) {
        if (!(e->labels = sonde__strdup(el)))
            return SONDE_ENOMEM;
        size_t n = 0;
        for (char *item = e->labels, *next; item; item = next) {
            next = strchr(item, ',');
            if (next)
                *next++ = '\0';
            if (!*item)
                continue;
            char *eq = strchr(item, '=');
            if (!eq || eq == item || n == RW_ENV_MAX_LABELS) {
                sonde__set_error("SONDE_REMOTE_WRITE_EXTERNAL_LABELS: expected at most %d "
                                 "name=value pairs separated by commas",
                                 RW_ENV_MAX_LABELS);
                return SONDE_EINVAL;
            }
            *eq = '\0';
            e->kv[2 * n] = item;
            e->kv[2 * n + 1] = eq + 1;
            n++;
        }
        e->o.external_labels = e->kv;
        e->o.external_label_count = n;
    }
    return 1;
}

/* Create the configured writer (not started) into *out (NULL when none). */
static int remote_write_create(const sonde_start_opts *o, sonde_remote_write **out)
{
    *out = NULL;
    rw_env e;
    sonde_remote_write_opts ro;
    int rc = SONDE_OK;
    if (o->remote_write) {
        ro = *o->remote_write;
        memset(&e, 0, sizeof e);
    } else {
        rc = remote_write_env(&e);
        ro = e.o;
        if (rc <= 0) {
            sonde__free(e.labels);
            return rc;
        }
    }
    if (!ro.registry)
        ro.registry = o->registry;
    rc = sonde_remote_write_create(&ro, out);
    sonde__free(e.labels);
    if (rc != SONDE_OK) {
        char why[200];
        snprintf(why, sizeof why, "%s", sonde_last_error());
        sonde__set_error("sonde_start: remote write%s: %s",
                         o->remote_write ? "" : " from the environment", why);
        return rc;
    }
    if (*out)
        sonde__diag(SONDE_LOG_INFO, "remote_write", "remote write to %s every %gs",
                    sonde_remote_write_name(*out),
                    ro.interval_seconds > 0 ? ro.interval_seconds : 15.0);
    return SONDE_OK;
}

int sonde_start(const sonde_start_opts *in)
{
    sonde__clear_error();
    if (!sonde_enabled())
        return SONDE_OK;
    sonde_start_opts o;
    if (in)
        o = *in;
    else
        sonde_start_opts_init(&o);

    o.listen = env_or(o.listen, "SONDE_LISTEN", ":9464");
    o.api_key = env_or(o.api_key, "SONDE_API_KEY", NULL);
    o.route_prefix = env_or(o.route_prefix, "SONDE_ROUTE_PREFIX", "");
    o.service_name = env_or(o.service_name, "SONDE_SERVICE_NAME", program_invocation_short_name);
    o.service_version = env_or(o.service_version, "SONDE_SERVICE_VERSION", "");
    o.service_build = env_or(o.service_build, "SONDE_SERVICE_BUILD", "");
    o.tls_cert_file = env_or(o.tls_cert_file, "SONDE_TLS_CERT_FILE", NULL);
    o.tls_key_file = env_or(o.tls_key_file, "SONDE_TLS_KEY_FILE", NULL);
    if (o.rate_limit_per_second == 0) {
        const char *e = getenv("SONDE_RATE_LIMIT");
        char *end = NULL;
        double v = e ? sonde__strtod(e, &end) : 0;
        o.rate_limit_per_second = (e && end != e && isfinite(v) && v != 0) ? v : 50;
    }
    if (o.rate_limit_burst <= 0) {
        o.rate_limit_burst = 2 * o.rate_limit_per_second;
        if (o.rate_limit_burst < 10)
            o.rate_limit_burst = 10;
    }
    if (o.threads == 0)
        o.threads = 2;
    if (o.max_connections == 0)
        o.max_connections = 256;
    if (o.max_connections_per_client == 0)
        o.max_connections_per_client = 32;
    if (o.max_header_bytes == 0)
        o.max_header_bytes = 16384;
    if (o.idle_timeout_seconds <= 0)
        o.idle_timeout_seconds = 10;
    if (o.request_timeout_seconds <= 0)
        o.request_timeout_seconds = 30;
    if (o.max_response_bytes == 0)
        o.max_response_bytes = (size_t)64 << 20;
    if (o.threads > 64 || o.max_header_bytes < 2048 || o.max_header_bytes > (1u << 20) ||
        !isfinite(o.idle_timeout_seconds) || !isfinite(o.request_timeout_seconds) ||
        o.idle_timeout_seconds > 86400 || o.request_timeout_seconds > 86400 ||
        isnan(o.rate_limit_per_second) || isnan(o.rate_limit_burst)) {
        sonde__set_error("sonde_start: an option is out of bounds (threads <= 64, "
                         "max_header_bytes 2048..1048576, timeouts <= 86400 s)");
        return SONDE_EINVAL;
    }

    pthread_mutex_lock(&start_lock);
    if (g.running) {
        pthread_mutex_unlock(&start_lock);
        sonde__set_error("sonde_start: already started");
        return SONDE_ESTATE;
    }
    int rc = sonde__runtime_start();
    if (rc) {
        pthread_mutex_unlock(&start_lock);
        sonde__set_error("sonde_start: cannot start the runtime worker");
        return rc;
    }
    sonde_remote_write *rw = NULL;
    rc = remote_write_create(&o, &rw);
    if (rc) {
        sonde__runtime_stop();
        pthread_mutex_unlock(&start_lock);
        return rc;
    }
    sonde_health *h = o.health ? o.health : sonde_health_default();
    rc = sonde_health_start(h);
    if (rc) {
        sonde_remote_write_destroy(rw);
        sonde__runtime_stop();
        pthread_mutex_unlock(&start_lock);
        return rc;
    }
    sonde_errors *et = o.errors ? o.errors : sonde_errors_default();
    sonde__errors_set_service(et, o.service_name);
    rc = et ? sonde_errors_start(et) : SONDE_ENOMEM;
    if (rc) {
        sonde_health_stop(h);
        sonde_remote_write_destroy(rw);
        sonde__runtime_stop();
        pthread_mutex_unlock(&start_lock);
        return rc;
    }
    bool serve =
        !(strcmp(o.listen, "off") == 0 || strcmp(o.listen, "none") == 0 || o.listen[0] == '\0');
    sonde__server *srv = NULL;
    if (serve) {
        o.health = h;
        /* Extension routes are snapshotted by the server at creation. */
        routes_add(et);
        /* The dashboard's history is best effort: without memory for it the
         * page still loads and shows the other documents. */
        if (sonde__history_create(NULL, sonde__dashboard_interval_ms(), &g.history) != SONDE_OK)
            g.history = NULL;
        sonde__dashboard_routes_add(g.history);
        rc = sonde__server_create(&o, &srv);
        if (rc) {
            sonde__dashboard_routes_remove();
            sonde__history_destroy(g.history);
            g.history = NULL;
            routes_remove();
            sonde_errors_stop(et);
            sonde_health_stop(h);
            sonde_remote_write_destroy(rw);
            sonde__runtime_stop();
            pthread_mutex_unlock(&start_lock);
            return rc;
        }
        sonde__errors_set_served(et, sonde__server_address(srv), o.tls_cert_file != NULL);
    }
    if (rw && (rc = sonde_remote_write_start(rw)) != SONDE_OK) {
        sonde__set_error("sonde_start: cannot start remote write");
        sonde_remote_write_destroy(rw);
        rw = NULL;
        sonde__server_destroy(srv);
        if (srv) {
            sonde__dashboard_routes_remove();
            routes_remove();
        }
        sonde_errors_stop(et);
        sonde__history_destroy(g.history);
        g.history = NULL;
        sonde_health_stop(h);
        sonde__runtime_stop();
        pthread_mutex_unlock(&start_lock);
        return rc;
    }
    g.rw = rw;
    g.running = true;
    g.server = srv;
    g.health = h;
    g.errors = et;
    pthread_mutex_unlock(&start_lock);
    return SONDE_OK;
}

void sonde_stop(void)
{
    pthread_mutex_lock(&start_lock);
    if (!g.running) {
        pthread_mutex_unlock(&start_lock);
        return;
    }
    /* First, while everything it samples is still there: one last
     * sampling, then up to its flush timeout to send what is queued. */
    if (g.rw) {
        sonde_remote_write_sample_now(g.rw);
        sonde_remote_write_destroy(g.rw);
        g.rw = NULL;
    }
    sonde__server_destroy(g.server);
    if (g.server) {
        sonde__dashboard_routes_remove();
        routes_remove();
        sonde__errors_set_served(g.errors, NULL, false);
    }
    /* Before the worker's last reference goes: the tracker's final
     * delivery attempt is bounded by its stop timeout. */
    sonde_errors_stop(g.errors);
    sonde__history_destroy(g.history);
    g.history = NULL;
    sonde_health_stop(g.health);
    sonde__runtime_stop();
    g.server = NULL;
    g.health = NULL;
    g.errors = NULL;
    g.running = false;
    pthread_mutex_unlock(&start_lock);
    /* Last: what the threads above logged while stopping is written too.
     * Bounded; the writer thread stops and logging continues
     * synchronously. */
    sonde_log_shutdown(2000);
}

int sonde_running(void)
{
    pthread_mutex_lock(&start_lock);
    int r = g.running;
    pthread_mutex_unlock(&start_lock);
    return r;
}

int sonde_listen_port(void)
{
    pthread_mutex_lock(&start_lock);
    int p = sonde__server_port(g.server);
    pthread_mutex_unlock(&start_lock);
    return p;
}

int sonde_listen_address(char *out, size_t n)
{
    if (!out || n == 0)
        return SONDE_EINVAL;
    pthread_mutex_lock(&start_lock);
    int rc = SONDE_ESTATE;
    if (g.server) {
        snprintf(out, n, "%s", sonde__server_address(g.server));
        rc = SONDE_OK;
    }
    pthread_mutex_unlock(&start_lock);
    if (rc)
        out[0] = '\0';
    return rc;
}
