/*
 * The embedded monitoring server on libmicrohttpd.
 *
 * Threading: MHD runs `threads` internal threads, each with its own epoll
 * loop (never select(), which breaks on descriptors above 1024). Sockets are
 * non-blocking, so a slow client only ever occupies its own connection; the
 * handlers themselves never block (health endpoints read cached results;
 * /metrics renders the registry in one pass).
 *
 * Limits: total and per-client connection caps, a bounded request head, an
 * idle timeout (MHD), and a total per-request deadline enforced by a timer
 * on the runtime worker that shuts down the sockets of connections whose
 * current request has lasted too long (slowloris, slow readers). Requests
 * with a body are refused. Health and JSON endpoints have a per-client
 * token bucket.
 *
 * Connection bookkeeping: every connection gets a `conn` (socket context)
 * linked into s->conns under s->conn_lock. MHD reports a connection closed
 * before it closes the descriptor, and the sweeper only calls shutdown()
 * while holding conn_lock on a connection still in the list, so it never
 * touches a descriptor that was closed and reused.
 */
#include "http/server.h"
#include <sonde/log.h>

#include "http/routes.h"

#include "health/health.h"
#include "host/host.h"
#include "core/worker.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUERY_MAX 4096
#define MAX_NAMES 256
#define LIVENESS_MAX_AGE_NS (5ull * 1000000000u)
#define SWEEP_MS 250
#define GZIP_MIN_BYTES 512

/* ---- routes ---- */

enum {
    H_INDEX,
    H_METRICS,
    H_METRICS_JSON,
    H_HEALTH,
    H_LIVE,
    H_READY,
    H_DETAILED,
    H_INFO,
    H_STATUS,
    H_NOT_FOUND,
    H_BUILTIN_COUNT
};

typedef struct route {
    char *path;
    const char *label;
    unsigned flags;
    int builtin; /* H_* or -1 for an extension */
    sonde__http_handler fn;
    void *ud;
} route;

static const struct {
    const char *path;
    int h;
} builtin_routes[] = {
    {"/", H_INDEX},
    {"/metrics", H_METRICS},
    {"/metrics/json", H_METRICS_JSON},
    {"/health", H_HEALTH},
    {"/health/", H_HEALTH},
    {"/health/live", H_LIVE},
    {"/health/liveness", H_LIVE},
    {"/healthz", H_LIVE},
    {"/livez", H_LIVE},
    {"/health/ready", H_READY},
    {"/health/readiness", H_READY},
    {"/readyz", H_READY},
    {"/health/detailed", H_DETAILED},
    {"/info", H_INFO},
    {"/status", H_STATUS},
};

static const char *const handler_labels[H_BUILTIN_COUNT] = {
    "index", "metrics",  "metrics_json", "health", "live",
    "ready", "detailed", "info",         "status", "not_found"};

static unsigned builtin_flags(int h)
{
    switch (h) {
    case H_METRICS_JSON:
    case H_DETAILED:
    case H_INFO:
        return SONDE__ROUTE_SENSITIVE | SONDE__ROUTE_RATE_LIMITED;
    case H_INDEX:
    case H_HEALTH:
    case H_LIVE:
    case H_READY:
        return SONDE__ROUTE_RATE_LIMITED;
    default:
        return 0;
    }
}

/* Extension routes, registered by other components before start. */
static route ext_routes[32];
static size_t ext_count;
static pthread_mutex_t ext_lock = PTHREAD_MUTEX_INITIALIZER;

const char *sonde__http_builtin_owner(const char *path)
{
    for (size_t i = 0; i < SONDE_ARRAY_LEN(builtin_routes); i++)
        if (strcmp(builtin_routes[i].path, path) == 0)
            return "sonde";
    const char *owner = NULL;
    pthread_mutex_lock(&ext_lock);
    for (size_t i = 0; i < ext_count; i++)
        if (strcmp(ext_routes[i].path, path) == 0)
            owner = ext_routes[i].label; /* static text */
    pthread_mutex_unlock(&ext_lock);
    return owner ? "sonde" : NULL;
}

int sonde__http_route_add(const char *path, const char *label, unsigned flags,
                          sonde__http_handler fn, void *ud)
{
    if (!path || path[0] != '/' || !label || !fn)
        return SONDE_EINVAL;
    for (size_t i = 0; i < SONDE_ARRAY_LEN(builtin_routes); i++)
        if (strcmp(builtin_routes[i].path, path) == 0)
            return SONDE_ECONFLICT;
    pthread_mutex_lock(&ext_lock);
    int rc = SONDE_OK;
    for (size_t i = 0; i < ext_count; i++)
        if (strcmp(ext_routes[i].path, path) == 0)
            rc = SONDE_ECONFLICT;
    if (!rc && ext_count >= SONDE_ARRAY_LEN(ext_routes))
        rc = SONDE_ELIMIT;
    if (!rc) {
        char *p = sonde__strdup(path);
        if (!p)
            rc = SONDE_ENOMEM;
        else
            ext_routes[ext_count++] = (route){p, label, flags, -1, fn, ud};
    }
    pthread_mutex_unlock(&ext_lock);
    return rc;
}

void sonde__http_route_remove(const char *path)
{
    pthread_mutex_lock(&ext_lock);
    for (size_t i = 0; i < ext_count; i++) {
        if (strcmp(ext_routes[i].path, path) == 0) {
            sonde__free(ext_routes[i].path);
            ext_routes[i] = ext_routes[--ext_count];
            break;
        }
    }
    pthread_mutex_unlock(&ext_lock);
}

/* ---- server state ---- */

typedef struct conn {
    struct conn *prev, *next;
    int fd;
    /* Start of the current request (or of the wait for the next one). The
     * MHD thread writes it, the sweeper reads it. */
    _Atomic uint64_t start_ns;
    bool killed;          /* under conn_lock */
    size_t qlen;          /* raw query of the current request */
    bool qover;           /* query longer than QUERY_MAX */
    bool headers_seen;    /* the handler's first call for this request happened */
    bool framing_checked; /* the request's framing was checked (first call) */
    /* Body of a request to an application route, read up to body_max;
     * body_over when more arrived (413). app_checked: access and rate
     * limit passed on the first call, the body is being read. */
    bool app_checked, body_over;
    size_t body_max;
    sonde_buf body;
    char query[QUERY_MAX];
} conn;

/* Status codes whose counters are cached per handler. */
static const int cached_codes[] = {200, 400, 401, 403, 404, 405, 413, 414, 429, 500, 503};
#define NCODES SONDE_ARRAY_LEN(cached_codes)

enum { R_RATE, R_UNAUTH, R_FORBIDDEN, R_BODY, R_BADREQ, R_DEADLINE, R_TOOBIG, R_COUNT };
static const char *const reject_labels[R_COUNT] = {
    "rate_limited", "unauthorized", "forbidden",         "body",
    "bad_request",  "deadline",     "response_too_large"};

struct sonde__server {
    struct MHD_Daemon *d;
    sonde_registry *reg;
    sonde_health *health;
    char *prefix;
    size_t prefix_len;
    char *api_key;
    size_t api_key_len;
    char *basic_user, *basic_pass;
    bool basic_hashed;
    pthread_mutex_t basic_lock;
    char *basic_cache;        /* last password that verified against the hash */
    char *tls_cert, *tls_key; /* PEM contents, kept for the daemon's life */
    char *service_name, *service_version, *service_build, *disk_path;
    char **info;
    size_t info_count;
    sonde_start_opts cfg; /* numeric limits, resolved */
    sonde__ratelimit *rl;
    double start_wall;

    /* routes: builtins then extensions snapshot */
    route *routes;
    size_t nroutes;

    pthread_mutex_t conn_lock;
    conn *conns;
    uint64_t sweep_timer;
    uint64_t deadline_ns;

    int port;
    char address[80];

    /* self-metrics; NULL when registration failed */
    sonde_family *req_total, *req_duration, *rejected;
    sonde_histogram *scrape_duration;
    sonde_gauge *scrape_bytes;
    _Atomic(sonde_counter *) req_cache[64][NCODES];
    sonde_histogram *dur_cache[64];
    sonde_counter *reject_cache[R_COUNT];
    /* Size of the last exposition per format: the next one reserves that
     * much at once instead of growing through a dozen reallocations. */
    _Atomic size_t size_hint[6];
};

/* ---- self-metrics ---- */

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

static void register_metrics(sonde__server *s)
{
    sonde_metric_opts o;
    const char *hc[2] = {"handler", "code"};
    sonde_metric_opts_init(&o);
    o.name = "sonde_http_requests_total";
    o.help = "HTTP requests answered by the sonde server, by handler and status code";
    o.label_names = hc;
    o.label_count = 2;
    o.max_series = 1000;
    if (sonde_family_create(s->reg, SONDE_COUNTER, &o, &s->req_total) != SONDE_OK)
        s->req_total = NULL;

    sonde_metric_opts_init(&o);
    o.name = "sonde_http_request_duration_seconds";
    o.help = "Time to produce a response of the sonde server, by handler";
    o.unit = "seconds";
    o.label_names = hc;
    o.label_count = 1;
    o.buckets = latency_buckets;
    o.bucket_count = SONDE_ARRAY_LEN(latency_buckets);
    if (sonde_family_create(s->reg, SONDE_HISTOGRAM, &o, &s->req_duration) != SONDE_OK)
        s->req_duration = NULL;

    const char *reason[1] = {"reason"};
    sonde_metric_opts_init(&o);
    o.name = "sonde_http_rejected_total";
    o.help = "Requests or connections refused by the sonde server, by reason";
    o.label_names = reason;
    o.label_count = 1;
    if (sonde_family_create(s->reg, SONDE_COUNTER, &o, &s->rejected) != SONDE_OK)
        s->rejected = NULL;

    sonde_family *f = NULL;
    sonde_metric_opts_init(&o);
    o.name = "sonde_scrape_duration_seconds";
    o.help = "Time to render the /metrics exposition";
    o.unit = "seconds";
    o.buckets = latency_buckets;
    o.bucket_count = SONDE_ARRAY_LEN(latency_buckets);
    if (sonde_family_create(s->reg, SONDE_HISTOGRAM, &o, &f) == SONDE_OK)
        s->scrape_duration = sonde_family_as_histogram(f);

    f = NULL;
    sonde_metric_opts_init(&o);
    o.name = "sonde_scrape_bytes";
    o.help = "Size of the last /metrics exposition before compression";
    o.unit = "bytes";
    if (sonde_family_create(s->reg, SONDE_GAUGE, &o, &f) == SONDE_OK)
        s->scrape_bytes = sonde_family_as_gauge(f);

    for (size_t i = 0; i < s->nroutes && i < SONDE_ARRAY_LEN(s->dur_cache); i++)
        if (s->req_duration)
            s->dur_cache[i] = sonde_family_histogram(s->req_duration, s->routes[i].label);
    if (s->rejected)
        for (int r = 0; r < R_COUNT; r++)
            s->reject_cache[r] = sonde_family_counter(s->rejected, reject_labels[r]);
}

static void count_reject(sonde__server *s, int reason)
{
    if (s->reject_cache[reason])
        sonde_counter_inc(s->reject_cache[reason]);
}

/* An application route: by its label, without the per-route caches. */
static void count_request_label(sonde__server *s, const char *label, int code, double seconds)
{
    char code_s[8];
    snprintf(code_s, sizeof code_s, "%d", code);
    if (s->req_total)
        sonde_counter_inc(sonde_family_counter(s->req_total, label, code_s));
    if (s->req_duration)
        sonde_histogram_observe(sonde_family_histogram(s->req_duration, label), seconds);
}

/* Route index ri (position in s->routes, or nroutes for not-found). */
static void count_request(sonde__server *s, size_t ri, int code, double seconds)
{
    const char *label = ri < s->nroutes ? s->routes[ri].label : handler_labels[H_NOT_FOUND];
    size_t slot = ri < s->nroutes ? ri : s->nroutes;
    if (s->req_total) {
        sonde_counter *c = NULL;
        size_t ci = NCODES;
        for (size_t i = 0; i < NCODES; i++)
            if (cached_codes[i] == code)
                ci = i;
        if (ci < NCODES && slot < SONDE_ARRAY_LEN(s->req_cache))
            c = atomic_load_explicit(&s->req_cache[slot][ci], memory_order_acquire);
        if (!c) {
            char code_s[8];
            snprintf(code_s, sizeof code_s, "%d", code);
            c = sonde_family_counter(s->req_total, label, code_s);
            if (ci < NCODES && slot < SONDE_ARRAY_LEN(s->req_cache))
                atomic_store_explicit(&s->req_cache[slot][ci], c, memory_order_release);
        }
        sonde_counter_inc(c);
    }
    if (s->req_duration) {
        sonde_histogram *h = slot < SONDE_ARRAY_LEN(s->dur_cache) ? s->dur_cache[slot] : NULL;
        if (!h)
            h = sonde_family_histogram(s->req_duration, label);
        sonde_histogram_observe(h, seconds);
    }
}

/* ---- connections and deadlines ---- */

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    sonde__server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *c = sonde__malloc(sizeof *c);
        if (!c) {
            *socket_context = NULL;
            return;
        }
        c->prev = NULL;
        c->killed = false;
        c->qlen = 0;
        c->qover = false;
        c->app_checked = c->body_over = false;
        c->body_max = 0;
        c->body = (sonde_buf){0};
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        atomic_init(&c->start_ns, sonde__now_mono_ns());
        pthread_mutex_lock(&s->conn_lock);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->conn_lock);
        *socket_context = c;
    } else {
        conn *c = *socket_context;
        if (!c)
            return;
        pthread_mutex_lock(&s->conn_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&s->conn_lock);
        sonde_buf_free(&c->body);
        sonde__free(c);
        *socket_context = NULL;
    }
}

/* Runs on the runtime worker: end connections past the request deadline. */
static void sweep(void *ud, uint64_t now)
{
    sonde__server *s = ud;
    pthread_mutex_lock(&s->conn_lock);
    for (conn *c = s->conns; c; c = c->next) {
        uint64_t start = atomic_load_explicit(&c->start_ns, memory_order_relaxed);
        if (!c->killed && c->fd >= 0 && now > start && now - start > s->deadline_ns) {
            /* The descriptor is still MHD's (see the file comment); shutdown
             * makes its next read or write fail and MHD closes it. */
            shutdown(c->fd, SHUT_RDWR);
            c->killed = true;
            count_reject(s, R_DEADLINE);
        }
    }
    pthread_mutex_unlock(&s->conn_lock);
}

/* Called by MHD with the raw request target, before any parsing: keep the
 * query string (MHD would decode and merge it) and restart the deadline. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    SONDE_UNUSED(cls);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn *c = ci ? (conn *)ci->socket_context : NULL;
    if (!c)
        return NULL;
    const char *q = uri ? strchr(uri, '?') : NULL;
    c->qlen = 0;
    c->qover = false;
    c->headers_seen = false;
    c->framing_checked = false;
    c->app_checked = c->body_over = false;
    c->body_max = 0;
    sonde_buf_free(&c->body);
    if (q) {
        size_t n = strlen(q + 1);
        if (n >= QUERY_MAX) {
            c->qover = true;
        } else {
            memcpy(c->query, q + 1, n);
            c->qlen = n;
        }
    }
    c->query[c->qlen] = '\0';
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    SONDE_UNUSED(cls);
    SONDE_UNUSED(mc);
    SONDE_UNUSED(toe);
    conn *c = *con_cls;
    /* The next request's deadline counts from the end of this one. */
    if (c)
        atomic_store_explicit(&c->start_ns, sonde__now_mono_ns(), memory_order_relaxed);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    SONDE_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sonde__diag(SONDE_LOG_WARNING, "http", "%s", msg);
}

/* ---- responses ---- */

static int json_error(sonde__http_response *rs, int status, const char *msg)
{
    rs->status = status;
    rs->content_type = "application/json";
    sonde_buf_reset(&rs->body);
    int rc = sonde__buf_puts(&rs->body, "{\"error\":");
    rc = rc ? rc : sonde__buf_json_str(&rs->body, msg);
    rc = rc ? rc : sonde__buf_printf(&rs->body, ",\"status\":%d}\n", status);
    return rc;
}

static enum MHD_Result send_response(sonde__server *s, struct MHD_Connection *mc, size_t ri,
                                     sonde__http_response *rs, uint64_t t0,
                                     const char *www_authenticate)
{
    sonde_buf out = rs->body;
    rs->body = (sonde_buf){0};
    const char *encoding = NULL;
    if (rs->gzip_ok && out.len >= GZIP_MIN_BYTES) {
        const char *ae =
            MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
        if (ae && sonde__http_accepts_gzip(ae, strlen(ae))) {
            sonde_buf z = {0};
            if (sonde__gzip(out.data, out.len, 1, &z) == SONDE_OK) {
                sonde_buf_free(&out);
                out = z;
                encoding = "gzip";
            } else {
                sonde_buf_free(&z);
            }
        }
    }
    struct MHD_Response *r;
    if (out.len == 0 || !out.data) {
        sonde_buf_free(&out);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer_with_free_callback(out.len, out.data, free);
        if (!r)
            sonde_buf_free(&out);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->content_type ? rs->content_type : "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (rs->gzip_ok)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (encoding)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, encoding);
    if (rs->retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, rs->retry_after);
    if (www_authenticate)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_authenticate);
    if (rs->status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs->allow ? rs->allow : "GET, HEAD");
    if (rs->request_id)
        MHD_add_response_header(r, "X-Request-ID", rs->request_id);
    if (rs->location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, rs->location);
    if (rs->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    double dt = (double)(sonde__now_mono_ns() - t0) / 1e9;
    if (rs->metric_label)
        count_request_label(s, rs->metric_label, rs->status, dt);
    else
        count_request(s, ri, rs->status, dt);
    return ret;
}

/* ---- authentication ---- */

static bool basic_password_ok(sonde__server *s, const char *pass, size_t pl)
{
    if (!s->basic_hashed)
        return sonde__ct_equal(pass, pl, s->basic_pass, strlen(s->basic_pass));
    /* Hashes are slow on purpose; a password that verified once is cached
     * (in memory only) so a scraper's every request does not pay for it. */
    bool ok = false;
    pthread_mutex_lock(&s->basic_lock);
    if (s->basic_cache)
        ok = sonde__ct_equal(pass, pl, s->basic_cache, strlen(s->basic_cache));
    pthread_mutex_unlock(&s->basic_lock);
    if (ok)
        return true;
    char *cand = sonde__strndup(pass, pl);
    struct crypt_data *cd = sonde__calloc(1, sizeof *cd);
    if (cand && cd) {
        const char *h = crypt_r(cand, s->basic_pass, cd);
        ok =
            h && h[0] != '*' && sonde__ct_equal(h, strlen(h), s->basic_pass, strlen(s->basic_pass));
    }
    if (ok) {
        pthread_mutex_lock(&s->basic_lock);
        sonde__free(s->basic_cache);
        s->basic_cache = cand;
        cand = NULL;
        pthread_mutex_unlock(&s->basic_lock);
    }
    if (cand) {
        memset(cand, 0, pl);
        sonde__free(cand);
    }
    sonde__free(cd);
    return ok;
}

typedef enum { AUTH_OK, AUTH_BEARER_CHALLENGE, AUTH_BASIC_CHALLENGE, AUTH_FORBIDDEN } auth_result;

static auth_result authenticate(sonde__server *s, struct MHD_Connection *mc, unsigned flags,
                                const struct sockaddr *client)
{
    bool sensitive = flags & SONDE__ROUTE_SENSITIVE;
    if (!sensitive && !s->basic_user)
        return AUTH_OK;
    const char *authz =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (sensitive && s->api_key) {
        if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
            const char *tok = authz + 7;
            while (*tok == ' ')
                tok++;
            size_t tl = strlen(tok);
            while (tl && tok[tl - 1] == ' ')
                tl--;
            if (sonde__ct_equal(tok, tl, s->api_key, s->api_key_len))
                return AUTH_OK;
        }
        return AUTH_BEARER_CHALLENGE;
    }
    if (s->basic_user) {
        if (authz && strncasecmp(authz, "Basic ", 6) == 0) {
            const char *b = authz + 6;
            while (*b == ' ')
                b++;
            unsigned char dec[512];
            ssize_t dl = sonde__base64_decode(b, strlen(b), dec, sizeof dec - 1);
            if (dl > 0) {
                const char *colon = memchr(dec, ':', (size_t)dl);
                if (colon) {
                    size_t ul = (size_t)(colon - (const char *)dec);
                    bool user_ok = sonde__ct_equal((const char *)dec, ul, s->basic_user,
                                                   strlen(s->basic_user));
                    bool pass_ok = basic_password_ok(s, colon + 1, (size_t)dl - ul - 1);
                    memset(dec, 0, sizeof dec);
                    if (user_ok && pass_ok)
                        return AUTH_OK;
                }
            }
        }
        return AUTH_BASIC_CHALLENGE;
    }
    /* Sensitive, and no credentials configured at all: loopback only. */
    return sonde__addr_is_loopback(client) ? AUTH_OK : AUTH_FORBIDDEN;
}

/* ---- handlers ---- */

static void handle_metrics(sonde__server *s, const sonde__http_request *rq,
                           sonde__http_response *rs, sonde_format fmt, sonde_escaping esc)
{
    const char *names[MAX_NAMES];
    char scratch[QUERY_MAX];
    int nn = 0;
    if (rq->query_len) {
        nn = sonde__http_query_names(rq->query, rq->query_len, scratch, sizeof scratch, names,
                                     MAX_NAMES);
        if (nn < 0) {
            count_reject(s, R_BADREQ);
            json_error(rs, 400,
                       nn == SONDE_ELIMIT ? "too many name[] parameters (at most 256)"
                                          : "malformed name[] parameter in the query string");
            return;
        }
    }
    sonde_write_opts wo = {0};
    wo.escaping = esc;
    wo.names = names;
    wo.name_count = (size_t)nn;
    rs->body.max = s->cfg.max_response_bytes;
    size_t hint =
        (unsigned)fmt < 6 ? atomic_load_explicit(&s->size_hint[fmt], memory_order_relaxed) : 0;
    if (hint && nn == 0)
        sonde__buf_reserve(&rs->body, hint + hint / 8 < rs->body.max ? hint + hint / 8 : hint);
    uint64_t t0 = sonde__now_mono_ns();
    int rc = sonde_registry_write(s->reg, fmt, &wo, &rs->body);
    double dt = (double)(sonde__now_mono_ns() - t0) / 1e9;
    if (rc != SONDE_OK) {
        if (rc == SONDE_ETOOBIG)
            count_reject(s, R_TOOBIG);
        sonde__diag(SONDE_LOG_ERROR, "http", "rendering %s failed: %s", rq->path,
                    sonde_strerror(rc));
        rs->body.max = 0;
        json_error(rs, 500,
                   rc == SONDE_ETOOBIG ? "exposition larger than max_response_bytes"
                                       : "cannot render the exposition");
        return;
    }
    if (nn == 0 && (unsigned)fmt < 6)
        atomic_store_explicit(&s->size_hint[fmt], rs->body.len, memory_order_relaxed);
    if (fmt != SONDE_FORMAT_JSON) {
        if (s->scrape_duration)
            sonde_histogram_observe(s->scrape_duration, dt);
        if (s->scrape_bytes)
            sonde_gauge_set(s->scrape_bytes, (double)rs->body.len);
    }
    rs->content_type = sonde_format_content_type_escaped(fmt, esc);
    rs->gzip_ok = true;
}

static void handle_health(sonde__server *s, sonde__http_response *rs, bool detailed)
{
    sonde_buf *b = &rs->body;
    int rc = sonde__buf_putc(b, '{');
    rc = rc ? rc : sonde__buf_puts(b, "\"service\":");
    rc = rc ? rc : sonde__buf_json_str(b, s->service_name);
    rc = rc ? rc : sonde__buf_putc(b, ',');
    rc = rc ? rc : sonde__health_write_members(s->health, detailed, b);
    if (detailed) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"system\":");
        rc = rc ? rc : sonde__host_write_json(b, s->disk_path);
    }
    rc = rc ? rc : sonde__buf_puts(b, "}\n");
    if (rc) {
        json_error(rs, 500, "cannot render the health report");
        return;
    }
    sonde_health_summary sum;
    sonde_health_summarize(s->health, &sum);
    rs->status = sum.status == SONDE_HEALTH_UNHEALTHY ? 503 : 200;
    rs->gzip_ok = true;
}

static void handle_live(sonde__server *s, sonde__http_response *rs)
{
    SONDE_UNUSED(s);
    uint64_t hb = sonde__runtime_heartbeat_ns();
    uint64_t now = sonde__now_mono_ns();
    if (hb == 0 || (now > hb && now - hb > LIVENESS_MAX_AGE_NS)) {
        rs->status = 503;
        sonde__buf_printf(&rs->body,
                          "{\"status\":\"dead\",\"reason\":\"the sonde runtime worker has not "
                          "responded for %.1f s\"}\n",
                          hb ? (double)(now - hb) / 1e9 : -1.0);
        return;
    }
    sonde__buf_puts(&rs->body, "{\"status\":\"alive\"}\n");
}

static void handle_ready(sonde__server *s, sonde__http_response *rs)
{
    sonde_health_summary sum;
    sonde_health_summarize(s->health, &sum);
    rs->status = sum.ready ? 200 : 503;
    sonde__buf_puts(&rs->body, sum.ready ? "{\"status\":\"ready\"" : "{\"status\":\"not_ready\"");
    /* Name what keeps the service out of rotation, not the whole report. */
    if (!sum.ready) {
        sonde_buf full = {0};
        if (sonde__health_write_members(s->health, 0, &full) == SONDE_OK) {
            sonde__buf_putc(&rs->body, ',');
            sonde__buf_append(&rs->body, full.data, full.len);
        }
        sonde_buf_free(&full);
    }
    sonde__buf_puts(&rs->body, "}\n");
}

static void json_kv_str(sonde_buf *b, bool *first, const char *k, const char *v)
{
    sonde__buf_puts(b, *first ? "" : ",");
    *first = false;
    sonde__buf_json_str(b, k);
    sonde__buf_putc(b, ':');
    if (v)
        sonde__buf_json_str(b, v);
    else
        sonde__buf_puts(b, "null");
}

static void json_kv_num(sonde_buf *b, bool *first, const char *k, double v)
{
    sonde__buf_puts(b, *first ? "" : ",");
    *first = false;
    sonde__buf_json_str(b, k);
    sonde__buf_putc(b, ':');
    sonde__buf_json_double(b, v);
}

static void handle_info(sonde__server *s, sonde__http_response *rs)
{
    sonde_buf *b = &rs->body;
    double now = sonde__now_wall();
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    bool first = true;
    sonde__buf_putc(b, '{');
    json_kv_str(b, &first, "name", s->service_name);
    json_kv_str(b, &first, "version", s->service_version);
    json_kv_str(b, &first, "build", s->service_build);
    json_kv_str(b, &first, "sonde_version", sonde_version());
    json_kv_str(b, &first, "hostname", host);
    json_kv_num(b, &first, "pid", (double)getpid());
    sonde__buf_puts(b, ",\"start_time\":");
    sonde__buf_json_time(b, s->start_wall);
    json_kv_num(b, &first, "uptime_seconds", round((now - s->start_wall) * 1000) / 1000);
    sonde__buf_puts(b, ",\"configuration\":{");
    first = true;
    json_kv_str(b, &first, "listen", s->address);
    json_kv_str(b, &first, "route_prefix", s->prefix);
    json_kv_str(b, &first, "tls", s->tls_cert ? "enabled" : "disabled");
    json_kv_str(b, &first, "api_key", s->api_key ? "<redacted>" : NULL);
    json_kv_str(b, &first, "basic_auth_user", s->basic_user);
    json_kv_str(b, &first, "basic_auth_password", s->basic_pass ? "<redacted>" : NULL);
    json_kv_num(b, &first, "threads", s->cfg.threads);
    json_kv_num(b, &first, "max_connections", s->cfg.max_connections);
    json_kv_num(b, &first, "max_connections_per_client", s->cfg.max_connections_per_client);
    json_kv_num(b, &first, "max_header_bytes", (double)s->cfg.max_header_bytes);
    json_kv_num(b, &first, "idle_timeout_seconds", s->cfg.idle_timeout_seconds);
    json_kv_num(b, &first, "request_timeout_seconds", s->cfg.request_timeout_seconds);
    json_kv_num(b, &first, "rate_limit_per_second", s->cfg.rate_limit_per_second);
    json_kv_num(b, &first, "rate_limit_burst", s->cfg.rate_limit_burst);
    json_kv_num(b, &first, "max_response_bytes", (double)s->cfg.max_response_bytes);
    for (size_t i = 0; i < s->info_count; i++) {
        const char *k = s->info[2 * i], *v = s->info[2 * i + 1];
        json_kv_str(b, &first, k, sonde__key_is_secret(k) ? "<redacted>" : v);
    }
    sonde__buf_puts(b, "}}\n");
    rs->gzip_ok = true;
}

static void handle_index(sonde__server *s, sonde__http_response *rs)
{
    sonde_buf *b = &rs->body;
    sonde__buf_puts(b, "{\"service\":");
    sonde__buf_json_str(b, s->service_name);
    sonde__buf_puts(b, ",\"endpoints\":[");
    bool first = true;
    for (size_t i = 0; i < s->nroutes; i++) {
        if (strcmp(s->routes[i].path, "/") == 0 || strcmp(s->routes[i].path, "/health/") == 0)
            continue;
        sonde__buf_puts(b, first ? "" : ",");
        first = false;
        char p[512];
        snprintf(p, sizeof p, "%s%s", s->prefix, s->routes[i].path);
        sonde__buf_json_str(b, p);
    }
    sonde__buf_puts(b, "]}\n");
}

/* ---- the access handler ---- */

static size_t find_route(sonde__server *s, const char *path)
{
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0)
            return i;
    return s->nroutes;
}

/* Request framing (RFC 9112 sections 6.1-6.3, 11.2): anything a proxy in
 * front could read differently from us is refused, whatever libmicrohttpd
 * would make of it. */
typedef struct framing {
    int cl, te;
    const char *why;
} framing;

static bool token_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

static enum MHD_Result scan_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    SONDE_UNUSED(kind);
    framing *f = cls;
    if (!key || !*key || strpbrk(key, " \t\r\n")) {
        f->why = "malformed header field name";
        return MHD_NO;
    }
    if (value && strpbrk(value, "\r\n")) {
        f->why = "obsolete line folding in a header field";
        return MHD_NO;
    }
    if (token_eq(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        f->cl++;
        const char *v = value ? value : "";
        size_t n = strspn(v, "0123456789");
        if (n == 0 || v[n] != '\0')
            f->why = "Content-Length is not a single decimal number";
    } else if (token_eq(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->te++;
        if (!value || !token_eq(value, "chunked"))
            f->why = "unsupported Transfer-Encoding (only \"chunked\")";
    }
    return f->why ? MHD_NO : MHD_YES;
}

/* NULL when the framing is unambiguous, else the reason for a 400. */
static const char *bad_framing(struct MHD_Connection *mc, const char *version)
{
    framing f = {0, 0, NULL};
    MHD_get_connection_values(mc, MHD_HEADER_KIND, scan_framing, &f);
    if (f.why)
        return f.why;
    if (f.cl > 1)
        return "repeated Content-Length";
    if (f.te > 1)
        return "repeated Transfer-Encoding";
    if (f.te && f.cl)
        return "both Transfer-Encoding and Content-Length";
    if (f.te && version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    return NULL;
}

static bool has_body(struct MHD_Connection *mc)
{
    const char *cl =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        while (*cl == ' ')
            cl++;
        if (!(cl[0] == '0' && (cl[1] == '\0' || cl[1] == ' ')))
            return true;
    }
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
           NULL;
}

/* ---- application routes (sonde/app.h) ---- */

typedef struct header_pick {
    const char *const *names;
    size_t n;
    const char **out; /* pairs */
    size_t count;
} header_pick;

static enum MHD_Result pick_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    SONDE_UNUSED(kind);
    header_pick *p = cls;
    for (size_t i = 0; i < p->n && p->count < SONDE__APP_MAX_HEADERS; i++) {
        if (strcasecmp(p->names[i], key) == 0) {
            p->out[2 * p->count] = p->names[i];
            p->out[2 * p->count + 1] = value ? value : "";
            p->count++;
            break;
        }
    }
    return MHD_YES;
}

/*
 * A request that no sonde route matched: an application route, or 404.
 * Called on the first call of a request with a body (checks, then starts
 * reading it) and on the last call of every request (answers it). The
 * route is looked up again on the last call: it may have been removed in
 * between, and the reference is held only while its handler runs.
 */
static enum MHD_Result serve_app(sonde__server *s, struct MHD_Connection *mc, conn *c,
                                 const char *url, const char *method, uint64_t t0,
                                 const struct sockaddr *client)
{
    sonde__http_response rs = {.status = 200, .content_type = "application/json"};
    const char *sub = "";
    sonde__app_route *ar = sonde__app_route_find(url, s->prefix, s->prefix_len, &sub);
    if (!ar) {
        json_error(&rs, 404, "not found");
        return send_response(s, mc, s->nroutes, &rs, t0, NULL);
    }
    /* Everything below answers through done: the label outlives send. */
    char label[128];
    snprintf(label, sizeof label, "%s", ar->label);
    rs.metric_label = label;
    char rid[SONDE_CORRELATION_ID_MAX + 1];
    sonde_log_correlation_from_headers(
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "traceparent"),
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-ID"), rid);
    rs.request_id = rid;
    char allow[96];
    char ra[24];
    const char *challenge = NULL;
    sonde_http_method mb = sonde_http_method_parse(method);
    bool checked = c && c->app_checked;
    bool hb = has_body(mc);

    if (!(ar->methods & mb)) {
        sonde__app_route_allow(ar, allow, sizeof allow);
        rs.allow = allow;
        json_error(&rs, 405, "method not allowed");
        goto done;
    }
    if (c && c->qover) {
        count_reject(s, R_BADREQ);
        json_error(&rs, 414, "query string too long");
        goto done;
    }
    bool takes_body =
        mb & (SONDE_HTTP_POST | SONDE_HTTP_PUT | SONDE_HTTP_PATCH | SONDE_HTTP_DELETE);
    if (hb && !takes_body) {
        count_reject(s, R_BODY);
        json_error(&rs, 413, "this method takes no request body");
        goto done;
    }
    const char *cl =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if ((cl && strtoull(cl, NULL, 10) > ar->max_body) || (c && c->body_over)) {
        count_reject(s, R_BODY);
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", ar->max_body);
        json_error(&rs, 413, msg);
        goto done;
    }

    /* Decoded query and selected headers (also for the access check). */
    char scratch[QUERY_MAX];
    const char *qp[2 * 64];
    int nq = 0;
    if (c && c->qlen) {
        nq = sonde__http_query_pairs(c->query, c->qlen, scratch, sizeof scratch, qp, 64);
        if (nq < 0) {
            count_reject(s, R_BADREQ);
            json_error(&rs, 400,
                       nq == SONDE_ELIMIT ? "too many query parameters (at most 64)"
                                          : "malformed query string");
            goto done;
        }
    }
    const char *hv[2 * SONDE__APP_MAX_HEADERS];
    header_pick hp = {(const char *const *)ar->headers, ar->nheaders, hv, 0};
    if (ar->nheaders)
        MHD_get_connection_values(mc, MHD_HEADER_KIND, pick_header, &hp);
    char caddr[INET6_ADDRSTRLEN] = "";
    if (client && client->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)client)->sin_addr, caddr, sizeof caddr);
    else if (client && client->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)client)->sin6_addr, caddr, sizeof caddr);
    sonde_route_request rq = {.method = method,
                              .method_bit = mb,
                              .path = url,
                              .subpath = sub,
                              .query = qp,
                              .query_count = (size_t)nq,
                              .headers = hv,
                              .header_count = hp.count,
                              .client = caddr,
                              .request_id = rid};

    if (!checked) {
        if (!ar->no_rate_limit && s->rl) {
            double wait = 1;
            if (!sonde__ratelimit_take(s->rl, client, t0, &wait)) {
                snprintf(ra, sizeof ra, "%d", (int)ceil(wait < 1 ? 1 : wait));
                count_reject(s, R_RATE);
                json_error(&rs, 429, "rate limit exceeded");
                rs.retry_after = ra;
                goto done;
            }
        }
        int verdict = 0;
        if (ar->access == SONDE_ACCESS_SENSITIVE) {
            switch (authenticate(s, mc, SONDE__ROUTE_SENSITIVE, client)) {
            case AUTH_OK:
                break;
            case AUTH_BEARER_CHALLENGE:
                verdict = 401;
                challenge = "Bearer realm=\"sonde\"";
                break;
            case AUTH_BASIC_CHALLENGE:
                verdict = 401;
                challenge = "Basic realm=\"sonde\", charset=\"UTF-8\"";
                break;
            case AUTH_FORBIDDEN:
                verdict = 403;
                break;
            }
        } else {
            if (s->basic_user && authenticate(s, mc, 0, client) != AUTH_OK) {
                verdict = 401;
                challenge = "Basic realm=\"sonde\", charset=\"UTF-8\"";
            }
            if (!verdict && ar->access == SONDE_ACCESS_CHECK) {
                int v = ar->check(ar->check_ud, &rq);
                verdict = v == 0 ? 0 : v == 401 ? 401 : 403;
            }
        }
        if (verdict) {
            count_reject(s, verdict == 401 ? R_UNAUTH : R_FORBIDDEN);
            json_error(&rs, verdict, verdict == 401 ? "unauthorized" : "forbidden");
            goto done;
        }
        if (hb && c) {
            /* Read the body (on_request's upload branch), answer at the
             * last call. */
            c->app_checked = true;
            c->body_max = ar->max_body;
            sonde__app_route_release(ar);
            return MHD_YES;
        }
    }

    if (c && c->body.len) {
        sonde__buf_putc(&c->body, '\0'); /* NUL-terminated for the handler */
        rq.body = c->body.data;
        rq.body_len = c->body.len - 1;
    }
    {
        int tok = sonde_log_context_push(rid, NULL, 0);
        sonde_route_response ars = {.status = 200, .content_type = "application/json"};
        ar->fn(ar->ud, &rq, &ars);
        sonde_log_context_pop(tok);
        rs.status = ars.status >= 100 && ars.status <= 599 ? ars.status : 500;
        rs.content_type = ars.content_type ? ars.content_type : "application/json";
        if (mb == SONDE_HTTP_HEAD)
            sonde_buf_free(&ars.body);
        rs.body = ars.body;
        rs.gzip_ok = true;
        char loc[512];
        if (ars.location) {
            snprintf(loc, sizeof loc, "%s", ars.location);
            rs.location = loc;
        }
        sonde__app_route_release(ar);
        ar = NULL;
        return send_response(s, mc, s->nroutes, &rs, t0, NULL);
    }

done:
    sonde__app_route_release(ar);
    return send_response(s, mc, s->nroutes, &rs, t0, challenge);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    SONDE_UNUSED(version);
    SONDE_UNUSED(upload);
    sonde__server *s = cls;
    conn *c = *con_cls;
    uint64_t t0 = sonde__now_mono_ns();
    if (!c || !c->framing_checked) {
        if (c)
            c->framing_checked = true;
        const char *why = bad_framing(mc, version);
        if (why) {
            count_reject(s, R_BADREQ);
            sonde__http_response rs = {.status = 400, .close = true};
            json_error(&rs, 400, why);
            *upload_size = 0;
            return send_response(s, mc, s->nroutes, &rs, t0, NULL);
        }
    }
    if (*upload_size) {
        /* The body of an application route's request is kept up to its
         * limit (more marks it oversized: 413 once it has all arrived);
         * any other body arrived although we already answered: discard
         * it. */
        if (c && c->app_checked && !c->body_over) {
            if (c->body.len + *upload_size > c->body_max ||
                sonde__buf_append(&c->body, upload, *upload_size) != SONDE_OK) {
                c->body_over = true;
                sonde_buf_free(&c->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* MHD calls the handler once when the head is parsed and again when the
     * (empty) body is complete. Answering on the first call makes MHD close
     * the connection, since it cannot skip a body it has not read; so a
     * request without a body is answered on the second call, keeping the
     * connection alive, and a request with a body is refused at once. */
    if (c && !c->headers_seen && !has_body(mc)) {
        c->headers_seen = true;
        return MHD_YES;
    }
    sonde__http_response rs = {.status = 200, .content_type = "application/json"};
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *client = ai ? ai->client_addr : NULL;

    /* Route: strip the prefix; anything outside it is unknown. */
    const char *path = url;
    size_t ri = s->nroutes;
    if (s->prefix_len) {
        if (strncmp(url, s->prefix, s->prefix_len) == 0 &&
            (url[s->prefix_len] == '/' || url[s->prefix_len] == '\0')) {
            path = url[s->prefix_len] ? url + s->prefix_len : "/";
            ri = find_route(s, path);
        }
    } else {
        ri = find_route(s, path);
    }
    if (ri == s->nroutes)
        return serve_app(s, mc, c, url, method, t0, client);
    route *rt = &s->routes[ri];
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        json_error(&rs, 405, "method not allowed: only GET and HEAD");
        return send_response(s, mc, ri, &rs, t0, NULL);
    }
    if (has_body(mc)) {
        count_reject(s, R_BODY);
        json_error(&rs, 413, "request bodies are not accepted");
        return send_response(s, mc, ri, &rs, t0, NULL);
    }
    if (c && c->qover) {
        count_reject(s, R_BADREQ);
        json_error(&rs, 414, "query string too long");
        return send_response(s, mc, ri, &rs, t0, NULL);
    }
    if ((rt->flags & SONDE__ROUTE_RATE_LIMITED) && s->rl) {
        double wait = 1;
        if (!sonde__ratelimit_take(s->rl, client, t0, &wait)) {
            char ra[24];
            snprintf(ra, sizeof ra, "%d", (int)ceil(wait < 1 ? 1 : wait));
            count_reject(s, R_RATE);
            json_error(&rs, 429, "rate limit exceeded");
            rs.retry_after = ra;
            return send_response(s, mc, ri, &rs, t0, NULL);
        }
    }
    switch (authenticate(s, mc, rt->flags, client)) {
    case AUTH_OK:
        break;
    case AUTH_BEARER_CHALLENGE:
        count_reject(s, R_UNAUTH);
        json_error(&rs, 401, "unauthorized: send Authorization: Bearer <api key>");
        return send_response(s, mc, ri, &rs, t0, "Bearer realm=\"sonde\"");
    case AUTH_BASIC_CHALLENGE:
        count_reject(s, R_UNAUTH);
        json_error(&rs, 401, "unauthorized");
        return send_response(s, mc, ri, &rs, t0, "Basic realm=\"sonde\", charset=\"UTF-8\"");
    case AUTH_FORBIDDEN:
        count_reject(s, R_FORBIDDEN);
        json_error(&rs, 403,
                   "forbidden: this endpoint answers loopback clients only unless an API key "
                   "is configured");
        return send_response(s, mc, ri, &rs, t0, NULL);
    }

    sonde__http_request rq = {
        .path = path,
        .query = c ? c->query : "",
        .query_len = c ? c->qlen : 0,
        .accept = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
        .client = client,
        .head = head};
    switch (rt->builtin) {
    case H_METRICS: {
        sonde_escaping esc = SONDE_ESCAPING_UNDERSCORES;
        sonde_format fmt =
            sonde_format_negotiate(rq.accept, rq.accept ? strlen(rq.accept) : 0, &esc);
        handle_metrics(s, &rq, &rs, fmt, esc);
        break;
    }
    case H_METRICS_JSON:
        handle_metrics(s, &rq, &rs, SONDE_FORMAT_JSON, SONDE_ESCAPING_UNDERSCORES);
        break;
    case H_HEALTH:
        handle_health(s, &rs, false);
        break;
    case H_DETAILED:
        handle_health(s, &rs, true);
        break;
    case H_LIVE:
        handle_live(s, &rs);
        break;
    case H_READY:
        handle_ready(s, &rs);
        break;
    case H_INFO:
        handle_info(s, &rs);
        break;
    case H_INDEX:
        handle_index(s, &rs);
        break;
    case H_STATUS:
        rs.content_type = "text/plain; charset=utf-8";
        sonde__buf_puts(&rs.body, "ok\n");
        break;
    default:
        rt->fn(rt->ud, &rq, &rs);
        break;
    }
    return send_response(s, mc, ri, &rs, t0, NULL);
}

/* ---- lifecycle ---- */

static char *read_file(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    sonde_buf b = {0};
    b.max = max;
    char tmp[4096];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || sonde__buf_append(&b, tmp, (size_t)n) != SONDE_OK) {
            if (n != 0) {
                sonde_buf_free(&b);
                close(fd);
                return NULL;
            }
            break;
        }
    }
    close(fd);
    if (!b.data)
        sonde__buf_reserve(&b, 1);
    return b.data;
}

static void server_free(sonde__server *s)
{
    if (!s)
        return;
    sonde__free(s->prefix);
    if (s->api_key) {
        memset(s->api_key, 0, s->api_key_len);
        sonde__free(s->api_key);
    }
    sonde__free(s->basic_user);
    if (s->basic_pass) {
        memset(s->basic_pass, 0, strlen(s->basic_pass));
        sonde__free(s->basic_pass);
    }
    if (s->basic_cache) {
        memset(s->basic_cache, 0, strlen(s->basic_cache));
        sonde__free(s->basic_cache);
    }
    if (s->tls_key) {
        memset(s->tls_key, 0, strlen(s->tls_key));
        sonde__free(s->tls_key);
    }
    sonde__free(s->tls_cert);
    sonde__free(s->service_name);
    sonde__free(s->service_version);
    sonde__free(s->service_build);
    sonde__free(s->disk_path);
    for (size_t i = 0; i < 2 * s->info_count; i++)
        sonde__free(s->info[i]);
    sonde__free(s->info);
    for (size_t i = 0; i < s->nroutes; i++)
        sonde__free(s->routes[i].path);
    sonde__free(s->routes);
    sonde__ratelimit_destroy(s->rl);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_mutex_destroy(&s->basic_lock);
    sonde__free(s);
}

static bool valid_prefix(const char *p)
{
    if (!*p)
        return true;
    if (p[0] != '/' || p[strlen(p) - 1] == '/' || strlen(p) > 200)
        return false;
    for (const char *c = p; *c; c++)
        if (*c <= ' ' || *c == '?' || *c == '#' || *c == '%' || (unsigned char)*c >= 0x7f)
            return false;
    return true;
}

static int build_routes(sonde__server *s)
{
    pthread_mutex_lock(&ext_lock);
    size_t n = SONDE_ARRAY_LEN(builtin_routes) + ext_count;
    s->routes = sonde__calloc(n, sizeof *s->routes);
    int rc = s->routes ? SONDE_OK : SONDE_ENOMEM;
    for (size_t i = 0; !rc && i < SONDE_ARRAY_LEN(builtin_routes); i++) {
        int h = builtin_routes[i].h;
        s->routes[i] = (route){sonde__strdup(builtin_routes[i].path),
                               handler_labels[h],
                               builtin_flags(h),
                               h,
                               NULL,
                               NULL};
        s->nroutes++;
        if (!s->routes[i].path)
            rc = SONDE_ENOMEM;
    }
    for (size_t i = 0; !rc && i < ext_count; i++) {
        route *r = &s->routes[s->nroutes];
        *r = ext_routes[i];
        r->path = sonde__strdup(ext_routes[i].path);
        s->nroutes++;
        if (!r->path)
            rc = SONDE_ENOMEM;
    }
    pthread_mutex_unlock(&ext_lock);
    return rc;
}

#define DUP_OR_FAIL(dst, src)                                                                      \
    do {                                                                                           \
        if ((src) && !((dst) = sonde__strdup(src))) {                                              \
            server_free(s);                                                                        \
            return SONDE_ENOMEM;                                                                   \
        }                                                                                          \
    } while (0)

int sonde__server_create(const sonde_start_opts *o, sonde__server **out)
{
    *out = NULL;
    sonde__server *s = sonde__calloc(1, sizeof *s);
    if (!s)
        return SONDE_ENOMEM;
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_mutex_init(&s->basic_lock, NULL);
    s->cfg = *o;
    /* Only the numeric limits of the copy are used later: clear the
     * borrowed pointers so nothing can read the caller's strings after
     * sonde_start returns. */
    s->cfg.listen = s->cfg.api_key = s->cfg.route_prefix = NULL;
    s->cfg.service_name = s->cfg.service_version = s->cfg.service_build = NULL;
    s->cfg.tls_cert_file = s->cfg.tls_key_file = NULL;
    s->cfg.basic_auth_user = s->cfg.basic_auth_password = s->cfg.disk_path = NULL;
    s->cfg.info = NULL;
    s->reg = o->registry ? o->registry : sonde_registry_default();
    s->health = o->health ? o->health : sonde_health_default();
    s->start_wall = sonde__now_wall();

    const char *prefix = o->route_prefix ? o->route_prefix : "";
    if (!valid_prefix(prefix)) {
        sonde__set_error("route prefix \"%s\" must start with '/', not end with '/', and hold "
                         "no spaces, '?', '#' or '%%'",
                         prefix);
        server_free(s);
        return SONDE_EINVAL;
    }
    DUP_OR_FAIL(s->prefix, prefix);
    s->prefix_len = strlen(prefix);
    if (o->api_key && *o->api_key) {
        DUP_OR_FAIL(s->api_key, o->api_key);
        s->api_key_len = strlen(o->api_key);
    }
    if ((o->basic_auth_user && *o->basic_auth_user) !=
        (o->basic_auth_password && *o->basic_auth_password)) {
        sonde__set_error("basic authentication needs both a user and a password");
        server_free(s);
        return SONDE_EINVAL;
    }
    if (o->basic_auth_user && *o->basic_auth_user) {
        DUP_OR_FAIL(s->basic_user, o->basic_auth_user);
        DUP_OR_FAIL(s->basic_pass, o->basic_auth_password);
        s->basic_hashed = s->basic_pass[0] == '$';
    }
    DUP_OR_FAIL(s->service_name, o->service_name ? o->service_name : "");
    DUP_OR_FAIL(s->service_version, o->service_version ? o->service_version : "");
    DUP_OR_FAIL(s->service_build, o->service_build ? o->service_build : "");
    DUP_OR_FAIL(s->disk_path, o->disk_path ? o->disk_path : "/");
    if (o->info_count) {
        if (!o->info) {
            server_free(s);
            return SONDE_EINVAL;
        }
        s->info = sonde__calloc(2 * o->info_count, sizeof *s->info);
        if (!s->info) {
            server_free(s);
            return SONDE_ENOMEM;
        }
        s->info_count = o->info_count;
        for (size_t i = 0; i < 2 * o->info_count; i++)
            DUP_OR_FAIL(s->info[i], o->info[i] ? o->info[i] : "");
    }
    bool tls = (o->tls_cert_file && *o->tls_cert_file) || (o->tls_key_file && *o->tls_key_file);
    if (tls) {
        if (!(o->tls_cert_file && *o->tls_cert_file) || !(o->tls_key_file && *o->tls_key_file)) {
            sonde__set_error("TLS needs both a certificate file and a key file");
            server_free(s);
            return SONDE_EINVAL;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            sonde__set_error("this libmicrohttpd has no TLS support");
            server_free(s);
            return SONDE_EIO;
        }
        s->tls_cert = read_file(o->tls_cert_file, 1 << 20);
        s->tls_key = read_file(o->tls_key_file, 1 << 20);
        if (!s->tls_cert || !s->tls_key) {
            sonde__set_error("cannot read TLS %s file %s: %s", s->tls_cert ? "key" : "certificate",
                             s->tls_cert ? o->tls_key_file : o->tls_cert_file, strerror(errno));
            server_free(s);
            return SONDE_EIO;
        }
    }
    if (build_routes(s) != SONDE_OK) {
        server_free(s);
        return SONDE_ENOMEM;
    }
    if (o->rate_limit_per_second > 0) {
        s->rl = sonde__ratelimit_create(o->rate_limit_per_second, o->rate_limit_burst, 4096);
        if (!s->rl) {
            server_free(s);
            return SONDE_ENOMEM;
        }
    }
    s->deadline_ns = (uint64_t)(o->request_timeout_seconds * 1e9);

    char host[256];
    int port;
    if (sonde__parse_listen(o->listen, host, sizeof host, &port) != SONDE_OK) {
        sonde__set_error("cannot parse listen address \"%s\": expected [host]:port", o->listen);
        server_free(s);
        return SONDE_EINVAL;
    }
    /* Resolve the address ourselves: MHD takes a sockaddr. An empty host
     * means every interface, IPv6 and IPv4 on one dual-stack socket when
     * the host has IPv6, else IPv4. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    bool any = host[0] == '\0';
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (any) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
        int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            close(probe);
            flags |= MHD_USE_DUAL_STACK;
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
            memset(&ss, 0, sizeof ss);
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            a4->sin_port = htons((uint16_t)port);
        }
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char ps[8];
        snprintf(ps, sizeof ps, "%d", port);
        int gai = getaddrinfo(host, ps, &hints, &res);
        if (gai != 0 || !res) {
            sonde__set_error("cannot resolve listen host \"%s\": %s", host, gai_strerror(gai));
            server_free(s);
            return SONDE_EBIND;
        }
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        if (res->ai_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        freeaddrinfo(res);
    }
    if (tls)
        flags |= MHD_USE_TLS;

    struct MHD_OptionItem opts[24];
    size_t n = 0;
    /* The logger first, so MHD reports problems with the options below
     * through it. */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                        (intptr_t)o->max_connections_per_client, NULL};
    /* The pool holds the request head and our response headers. */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        (intptr_t)(o->max_header_bytes + 4096), NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)(unsigned)ceil(o->idle_timeout_seconds), NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 511, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s};
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    /* Catch what MHD reports while starting (bind errors, bad TLS keys) to
     * give the caller the reason. */
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (!s->d) {
        int err = errno;
        if (tls)
            sonde__set_error("cannot start the TLS server on %s: bad certificate or key, or "
                             "address in use (%s)",
                             o->listen, strerror(err));
        else
            sonde__set_error("cannot listen on %s: %s", o->listen,
                             err ? strerror(err) : "bind failed");
        server_free(s);
        return tls ? SONDE_EIO : SONDE_EBIND;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    char hs[INET6_ADDRSTRLEN] = "";
    if (any)
        snprintf(hs, sizeof hs, "%s", (flags & MHD_USE_DUAL_STACK) ? "[::]" : "0.0.0.0");
    else if (ss.ss_family == AF_INET6) {
        char t[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, t, sizeof t);
        snprintf(hs, sizeof hs, "[%.*s]", (int)sizeof hs - 3, t);
    } else
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, hs, sizeof hs);
    snprintf(s->address, sizeof s->address, "%s:%d", hs, s->port);

    register_metrics(s);
    if (s->deadline_ns)
        sonde__runtime_every(SWEEP_MS, sweep, s, &s->sweep_timer);
    *out = s;
    return SONDE_OK;
}

void sonde__server_destroy(sonde__server *s)
{
    if (!s)
        return;
    if (s->sweep_timer)
        sonde__runtime_cancel(s->sweep_timer);
    MHD_stop_daemon(s->d);
    server_free(s);
}

int sonde__server_port(const sonde__server *s)
{
    return s ? s->port : 0;
}

const char *sonde__server_address(const sonde__server *s)
{
    return s ? s->address : "";
}
